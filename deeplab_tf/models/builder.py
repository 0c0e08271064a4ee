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

from deeplab_tf.models import initializers
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.batch_norm import BatchNorm
from deeplab_tf.models.variable_names import layer_name
from deeplab_tf.models.variable_names import SCOPE_SEPARATOR  # pylint: disable=unused-import
from deeplab_tf.models.variable_names import scope_of  # pylint: disable=unused-import

# Original utils.split_separable_conv2d initialiser stddevs.
SEPARABLE_DEPTHWISE_STDDEV = 0.33
SEPARABLE_POINTWISE_STDDEV = 0.06


def _fresh(initializer):
  """A new copy of ``initializer`` (None: slim's default, xavier) per layer."""
  if initializer is None:
    return initializers.xavier()
  return initializer.__class__.from_config(initializer.get_config())


@dataclasses.dataclass(frozen=True)
class BatchNormParams:
  """BatchNorm settings of one original arg scope (slim: decay, epsilon)."""
  epsilon: float
  decay: float


class LayerBuilder:
  """Creates (or reuses) layers by original scope and applies them.

  Args:
    fine_tune_batch_norm: the original ``is_training and
      fine_tune_batch_norm``. True (phase 1): in training, BatchNorm
      normalises with batch statistics and updates its moving averages.
      False (phase 2): BatchNorm always uses its moving statistics, which
      stay as they are; gamma and beta remain trainable either way, as in
      the original (``batch_norm.BatchNorm``).
    sync_batch_norm: normalise with the global batch's statistics across
      replicas (not in the original: each replica uses its own sub-batch).
    fold_batch_norm: build inference-only convolutions with a bias in place of
      BatchNorm (see ``deeplab_tf.models.fold``); such a model takes folded
      weights, not checkpoint weights directly.
  """

  def __init__(self, fine_tune_batch_norm=False, sync_batch_norm=False,
               fold_batch_norm=False):
    self.fine_tune_batch_norm = fine_tune_batch_norm
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
    layer = self.get(bn_scope, lambda name: BatchNorm(
        momentum=params.decay, epsilon=params.epsilon,
        train_statistics=self.fine_tune_batch_norm, sync=self.sync_batch_norm,
        name=name))
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
             use_bias=None, explicit_padding=False, weights_initializer=None):
    """slim.conv2d: conv -> [BatchNorm] -> [activation]; biases only without BN.

    ``weights_initializer``: the arg scope's (``initializers``); None is
    slim's default, xavier. Biases start at zero, as slim's.
    """
    if use_bias is None:
      use_bias = bn is None
    has_bias = use_bias or (bn is not None and self.fold_batch_norm)
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: keras.layers.Conv2D(
        filters, kernel_size, strides=stride, dilation_rate=rate,
        padding=padding, use_bias=has_bias,
        kernel_initializer=_fresh(weights_initializer),
        bias_initializer='zeros', name=name))
    return self._post(layer(x), scope, bn, activation, has_bias)

  def depthwise_conv2d(self, x, scope, kernel_size, stride=1, rate=1,
                       bn: Optional[BatchNormParams] = None, activation=None,
                       explicit_padding=False, weights_initializer=None):
    """slim.separable_conv2d(num_outputs=None): depthwise only, multiplier 1."""
    has_bias = bn is None or self.fold_batch_norm
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: keras.layers.DepthwiseConv2D(
        kernel_size, strides=stride, dilation_rate=rate, padding=padding,
        depth_multiplier=1, use_bias=has_bias,
        depthwise_initializer=_fresh(weights_initializer),
        bias_initializer='zeros', name=name))
    return self._post(layer(x), scope, bn, activation, has_bias)

  def split_separable_conv2d(self, x, scope, filters, rate=1, bn=None,
                             activation='relu', kernel_size=3):
    """The original ``utils.split_separable_conv2d`` used by ASPP and decoder.

    depthwise (atrous) -> BN -> act -> 1x1 -> BN -> act, with the depthwise
    part under ``<scope>_depthwise`` and the 1x1 under ``<scope>_pointwise``;
    their own initialisers, truncated normal 0.33 and 0.06, override any
    arg scope (original defaults, never changed by its callers).
    """
    x = self.depthwise_conv2d(
        x, scope + '_depthwise', kernel_size, rate=rate, bn=bn,
        activation=activation,
        weights_initializer=initializers.truncated_normal(
            SEPARABLE_DEPTHWISE_STDDEV))
    return self.conv2d(
        x, scope + '_pointwise', filters, 1, bn=bn, activation=activation,
        weights_initializer=initializers.truncated_normal(
            SEPARABLE_POINTWISE_STDDEV))

  def residual(self, net, shortcut, scope):
    """An inverted-residual block's ``net + input`` (``scope``: the block).

    A hook for builders that rewrite what follows the add
    (models/quantize.py).
    """
    del scope
    return net + shortcut

  @property
  def layers(self):
    return dict(self._layers)


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
