r"""Converts a custom segmentation dataset (image folder + label folder + list).

The list has one ``IMAGE LABEL`` pair per line, paths relative to --root
(the format of ../shared/camvid/train.txt); a line with only ``IMAGE`` is an
unlabelled (test) image. Labels are single-channel PNGs of class indices.

Writes ``OUTPUT_DIR/SPLIT-0000N-of-0000M.tfrecord`` in the original DeepLab
schema (plus the class-presence key), checking every pair while writing.
Without --skip_bad the first bad pair stops the run: exit status 1 and
``ERROR: <file>: <reason>`` on stderr, and no complete-looking shard is left.
Ends with one ``summary: ...`` line on stdout (records written, skipped).

Example (CamVid):

  python datasets/build_custom_data.py --root=../shared/camvid \
    --list=../shared/camvid/train.txt --output_dir=workspace/records/camvid \
    --num_classes=11 --label_remap=11:255
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

flags.DEFINE_string('root', None, 'Dataset root folder: the paths in --list '
                    'are relative to it (absolute paths are kept).')
flags.DEFINE_string('list', None, 'Text file with one "IMAGE LABEL" pair per '
                    'line (blank lines and lines starting with # are skipped).')
flags.DEFINE_string('output_dir', None, 'Folder for the TFRecord shards '
                    '(created if missing).')
flags.DEFINE_string('split_name', None, 'Split name used in the shard names '
                    '(SPLIT-0000N-of-0000M.tfrecord). Default: the list file '
                    'name without extension, as the original VOC script does.')
flags.DEFINE_integer('num_shards', 4, 'Number of shards; images are spread '
                     'over them in list order, ceil(N / num_shards) per '
                     'shard, as the original converters do.', lower_bound=1)
flags.DEFINE_integer('num_classes', None, 'Number of classes: after the remap, '
                     'label values must be in [0, num_classes) or equal '
                     '--ignore_label.', lower_bound=1)
flags.DEFINE_integer('ignore_label', 255, 'Label value ignored in training '
                     'and evaluation; allowed in labels, never listed as a '
                     'present class.', lower_bound=0, upper_bound=255)
flags.DEFINE_multi_string('label_remap', [], 'SRC:DST label value remapping '
                          'applied before the checks, e.g. 11:255 (CamVid '
                          'void -> ignore). Repeatable; comma lists allowed. '
                          'Labels are re-encoded only when a remapped value '
                          'occurs; otherwise their original bytes are kept.')
flags.DEFINE_bool('skip_bad', False, 'Skip bad pairs (unreadable/corrupt '
                  'image, missing file, size mismatch, out-of-range label '
                  'values), count them and list them at the end, instead of '
                  'stopping at the first one with exit status 1.')
flags.DEFINE_integer('log_every', 100, 'Log progress (images/s, ETA) every '
                     'this many images, and at the end.', lower_bound=1)
flags.DEFINE_integer('num_threads', 2, 'Threads decoding and checking images '
                     '(records are still written in list order).',
                     lower_bound=1)

flags.mark_flags_as_required(['root', 'list', 'output_dir', 'num_classes'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    remap = convert.parse_label_remap(FLAGS.label_remap)
  except ValueError as e:
    raise app.UsageError(str(e))
  split_name = FLAGS.split_name or os.path.splitext(
      os.path.basename(FLAGS.list))[0]
  try:
    samples = convert.read_pair_list(FLAGS.list, FLAGS.root)
  except convert.ConversionError as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  logging.info('converting %d pairs from %s into %s (split %s, %d shards)',
               len(samples), FLAGS.list, FLAGS.output_dir, split_name,
               FLAGS.num_shards)
  settings = convert.ConvertSettings(
      output_dir=FLAGS.output_dir, split_name=split_name,
      num_shards=FLAGS.num_shards, num_classes=FLAGS.num_classes,
      ignore_label=FLAGS.ignore_label, label_remap=remap,
      skip_bad=FLAGS.skip_bad, log_every=FLAGS.log_every,
      num_threads=FLAGS.num_threads)
  code, _ = convert.run_split(samples, settings)
  return code


if __name__ == '__main__':
  app.run(main)
