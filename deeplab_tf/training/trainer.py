"""The DeepLab training loop under tf.distribute, as the original train.py.

One code path for the default strategy, MirroredStrategy,
MultiWorkerMirroredStrategy and TPUStrategy:

  * loss = softmax CE on every scale of the pyramid + merged logits, plus the
    original L2 terms, divided per replica so the summed gradient equals the
    original's (``total_loss.total_training_loss``);
  * TF1 momentum with the original learning-rate schedule; 2x gradient on
    biases and the last-layer multiplier (``gradient_multipliers``);
  * BatchNorm trained (synchronised across replicas) when
    ``fine_tune_batch_norm``, else frozen in inference mode (phase 2);
  * an existing checkpoint in ``train_logdir`` wins over the initial
    checkpoint (resume, with optimizer state and step), as the original;
  * only the chief writes checkpoints and TensorBoard summaries.
"""
import dataclasses
import json
import os
import time
from typing import Callable, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.evaluation import watch
from deeplab_tf.progress import format_duration
from deeplab_tf.models import build_model
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.deeplab import get_extra_layer_scopes
from deeplab_tf.training.gradient_multipliers import GradientMultiplier
from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.losses import softmax_cross_entropy_loss_for_each_scale
from deeplab_tf.training.optimizer import TF1Momentum
from deeplab_tf.training.regularization import l2_regularization_loss
from deeplab_tf.training.schedules import DeepLabLearningRate
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.total_loss import total_training_loss

CHECKPOINT_NAME = 'ckpt'
OPTIONS_FILE = 'model_options.json'


