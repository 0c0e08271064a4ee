"""Quantisation-aware training: the original train.py with --quantize_delay_step.

The original calls ``tf.contrib.quantize.create_training_graph(quant_delay=
FLAGS.quantize_delay_step)`` after building the model (refused with
``num_clones > 1``) and trains the rewritten graph as any other; its
g3doc/quantize.md fine-tunes a converged float model with
``--quantize_delay_step=0`` and a small learning rate (3e-5 on PASCAL, 2k-5k
steps). Here the task that trains the model family builds the quantised
model of ``models/quantize.py`` instead of the float one; the rest of the
trainer (loss, L2, multipliers, checkpoints, resume) is unchanged. The
quantisation ranges are non-trainable variables, saved by name with the rest;
an initial float checkpoint leaves them at their initial values, as the
original restores its initial checkpoint ignoring missing variables.
"""
from deeplab_tf.models import quantize


class QuantizationAwareTask:
  """A training task whose model is the quantisation-aware one.

  Args:
    task: the family's task (``tasks.task_for``); everything but the model
      is its.
    quant_delay: --quantize_delay_step (>= 0).
    batch_norm_decay: --all_batch_norm_decay (the quantised convs hold their
      BatchNorm, which the trainer's BatchNormalization loop does not see).
  """

  def __init__(self, task, quant_delay, batch_norm_decay=None):
    if quant_delay is None or quant_delay < 0:
      raise quantize.QuantizationError(
          'quant_delay must be >= 0 for quantisation-aware training; got %r.'
          % (quant_delay,))
    quantize.check_supported(task.options)
    self._task = task
    self.quant_delay = int(quant_delay)
    self.batch_norm_decay = batch_norm_decay

  def __getattr__(self, name):
    return getattr(self._task, name)

  def build_model(self, fine_tune_batch_norm, sync_batch_norm):
    if sync_batch_norm:
      raise quantize.QuantizationError(
          'sync_batch_norm: quantisation-aware training runs on one replica.')
    return quantize.build_quantized_model(
        self._task.options, quant_delay=self.quant_delay,
        fine_tune_batch_norm=fine_tune_batch_norm,
        batch_norm_decay=self.batch_norm_decay)
