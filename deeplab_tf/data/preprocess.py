"""DeepLab input preprocessing, restated for TF 2 (eager and tf.data graphs).

Behaviour (and numbers) follow the original ``research/deeplab/core/
preprocess_utils.py`` and ``research/deeplab/input_preprocess.py``; the rules
are listed in ``shared/reference/ops/README.md`` sections 1-4 and pinned by
the fixtures checked in ``deeplab_tf/conformance/preprocess_cases.py``:

* every size computation runs in float32 (floor / truncation as the original);
* images resize bilinearly with ``align_corners=True`` and no half-pixel
  offset and no antialiasing; integer labels resize with nearest neighbour,
  ``align_corners=True`` (the TF kernel rounds with C ``roundf``: ties away
  from zero);
* padding is computed as ``pad(x - value) + value`` in the tensor's dtype;
* eval never crops, and an image larger than the crop is left as it is.

All functions take dynamic shapes (``tf.shape``), so they run inside
``tf.data.Dataset.map``. Where the original fails with an obscure message
(``None values not supported``, a modulo by zero, an integer/float mix-up),
these raise a ``ValueError`` (python arguments) or ``InvalidArgumentError``
(run-time sizes) that names the value received and what is accepted.
"""
import dataclasses
import numbers
from typing import Optional

from absl import logging
import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.core.pixels import mean_pixel

# The original input_preprocess flips left-right with this probability.
PROB_OF_FLIP = 0.5


# ---------------------------------------------------------------------------
# Argument checks (python-level, at trace time).
# ---------------------------------------------------------------------------

def _is_number(value):
  return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_positive_int(name, value, allow_none=False):
  if value is None and allow_none:
    return
  if not _is_int(value) or value <= 0:
    raise ValueError('%s must be a positive python int%s; got %r.'
                     % (name, ' or None' if allow_none else '', value))


def _check_positive_number(name, value, allow_none=False):
  """Python numbers must be > 0; tensors are passed through unchecked."""
  if value is None:
    if allow_none:
      return
    raise ValueError('%s must be given (a positive number); got None.' % name)
  if tf.is_tensor(value):
    return
  if not _is_number(value) or value <= 0:
    raise ValueError('%s must be a positive number; got %r.' % (name, value))


def _static_rank(tensor, name, accepted):
  rank = tensor.shape.rank
  if rank is None:
    raise ValueError('%s must have a known rank (one of %s); got a tensor of '
                     'unknown rank. Call set_shape on it first.'
                     % (name, accepted))
  if rank not in accepted:
    raise ValueError('%s must have rank %s; got shape %s.'
                     % (name, ' or '.join(str(r) for r in accepted),
                        tensor.shape))
  return rank


def _derived_seed(seed, offset):
  # Distinct op-level seeds for the separate random draws of one call, so
  # that two draws made with the same user seed are not identical streams.
  return None if seed is None else int(seed) + offset


def _set_shape_if_compatible(tensor, shape):
  """The original's ``set_shape`` claims, where they can hold.

  The original sets static shapes it cannot check (an eval image larger than
  the crop keeps its size at run time while claiming the crop size). In a
  graph with unknown sizes we make the same claim; where the shape is already
  known and contradicts it (always the case eagerly) the true shape is kept,
  where the original would have failed at graph construction.
  """
  if tensor.shape.is_compatible_with(shape):
    tensor.set_shape(shape)
  return tensor


# ---------------------------------------------------------------------------
# Resizes with the original's kernels.
# ---------------------------------------------------------------------------

def _resize_label(label, size, align_corners=True):
  """Label resize as the original ``get_label_resize_method`` picks it.

  Floating labels resize bilinearly, integer labels by nearest neighbour.
  """
  if label.dtype.is_floating:
    return geometry.resize_bilinear(label, size, align_corners, output_dtype=None)
  if label.dtype.is_integer:
    return geometry.resize_nearest(label, size, align_corners)
  raise ValueError('label must have a floating or integer dtype (resized '
                   'bilinearly or by nearest neighbour); got %s.'
                   % label.dtype.name)


