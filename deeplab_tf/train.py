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

from deeplab_tf.config import model_flags
from deeplab_tf.data import datasets_info
from deeplab_tf.models import meta_architectures
from deeplab_tf.training import tasks

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
model_flags.define_resize_flags()
model_flags.define_dataset_flags()
model_flags.define_initialization_flags()

# Deployment (original train.py: slim model_deploy clones and replicas;
# here tf.distribute, see training/deployment.py).
flags.DEFINE_integer('num_clones', 1,
                     'Copies of the model in this process, each fed '
                     'train_batch_size / num_clones images (one per GPU, or '
                     'all on the CPU with --clone_on_cpu); their gradients '
                     'are combined as the original (MirroredStrategy).')
flags.DEFINE_boolean('clone_on_cpu', False,
                     'Run the clones on the CPU (split into num_clones '
                     'logical devices).')
flags.DEFINE_integer('num_replicas', 1,
                     'Worker replicas. Above 1: synchronous workers, one '
                     'process each, with --strategy=multi_worker_mirrored and '
                     'a TF_CONFIG naming that many workers.')
flags.DEFINE_integer('startup_delay_steps', 15,
                     'Original: worker --task waits task * N steps before it '
                     'starts (asynchronous replicas). Accepted; synchronous '
                     'workers here start together, so it has no effect.')
flags.DEFINE_integer('num_ps_tasks', 0,
                     'Parameter servers of the original\'s asynchronous '
                     'training; only 0 here (use multi_worker_mirrored).')
if 'master' not in FLAGS:   # eval.py / vis.py define it too (tests import all)
  flags.DEFINE_string('master', '',
                      'Original TF1 session target; only empty here (--tpu '
                      'for a TPU, TF_CONFIG for a cluster).')
flags.DEFINE_integer('task', 0,
                     'The worker id with --num_replicas > 1 (must agree with '
                     'TF_CONFIG\'s task index).')
flags.DEFINE_enum('strategy', 'default',
                  ['default', 'mirrored', 'multi_worker_mirrored', 'tpu'],
                  'Ours: the tf.distribute strategy: one device, all local '
                  'GPUs, several workers (TF_CONFIG), or a TPU.')
flags.DEFINE_string('tpu', None, 'TPU name or address for --strategy=tpu.')
flags.DEFINE_enum('mixed_precision', None, ['mixed_float16', 'mixed_bfloat16'],
                  'Keras mixed-precision policy (logits and loss stay float32).')
flags.DEFINE_boolean('jit_compile', False, 'XLA-compile the train step.')
flags.DEFINE_string('profile_logdir', None,
                    'Write a TensorFlow profiler trace of %d training steps '
                    '(after %d warm-up steps) here; open it in TensorBoard\'s '
                    'profile tab (tensorboard --logdir=<this folder>).'
                    % (5, 2))

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
flags.DEFINE_enum('optimizer', 'momentum', ['momentum', 'adam'],
                  'momentum: TF1 momentum on --learning_policy\'s rate; adam: '
                  'TF1 Adam at the constant --adam_learning_rate (the '
                  'learning_policy flags are then not used, as the original).')
flags.DEFINE_float('adam_learning_rate', 0.001,
                   'Learning rate of --optimizer=adam.')
flags.DEFINE_float('adam_epsilon', 1e-08, 'Epsilon of --optimizer=adam.')

# Batch, regularisation, loss (original train.py).
flags.DEFINE_integer('train_batch_size', 8,
                     'Global batch size (split across replicas).')
flags.DEFINE_float('weight_decay', 0.00004, 'L2 weight decay.')
model_flags.define_crop_size_flag(
    'train_crop_size', 'Training crop "height,width" (the older original form '
    '--train_crop_size=513 --train_crop_size=513 works too).')
flags.DEFINE_float('last_layer_gradient_multiplier', 1.0,
                   'Gradient multiplier of the last layers.')
flags.DEFINE_boolean('upsample_logits', True,
                     'Upsample logits to the label size for the loss (else '
                     'downsample labels, nearest).')
