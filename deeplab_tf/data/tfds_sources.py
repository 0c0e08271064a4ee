"""tensorflow-datasets sources through the same preprocessing as the TFRecords.

A source maps one TFDS builder's examples to the pipeline's decoded sample
``{'image': uint8 [H, W, 3], 'label': uint8 [H, W, 1], 'filename': string}``
and then runs ``pipeline.finish_pipeline`` (shuffle, repeat, the original
preprocessing, batch, prefetch), so batches are exactly those of
``pipeline.build_dataset``. Sources, selected by name:

``scene_parse150`` (ADE20K images, 20210 train / 2000 test)
    TFDS's builder stores the ``annotations_instance`` PNGs of the 2017
    Places challenge, not the 150-class semantic PNGs: their R channel is
    the category id of the instance track (1..100, ``instanceInfo100``; 0
    where no such object is, i.e. stuff and unlabeled pixels) and the G
    channel an instance id. The label is the R channel; as ADE20K in the
    original, 0 is the ignore label, so ``num_classes`` is 101 (ids 1..100
    are classes). For the 150-class benchmark convert the official
    ADEChallengeData2016 with ``datasets/`` instead.
``cityscapes/semantic_segmentation`` (manual download, 2975 / 500 / 1525)
    ``segmentation_label`` holds Cityscapes label ids (gtFine labelIds);
    they are mapped to the 19 train ids (``LABEL_ID_TO_TRAIN_ID``), every
    other id to 255, as the original ``createTrainIdLabelImgs``.
``coco/2017_panoptic`` (118287 train / 5000 validation)
    Semantic view of the panoptic annotation: the PNG encodes a segment id
    per pixel as ``R + 256 G + 256^2 B``; each segment of
    ``panoptic_objects`` has an ``id`` and a ``label``, TFDS's contiguous
    index 0..132 of the 133 panoptic categories (80 things then 53 stuff,
    in the order of the panoptic JSON's categories). A pixel takes the
    label of its segment; segment id 0 (unlabeled) and ids with no segment
    become 255. Crowd segments keep their category.
``oxford_iiit_pet`` (3680 train / 3669 test)
    The trimap (1 pet, 2 background, 3 border / not classified) becomes
    0 background, 1 pet, and 255 (ignored) on the border band.

Data are read from ``data_dir`` (prepared datasets); with ``manual_dir``
(or ``download=True``) the builder is prepared first, so nothing is
downloaded unless asked. Hard-class duplication needs the class presence
per record, computed once for TFRecords: convert the dataset to use it.
"""
import dataclasses
from typing import Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from deeplab_tf.data import colormaps
from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline

IGNORE_LABEL = 255

# Cityscapes label id -> train id (cityscapesScripts labels.py); others 255.
CITYSCAPES_LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def _lookup_table(mapping, default=IGNORE_LABEL):
  table = np.full(256, default, np.uint8)
  for key, value in mapping.items():
    table[key] = value
  return table


LABEL_ID_TO_TRAIN_ID = _lookup_table(CITYSCAPES_LABEL_ID_TO_TRAIN_ID)

# Oxford-IIIT Pet trimap values.
PET_FOREGROUND, PET_BACKGROUND, PET_BORDER = 1, 2, 3
PET_TRIMAP_TO_CLASS = _lookup_table({PET_BACKGROUND: 0, PET_FOREGROUND: 1,
                                     PET_BORDER: IGNORE_LABEL})


def _decoded(value, channels):
  """A TFDS image feature: decode if it came encoded (SkipDecoding)."""
  if value.dtype == tf.string:
    value = tf.io.decode_image(value, channels=channels,
                               expand_animations=False)
  if value.shape.rank == 2:
    value = value[..., tf.newaxis]
  return value


def _check_same_size(image, label, filename):
  same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(label)[:2]))
  check = tf.debugging.Assert(
      same, ['label size differs from image size in TFDS example', filename,
             tf.shape(image), tf.shape(label)])
  with tf.control_dependencies([check]):
    return tf.identity(label)


def _sample(image, label, filename):
  image = _decoded(image, 3)
  image.set_shape([None, None, 3])
  label.set_shape([None, None, 1])
  return {'image': image, 'label': _check_same_size(image, label, filename),
          'filename': filename}


