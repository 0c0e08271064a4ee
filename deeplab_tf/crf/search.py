"""The grid search of the CRF appearance kernel (DeepLab v1/v2, Sec. 4.1).

The smoothness kernel is fixed (w2 = 3, sigma_gamma = 3) and w1 (bi_w),
sigma_alpha (bi_xy_std) and sigma_beta (bi_rgb_std) are chosen by the mean IoU
of the CRF output on a small part of val (100 images in the papers). The
command is ``python -m deeplab_tf.crf_search``; this module is its library:
reading the samples and running the grid.
"""
import itertools
import os
from typing import Callable

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.crf import inference

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


def search(samples, grid, base_params, score: Callable, log=print):
  """mIoU for each (bi_w, bi_xy_std, bi_rgb_std) of the grid.

  Args:
    samples: list of (image, probabilities, labels).
    grid: (bi_w values, bi_xy_std values, bi_rgb_std values).
    base_params: CRFParams with the fixed settings.
    score: (samples, predict(image, probabilities) -> labels) -> mIoU. The
      command passes the evaluation's confusion-matrix mIoU; it is a
      parameter because the metrics live in a layer above the CRF.
    log: called with one line per result.

  Returns:
    {'baseline_miou': float, 'results': [{'bi_w', 'bi_xy_std',
    'bi_rgb_std', 'miou'}...], 'best': the best result}.
  """
  baseline = score(samples, lambda _, p: p.argmax(-1))
  log('no CRF: mIoU=%.4f' % baseline)
  results = []
  for bi_w, bi_xy_std, bi_rgb_std in itertools.product(*grid):
    params = base_params.replace(bi_w=bi_w, bi_xy_std=bi_xy_std,
                                 bi_rgb_std=bi_rgb_std)
    miou = score(
        samples,
        lambda image, p, params=params: inference.dense_crf(
            image, p, params=params).argmax(-1))
    results.append({'bi_w': bi_w, 'bi_xy_std': bi_xy_std,
                    'bi_rgb_std': bi_rgb_std, 'miou': miou})
    log('bi_w=%g bi_xy_std=%g bi_rgb_std=%g: mIoU=%.4f' %
        (bi_w, bi_xy_std, bi_rgb_std, miou))
  best = max(results, key=lambda r: r['miou'])
  log('best: bi_w=%g bi_xy_std=%g bi_rgb_std=%g mIoU=%.4f (no CRF %.4f)' %
      (best['bi_w'], best['bi_xy_std'], best['bi_rgb_std'], best['miou'],
       baseline))
  return {'baseline_miou': baseline, 'results': results, 'best': best}