# ---------------------------------------------------------------------------
# resize_to_range
# ---------------------------------------------------------------------------

def resize_to_range_size(height, width, min_size, max_size=None, factor=None,
                         keep_aspect_ratio=True):
  """Output [new_height, new_width] (int32 tensor) of ``resize_to_range``.

  ``height`` / ``width`` may be python ints or scalar tensors. The rules of
  the original, all in float32:
    1. scale the short side to ``min_size``: ``floor(side * (min/short))``;
    2. if that makes the long side exceed ``max_size`` (first lowered to the
       largest ``k * factor + 1`` when ``factor`` is set), use
       ``floor(side * (max/long))`` instead;
    3. with ``factor``, round each side UP to the next ``k * factor + 1``
       (so the short side can exceed ``min_size``);
    4. without ``keep_aspect_ratio``, a square of the larger resulting side.
  """
  if min_size is None:
    raise ValueError(
        'resize_to_range needs min_size (the desired short side, e.g. '
        'min_resize_value); got None%s. The original casts min_size '
        'unconditionally and fails with "None values not supported".'
        % ('' if max_size is None else ' with max_size=%r' % (max_size,)))
  _check_positive_number('min_size', min_size)
  _check_positive_number('max_size', max_size, allow_none=True)
  _check_positive_int('factor', factor, allow_none=True)
  min_size = tf.cast(min_size, tf.float32)
  if max_size is not None:
    max_size = tf.cast(max_size, tf.float32)
    if factor is not None:
      # Lower max_size to k * factor + 1 (float32 modulo, as the original)
      # so that rounding up in step 3 never exceeds it.
      max_size = max_size - tf.math.floormod(max_size - 1.0, float(factor))
  height = tf.cast(height, tf.float32)
  width = tf.cast(width, tf.float32)

  large_scale = min_size / tf.minimum(height, width)
  large_size = tf.stack([
      tf.cast(tf.floor(height * large_scale), tf.int32),
      tf.cast(tf.floor(width * large_scale), tf.int32)])
  new_size = large_size
  if max_size is not None:
    small_scale = max_size / tf.maximum(height, width)
    small_size = tf.stack([
        tf.cast(tf.floor(height * small_scale), tf.int32),
        tf.cast(tf.floor(width * small_scale), tf.int32)])
    too_large = tf.cast(tf.reduce_max(large_size), tf.float32) > max_size
    new_size = tf.where(too_large, small_size, large_size)
  if factor is not None:
    # Round UP to k * factor + 1 (integer floor-modulo, as the original).
    new_size += tf.math.floormod(
        factor - tf.math.floormod(new_size - 1, factor), factor)
  if not keep_aspect_ratio:
    # The square has the larger *computed* side, not max_size.
    side = tf.reduce_max(new_size)
    new_size = tf.stack([side, side])
  return new_size


def resize_to_range(image, label=None, min_size=None, max_size=None,
                    factor=None, keep_aspect_ratio=True, align_corners=True):
  """Resizes image (and label) so the sides fall in the requested range.

  The original ``preprocess_utils.resize_to_range``; see
  ``resize_to_range_size`` for the size rule. The image is resized bilinearly
  (float32 out); the label by nearest neighbour when its dtype is integer
  (dtype kept) or bilinearly when it is floating.

  Args:
    image: [height, width, channels] tensor (any size, may be dynamic).
    label: optional [height, width, channels] tensor.
    min_size: desired size of the short side (required).
    max_size: optional maximum size of the long side.
    factor: optional int; output sides become ``k * factor + 1``.
    keep_aspect_ratio: if False, output a square (see the size rule).
    align_corners: passed to the resize kernels (DeepLab always uses True).

  Returns:
    ``[resized_image, resized_label_or_None]`` (a list, as the original).
  """
  image = tf.convert_to_tensor(image, name='image')
  _static_rank(image, 'image', (3,))
  if label is not None:
    label = tf.convert_to_tensor(label, name='label')
    _static_rank(label, 'label', (3,))
  shape = tf.shape(image)
  checks = [tf.debugging.assert_positive(
      shape[:2], message='resize_to_range needs an image with height and '
      'width >= 1; got shape')]
  with tf.control_dependencies([c for c in checks if c is not None]):
    new_size = resize_to_range_size(shape[0], shape[1], min_size, max_size,
                                    factor, keep_aspect_ratio)
  resized_image = geometry.resize_bilinear(image, new_size, align_corners,
                                          output_dtype=None)
  resized_label = None
  if label is not None:
    resized_label = _resize_label(label, new_size, align_corners)
  return [resized_image, resized_label]


