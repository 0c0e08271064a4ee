r"""Trains a DeepLab model: the original train.py flags on tf.distribute.

Usage (PASCAL VOC, DeepLabv3+ Xception-65, phase 1 as the original local_test.sh):
  python -m deeplab_tf.train --dataset=pascal_voc_seg --train_split=train_aug \
      --dataset_dir=workspace/records/pascal_voc_seg \
      --train_logdir=workspace/train/voc_xception65_os16 \
      --model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 \
      --atrous_rates=18 --output_stride=16 --decoder_output_stride=4 \
      --train_crop_size=513,513 --train_batch_size=16 \
      --base_learning_rate=0.007 --training_number_of_steps=30000 \
      --fine_tune_batch_norm=true --tf_initial_checkpoint=...

DeeperLab (arXiv:1902.05093) on panoptic records, Wider MobileNetV2:
  python -m deeplab_tf.train --meta_architecture=deeperlab \
      --model_variant=wider_mobilenet_v2 --dataset=... --dataset_dir=... \
      --train_logdir=workspace/train/deeperlab_wmnv2 \
      --train_crop_size=769,769 --train_batch_size=16 \
      --base_learning_rate=0.007 --tf_initial_checkpoint=...
  (--deeperlab_* flags: its loss and targets; --thing_classes.)

Flag names and defaults are the original train.py's (and common.py's model
flags); ``--flagfile`` works. Additions: --strategy (default, mirrored,
multi_worker_mirrored, tpu), --tpu, --mixed_precision, --save_interval_steps,
--hard_classes / --hard_class_repeat, --max_to_keep, --jit_compile,
--sync_batch_norm, --kernel_initializer, --all_batch_norm_decay,
--trainable_scopes, --meta_architecture (v1/v2 heads, deeperlab) and the
DeeperLab flags.
An existing checkpoint in --train_logdir wins over --tf_initial_checkpoint:
rerunning the same command after a crash resumes.
"""
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf import model_flags

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
model_flags.define_resize_flags()
model_flags.define_dataset_flags()
model_flags.define_initialization_flags()

# Distribution.
flags.DEFINE_enum('strategy', 'default',
                  ['default', 'mirrored', 'multi_worker_mirrored', 'tpu'],
                  'tf.distribute strategy: one device, all local GPUs, '
                  'several workers (TF_CONFIG), or a TPU.')
flags.DEFINE_string('tpu', None, 'TPU name or address for --strategy=tpu.')
flags.DEFINE_enum('mixed_precision', None, ['mixed_float16', 'mixed_bfloat16'],
                  'Keras mixed-precision policy (logits and loss stay float32).')
flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the train step.')

# Logging and checkpoints (original train.py).
flags.DEFINE_string('train_logdir', None,
                    'Where checkpoints and TensorBoard logs are written.')
flags.DEFINE_integer('log_steps', 10, 'Log a progress line every N steps.')
flags.DEFINE_integer('save_interval_secs', 1200,
                     'Save a checkpoint every N seconds.')
flags.DEFINE_integer('save_interval_steps', None,
                     'Also save a checkpoint every N steps.')
flags.DEFINE_integer('save_summaries_secs', 600,
                     'Write TensorBoard summaries every N seconds.')
flags.DEFINE_boolean('save_summaries_images', False,
                     'Also write image / ground truth / prediction summaries.')
flags.DEFINE_integer('max_to_keep', 5, 'Checkpoints kept in train_logdir.')

# Learning rate (original train.py).
flags.DEFINE_enum('learning_policy', 'poly',
                  ['poly', 'step', 'cosine', 'multi_steps'],
                  'Learning rate policy.')
flags.DEFINE_float('base_learning_rate', .0001, 'Base learning rate.')
flags.DEFINE_float('decay_steps', 0.0,
                   'Poly decay length (0: training_number_of_steps).')
flags.DEFINE_float('end_learning_rate', 0.0, 'Poly end learning rate.')
flags.DEFINE_float('learning_rate_decay_factor', 0.1,
                   'Step policy decay factor.')
flags.DEFINE_integer('learning_rate_decay_step', 2000,
                     'Step policy: decay every N steps.')
flags.DEFINE_float('learning_power', 0.9, 'Poly power.')
flags.DEFINE_integer('training_number_of_steps', 30000,
                     'Number of training steps.')
