"""What the Trainer trains: a model, its loss, its training metric, its images.

The Trainer (``trainer.py``) owns everything a DeepLab-family model shares:
strategies, optimizer, learning rate, gradient multipliers, L2, BatchNorm
handling, checkpoints and summaries. A task owns what differs between models
(the idea of tf-models-official's tasks, one level deep):

* ``build_model``: the Keras model for the options;
* ``last_layer_scopes``: the "last layers" (``get_extra_layer_scopes``) for
  ``initialize_last_layer=False`` and ``last_layer_gradient_multiplier``;
* ``loss``: the task loss of one replica's batch and its named parts (the
  parts are logged and written to TensorBoard as ``<part>_loss``);
* ``pixel_counts``: (correct, valid) pixels of the semantic prediction, for
  the training pixel accuracy;
* ``summary_samples``: image, label and semantic prediction of the step's
  first images, for the image summaries.

and, for the training script, ``create`` (from the shared loss settings and
the task's own), ``settings_from_flag_values`` (its flags -> its settings) and
``make_dataset_fn`` (its records -> batches).

``semantic.SemanticTask`` is DeepLab (v1/v2/v3/v3+): softmax cross-entropy on
each scale of the image pyramid, batches ``{'image', 'label'}``.
``deeperlab.DeeperLabTask`` is the DeeperLab parser: the five losses of
``deeperlab_losses``, batches ``{'image'}`` plus the ``panoptic_targets``
keys. Each registers itself (``registry``) for its model family;
``task_for`` picks the task from the options' family.
"""
# Registrations (each module calls registry.register).
from deeplab_tf.training.tasks import semantic  # pylint: disable=unused-import
from deeplab_tf.training.tasks import deeperlab  # pylint: disable=unused-import
from deeplab_tf.training.tasks.common import SUMMARY_IMAGES
from deeplab_tf.training.tasks.deeperlab import DeeperLabTask
from deeplab_tf.training.tasks.deeperlab import DeeperLabTaskSettings
from deeplab_tf.training.tasks.registry import for_family
from deeplab_tf.training.tasks.registry import entries
from deeplab_tf.training.tasks.registry import for_options
from deeplab_tf.training.tasks.registry import task_for
from deeplab_tf.training.tasks.registry import TaskEntry
from deeplab_tf.training.tasks.registry import TaskFlag
from deeplab_tf.training.tasks.semantic import SemanticTask

__all__ = ['SUMMARY_IMAGES', 'DeeperLabTask', 'DeeperLabTaskSettings', 'for_family',
           'entries', 'for_options', 'SemanticTask', 'task_for', 'TaskEntry', 'TaskFlag']
