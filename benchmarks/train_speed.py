r"""Training images/s on this machine: the real Trainer step, synthetic data.

Usage:
  python benchmarks/train_speed.py [--configs=mobilenet_v2,xception_65]
      [--steps=5] [--warmup=2] [--jit=false,true] [--batch_size=2]

For each configuration it builds ``Trainer`` (default strategy, BatchNorm
trained, the original loss with L2 and gradient multipliers, TF1 momentum,
poly learning rate) and times its step (``Trainer._replica_step`` under
``strategy.run``, as Trainer's train function: see ``train_function``) fed
from one synthetic batch held in memory
(``Dataset.from_tensors(batch).repeat()``), so the input pipeline is not
measured. The first ``--warmup`` steps (tracing, XLA compilation) are left
out; the median of the next ``--steps`` step times gives steps/s and
images/s. Configurations (the issue's two training cases):

* ``mobilenet_v2``: MobileNetV2, output stride 16, 321x321 crop (the model
  zoo's DeepLabv3 MobileNetV2: image pooling + 1x1 branch, no decoder);
* ``xception_65``: Xception-65, output stride 16, ASPP rates 6/12/18,
  decoder at stride 4, 513x513 crop (DeepLabv3+ as local_test.sh).

Each is run without XLA and with XLA (``--jit``). XLA first compiles the
whole step, as ``TrainSettings.jit_compile`` does; if that fails (on CPU:
the batch read, IteratorGetNext, has no XLA kernel) the error is reported
(``xla_error``) and the replica step alone is compiled instead
(``xla_mode``: ``whole`` or ``replica``). An XLA failure does not stop the
run. Prints a table and one JSON line per configuration. The machine should be otherwise idle: on a
shared machine the figures are lower bounds.
"""
import gc
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list('configs', ['mobilenet_v2', 'xception_65'],
                  'Configurations to time (see the module docstring), or '
                  '"all".')
flags.DEFINE_integer('steps', 5, 'Timed steps (median) per measurement.',
                     lower_bound=1)
flags.DEFINE_integer('warmup', 2, 'Untimed steps first (tracing, XLA '
                     'compilation).', lower_bound=1)
flags.DEFINE_list('jit', ['false', 'true'],
                  'jit_compile settings to time: false (plain tf.function), '
                  'true (XLA), or both.')
flags.DEFINE_integer('batch_size', 2, 'Training batch size.', lower_bound=1)
flags.DEFINE_list('crop_size', None, 'Override every configuration\'s crop '
                  '"h,w" (smoke tests); default: the configuration\'s own.')
flags.DEFINE_integer('num_classes', 21, 'Classes of the synthetic labels '
                     '(PASCAL VOC: 21).')

CONFIGS = {
    'mobilenet_v2': dict(model_variant='mobilenet_v2', output_stride=16,
                         crop_size=(321, 321)),
    'xception_65': dict(model_variant='xception_65', output_stride=16,
                        atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                        crop_size=(513, 513)),
}

_BOOL = {'false': False, 'off': False, '0': False, 'no': False,
         'true': True, 'on': True, '1': True, 'yes': True}


def _synthetic_batch(batch_size, crop, num_classes, seed=0):
  """Images 0..255 and blocky labels with an ignore border (as real labels)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  h, w = crop
  images = rng.uniform(0, 255, (batch_size, h, w, 3)).astype(np.float32)
  coarse = rng.integers(0, num_classes, (batch_size, h // 16 + 1, w // 16 + 1))
  labels = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[:, :h, :w]
  labels[:, :8] = 255
  return {'image': images, 'label': labels[..., None].astype(np.int32)}


def train_function(trainer, xla=None):
  """One training step of ``trainer`` as a tf.function of the iterator.

  The step is ``Trainer._replica_step`` (forward, the original loss with L2,
  gradient multipliers, TF1 momentum update, BatchNorm statistics) under
  ``strategy.run`` with the metrics all-reduced, as Trainer's own train
  function; the loop's bookkeeping (logging, checkpoint and stop checks) is
  not timed. ``xla``:

  * None: plain ``tf.function``;
  * ``'whole'``: ``tf.function(jit_compile=True)`` of the whole step, the
    batch read (``next(iterator)``) included: the scope that
    ``TrainSettings.jit_compile`` compiles in Trainer;
  * ``'replica'``: only the replica step XLA-compiled, the batch read outside
    (IteratorGetNext has no XLA kernel).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  strategy = trainer.strategy
  replica_step = trainer._replica_step  # pylint: disable=protected-access
  if xla == 'replica':
    replica_step = tf.function(replica_step, jit_compile=True)

  def step(iterator):
    per_replica, _ = strategy.run(replica_step, args=(next(iterator),))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in per_replica.items()}

  return tf.function(step, jit_compile=True if xla == 'whole' else None)


def config_options(config, num_classes, crop_size=None):
  """The ModelOptions of a configuration (``crop_size`` overrides its crop)."""
  from deeplab_tf.models import ModelOptions  # pylint: disable=g-import-not-at-top
  kwargs = dict(CONFIGS[config])
  if crop_size:
    kwargs['crop_size'] = tuple(crop_size)
  return ModelOptions(outputs_to_num_classes={'semantic': num_classes},
                      **kwargs)


