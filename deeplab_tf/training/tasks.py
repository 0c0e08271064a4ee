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

``SemanticTask`` is DeepLab (v1/v2/v3/v3+): softmax cross-entropy on each
scale of the image pyramid, batches ``{'image', 'label'}``. ``DeeperLabTask``
is the DeeperLab parser: the five losses of ``deeperlab_losses``, batches
``{'image'}`` plus the ``panoptic_targets`` keys. ``task_for`` picks one from
the options' type.
"""
import dataclasses
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.models import build_model
from deeplab_tf.models import deeperlab
from deeplab_tf.models.deeplab import get_extra_layer_scopes
from deeplab_tf.models.heads import deeperlab_decoder
from deeplab_tf.models.options import ModelOptions
from deeplab_tf.training.deeperlab_losses import deeperlab_loss
from deeplab_tf.training.deeperlab_losses import DeeperLabLossSettings
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.losses import softmax_cross_entropy_loss_for_each_scale


def _pixel_counts(logits, labels, ignore_label):
  """(correct, valid) pixel counts of argmax(logits) resized to the labels."""
  labels = tf.cast(labels, tf.int32)
  if labels.shape.rank == 4:
    labels = labels[..., 0]
  logits = geometry.resize_bilinear(logits, tf.shape(labels)[1:3])
  predictions = tf.argmax(logits, axis=3, output_type=tf.int32)
  valid = tf.not_equal(labels, ignore_label)
  correct = tf.logical_and(valid, tf.equal(predictions, labels))
  return (tf.reduce_sum(tf.cast(correct, tf.float32)),
          tf.reduce_sum(tf.cast(valid, tf.float32)))


# tf.summary.image's default max_outputs, which the original train.py keeps.
SUMMARY_IMAGES = 3


def _summary_samples(images, labels, logits):
  """The first images of a replica's batch as the original summarises them.

  ``image`` as fed, ``label`` and ``semantic`` (argmax of the training
  forward pass's logits, at the logits resolution), int32 [n, h, w, 1].
  """
  labels = tf.cast(labels, tf.int32)
  if labels.shape.rank == 3:
    labels = labels[..., tf.newaxis]
  semantic = tf.argmax(logits, axis=3, output_type=tf.int32)[..., tf.newaxis]
  return {'image': images[:SUMMARY_IMAGES], 'label': labels[:SUMMARY_IMAGES],
          'semantic': semantic[:SUMMARY_IMAGES]}


class SemanticTask:
  """DeepLab semantic segmentation (the original train.py's loss and metric).

  Args:
    options: ModelOptions.
    loss: LossSettings.
    ignore_label: overrides ``loss.ignore_label`` (the dataset's).
  """
  part_names: Tuple[str, ...] = ()
  label_key = 'label'

  def __init__(self, options: ModelOptions, loss: LossSettings = LossSettings(),
               ignore_label: Optional[int] = None):
    if not isinstance(options, ModelOptions):
      raise TypeError('SemanticTask needs ModelOptions; got %s.'
                      % type(options).__name__)
    self.options = options
    self.loss_settings = loss
    self.num_classes = options.num_classes
    self.ignore_label = (loss.ignore_label if ignore_label is None
                         else ignore_label)

  def build_model(self, fine_tune_batch_norm, sync_batch_norm):
    return build_model(self.options, fine_tune_batch_norm=fine_tune_batch_norm,
                       sync_batch_norm=sync_batch_norm)

  @staticmethod
  def last_layer_scopes(last_layers_contain_logits_only) -> List[str]:
    return get_extra_layer_scopes(last_layers_contain_logits_only)

  def loss(self, outputs, batch, step) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    _, task_loss = softmax_cross_entropy_loss_for_each_scale(
        outputs, batch['label'], self.num_classes, self.ignore_label,
        step=step, **self.loss_settings.loss_kwargs())
    return task_loss, {}

  def pixel_counts(self, outputs, batch):
    # Training pixel accuracy on the merged logits at the label resolution.
    return _pixel_counts(outputs['merged_logits'], batch['label'],
                         self.ignore_label)

  def summary_samples(self, outputs, batch):
    """Image summaries of the step (original train.py: samples/*)."""
    return _summary_samples(batch['image'], batch['label'],
                            outputs['merged_logits'])


class DeeperLabTask:
  """DeeperLab (semantic + keypoint heatmap + three offset maps, Sec. 3.2).

  Args:
    options: DeeperLabOptions.
    loss: DeeperLabLossSettings (its ``ignore_label`` is the dataset's).
  """
  part_names = deeperlab_decoder.HEAD_NAMES
  label_key = 'semantic'

  def __init__(self, options: deeperlab.DeeperLabOptions,
               loss: DeeperLabLossSettings = DeeperLabLossSettings()):
    if not isinstance(options, deeperlab.DeeperLabOptions):
      raise TypeError('DeeperLabTask needs DeeperLabOptions; got %s.'
                      % type(options).__name__)
    self.options = options
    self.loss_settings = loss
    self.num_classes = options.num_classes
    self.ignore_label = loss.ignore_label

  def build_model(self, fine_tune_batch_norm, sync_batch_norm):
    return deeperlab.build_deeperlab(
        self.options, fine_tune_batch_norm=fine_tune_batch_norm,
        sync_batch_norm=sync_batch_norm)

  @staticmethod
  def last_layer_scopes(last_layers_contain_logits_only) -> List[str]:
    return deeperlab.get_extra_layer_scopes(last_layers_contain_logits_only)

  def loss(self, outputs, batch, step):
    del step  # no hard-example ramp in DeeperLab's loss
    missing = [k for k in ('semantic', 'semantic_weights', 'valid_mask',
                           'keypoint_heatmap', 'short_range_offsets',
                           'short_range_mask', 'middle_range_offsets',
                           'middle_range_mask', 'long_range_offsets',
                           'long_range_mask') if k not in batch]
    if missing:
      raise ValueError('DeeperLab training batches need the panoptic_targets '
                       'keys; missing %s, got %s.' % (missing, sorted(batch)))
    return deeperlab_loss(outputs, batch, self.loss_settings)

  def pixel_counts(self, outputs, batch):
    return _pixel_counts(outputs[deeperlab_decoder.SEMANTIC], batch['semantic'],
                         self.ignore_label)

  def summary_samples(self, outputs, batch):
    return _summary_samples(batch['image'], batch['semantic'],
                            outputs[deeperlab_decoder.SEMANTIC])


def task_for(options, loss: LossSettings = LossSettings(),
             deeperlab_loss_settings: Optional[DeeperLabLossSettings] = None,
             ignore_label: Optional[int] = None):
  """The task of ``options``: DeeperLabTask for DeeperLabOptions, else SemanticTask.

  ``ignore_label`` (the dataset's) overrides the loss settings' one.
  """
  if isinstance(options, deeperlab.DeeperLabOptions):
    settings = deeperlab_loss_settings or DeeperLabLossSettings()
    if ignore_label is not None:
      settings = dataclasses.replace(settings, ignore_label=ignore_label)
    return DeeperLabTask(options, settings)
  if isinstance(options, ModelOptions):
    return SemanticTask(options, loss, ignore_label)
  raise TypeError('Trainer options must be ModelOptions or DeeperLabOptions; '
                  'got %s.' % type(options).__name__)


def options_from_dict(values):
  """ModelOptions or DeeperLabOptions from a ``model_options.json`` dict."""
  if values.get('meta_architecture') == deeperlab.META_ARCHITECTURE:
    return deeperlab.DeeperLabOptions.from_dict(values)
  return ModelOptions.from_dict(values)
