"""The DeepLab training loop under tf.distribute, as the original train.py.

One code path for the default strategy, MirroredStrategy,
MultiWorkerMirroredStrategy and TPUStrategy, and for every model of the
family: a task (``tasks/``, one registered module per model family) gives
the model, its loss and its training metric (DeepLab: softmax CE on every
scale; DeeperLab: its five losses), chosen from the options' family. Shared
by all:

  * loss = the task loss plus the original L2 terms, divided per replica so
    the summed gradient equals the original's
    (``total_loss.total_training_loss``);
  * TF1 momentum with the original learning-rate schedule; 2x gradient on
    biases and the last-layer multiplier (``gradient_multipliers``);
  * BatchNorm as the original (``models/batch_norm.py``): with
    ``fine_tune_batch_norm`` batch statistics per replica, moving averages
    from the first replica (Bessel-corrected variance); without it the
    moving statistics are used and kept while gamma and beta still train
    (phase 2); ``sync_batch_norm`` (ours) uses global-batch statistics;
  * an existing checkpoint in ``train_logdir`` wins over the initial
    checkpoint (resume, with optimizer state and step), as the original;
  * ``trainable_scopes`` (not in the original DeepLab train.py; slim's
    train_image_classifier has the flag) restricts training to some
    variables, e.g. DeepLab-MSc's new MLPs (v1 Sec. 4.3);
  * only the chief writes checkpoints and TensorBoard summaries.
"""
import dataclasses
import os
import re
import time
from typing import Any, Callable, Optional, Tuple

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.core import progress
from deeplab_tf.models.backbones import nas_cell
from deeplab_tf.training import tasks as tasks_lib
from deeplab_tf.training.gradient_multipliers import get_gradient_multipliers
from deeplab_tf.training.gradient_multipliers import GradientMultiplier
from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.optimizer import TF1Momentum
from deeplab_tf.training.regularization import l2_regularization_loss
from deeplab_tf.training.regularization import regularized_variables
from deeplab_tf.training.schedules import DeepLabLearningRate
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.total_loss import total_training_loss

# model.ckpt-<step>, the original train.py's checkpoint names.
CHECKPOINT_NAME = checkpoints.CHECKPOINT_PREFIX


def part_metric(part):
  """Metric / TensorBoard tag of a task's loss part: '<part>_loss'."""
  return '%s_loss' % part


