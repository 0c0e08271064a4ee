"""The original DeepLab TFRecord schema (research/deeplab/datasets/build_data.py).

One ``tf.train.Example`` per image with the keys below, so records written by
the original converters read here and ours read there. Shards are named
``<split>-<shard:05d>-of-<num_shards:05d>.tfrecord`` as the original scripts
name them.
"""
import dataclasses
from typing import Optional

import tensorflow as tf

IMAGE_ENCODED = 'image/encoded'
IMAGE_FILENAME = 'image/filename'
IMAGE_FORMAT = 'image/format'
IMAGE_HEIGHT = 'image/height'
IMAGE_WIDTH = 'image/width'
IMAGE_CHANNELS = 'image/channels'
LABEL_ENCODED = 'image/segmentation/class/encoded'
LABEL_FORMAT = 'image/segmentation/class/format'
# Not in the original schema: the sorted class ids present in the label,
# written by our converters so hard-class duplication needs no decoding. The
# original reader ignores unknown keys, so records stay compatible.
LABEL_CLASSES_PRESENT = 'image/segmentation/class/present'


def shard_filename(output_dir, split_name, shard_id, num_shards):
  """``<dir>/<split>-<shard:05d>-of-<num_shards:05d>.tfrecord`` (original naming)."""
  return tf.io.gfile.join(
      output_dir, '%s-%05d-of-%05d.tfrecord' % (split_name, shard_id,
                                                  num_shards))


def shard_pattern(record_dir, split_name):
  return tf.io.gfile.join(record_dir, '%s-*' % split_name)


def _bytes(value):
  if isinstance(value, str):
    value = value.encode('utf-8')
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64(values):
  if not isinstance(values, (list, tuple)):
    values = [values]
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def image_seg_to_example(image_data, filename, height, width, seg_data,
                         image_format='jpeg', label_format='png', channels=3,
                         classes_present=None):
  """A ``tf.train.Example`` with the original keys (``build_data.image_seg_to_tfexample``)."""
  feature = {
      IMAGE_ENCODED: _bytes(image_data),
      IMAGE_FILENAME: _bytes(filename),
      IMAGE_FORMAT: _bytes(image_format),
      IMAGE_HEIGHT: _int64(int(height)),
      IMAGE_WIDTH: _int64(int(width)),
      IMAGE_CHANNELS: _int64(int(channels)),
      LABEL_ENCODED: _bytes(seg_data),
      LABEL_FORMAT: _bytes(label_format),
  }
  if classes_present is not None:
    feature[LABEL_CLASSES_PRESENT] = _int64([int(c) for c in classes_present])
  return tf.train.Example(features=tf.train.Features(feature=feature))


FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=''),
    IMAGE_FILENAME: tf.io.FixedLenFeature((), tf.string, default_value=''),
    IMAGE_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value='jpeg'),
    IMAGE_HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    IMAGE_WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
    LABEL_ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=''),
    LABEL_FORMAT: tf.io.FixedLenFeature((), tf.string, default_value='png'),
    LABEL_CLASSES_PRESENT: tf.io.VarLenFeature(tf.int64),
}


@dataclasses.dataclass
class DecodedExample:
  image: tf.Tensor             # uint8 [H, W, 3]
  label: Optional[tf.Tensor]   # uint8 [H, W, 1] (None for test splits)
  filename: tf.Tensor          # string
  height: tf.Tensor
  width: tf.Tensor
  classes_present: tf.Tensor   # int64 [N] (empty when not recorded)


def parse_example(serialized, decode_label=True, channels=3):
  """Parses and decodes one record (graph-safe); checks label/image sizes match.

  A record whose label does not have the image's size raises
  InvalidArgumentError naming the file, never a silently wrong batch.
  """
  parsed = tf.io.parse_single_example(serialized, FEATURES)
  image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=channels,
                             expand_animations=False)
  image.set_shape([None, None, channels])
  label = None
  if decode_label:
    label = tf.io.decode_image(parsed[LABEL_ENCODED], channels=1,
                               expand_animations=False)
    label.set_shape([None, None, 1])
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(label)[:2]))
    check = tf.debugging.Assert(
        same, ['label size differs from image size in record',
               parsed[IMAGE_FILENAME], tf.shape(image), tf.shape(label)])
    with tf.control_dependencies([check]):
      label = tf.identity(label)
  return DecodedExample(
      image=image, label=label, filename=parsed[IMAGE_FILENAME],
      height=parsed[IMAGE_HEIGHT], width=parsed[IMAGE_WIDTH],
      classes_present=tf.sparse.to_dense(parsed[LABEL_CLASSES_PRESENT]))
