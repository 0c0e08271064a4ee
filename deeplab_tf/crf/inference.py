"""Mean-field inference of the fully connected CRF, in TensorFlow ops.

Krähenbühl & Koltun, "Efficient Inference in Fully Connected CRFs with
Gaussian Edge Potentials" (NIPS 2011), as used by DeepLab v1 (arXiv:1412.7062,
Sec. 3.3) and v2 (arXiv:1606.00915, Sec. 3.3).

Every pixel i is a variable with a label l in 1..C; the energy is

  E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) sum_m w_m k_m(f_i, f_j)

with unary psi_u(l) = -log P_i(l) (the network's softmax output), Potts
compatibility mu(l, l') = [l != l'], and two Gaussian kernels: appearance
(bilateral, on position and RGB colour) and smoothness (on position only).
Mean field keeps a factorised Q_i(l) and repeats (paper, Algorithm 1):

  message      Qt_i^m(l) = sum_{j != i} k_m(f_i, f_j) Q_j(l)
  compatibility            sum_m w_m sum_l' mu(l, l') Qt_i^m(l')
  update       Q_i(l) = softmax_l(-psi_u(l) - compatibility)

With Potts, sum_l' [l != l'] Qt(l') = sum_l' Qt(l') - Qt(l), and the first
term is the same for every label, so the update is
softmax(log P_i(l) + sum_m w_m Qt_i^m(l)): a pixel is pulled towards the
labels that its similar pixels currently hold.

The message is a Gaussian filter of Q minus the pixel's own term. The
bilateral one (5-D features) runs on the permutohedral lattice
(permutohedral.py); the smoothness one is an exact separable convolution on
the pixel grid (taps to 3 standard deviations). Optional normalisations
(CRFParams.normalization) reproduce the released code's per-pixel scaling.
"""
import functools
import math

import numpy as np
import tensorflow as tf

from deeplab_tf.crf import params as params_lib
from deeplab_tf.crf import permutohedral

# Taps of the smoothness filter reach this many standard deviations: what is
# left out beyond is 2.7e-4 of a 1-D Gaussian's sum (5e-4 in 2-D), and the
# filter costs 2 * (2 * 3 * std + 1) taps per pixel and class.
_TRUNCATE_STDS = 3.0


def gaussian_taps(std):
  """1-D Gaussian exp(-k^2 / (2 std^2)) for k = -r..r, r = ceil(3 std).

  Args:
    std: positive standard deviation in pixels.

  Returns:
    float32 numpy array of 2r+1 taps (centre tap 1).
  """
  radius = max(1, int(math.ceil(_TRUNCATE_STDS * std)))
  k = np.arange(-radius, radius + 1, dtype=np.float64)
  return np.exp(-k * k / (2.0 * std * std)).astype(np.float32)


def _filter_rows(values, taps):
  """Convolves [H, W, C] along H with 1-D taps, zero outside the image."""
  shape = tf.shape(values)
  # All W*C columns as channels of one depthwise convolution: long channel
  # rows vectorise far better than C (~21) channels do.
  wide = tf.reshape(values, [1, shape[0], 1, shape[1] * shape[2]])
  kernel = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]),
                   [1, 1, shape[1] * shape[2], 1])
  out = tf.nn.depthwise_conv2d(wide, kernel, [1, 1, 1, 1], 'SAME')
  return tf.reshape(out, shape)


def _filter_columns(values, taps):
  """Convolves [H, W, C] along W with 1-D taps, zero outside the image."""
  kernel = tf.tile(tf.reshape(taps, [1, -1, 1, 1]),
                   [1, 1, tf.shape(values)[2], 1])
  out = tf.nn.depthwise_conv2d(values[None], kernel, [1, 1, 1, 1], 'SAME')
  return out[0]


def smoothness_filter(values, std):
  """sum_j exp(-|p_i - p_j|^2 / (2 std^2)) values_j over the pixel grid.

  Exact up to the truncation at 3 standard deviations; j = i included.

  Args:
    values: float32 [H, W, C].
    std: position standard deviation in pixels (Python float).

  Returns:
    float32 [H, W, C].
  """
  taps = tf.constant(gaussian_taps(std))
  return _filter_columns(_filter_rows(values, taps), taps)