def time_training(config, steps, warmup, batch_size, num_classes,
                  crop_size=None, xla=None):
  """Median step time of ``train_function(trainer, xla)``; returns a dict."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  options = config_options(config, num_classes, crop_size)
  batch = _synthetic_batch(batch_size, options.crop_size, num_classes)
  logdir = tempfile.mkdtemp(prefix='train_speed_')
  try:
    settings = trainer_lib.TrainSettings(train_logdir=logdir,
                                         train_batch_size=batch_size,
                                         jit_compile=xla == 'whole')

    def dataset_fn(ctx):
      per_replica = ctx.get_per_replica_batch_size(batch_size)
      return tf.data.Dataset.from_tensors(
          {k: v[:per_replica] for k, v in batch.items()}).repeat()

    trainer = trainer_lib.Trainer(options, settings, dataset_fn)
    iterator = iter(trainer.strategy.distribute_datasets_from_function(
        dataset_fn))
    train_fn = train_function(trainer, xla)
    times, loss = [], None
    for _ in range(warmup + steps):
      start = time.perf_counter()
      values = train_fn(iterator)
      loss = float(values['total_loss'])   # waits for the step
      times.append(time.perf_counter() - start)
  finally:
    shutil.rmtree(logdir, ignore_errors=True)
  if not math.isfinite(loss):
    raise FloatingPointError('loss is %r after %d steps' % (loss, len(times)))
  median = statistics.median(times[warmup:])
  result = {'median_step_s': median, 'steps_per_sec': 1.0 / median,
            'images_per_sec': batch_size / median,
            'first_step_s': times[0], 'warmup_s': sum(times[:warmup]),
            'step_times_s': [round(t, 4) for t in times[warmup:]],
            'final_loss': loss, 'trainer_step': trainer.step}
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  import keras  # pylint: disable=g-import-not-at-top
  names = list(CONFIGS) if FLAGS.configs == ['all'] else FLAGS.configs
  for name in names:
    if name not in CONFIGS:
      raise app.UsageError('Unknown config %r; known: %s'
                           % (name, ', '.join(CONFIGS)))
  try:
    jits = [_BOOL[j.lower()] for j in FLAGS.jit]
  except KeyError as e:
    raise app.UsageError('--jit takes true/false values; got %s' % e)
  crop = [int(c) for c in FLAGS.crop_size] if FLAGS.crop_size else None
  if crop is not None and len(crop) != 2:
    raise app.UsageError('--crop_size must be "h,w"')
  print('%-14s %-10s %5s %9s %9s %9s %9s %9s %8s' % (
      'config', 'crop', 'batch', 'step s', 'img/s', 'XLA step', 'XLA img/s',
      'XLA 1st s', 'XLA gain'), flush=True)
  for name in names:
    options = config_options(name, FLAGS.num_classes, crop)
    record = {'config': name, 'batch_size': FLAGS.batch_size,
              'model_variant': options.model_variant,
              'crop_size': list(options.crop_size),
              'output_stride': options.output_stride,
              'atrous_rates': (list(options.atrous_rates)
                               if options.atrous_rates else None),
              'decoder_output_stride': (list(options.decoder_output_stride)
                                        if options.decoder_output_stride
                                        else None),
              'num_classes': FLAGS.num_classes,
              'steps': FLAGS.steps, 'warmup': FLAGS.warmup,
              'cpu_count': os.cpu_count(),
              'load_average_1m_before': round(os.getloadavg()[0], 2)}
    for prefix in ('', 'xla_'):
      for key in ('median_step_s', 'steps_per_sec', 'images_per_sec',
                  'first_step_s'):
        record[prefix + key] = None
    record.update(xla_mode=None, xla_error=None, xla_replica_error=None)
    for jit in jits:
      prefix = 'xla_' if jit else ''
      # XLA: the whole step (TrainSettings.jit_compile's scope) first; if it
      # fails, the replica step alone (see train_function).
      for mode in (['whole', 'replica'] if jit else [None]):
        keras.backend.clear_session()
        gc.collect()
        try:
          result = time_training(
              name, FLAGS.steps, FLAGS.warmup, FLAGS.batch_size,
              FLAGS.num_classes, crop, xla=mode)
        except Exception as e:  # pylint: disable=broad-except
          # XLA may not compile some op on this backend: reported, not fatal.
          if not jit:
            raise
          key = 'xla_error' if mode == 'whole' else 'xla_replica_error'
          record[key] = '%s: %s' % (type(e).__name__,
                                    str(e).strip().split('\n')[0][:600])
          continue
        if jit:
          record['xla_mode'] = mode
        for key, value in result.items():
          record[prefix + key] = value
        break
    if record['images_per_sec'] and record['xla_images_per_sec']:
      record['xla_speedup'] = round(
          record['xla_images_per_sec'] / record['images_per_sec'], 3)
    else:
      record['xla_speedup'] = None
    fmt = lambda v, f='%9.3f': f % v if v is not None else '%9s' % '-'
    print('%-14s %-10s %5d %s %s %s %s %s %8s' % (
        name, 'x'.join(str(c) for c in record['crop_size']),
        FLAGS.batch_size, fmt(record['median_step_s']),
        fmt(record['images_per_sec']), fmt(record['xla_median_step_s']),
        fmt(record['xla_images_per_sec']), fmt(record['xla_first_step_s'],
                                               '%9.1f'),
        '%.2fx' % record['xla_speedup'] if record['xla_speedup'] else
        ('FAILED' if record['xla_error'] else '-')), flush=True)
    if record['xla_error']:
      print('  XLA of the whole step (the TrainSettings.jit_compile scope) '
            'failed: %s' % record['xla_error'][:300], flush=True)
      if record['xla_mode'] == 'replica':
        print('  XLA columns: the replica step alone jit-compiled (batch read '
              'outside XLA)', flush=True)
      elif record['xla_replica_error']:
        print('  XLA of the replica step alone failed too: %s'
              % record['xla_replica_error'][:300], flush=True)
    print(json.dumps(record, sort_keys=True), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
