"""Learning-rate schedules of the original DeepLab training (poly, step, cosine, multi-steps).

Restates ``train_utils.get_model_learning_rate``. The "poly" policy is the one
of DeepLab (Chen et al., TPAMI 2017, arXiv:1606.00915, Sec. 4.1:
``base * (1 - iter/max_iter)^power``), used with power 0.9 throughout the
DeepLab papers. Rules:

1. Every policy runs on ``adj = max(step - slow_start_step, 0)``.
2. Before ``slow_start_step`` the rate is ``slow_start_learning_rate``, or with
   ``slow_start_burnin_type='linear'`` it climbs linearly from it towards
   ``base_learning_rate``; at ``slow_start_step`` the policy starts at its
   full base value.
3. poly: ``(base - end) * (1 - min(adj, D) / D)^power + end`` with
   ``D = decay_steps`` or, when that is 0, ``training_number_of_steps -
   slow_start_step``. step: ``base * factor^floor(adj / decay_step)``.
   cosine: ``base * (1 + cos(pi * min(adj, T) / T)) / 2``,
   ``T = training_number_of_steps - slow_start_step``. multi_steps: piecewise
   constant in ``adj``, a step equal to a boundary keeps the earlier value.

The arithmetic is float32 in the original's order (e.g. the float32
cancellation in ``1 - adj/D`` near the end of a poly schedule), so values agree
with the original to a few float32 ulps.

train.py itself exposes only poly and step, never passes the burn-in type or
boundaries, and its Adam option uses a constant ``adam_learning_rate``.
"""
import dataclasses
import math
from typing import Optional, Sequence, Tuple

import keras
import tensorflow as tf

POLICIES = ('poly', 'step', 'cosine', 'multi_steps')
BURNIN_TYPES = ('none', 'linear')


@dataclasses.dataclass(frozen=True)
class LearningRateSettings:
  """Arguments of the original ``get_model_learning_rate``, train.py defaults."""
  learning_policy: str = 'poly'
  base_learning_rate: float = 1e-4
  learning_rate_decay_step: int = 2000
  learning_rate_decay_factor: float = 0.1
  training_number_of_steps: int = 30000
  learning_power: float = 0.9
  slow_start_step: int = 0
  slow_start_learning_rate: float = 1e-4
  slow_start_burnin_type: str = 'none'
  decay_steps: float = 0.0
  end_learning_rate: float = 0.0
  boundaries: Optional[Tuple[int, ...]] = None
  boundary_learning_rates: Optional[Tuple[float, ...]] = None

  def __post_init__(self):
    for name in ('boundaries', 'boundary_learning_rates'):
      value = getattr(self, name)
      if value is not None:
        object.__setattr__(self, name, tuple(value))
    validate_learning_rate_arguments(**self.kwargs())

  def kwargs(self):
    return dataclasses.asdict(self)


def _poly_decay_steps(decay_steps, training_number_of_steps, slow_start_step):
  if decay_steps == 0.0:
    return training_number_of_steps - slow_start_step
  return decay_steps


