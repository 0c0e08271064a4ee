r"""Converts Cityscapes (fine annotations, trainIds) to TFRecords.

Input layout (--cityscapes_root):

  leftImg8bit/{train,val,test}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
  gtFine/{train,val,test}/CITY/CITY_SEQ_FRAME_gtFine_labelTrainIds.png

Splits ``train_fine`` (2975 images) and ``val_fine`` (500), 10 shards each,
images sorted by path, ``image/filename`` = CITY_SEQ_FRAME: all as the
original script. ``test_fine`` (1525, no labels) is also accepted.

``*_gtFine_labelTrainIds.png`` (19 classes, 255 = ignore) is what
cityscapesScripts' createTrainIdLabelImgs.py makes. When one is absent it is
created here (and, with --write_label_train_ids, saved beside the sources as
that script does) from ``*_gtFine_labelIds.png`` with the Cityscapes
id -> trainId table, or else from ``*_gtFine_polygons.json`` by filling the
polygons in file order with cv2.fillPoly (may differ from the PIL-drawn
official files by a pixel along some polygon edges).

  python datasets/build_cityscapes_data.py --cityscapes_root=./cityscapes \
    --output_dir=./cityscapes/tfrecord
"""
import glob
import os
import sys

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

flags.DEFINE_string('cityscapes_root', './cityscapes',
                    'Cityscapes dataset root folder (holding leftImg8bit/ '
                    'and gtFine/).')
flags.DEFINE_string('output_dir', './tfrecord',
                    'Folder for the TFRecord shards (created if missing).')
flags.DEFINE_list('splits', ['train_fine', 'val_fine'],
                  'Splits to convert: train_fine, val_fine, test_fine '
                  '(unlabelled). The original converts train_fine and '
                  'val_fine.')
flags.DEFINE_integer('num_shards', 10, 'Shards per split (original: 10).',
                     lower_bound=1)
flags.DEFINE_bool('write_label_train_ids', True, 'Save the '
                  '*_gtFine_labelTrainIds.png files created from labelIds / '
                  'polygons beside the sources (as createTrainIdLabelImgs.py '
                  'does); false: only use them for the records.')
flags.DEFINE_bool('skip_bad', False, 'Skip bad pairs, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images, and at the end.', lower_bound=1)
flags.DEFINE_integer('num_threads', 2, 'Threads decoding and checking images.',
                     lower_bound=1)

IMAGE_SUFFIX = '_leftImg8bit.png'
TRAIN_IDS_SUFFIX = '_gtFine_labelTrainIds.png'
LABEL_IDS_SUFFIX = '_gtFine_labelIds.png'
POLYGONS_SUFFIX = '_gtFine_polygons.json'


def split_samples(root, split):
  """Sorted (image, trainIds label, name) samples of a ``*_fine`` split."""
  if not split.endswith('_fine'):
    raise convert.ConversionError(None, 'unsupported split %r: expected '
                                  'train_fine, val_fine or test_fine' % split)
  folder = split[:-len('_fine')]
  pattern = os.path.join(root, 'leftImg8bit', folder, '*', '*' + IMAGE_SUFFIX)
  images = sorted(glob.glob(pattern))
  if not images:
    raise convert.ConversionError(pattern, 'no images match')
  samples = []
  for image in images:
    name = os.path.basename(image)[:-len(IMAGE_SUFFIX)]
    label = None
    if folder != 'test':
      city = os.path.basename(os.path.dirname(image))
      label = os.path.join(root, 'gtFine', folder, city, name + TRAIN_IDS_SUFFIX)
    samples.append(convert.Sample(image, label, name))
  return samples


def make_train_ids(train_ids_path):
  """trainIds for a missing ``*_labelTrainIds.png``, from labelIds or polygons."""
  stem = train_ids_path[:-len(TRAIN_IDS_SUFFIX)]
  ids_path = stem + LABEL_IDS_SUFFIX
  json_path = stem + POLYGONS_SUFFIX
  if tf.io.gfile.exists(ids_path):
    with tf.io.gfile.GFile(ids_path, 'rb') as f:
      data = f.read()
    try:
      label_ids = tf.io.decode_png(data, channels=1).numpy()[..., 0]
    except tf.errors.OpError:
      raise convert.ConversionError(ids_path, 'cannot decode labelIds PNG '
                                    '(corrupt or truncated?)') from None
    try:
      return convert.cityscapes_label_ids_to_train_ids(label_ids)
    except ValueError as e:
      raise convert.ConversionError(ids_path, str(e)) from None
  if tf.io.gfile.exists(json_path):
    try:
      return convert.rasterize_cityscapes_polygons(
          convert.load_cityscapes_polygons(json_path))
    except (ValueError, KeyError, TypeError) as e:
      raise convert.ConversionError(json_path, 'cannot rasterise polygons: '
                                    '%s' % e) from None
  raise convert.ConversionError(train_ids_path, 'label file not found, and '
                                'neither %s nor %s exists to create it from' % (
                                    os.path.basename(ids_path),
                                    os.path.basename(json_path)))


def label_loader(write_files):
  """A ConvertSettings.label_loader creating missing trainIds files."""
  def load(path):
    if tf.io.gfile.exists(path):
      return None
    train_ids = make_train_ids(path)
    if write_files:
      convert.write_label_png(np.asarray(train_ids, np.uint8), path)
    return train_ids
  return load


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  for split in FLAGS.splits:
    try:
      samples = split_samples(FLAGS.cityscapes_root, split)
    except convert.ConversionError as e:
      sys.stderr.write('ERROR: %s\n' % e)
      return 1
    settings = convert.ConvertSettings(
        output_dir=FLAGS.output_dir, split_name=split,
        num_shards=FLAGS.num_shards,
        num_classes=convert.CITYSCAPES_NUM_CLASSES, ignore_label=255,
        skip_bad=FLAGS.skip_bad, log_every=FLAGS.log_every,
        num_threads=FLAGS.num_threads,
        label_loader=label_loader(FLAGS.write_label_train_ids))
    code, _ = convert.run_split(samples, settings)
    if code:
      return code
  return 0


if __name__ == '__main__':
  app.run(main)