flags.DEFINE_float('drop_path_keep_prob', 1.0,
                   'Probability to keep each path of a NAS cell in training, '
                   'lowered with depth and ramped in over '
                   '--training_number_of_steps (nas_* model variants with '
                   '--fine_tune_batch_norm only; ignored otherwise, as in '
                   'the original).')
if 'quantize_delay_step' not in FLAGS:
  flags.DEFINE_integer('quantize_delay_step', -1,
                       'Quantisation-aware training (the original\'s '
                       'tf.contrib.quantize training graph): BatchNorm folded, '
                       '8-bit fake quantisation of weights and activations, '
                       'with the ranges collected from the start and applied '
                       'from this step on; < 0: a float model. mobilenet_v2 '
                       'only, one replica (--num_clones=1). quantize.md '
                       'fine-tunes a trained float model with 0.')
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

flags.DEFINE_float('all_batch_norm_decay', None,
                   'Ours: the moving-average decay of EVERY BatchNorm, backbone '
                   'included (--batch_norm_decay only reaches the ASPP / '
                   'decoder ones, as the original). Unset keeps the '
                   'original\'s per-part decays; short runs from scratch '
                   '(the CamVid recipe: 0.95) need a faster average.',
                   lower_bound=0.0, upper_bound=1.0)
# Each model family's training task adds its own flags (DeeperLab: the
# --deeperlab_* loss and target flags, --thing_classes,
# --panoptic_label_divisor; tasks/deeperlab.py). A flag that only one family
# reads is refused for the others (it would otherwise be silently ignored).
for _entry in tasks.entries():
  model_flags.define_task_flags(_entry.flags)


# Data (original train.py / common.py).
flags.DEFINE_string('train_split', 'train', 'Split to train on.')
flags.DEFINE_float('min_scale_factor', 0.5, 'Smallest random scale.')
flags.DEFINE_float('max_scale_factor', 2., 'Largest random scale.')
flags.DEFINE_float('scale_factor_step_size', 0.25,
                   'Random scale step (0: continuous).')
flags.DEFINE_list('hard_classes', [],
                  'Ours: classes whose images are repeated (DeepLabv3 '
                  'hard-class duplication): class ids, class names of the '
                  'dataset, or "paper" (the paper\'s preset of the dataset; '
                  'presets exist for %s).'
                  % ', '.join(sorted(datasets_info.HARD_CLASS_PRESETS)))
flags.DEFINE_integer('hard_class_repeat', 1,
                     'Times an image with a hard class appears per epoch.')


def deployment_settings_from_flags():
  from deeplab_tf.training import deployment  # pylint: disable=g-import-not-at-top
  return deployment.DeploymentSettings(
      strategy=FLAGS.strategy, tpu=FLAGS.tpu, num_clones=FLAGS.num_clones,
      clone_on_cpu=FLAGS.clone_on_cpu, num_replicas=FLAGS.num_replicas,
      startup_delay_steps=FLAGS.startup_delay_steps,
      num_ps_tasks=FLAGS.num_ps_tasks, master=FLAGS.master, task=FLAGS.task)


def settings_from_flags():
  """(ModelOptions, TrainSettings, InputSettings, descriptor) from the flags."""
  from deeplab_tf.data.pipeline import InputSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer  # pylint: disable=g-import-not-at-top
  descriptor = datasets_info.get_descriptor(FLAGS.dataset)
  check_model_kind_flags()
  model_flags.check_num_classes(descriptor.num_classes, descriptor.name)
  try:
    options = model_flags.options_from_flags(
        crop_size=FLAGS.train_crop_size, num_classes=descriptor.num_classes)
    entry = tasks.for_options(options)
    task_settings = entry.task_class.settings_from_flag_values(
        model_flags.task_flag_values(entry.flags), descriptor)
  except ValueError as e:   # options or task settings that cannot work
    raise app.UsageError(str(e)) from None
  train = trainer.train_settings_from_flag_values(
      FLAGS.flag_values_dict(), FLAGS.train_logdir,
      ignore_label=descriptor.ignore_label, colormap=descriptor.label_colours,
      task_settings=task_settings)
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