@dataclasses.dataclass
class TrainSettings:
  """train.py flags (original defaults) other than the model options."""
  train_logdir: str
  train_batch_size: int = 8  # global batch, split across replicas
  learning_rate: LearningRateSettings = dataclasses.field(
      default_factory=LearningRateSettings)
  loss: LossSettings = dataclasses.field(default_factory=LossSettings)
  # The model family's own task settings (``tasks.registry``; e.g.
  # tasks.DeeperLabTaskSettings); None: the task's defaults. ``loss`` above
  # is the original train.py loss, which the semantic task reads.
  task_settings: Optional[Any] = None
  gradient_multipliers: GradientMultiplierSettings = dataclasses.field(
      default_factory=GradientMultiplierSettings)
  momentum: float = 0.9
  # train.py --optimizer: 'momentum' (TF1 MomentumOptimizer on the learning
  # rate schedule) or 'adam' (TF1 AdamOptimizer at the constant
  # adam_learning_rate with adam_epsilon; the schedule is not used).
  optimizer: str = 'momentum'
  adam_learning_rate: float = 0.001
  adam_epsilon: float = 1e-08
  weight_decay: float = 0.00004
  fine_tune_batch_norm: bool = True
  # train.py --drop_path_keep_prob: drop path in the NAS backbones' cells
  # (backbones/nas_cell.py), scheduled over cells and over
  # training_number_of_steps. As the original, active only with
  # fine_tune_batch_norm (its NAS is_training is is_training and
  # fine_tune_batch_norm); models without NAS cells ignore it.
  drop_path_keep_prob: float = 1.0
  # Not in the original: a Keras initializer name (e.g. 'glorot_uniform')
  # that replaces the original's per-layer initialisers of every conv and
  # depthwise kernel before any checkpoint is restored. None: the original's
  # (models/initializers.py), meant for fresh heads on a pretrained backbone;
  # the CamVid from-scratch recipe trains better with glorot_uniform.
  kernel_initializer: Optional[str] = None
  # Not in the original: BatchNorm statistics of the global batch across
  # replicas. The original normalises each replica (clone) with its own
  # sub-batch; synchronising helps when per-replica batches are small.
  sync_batch_norm: bool = False
  tf_initial_checkpoint: Optional[str] = None
  initialize_last_layer: bool = True
  log_steps: int = 10
  save_interval_secs: float = 1200
  save_interval_steps: Optional[int] = None  # also save every N steps
  save_summaries_secs: float = 600
  save_summaries_images: bool = False
  max_to_keep: int = 5
  mixed_precision: Optional[str] = None  # None, 'mixed_float16', 'mixed_bfloat16'
  jit_compile: bool = False
  # Overrides every BatchNorm's moving-average decay. None keeps the
  # original's (0.9997 heads and Xception, 0.997 MobileNet, 0.95 ResNet);
  # short runs (the quickstart) need a faster average, or the inference
  # statistics are still mostly their initial values when training ends.
  batch_norm_decay: Optional[float] = None
  colormap: object = 'pascal'  # a visualization colormap name or RGB list
  # Regular expressions matched (re.match: at the start) against ORIGINAL
  # variable names; only matching variables get gradients, updates and L2.
  # A plain scope such as 'msc' or 'logits' is a prefix. Empty: all
  # variables, as the original train.py. A BatchNorm layer with no matching
  # variable is frozen whole (inference mode, moving statistics kept), so
  # every variable outside the scopes stays exactly as initialised.
  trainable_scopes: Tuple[str, ...] = ()
  # train.py --profile_logdir: a TensorFlow profiler trace of
  # PROFILE_STEPS steps (after PROFILE_SKIP_STEPS warm-up steps of each run)
  # written there, for TensorBoard's profile tab. None: no profiling.
  profile_logdir: Optional[str] = None

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise ValueError('optimizer must be one of %s; got %r.'
                       % (', '.join(OPTIMIZERS), self.optimizer))
    if not 0.0 < self.drop_path_keep_prob <= 1.0:
      raise ValueError('drop_path_keep_prob must be in (0, 1]; got %r.'
                       % (self.drop_path_keep_prob,))
    if isinstance(self.trainable_scopes, str):
      raise ValueError('trainable_scopes must be a sequence of patterns; got '
                       'the single string %r (write (%r,)).'
                       % (self.trainable_scopes, self.trainable_scopes))
    self.trainable_scopes = tuple(self.trainable_scopes or ())
    if self.kernel_initializer:
      try:
        keras.initializers.get(self.kernel_initializer)
      except ValueError as e:
        raise ValueError('kernel_initializer %r is not a Keras initializer '
                         'name (e.g. glorot_uniform, he_normal).'
                         % (self.kernel_initializer,)) from e
    for pattern in self.trainable_scopes:
      try:
        re.compile(pattern)
      except re.error as e:
        raise ValueError('trainable_scopes entry %r is not a valid regular '
                         'expression: %s.' % (pattern, e)) from e

  @property
  def training_number_of_steps(self):
    return self.learning_rate.training_number_of_steps


OPTIMIZERS = ('momentum', 'adam')
# The profiler traces this many steps, after skipping the first steps of a
# run (graph tracing and warm-up would dominate the trace).
PROFILE_SKIP_STEPS = 2
PROFILE_STEPS = 5


def make_optimizer(settings: 'TrainSettings', schedule):
  """The original train.py optimizer: TF1 momentum on the schedule, or TF1
  Adam at a constant rate (Keras' Adam update is TF1's: bias-corrected
  step size, epsilon added to sqrt(v))."""
  if settings.optimizer == 'adam':
    return keras.optimizers.Adam(learning_rate=settings.adam_learning_rate,
                                 beta_1=0.9, beta_2=0.999,
                                 epsilon=settings.adam_epsilon, name='Adam')
  return TF1Momentum(schedule, momentum=settings.momentum)