# ---------------------------------------------------------------------------
# Random scale
# ---------------------------------------------------------------------------

def _check_scale_range(min_scale_factor, max_scale_factor, step_size):
  for name, value in (('min_scale_factor', min_scale_factor),
                      ('max_scale_factor', max_scale_factor),
                      ('step_size', step_size)):
    if not _is_number(value):
      raise ValueError('%s must be a python number; got %r.' % (name, value))
  if min_scale_factor < 0 or min_scale_factor > max_scale_factor:
    raise ValueError(
        'Expected 0 <= min_scale_factor <= max_scale_factor; got '
        'min_scale_factor=%r, max_scale_factor=%r.'
        % (min_scale_factor, max_scale_factor))
  if step_size < 0:
    raise ValueError('step_size must be >= 0 (0 samples uniformly from '
                     '[min, max)); got %r.' % (step_size,))


def random_scale_values(min_scale_factor, max_scale_factor, step_size):
  """The discrete scale set ``get_random_scale`` draws from (step > 0).

  ``n = int((max - min) / step + 1)`` in python float64 with truncation (so
  (0.5, 1.2, 0.1) gives 7 values, not 8), then the float32 ``LinSpace``
  kernel: ``min + i * ((max - min) / (n - 1))`` with the last value exactly
  ``max``. Returns a float32 tensor of shape [n].
  """
  _check_scale_range(min_scale_factor, max_scale_factor, step_size)
  if step_size == 0:
    raise ValueError('step_size=0 has no discrete scale set (it samples '
                     'uniformly from [%r, %r)).'
                     % (min_scale_factor, max_scale_factor))
  num_steps = int((max_scale_factor - min_scale_factor) / step_size + 1)
  # The original's tf.lin_space is the LinSpace kernel (float32 arithmetic).
  return tf.raw_ops.LinSpace(start=tf.constant(min_scale_factor, tf.float32),
                             stop=tf.constant(max_scale_factor, tf.float32),
                             num=num_steps)


def get_random_scale(min_scale_factor, max_scale_factor, step_size, seed=None):
  """A random scale, as the original ``get_random_scale``. Always a tensor.

  * ``min == max``: a float32 scalar tensor equal to min;
  * ``step_size == 0``: uniform in [min, max), shape **[1]** (as the original);
  * otherwise one value of ``random_scale_values`` (shuffle, take first),
    a float32 scalar.
  """
  _check_scale_range(min_scale_factor, max_scale_factor, step_size)
  if min_scale_factor == max_scale_factor:
    return tf.cast(min_scale_factor, tf.float32)
  if step_size == 0:
    return tf.random.uniform([1], minval=min_scale_factor,
                             maxval=max_scale_factor, dtype=tf.float32,
                             seed=seed)
  values = random_scale_values(min_scale_factor, max_scale_factor, step_size)
  return tf.random.shuffle(values, seed=seed)[0]


