"""Small Keras layers that carry the original DeepLab numerics.

Keras 3 functional graphs cannot call raw TF ops on symbolic tensors, and the
stock Keras layers do not have the original semantics for resizing (TF1
``resize_bilinear(align_corners=True)``), so each such op is a tiny named layer
here. They have no weights and serialise through ``get_config``.
"""
import keras
import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.core import pixels


# The original's resize kernels and size rule live in core.geometry (also
# used by data, losses, export and vis); re-exported for the model modules.
scale_dimension = geometry.scale_dimension
resize_bilinear = geometry.resize_bilinear
resize_nearest = geometry.resize_nearest


@keras.saving.register_keras_serializable(package='deeplab_tf')
class ResizeBilinear(keras.layers.Layer):
  """Bilinear resize with align_corners=True to a fixed size or a reference's size.

  Called as ``layer(x)`` when ``size`` is given, or ``layer(x, reference)`` to
  take the spatial size of ``reference`` at run time (the original's
  ``tf.shape(images)[1:3]``).
  """

  def __init__(self, size=None, **kwargs):
    super().__init__(**kwargs)
    self.size = tuple(int(s) for s in size) if size is not None else None

  def call(self, inputs, reference=None):
    if self.size is not None:
      size = self.size
    elif reference is not None:
      size = tf.shape(reference)[1:3]
    else:
      raise ValueError('ResizeBilinear %r needs a size or a reference tensor.'
                       % self.name)
    return resize_bilinear(inputs, size)

  def compute_output_shape(self, inputs_shape, reference_shape=None):
    if self.size is not None:
      return (inputs_shape[0],) + self.size + (inputs_shape[-1],)
    if reference_shape is not None:
      return (inputs_shape[0],) + tuple(reference_shape[1:3]) + (inputs_shape[-1],)
    return (inputs_shape[0], None, None, inputs_shape[-1])

  def get_config(self):
    return dict(super().get_config(), size=self.size)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class NormalizeImage(keras.layers.Layer):
  """Maps 0..255 pixels to the backbone's input range, as the original extractor.

  ``mode='zero_mean_unit_range'``: ``(2/255) * x - 1`` (Xception, MobileNet,
  ResNet ``_beta``); ``mode='subtract_imagenet_mean'``: ``x - [123.15, 115.90,
  103.06]`` (plain ResNet v1). Extra channels beyond RGB get mean 0, as the
  original.
  """

  MEAN_RGB = pixels.IMAGENET_MEAN_RGB

  def __init__(self, mode='zero_mean_unit_range', **kwargs):
    super().__init__(**kwargs)
    if mode not in ('zero_mean_unit_range', 'subtract_imagenet_mean', 'none'):
      raise ValueError('Unknown image normalisation %r.' % (mode,))
    self.mode = mode

  def call(self, inputs):
    x = tf.cast(inputs, tf.float32)
    if self.mode == 'zero_mean_unit_range':
      x = (2.0 / 255.0) * x - 1.0
    elif self.mode == 'subtract_imagenet_mean':
      channels = tf.shape(x)[-1]
      mean = tf.concat([tf.constant(self.MEAN_RGB, tf.float32),
                        tf.zeros([channels - 3], tf.float32)], axis=0)
      x = x - mean
    return tf.cast(x, self.compute_dtype)

  def get_config(self):
    return dict(super().get_config(), mode=self.mode)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class MergeLogits(keras.layers.Layer):
  """Merges per-scale logits of an image pyramid by max or mean (original merge_method)."""

  def __init__(self, method='max', **kwargs):
    super().__init__(**kwargs)
    if method not in ('max', 'avg'):
      raise ValueError("merge_method must be 'max' or 'avg', got %r." % (method,))
    self.method = method

  def call(self, inputs):
    stacked = tf.stack(inputs, axis=4)
    if self.method == 'max':
      return tf.reduce_max(stacked, axis=4)
    return tf.reduce_mean(stacked, axis=4)

  def compute_output_shape(self, input_shape):
    return input_shape[0]

  def get_config(self):
    return dict(super().get_config(), method=self.method)


def fixed_padding_amounts(kernel_size, rate=1):
  """(pad_beg, pad_end) of the original ``fixed_padding`` for strided convs.

  The original pads explicitly (independently of the input size) and then
  convolves VALID, unlike TF's SAME which pads asymmetrically by input size.
  """
  effective = kernel_size + (kernel_size - 1) * (rate - 1)
  total = effective - 1
  beg = total // 2
  return beg, total - beg


@keras.saving.register_keras_serializable(package='deeplab_tf')
class Dropout(keras.layers.Layer):
  """``slim.dropout(keep_prob)`` as the original runs it in training.

  ``where(u >= 1 - keep_prob, x * (1 / keep_prob), 0)`` with ``u`` uniform in
  [0, 1) of the input's shape; the identity outside training. The uniform
  draw is the original graph's only random op: ``uniform_source`` (a callable
  ``shape -> float32 tensor``, default None = a fresh draw) lets the
  conformance check replay the original's draws (``shared/reference/train``).
  """

  def __init__(self, keep_prob=0.9, seed=None, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 < keep_prob <= 1.0:
      raise ValueError('keep_prob must be in (0, 1]; got %r.' % (keep_prob,))
    self.keep_prob = float(keep_prob)
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)
    self.uniform_source = None

  def call(self, inputs, training=None):
    if not training or self.keep_prob == 1.0:
      return inputs
    # tf.nn.dropout's float32 constants: rate = 1 - keep_prob, scale = 1/(1 - rate).
    rate = 1.0 - self.keep_prob
    shape = tf.shape(inputs)
    if self.uniform_source is not None:
      uniform = tf.cast(self.uniform_source(shape), inputs.dtype)
    else:
      uniform = keras.random.uniform(shape, seed=self.seed_generator,
                                     dtype=inputs.dtype)
    scaled = inputs * tf.cast(1.0 / (1.0 - rate), inputs.dtype)
    return tf.where(uniform >= tf.cast(rate, inputs.dtype), scaled,
                    tf.zeros_like(scaled))

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return dict(super().get_config(), keep_prob=self.keep_prob, seed=self.seed)