# train.py flag -> TrainSettings field, where both have the same meaning
# (the names are the original train.py's, ``all_batch_norm_decay`` ours).
_PLAIN_FLAGS = {
    'train_batch_size': 'train_batch_size', 'momentum': 'momentum',
    'weight_decay': 'weight_decay', 'optimizer': 'optimizer',
    'adam_learning_rate': 'adam_learning_rate',
    'adam_epsilon': 'adam_epsilon', 'profile_logdir': 'profile_logdir',
    'fine_tune_batch_norm': 'fine_tune_batch_norm',
    'drop_path_keep_prob': 'drop_path_keep_prob',
    'kernel_initializer': 'kernel_initializer',
    'sync_batch_norm': 'sync_batch_norm',
    'tf_initial_checkpoint': 'tf_initial_checkpoint',
    'initialize_last_layer': 'initialize_last_layer',
    'log_steps': 'log_steps', 'save_interval_secs': 'save_interval_secs',
    'save_interval_steps': 'save_interval_steps',
    'save_summaries_secs': 'save_summaries_secs',
    'save_summaries_images': 'save_summaries_images',
    'max_to_keep': 'max_to_keep', 'mixed_precision': 'mixed_precision',
    'jit_compile': 'jit_compile', 'trainable_scopes': 'trainable_scopes',
    'all_batch_norm_decay': 'batch_norm_decay',
}


def train_settings_from_flag_values(values, train_logdir: str,
                                    ignore_label: int = 255,
                                    **overrides) -> TrainSettings:
  """TrainSettings from train.py flag values by name (the one mapping).

  ``values`` holds the original train.py flags (and ours), from absl in
  train.py or from a conformance case's dict; a name that is absent keeps
  the original default. ``ignore_label`` is the dataset's; ``overrides`` set
  fields directly (e.g. ``colormap``, ``task_settings``).
  """
  lr_fields = {f.name for f in dataclasses.fields(LearningRateSettings)}
  learning_rate = LearningRateSettings(
      **{k: v for k, v in values.items() if k in lr_fields and v is not None})
  label_weights = values.get('label_weights')
  loss = LossSettings(
      loss_weight=list(label_weights) if label_weights else 1.0,
      upsample_logits=bool(values.get('upsample_logits', True)),
      hard_example_mining_step=int(values.get('hard_example_mining_step', 0)),
      top_k_percent_pixels=float(values.get('top_k_percent_pixels', 1.0)),
      ignore_label=int(ignore_label))
  multipliers = GradientMultiplierSettings(
      last_layers_contain_logits_only=bool(
          values.get('last_layers_contain_logits_only', False)),
      last_layer_gradient_multiplier=float(
          values.get('last_layer_gradient_multiplier', 1.0)))
  fields = {field: values[flag] for flag, field in _PLAIN_FLAGS.items()
            if flag in values}
  if 'trainable_scopes' in fields:
    fields['trainable_scopes'] = tuple(fields['trainable_scopes'] or ())
  fields.update(overrides)
  return TrainSettings(train_logdir=train_logdir, learning_rate=learning_rate,
                       loss=loss, gradient_multipliers=multipliers, **fields)


def select_trainable(named_variables, trainable_scopes):
  """``{name: variable}`` of the variables ``trainable_scopes`` selects.

  Each pattern must select at least one variable (a typo would otherwise
  freeze the whole model silently).
  """
  if not trainable_scopes:
    return dict(named_variables)
  unmatched = [p for p in trainable_scopes
               if not any(re.match(p, n) for n in named_variables)]
  if unmatched:
    raise ValueError('trainable_scopes %s match no variable of the model; '
                     'expected patterns matching the start of original '
                     'variable names such as %s.'
                     % (unmatched, sorted(named_variables)[:5]))
  return {n: v for n, v in named_variables.items()
          if any(re.match(p, n) for p in trainable_scopes)}


