"""Panoptic TFRecords: image + one int32 panoptic map per record.

The original research/deeplab has no panoptic training data path (DeeperLab
was not released there); google-research/deeplab2 has, and we keep its record
layout so that records built by either project read in the other:

  image/encoded, image/filename, image/format, image/height, image/width,
  image/channels                      as the semantic schema (records.py);
  image/segmentation/class/encoded    the panoptic map as raw int32 bytes
                                      (row-major [H, W], little endian),
  image/segmentation/class/format     'raw';

with ``panoptic = category * label_divisor + instance``. Our extension, for
datasets too large for raw maps (Mapillary Vistas: a raw map of a 12 MP
photo is 48 MB), not read by deeplab2: format 'panoptic_png', the map as
an RGB PNG with ``panoptic = R + 256 G + 256^2 B`` (COCO's id encoding),
about 100x smaller on street scenes (CamVid-size maps: 0.69 MB raw, 7 KB).
In both: ``instance`` 0 is
stuff (or a thing region without instance, e.g. a crowd), the ignore label's
pixels are ``ignore_label * label_divisor``. ``label_divisor`` is a property
of the dataset (its descriptor's ``panoptic_label_divisor``: Cityscapes 1000
and COCO 256 as deeplab2; see ``get_layout``), not of the record.
"""
import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import records

RAW_FORMAT = 'raw'
# Not 'png': a semantic record's class PNG must not read as a panoptic map.
PNG_FORMAT = 'panoptic_png'
LABEL_FORMATS = (RAW_FORMAT, PNG_FORMAT)


@dataclasses.dataclass(frozen=True)
class PanopticLayout:
  """How a dataset's panoptic ids are laid out and which classes are things."""
  label_divisor: int
  thing_classes: Tuple[int, ...]
  ignore_label: int = 255

  def __post_init__(self):
    object.__setattr__(self, 'thing_classes',
                       tuple(int(c) for c in self.thing_classes))
    if self.label_divisor < 1:
      raise ValueError('label_divisor must be >= 1; got %r.'
                       % (self.label_divisor,))


def get_layout(dataset, thing_classes=None, label_divisor=None):
  """The PanopticLayout of a dataset (name, JSON path or descriptor).

  ``thing_classes`` / ``label_divisor`` (script flags) override the
  descriptor's ``thing_classes`` / ``panoptic_label_divisor``; a dataset
  without them needs both. Thing classes are checked against the dataset's
  class ids.
  """
  descriptor = datasets_info.get_descriptor(dataset)
  things = (tuple(int(c) for c in thing_classes) if thing_classes
            else descriptor.thing_classes)
  divisor = (int(label_divisor) if label_divisor is not None
             else descriptor.panoptic_label_divisor)
  if not things or divisor is None:
    raise ValueError(
        'dataset %r has no panoptic layout (%s missing); registered: %s. '
        'Give the thing class ids and the label divisor (--thing_classes, '
        '--panoptic_label_divisor), or use the dataset JSON a panoptic '
        'converter wrote beside its records.'
        % (descriptor.name, ' and '.join(
            n for n, v in (('thing_classes', things),
                           ('panoptic_label_divisor', divisor)) if not v),
           ', '.join(sorted(PANOPTIC_LAYOUTS))))
  bad = [c for c in things if not 0 <= c < descriptor.num_classes
         or c == descriptor.ignore_label]
  if bad:
    raise ValueError('thing classes %s are not class ids of dataset %r '
                     '(0..%d, ignore label %d).' % (
                         bad, descriptor.name, descriptor.num_classes - 1,
                         descriptor.ignore_label))
  return PanopticLayout(label_divisor=divisor, thing_classes=things,
                        ignore_label=descriptor.ignore_label)


# The registered panoptic datasets (descriptors with thing classes and a
# label divisor: Cityscapes 1000 and COCO 256 as deeplab2).
PANOPTIC_LAYOUTS = {name: get_layout(d)
                    for name, d in datasets_info.DATASETS.items()
                    if d.thing_classes and d.panoptic_label_divisor}
CITYSCAPES_PANOPTIC = PANOPTIC_LAYOUTS['cityscapes']


def encode_panoptic(category, instance, label_divisor):
  """int32 [H, W] ``category * label_divisor + instance`` (checked ranges)."""
  category = np.asarray(category, np.int64)
  instance = np.asarray(instance, np.int64)
  if category.shape != instance.shape or category.ndim != 2:
    raise ValueError('category and instance must be [H, W] maps of one shape; '
                     'got %s and %s.' % (category.shape, instance.shape))
  if instance.min(initial=0) < 0 or instance.max(initial=0) >= label_divisor:
    raise ValueError('instance ids must lie in [0, label_divisor=%d); got '
                     '[%d, %d].' % (label_divisor, instance.min(),
                                    instance.max()))
  if category.min(initial=0) < 0:
    raise ValueError('category ids must be >= 0; got %d.' % category.min())
  panoptic = category * label_divisor + instance
  if panoptic.max(initial=0) > np.iinfo(np.int32).max:
    raise ValueError('panoptic ids overflow int32 (largest %d).'
                     % panoptic.max())
  return panoptic.astype(np.int32)


