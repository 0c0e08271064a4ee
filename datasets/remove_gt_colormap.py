r"""Removes the colour map from palette (colour-mapped) label PNGs.

PASCAL VOC's ``SegmentationClass/*.png`` are palette PNGs: each pixel stores
a palette index (the class, 255 = boundary) and the palette gives it a
colour. Decoders return the colours, so training needs the indices written
as plain single-channel PNGs, as the original ``remove_gt_colormap.py`` does.
Already-grey PNGs are copied as their values; colour (RGB/RGBA) PNGs are an
error, since their class indices cannot be recovered.

No PIL is needed: the palette PNG is read as a grey PNG of the same bit depth
(its samples are the indices) by rewriting its header.

  python datasets/remove_gt_colormap.py \
    --original_gt_folder=./VOCdevkit/VOC2012/SegmentationClass \
    --output_dir=./VOCdevkit/VOC2012/SegmentationClassRaw
"""
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from deeplab_tf.data import convert

FLAGS = flags.FLAGS

flags.DEFINE_string('original_gt_folder',
                    './VOCdevkit/VOC2012/SegmentationClass',
                    'Folder of the original (palette) ground-truth PNGs.')
flags.DEFINE_string('segmentation_format', 'png',
                    'File extension of the annotations.')
flags.DEFINE_string('output_dir', './VOCdevkit/VOC2012/SegmentationClassRaw',
                    'Folder for the raw (class index) annotations, same file '
                    'names (created if missing).')
flags.DEFINE_bool('skip_bad', False, 'Skip unreadable / non-palette files, '
                  'count and list them, instead of stopping at the first '
                  'with exit status 1.')
flags.DEFINE_integer('log_every', 500, 'Log progress every this many files.',
                     lower_bound=1)


def remove_colormap(in_path, out_path):
  """Writes the palette indices of ``in_path`` as a grey PNG at ``out_path``."""
  with tf.io.gfile.GFile(in_path, 'rb') as f:
    data = f.read()
  indices = convert.palette_png_to_indices(data)
  convert.write_label_png(indices, out_path)
  return indices


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  pattern = os.path.join(FLAGS.original_gt_folder,
                         '*.' + FLAGS.segmentation_format)
  annotations = sorted(tf.io.gfile.glob(pattern))
  if not annotations:
    sys.stderr.write('ERROR: %s: no annotations match\n' % pattern)
    return 1
  tf.io.gfile.makedirs(FLAGS.output_dir)
  skipped = []
  start = time.time()
  for i, path in enumerate(annotations, 1):
    out_path = os.path.join(FLAGS.output_dir, os.path.basename(path))
    try:
      remove_colormap(path, out_path)
    except (ValueError, OSError, tf.errors.OpError) as e:
      reason = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
      if not FLAGS.skip_bad:
        sys.stderr.write('ERROR: %s: %s\n' % (path, reason))
        return 1
      logging.warning('skipping %s: %s', path, reason)
      skipped.append((path, reason))
    if i % FLAGS.log_every == 0 or i == len(annotations):
      rate = i / max(time.time() - start, 1e-9)
      logging.info('%d/%d files, %.1f files/s, ETA %.0f s', i,
                   len(annotations), rate, (len(annotations) - i) / rate)
  for path, reason in skipped:
    sys.stderr.write('skipped %s: %s\n' % (path, reason))
  print('summary: written=%d skipped=%d output=%s' % (
      len(annotations) - len(skipped), len(skipped), FLAGS.output_dir))
  return 0


if __name__ == '__main__':
  app.run(main)
