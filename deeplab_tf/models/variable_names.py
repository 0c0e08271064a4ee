"""Our layer and weight names <-> the original's variable names.

Layers are named after the original variable scopes, ``/`` written as
``SCOPE_SEPARATOR``; Keras weight leaves map to slim's (``kernel`` ->
``weights``, ``bias`` -> ``biases``; BatchNorm's are the same). Checkpoint
conversion, initialisers, multipliers and L2 all look variables up by these
names.
"""
from typing import Dict

import keras
import tensorflow as tf

SCOPE_SEPARATOR = '.'
_LEAF = {'kernel': 'weights', 'depthwise_kernel': 'depthwise_weights',
         'bias': 'biases'}


def layer_name(scope):
  """Keras layer name for an original variable scope."""
  return scope.replace('/', SCOPE_SEPARATOR)


def scope_of(name):
  """Original variable scope for a Keras layer name (inverse of layer_name)."""
  return name.replace(SCOPE_SEPARATOR, '/')


def original_name(layer, weight_name):
  """TF1 variable name of a Keras weight of one of our layers."""
  leaf = weight_name.split('/')[-1].split(':')[0]
  if leaf == 'kernel' and isinstance(layer, keras.layers.DepthwiseConv2D):
    leaf = 'depthwise_kernel'  # Keras 3 calls the depthwise kernel 'kernel'
  return '%s/%s' % (scope_of(layer.name), _LEAF.get(leaf, leaf))


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
