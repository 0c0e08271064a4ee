"""The original DeepLab training math: loss, learning rate, gradient multipliers, L2.

One idea per module, each restating a part of the original
``research/deeplab/utils/train_utils.py`` / ``train.py`` number for number:

* ``losses``: softmax cross-entropy for each scale (ignore label, label
  weights, upsampled logits or downsampled labels, hard-pixel mining).
* ``schedules``: poly / step / cosine / multi-steps learning rates with slow
  start, as a function and as a Keras ``LearningRateSchedule``.
* ``gradient_multipliers``: 2x on biases, ``last_layer_gradient_multiplier``
  on the head, by original variable name.
* ``regularization``: which variables get ``wd * sum(w^2) / 2``.
* ``total_loss``: task + L2 as train.py combines them across clones.
* ``tasks``: what the shared ``trainer.Trainer`` trains, one registered
  module per model family: ``SemanticTask`` (DeepLab) or ``DeeperLabTask``
  (its five losses), picked by ``task_for`` from the options' family.

Defaults are the original train.py flag defaults.
"""
from deeplab_tf.training.gradient_multipliers import get_extra_layer_scopes
from deeplab_tf.training.gradient_multipliers import GradientMultiplier
from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings
from deeplab_tf.training.gradient_multipliers import get_gradient_multipliers
from deeplab_tf.training.gradient_multipliers import model_gradient_multipliers
from deeplab_tf.training.losses import label_weight_mask
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.losses import ScaleLoss
from deeplab_tf.training.losses import softmax_cross_entropy_for_scale
from deeplab_tf.training.losses import softmax_cross_entropy_loss_for_each_scale
from deeplab_tf.training.losses import top_k_pixel_count
from deeplab_tf.training.regularization import is_regularized
from deeplab_tf.training.regularization import l2_regularization_loss
from deeplab_tf.training.regularization import l2_term
from deeplab_tf.training.regularization import RegularizationSettings
from deeplab_tf.training.regularization import regularized_variables
from deeplab_tf.training.schedules import DeepLabLearningRate
from deeplab_tf.training.schedules import learning_rate
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.tasks import DeeperLabTask
from deeplab_tf.training.tasks import SemanticTask
from deeplab_tf.training.tasks import task_for
from deeplab_tf.training.total_loss import total_training_loss

__all__ = [
    'DeepLabLearningRate', 'DeeperLabTask', 'GradientMultiplier',
    'GradientMultiplierSettings', 'LearningRateSettings', 'LossSettings',
    'RegularizationSettings', 'ScaleLoss', 'SemanticTask',
    'get_extra_layer_scopes',
    'get_gradient_multipliers', 'is_regularized', 'l2_regularization_loss',
    'l2_term', 'label_weight_mask', 'learning_rate',
    'model_gradient_multipliers', 'regularized_variables',
    'softmax_cross_entropy_for_scale',
    'softmax_cross_entropy_loss_for_each_scale', 'task_for',
    'top_k_pixel_count', 'total_training_loss',
]