def validate_learning_rate_arguments(
    learning_policy, base_learning_rate, learning_rate_decay_step,
    learning_rate_decay_factor, training_number_of_steps, learning_power,
    slow_start_step, slow_start_learning_rate, slow_start_burnin_type='none',
    decay_steps=0.0, end_learning_rate=0.0, boundaries=None,
    boundary_learning_rates=None):
  """Raises ValueError naming the offending argument and value."""
  del base_learning_rate, learning_rate_decay_factor, learning_power
  del slow_start_learning_rate, end_learning_rate
  if learning_policy not in POLICIES:
    raise ValueError('Unknown learning_policy %r; expected one of %s.'
                     % (learning_policy, ', '.join(POLICIES)))
  if slow_start_burnin_type not in BURNIN_TYPES:
    raise ValueError('Unknown slow_start_burnin_type %r; expected one of %s.'
                     % (slow_start_burnin_type, ', '.join(BURNIN_TYPES)))
  if slow_start_step < 0:
    raise ValueError('slow_start_step must be >= 0; got %r.' % (slow_start_step,))
  if learning_policy == 'poly':
    d = _poly_decay_steps(decay_steps, training_number_of_steps,
                          slow_start_step)
    if d <= 0:
      raise ValueError(
          'poly decay length must be positive: decay_steps=%r, or (when it is '
          '0) training_number_of_steps - slow_start_step = %r - %r.'
          % (decay_steps, training_number_of_steps, slow_start_step))
  elif learning_policy == 'step':
    if learning_rate_decay_step <= 0:
      raise ValueError('learning_rate_decay_step must be positive for the '
                       "'step' policy; got %r." % (learning_rate_decay_step,))
  elif learning_policy == 'cosine':
    if training_number_of_steps - slow_start_step <= 0:
      raise ValueError(
          "The 'cosine' policy decays over training_number_of_steps - "
          'slow_start_step, which must be positive; got %r - %r.'
          % (training_number_of_steps, slow_start_step))
  elif learning_policy == 'multi_steps':
    if boundaries is None or boundary_learning_rates is None:
      raise ValueError("The 'multi_steps' policy needs boundaries and "
                       'boundary_learning_rates; got boundaries=%r, '
                       'boundary_learning_rates=%r.'
                       % (boundaries, boundary_learning_rates))
    if len(boundary_learning_rates) != len(boundaries) + 1:
      raise ValueError('boundary_learning_rates needs one more entry than '
                       'boundaries; got %d boundaries %r and %d rates %r.'
                       % (len(boundaries), list(boundaries),
                          len(boundary_learning_rates),
                          list(boundary_learning_rates)))
    if not boundaries:
      raise ValueError("The 'multi_steps' policy needs at least one boundary.")
    if any(b >= c for b, c in zip(boundaries[:-1], boundaries[1:])):
      raise ValueError('boundaries must be strictly increasing; got %r.'
                       % (list(boundaries),))


def _f32(value):
  return tf.constant(value, tf.float32)


def _divide_by_constant(x, constant):
  """``x / constant`` as the original's session computed it: ``x * (1/constant)``.

  TF's graph optimiser (grappler) rewrites a division by a constant into a
  multiplication by its float32 reciprocal, and the original divided by
  python constants inside a session; written out here so that eager,
  ``tf.function`` and the original agree bit for bit (plain division differs
  by an ulp, and by ~1e-3 relative in the last poly steps where ``1 - p``
  cancels).
  """
  return x * (1.0 / tf.cast(constant, tf.float32))


def _poly(adj, base, end, power, decay_steps):
  d = tf.cast(decay_steps, tf.float32)
  progress = _divide_by_constant(tf.minimum(tf.cast(adj, tf.float32), d), d)
  return (_f32(base) - _f32(end)) * tf.pow(1.0 - progress, _f32(power)) + _f32(end)


def _staircase(adj, base, decay_step, factor):
  exponent = tf.floor(_divide_by_constant(tf.cast(adj, tf.float32), decay_step))
  return _f32(base) * tf.pow(_f32(factor), exponent)


def _cosine(adj, base, decay_steps):
  t = tf.cast(decay_steps, tf.float32)
  fraction = _divide_by_constant(tf.minimum(tf.cast(adj, tf.float32), t), t)
  return _f32(base) * (0.5 * (1.0 + tf.cos(_f32(math.pi) * fraction)))


def _piecewise(adj, boundaries, values):
  """Constant pieces: adj <= b0 -> v0, b_{i-1} < adj <= b_i -> v_i, else v_last."""
  values = [tf.cast(v, tf.float32) for v in values]
  result = tf.fill(tf.shape(adj), values[-1])
  # From the last boundary down, so the earliest matching piece wins.
  for b, v in reversed(list(zip(boundaries, values[:-1]))):
    result = tf.where(adj <= tf.cast(b, adj.dtype), v, result)
  return result