@dataclasses.dataclass
class TrainSettings:
  """train.py flags (original defaults) other than the model options."""
  train_logdir: str
  train_batch_size: int = 8  # global batch, split across replicas
  learning_rate: LearningRateSettings = dataclasses.field(
      default_factory=LearningRateSettings)
  loss: LossSettings = dataclasses.field(default_factory=LossSettings)
  gradient_multipliers: GradientMultiplierSettings = dataclasses.field(
      default_factory=GradientMultiplierSettings)
  momentum: float = 0.9
  weight_decay: float = 0.00004
  fine_tune_batch_norm: bool = True
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

  @property
  def training_number_of_steps(self):
    return self.learning_rate.training_number_of_steps


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
    options: ModelOptions (crop_size = the training crop).
    settings: TrainSettings.
    dataset_fn: ``fn(input_context) -> tf.data.Dataset`` of per-replica
      batches ``{'image': float [b, H, W, 3], 'label': int [b, H, W, 1]}``.
    strategy: a tf.distribute strategy (default: the current one).
    num_classes / ignore_label: of the dataset.
  """

  def __init__(self, options, settings: TrainSettings,
               dataset_fn: Callable, strategy=None, ignore_label=None):
    self.options = options
    self.settings = settings
    self.dataset_fn = dataset_fn
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_classes = options.num_classes
    self.ignore_label = (settings.loss.ignore_label if ignore_label is None
                         else ignore_label)
    self.chief = is_chief(self.strategy)
    replicas = self.strategy.num_replicas_in_sync
    if settings.train_batch_size % replicas:
      raise ValueError('train_batch_size %d is not divisible by the %d '
                       'replicas.' % (settings.train_batch_size, replicas))
    if settings.mixed_precision:
      keras.mixed_precision.set_global_policy(settings.mixed_precision)
    with self.strategy.scope():
      self.model = build_model(
          options, batch_norm_trainable=settings.fine_tune_batch_norm,
          sync_batch_norm=settings.fine_tune_batch_norm and replicas > 1)
      if settings.batch_norm_decay is not None:
        for layer in self.model.layers:
          if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = settings.batch_norm_decay
      schedule = DeepLabLearningRate(settings.learning_rate)
      optimizer = TF1Momentum(schedule, momentum=settings.momentum)
      if settings.mixed_precision == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      self.optimizer = optimizer
      self.optimizer.build(self.model.trainable_weights)
      self.checkpoint = tf.train.Checkpoint(
          model=checkpoints.NamedVariables(self.model),
          optimizer=self.optimizer)
    self.schedule = schedule
    self.multiplier = GradientMultiplier.for_model(
        self.model, settings.gradient_multipliers)
    self.checkpoint_dir = (settings.train_logdir if self.chief else os.path.join(
        settings.train_logdir, 'worker_tmp_%d' % self.strategy.cluster_resolver.task_id))
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, self.checkpoint_dir, max_to_keep=settings.max_to_keep,
        checkpoint_name=CHECKPOINT_NAME)
    self._train_fn = None  # traced once, reused by later train() calls

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
      exclude = ([] if self.settings.initialize_last_layer else
                 get_extra_layer_scopes(
                     self.settings.gradient_multipliers
                     .last_layers_contain_logits_only))
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
    return 'initialised: ' + checkpoints.restore_model(self.model, path)

  # --- the step ------------------------------------------------------------------
  def _replica_step(self, batch):
    images, labels = batch['image'], batch['label']
    loss_settings = self.settings.loss
    with tf.GradientTape() as tape:
      outputs = self.model(images, training=True)
      outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
      losses, task_loss = softmax_cross_entropy_loss_for_each_scale(
          outputs, labels, self.num_classes, self.ignore_label,
          step=self.optimizer.iterations, **loss_settings.loss_kwargs())
      reg_loss = l2_regularization_loss(self.model, self.settings.weight_decay)
      loss = total_training_loss(task_loss, reg_loss,
                                 self.strategy.num_replicas_in_sync)
      scaled = (self.optimizer.scale_loss(loss)
                if hasattr(self.optimizer, 'scale_loss') else loss)
    variables = self.model.trainable_weights
    grads = tape.gradient(scaled, variables)
    self.optimizer.apply_gradients(self.multiplier(zip(grads, variables)))
    # Training pixel accuracy on the merged logits at the label resolution.
    labels = tf.cast(labels, tf.int32)
    logits = dl_layers.resize_bilinear(outputs['merged_logits'],
                                       tf.shape(labels)[1:3])
    predictions = tf.argmax(logits, axis=3, output_type=tf.int32)
    valid = tf.not_equal(labels[..., 0], self.ignore_label)
    correct = tf.logical_and(valid, tf.equal(predictions, labels[..., 0]))
    replicas = float(self.strategy.num_replicas_in_sync)
    return {'total_loss': loss, 'task_loss': task_loss / replicas,
            'regularization_loss': reg_loss / replicas,
            'correct_pixels': tf.reduce_sum(tf.cast(correct, tf.float32)),
            'valid_pixels': tf.reduce_sum(tf.cast(valid, tf.float32))}

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
        return replica_step(batch), tf.identity(requests)
      per_replica, requests = self.strategy.run(
          replica_fn, args=(next(iterator), requests))
      metrics = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v,
                                         axis=None)
                 for k, v in per_replica.items()}
      return metrics, self.strategy.reduce(tf.distribute.ReduceOp.MEAN,
                                           requests, axis=None)
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
        watch.write_training_done(self.settings.train_logdir, self.step, latest)

  # --- the loop -------------------------------------------------------------------
  def train(self, max_steps=None, stop_after_seconds=None):
    """Runs until ``training_number_of_steps`` (or ``max_steps`` more steps).

    Returns the last logged metrics (dict of floats).
    """
    s = self.settings
    os.makedirs(s.train_logdir, exist_ok=True)
    if self.chief:
      with open(os.path.join(s.train_logdir, OPTIONS_FILE), 'w') as f:
        json.dump(self.options.to_dict(), f, indent=1, sort_keys=True)
    logging.info(self.initialize())
    target = s.training_number_of_steps
    if max_steps is not None:
      target = min(target, self.step + max_steps)
    if self.step >= target:
      logging.info('Step %d >= %d: nothing to train.', self.step, target)
      self._mark_done()
      return {}
    if self.chief:
      watch.clear_training_done(s.train_logdir)
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
    now = time.time()
    while self.step < target:
      requests = tf.constant(
          [now - last_save >= s.save_interval_secs,
           stop_after_seconds is not None and
           now - start_time > stop_after_seconds], tf.float32)
      values, agreed = train_fn(iterator, requests)
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
      now = time.time()
      if step % s.log_steps == 0 or step == target:
        elapsed = now - window_start
        steps_per_sec = window_steps / elapsed if elapsed > 0 else 0.0
        metrics = self._metrics(values, steps_per_sec)
        eta = (target - step) / steps_per_sec if steps_per_sec else float('nan')
        logging.info(
            'step %d/%d  loss %.4f (ce %.4f, l2 %.4f)  lr %.3g  %.2f steps/s  '
            '%.1f images/s  pixel acc %.3f  ETA %s', step, target,
            metrics['total_loss'], metrics['task_loss'],
            metrics['regularization_loss'], metrics['learning_rate'],
            steps_per_sec, metrics['images_per_sec'], metrics['pixel_accuracy'],
            format_duration(eta))
        window_start, window_steps = now, 0
        if now - last_summary >= s.save_summaries_secs or step == target or (
            step - start_step <= s.log_steps):
          self._write_summaries(writer, metrics, step)
          last_summary = now
      if stop_due:
        break
      if save_due or (s.save_interval_steps and
                      step % s.save_interval_steps == 0):
        self._save(step)
        last_save = now
    self._save(self.step)
    self._mark_done()
    if s.save_summaries_images and self.chief:
      self._write_image_summaries(writer, next(iter(self.dataset_fn(
          tf.distribute.InputContext()))))
    writer.flush()
    return metrics

  def _metrics(self, values, steps_per_sec):
    metrics = dict(values)
    metrics['pixel_accuracy'] = (values['correct_pixels'] /
                                 max(values['valid_pixels'], 1.0))
    metrics['learning_rate'] = float(self.schedule(self.step - 1))
    metrics['steps_per_sec'] = steps_per_sec
    metrics['images_per_sec'] = steps_per_sec * self.settings.train_batch_size
    return metrics

  @staticmethod
  def _write_summaries(writer, metrics, step):
    with writer.as_default(step=step):
      for name in ('total_loss', 'task_loss', 'regularization_loss',
                   'learning_rate', 'steps_per_sec', 'images_per_sec',
                   'pixel_accuracy'):
        tf.summary.scalar(name, metrics[name])

  def _write_image_summaries(self, writer, batch):
    from deeplab_tf import visualization  # pylint: disable=g-import-not-at-top
    logits = self.model(batch['image'], training=False)['merged_logits']
    logits = dl_layers.resize_bilinear(tf.cast(logits, tf.float32),
                                       tf.shape(batch['image'])[1:3])
    predictions = np.argmax(logits.numpy(), axis=3)
    labels = batch['label'].numpy()[..., 0]
    with writer.as_default(step=self.step):
      tf.summary.image('image', tf.cast(batch['image'], tf.uint8), max_outputs=3)
      tf.summary.image('label', visualization.colorize(
          labels, self.settings.colormap), max_outputs=3)
      tf.summary.image('prediction', visualization.colorize(
          predictions, self.settings.colormap), max_outputs=3)
