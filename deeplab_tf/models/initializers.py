"""The original's weight initialisers, and how to read them back off a model.

Layers that a checkpoint does not restore (ASPP, decoder, logits after
``--noinitialize_last_layer``, or a whole backbone trained from scratch)
start from the initialiser the original code attaches, which comes from the
backbone's arg scope or from tf_slim's defaults (``shared/reference/train``,
``init_*.json``, lists each variable's):

* ``truncated_normal(stddev)``: TF's truncated normal (redrawn beyond two
  standard deviations). Xception and MobileNet arg scopes (0.09), the logits
  (0.01), the separable ASPP / decoder / Dense Prediction Cell convs
  (``split_separable_conv2d``: depthwise 0.33, pointwise 0.06).
* ``xavier()``: tf_slim's default ``weights_initializer`` for every conv that
  sets none (``xavier_initializer()`` = ``variance_scaling_initializer(
  factor=1, mode='FAN_AVG', uniform=True)``): image pooling, aspp0, concat
  projection, decoder feature projection and non-separable convs; in the
  Dense Prediction Cell its 1x1 and pyramid-pooling branches and
  ``meta_architecture/concat_projection``.
* ``slim_variance_scaling()``: ResNet's arg scope (``factor=2, FAN_IN``, not
  uniform), whose truncated normal has stddev ``sqrt(1.3 * factor / n)``;
  Keras' VarianceScaling divides by 0.8796 instead, so it is its own class.

``describe`` gives a comparable ``(family, params)`` for an initialiser of
ours or of the original (the fixture's class name and parameters), and
``variable_initializers`` finds the initialiser behind every variable of a
model by its original name.
"""
import math
from typing import Dict, Tuple

import keras
# Keras' base of its own seeded initialisers (seed=None: a fresh draw per
# instance); not in the public namespace.
from keras.src.initializers.random_initializers import RandomInitializer

_SLIM_MODES = ('FAN_IN', 'FAN_OUT', 'FAN_AVG')


def truncated_normal(stddev, mean=0.0):
  """``tf.truncated_normal_initializer(mean, stddev)``."""
  return keras.initializers.TruncatedNormal(mean=mean, stddev=stddev)


def xavier():
  """tf_slim ``xavier_initializer()`` (glorot uniform), slim.conv2d's default."""
  return SlimVarianceScaling(factor=1.0, mode='FAN_AVG', uniform=True)


def slim_variance_scaling(factor=2.0, mode='FAN_IN', uniform=False):
  """tf_slim ``variance_scaling_initializer`` (defaults: ResNet's arg scope)."""
  return SlimVarianceScaling(factor=factor, mode=mode, uniform=uniform)


def zeros():
  return keras.initializers.Zeros()


def _slim_fans(shape):
  """tf_slim's fan computation: spatial dims multiply both fans."""
  if not shape:
    return 1.0, 1.0
  fan_in = float(shape[-2]) if len(shape) > 1 else float(shape[-1])
  fan_out = float(shape[-1])
  for dim in shape[:-2]:
    fan_in *= float(dim)
    fan_out *= float(dim)
  return fan_in, fan_out


@keras.saving.register_keras_serializable(package='deeplab_tf')
class SlimVarianceScaling(RandomInitializer):
  """tf_slim ``variance_scaling_initializer(factor, mode, uniform)``.

  ``n`` = fan_in, fan_out or their mean (spatial dims multiply both);
  uniform: U(-sqrt(3 factor / n), +sqrt(3 factor / n)); otherwise a normal
  truncated at two standard deviations with stddev ``sqrt(1.3 factor / n)``.
  """

  def __init__(self, factor=2.0, mode='FAN_IN', uniform=False, seed=None):
    if mode not in _SLIM_MODES:
      raise ValueError('mode must be one of %s; got %r.' % (_SLIM_MODES, mode))
    super().__init__(seed=seed)
    self.factor = float(factor)
    self.mode = mode
    self.uniform = bool(uniform)

  def scale_n(self, shape):
    fan_in, fan_out = _slim_fans(tuple(int(d) for d in shape))
    return {'FAN_IN': fan_in, 'FAN_OUT': fan_out,
            'FAN_AVG': (fan_in + fan_out) / 2.0}[self.mode]

  def __call__(self, shape, dtype=None):
    n = self.scale_n(shape)
    if self.uniform:
      limit = math.sqrt(3.0 * self.factor / n)
      return keras.random.uniform(shape, -limit, limit, dtype=dtype,
                                  seed=self.seed)
    stddev = math.sqrt(1.3 * self.factor / n)
    return keras.random.truncated_normal(shape, 0.0, stddev, dtype=dtype,
                                         seed=self.seed)

  def get_config(self):
    return dict(super().get_config(), factor=self.factor, mode=self.mode,
                uniform=self.uniform)


# --------------------------------------------------------------------------
# Comparable descriptions: (family, params)
# --------------------------------------------------------------------------
def _vs(scale, mode, distribution):
  return ('variance_scaling', {'scale': float(scale), 'mode': mode.lower(),
                               'distribution': distribution})


