"""DeepLab v1 / v2 / v3 / v3+: the original train.py's loss and training metric.

Softmax cross-entropy on each scale of the image pyramid (``losses.py``),
batches ``{'image', 'label'}`` of the semantic pipeline.
"""
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from deeplab_tf.data import pipeline
from deeplab_tf.models import build_model
from deeplab_tf.models.deeplab import get_extra_layer_scopes
from deeplab_tf.models.options import ModelOptions
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.losses import softmax_cross_entropy_loss_for_each_scale
from deeplab_tf.training.tasks import common
from deeplab_tf.training.tasks import registry


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
    return common.pixel_counts(outputs['merged_logits'], batch['label'],
                         self.ignore_label)

  def summary_samples(self, outputs, batch):
    """Image summaries of the step (original train.py: samples/*)."""
    return common.summary_samples(batch['image'], batch['label'],
                            outputs['merged_logits'])

  @classmethod
  def create(cls, options, loss: LossSettings, task_settings, ignore_label):
    del task_settings  # LossSettings (the original train.py flags) say it all
    return cls(options, loss, ignore_label)

  @staticmethod
  def settings_from_flag_values(values, descriptor):
    del values, descriptor
    return None

  @staticmethod
  def make_dataset_fn(descriptor, split, dataset_dir, inputs,
                      global_batch_size, task_settings):
    """``fn(input_context) -> per-replica batches`` of the semantic records."""
    del task_settings

    def dataset_fn(input_context):
      return pipeline.build_dataset(
          descriptor, split, dataset_dir, inputs,
          batch_size=input_context.get_per_replica_batch_size(
              global_batch_size),
          is_training=True, input_context=input_context)
    return dataset_fn


registry.register(registry.TaskEntry(
    family='deeplab', task_class=SemanticTask,
    # The train.py flags only the semantic loss reads.
    own_flags=('top_k_percent_pixels', 'hard_example_mining_step',
               'label_weights', 'upsample_logits', 'image_pyramid',
               'decoder_output_stride', 'multi_grid', 'logits_kernel_size'),
    description='the semantic DeepLab models'))