def freeze_unselected_layers(model, selected):
  """Sets ``trainable=False`` on every layer none of whose weights is selected.

  A frozen BatchNorm then runs in inference mode (Keras: batch statistics
  only when ``training and trainable``), so its moving averages stay too.
  Returns the names of the layers frozen here.
  """
  selected_ids = {id(v) for v in selected.values()}
  frozen = []
  for layer in model.layers:
    if layer.weights and layer.trainable and not any(
        id(w) in selected_ids for w in layer.weights):
      layer.trainable = False
      frozen.append(layer.name)
  return frozen


def configure_drop_path(model, settings, step):
  """Drop path of the model's NAS cells from the settings (the original's
  ``nas_training_hyper_parameters``); the step counter drives its schedule."""
  keep = settings.drop_path_keep_prob
  if keep < 1.0 and not settings.fine_tune_batch_norm:
    if nas_cell.drop_path_layers(model):
      logging.warning(
          'drop_path_keep_prob=%g is not applied: as in the original, the '
          'NAS cells drop paths only with fine_tune_batch_norm.', keep)
    keep = 1.0
  count = nas_cell.configure_drop_path(
      model, keep, settings.training_number_of_steps, step)
  if count and keep < 1.0:
    logging.info('Drop path on %d NAS operations: keep probability %g, '
                 'scheduled over the cells and %d steps.', count, keep,
                 settings.training_number_of_steps)
  return count


def reinitialize_kernels(model, initializer):
  """Draws every conv / depthwise kernel anew from Keras ``initializer`` (a name).

  Returns the number of kernels drawn. Biases and BatchNorm keep their
  (zero / one) starts.
  """
  count = 0
  for layer in model.layers:
    if isinstance(layer, keras.layers.SeparableConv2D):
      # The NAS cells' one-scope separable convs: both kernels.
      for attribute, kernel in (
          ('depthwise_initializer', layer.depthwise_kernel),
          ('pointwise_initializer', layer.pointwise_kernel)):
        init = keras.initializers.get(initializer)
        setattr(layer, attribute, init)
        kernel.assign(init(tuple(kernel.shape), kernel.dtype))
        count += 1
      continue
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      attribute = 'depthwise_initializer'
    elif isinstance(layer, keras.layers.Conv2D):
      attribute = 'kernel_initializer'
    else:
      continue
    init = keras.initializers.get(initializer)
    setattr(layer, attribute, init)
    layer.kernel.assign(init(tuple(layer.kernel.shape), layer.kernel.dtype))
    count += 1
  return count