def _map_values(values, table):
  return tf.gather(tf.constant(table), tf.cast(values, tf.int32))


def scene_parse150_to_sample(features):
  """scene_parse150: label = R channel of the instance annotation (see module)."""
  annotation = _decoded(features['annotation'], 3)
  label = tf.cast(annotation[..., :1], tf.uint8)
  # The builder has no file name feature: the TFDS example id names it.
  return _sample(features['image'], label,
                 features.get('tfds_id', tf.constant('')))


def cityscapes_to_sample(features):
  """cityscapes/semantic_segmentation: label ids -> 19 train ids, others 255."""
  label_ids = _decoded(features['segmentation_label'], 1)
  label = _map_values(label_ids, LABEL_ID_TO_TRAIN_ID)
  return _sample(features['image_left'], label, features['image_id'])


def panoptic_to_semantic(panoptic, segment_ids, segment_labels,
                         ignore_label=IGNORE_LABEL):
  """COCO panoptic PNG [H, W, 3] -> semantic label uint8 [H, W, 1].

  ``segment_ids`` / ``segment_labels``: the ``panoptic_objects`` ``id`` and
  ``label`` of the image. Pixels of segment id 0 or of an id not listed get
  ``ignore_label``.
  """
  rgb = tf.cast(panoptic, tf.int64)
  pixel_ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
  segment_ids = tf.cast(tf.reshape(segment_ids, [-1]), tf.int64)
  segment_labels = tf.cast(tf.reshape(segment_labels, [-1]), tf.int64)
  order = tf.argsort(segment_ids)
  # A sentinel past every 24-bit id keeps the lookup in range when empty.
  sorted_ids = tf.concat([tf.gather(segment_ids, order),
                          tf.constant([1 << 40], tf.int64)], 0)
  sorted_labels = tf.concat([tf.gather(segment_labels, order),
                             tf.constant([ignore_label], tf.int64)], 0)
  flat = tf.reshape(pixel_ids, [-1])
  position = tf.searchsorted(sorted_ids, flat, side='left')
  found = tf.logical_and(tf.equal(tf.gather(sorted_ids, position), flat),
                         tf.not_equal(flat, 0))
  labels = tf.where(found, tf.gather(sorted_labels, position),
                    tf.constant(ignore_label, tf.int64))
  return tf.cast(tf.reshape(labels, tf.concat([tf.shape(pixel_ids), [1]], 0)),
                 tf.uint8)


def coco_panoptic_to_sample(features):
  """coco/2017_panoptic: semantic view (see ``panoptic_to_semantic``)."""
  panoptic = _decoded(features['panoptic_image'], 3)
  objects = features['panoptic_objects']
  label = panoptic_to_semantic(panoptic, objects['id'], objects['label'])
  return _sample(features['image'], label, features['image/filename'])


def oxford_pet_to_sample(features):
  """oxford_iiit_pet: trimap -> 0 background, 1 pet, 255 border."""
  trimap = _decoded(features['segmentation_mask'], 1)
  label = _map_values(trimap, PET_TRIMAP_TO_CLASS)
  return _sample(features['image'], label, features['file_name'])


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  """A TFDS builder, its descriptor, and its example -> sample mapping."""
  name: str
  descriptor: datasets_info.DatasetDescriptor
  to_sample: Callable
  # Image features passed encoded to the pipeline (decoded after shuffling).
  encoded_features: tuple


