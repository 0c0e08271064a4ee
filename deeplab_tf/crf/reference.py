"""Exact O(N^2) mean field of the fully connected CRF, in numpy (tiny images).

The reference for the fast filter: the same updates as inference.py (see its
docstring) with every kernel sum computed directly over all pixel pairs in
float64, no lattice, no truncation. N = H*W pixels need N^2 kernel entries,
so it refuses images over ``MAX_PIXELS``.
"""
import numpy as np

from deeplab_tf.crf import params as params_lib

MAX_PIXELS = 4096


def _kernel(features):
  """exp(-|f_i - f_j|^2 / 2) for all pairs, float64 [N, N]."""
  diff = features[:, None, :] - features[None, :, :]
  return np.exp(-0.5 * np.sum(diff * diff, axis=-1))


def kernel_matrices(image, params):
  """Appearance and smoothness kernels of every pixel pair.

  Args:
    image: uint8 [H, W, 3].
    params: CRFParams.

  Returns:
    (bilateral, smoothness), float64 [N, N] each, N = H*W in row-major
    pixel order; the diagonal is 1 (j = i).
  """
  height, width = image.shape[:2]
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  position = np.stack([cols, rows], axis=-1).reshape(-1, 2).astype(np.float64)
  colour = image.reshape(-1, 3).astype(np.float64)
  bilateral = _kernel(np.concatenate(
      [position / params.bi_xy_std, colour / params.bi_rgb_std], axis=1))
  smoothness = _kernel(position / params.pos_xy_std)
  return bilateral, smoothness


def normalized_message_matrix(kernel, normalization, exclude_self):
  """The matrix A with message = A @ Q for one kernel.

  Args:
    kernel: float64 [N, N] with unit diagonal.
    normalization: 'none', 'after' or 'symmetric' (see CRFParams).
    exclude_self: drop the j = i terms (the paper's sum over j != i); the
      normalising sums D_i always include j = i.

  Returns:
    float64 [N, N].
  """
  sums = kernel.sum(axis=1)
  numerator = kernel - np.eye(len(kernel)) if exclude_self else kernel
  if normalization == 'after':
    return numerator / sums[:, None]
  if normalization == 'symmetric':
    root = 1.0 / np.sqrt(sums)
    return root[:, None] * numerator * root[None, :]
  return numerator


def brute_force_crf(image, probabilities, params=None, **overrides):
  """Mean field with exact kernel sums.

  Args:
    image: uint8 [H, W, 3].
    probabilities: float [H, W, C].
    params: CRFParams or a PRESETS name (default CRFParams()).
    **overrides: CRFParams fields.

  Returns:
    float32 [H, W, C] refined probabilities.

  Raises:
    ValueError: wrong shapes, or more than MAX_PIXELS pixels.
  """
  params = params_lib.get_params(params, **overrides)
  image = np.asarray(image)
  probabilities = np.asarray(probabilities, np.float64)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError('image must be uint8 [H, W, 3], got %s %s' %
                     (image.dtype, image.shape))
  if probabilities.ndim != 3 or probabilities.shape[:2] != image.shape[:2]:
    raise ValueError('probabilities shape mismatch: expected [%d, %d, C], got '
                     '%s' % (image.shape[0], image.shape[1],
                             probabilities.shape))
  height, width, channels = probabilities.shape
  if height * width > MAX_PIXELS:
    raise ValueError('brute_force_crf is O(N^2): at most %d pixels, got %dx%d'
                     % (MAX_PIXELS, height, width))
  log_p = np.log(np.clip(probabilities, params.min_probability, 1.0))
  log_p = log_p.reshape(-1, channels)
  bilateral, smoothness = kernel_matrices(image, params)
  pairwise = (
      params.bi_w * normalized_message_matrix(
          bilateral, params.normalization, params.exclude_self) +
      params.pos_w * normalized_message_matrix(
          smoothness, params.normalization, params.exclude_self))
  q = _softmax(log_p)
  for _ in range(params.num_iterations):
    q = _softmax(log_p + pairwise @ q)
  return q.reshape(height, width, channels).astype(np.float32)


def _softmax(logits):
  shifted = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(shifted)
  return e / e.sum(axis=-1, keepdims=True)
