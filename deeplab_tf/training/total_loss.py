"""The loss train.py minimises: task losses plus L2 terms, across clones/replicas.

The original (``model_deploy.optimize_clones``) divides each clone's summed
task losses by the number of clones, adds the regularisation terms once (to
the first clone) and sums the clones' gradients. Under ``tf.distribute`` the
replicas' gradients are summed as well, so each replica minimises
``task / n + regularisation / n``: the summed gradient is then exactly the
original's (mean task gradient + one regularisation gradient).
"""
from typing import Mapping, Optional, Sequence, Union

import tensorflow as tf

LossCollection = Union[tf.Tensor, float, Sequence[tf.Tensor],
                       Mapping[str, tf.Tensor]]


def _sum(losses: LossCollection):
  if isinstance(losses, Mapping):
    losses = list(losses.values())
  if isinstance(losses, (list, tuple)):
    if not losses:
      raise ValueError('No task losses given.')
    return tf.add_n([tf.cast(l, tf.float32) for l in losses])
  return tf.cast(losses, tf.float32)


def total_training_loss(task_losses: LossCollection, regularization_loss=0.0,
                        num_replicas: Optional[int] = None):
  """The per-replica loss to differentiate.

  Args:
    task_losses: a scalar, a list, or the ``{scale: loss}`` dict of
      ``softmax_cross_entropy_loss_for_each_scale`` (summed).
    regularization_loss: sum of the L2 terms (``l2_regularization_loss``).
    num_replicas: replicas whose gradients get summed; default: the current
      strategy's ``num_replicas_in_sync`` (1 without a strategy).
  """
  if num_replicas is None:
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
  if num_replicas < 1:
    raise ValueError('num_replicas must be >= 1; got %r.' % (num_replicas,))
  total = _sum(task_losses) + tf.cast(regularization_loss, tf.float32)
  if num_replicas == 1:
    return total
  return total / float(num_replicas)
