"""DeeperLab training (arXiv:1902.05093): its five losses, targets and records.

Batches hold ``image`` plus the ``panoptic_targets`` keys, read from panoptic
records; the loss is ``deeperlab_losses``. The task adds its flags to train.py
(``FLAGS`` below: the ``--deeperlab_*`` loss and target flags and the records'
layout, ``--thing_classes`` / ``--panoptic_label_divisor``, which
eval_deeperlab shares) and registers itself for the ``deeperlab`` family.
"""
import dataclasses
from typing import List, Optional, Tuple

from deeplab_tf.data import panoptic_records
from deeplab_tf.data import panoptic_targets
from deeplab_tf.models import deeperlab
from deeplab_tf.models.heads import deeperlab_decoder
from deeplab_tf.training.deeperlab_losses import deeperlab_loss
from deeplab_tf.training.deeperlab_losses import DeeperLabLossSettings
from deeplab_tf.training.tasks import common
from deeplab_tf.training.tasks import registry


@dataclasses.dataclass(frozen=True)
class DeeperLabTaskSettings:
  """What DeeperLab training adds to the shared TrainSettings.

  ``loss``: the five losses' settings. The target settings (disk radius,
  small-instance weighting) and the records' layout (thing classes, label
  divisor; None: the dataset descriptor's) shape the training batches.
  """
  loss: DeeperLabLossSettings = DeeperLabLossSettings()
  keypoint_radius: float = 32.0
  small_instance_area: int = 64 * 64
  small_instance_weight: float = 3.0
  thing_classes: Optional[Tuple[int, ...]] = None
  panoptic_label_divisor: Optional[int] = None

  def layout(self, descriptor) -> panoptic_records.PanopticLayout:
    """The records' PanopticLayout: the dataset's, overridden by ours."""
    try:
      return panoptic_records.get_layout(
          descriptor, thing_classes=self.thing_classes,
          label_divisor=self.panoptic_label_divisor)
    except ValueError as e:
      raise ValueError('DeeperLab needs the thing classes (whose instances '
                       'get keypoints) and the records\' label divisor: %s'
                       % e) from None

  def target_settings(self, descriptor, layout=None
                      ) -> panoptic_targets.PanopticTargetSettings:
    layout = layout or self.layout(descriptor)
    return panoptic_targets.PanopticTargetSettings(
        thing_classes=layout.thing_classes, radius=self.keypoint_radius,
        small_instance_area=int(self.small_instance_area),
        small_instance_weight=self.small_instance_weight,
        ignore_label=descriptor.ignore_label)


# The records' layout: shared by train.py and eval_deeperlab.
LAYOUT_FLAGS = (
    registry.TaskFlag(
        'thing_classes', 'list', None,
        'DeeperLab: class ids of the "thing" classes (their instances get '
        'keypoints and offsets); unset: the dataset descriptor\'s '
        'thing_classes (cityscapes: trainIds 11..18, coco_panoptic: 1..80; '
        'the JSON a panoptic converter writes has them).'),
    registry.TaskFlag(
        'panoptic_label_divisor', 'integer', None,
        'DeeperLab: the records\' panoptic ids are category * this + '
        'instance; unset: the dataset descriptor\'s panoptic_label_divisor '
        '(cityscapes: 1000, coco_panoptic: 256, as deeplab2).', lower_bound=1),
)

# DeeperLab's loss and targets. Not original DeepLab flags.
FLAGS = LAYOUT_FLAGS + (
    registry.TaskFlag(
        'deeperlab_top_k_percent_pixels', 'float', 0.15,
        'DeeperLab: fraction of the hardest pixels the bootstrapped semantic '
        'CE keeps (paper, Sec. 3.2: 0.15).'),
    registry.TaskFlag(
        'deeperlab_small_instance_area', 'float', 64 * 64,
        'DeeperLab: instances with fewer pixels get the small instance '
        'weight (paper, Sec. 3.2: 64 x 64 = 4096).'),
    registry.TaskFlag(
        'deeperlab_small_instance_weight', 'float', 3.0,
        'DeeperLab: semantic loss weight of the pixels of small instances '
        '(paper, Sec. 3.2: 3).'),
    registry.TaskFlag(
        'deeperlab_keypoint_radius', 'float', 32.0,
        'DeeperLab: disk radius R (pixels) of the keypoint heatmaps and '
        'short/middle-range offsets. Not in the paper: PersonLab\'s R = 32.'),
    registry.TaskFlag(
        'deeperlab_offset_normalizer', 'float', 32.0,
        'DeeperLab: the L1 offset losses are divided by this (pixels). Not in '
        'the paper: PersonLab normalises by R = 32.'),
    registry.TaskFlag(
        'deeperlab_semantic_loss_weight', 'float', 1.0,
        'DeeperLab: weight of the semantic loss. Not in the paper (no loss '
        'weights given): 1.'),
    registry.TaskFlag(
        'deeperlab_heatmap_loss_weight', 'float', 1.0,
        'DeeperLab: weight of the keypoint heatmap loss. Not in the paper: 1.'),
    registry.TaskFlag(
        'deeperlab_long_range_loss_weight', 'float', 1.0,
        'DeeperLab: weight of the long-range offset loss. Not in the paper: '
        '1.'),
    registry.TaskFlag(
        'deeperlab_short_range_loss_weight', 'float', 1.0,
        'DeeperLab: weight of the short-range offset loss. Not in the paper: '
        '1.'),
    registry.TaskFlag(
        'deeperlab_middle_range_loss_weight', 'float', 1.0,
        'DeeperLab: weight of the middle-range offset loss. Not in the paper: '
        '1.'),
)


