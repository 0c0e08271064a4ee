"""The original optimizer: TF1 ``MomentumOptimizer`` semantics as a Keras 3 optimizer.

train.py uses ``tf.train.MomentumOptimizer(learning_rate, momentum)``:
``accum = momentum * accum + grad; var -= lr * accum``. Keras' SGD folds the
learning rate into the velocity (``v = momentum * v - lr * grad``), which is
the same only while the rate is constant; under the poly schedule the two
drift apart. This class keeps the original update.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package='deeplab_tf')
class TF1Momentum(keras.optimizers.Optimizer):
  """Heavy-ball momentum with the learning rate applied at update time."""

  def __init__(self, learning_rate=0.0001, momentum=0.9, name='Momentum',
               **kwargs):
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    if not 0.0 <= momentum < 1.0:
      raise ValueError('momentum must be in [0, 1), got %r.' % (momentum,))
    self.momentum = momentum

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self.accumulators = [self.add_variable_from_reference(v, 'momentum')
                         for v in var_list]

  def accumulator(self, variable):
    """The momentum accumulator of ``variable`` (TF1's ``Momentum`` slot).

    After the first step from zero slots it equals the applied gradient.
    """
    return self.accumulators[self._get_variable_index(variable)]

  def update_step(self, gradient, variable, learning_rate):
    lr = ops.cast(learning_rate, variable.dtype)
    grad = ops.cast(gradient, variable.dtype)
    accum = self.accumulators[self._get_variable_index(variable)]
    self.assign(accum, ops.add(ops.multiply(accum, self.momentum), grad))
    self.assign_sub(variable, ops.multiply(lr, accum))

  def get_config(self):
    return dict(super().get_config(), momentum=self.momentum)
