"""Layer construction with the original variable scopes and explicit arg scopes.

The original DeepLab code builds layers with slim inside ``arg_scope``s that
silently decide where BatchNorm, activations and padding go. Here every layer
call states them. ``LayerBuilder`` also plays the role of
``tf.variable_scope(reuse=tf.AUTO_REUSE)``: asking twice for the same scope
returns the same Keras layer, so the image pyramid (several input scales) and
multi-scale evaluation share one set of weights, exactly as the original.

Layer names are the original variable scopes with ``/`` replaced by ``.``
(Keras 3 forbids ``/`` in names), so ``xception_65.entry_flow.conv1_1`` holds
``xception_65/entry_flow/conv1_1/weights`` and the BatchNorm layer
``xception_65.entry_flow.conv1_1.BatchNorm`` holds ``.../BatchNorm/gamma`` etc.
"""
import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from deeplab_tf.models import layers as dl_layers

SCOPE_SEPARATOR = '.'


def layer_name(scope):
  """Keras layer name for an original variable scope."""
  return scope.replace('/', SCOPE_SEPARATOR)


def scope_of(name):
  """Original variable scope for a Keras layer name (inverse of layer_name)."""
  return name.replace(SCOPE_SEPARATOR, '/')


@dataclasses.dataclass(frozen=True)
class BatchNormParams:
  """BatchNorm settings of one original arg scope (slim: decay, epsilon)."""
  epsilon: float
  decay: float