def _smoothness_sums(height, width, std):
  """D_i = sum_j k(p_i, p_j) of the smoothness kernel, float32 [H, W, 1].

  The kernel is separable and so is the image's rectangle, so D is the
  outer product of the 1-D sums along H and along W.
  """
  taps = tf.constant(gaussian_taps(std))

  def line_sums(length):
    # 'SAME' zero padding: taps past the border add nothing.
    sums = tf.nn.conv2d(tf.ones([1, length, 1, 1]),
                        tf.reshape(taps, [-1, 1, 1, 1]), 1, 'SAME')
    return tf.reshape(sums, [length])

  return (line_sums(height)[:, None] * line_sums(width)[None, :])[:, :, None]


def _bilateral_features(image, xy_std, rgb_std):
  """[H*W, 5] features (x, y, r, g, b) divided by their standard deviations."""
  shape = tf.shape(image)
  rows, cols = tf.meshgrid(tf.range(shape[0]), tf.range(shape[1]),
                           indexing='ij')
  position = tf.cast(tf.stack([cols, rows], axis=-1), tf.float32) / xy_std
  colour = tf.cast(image, tf.float32) / rgb_std
  return tf.reshape(tf.concat([position, colour], axis=-1), [-1, 5])


def _scales(sums, normalization):
  """(pre, post, self) factors of a kernel's message for a normalisation.

  message = post * sum_j k_ij (pre * Q)_j - self * Q_i, which for
  exclude_self is: 'none' sum_{j != i} k_ij Q_j; 'after' that divided by
  D_i; 'symmetric' sum_{j != i} D_i^-1/2 k_ij D_j^-1/2 Q_j.

  Args:
    sums: float32 [..., 1], D_i = sum_j k_ij (j = i included).
    normalization: one of params.NORMALIZATIONS.

  Returns:
    Three tensors broadcastable to [..., C] (None for 'no factor').
  """
  inverse = 1.0 / tf.maximum(sums, 1e-20)
  if normalization == 'after':
    return None, inverse, inverse
  if normalization == 'symmetric':
    root = tf.sqrt(inverse)
    return root, root, inverse
  return None, None, None


def _check_single(image, probabilities):
  """Static checks of one image / probability map (shapes known at trace)."""
  if image.dtype != tf.uint8:
    raise TypeError('image must be uint8 [H, W, 3], got dtype %s' %
                    image.dtype.name)
  if image.shape.rank != 3 or image.shape[-1] not in (None, 3):
    raise ValueError('image must be uint8 [H, W, 3], got shape %s' %
                     image.shape)
  if not probabilities.dtype.is_floating:
    raise TypeError('probabilities must be float [H, W, C] (softmax output), '
                    'got dtype %s' % probabilities.dtype.name)
  if probabilities.shape.rank != 3:
    raise ValueError('probabilities must be float [H, W, C], got shape %s' %
                     probabilities.shape)
  if not image.shape[:2].is_compatible_with(probabilities.shape[:2]):
    raise ValueError('probabilities shape mismatch: image is %s, '
                     'probabilities %s; expected the same H and W' %
                     (image.shape, probabilities.shape))