def randomly_scale_image_and_label(image, label=None, scale=1.0):
  """Scales image (bilinear) and label (nearest for int) by ``scale``.

  New size ``int(float32(H) * float32(scale))`` per side (truncation). As in
  the original the ``scale == 1`` short cut applies only to a python number:
  a tensor scale (what ``get_random_scale`` returns) always resizes, which is
  numerically the identity at 1.0 but turns an integer image into float32.
  """
  if not tf.is_tensor(scale) and not _is_number(scale):
    raise ValueError('scale must be a python number or a float tensor; got %r.'
                     % (scale,))
  if not tf.is_tensor(scale):
    if scale <= 0:
      raise ValueError('scale must be > 0; got %r.' % (scale,))
    if scale == 1.0:
      return image, label
  image = tf.convert_to_tensor(image, name='image')
  _static_rank(image, 'image', (3,))
  shape = tf.shape(image)
  scale = tf.cast(scale, tf.float32)
  new_dim = tf.cast(tf.cast(shape[:2], tf.float32) * scale, tf.int32)
  check = tf.debugging.assert_positive(
      new_dim, message='randomly_scale_image_and_label: the scaled size must '
      'be >= 1 on both sides (image size times scale, truncated); got')
  with tf.control_dependencies([check] if check is not None else []):
    new_dim = tf.identity(new_dim)
  image = geometry.resize_bilinear(image, new_dim, output_dtype=None)
  if label is not None:
    label = tf.convert_to_tensor(label, name='label')
    _static_rank(label, 'label', (3,))
    label = _resize_label(label, new_dim)
  return image, label


# ---------------------------------------------------------------------------
# Pad, crop, flip
# ---------------------------------------------------------------------------

def pad_to_bounding_box(image, offset_height, offset_width, target_height,
                        target_width, pad_value):
  """Pads ``image`` to [target_height, target_width] with ``pad_value``.

  The original's arithmetic: non-float images go through int32, then
  ``pad(image - pad_value) + pad_value`` (zeros padded), cast back to the
  input dtype. So integer inputs and the pad value come out exact, while a
  non-integer float32 pixel may move by 1 ulp (the original does the same).
  ``pad_value`` broadcasts against the image (e.g. ``[1, 1, 3]`` means per
  channel). Rank 3 ([H, W, C]) or rank 4 ([N, H, W, C]).
  """
  image = tf.convert_to_tensor(image, name='image')
  rank = _static_rank(image, 'image', (3, 4))
  original_dtype = image.dtype
  if original_dtype not in (tf.float32, tf.float64):
    # As the original: integer images are padded in int32 (no overflow).
    if not original_dtype.is_integer:
      raise ValueError('pad_to_bounding_box accepts float or integer images; '
                       'got dtype %s.' % original_dtype.name)
    image = tf.cast(image, tf.int32)
  if tf.is_tensor(pad_value):
    if image.dtype.is_integer and not pad_value.dtype.is_integer:
      raise ValueError('pad_value for an integer (%s) image must be integer; '
                       'got a %s tensor.' % (original_dtype.name,
                                             pad_value.dtype.name))
    pad_value = tf.cast(pad_value, image.dtype)
  else:
    values = tf.nest.flatten(pad_value)
    if not values or not all(_is_number(v) for v in values):
      raise ValueError('pad_value must be a number, a nested list of numbers '
                       'or a tensor; got %r.' % (pad_value,))
    if image.dtype.is_integer and any(float(v) != int(v) for v in values):
      raise ValueError('pad_value for an integer (%s) image must be '
                       'integer-valued; got %r.'
                       % (original_dtype.name, pad_value))
    if image.dtype.is_integer:
      pad_value = tf.cast(tf.constant(pad_value), tf.int32)
    else:
      pad_value = tf.constant(pad_value, dtype=image.dtype)

  for name, value in (('offset_height', offset_height),
                      ('offset_width', offset_width),
                      ('target_height', target_height),
                      ('target_width', target_width)):
    if not tf.is_tensor(value) and (not _is_int(value) or value < 0):
      raise ValueError('%s must be a non-negative int (or int tensor); got %r.'
                       % (name, value))
  offset_height = tf.cast(offset_height, tf.int32)
  offset_width = tf.cast(offset_width, tf.int32)
  target_height = tf.cast(target_height, tf.int32)
  target_width = tf.cast(target_width, tf.int32)

  shape = tf.shape(image)
  height, width = shape[rank - 3], shape[rank - 2]
  after_height = target_height - offset_height - height
  after_width = target_width - offset_width - width
  checks = [
      tf.debugging.assert_non_negative(
          offset_height, message='pad_to_bounding_box: offset_height must be '
          '>= 0; got'),
      tf.debugging.assert_non_negative(
          offset_width, message='pad_to_bounding_box: offset_width must be '
          '>= 0; got'),
      tf.debugging.assert_greater_equal(
          target_height, offset_height + height,
          message='pad_to_bounding_box: target_height (x) must be >= '
          'offset_height + image height (y)'),
      tf.debugging.assert_greater_equal(
          target_width, offset_width + width,
          message='pad_to_bounding_box: target_width (x) must be >= '
          'offset_width + image width (y)'),
  ]
  with tf.control_dependencies([c for c in checks if c is not None]):
    spatial = tf.stack([tf.stack([offset_height, after_height]),
                        tf.stack([offset_width, after_width])])
  zeros = tf.zeros([1, 2], tf.int32)
  parts = ([zeros] if rank == 4 else []) + [spatial, zeros]
  paddings = tf.concat(parts, axis=0)
  # pad(x - v) + v: the original pads zeros around the shifted image.
  padded = tf.pad(image - pad_value, paddings) + pad_value
  if padded.dtype != original_dtype:
    padded = tf.cast(padded, original_dtype)
  return padded