def parse_thing_classes(values) -> Optional[Tuple[int, ...]]:
  """``--thing_classes`` strings -> ints (None when unset)."""
  if not values:
    return None
  try:
    return tuple(int(c) for c in values)
  except ValueError:
    raise ValueError('--thing_classes must be class ids (ints); got %s.'
                     % ','.join(values)) from None


def layout_from_flag_values(values, descriptor):
  """The records' PanopticLayout from the LAYOUT_FLAGS values and the dataset."""
  return DeeperLabTaskSettings(
      thing_classes=parse_thing_classes(values.get('thing_classes')),
      panoptic_label_divisor=values.get('panoptic_label_divisor')
  ).layout(descriptor)


def settings_from_flag_values(values, descriptor) -> DeeperLabTaskSettings:
  """DeeperLabTaskSettings from the values of ``FLAGS`` (by name)."""
  settings = DeeperLabTaskSettings(
      loss=DeeperLabLossSettings(
          top_k_percent_pixels=values['deeperlab_top_k_percent_pixels'],
          offset_normalizer=values['deeperlab_offset_normalizer'],
          semantic_weight=values['deeperlab_semantic_loss_weight'],
          heatmap_weight=values['deeperlab_heatmap_loss_weight'],
          long_range_weight=values['deeperlab_long_range_loss_weight'],
          short_range_weight=values['deeperlab_short_range_loss_weight'],
          middle_range_weight=values['deeperlab_middle_range_loss_weight'],
          ignore_label=descriptor.ignore_label),
      keypoint_radius=values['deeperlab_keypoint_radius'],
      small_instance_area=int(values['deeperlab_small_instance_area']),
      small_instance_weight=values['deeperlab_small_instance_weight'],
      thing_classes=parse_thing_classes(values.get('thing_classes')),
      panoptic_label_divisor=values.get('panoptic_label_divisor'))
  del descriptor  # the layout is resolved with the records (make_dataset_fn):
  # a Mapillary recipe gets its thing classes from the converted dataset JSON
  return settings


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
    return common.pixel_counts(outputs[deeperlab_decoder.SEMANTIC], batch['semantic'],
                         self.ignore_label)

  def summary_samples(self, outputs, batch):
    return common.summary_samples(batch['image'], batch['semantic'],
                            outputs[deeperlab_decoder.SEMANTIC])

  @classmethod
  def create(cls, options, loss, task_settings, ignore_label):
    del loss  # the semantic LossSettings; DeeperLab has its own
    settings = (task_settings or DeeperLabTaskSettings()).loss
    if ignore_label is not None:
      settings = dataclasses.replace(settings, ignore_label=ignore_label)
    return cls(options, settings)

  @staticmethod
  def settings_from_flag_values(values, descriptor):
    """DeeperLabTaskSettings from the FLAGS below (by name) and the dataset."""
    return settings_from_flag_values(values, descriptor)

  @staticmethod
  def make_dataset_fn(descriptor, split, dataset_dir, inputs,
                      global_batch_size, task_settings):
    """``fn(input_context) -> per-replica batches`` of panoptic records with
    the DeeperLab targets (``panoptic_pipeline.build_panoptic_dataset``)."""
    from deeplab_tf.data import panoptic_pipeline  # pylint: disable=g-import-not-at-top
    settings = task_settings or DeeperLabTaskSettings()
    layout = settings.layout(descriptor)
    targets = settings.target_settings(descriptor, layout)

    def panoptic_dataset_fn(input_context):
      return panoptic_pipeline.build_panoptic_dataset(
          descriptor, split, dataset_dir, inputs, targets,
          batch_size=input_context.get_per_replica_batch_size(
              global_batch_size),
          is_training=True, input_context=input_context, layout=layout)
    return panoptic_dataset_fn



registry.register(registry.TaskEntry(
    family='deeperlab', task_class=DeeperLabTask, flags=FLAGS,
    description='DeeperLab'))