flags.DEFINE_multi_integer('boundaries', None, 'multi_steps boundaries.')
flags.DEFINE_multi_float('boundary_learning_rates', None,
                         'multi_steps learning rates (one more than boundaries).')
flags.DEFINE_integer('slow_start_step', 0,
                     'Train with slow_start_learning_rate for N steps first.')
flags.DEFINE_float('slow_start_learning_rate', 1e-4,
                   'Learning rate during the slow start.')
flags.DEFINE_float('momentum', 0.9, 'Momentum of the optimizer.')

# Batch, regularisation, loss (original train.py).
flags.DEFINE_integer('train_batch_size', 8,
                     'Global batch size (split across replicas).')
flags.DEFINE_float('weight_decay', 0.00004, 'L2 weight decay.')
flags.DEFINE_list('train_crop_size', '513,513', 'Training crop "h,w".')
flags.DEFINE_float('last_layer_gradient_multiplier', 1.0,
                   'Gradient multiplier of the last layers.')
flags.DEFINE_boolean('upsample_logits', True,
                     'Upsample logits to the label size for the loss (else '
                     'downsample labels, nearest).')
flags.DEFINE_multi_float('label_weights', None,
                         'Per-class loss weights (one per class); unset = 1.0.')
flags.DEFINE_integer('hard_example_mining_step', 0,
                     'Steps of the linear ramp to top_k_percent_pixels.')
flags.DEFINE_float('top_k_percent_pixels', 1.0,
                   'Keep the top k%% hardest pixels for the loss.')

# Initialisation (original train.py).
flags.DEFINE_string('tf_initial_checkpoint', None,
                    'Initial checkpoint: an original TF1 (model-zoo / '
                    'ImageNet) checkpoint or one of ours.')
flags.DEFINE_boolean('fine_tune_batch_norm', True,
                     'Train BatchNorm statistics (phase 1, large batches): '
                     'normalise with batch statistics and update the moving '
                     'averages. False (phase 2): BatchNorm uses its moving '
                     'statistics and keeps them; gamma and beta still train, '
                     'as in the original.')
flags.DEFINE_string('kernel_initializer', None,
                    'Not in the original: a Keras initializer name (e.g. '
                    'glorot_uniform) for every conv kernel a checkpoint does '
                    'not restore. Unset: the original\'s per-layer '
                    'initialisers (truncated normal 0.09 in Xception / '
                    'MobileNet, variance scaling in ResNet, xavier heads, '
                    '0.01 logits). Training from scratch (the CamVid recipe) '
                    'does better with glorot_uniform.')
flags.DEFINE_boolean('sync_batch_norm', False,
                     'Not in the original: with several replicas, BatchNorm '
                     'normalises with the statistics of the global batch '
                     '(all-reduced) instead of each replica\'s own sub-batch '
                     '(the original, whose moving averages then follow the '
                     'first replica). For small per-replica batches with '
                     '--fine_tune_batch_norm.')
# Not an original train.py flag (slim's train_image_classifier has one).
flags.DEFINE_list('trainable_scopes', [],
                  'Train only these variables: regular expressions matched '
                  'at the start of the original variable names (a plain '
                  'scope such as msc or logits is a prefix). They alone get '
                  'gradients, updates and L2; a BatchNorm with no matching '
                  'variable is frozen whole. Empty: all variables (the '
                  'original). DeepLab-MSc (v1 Sec. 4.3) trains msc,logits.')