def _crf_single(image, probabilities, params, weights=None):
  """Mean-field CRF of one image; see dense_crf_tf.

  Args:
    image: uint8 [H, W, 3].
    probabilities: float [H, W, C].
    params: CRFParams; its Python values shape the graph.
    weights: optional (bi_w, bi_xy_std, bi_rgb_std, pos_w) float32 scalar
      tensors used instead of params' values, so that one trace serves a
      whole grid of settings (crf_search). params still says which kernels
      are on (bi_w > 0, pos_w > 0).

  Returns:
    float32 [H, W, C].
  """
  _check_single(image, probabilities)
  check = tf.debugging.assert_equal(
      tf.shape(image)[:2], tf.shape(probabilities)[:2],
      message='probabilities shape mismatch: expected the image\'s H and W')
  with tf.control_dependencies([check]):
    probabilities = tf.cast(probabilities, tf.float32)
  shape = tf.shape(probabilities)
  height, width, channels = shape[0], shape[1], shape[2]
  # -unary: log of the clipped probabilities.
  log_p = tf.math.log(tf.clip_by_value(probabilities, params.min_probability,
                                       1.0))
  q = tf.nn.softmax(log_p)
  use_bi = params.bi_w > 0
  use_pos = params.pos_w > 0
  if params.num_iterations == 0 or not (use_bi or use_pos):
    return q
  if weights is None:
    weights = (params.bi_w, params.bi_xy_std, params.bi_rgb_std, params.pos_w)
  bi_w, bi_xy_std, bi_rgb_std, pos_w = weights
  self_weight = float(params.exclude_self)
  self_terms = []

  if use_bi:
    lattice = permutohedral.build_lattice(
        _bilateral_features(image, bi_xy_std, bi_rgb_std))
    amplitude = permutohedral.lattice_amplitude(lattice.dim)
    plain = permutohedral.point_vertex_matrix(lattice)
    bi_sums = amplitude * permutohedral.slice_values(
        plain, permutohedral.blur(
            lattice, permutohedral.splat(plain, tf.ones([height * width, 1]))))
    pre, post, own = _scales(bi_sums, params.normalization)
    # Per-point factors live in the splat / slice matrices' values, so one
    # message costs splat + blur + slice and nothing else.
    splat_matrix = plain if pre is None else (
        permutohedral.point_vertex_matrix(lattice, pre[:, 0]))
    slice_scale = bi_w * amplitude * (
        tf.ones([height * width]) if post is None else post[:, 0])
    slice_matrix = permutohedral.point_vertex_matrix(lattice, slice_scale)
    self_terms.append(bi_w * self_weight * (
        1.0 if own is None else tf.reshape(own, [height, width, 1])))

  if use_pos:
    pos_sums = _smoothness_sums(height, width, params.pos_xy_std)
    pos_pre, pos_post, pos_own = _scales(pos_sums, params.normalization)
    pos_post = pos_w * (1.0 if pos_post is None else pos_post)
    self_terms.append(pos_w * self_weight *
                      (1.0 if pos_own is None else pos_own))

  self_coefficient = tf.math.add_n([tf.broadcast_to(
      tf.cast(t, tf.float32), [height, width, 1]) for t in self_terms])
  for _ in range(params.num_iterations):
    terms = [log_p, -self_coefficient * q]
    if use_bi:
      flat = tf.reshape(q, [-1, channels])
      vertex = permutohedral.blur(lattice,
                                  permutohedral.splat(splat_matrix, flat))
      terms.append(tf.reshape(
          permutohedral.slice_values(slice_matrix, vertex), shape))
    if use_pos:
      source = q if pos_pre is None else q * pos_pre
      terms.append(pos_post * smoothness_filter(source, params.pos_xy_std))
    q = tf.nn.softmax(tf.math.add_n(terms))
  return q


def dense_crf_tf(image, probabilities, params=None):
  """Fully connected CRF refinement as TensorFlow ops (graph friendly).

  Tensors in, tensors out: no numpy and no py_function, so it can run
  eagerly, inside tf.function (dynamic H, W, C and batch are fine), on GPU,
  and inside an exported SavedModel. The settings are Python values, fixed
  when the function is traced.

  Example (inside an exported serving function):
    probs = tf.nn.softmax(logits)                       # [B, H, W, C]
    refined = dense_crf_tf(images, probs, PRESETS['deeplab_v2_resnet101_voc'])
    labels = tf.argmax(refined, axis=-1)

  Args:
    image: uint8 [H, W, 3] or [B, H, W, 3], RGB.
    probabilities: float [H, W, C] or [B, H, W, C], the softmax output at
      the image's resolution (rows sum to 1; they are clipped to
      params.min_probability and renormalised).
    params: CRFParams, a PRESETS name, or None for CRFParams().

  Returns:
    float32 refined probabilities with the shape of ``probabilities``.

  Raises:
    TypeError / ValueError: wrong dtypes, ranks or mismatched shapes known
      at trace time; tf.errors.InvalidArgumentError for mismatched shapes
      found at run time.
  """
  params = params_lib.get_params(params)
  image = tf.convert_to_tensor(image)
  probabilities = tf.convert_to_tensor(probabilities)
  if image.shape.rank == 4:
    if probabilities.shape.rank != 4:
      raise ValueError('probabilities shape mismatch: image is %s (batched), '
                       'probabilities %s; expected [B, H, W, C]' %
                       (image.shape, probabilities.shape))
    _check_single(image[0], probabilities[0])
    refined = tf.map_fn(
        lambda pair: _crf_single(pair[0], pair[1], params),
        (image, probabilities),
        fn_output_signature=tf.TensorSpec([None, None, None], tf.float32))
    return tf.ensure_shape(refined, probabilities.shape)
  if image.shape.rank != 3:
    raise ValueError('image must be uint8 [H, W, 3] or [B, H, W, 3], got '
                     'shape %s' % image.shape)
  refined = _crf_single(image, probabilities, params)
  return tf.ensure_shape(refined, probabilities.shape)