def describe(initializer) -> Tuple[str, Dict[str, object]]:
  """``(family, params)`` of one of our (Keras) initialisers.

  Families: ``constant`` (value), ``truncated_normal`` (mean, stddev; TF's
  two-sigma truncation), ``normal``, ``uniform`` (minval, maxval),
  ``variance_scaling`` (scale, mode, distribution: ``uniform``,
  ``slim_truncated_normal`` = stddev sqrt(1.3 scale / n),
  ``truncated_normal`` = sqrt(scale / n) / 0.8796, ``normal``).
  """
  init = initializer
  if isinstance(init, SlimVarianceScaling):
    return _vs(init.factor, init.mode,
               'uniform' if init.uniform else 'slim_truncated_normal')
  if isinstance(init, keras.initializers.Zeros):
    return ('constant', {'value': 0.0})
  if isinstance(init, keras.initializers.Ones):
    return ('constant', {'value': 1.0})
  if isinstance(init, keras.initializers.Constant):
    return ('constant', {'value': float(init.get_config()['value'])})
  if isinstance(init, keras.initializers.TruncatedNormal):
    return ('truncated_normal', {'mean': float(init.mean),
                                 'stddev': float(init.stddev)})
  if isinstance(init, keras.initializers.RandomNormal):
    return ('normal', {'mean': float(init.mean), 'stddev': float(init.stddev)})
  if isinstance(init, keras.initializers.RandomUniform):
    return ('uniform', {'minval': float(init.minval),
                        'maxval': float(init.maxval)})
  if isinstance(init, keras.initializers.VarianceScaling):
    distribution = {'untruncated_normal': 'normal'}.get(init.distribution,
                                                        init.distribution)
    return _vs(init.scale, init.mode, distribution)
  return (type(init).__name__, dict(getattr(init, 'get_config', dict)()))


def describe_original(class_name, params) -> Tuple[str, Dict[str, object]]:
  """``(family, params)`` of an original initialiser as a fixture records it.

  ``class_name`` is the captured initialiser's qualified name (e.g.
  ``tensorflow.python.ops.init_ops.TruncatedNormal``, ``tf_slim.layers.
  initializers.variance_scaling_initializer.<locals>._initializer``);
  ``params`` its arguments. Unknown ones are returned as they are, so they
  compare unequal to ours and the check says which.
  """
  params = dict(params or {})
  short = class_name.split(' ')[0].split('.')[-1]
  if 'variance_scaling_initializer' in class_name:
    return _vs(params.get('factor', 2.0), params.get('mode', 'FAN_IN'),
               'uniform' if params.get('uniform', False)
               else 'slim_truncated_normal')
  if short in ('Zeros', 'zeros', 'zeros_initializer') or class_name.startswith(
      'zeros'):
    return ('constant', {'value': 0.0})
  if short in ('Ones', 'ones', 'ones_initializer'):
    return ('constant', {'value': 1.0})
  if short == 'Constant':
    return ('constant', {'value': float(params.get('value', 0.0))})
  if short == 'TruncatedNormal':
    return ('truncated_normal', {'mean': float(params.get('mean', 0.0)),
                                 'stddev': float(params.get('stddev', 1.0))})
  if short == 'RandomNormal':
    return ('normal', {'mean': float(params.get('mean', 0.0)),
                       'stddev': float(params.get('stddev', 1.0))})
  if short == 'RandomUniform':
    return ('uniform', {'minval': float(params.get('minval', 0.0)),
                        'maxval': float(params.get('maxval', 1.0))})
  if short == 'GlorotUniform':
    return _vs(1.0, 'fan_avg', 'uniform')
  if short == 'GlorotNormal':
    return _vs(1.0, 'fan_avg', 'truncated_normal')
  if short == 'VarianceScaling':
    distribution = params.get('distribution', 'truncated_normal')
    distribution = {'untruncated_normal': 'normal'}.get(distribution,
                                                        distribution)
    return _vs(params.get('scale', 1.0), params.get('mode', 'fan_in'),
               distribution)
  return (class_name, params)


def same_description(a, b, rel=1e-6):
  """Whether two ``(family, params)`` are equal (floats to ``rel``)."""
  if a[0] != b[0] or set(a[1]) != set(b[1]):
    return False
  for key, value in a[1].items():
    other = b[1][key]
    if isinstance(value, float) or isinstance(other, float):
      if abs(float(value) - float(other)) > rel * max(abs(float(other)), 1e-30):
        return False
    elif value != other:
      return False
  return True


def format_description(description):
  family, params = description
  return '%s(%s)' % (family, ', '.join('%s=%s' % (k, params[k])
                                       for k in sorted(params)))


_INITIALIZER_ATTRIBUTES = {
    'kernel': ('depthwise_initializer', 'kernel_initializer'),
    'depthwise_kernel': ('depthwise_initializer',),
    'pointwise_kernel': ('pointwise_initializer',),
    'bias': ('bias_initializer',),
    'gamma': ('gamma_initializer',),
    'beta': ('beta_initializer',),
    'moving_mean': ('moving_mean_initializer',),
    'moving_variance': ('moving_variance_initializer',),
}


def variable_initializers(model) -> Dict[str, object]:
  """``{original variable name: Keras initialiser}`` for every model weight."""
  from deeplab_tf.models import variable_names  # pylint: disable=g-import-not-at-top
  result = {}
  for layer in model.layers:
    for weight in layer.weights:
      leaf = weight.name.split('/')[-1].split(':')[0]
      init = None
      for attribute in _INITIALIZER_ATTRIBUTES.get(leaf, ()):
        init = getattr(layer, attribute, None)
        if init is not None:
          break
      result[variable_names.original_name(layer, weight.name)] = init
  return result
