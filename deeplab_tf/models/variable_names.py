"""Our layer and weight names <-> the original's variable names.

Layers are named after the original variable scopes, ``/`` written as
``SCOPE_SEPARATOR``; Keras weight leaves map to slim's (``kernel`` ->
``weights``, ``bias`` -> ``biases``, a separable conv's ``depthwise_kernel``
/ ``pointwise_kernel`` -> ``depthwise_weights`` / ``pointwise_weights``;
BatchNorm's are the same). Checkpoint
conversion, initialisers, multipliers and L2 all look variables up by these
names.
"""
from typing import Dict

import keras
import tensorflow as tf

SCOPE_SEPARATOR = '.'
_LEAF = {'kernel': 'weights', 'depthwise_kernel': 'depthwise_weights',
         'bias': 'biases',
         # A one-scope separable conv (the NAS cells'): slim keeps both
         # kernels under the conv's scope.
         'pointwise_kernel': 'pointwise_weights'}


def layer_name(scope):
  """Keras layer name for an original variable scope."""
  return scope.replace('/', SCOPE_SEPARATOR)


def scope_of(name):
  """Original variable scope for a Keras layer name (inverse of layer_name)."""
  return name.replace(SCOPE_SEPARATOR, '/')


def original_name(layer, weight_name):
  """TF1 variable name of a Keras weight of one of our layers.

  A weight name may carry a sub-scope written with ``SCOPE_SEPARATOR``
  (``act_quant.min`` -> ``<scope>/act_quant/min``, models/quantize.py); a
  layer holding a variable outside its scope names it itself
  (``original_variable_name(leaf)``).
  """
  leaf = weight_name.split('/')[-1].split(':')[0]
  own = getattr(layer, 'original_variable_name', None)
  if own is not None:
    return own(leaf)
  if leaf == 'kernel' and isinstance(layer, keras.layers.DepthwiseConv2D):
    leaf = 'depthwise_kernel'  # Keras 3 calls the depthwise kernel 'kernel'
  return '%s/%s' % (scope_of(layer.name), scope_of(_LEAF.get(leaf, leaf)))


def model_variables(model) -> Dict[str, tf.Variable]:
  """{original variable name: Keras variable} for every weight of ``model``."""
  result = {}
  for layer in model.layers:
    for w in layer.weights:
      name = original_name(layer, w.name)
      if name in result and result[name] is not w:
        raise ValueError('Two model variables map to %s.' % name)
      result[name] = w
  return result
