"""tf.data pipeline for DeeperLab: panoptic records -> augmented crops + targets.

The semantic pipeline (``pipeline.py``) unchanged, with one trick so that its
preprocessing (resize_to_range, random scale 0.5-2.0, pad, random crop, flip:
the original's ``preprocess_image_and_label``) moves the category and the
instance maps together: both travel as ONE label channel,

    label = instance * 256 + category,

which nearest-neighbour resizing, cropping and flipping keep intact, and
whose padding value, the ignore label (< 256), decodes to (ignore, instance
0). After preprocessing the channel is split again and the DeeperLab targets
(``panoptic_targets``: heatmaps, offsets, pixel weights) are computed on the
augmented crop, so every offset is in crop pixels.

Elements: 'image' float32 [B, H, W, 3] (0..255, mean-pixel padding),
'category' and 'instance' int32 [B, H, W] (the augmented groundtruth, for PQ),
'filename' string [B], 'height'/'width' int32 [B] (decoded image size), and
every key of ``panoptic_targets.panoptic_targets_tf``.
"""
import dataclasses
from typing import Optional

import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import panoptic_records
from deeplab_tf.data import panoptic_targets
from deeplab_tf.data import pipeline

# Category ids must stay below this to share the label channel with instances.
_CATEGORY_RADIX = 256


def decode_panoptic_record(serialized, label_divisor, num_classes=None,
                           ignore_label=255):
  """A record -> {'image', 'label' (instance * 256 + category) int32 [H, W, 1], 'filename'}.

  With ``num_classes``, a category outside [0, num_classes) that is not the
  ignore label fails, naming the record and the value.
  """
  sample = panoptic_records.parse_panoptic_example(serialized, label_divisor)
  category = sample['category']
  if num_classes is not None:
    category = pipeline._check_label_values(  # pylint: disable=protected-access
        category, sample['filename'], num_classes, ignore_label)
  label = sample['instance'] * _CATEGORY_RADIX + category
  return {'image': sample['image'], 'filename': sample['filename'],
          'label': label[..., tf.newaxis]}


def split_label(label):
  """The packed label [..., 1] -> (category, instance) int32 [...]."""
  label = tf.cast(label[..., 0], tf.int32)
  return label % _CATEGORY_RADIX, label // _CATEGORY_RADIX


def make_targets_fn(target_settings):
  """Per-sample: unpack the label and add the DeeperLab targets."""

  def add_targets(sample):
    sample = dict(sample)
    category, instance = split_label(sample.pop('label'))
    sample['category'] = category
    sample['instance'] = instance
    sample.update(panoptic_targets.panoptic_targets_tf(category, instance,
                                                       target_settings))
    return sample

  return add_targets


def build_panoptic_dataset(
    descriptor, split_name, record_dir, settings: pipeline.InputSettings,
    target_settings: panoptic_targets.PanopticTargetSettings, batch_size,
    is_training, input_context: Optional[tf.distribute.InputContext] = None,
    layout: Optional[panoptic_records.PanopticLayout] = None,
    deterministic=False, seed=None, num_epochs=None):
  """Batches of augmented panoptic crops with their DeeperLab targets.

  Args:
    descriptor: DatasetDescriptor or name (classes, ignore label, splits).
    split_name: split whose shards ``<split>-*`` are read.
    record_dir: folder of the panoptic shards (``panoptic_records`` layout).
    settings: pipeline.InputSettings (crop, scales, model variant, ...).
    target_settings: PanopticTargetSettings (thing classes, disk radius).
    batch_size: per input pipeline (per replica).
    is_training: augment, shuffle, repeat, drop the last partial batch.
    input_context: tf.distribute input context (shards per pipeline).
    layout: PanopticLayout; default the dataset's (``get_layout``), with
      the target settings' thing classes.
    deterministic, seed, num_epochs: as ``pipeline.build_dataset``.

  Returns:
    tf.data.Dataset of dicts (module docstring).
  """
  descriptor = datasets_info.get_descriptor(descriptor)
  descriptor.check_split(split_name)
  if not descriptor.has_labels(split_name):
    raise pipeline.InputError('Split %r of dataset %r has no labels; panoptic '
                              'records always carry one.'
                              % (split_name, descriptor.name))
  if descriptor.num_classes > _CATEGORY_RADIX - 1 or (
      descriptor.ignore_label >= _CATEGORY_RADIX):
    raise pipeline.InputError('panoptic pipeline needs class ids and the '
                              'ignore label below 256; dataset %r has %d '
                              'classes, ignore %d.' % (
                                  descriptor.name, descriptor.num_classes,
                                  descriptor.ignore_label))
  if target_settings.ignore_label != descriptor.ignore_label:
    raise pipeline.InputError(
        'target_settings.ignore_label %d differs from dataset %r\'s %d.'
        % (target_settings.ignore_label, descriptor.name,
           descriptor.ignore_label))
  if layout is None:
    layout = panoptic_records.get_layout(
        descriptor, thing_classes=target_settings.thing_classes or None)
  files = pipeline.list_shards(record_dir, split_name)
  seed = pipeline.pipeline_seed(seed, deterministic, input_context)
  elements = pipeline._read_records(  # pylint: disable=protected-access
      files, settings, is_training, input_context, deterministic, seed, None)
  # The packed label holds instance ids above 255: the semantic range check
  # runs on the category map while decoding instead.
  unchecked = dataclasses.replace(settings, check_label_values=False)
  return pipeline.finish_pipeline(
      elements,
      lambda r: decode_panoptic_record(
          r, layout.label_divisor, descriptor.num_classes if
          settings.check_label_values else None, descriptor.ignore_label),
      unchecked,
      descriptor.num_classes, descriptor.ignore_label, batch_size, is_training,
      deterministic=deterministic, seed=seed, num_epochs=num_epochs,
      post_fn=make_targets_fn(target_settings),
      ignore_padded_keys=('category', 'semantic'))
