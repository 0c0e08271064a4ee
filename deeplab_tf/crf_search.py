r"""Grid search of the CRF appearance kernel on a validation subset.

As in DeepLab v1 (arXiv:1412.7062, Sec. 4.1) and v2 (arXiv:1606.00915,
Sec. 4.1): the smoothness kernel is fixed (w2 = 3, sigma_gamma = 3) and w1
(bi_w), sigma_alpha (bi_xy_std) and sigma_beta (bi_rgb_std) are chosen by
the mean IoU of the CRF output on a small part of val (100 images in the
papers), starting from a coarse grid (v2: w1 in [3:6], sigma_alpha in
[30:10:100], sigma_beta in [3:6], the defaults below) and then refining it
by hand around the best value.

Usage:
  python -m deeplab_tf.crf_search --image_dir=IMAGES --prob_dir=PROBS \
      --label_dir=LABELS [--list=val_subset.txt] [--max_images=100] \
      [--bi_w=3,4,5,6] [--bi_xy_std=30,40,...,100] [--bi_rgb_std=3,4,5,6] \
      [--pos_w=3] [--pos_xy_std=3] [--output_json=search.json]

For each name (the --list file's lines, else every image in --image_dir
without extension) it reads IMAGES/name.{png,jpg,jpeg} (colour, converted
to RGB), PROBS/name.npy (float [H, W, C], the softmax at the image's size)
and LABELS/name.png (label ids, --ignore_label left out). It prints the mIoU
without CRF, one line per setting and the best setting; --output_json keeps
them all.
"""
import json
import sys

from absl import app
from absl import flags

from deeplab_tf.crf.search import list_names
from deeplab_tf.crf.search import load_sample
from deeplab_tf.crf.search import parse_grid
from deeplab_tf.crf.search import search
from deeplab_tf.crf.search import SearchError

FLAGS = flags.FLAGS

flags.DEFINE_string('image_dir', None, 'Folder of the images.')
flags.DEFINE_string('prob_dir', None, 'Folder of the saved probabilities '
                    '(name.npy, float [H, W, C]).')
flags.DEFINE_string('label_dir', None, 'Folder of the label PNGs (name.png).')
flags.DEFINE_string('list', None, 'Text file of names (one a line, no '
                    'extension); default: every image in image_dir.')
flags.DEFINE_integer('max_images', 100, 'Use the first N names (the papers '
                     'used 100 val images); 0: all.', lower_bound=0)
# Coarse grids of the v2 paper, Sec. 4.1.
flags.DEFINE_list('bi_w', ['3', '4', '5', '6'], 'w1 values.')
flags.DEFINE_list('bi_xy_std', [str(v) for v in range(30, 101, 10)],
                  'sigma_alpha values (pixels).')
flags.DEFINE_list('bi_rgb_std', ['3', '4', '5', '6'], 'sigma_beta values.')
flags.DEFINE_float('pos_w', 3.0, 'w2, fixed (v1/v2 Sec. 4.1: 3).')
flags.DEFINE_float('pos_xy_std', 3.0, 'sigma_gamma, fixed (v1/v2 Sec. 4.1: '
                   '3).')
flags.DEFINE_integer('num_iterations', 10, 'Mean-field iterations (10 in the '
                     'papers).', lower_bound=0)
flags.DEFINE_enum('normalization', 'after', ['after', 'symmetric', 'none'],
                  'Kernel normalisation (see deeplab_tf.crf.CRFParams).')
flags.DEFINE_integer('ignore_label', 255, 'Label id left out of the mIoU.')
flags.DEFINE_string('output_json', None, 'Also write every result here.')

def mean_iou(samples, predict, ignore_label):
  """mIoU of predict(image, probabilities) -> labels over the samples."""
  from deeplab_tf.evaluation import metrics  # pylint: disable=g-import-not-at-top
  num_classes = samples[0][1].shape[-1]
  matrix = metrics.StreamingConfusionMatrix(num_classes, ignore_label)
  for image, probabilities, labels in samples:
    matrix.update(labels, predict(image, probabilities))
  return matrix.mean_iou()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
  try:
    grid = (parse_grid(FLAGS.bi_w, 'bi_w'),
            parse_grid(FLAGS.bi_xy_std, 'bi_xy_std'),
            parse_grid(FLAGS.bi_rgb_std, 'bi_rgb_std'))
    base = crf.CRFParams(pos_w=FLAGS.pos_w, pos_xy_std=FLAGS.pos_xy_std,
                         num_iterations=FLAGS.num_iterations,
                         normalization=FLAGS.normalization)
    names = list_names(FLAGS.image_dir, FLAGS.list, FLAGS.max_images)
    samples = [load_sample(n, FLAGS.image_dir, FLAGS.prob_dir,
                           FLAGS.label_dir) for n in names]
  except (SearchError, ValueError, OSError) as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  print('%d images, %d settings' % (len(samples),
                                    len(grid[0]) * len(grid[1]) * len(grid[2])),
        flush=True)
  summary = search(
      samples, grid, base,
      score=lambda s, predict: mean_iou(s, predict, FLAGS.ignore_label),
      log=lambda line: print(line, flush=True))
  summary.update({'num_images': len(samples), 'pos_w': FLAGS.pos_w,
                  'pos_xy_std': FLAGS.pos_xy_std,
                  'num_iterations': FLAGS.num_iterations,
                  'normalization': FLAGS.normalization})
  if FLAGS.output_json:
    with open(FLAGS.output_json, 'w') as f:
      json.dump(summary, f, indent=1, sort_keys=True)
  return 0


def run():
  flags.mark_flags_as_required(['image_dir', 'prob_dir', 'label_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