# DeeperLab (--meta_architecture=deeperlab; arXiv:1902.05093): loss and
# targets. Not original DeepLab flags.
model_flags.define_panoptic_layout_flags()
flags.DEFINE_float('all_batch_norm_decay', None,
                   'Ours: the moving-average decay of EVERY BatchNorm, backbone '
                   'included (--batch_norm_decay only reaches the ASPP / '
                   'decoder ones, as the original). Unset keeps the '
                   'original\'s per-part decays; short runs from scratch '
                   '(the CamVid recipe: 0.95) need a faster average.',
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_float('deeperlab_top_k_percent_pixels', 0.15,
                   'DeeperLab: fraction of the hardest pixels the '
                   'bootstrapped semantic CE keeps (paper, Sec. 3.2: 0.15).')
flags.DEFINE_float('deeperlab_small_instance_area', 64 * 64,
                   'DeeperLab: instances with fewer pixels get the small '
                   'instance weight (paper, Sec. 3.2: 64 x 64 = 4096).')
flags.DEFINE_float('deeperlab_small_instance_weight', 3.0,
                   'DeeperLab: semantic loss weight of the pixels of small '
                   'instances (paper, Sec. 3.2: 3).')
flags.DEFINE_float('deeperlab_keypoint_radius', 32.0,
                   'DeeperLab: disk radius R (pixels) of the keypoint '
                   'heatmaps and short/middle-range offsets. Not in the '
                   'paper: PersonLab\'s R = 32.')
flags.DEFINE_float('deeperlab_offset_normalizer', 32.0,
                   'DeeperLab: the L1 offset losses are divided by this '
                   '(pixels). Not in the paper: PersonLab normalises by R = '
                   '32.')
flags.DEFINE_float('deeperlab_semantic_loss_weight', 1.0,
                   'DeeperLab: weight of the semantic loss. Not in the paper '
                   '(no loss weights given): 1.')
flags.DEFINE_float('deeperlab_heatmap_loss_weight', 1.0,
                   'DeeperLab: weight of the keypoint heatmap loss. Not in '
                   'the paper: 1.')
flags.DEFINE_float('deeperlab_long_range_loss_weight', 1.0,
                   'DeeperLab: weight of the long-range offset loss. Not in '
                   'the paper: 1.')
flags.DEFINE_float('deeperlab_short_range_loss_weight', 1.0,
                   'DeeperLab: weight of the short-range offset loss. Not in '
                   'the paper: 1.')
flags.DEFINE_float('deeperlab_middle_range_loss_weight', 1.0,
                   'DeeperLab: weight of the middle-range offset loss. Not in '
                   'the paper: 1.')

# Flags of one kind of model only; setting one for the other is refused
# (it would otherwise be silently ignored).
SEMANTIC_ONLY_FLAGS = ('top_k_percent_pixels', 'hard_example_mining_step',
                       'label_weights', 'upsample_logits', 'image_pyramid',
                       'decoder_output_stride', 'multi_grid',
                       'logits_kernel_size')
DEEPERLAB_ONLY_FLAGS = ('thing_classes', 'panoptic_label_divisor',
                        'deeperlab_top_k_percent_pixels',
                        'deeperlab_small_instance_area',
                        'deeperlab_small_instance_weight',
                        'deeperlab_keypoint_radius',
                        'deeperlab_offset_normalizer',
                        'deeperlab_semantic_loss_weight',
                        'deeperlab_heatmap_loss_weight',
                        'deeperlab_long_range_loss_weight',
                        'deeperlab_short_range_loss_weight',
                        'deeperlab_middle_range_loss_weight')

# Data (original train.py / common.py).
flags.DEFINE_string('train_split', 'train', 'Split to train on.')
flags.DEFINE_float('min_scale_factor', 0.5, 'Smallest random scale.')
flags.DEFINE_float('max_scale_factor', 2., 'Largest random scale.')
flags.DEFINE_float('scale_factor_step_size', 0.25,
                   'Random scale step (0: continuous).')
flags.DEFINE_list('hard_classes', [],
                  'Class ids (or a preset: voc, cityscapes) whose images are '
                  'repeated (DeepLabv3 hard-class duplication).')
flags.DEFINE_integer('hard_class_repeat', 1,
                     'Times an image with a hard class appears per epoch.')


def make_strategy(name, tpu=None):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if name == 'multi_worker_mirrored':
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def settings_from_flags():
  """(ModelOptions, TrainSettings, InputSettings, descriptor) from the flags."""
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data.pipeline import InputSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.losses import LossSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  descriptor = datasets_info.get_descriptor(FLAGS.dataset)
  check_model_kind_flags(model_flags.is_deeperlab())
  options_from_flags = (model_flags.deeperlab_options_from_flags
                        if model_flags.is_deeperlab()
                        else model_flags.model_options_from_flags)
  options = options_from_flags(crop_size=FLAGS.train_crop_size,
                               num_classes=descriptor.num_classes)
  lr = LearningRateSettings(
      learning_policy=FLAGS.learning_policy,
      base_learning_rate=FLAGS.base_learning_rate,
      learning_rate_decay_step=FLAGS.learning_rate_decay_step,
      learning_rate_decay_factor=FLAGS.learning_rate_decay_factor,
      training_number_of_steps=FLAGS.training_number_of_steps,
      learning_power=FLAGS.learning_power,
      slow_start_step=FLAGS.slow_start_step,
      slow_start_learning_rate=FLAGS.slow_start_learning_rate,
      decay_steps=FLAGS.decay_steps, end_learning_rate=FLAGS.end_learning_rate,
      boundaries=FLAGS.boundaries,
      boundary_learning_rates=FLAGS.boundary_learning_rates)
  loss = LossSettings(
      loss_weight=(list(FLAGS.label_weights) if FLAGS.label_weights else 1.0),
      upsample_logits=FLAGS.upsample_logits,
      hard_example_mining_step=FLAGS.hard_example_mining_step,
      top_k_percent_pixels=FLAGS.top_k_percent_pixels,
      ignore_label=descriptor.ignore_label)
  train = trainer.TrainSettings(
      train_logdir=FLAGS.train_logdir, train_batch_size=FLAGS.train_batch_size,
      learning_rate=lr, loss=loss,
      gradient_multipliers=GradientMultiplierSettings(
          last_layers_contain_logits_only=FLAGS.last_layers_contain_logits_only,
          last_layer_gradient_multiplier=FLAGS.last_layer_gradient_multiplier),
      momentum=FLAGS.momentum, weight_decay=FLAGS.weight_decay,
      fine_tune_batch_norm=FLAGS.fine_tune_batch_norm,
      sync_batch_norm=FLAGS.sync_batch_norm,
      kernel_initializer=FLAGS.kernel_initializer,
      tf_initial_checkpoint=FLAGS.tf_initial_checkpoint,
      initialize_last_layer=FLAGS.initialize_last_layer,
      log_steps=FLAGS.log_steps, save_interval_secs=FLAGS.save_interval_secs,
      save_interval_steps=FLAGS.save_interval_steps,
      save_summaries_secs=FLAGS.save_summaries_secs,
      save_summaries_images=FLAGS.save_summaries_images,
      max_to_keep=FLAGS.max_to_keep, mixed_precision=FLAGS.mixed_precision,
      jit_compile=FLAGS.jit_compile,
      colormap=descriptor.label_colours,
      deeperlab_loss=deeperlab_loss_settings_from_flags(descriptor),
      trainable_scopes=tuple(FLAGS.trainable_scopes or ()),
      batch_norm_decay=FLAGS.all_batch_norm_decay)
  inputs = InputSettings(
      crop_size=options.crop_size, min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor,
      min_scale_factor=FLAGS.min_scale_factor,
      max_scale_factor=FLAGS.max_scale_factor,
      scale_factor_step_size=FLAGS.scale_factor_step_size,
      model_variant=options.model_variant,
      hard_classes=datasets_info.resolve_hard_classes(FLAGS.hard_classes,
                                                      descriptor),
      hard_class_repeat=FLAGS.hard_class_repeat)
  return options, train, inputs, descriptor


def check_model_kind_flags(deeperlab):
  """Refuses a DeeperLab-only flag on DeepLab and a DeepLab-only one on DeeperLab."""
  wrong = DEEPERLAB_ONLY_FLAGS if not deeperlab else SEMANTIC_ONLY_FLAGS
  given = [name for name in wrong if FLAGS[name].present]
  if given:
    raise app.UsageError(
        '--%s: only for %s; --meta_architecture=%s. (DeeperLab has its own '
        '--deeperlab_* loss flags.)'
        % (', --'.join(given), 'DeeperLab' if not deeperlab else
           'the semantic DeepLab models', FLAGS.meta_architecture))


def deeperlab_loss_settings_from_flags(descriptor):
  from deeplab_tf.training.deeperlab_losses import DeeperLabLossSettings  # pylint: disable=g-import-not-at-top
  return DeeperLabLossSettings(
      top_k_percent_pixels=FLAGS.deeperlab_top_k_percent_pixels,
      offset_normalizer=FLAGS.deeperlab_offset_normalizer,
      semantic_weight=FLAGS.deeperlab_semantic_loss_weight,
      heatmap_weight=FLAGS.deeperlab_heatmap_loss_weight,
      long_range_weight=FLAGS.deeperlab_long_range_loss_weight,
      short_range_weight=FLAGS.deeperlab_short_range_loss_weight,
      middle_range_weight=FLAGS.deeperlab_middle_range_loss_weight,
      ignore_label=descriptor.ignore_label)


def panoptic_target_settings_from_flags(descriptor, layout=None):
  """PanopticTargetSettings of the DeeperLab targets from the flags."""
  from deeplab_tf.data.panoptic_targets import PanopticTargetSettings  # pylint: disable=g-import-not-at-top
  layout = layout or model_flags.panoptic_layout_from_flags(descriptor)
  return PanopticTargetSettings(
      thing_classes=layout.thing_classes,
      radius=FLAGS.deeperlab_keypoint_radius,
      small_instance_area=int(FLAGS.deeperlab_small_instance_area),
      small_instance_weight=FLAGS.deeperlab_small_instance_weight,
      ignore_label=descriptor.ignore_label)


def make_dataset_fn(options, settings, inputs, descriptor):
  """``fn(input_context) -> per-replica batches`` of the training split.

  DeepLab reads semantic records (``pipeline.build_dataset``); DeeperLab
  reads panoptic ones with their targets
  (``panoptic_pipeline.build_panoptic_dataset``).
  """
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  if not model_flags.is_deeperlab():
    def dataset_fn(input_context):
      return pipeline.build_dataset(
          descriptor, FLAGS.train_split, FLAGS.dataset_dir, inputs,
          batch_size=input_context.get_per_replica_batch_size(
              settings.train_batch_size),
          is_training=True, input_context=input_context)
    return dataset_fn
  del options  # the targets do not depend on the model
  layout = model_flags.panoptic_layout_from_flags(descriptor)
  targets = panoptic_target_settings_from_flags(descriptor, layout)
  try:
    from deeplab_tf.data import panoptic_pipeline  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise app.UsageError(
        '--meta_architecture=deeperlab reads panoptic records through '
        'deeplab_tf.data.panoptic_pipeline, which this installation lacks '
        '(%s).' % e) from e

  def panoptic_dataset_fn(input_context):
    return panoptic_pipeline.build_panoptic_dataset(
        descriptor, FLAGS.train_split, FLAGS.dataset_dir, inputs, targets,
        batch_size=input_context.get_per_replica_batch_size(
            settings.train_batch_size),
        is_training=True, input_context=input_context, layout=layout)
  return panoptic_dataset_fn


def check_flag_combinations(options, settings, num_replicas):
  """Refuses what cannot work before any compute; warns as the original docs do."""
  per_replica = settings.train_batch_size // max(num_replicas, 1)
  if (settings.fine_tune_batch_norm and per_replica < 2 and
      not (settings.sync_batch_norm and settings.train_batch_size >= 2)):
    # The original trains on (its train.py only advises against it).
    logging.warning(
        '--fine_tune_batch_norm with %d image per replica (train_batch_size=%d '
        'on %d replicas): each replica normalises with the statistics of its '
        'own single image, as the original would. The original advises '
        'batches larger than 12 (16 is better) for fine_tune_batch_norm, '
        'otherwise a smaller batch with --nofine_tune_batch_norm; '
        '--sync_batch_norm (ours) normalises with the global batch instead.',
        per_replica, settings.train_batch_size, num_replicas)
  elif settings.fine_tune_batch_norm and settings.train_batch_size < 12:
    logging.warning(
        'fine_tune_batch_norm with a global batch of %d: the original '
        'recommends it only for batches >= 12 (16 in the papers).',
        settings.train_batch_size)
  for size in options.crop_size:
    if (size - 1) % options.output_stride:
      logging.warning(
          'train_crop_size %s: the original advises crop sizes of the form '
          'k * output_stride + 1 (e.g. 513 at output stride 16 or 8), so '
          'that every feature map is aligned for align_corners resizing.',
          list(options.crop_size))
      break


def train_from_flags():
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer  # pylint: disable=g-import-not-at-top
  options, settings, inputs, descriptor = settings_from_flags()
  strategy = make_strategy(FLAGS.strategy, FLAGS.tpu)
  check_flag_combinations(options, settings, strategy.num_replicas_in_sync)
  # A split the dataset lacks, or no records: refused before the model is built.
  descriptor.check_split(FLAGS.train_split)
  pipeline.list_shards(FLAGS.dataset_dir, FLAGS.train_split)
  dataset_fn = make_dataset_fn(options, settings, inputs, descriptor)
  return trainer.Trainer(options, settings, dataset_fn, strategy,
                         ignore_label=descriptor.ignore_label).train()


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  metrics = train_from_flags()
  if metrics:
    print('final: step loss %.4f pixel accuracy %.4f'
          % (metrics['total_loss'], metrics['pixel_accuracy']))
  return 0


def run():
  flags.mark_flags_as_required(['train_logdir', 'dataset_dir'])
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