SOURCES: Dict[str, TfdsSource] = {s.name: s for s in (
    TfdsSource('scene_parse150', datasets_info.DatasetDescriptor(
        name='scene_parse150', splits_to_sizes={'train': 20210, 'test': 2000},
        num_classes=101, ignore_label=0, unlabeled_splits=()),
               scene_parse150_to_sample, ('image', 'annotation')),
    TfdsSource('cityscapes/semantic_segmentation',
               datasets_info.DatasetDescriptor(
                   name='cityscapes/semantic_segmentation',
                   splits_to_sizes={'train': 2975, 'validation': 500,
                                    'test': 1525},
                   num_classes=19, ignore_label=IGNORE_LABEL,
                   class_names=datasets_info.CITYSCAPES_CLASSES,
                   colormap=colormaps.CITYSCAPES_COLORMAP,
                   unlabeled_splits=('test',)),
               cityscapes_to_sample, ('image_left', 'segmentation_label')),
    TfdsSource('coco/2017_panoptic', datasets_info.DatasetDescriptor(
        name='coco/2017_panoptic',
        splits_to_sizes={'train': 118287, 'validation': 5000},
        num_classes=133, ignore_label=IGNORE_LABEL, unlabeled_splits=()),
               coco_panoptic_to_sample, ('image', 'panoptic_image')),
    TfdsSource('oxford_iiit_pet', datasets_info.DatasetDescriptor(
        name='oxford_iiit_pet', splits_to_sizes={'train': 3680, 'test': 3669},
        num_classes=2, ignore_label=IGNORE_LABEL,
        class_names=('background', 'pet'), unlabeled_splits=()),
               oxford_pet_to_sample, ('image', 'segmentation_mask')),
)}


def get_source(name) -> TfdsSource:
  if name not in SOURCES:
    raise datasets_info.DescriptorError(
        'Unknown TFDS source %r; accepted: %s.'
        % (name, ', '.join(sorted(SOURCES))))
  return SOURCES[name]


def _split_base(split):
  """'train[:10%]' -> 'train' (TFDS slicing is allowed)."""
  return split.split('[', 1)[0]


def build_tfds_dataset(name, split, settings: pipeline.InputSettings,
                       batch_size, is_training, data_dir=None,
                       manual_dir=None, download=False,
                       input_context: Optional[tf.distribute.InputContext] = None,
                       deterministic=False, seed=None, num_epochs=None):
  """Batches from a TFDS source, as ``pipeline.build_dataset`` makes them.

  Args:
    name: a key of ``SOURCES`` (the TFDS name, with its config).
    split: a TFDS split of the source (slices such as ``train[:10%]`` work).
    settings, batch_size, is_training, input_context, deterministic, seed,
      num_epochs: as ``pipeline.build_dataset``.
    data_dir: the TFDS data folder (default: TFDS's).
    manual_dir: folder of manually downloaded archives (Cityscapes); the
      builder is prepared from it if needed.
    download: allow TFDS to download and prepare (network).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = get_source(name)
  descriptor = source.descriptor
  descriptor.check_split(_split_base(split))
  if settings.duplicates_hard_classes:
    raise pipeline.InputError(
        'Hard-class duplication is not available for TFDS sources (it needs '
        'the class presence of every record, computed once): convert %s to '
        'TFRecords (datasets/) to use it.' % name)
  has_labels = descriptor.has_labels(_split_base(split))
  if is_training and not has_labels:
    raise pipeline.InputError('Split %r of %s has no labels; it cannot be used '
                              'for training.' % (split, name))
  builder = tfds.builder(name, data_dir=data_dir)
  if manual_dir is not None or download:
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    builder.download_and_prepare(download_config=config)
  if deterministic and seed is None:
    seed = 0
  read_config = tfds.ReadConfig(
      shuffle_seed=seed, input_context=input_context,
      interleave_cycle_length=settings.num_parallel_reads,
      try_autocache=False, add_tfds_id=True)
  decoders = {key: tfds.decode.SkipDecoding()
              for key in source.encoded_features}
  try:
    elements = builder.as_dataset(split=split,
                                  shuffle_files=is_training and not deterministic,
                                  decoders=decoders, read_config=read_config)
  except AssertionError as e:   # TFDS: "Dataset ... not found".
    raise pipeline.InputError(
        'TFDS dataset %s is not prepared in %s (%s). Prepare it (tfds build, '
        'or pass manual_dir= / download=True).'
        % (name, builder.data_dir, e)) from None

  def decode_fn(features):
    sample = source.to_sample(features)
    if not has_labels:
      sample.pop('label')
    return sample

  return pipeline.finish_pipeline(
      elements, decode_fn, settings, descriptor.num_classes,
      descriptor.ignore_label, batch_size, is_training,
      deterministic=deterministic, seed=seed, num_epochs=num_epochs)