def learning_rate(step, learning_policy='poly', base_learning_rate=1e-4,
                  learning_rate_decay_step=2000, learning_rate_decay_factor=0.1,
                  training_number_of_steps=30000, learning_power=0.9,
                  slow_start_step=0, slow_start_learning_rate=1e-4,
                  slow_start_burnin_type='none', decay_steps=0.0,
                  end_learning_rate=0.0,
                  boundaries: Optional[Sequence[int]] = None,
                  boundary_learning_rates: Optional[Sequence[float]] = None):
  """The learning rate at ``step`` (int or int tensor, any shape), float32.

  Arguments and their meaning are those of the original
  ``get_model_learning_rate``; defaults are train.py's flag defaults (poly,
  base 1e-4, 30000 steps, power 0.9, no slow start).

  Example:
    >>> float(learning_rate(15000, base_learning_rate=0.007))  # doctest: +ELLIPSIS
    0.00375...
  """
  validate_learning_rate_arguments(
      learning_policy, base_learning_rate, learning_rate_decay_step,
      learning_rate_decay_factor, training_number_of_steps, learning_power,
      slow_start_step, slow_start_learning_rate, slow_start_burnin_type,
      decay_steps, end_learning_rate, boundaries, boundary_learning_rates)
  step = tf.cast(step, tf.int64)
  adj = tf.maximum(step - slow_start_step, 0)
  if learning_policy == 'poly':
    rate = _poly(adj, base_learning_rate, end_learning_rate, learning_power,
                 _poly_decay_steps(decay_steps, training_number_of_steps,
                                   slow_start_step))
  elif learning_policy == 'step':
    rate = _staircase(adj, base_learning_rate, learning_rate_decay_step,
                      learning_rate_decay_factor)
  elif learning_policy == 'cosine':
    rate = _cosine(adj, base_learning_rate,
                   training_number_of_steps - slow_start_step)
  else:
    rate = _piecewise(adj, boundaries, boundary_learning_rates)
  if slow_start_burnin_type == 'linear' and slow_start_step > 0:
    # The original's session folds the constants of
    # ssl + (base - ssl) * step / slow_start_step into one float32 slope.
    slope = _divide_by_constant(
        _f32(base_learning_rate - slow_start_learning_rate), slow_start_step)
    warmup = _f32(slow_start_learning_rate) + tf.cast(step, tf.float32) * slope
  else:
    warmup = tf.fill(tf.shape(step), _f32(slow_start_learning_rate))
  return tf.where(step < slow_start_step, warmup, rate)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class DeepLabLearningRate(keras.optimizers.schedules.LearningRateSchedule):
  """``learning_rate`` as a Keras schedule: pass it as an optimizer's rate.

  The optimizer calls it with its ``iterations`` counter before incrementing
  it, as the original read its global step before ``apply_gradients``.

  Example:
    >>> schedule = DeepLabLearningRate(LearningRateSettings(
    ...     base_learning_rate=0.007, slow_start_step=100))
    >>> opt = keras.optimizers.SGD(schedule, momentum=0.9)
  """

  def __init__(self, settings: Optional[LearningRateSettings] = None,
               **kwargs):
    if settings is not None and kwargs:
      raise ValueError('Give either a LearningRateSettings or keyword '
                       'arguments, not both (got settings and %s).'
                       % sorted(kwargs))
    self.settings = settings or LearningRateSettings(**kwargs)

  def __call__(self, step):
    return learning_rate(step, **self.settings.kwargs())

  def get_config(self):
    config = self.settings.kwargs()
    for name in ('boundaries', 'boundary_learning_rates'):
      if config[name] is not None:
        config[name] = list(config[name])
    return config

  @classmethod
  def from_config(cls, config):
    return cls(**config)