def _crop(image, offset_height, offset_width, crop_height, crop_width):
  channels = image.shape[2]
  size = tf.stack([crop_height, crop_width, tf.shape(image)[2]])
  begin = tf.stack([offset_height, offset_width, 0])
  cropped = tf.reshape(tf.slice(image, begin, size), size)
  cropped.set_shape([crop_height, crop_width, channels])
  return cropped


def random_crop(image_list, crop_height, crop_width, seed=None):
  """Crops every tensor of ``image_list`` at one random window.

  Offsets are uniform on ``0 .. H - crop_height`` inclusive (and likewise for
  the width), drawn once and shared by all tensors (image and label stay
  aligned). All tensors must be [H, W, C] with the same H and W (C may
  differ), at least as large as the crop.
  """
  if not image_list:
    raise ValueError('random_crop needs a non-empty list of [H, W, C] '
                     'tensors; got %r.' % (image_list,))
  _check_positive_int('crop_height', crop_height)
  _check_positive_int('crop_width', crop_width)
  tensors = []
  for i, t in enumerate(image_list):
    t = tf.convert_to_tensor(t)
    _static_rank(t, 'image_list[%d]' % i, (3,))
    tensors.append(t)
  shape = tf.shape(tensors[0])
  height, width = shape[0], shape[1]
  checks = [
      tf.debugging.assert_greater_equal(
          height, crop_height, message='random_crop: image height (x) must be '
          '>= crop_height (y)'),
      tf.debugging.assert_greater_equal(
          width, crop_width, message='random_crop: image width (x) must be >= '
          'crop_width (y)'),
  ]
  for i, t in enumerate(tensors[1:], 1):
    other = tf.shape(t)
    checks.append(tf.debugging.assert_equal(
        other[:2], shape[:2], message='random_crop: image_list[%d] must have '
        'the height and width of image_list[0]' % i))
  with tf.control_dependencies([c for c in checks if c is not None]):
    max_offset_height = height - crop_height + 1
    max_offset_width = width - crop_width + 1
  # maxval is exclusive: offsets 0 .. H - crop inclusive, as the original.
  offset_height = tf.random.uniform([], maxval=max_offset_height,
                                    dtype=tf.int32, seed=seed)
  offset_width = tf.random.uniform([], maxval=max_offset_width,
                                   dtype=tf.int32,
                                   seed=_derived_seed(seed, 1))
  return [_crop(t, offset_height, offset_width, crop_height, crop_width)
          for t in tensors]


