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
import itertools
import json
import os
import sys

from absl import app
from absl import flags

from deeplab_tf.core.errors import DeeplabError

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

_IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')


class SearchError(DeeplabError, ValueError):
  """Missing or inconsistent inputs."""


def parse_grid(values, name):
  """Floats of a comma list flag; SearchError if empty or not positive."""
  try:
    grid = [float(v) for v in values]
  except ValueError as e:
    raise SearchError('--%s must be numbers, got %s' % (name, values)) from e
  if not grid or any(v <= 0 for v in grid):
    raise SearchError('--%s must list positive numbers, got %s' %
                      (name, values))
  return grid


def list_names(image_dir, list_file=None, max_images=0):
  """The sample names: the list file's lines or image_dir's images."""
  if list_file:
    with open(list_file) as f:
      names = [line.strip() for line in f if line.strip()]
  else:
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(image_dir)
                   if n.lower().endswith(_IMAGE_EXTENSIONS))
  if max_images:
    names = names[:max_images]
  if not names:
    raise SearchError('no samples found (image_dir=%s, list=%s)' %
                      (image_dir, list_file))
  return names


def load_sample(name, image_dir, prob_dir, label_dir):
  """(image uint8 RGB [H, W, 3], probabilities [H, W, C], labels [H, W])."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  image = None
  for ext in _IMAGE_EXTENSIONS:
    path = os.path.join(image_dir, name + ext)
    if os.path.exists(path):
      image = cv2.imread(path, cv2.IMREAD_COLOR)
      break
  if image is None:
    raise SearchError('image %s.{png,jpg,jpeg} not found or unreadable in %s'
                      % (name, image_dir))
  image = np.ascontiguousarray(image[:, :, ::-1])
  probabilities = np.load(os.path.join(prob_dir, name + '.npy'))
  labels = cv2.imread(os.path.join(label_dir, name + '.png'),
                      cv2.IMREAD_UNCHANGED)
  if labels is None:
    raise SearchError('label %s.png not found in %s' % (name, label_dir))
  if probabilities.ndim != 3 or probabilities.shape[:2] != image.shape[:2]:
    raise SearchError('%s: probabilities %s do not match the image %s; '
                      'expected [H, W, C] at the image size' %
                      (name, probabilities.shape, image.shape))
  if labels.shape != image.shape[:2]:
    raise SearchError('%s: labels %s do not match the image %s' %
                      (name, labels.shape, image.shape))
  return image, probabilities.astype(np.float32), labels


def mean_iou(samples, predict, num_classes, ignore_label):
  """mIoU of predict(image, probabilities) -> labels over the samples."""
  from deeplab_tf.evaluation import metrics  # pylint: disable=g-import-not-at-top
  matrix = metrics.StreamingConfusionMatrix(num_classes, ignore_label)
  for image, probabilities, labels in samples:
    matrix.update(labels, predict(image, probabilities))
  return matrix.mean_iou()


def search(samples, grid, base_params, ignore_label=255, log=print):
  """mIoU for each (bi_w, bi_xy_std, bi_rgb_std) of the grid.

  Args:
    samples: list of (image, probabilities, labels).
    grid: (bi_w values, bi_xy_std values, bi_rgb_std values).
    base_params: CRFParams with the fixed settings.
    ignore_label: label id left out.
    log: called with one line per result.

  Returns:
    {'baseline_miou': float, 'results': [{'bi_w', 'bi_xy_std',
    'bi_rgb_std', 'miou'}...], 'best': the best result}.
  """
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
  num_classes = samples[0][1].shape[-1]
  baseline = mean_iou(samples, lambda _, p: p.argmax(-1), num_classes,
                      ignore_label)
  log('no CRF: mIoU=%.4f' % baseline)
  results = []
  for bi_w, bi_xy_std, bi_rgb_std in itertools.product(*grid):
    params = base_params.replace(bi_w=bi_w, bi_xy_std=bi_xy_std,
                                 bi_rgb_std=bi_rgb_std)
    miou = mean_iou(
        samples,
        lambda image, p, params=params: crf.dense_crf(
            image, p, params=params).argmax(-1),
        num_classes, ignore_label)
    results.append({'bi_w': bi_w, 'bi_xy_std': bi_xy_std,
                    'bi_rgb_std': bi_rgb_std, 'miou': miou})
    log('bi_w=%g bi_xy_std=%g bi_rgb_std=%g: mIoU=%.4f' %
        (bi_w, bi_xy_std, bi_rgb_std, miou))
  best = max(results, key=lambda r: r['miou'])
  log('best: bi_w=%g bi_xy_std=%g bi_rgb_std=%g mIoU=%.4f (no CRF %.4f)' %
      (best['bi_w'], best['bi_xy_std'], best['bi_rgb_std'], best['miou'],
       baseline))
  return {'baseline_miou': baseline, 'results': results, 'best': best}


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
  summary = search(samples, grid, base, FLAGS.ignore_label,
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
