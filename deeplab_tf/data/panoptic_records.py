"""Panoptic TFRecords: image + one int32 panoptic map per record.

The original research/deeplab has no panoptic training data path (DeeperLab
was not released there); google-research/deeplab2 has, and we keep its record
layout so that records built by either project read in the other:

  image/encoded, image/filename, image/format, image/height, image/width,
  image/channels                      as the semantic schema (records.py);
  image/segmentation/class/encoded    the panoptic map as raw int32 bytes
                                      (row-major [H, W], little endian),
  image/segmentation/class/format     'raw';

with ``panoptic = category * label_divisor + instance``: ``instance`` 0 is
stuff (or a thing region without instance, e.g. a crowd), the ignore label's
pixels are ``ignore_label * label_divisor``. ``label_divisor`` is a property
of the dataset (Cityscapes 1000 as deeplab2; see ``PANOPTIC_LAYOUTS``), not
of the record.
"""
import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.data import records

RAW_FORMAT = 'raw'


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


# Cityscapes: trainIds 0..18; things are person .. bicycle (trainIds 11..18),
# the classes with instance annotations in gtFine (cityscapesScripts
# labels.py, hasInstances); label_divisor 1000 as deeplab2's Cityscapes data.
CITYSCAPES_PANOPTIC = PanopticLayout(label_divisor=1000,
                                     thing_classes=tuple(range(11, 19)))
PANOPTIC_LAYOUTS = {'cityscapes': CITYSCAPES_PANOPTIC,
                    'cityscapes_panoptic': CITYSCAPES_PANOPTIC}


def get_layout(dataset_name, thing_classes=None, label_divisor=None):
  """The dataset's PanopticLayout, with optional overrides (custom datasets)."""
  base = PANOPTIC_LAYOUTS.get(dataset_name)
  if base is None and (thing_classes is None or label_divisor is None):
    raise ValueError(
        'dataset %r has no panoptic layout; known: %s. For another dataset '
        'give both thing_classes and label_divisor.'
        % (dataset_name, ', '.join(sorted(PANOPTIC_LAYOUTS))))
  base = base or PanopticLayout(label_divisor=int(label_divisor),
                                thing_classes=tuple(thing_classes))
  return dataclasses.replace(
      base,
      label_divisor=base.label_divisor if label_divisor is None
      else int(label_divisor),
      thing_classes=base.thing_classes if thing_classes is None
      else tuple(thing_classes))


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
                        image_format='png', channels=3):
  """A tf.train.Example in the deeplab2 panoptic layout (see the module doc)."""
  panoptic = np.asarray(panoptic)
  if panoptic.shape != (height, width):
    raise ValueError('panoptic map of %s is %s, the image %dx%d.'
                     % (filename, panoptic.shape, height, width))
  raw = panoptic.astype('<i4').tobytes()
  return records.image_seg_to_example(
      image_data, filename, height, width, raw, image_format=image_format,
      label_format=RAW_FORMAT, channels=channels)


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

  A record whose map is not raw int32 of the image's size fails with an
  InvalidArgumentError naming the file.
  """
  parsed = tf.io.parse_single_example(serialized, _FEATURES)
  filename = parsed[records.IMAGE_FILENAME]
  image = tf.io.decode_image(parsed[records.IMAGE_ENCODED], channels=3,
                             expand_animations=False)
  image.set_shape([None, None, 3])
  shape = tf.shape(image)[:2]
  encoded = parsed[records.LABEL_ENCODED]
  is_raw = tf.equal(parsed[records.LABEL_FORMAT], RAW_FORMAT)
  # Checked before decode_raw, whose own error would not name the record.
  fits = tf.equal(tf.strings.length(encoded), 4 * shape[0] * shape[1])
  check = tf.debugging.Assert(
      tf.logical_and(is_raw, fits),
      ['panoptic record', filename, 'needs a raw int32 map of the image size',
       shape, 'got format', parsed[records.LABEL_FORMAT], 'of',
       tf.strings.length(encoded), 'bytes'])
  with tf.control_dependencies([check]):
    flat = tf.io.decode_raw(encoded, tf.int32, little_endian=True)
    panoptic = tf.reshape(flat, shape)
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