def flip_dim(tensor_list, prob=0.5, dim=1, seed=None):
  """Flips all tensors along ``dim`` together with probability ``prob``.

  One draw ``u ~ U[0, 1)`` decides for all tensors (``u <= prob`` flips, as
  the original), so image and label stay aligned. Returns the list of
  (possibly flipped) tensors followed by the boolean ``is_flipped`` tensor.
  """
  tensors = [tf.convert_to_tensor(t) for t in tensor_list]
  if not tensors:
    raise ValueError('flip_dim needs a non-empty tensor_list.')
  if not _is_int(dim):
    raise ValueError('dim must be an int; got %r.' % (dim,))
  for i, t in enumerate(tensors):
    rank = t.shape.rank
    if rank is None or dim < 0 or dim >= rank:
      raise ValueError('dim=%d is not a valid dimension of tensor_list[%d] '
                       '(shape %s); accepted: 0 .. rank - 1.'
                       % (dim, i, t.shape))
  random_value = tf.random.uniform([], seed=seed)
  is_flipped = tf.less_equal(random_value, prob)
  outputs = tf.cond(is_flipped,
                    lambda: [tf.reverse(t, [dim]) for t in tensors],
                    lambda: [tf.identity(t) for t in tensors])
  outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
  return outputs + [is_flipped]


# ---------------------------------------------------------------------------
# input_preprocess.preprocess_image_and_label
# ---------------------------------------------------------------------------

