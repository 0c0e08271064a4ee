"""L2 weight decay as the original DeepLab arg scopes apply it.

In the original, slim arg scopes attach ``l2_regularizer(weight_decay)`` to
some layers only: ``xception_arg_scope``, mobilenet's ``training_scope``,
``resnet_arg_scope``, ``utils.split_separable_conv2d`` and the ASPP / decoder /
logits scopes of ``model.py``. Traced through the original graphs of our
configurations, the result is one rule on variable names:

* regularised: exactly the variables whose leaf is ``weights`` (regular convs,
  1x1 projections, separable *pointwise* kernels, the logits kernel), and
  both kernels of the NAS backbones' one-scope separable convs
  (``pointwise_weights``, ``depthwise_weights`` under ``pnasnet/`` or
  ``hnasnet/``: ``nas_arg_scope`` gives slim.separable_conv2d its
  regularizer, which slim applies to both kernels);
* not regularised: the other ``depthwise_weights`` (backbone, ASPP and
  decoder), BatchNorm ``gamma`` / ``beta`` and every ``biases``.

Each term is ``weight_decay * sum(w^2) / 2`` (``tf.nn.l2_loss``); train.py
passes one ``weight_decay`` (default 4e-5) to backbone and head alike and adds
the sum of the terms to the task loss.
"""
import dataclasses
from typing import Dict, Mapping

import tensorflow as tf

from deeplab_tf.models.backbones import nas_network

DEFAULT_WEIGHT_DECAY = 4e-5   # original train.py --weight_decay
REGULARIZED_LEAF = 'weights'
# Backbone scopes whose depthwise kernels are regularised too (the NAS ones).
REGULARIZED_DEPTHWISE_SCOPES = nas_network.REGULARIZED_DEPTHWISE_SCOPES


@dataclasses.dataclass(frozen=True)
class RegularizationSettings:
  weight_decay: float = DEFAULT_WEIGHT_DECAY

  def __post_init__(self):
    if self.weight_decay < 0:
      raise ValueError('weight_decay must be >= 0; got %r.'
                       % (self.weight_decay,))


def is_regularized(name: str) -> bool:
  """Whether the original gives the variable ``name`` an L2 term."""
  leaf = name.rsplit('/', 1)[-1].split(':')[0]
  if leaf == 'depthwise_weights':
    return name.startswith(REGULARIZED_DEPTHWISE_SCOPES)
  return leaf in (REGULARIZED_LEAF, 'pointwise_weights')


def regularized_variables(model_or_variables, trainable_only=True
                          ) -> Dict[str, object]:
  """``{original name: variable}`` of the variables that get an L2 term.

  Args:
    model_or_variables: one of our Keras models, or a ``{original name:
      variable}`` mapping (``checkpoints.model_variables``).
    trainable_only: for a model, skip variables Keras does not train (a frozen
      layer's kernel is a constant: its term would not change the gradient).
  """
  if isinstance(model_or_variables, Mapping):
    return {n: v for n, v in model_or_variables.items() if is_regularized(n)}
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  named = checkpoints.model_variables(model_or_variables)
  trainable = {id(v) for v in model_or_variables.trainable_weights}
  return {n: v for n, v in named.items()
          if is_regularized(n) and (not trainable_only or id(v) in trainable)}


def l2_term(weights, weight_decay=DEFAULT_WEIGHT_DECAY):
  """One variable's term: ``weight_decay * sum(w^2) / 2`` in float32."""
  w = tf.cast(tf.convert_to_tensor(weights), tf.float32)
  return tf.constant(weight_decay, tf.float32) * tf.nn.l2_loss(w)


def l2_terms(model_or_variables, weight_decay=DEFAULT_WEIGHT_DECAY
             ) -> Dict[str, tf.Tensor]:
  """``{original name: L2 term}`` for every regularised variable."""
  return {name: l2_term(v, weight_decay) for name, v in
          regularized_variables(model_or_variables).items()}


def l2_regularization_loss(model_or_variables,
                           weight_decay=DEFAULT_WEIGHT_DECAY):
  """Sum of the L2 terms (float32 scalar; 0.0 when nothing is regularised)."""
  terms = list(l2_terms(model_or_variables, weight_decay).values())
  if not terms:
    return tf.constant(0.0, tf.float32)
  return tf.add_n(terms)
