"""Per-variable gradient multipliers of the original DeepLab training.

Restates ``train_utils.get_model_gradient_multipliers`` and how train.py uses
it (``model.get_extra_layer_scopes`` + ``multiply_gradients``), on ORIGINAL
variable names (``deeplab_tf.checkpoints.model_variables`` gives them for our
models):

* a variable whose name contains ``biases`` gets 2.0 (Caffe-style doubled
  bias learning rate, inherited from DeepLab v1/v2);
* a variable whose name *contains* one of the last-layer scopes (plain,
  case-sensitive substring test; the first matching scope wins) gets
  ``last_layer_gradient_multiplier``, or twice that for a bias;
* every other variable is absent from the dict (gradient unchanged).

train.py multiplies gradients whenever this dict is non-empty, which it always
is (the logits have biases), so every bias trains with a 2x gradient even at
the default ``last_layer_gradient_multiplier=1`` — backbone biases too.
"""
import dataclasses
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

# The original model.get_extra_layer_scopes lives with the model scopes.
from deeplab_tf.models.deeplab import get_extra_layer_scopes  # pylint: disable=unused-import

BIAS_MULTIPLIER = 2.0
BIAS_SUBSTRING = 'biases'


@dataclasses.dataclass(frozen=True)
class GradientMultiplierSettings:
  """train.py flags deciding the multipliers (original defaults)."""
  last_layers_contain_logits_only: bool = False
  last_layer_gradient_multiplier: float = 1.0

  @property
  def last_layers(self):
    return get_extra_layer_scopes(self.last_layers_contain_logits_only)


def get_gradient_multipliers(variable_names: Iterable[str],
                             last_layers: Sequence[str],
                             last_layer_gradient_multiplier=1.0
                             ) -> Dict[str, float]:
  """``{name: multiplier}`` for the variables that get one (original rules).

  Args:
    variable_names: original TF1 names of the model variables (BatchNorm
      moving statistics may be included: they get a multiplier only inside a
      last layer, as in the original, and have no gradient anyway).
    last_layers: scope strings, matched as substrings of the names.
    last_layer_gradient_multiplier: multiplier of the last layers' gradients.
  """
  if isinstance(last_layers, str):
    raise ValueError('last_layers must be a list of scope strings, got the '
                     'single string %r (write [%r]).'
                     % (last_layers, last_layers))
  multipliers = {}
  for name in variable_names:
    is_bias = BIAS_SUBSTRING in name
    if is_bias:
      multipliers[name] = BIAS_MULTIPLIER
    for scope in last_layers:
      if scope in name:
        multipliers[name] = (2 * last_layer_gradient_multiplier if is_bias
                             else last_layer_gradient_multiplier)
        break
  return multipliers


def model_gradient_multipliers(model, settings: Optional[
    GradientMultiplierSettings] = None) -> Dict[str, float]:
  """The multiplier dict of one of our Keras models, keyed by original names."""
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  settings = settings or GradientMultiplierSettings()
  return get_gradient_multipliers(checkpoints.model_variables(model),
                                  settings.last_layers,
                                  settings.last_layer_gradient_multiplier)


class GradientMultiplier:
  """Applies name-keyed multipliers to ``(gradient, variable)`` pairs.

  Built from ``{original name: variable}`` (``checkpoints.model_variables``)
  and ``{original name: multiplier}``; variables are then recognised by
  identity, so it works on the pairs a custom train step hands to
  ``optimizer.apply_gradients`` (also per replica under ``tf.distribute``).

  Example:
    >>> mult = GradientMultiplier.for_model(model)          # doctest: +SKIP
    >>> grads = tape.gradient(loss, model.trainable_weights)  # doctest: +SKIP
    >>> optimizer.apply_gradients(mult(zip(grads, model.trainable_weights)))
    ... # doctest: +SKIP
  """

  def __init__(self, named_variables: Mapping[str, object],
               multipliers: Mapping[str, float]):
    unknown = sorted(set(multipliers) - set(named_variables))
    if unknown:
      raise ValueError('Multipliers given for variables the model does not '
                       'have: %s' % unknown[:10])
    self.multipliers = dict(multipliers)
    self._by_id = {id(named_variables[name]): float(m)
                   for name, m in multipliers.items()}
    self._names = {id(v): name for name, v in named_variables.items()}

  @classmethod
  def for_model(cls, model, settings: Optional[
      GradientMultiplierSettings] = None):
    from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
    named = checkpoints.model_variables(model)
    return cls(named, model_gradient_multipliers(model, settings))

  def multiplier_of(self, variable) -> float:
    return self._by_id.get(id(variable), 1.0)

  def __call__(self, grads_and_vars) -> List[Tuple[object, object]]:
    out = []
    for grad, var in grads_and_vars:
      m = self._by_id.get(id(var))
      if grad is None or m is None:
        out.append((grad, var))
        continue
      out.append((multiply_gradient(grad, m), var))
    return out


def multiply_gradient(grad, multiplier):
  """``grad * multiplier`` in the gradient's dtype (dense or IndexedSlices)."""
  if isinstance(grad, tf.IndexedSlices):
    scaled = grad.values * tf.cast(multiplier, grad.values.dtype)
    return tf.IndexedSlices(scaled, grad.indices, grad.dense_shape)
  return grad * tf.cast(multiplier, grad.dtype)