def preprocess_image_and_label(image, label, crop_height, crop_width,
                               min_resize_value=None, max_resize_value=None,
                               resize_factor=None, min_scale_factor=1.,
                               max_scale_factor=1., scale_factor_step_size=0,
                               ignore_label=255, is_training=True,
                               model_variant=None, seed=None):
  """The original ``input_preprocess.preprocess_image_and_label``.

  Order: image to float32, label to int32 -> ``resize_to_range`` only if
  ``min_resize_value or max_resize_value`` -> (training) random scale -> pad
  bottom/right to at least the crop, image with ``mean_pixel(model_variant)``
  and label with ``ignore_label`` -> (training) random crop -> (training)
  left-right flip with probability 0.5.

  At eval nothing is cropped: an image larger than the crop keeps its size
  (in a graph its static shape still claims the crop size, as the original).
  ``model_variant=None`` pads with the ImageNet mean, as the original.

  Args:
    image: [H, W, 3] image (uint8 or float).
    label: [H, W, 1] label or None (not allowed when training).
    crop_height, crop_width: crop size (python ints).
    min_resize_value, max_resize_value, resize_factor: see ``resize_to_range``;
      ``max_resize_value`` alone raises (the original requires the min).
    min_scale_factor, max_scale_factor, scale_factor_step_size: training
      scale augmentation (see ``get_random_scale``).
    ignore_label: label pad value.
    is_training: whether to augment (scale, crop, flip).
    model_variant: picks the image pad value (``mean_pixel``).
    seed: optional op-level seed for the training randomness.

  Returns:
    ``(original_image, processed_image, label)``: original_image is the input
    unchanged (its dtype kept) when no resize happens, else the float32
    resized image before padding; processed_image is float32; label int32
    (or None).
  """
  if is_training and label is None:
    raise ValueError('During training, label must be provided (got None).')
  _check_positive_int('crop_height', crop_height)
  _check_positive_int('crop_width', crop_width)
  if not _is_int(ignore_label):
    raise ValueError('ignore_label must be an int; got %r.' % (ignore_label,))
  if model_variant is None:
    logging.warning('preprocess_image_and_label: model_variant is None, '
                    'padding with the ImageNet mean pixel (as the original). '
                    'Pass the model_variant.')
  image = tf.convert_to_tensor(image, name='image')
  _static_rank(image, 'image', (3,))
  original_image = image
  processed_image = tf.cast(image, tf.float32)
  if label is not None:
    label = tf.convert_to_tensor(label, name='label')
    _static_rank(label, 'label', (3,))
    label = tf.cast(label, tf.int32)

  # Truthiness test as the original: 0 / None mean "no resize".
  if min_resize_value or max_resize_value:
    if not min_resize_value:
      raise ValueError(
          'max_resize_value=%r needs min_resize_value (the short-side target '
          'of resize_to_range); got min_resize_value=%r. The original fails '
          'here with "None values not supported".'
          % (max_resize_value, min_resize_value))
    processed_image, label = resize_to_range(
        image=processed_image, label=label, min_size=min_resize_value,
        max_size=max_resize_value, factor=resize_factor, align_corners=True)
    # The resized image (before padding) becomes the "original" image.
    original_image = tf.identity(processed_image)

  if is_training:
    scale = get_random_scale(min_scale_factor, max_scale_factor,
                             scale_factor_step_size, seed=seed)
    processed_image, label = randomly_scale_image_and_label(
        processed_image, label, scale)
    _set_shape_if_compatible(processed_image, [None, None, 3])

  # Pad bottom/right to at least the crop size (never shrink).
  shape = tf.shape(processed_image)
  target_height = shape[0] + tf.maximum(crop_height - shape[0], 0)
  target_width = shape[1] + tf.maximum(crop_width - shape[1], 0)
  pad_pixel = tf.reshape(tf.constant(mean_pixel(model_variant), tf.float32),
                         [1, 1, 3])
  processed_image = pad_to_bounding_box(processed_image, 0, 0, target_height,
                                        target_width, pad_pixel)
  if label is not None:
    label = pad_to_bounding_box(label, 0, 0, target_height, target_width,
                                ignore_label)

  if is_training and label is not None:
    processed_image, label = random_crop([processed_image, label], crop_height,
                                         crop_width,
                                         seed=_derived_seed(seed, 2))

  _set_shape_if_compatible(processed_image, [crop_height, crop_width, 3])
  if label is not None:
    _set_shape_if_compatible(label, [crop_height, crop_width, 1])

  if is_training:
    processed_image, label, _ = flip_dim([processed_image, label],
                                         PROB_OF_FLIP, dim=1,
                                         seed=_derived_seed(seed, 4))
    _set_shape_if_compatible(processed_image, [crop_height, crop_width, 3])
    _set_shape_if_compatible(label, [crop_height, crop_width, 1])
  return original_image, processed_image, label


@dataclasses.dataclass(frozen=True)
class PreprocessSettings:
  """The arguments of ``preprocess_image_and_label`` other than the tensors.

  Defaults are the function's (no resize, no scale augmentation), not the
  ``train.py`` flags (crop 513x513, scale 0.5 .. 2.0 step 0.25).
  """
  crop_height: int
  crop_width: int
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  min_scale_factor: float = 1.0
  max_scale_factor: float = 1.0
  scale_factor_step_size: float = 0.0
  ignore_label: int = 255
  model_variant: Optional[str] = None

  def __post_init__(self):
    _check_positive_int('crop_height', self.crop_height)
    _check_positive_int('crop_width', self.crop_width)
    if self.max_resize_value and not self.min_resize_value:
      raise ValueError('max_resize_value=%r needs min_resize_value; got %r.'
                       % (self.max_resize_value, self.min_resize_value))
    _check_positive_int('resize_factor', self.resize_factor, allow_none=True)
    _check_scale_range(self.min_scale_factor, self.max_scale_factor,
                       self.scale_factor_step_size)

  def __call__(self, image, label, is_training, seed=None):
    """``preprocess_image_and_label`` with these settings."""
    kwargs = dataclasses.asdict(self)
    return preprocess_image_and_label(image, label, is_training=is_training,
                                      seed=seed, **kwargs)
