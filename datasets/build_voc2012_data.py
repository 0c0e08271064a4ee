r"""Converts PASCAL VOC 2012 (and optionally SBD ``train_aug``) to TFRecords.

Input layout (the original script's defaults, relative to the working folder):

  VOCdevkit/VOC2012/JPEGImages/*.jpg
  VOCdevkit/VOC2012/SegmentationClassRaw/*.png   (remove_gt_colormap.py output)
  VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Every ``*.txt`` list in --list_folder becomes one split (train 1464,
val 1449, trainval 2913 images), 4 shards each, as the original.

``train_aug`` (10582 images, the DeepLab papers' training set) is built when
--sbd_dir points at the SBD release's ``benchmark_RELEASE/dataset`` folder
(``cls/*.mat``, ``img/*.jpg``, ``train.txt``, ``val.txt``): the union of SBD
train, SBD val and VOC train, minus VOC val, sorted by name. Images come from
--image_folder (every SBD image is a VOC2012 JPEGImages image; SBD's own
``img/`` is the fallback). Labels: the VOC SegmentationClassRaw PNG when the
image has one (VOC annotations are finer and mark boundaries with 255), else
``GTcls.Segmentation`` of the SBD ``cls/NAME.mat`` file, encoded as PNG. SBD
needs scipy (``pip install -e .[sbd]``).

  python datasets/remove_gt_colormap.py \
    --original_gt_folder=VOCdevkit/VOC2012/SegmentationClass \
    --output_dir=VOCdevkit/VOC2012/SegmentationClassRaw
  python datasets/build_voc2012_data.py --output_dir=tfrecord \
    --sbd_dir=benchmark_RELEASE/dataset
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

flags.DEFINE_string('image_folder', './VOCdevkit/VOC2012/JPEGImages',
                    'Folder containing images.')
flags.DEFINE_string('semantic_segmentation_folder',
                    './VOCdevkit/VOC2012/SegmentationClassRaw',
                    'Folder containing the raw (class index, no colour map) '
                    'segmentation PNGs.')
flags.DEFINE_string('list_folder', './VOCdevkit/VOC2012/ImageSets/Segmentation',
                    'Folder containing the split lists (one image name per '
                    'line); every *.txt in it is converted.')
flags.DEFINE_string('output_dir', './tfrecord',
                    'Folder for the TFRecord shards (created if missing).')
flags.DEFINE_enum('image_format', 'jpg', ['jpg', 'jpeg', 'png'],
                  'Image file extension in --image_folder. (The original '
                  'build_data flag defaults to png, but the original '
                  'download_and_convert_voc2012.sh passes jpg, which VOC '
                  'needs.) image/format is written from the file contents.')
flags.DEFINE_enum('label_format', 'png', ['png'],
                  'Segmentation label file extension.')
flags.DEFINE_integer('num_shards', 4, 'Shards per split (original: 4).',
                     lower_bound=1)
flags.DEFINE_list('splits', [], 'Splits to convert (list names without .txt, '
                  'plus train_aug). Default: every *.txt in --list_folder, '
                  'and train_aug when --sbd_dir is set.')
flags.DEFINE_string('sbd_dir', '', 'SBD benchmark_RELEASE/dataset folder '
                    '(cls/, img/, train.txt, val.txt). When set, the '
                    'train_aug split is also written. Empty: no train_aug.')
flags.DEFINE_string('train_aug_name', 'train_aug',
                    'Split name of the VOC+SBD training set.')
flags.DEFINE_integer('num_classes', 21, 'Classes (20 + background).',
                     lower_bound=1)
flags.DEFINE_integer('ignore_label', 255, 'Ignore label (object boundaries '
                     'and "difficult" regions in VOC).',
                     lower_bound=0, upper_bound=255)
flags.DEFINE_bool('skip_bad', False, 'Skip bad pairs, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images, and at the end.', lower_bound=1)
flags.DEFINE_integer('num_threads', 2, 'Threads decoding and checking images.',
                     lower_bound=1)

TRAIN_AUG_SIZE = 10582


def read_names(path):
  """Image names of a VOC/SBD list file (one per line)."""
  if not tf.io.gfile.exists(path):
    raise convert.ConversionError(path, 'list file not found')
  with tf.io.gfile.GFile(path, 'r') as f:
    names = [line.split()[0] for line in f.read().splitlines() if line.strip()]
  if not names:
    raise convert.ConversionError(path, 'list is empty')
  return names


def voc_samples(names, image_folder, label_folder, image_ext='jpg',
                label_ext='png'):
  return [convert.Sample(os.path.join(image_folder, '%s.%s' % (n, image_ext)),
                         os.path.join(label_folder, '%s.%s' % (n, label_ext)),
                         n) for n in names]


def train_aug_samples(list_folder, sbd_dir, image_folder, label_folder,
                      image_ext='jpg', label_ext='png', split_name='train_aug'):
  """The train_aug pairs: (SBD train + SBD val + VOC train) - VOC val."""
  voc_train = read_names(os.path.join(list_folder, 'train.txt'))
  voc_val = set(read_names(os.path.join(list_folder, 'val.txt')))
  sbd_train = read_names(os.path.join(sbd_dir, 'train.txt'))
  sbd_val = read_names(os.path.join(sbd_dir, 'val.txt'))
  names = sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - voc_val)
  samples = []
  from_voc = 0
  for name in names:
    image = os.path.join(image_folder, '%s.%s' % (name, image_ext))
    if not tf.io.gfile.exists(image):
      fallback = os.path.join(sbd_dir, 'img', name + '.jpg')
      if tf.io.gfile.exists(fallback):
        image = fallback
    label = os.path.join(label_folder, '%s.%s' % (name, label_ext))
    if tf.io.gfile.exists(label):
      from_voc += 1
    else:
      label = os.path.join(sbd_dir, 'cls', name + '.mat')
    samples.append(convert.Sample(image, label, name))
  logging.info('%s: %d images (%d with VOC labels, %d with SBD labels)',
               split_name, len(samples), from_voc, len(samples) - from_voc)
  return samples


def sbd_label_loader(path):
  """Labels ending in .mat are read as SBD GTcls; others as PNG files."""
  if path.endswith('.mat'):
    return convert.load_sbd_mat(path)
  return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  if FLAGS.sbd_dir:
    try:
      import scipy.io  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      sys.stderr.write('ERROR: --sbd_dir needs scipy to read the SBD .mat '
                       'files: pip install scipy (or pip install -e .[sbd])\n')
      return 1
  list_names = sorted(
      os.path.basename(p)[:-len('.txt')]
      for p in tf.io.gfile.glob(os.path.join(FLAGS.list_folder, '*.txt')))
  splits = list(FLAGS.splits) or (
      list_names + ([FLAGS.train_aug_name] if FLAGS.sbd_dir else []))
  if not splits:
    sys.stderr.write('ERROR: %s: no *.txt split lists found\n' %
                     FLAGS.list_folder)
    return 1
  for split in splits:
    try:
      if split == FLAGS.train_aug_name and FLAGS.sbd_dir:
        samples = train_aug_samples(
            FLAGS.list_folder, FLAGS.sbd_dir, FLAGS.image_folder,
            FLAGS.semantic_segmentation_folder, FLAGS.image_format,
            FLAGS.label_format, split)
        if len(samples) != TRAIN_AUG_SIZE:
          logging.warning('%s has %d images, not the usual %d: check the VOC '
                          'and SBD lists', split, len(samples), TRAIN_AUG_SIZE)
      else:
        samples = voc_samples(
            read_names(os.path.join(FLAGS.list_folder, split + '.txt')),
            FLAGS.image_folder, FLAGS.semantic_segmentation_folder,
            FLAGS.image_format, FLAGS.label_format)
    except convert.ConversionError as e:
      sys.stderr.write('ERROR: %s\n' % e)
      return 1
    settings = convert.ConvertSettings(
        output_dir=FLAGS.output_dir, split_name=split,
        num_shards=FLAGS.num_shards, num_classes=FLAGS.num_classes,
        ignore_label=FLAGS.ignore_label, skip_bad=FLAGS.skip_bad,
        log_every=FLAGS.log_every, num_threads=FLAGS.num_threads,
        label_loader=sbd_label_loader)
    code, _ = convert.run_split(samples, settings)
    if code:
      return code
  return 0


if __name__ == '__main__':
  app.run(main)