def panoptic_to_example(image_data, filename, height, width, panoptic,
                        image_format='png', channels=3,
                        label_format=RAW_FORMAT):
  """A tf.train.Example in the panoptic layout (see the module doc)."""
  panoptic = np.asarray(panoptic)
  if panoptic.shape != (height, width):
    raise ValueError('panoptic map of %s is %s, the image %dx%d.'
                     % (filename, panoptic.shape, height, width))
  if label_format == RAW_FORMAT:
    encoded = panoptic.astype('<i4').tobytes()
  elif label_format == PNG_FORMAT:
    encoded = encode_panoptic_png(panoptic)
  else:
    raise ValueError('label_format must be one of %s; got %r.'
                     % (', '.join(LABEL_FORMATS), label_format))
  return records.image_seg_to_example(
      image_data, filename, height, width, encoded, image_format=image_format,
      label_format=label_format, channels=channels)


def encode_panoptic_png(panoptic):
  """int [H, W] panoptic ids (< 2^24) -> RGB PNG bytes, id = R + 256 G + 256^2 B."""
  panoptic = np.asarray(panoptic, np.int64)
  if panoptic.min(initial=0) < 0 or panoptic.max(initial=0) >= 1 << 24:
    raise ValueError('PNG panoptic maps hold ids in [0, 2^24); got [%d, %d].'
                     % (panoptic.min(), panoptic.max()))
  rgb = np.stack([panoptic % 256, panoptic // 256 % 256, panoptic // 65536],
                 axis=-1).astype(np.uint8)
  return tf.io.encode_png(rgb).numpy()


_FEATURES = {
    records.IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string),
    records.IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string,
                                                  default_value=''),
    records.IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    records.IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    records.LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string,
                                                 default_value=''),
    records.LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string,
                                                default_value=RAW_FORMAT),
}


def parse_panoptic_example(serialized, label_divisor) -> Dict[str, tf.Tensor]:
  """One record -> {'image' uint8 [H, W, 3], 'category', 'instance' int32 [H, W], 'filename'}.

  A record whose map is not raw int32 or an RGB PNG of the image's size
  fails with an InvalidArgumentError naming the file.
  """
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  filename = parsed[records.IMAGE_FILENAME]
  image = tf.io.decode_image(parsed[records.IMAGE_ENCODED], channels=3,
                             expand_animations=False)
  image.set_shape([None, None, 3])
  shape = tf.shape(image)[:2]
  encoded = parsed[records.LABEL_ENCODED]
  label_format = parsed[records.LABEL_FORMAT]
  known = tf.reduce_any(tf.equal(label_format, LABEL_FORMATS))
  check_format = tf.debugging.Assert(
      known, ['panoptic record', filename, 'has label format', label_format,
              'expected one of', ', '.join(LABEL_FORMATS)])

  def from_raw():
    # Checked before decode_raw, whose own error would not name the record.
    fits = tf.equal(tf.strings.length(encoded), 4 * shape[0] * shape[1])
    check = tf.debugging.Assert(
        fits, ['panoptic record', filename, 'needs a raw int32 map of the '
               'image size', shape, 'got', tf.strings.length(encoded),
               'bytes'])
    with tf.control_dependencies([check]):
      flat = tf.io.decode_raw(encoded, tf.int32, little_endian=True)
      return tf.reshape(flat, shape)

  def from_png():
    rgb = tf.cast(tf.io.decode_png(encoded, channels=3), tf.int32)
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(rgb)[:2], shape)),
        ['panoptic record', filename, 'has a', tf.shape(rgb)[:2],
         'PNG map for a', shape, 'image'])
    with tf.control_dependencies([check]):
      return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]

  with tf.control_dependencies([check_format]):
    panoptic = tf.cond(tf.equal(label_format, PNG_FORMAT), from_png,
                       from_raw)
  return {'image': image, 'filename': filename,
          'category': panoptic // label_divisor,
          'instance': panoptic % label_divisor}


def read_panoptic_records(path, label_divisor, limit: Optional[int] = None):
  """Eager helper (tests, tools): numpy dicts of the records of one file."""
  out = []
  for index, serialized in enumerate(tf.data.TFRecordDataset(path)):
    if limit is not None and index >= limit:
      break
    sample = parse_panoptic_example(serialized, label_divisor)
    out.append({k: v.numpy() for k, v in sample.items()})
  return out