def check_model_kind_flags():
  """Refuses a flag that only another model family reads (see tasks.registry)."""
  family = meta_architectures.for_name(FLAGS.meta_architecture).family
  for entry in tasks.entries():
    if entry.family == family:
      continue
    given = [name for name in entry.all_own_flags() if FLAGS[name].present]
    if given:
      raise app.UsageError(
          '--%s: only for %s; --meta_architecture=%s.'
          % (', --'.join(given), entry.description, FLAGS.meta_architecture))


def make_dataset_fn(settings, inputs, descriptor):
  """``fn(input_context) -> per-replica batches`` of the training split,
  from the task of the model family (semantic or panoptic records)."""
  entry = tasks.for_family(
      meta_architectures.for_name(FLAGS.meta_architecture).family)
  try:
    return entry.task_class.make_dataset_fn(
        descriptor, FLAGS.train_split, FLAGS.dataset_dir, inputs,
        settings.train_batch_size, settings.task_settings)
  except ValueError as e:   # e.g. no panoptic layout for the records
    raise app.UsageError(str(e)) from None


def check_flag_combinations(options, settings, num_replicas):
  """Refuses what cannot work before any compute; warns as the original docs do."""
  if settings.train_batch_size % max(num_replicas, 1):
    raise app.UsageError(
        'train_batch_size %d is not divisible by the %d replicas (clones): '
        'each gets the same share of the batch, as the original.'
        % (settings.train_batch_size, num_replicas))
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
  from deeplab_tf.training import deployment  # pylint: disable=g-import-not-at-top
  if FLAGS.quantize_delay_step >= 0 and FLAGS.num_clones > 1:
    raise app.UsageError("--quantize_delay_step=%d: Quantization doesn't "
                         'support multi-clone yet (--num_clones=%d).'
                         % (FLAGS.quantize_delay_step, FLAGS.num_clones))
  model_flags.warn_unread_nas_flags(options.model_variant,
                                    ('drop_path_keep_prob',))
  try:
    strategy = deployment.make_strategy(deployment_settings_from_flags())
  except deployment.DeploymentError as e:
    raise app.UsageError(str(e)) from None
  if strategy.num_replicas_in_sync > 1:
    logging.info('Training on %d replicas (%s).', strategy.num_replicas_in_sync,
                 type(strategy).__name__)
  check_flag_combinations(options, settings, strategy.num_replicas_in_sync)
  # A split the dataset lacks, or no records: refused before the model is built.
  descriptor.check_split(FLAGS.train_split)
  pipeline.list_shards(FLAGS.dataset_dir, FLAGS.train_split)
  dataset_fn = make_dataset_fn(settings, inputs, descriptor)
  task = None
  if FLAGS.quantize_delay_step >= 0:
    task = quantization_aware_task(options, settings, descriptor,
                                   strategy.num_replicas_in_sync)
  return trainer.Trainer(options, settings, dataset_fn, strategy,
                         ignore_label=descriptor.ignore_label,
                         task=task).train()


def quantization_aware_task(options, settings, descriptor, num_replicas):
  """The original create_training_graph(quant_delay=--quantize_delay_step)."""
  from deeplab_tf.models import quantize  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import quantization  # pylint: disable=g-import-not-at-top
  try:
    quantize.check_supported(options, num_replicas)
    if settings.sync_batch_norm:
      raise quantize.QuantizationError('--sync_batch_norm: quantisation-aware '
                                       'training runs on one replica.')
    task = quantization.QuantizationAwareTask(
        tasks.task_for(options, settings.loss, settings.task_settings,
                       descriptor.ignore_label),
        FLAGS.quantize_delay_step, settings.batch_norm_decay)
  except quantize.QuantizationError as e:
    raise app.UsageError('--quantize_delay_step=%d: %s'
                         % (FLAGS.quantize_delay_step, e)) from None
  logging.info('Quantisation-aware training (the original\'s '
               'create_training_graph): 8-bit fake quantisation from step %d.',
               FLAGS.quantize_delay_step)
  return task


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
