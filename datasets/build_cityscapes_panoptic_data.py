r"""Converts Cityscapes panoptic annotations (gtFine instanceIds) to TFRecords.

Input layout (--cityscapes_root), as for build_cityscapes_data.py:

  leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
  gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_instanceIds.png

``*_instanceIds.png`` (16-bit, cityscapesScripts' json2instanceImg.py) holds
per pixel either a labelId (< 1000: stuff, or a thing region without an
instance, e.g. a crowd of cars) or labelId * 1000 + k for the k-th instance
(k from 0). Here:

  category = the trainId of the labelId (255 for labels without one),
  instance = k + 1 for instance pixels, 0 otherwise (0 means "no instance"),

written as ``category * 1000 + instance`` in the panoptic record layout of
deeplab_tf.data.panoptic_records (google-research/deeplab2's). Splits
``train_fine`` (2975 images) and ``val_fine`` (500), 10 shards each, images
sorted by path, ``image/filename`` = CITY_SEQ_FRAME.

  python datasets/build_cityscapes_panoptic_data.py \
    --cityscapes_root=./cityscapes --output_dir=./cityscapes/panoptic_tfrecord
"""
import glob
import os
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from deeplab_tf.data import convert
from deeplab_tf.data.convert import panoptic as panoptic_convert
from deeplab_tf.data import panoptic_records

FLAGS = flags.FLAGS
flags.DEFINE_string('cityscapes_root', './cityscapes',
                    'Cityscapes root folder (holding leftImg8bit/ and gtFine/).')
flags.DEFINE_string('output_dir', './panoptic_tfrecord',
                    'Folder for the panoptic TFRecord shards (created).')
flags.DEFINE_list('splits', ['train_fine', 'val_fine'],
                  'Splits to convert: train_fine and/or val_fine.')
flags.DEFINE_integer('num_shards', 10, 'Shards per split (as the semantic '
                     'converter: 10).', lower_bound=1)
flags.DEFINE_bool('skip_bad', False, 'Skip bad images, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images.', lower_bound=1)

IMAGE_SUFFIX = '_leftImg8bit.png'
INSTANCE_IDS_SUFFIX = '_gtFine_instanceIds.png'
LABEL_DIVISOR = panoptic_records.CITYSCAPES_PANOPTIC.label_divisor


def instance_ids_to_panoptic(instance_ids):
  """Cityscapes instanceIds [H, W] -> (category trainIds, instance) int32 maps."""
  ids = np.asarray(instance_ids, np.int64)
  label_ids = np.where(ids >= 1000, ids // 1000, ids)
  if label_ids.min(initial=0) < 0 or label_ids.max(initial=0) > 33:
    raise ValueError('values are not Cityscapes instanceIds (labelIds 0..33, '
                     'or labelId * 1000 + k); found label ids up to %d'
                     % label_ids.max())
  category = convert.cityscapes_id_to_train_id_lut()[label_ids].astype(
      np.int32)
  instance = np.where(ids >= 1000, ids % 1000 + 1, 0).astype(np.int32)
  # An instance of a label without trainId (e.g. caravan) is ignored whole.
  instance[category == 255] = 0
  return category, instance


def _load(path):
  def load():
    data = convert.read_file_bytes(path, 'instanceIds')
    try:
      ids = tf.io.decode_png(data, channels=1, dtype=tf.uint16).numpy()[..., 0]
    except tf.errors.OpError:
      raise convert.ConversionError(path, 'cannot decode the instanceIds PNG '
                                    '(16-bit grey expected)') from None
    try:
      return instance_ids_to_panoptic(ids)
    except ValueError as e:
      raise convert.ConversionError(path, str(e)) from None
  return load


def split_samples(root, split):
  """Sorted PanopticSamples of a ``*_fine`` split."""
  if split not in ('train_fine', 'val_fine'):
    raise convert.ConversionError(None, 'unsupported split %r: expected '
                                  'train_fine or val_fine' % split)
  folder = split[:-len('_fine')]
  pattern = os.path.join(root, 'leftImg8bit', folder, '*', '*' + IMAGE_SUFFIX)
  images = sorted(glob.glob(pattern))
  if not images:
    raise convert.ConversionError(pattern, 'no images match')
  samples = []
  for image in images:
    name = os.path.basename(image)[:-len(IMAGE_SUFFIX)]
    city = os.path.basename(os.path.dirname(image))
    label = os.path.join(root, 'gtFine', folder, city,
                         name + INSTANCE_IDS_SUFFIX)
    samples.append(panoptic_convert.PanopticSample(image, name, _load(label)))
  return samples


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  for split in FLAGS.splits:
    try:
      summary = panoptic_convert.write_panoptic_split(
          split_samples(FLAGS.cityscapes_root, split),
          panoptic_convert.PanopticConvertSettings(
              output_dir=FLAGS.output_dir, split_name=split,
              label_divisor=LABEL_DIVISOR,
              num_classes=convert.CITYSCAPES_NUM_CLASSES,
              num_shards=FLAGS.num_shards, skip_bad=FLAGS.skip_bad,
              log_every=FLAGS.log_every))
    except convert.ConversionError as e:
      sys.stderr.write('ERROR: %s\n' % e)
      return 1
    summary.report()
  return 0


if __name__ == '__main__':
  app.run(main)