def _graph_key(params):
  """The settings that shape the graph; the others are fed as tensors."""
  return params.replace(bi_w=float(params.bi_w > 0), bi_xy_std=1.0,
                        bi_rgb_std=1.0, pos_w=float(params.pos_w > 0))


@functools.lru_cache(maxsize=16)
def _compiled(graph_key):
  """A tf.function of one image, traced once for all sizes and weights."""

  def run(image, probabilities, bi_w, bi_xy_std, bi_rgb_std, pos_w):
    return _crf_single(image, probabilities, graph_key,
                       weights=(bi_w, bi_xy_std, bi_rgb_std, pos_w))

  scalar = tf.TensorSpec([], tf.float32)
  # autograph=False: the Python control flow here only shapes the graph.
  return tf.function(
      run, autograph=False, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                            tf.TensorSpec([None, None, None], tf.float32),
                            scalar, scalar, scalar, scalar])


def dense_crf(image, probabilities, num_iterations=None, bi_w=None,
              bi_xy_std=None, bi_rgb_std=None, pos_w=None, pos_xy_std=None,
              params=None, **options):
  """Refines one softmax map with the fully connected CRF (numpy in and out).

  Settings not given come from ``params`` (a CRFParams or a PRESETS name;
  default CRFParams(), the DeepLab v2 ResNet-101 VOC values).

  Args:
    image: uint8 numpy array [H, W, 3], RGB.
    probabilities: float numpy array [H, W, C], softmax output.
    num_iterations, bi_w, bi_xy_std, bi_rgb_std, pos_w, pos_xy_std: the
      DeepLab DenseCRF settings (see CRFParams).
    params: base settings.
    **options: other CRFParams fields (normalization, exclude_self,
      min_probability).

  Returns:
    float32 numpy array [H, W, C], refined probabilities.

  Raises:
    TypeError / ValueError: on wrong inputs or settings.
  """
  params = params_lib.get_params(
      params, num_iterations=num_iterations, bi_w=bi_w, bi_xy_std=bi_xy_std,
      bi_rgb_std=bi_rgb_std, pos_w=pos_w, pos_xy_std=pos_xy_std, **options)
  image = np.asarray(image)
  probabilities = np.asarray(probabilities)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError('image must be uint8 [H, W, 3], got %s %s' %
                     (image.dtype, image.shape))
  if (probabilities.ndim != 3 or
      probabilities.shape[:2] != image.shape[:2] or
      not np.issubdtype(probabilities.dtype, np.floating)):
    raise ValueError('probabilities shape mismatch: expected float [%d, %d, '
                     'C] like the image, got %s %s' %
                     (image.shape[0], image.shape[1], probabilities.dtype,
                      probabilities.shape))
  refined = _compiled(_graph_key(params))(
      tf.constant(image), tf.constant(probabilities, tf.float32),
      *[tf.constant(v, tf.float32) for v in (
          params.bi_w, params.bi_xy_std, params.bi_rgb_std, params.pos_w)])
  return refined.numpy()


def refine_batch(images, probabilities, params):
  """CRF on a batch of model inputs: float [B, H, W, 3] 0..255 -> refined probabilities.

  The predictors take float images (raw 0..255, padded with the mean pixel);
  the CRF's appearance kernel wants uint8 RGB, so pixels are rounded and
  clipped first. Eval, vis and export call this on the padded batch: the
  padding (mean colour, ignore label) only touches pixels that are not
  scored or are cropped away afterwards.
  """
  pixels = tf.cast(tf.clip_by_value(tf.round(images), 0.0, 255.0), tf.uint8)
  return dense_crf_tf(pixels, tf.cast(probabilities, tf.float32), params)