class LayerBuilder:
  """Creates (or reuses) layers by original scope and applies them.

  Args:
    batch_norm_trainable: False keeps every BatchNorm in inference mode with
      frozen statistics and parameters (the original ``is_training and
      fine_tune_batch_norm`` being False); True trains them (phase 1).
    sync_batch_norm: synchronise batch statistics across replicas when
      training under a distribution strategy.
    fold_batch_norm: build inference-only convolutions with a bias in place of
      BatchNorm (see ``deeplab_tf.models.fold``); such a model takes folded
      weights, not checkpoint weights directly.
  """

  def __init__(self, batch_norm_trainable=False, sync_batch_norm=False,
               fold_batch_norm=False):
    self.batch_norm_trainable = batch_norm_trainable
    self.sync_batch_norm = sync_batch_norm
    self.fold_batch_norm = fold_batch_norm
    self._layers = {}
    # scope -> BatchNormParams of the conv it follows, for BN folding.
    self.folded_batch_norms = {}

  # --- reuse -----------------------------------------------------------------
  def get(self, scope, factory):
    """Returns the layer for ``scope``, creating it with ``factory`` once."""
    if scope not in self._layers:
      self._layers[scope] = factory(layer_name(scope))
    return self._layers[scope]

  # --- primitives ------------------------------------------------------------
  def batch_norm(self, x, scope, params):
    bn_scope = scope + '/BatchNorm'
    cls = (SyncBatchNormalization if self.sync_batch_norm
           else keras.layers.BatchNormalization)
    layer = self.get(bn_scope, lambda name: cls(
        momentum=params.decay, epsilon=params.epsilon, center=True, scale=True,
        trainable=self.batch_norm_trainable, name=name))
    return layer(x)

  @staticmethod
  def activation(x, activation):
    """Applies 'relu', 'relu6', one of HARD_ACTIVATIONS, or None."""
    if activation is None:
      return x
    if activation == 'relu':
      return keras.layers.ReLU()(x)
    if activation == 'relu6':
      return keras.layers.ReLU(max_value=6.0)(x)
    if activation in HARD_ACTIVATIONS:
      return HARD_ACTIVATIONS[activation]()(x)
    raise ValueError('Unknown activation %r.' % (activation,))

  def _pad(self, x, kernel_size, stride, rate, explicit_padding):
    """Original ``conv2d_same``: explicit symmetric padding for strided convs."""
    if explicit_padding and stride > 1:
      beg, end = dl_layers.fixed_padding_amounts(kernel_size, rate)
      if beg or end:
        x = keras.layers.ZeroPadding2D(((beg, end), (beg, end)))(x)
      return x, 'valid'
    return x, 'same'

  def _post(self, x, scope, bn, activation, has_bias):
    if bn is not None and not self.fold_batch_norm:
      x = self.batch_norm(x, scope, bn)
    elif bn is not None:
      self.folded_batch_norms[scope] = bn
    return self.activation(x, activation)

  def conv2d(self, x, scope, filters, kernel_size, stride=1, rate=1,
             bn: Optional[BatchNormParams] = None, activation=None,
             use_bias=None, explicit_padding=False):
    """slim.conv2d: conv -> [BatchNorm] -> [activation]; biases only without BN."""
    if use_bias is None:
      use_bias = bn is None
    has_bias = use_bias or (bn is not None and self.fold_batch_norm)
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: keras.layers.Conv2D(
        filters, kernel_size, strides=stride, dilation_rate=rate,
        padding=padding, use_bias=has_bias, name=name))
    return self._post(layer(x), scope, bn, activation, has_bias)

  def depthwise_conv2d(self, x, scope, kernel_size, stride=1, rate=1,
                       bn: Optional[BatchNormParams] = None, activation=None,
                       explicit_padding=False):
    """slim.separable_conv2d(num_outputs=None): depthwise only, multiplier 1."""
    has_bias = bn is None or self.fold_batch_norm
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: keras.layers.DepthwiseConv2D(
        kernel_size, strides=stride, dilation_rate=rate, padding=padding,
        depth_multiplier=1, use_bias=has_bias, name=name))
    return self._post(layer(x), scope, bn, activation, has_bias)

  def split_separable_conv2d(self, x, scope, filters, rate=1, bn=None,
                             activation='relu', kernel_size=3):
    """The original ``utils.split_separable_conv2d`` used by ASPP and decoder.

    depthwise (atrous) -> BN -> act -> 1x1 -> BN -> act, with the depthwise
    part under ``<scope>_depthwise`` and the 1x1 under ``<scope>_pointwise``.
    """
    x = self.depthwise_conv2d(x, scope + '_depthwise', kernel_size, rate=rate,
                              bn=bn, activation=activation)
    return self.conv2d(x, scope + '_pointwise', filters, 1, bn=bn,
                       activation=activation)

  @property
  def layers(self):
    return dict(self._layers)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class SyncBatchNormalization(keras.layers.BatchNormalization):
  """BatchNorm whose training statistics are those of the global batch.

  Under a tf.distribute strategy with several replicas, the mean and the
  variance are all-reduced over the replicas. Unlike Keras'
  ``synchronized=True`` (variance as E[x^2] - E[x]^2, which cancels
  catastrophically for features with a large mean), the variance is computed
  in two passes around the global mean, so replicas reproduce the statistics
  of one device on the same global batch to float rounding.
  """

  def _moments(self, inputs, mask):
    ctx = tf.distribute.get_replica_context()
    if mask is not None or ctx is None or ctx.num_replicas_in_sync == 1:
      return super()._moments(inputs, mask)
    axes = list(self._reduction_axes)
    x = tf.cast(inputs, tf.float32)
    shape = tf.shape(x)
    count = tf.cast(tf.reduce_prod(tf.gather(shape, axes)), tf.float32)
    count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    mean = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                          tf.reduce_sum(x, axes, keepdims=True)) / count
    squares = tf.reduce_sum(tf.square(x - mean), axes, keepdims=True)
    variance = ctx.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count
    return (tf.cast(tf.squeeze(mean, axes), inputs.dtype),
            tf.cast(tf.squeeze(variance, axes), inputs.dtype))


@keras.saving.register_keras_serializable(package='deeplab_tf')
class HardSwish(keras.layers.Layer):
  """MobileNetV3 hard swish: x * relu6(x + 3) / 6 (slim mobilenet_v3.hard_swish)."""

  def call(self, x):
    return x * keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class HardSigmoid(keras.layers.Layer):
  """MobileNetV3 hard sigmoid: relu6(x + 3) / 6 (slim mobilenet_v3.hard_sigmoid)."""

  def call(self, x):
    return keras.ops.relu6(x + 3.0) * (1.0 / 6.0)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class Sigmoid(keras.layers.Layer):

  def call(self, x):
    return keras.ops.sigmoid(x)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class QSigmoid(keras.layers.Layer):
  """DeepLab ``utils.q_sigmoid`` (quantisation-friendly sigmoid of LR-ASPP)."""

  def call(self, x):
    return keras.ops.relu6(x + 3.0) * 0.16667


HARD_ACTIVATIONS = {'hard_swish': HardSwish, 'hard_sigmoid': HardSigmoid,
                    'sigmoid': Sigmoid, 'q_sigmoid': QSigmoid}