def is_chief(strategy):
  """Chief = the only writer of checkpoints and summaries."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == 'chief' or (task_type == 'worker' and task_id == 0
                                  and 'chief' not in resolver.cluster_spec().jobs)


class Trainer:
  """Builds the model/optimizer under ``strategy`` and runs the training loop.

  Args:
    options: ModelOptions or DeeperLabOptions (crop_size = the training crop).
    settings: TrainSettings.
    dataset_fn: ``fn(input_context) -> tf.data.Dataset`` of per-replica
      batches: ``{'image': float [b, H, W, 3], 'label': int [b, H, W, 1]}``
      for DeepLab; ``'image'`` plus the ``panoptic_targets`` keys for
      DeeperLab.
    strategy: a tf.distribute strategy (default: the current one).
    ignore_label: of the dataset (default: the loss settings').
    task: a ``tasks`` object; default ``tasks.task_for(options, ...)`` with
      ``settings.loss`` / ``settings.task_settings``.
  """

  def __init__(self, options, settings: TrainSettings,
               dataset_fn: Callable, strategy=None, ignore_label=None,
               task=None):
    if task is None:
      task = tasks_lib.task_for(options, settings.loss, settings.task_settings,
                                ignore_label)
    elif task.options is not options:
      raise ValueError('Trainer got options %r and a task for other options '
                       '%r; pass the task\'s own options.'
                       % (options, task.options))
    self.task = task
    self.options = options
    self.settings = settings
    self.dataset_fn = dataset_fn
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_classes = task.num_classes
    self.ignore_label = task.ignore_label
    self.chief = is_chief(self.strategy)
    replicas = self.strategy.num_replicas_in_sync
    if settings.train_batch_size % replicas:
      raise ValueError('train_batch_size %d is not divisible by the %d '
                       'replicas.' % (settings.train_batch_size, replicas))
    if settings.mixed_precision:
      keras.mixed_precision.set_global_policy(settings.mixed_precision)
    with self.strategy.scope():
      self.model = task.build_model(
          fine_tune_batch_norm=settings.fine_tune_batch_norm,
          sync_batch_norm=settings.sync_batch_norm)
      if settings.kernel_initializer:
        reinitialize_kernels(self.model, settings.kernel_initializer)
      if settings.batch_norm_decay is not None:
        for layer in self.model.layers:
          if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = settings.batch_norm_decay
      named = checkpoints.model_variables(self.model)
      selected = select_trainable(named, settings.trainable_scopes)
      if settings.trainable_scopes:
        frozen = freeze_unselected_layers(self.model, selected)
        logging.info('trainable_scopes %s: %d of %d variables train; %d layers '
                     'frozen.', list(settings.trainable_scopes), len(selected),
                     len(named), len(frozen))
      selected_ids = {id(v) for v in selected.values()}
      # Model order, as the original's list of trainable variables.
      self.train_variables = (
          [v for v in self.model.trainable_weights if id(v) in selected_ids]
          if settings.trainable_scopes else list(self.model.trainable_weights))
      # The L2 terms of the variables that train (a frozen kernel's term
      # would be a constant in the loss).
      self.regularized = {n: v for n, v in regularized_variables(
          self.model).items() if id(v) in selected_ids}
      schedule = DeepLabLearningRate(settings.learning_rate)
      optimizer = make_optimizer(settings, schedule)
      if settings.mixed_precision == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self.optimizer.build(self.train_variables)
      configure_drop_path(self.model, settings, self.optimizer.iterations)
      self.checkpoint = tf.train.Checkpoint(
          model=checkpoints.NamedVariables(self.model),
          optimizer=self.optimizer)
    self.schedule = schedule
    multipliers = settings.gradient_multipliers
    self.last_layers = task.last_layer_scopes(
        multipliers.last_layers_contain_logits_only)
    self.multiplier = GradientMultiplier(named, get_gradient_multipliers(
        named, self.last_layers, multipliers.last_layer_gradient_multiplier))
    self.checkpoint_dir = (settings.train_logdir if self.chief else os.path.join(
        settings.train_logdir, 'worker_tmp_%d' % self.strategy.cluster_resolver.task_id))
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self.checkpoint_dir, max_to_keep=settings.max_to_keep,
        checkpoint_name=CHECKPOINT_NAME)
    self._train_fn = None  # traced once, reused by later train() calls
    self._initialized = False

  # --- state -------------------------------------------------------------------
  @property
  def step(self):
    return int(self.optimizer.iterations.numpy())

  def initialize(self):
    """Resume from train_logdir, else initialise from tf_initial_checkpoint.

    Returns a short description of what was done.
    """
    # Every worker resumes from the chief's checkpoint (train_logdir), so a
    # restarted multi-worker job continues from one consistent state; the
    # non-chief write directories are deleted after each save.
    latest = tf.train.latest_checkpoint(self.settings.train_logdir)
    if latest:
      self.checkpoint.restore(latest).assert_existing_objects_matched()
      return 'resumed from %s at step %d' % (latest, self.step)
    path = self.settings.tf_initial_checkpoint
    if not path:
      return 'initialised from scratch'
    if checkpoints.is_tf1_checkpoint(path):
      exclude = [] if self.settings.initialize_last_layer else self.last_layers
      report = checkpoints.load_tf1_checkpoint(
          self.model, path, exclude_scopes=exclude, strict=True,
          ignore_missing=True)
      logging.info(report.summary())
      return 'initialised from TF1 checkpoint %s (%d variables, %d missing)' % (
          report.checkpoint, len(report.loaded), len(report.missing))
    if not self.settings.initialize_last_layer:
      raise ValueError('initialize_last_layer=False needs a TF1 (name-based) '
                       'initial checkpoint; %s is one of our training '
                       'checkpoints (convert it with save_tf1_checkpoint).'
                       % path)
    # A quantisation-aware model may start from a float checkpoint: its
    # ranges then start fresh, as the original restores ignoring missing vars.
    return 'initialised: ' + checkpoints.restore_model(
        self.model, path, allow_missing=getattr(
            self.model, 'initial_checkpoint_may_lack', ()))

  # --- the step ------------------------------------------------------------------
  def _replica_step(self, batch):
    with tf.GradientTape() as tape:
      outputs = self.model(batch['image'], training=True)
      outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
      task_loss, parts = self.task.loss(outputs, batch,
                                        step=self.optimizer.iterations)
      reg_loss = l2_regularization_loss(self.regularized,
                                        self.settings.weight_decay)
      loss = total_training_loss(task_loss, reg_loss,
                                 self.strategy.num_replicas_in_sync)
      scaled = (self.optimizer.scale_loss(loss)
                if hasattr(self.optimizer, 'scale_loss') else loss)
    variables = self.train_variables
    grads = tape.gradient(scaled, variables)
    self.optimizer.apply_gradients(self.multiplier(zip(grads, variables)))
    correct, valid = self.task.pixel_counts(outputs, batch)
    replicas = float(self.strategy.num_replicas_in_sync)
    # Replica values are summed by the loop: losses divided here average.
    metrics = {'total_loss': loss, 'task_loss': task_loss / replicas,
               'regularization_loss': reg_loss / replicas,
               'correct_pixels': correct, 'valid_pixels': valid}
    for name, part in parts.items():
      metrics[part_metric(name)] = part / replicas
    samples = (self.task.summary_samples(outputs, batch)
               if self.settings.save_summaries_images else {})
    return metrics, samples

  def _make_train_function(self):
    # XLA compiles the per-replica computation only: reading the iterator
    # (IteratorGetNext) has no XLA kernel.
    replica_step = (tf.function(self._replica_step, jit_compile=True)
                    if self.settings.jit_compile else self._replica_step)

    def step(iterator, requests):
      # ``requests`` = [save due, stop due] by this worker's clock; they ride
      # on the step's all-reduce so that every worker saves and stops at the
      # same step (a worker leaving the loop alone would hang the others).
      def replica_fn(batch, requests):
        metrics, samples = replica_step(batch)
        return metrics, samples, tf.identity(requests)
      per_replica, samples, requests = self.strategy.run(
          replica_fn, args=(next(iterator), requests))
      metrics = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v,
                                         axis=None)
                 for k, v in per_replica.items()}
      # Image summaries show the first replica's batch, as the original's
      # show clone 0's.
      samples = {k: self.strategy.experimental_local_results(v)[0]
                 for k, v in samples.items()}
      return metrics, self.strategy.reduce(tf.distribute.ReduceOp.MEAN,
                                           requests, axis=None), samples
    return tf.function(step)

  def _save(self, step):
    """All workers save (as tf.distribute requires); only the chief's copy stays."""
    self.manager.save(checkpoint_number=step)
    if not self.chief:
      tf.io.gfile.rmtree(self.checkpoint_dir)

  def _mark_done(self):
    """training_done.json once the schedule's last step is saved (ends eval loops)."""
    if self.chief and self.step >= self.settings.training_number_of_steps:
      latest = tf.train.latest_checkpoint(self.settings.train_logdir)
      if latest:
        checkpoints.folders.write_training_done(self.settings.train_logdir, self.step, latest)

  # --- the loop -------------------------------------------------------------------
  def train(self, max_steps=None, stop_after_seconds=None, on_step=None):
    """Runs until ``training_number_of_steps`` (or ``max_steps`` more steps).

    ``on_step(step, values)``, if given, is called after every step with the
    new step number and that step's all-reduced values (floats:
    ``total_loss``, ``task_loss``, ``regularization_loss``, the task's
    ``<part>_loss``, pixel counts), e.g. to record a trajectory.

    The first call resumes or initialises (``initialize``); later calls on
    the same Trainer continue from its state in memory.

    Returns the last logged metrics (dict of floats).
    """
    s = self.settings
    os.makedirs(s.train_logdir, exist_ok=True)
    if self.chief:
      checkpoints.folders.write_options(s.train_logdir, self.options)
    if not self._initialized:
      logging.info(self.initialize())
      self._initialized = True
    target = s.training_number_of_steps
    if max_steps is not None:
      target = min(target, self.step + max_steps)
    if self.step >= target:
      logging.info('Step %d >= %d: nothing to train.', self.step, target)
      self._mark_done()
      return {}
    if self.chief:
      checkpoints.folders.clear_training_done(s.train_logdir)
    dataset = self.strategy.distribute_datasets_from_function(self.dataset_fn)
    iterator = iter(dataset)
    if self._train_fn is None:
      self._train_fn = self._make_train_function()
    train_fn = self._train_fn
    writer = (tf.summary.create_file_writer(s.train_logdir) if self.chief
              else tf.summary.create_noop_writer())
    last_save = last_summary = time.time()
    window_start, window_steps = time.time(), 0
    start_step, start_time = self.step, time.time()
    metrics = {}
    profiler = _StepProfiler(s.profile_logdir if self.chief else None,
                             start_step, target)
    now = time.time()
    while self.step < target:
      profiler.before_step(self.step)
      requests = tf.constant(
          [now - last_save >= s.save_interval_secs,
           stop_after_seconds is not None and
           now - start_time > stop_after_seconds], tf.float32)
      values, agreed, samples = train_fn(iterator, requests)
      values = {k: float(v) for k, v in values.items()}
      if not np.isfinite(values['total_loss']):
        # Every worker sees the same all-reduced loss, so all stop together.
        raise FloatingPointError(
            'Loss is %s at step %d (task %s, L2 %s); training stopped. Last '
            'good checkpoint: %s' % (values['total_loss'], self.step,
                                      values['task_loss'],
                                      values['regularization_loss'],
                                      tf.train.latest_checkpoint(
                                          s.train_logdir) or 'none'))
      save_due, stop_due = (float(x) > 0 for x in agreed.numpy())
      window_steps += 1
      step = self.step
      profiler.after_step(step)
      if on_step is not None:
        on_step(step, values)
      now = time.time()
      if step % s.log_steps == 0 or step == target:
        elapsed = now - window_start
        steps_per_sec = window_steps / elapsed if elapsed > 0 else 0.0
        metrics = self._metrics(values, steps_per_sec)
        eta = progress.eta_seconds(target - step, steps_per_sec)
        logging.info(
            'step %d/%d  loss %.4f (ce %.4f, l2 %.4f)  lr %.3g  %.2f steps/s  '
            '%.1f images/s  pixel acc %.3f  ETA %s%s', step, target,
            metrics['total_loss'], metrics['task_loss'],
            metrics['regularization_loss'], metrics['learning_rate'],
            steps_per_sec, metrics['images_per_sec'], metrics['pixel_accuracy'],
            progress.format_duration(eta), self._parts_text(metrics))
        window_start, window_steps = now, 0
        if now - last_summary >= s.save_summaries_secs or step == target or (
            step - start_step <= s.log_steps):
          self._write_summaries(writer, metrics, step)
          if s.save_summaries_images:
            self._write_image_summaries(writer, samples, step)
          last_summary = now
      if stop_due:
        break
      if save_due or (s.save_interval_steps and
                      step % s.save_interval_steps == 0):
        self._save(step)
        last_save = now
    profiler.stop()
    self._save(self.step)
    self._mark_done()
    writer.flush()
    return metrics

  def _metrics(self, values, steps_per_sec):
    metrics = dict(values)
    metrics['pixel_accuracy'] = (values['correct_pixels'] /
                                 max(values['valid_pixels'], 1.0))
    metrics['learning_rate'] = self.learning_rate(self.step - 1)
    metrics['steps_per_sec'] = steps_per_sec
    metrics['images_per_sec'] = steps_per_sec * self.settings.train_batch_size
    return metrics

  def learning_rate(self, step):
    """The rate the optimizer applied at ``step`` (Adam: its constant one)."""
    if self.settings.optimizer == 'adam':
      return float(self.settings.adam_learning_rate)
    return float(self.schedule(step))

  def _parts_text(self, metrics):
    """'  parts: semantic 0.12, ...' for tasks with named loss parts."""
    names = [n for n in self.task.part_names if part_metric(n) in metrics]
    if not names:
      return ''
    return '  parts: ' + ', '.join('%s %.4f' % (n, metrics[part_metric(n)])
                                   for n in names)

  def _write_summaries(self, writer, metrics, step):
    names = ['total_loss', 'task_loss', 'regularization_loss',
             'learning_rate', 'steps_per_sec', 'images_per_sec',
             'pixel_accuracy']
    names += [part_metric(n) for n in self.task.part_names
              if part_metric(n) in metrics]
    with writer.as_default(step=step):
      for name in names:
        tf.summary.scalar(name, metrics[name])

  def _write_image_summaries(self, writer, samples, step):
    """The original's samples/image, samples/label, samples/semantic.

    Labels and predictions are scaled by ``max(1, 255 // num_classes)`` and
    cast to uint8 as the original (so the ignore label wraps around, as
    there); ``*_colored`` (ours) are the same maps in the dataset's colours.
    """
    from deeplab_tf import visualization  # pylint: disable=g-import-not-at-top
    scaling = max(1, 255 // self.num_classes)
    image = np.clip(np.asarray(samples['image'], np.float32), 0, 255)
    with writer.as_default(step=step):
      tf.summary.image('samples/image', image.astype(np.uint8),
                       max_outputs=tasks_lib.SUMMARY_IMAGES)
      for name in ('label', 'semantic'):
        ids = np.asarray(samples[name], np.int64)
        tf.summary.image('samples/' + name, (ids * scaling).astype(np.uint8),
                         max_outputs=tasks_lib.SUMMARY_IMAGES)
        tf.summary.image('samples/%s_colored' % name, visualization.colorize(
            np.clip(ids[..., 0], 0, 255), self.settings.colormap),
                         max_outputs=tasks_lib.SUMMARY_IMAGES)


class _StepProfiler:
  """Traces steps [first, first + PROFILE_STEPS) of a run into ``logdir``.

  ``first`` skips PROFILE_SKIP_STEPS steps when the run is long enough (a
  shorter run traces what it has). The trace lands in
  ``logdir/plugins/profile/<run>/`` (TensorBoard --logdir=logdir, profile tab).
  """

  def __init__(self, logdir, start_step, target):
    self.logdir = logdir
    steps = target - start_step
    skip = PROFILE_SKIP_STEPS if steps > PROFILE_SKIP_STEPS else 0
    self.first = start_step + skip
    self.last = min(self.first + PROFILE_STEPS, target)
    self.running = False

  def before_step(self, step):
    if self.logdir and not self.running and step == self.first:
      tf.io.gfile.makedirs(self.logdir)
      tf.profiler.experimental.start(self.logdir)
      self.running = True
      logging.info('Profiling steps %d-%d into %s.', self.first + 1, self.last,
                   self.logdir)

  def after_step(self, step):
    if self.running and step >= self.last:
      self.stop()

  def stop(self):
    if self.running:
      tf.profiler.experimental.stop()
      self.running = False
      logging.info('Profile written to %s (TensorBoard: profile tab).',
                   self.logdir)
