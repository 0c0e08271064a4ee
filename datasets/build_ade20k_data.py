r"""Converts ADE20K (ADEChallengeData2016, the SceneParsing benchmark).

Input layout (the original script's defaults):

  ADE20K/ADEChallengeData2016/images/{training,validation}/NAME.jpg
  ADE20K/ADEChallengeData2016/annotations/{training,validation}/NAME.png

Splits ``train`` (20210 images) and ``val`` (2000), 4 shards each, in a
shuffled order, as the original. Labels: 0 = "other" (the ignore label of the
original dataset descriptor), 1..150 the classes (151 values in all).

Differences from the original, on purpose: the shuffle is seeded
(--shuffle_seed) so runs are reproducible, and ``image/filename`` is the
image name without extension (the original stored the full input path).

  python datasets/build_ade20k_data.py --output_dir=./ADE20K/tfrecord
"""
import os
import random
import sys

from absl import app
from absl import flags
import tensorflow as tf

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

flags.DEFINE_string('train_image_folder',
                    './ADE20K/ADEChallengeData2016/images/training',
                    'Folder containing training images (*.jpg).')
flags.DEFINE_string('train_image_label_folder',
                    './ADE20K/ADEChallengeData2016/annotations/training',
                    'Folder containing annotations for training images '
                    '(NAME.png for NAME.jpg).')
flags.DEFINE_string('val_image_folder',
                    './ADE20K/ADEChallengeData2016/images/validation',
                    'Folder containing validation images (*.jpg).')
flags.DEFINE_string('val_image_label_folder',
                    './ADE20K/ADEChallengeData2016/annotations/validation',
                    'Folder containing annotations for validation images.')
flags.DEFINE_string('output_dir', './ADE20K/tfrecord',
                    'Folder for the TFRecord shards (created if missing).')
flags.DEFINE_list('splits', ['train', 'val'], 'Splits to convert.')
flags.DEFINE_integer('num_shards', 4, 'Shards per split (original: 4).',
                     lower_bound=1)
flags.DEFINE_bool('shuffle', True, 'Shuffle the image order before sharding '
                  '(the original shuffles; false: sorted by name).')
flags.DEFINE_integer('shuffle_seed', 0, 'Seed of the shuffle (the original '
                     'used an unseeded shuffle).')
flags.DEFINE_integer('num_classes', 151, 'Label values must be below this '
                     '(150 classes + 0 "other").', lower_bound=1)
flags.DEFINE_integer('ignore_label', 0, 'Ignore label (original descriptor: '
                     '0).', lower_bound=0, upper_bound=255)
flags.DEFINE_bool('skip_bad', False, 'Skip bad pairs, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images, and at the end.', lower_bound=1)
flags.DEFINE_integer('num_threads', 2, 'Threads decoding and checking images.',
                     lower_bound=1)


def split_samples(image_folder, label_folder, shuffle=True, seed=0):
  """(image, label, name) samples: every *.jpg and its NAME.png annotation."""
  pattern = os.path.join(image_folder, '*.jpg')
  images = sorted(tf.io.gfile.glob(pattern))
  if not images:
    raise convert.ConversionError(pattern, 'no images match')
  if shuffle:
    random.Random(seed).shuffle(images)
  samples = []
  for image in images:
    name = os.path.basename(image).split('.')[0]
    samples.append(convert.Sample(
        image, os.path.join(label_folder, name + '.png'), name))
  return samples


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  folders = {
      'train': (FLAGS.train_image_folder, FLAGS.train_image_label_folder),
      'val': (FLAGS.val_image_folder, FLAGS.val_image_label_folder),
  }
  for split in FLAGS.splits:
    if split not in folders:
      raise app.UsageError('unknown split %r: expected train or val' % split)
    try:
      samples = split_samples(*folders[split], shuffle=FLAGS.shuffle,
                              seed=FLAGS.shuffle_seed)
    except convert.ConversionError as e:
      sys.stderr.write('ERROR: %s\n' % e)
      return 1
    settings = convert.ConvertSettings(
        output_dir=FLAGS.output_dir, split_name=split,
        num_shards=FLAGS.num_shards, num_classes=FLAGS.num_classes,
        ignore_label=FLAGS.ignore_label, skip_bad=FLAGS.skip_bad,
        log_every=FLAGS.log_every, num_threads=FLAGS.num_threads)
    code, _ = convert.run_split(samples, settings)
    if code:
      return code
  return 0


if __name__ == '__main__':
  app.run(main)
