"""Conformance of training as a whole: the original's trajectory and initialisers.

Kinds (``shared/reference/train/README.md``):

* ``train_trajectory``: OUR training step (the ``Trainer`` with its task,
  nothing re-implemented here) runs from the fixture's TF1 checkpoint on the
  fixture's K batches, with the original's dropout draws replayed into the
  ASPP dropout layer. Compared, each to the fixture's own tolerance: per step
  the learning rate, total / CE / L2 losses (and the global step), the
  gradient applied at step 1 (TF1 momentum: the accumulator after one step
  from zero), every non-trainable variable after step 1 (BatchNorm moving
  statistics: where Bessel's correction, decay and update placement show)
  and every variable after the last step, in full or as the fixture's sketch.
* ``init``: our model built from scratch as train.py builds it; for every
  variable of the original the initialiser (family and parameters), the
  shape, trainability, L2, and the statistics of one initialisation.

``--dump`` writes the fixture README's candidate format (train) or every
initial value under its original name (init).
"""
import dataclasses
import math
import os
import tempfile
import zlib

import numpy as np

from deeplab_tf import conformance

GLOBAL_STEP = 'global_step'
STEP_QUANTITIES = ('learning_rate', 'total_loss', 'ce_loss',
                   'regularization_loss')
_HEAD_SCOPES = ('logits', 'image_pooling', 'aspp', 'concat_projection',
                'decoder')


class CannotRun(NotImplementedError):
  """The case asks for something this check cannot run (exit status 2)."""


# --------------------------------------------------------------------------
# The case's original flags -> our options and settings
# --------------------------------------------------------------------------
def model_options_from_flags(flag_values, num_classes, crop_size=None):
  """ModelOptions from a dict of original flag values (common.py names)."""
  from deeplab_tf.models.options import options_from_flag_values  # pylint: disable=g-import-not-at-top
  return options_from_flag_values(
      flag_values, crop_size=crop_size or flag_values.get('train_crop_size'),
      num_classes=num_classes)


def _check_supported(flag_values):
  optimizer = flag_values.get('optimizer', 'momentum')
  if optimizer != 'momentum':
    raise CannotRun('optimizer %r: only the original default (momentum) is '
                    'trained by deeplab_tf today.' % (optimizer,))
  clones = int(flag_values.get('num_clones', 1) or 1)
  if clones != 1:
    raise CannotRun('num_clones=%d: trajectory cases are run on one replica '
                    'here.' % clones)


def train_settings_from_flags(flag_values, train_logdir, checkpoint,
                              ignore_label):
  """TrainSettings for a trajectory case (original train.py flag names):
  train.py's own mapping, with the case's checkpoint and no saving."""
  from deeplab_tf.training.trainer import train_settings_from_flag_values  # pylint: disable=g-import-not-at-top
  return train_settings_from_flag_values(
      flag_values, train_logdir, ignore_label=ignore_label,
      tf_initial_checkpoint=checkpoint, initialize_last_layer=True,
      log_steps=1, save_interval_secs=1e12, save_summaries_secs=1e12,
      max_to_keep=1)


# --------------------------------------------------------------------------
# Fixture helpers: checkpoint, sketches, classes
# --------------------------------------------------------------------------
def _writer(case_path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  from deeplab_tf.conformance.model_case import find_checkpoint_writer  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'deeplab_fixture_ckpt_writer', find_checkpoint_writer(case_path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def sketch(name, values, initial):
  """The fixture's sketch of ``values - initial``: [sum, l2, max|d|, d.r1..r4]."""
  d = (np.asarray(values, np.float64) - np.asarray(initial, np.float64)).ravel()
  out = [d.sum(), math.sqrt(float(np.dot(d, d))),
         float(np.abs(d).max()) if d.size else 0.0]
  seed = zlib.crc32(name.encode('utf-8'))
  for j in range(1, 5):
    r = np.random.default_rng(seed + 1000003 * j).standard_normal(d.size)
    out.append(float(np.dot(d, r)))
  return np.asarray(out, np.float64)


def variable_class(name):
  """The fixture's class of a variable: head|backbone / kind."""
  if name == GLOBAL_STEP:
    return GLOBAL_STEP
  head = any(name.startswith(s) for s in _HEAD_SCOPES)
  leaf = name.rsplit('/', 1)[-1]
  kind = {'gamma': 'bn_affine', 'beta': 'bn_affine',
          'moving_mean': 'moving_mean',
          'moving_variance': 'moving_variance'}.get(leaf, 'weights')
  return '%s/%s' % ('head' if head else 'backbone', kind)


def _row_class(row):
  return row.get('cls') or variable_class(row['name'])


def _tolerance(row, key, envelope, fallback):
  value = row.get(key)
  if value is None:
    value = envelope.get(_row_class(row), fallback)
  return value


class _Worst:
  """Worst ratio |d| / tol of one quantity class, and the failures."""

  def __init__(self):
    self.count = 0
    self.ratio = -1.0
    self.where = ''
    self.failures = []

  def add(self, name, metric, tol):
    self.count += 1
    if tol == 'exact':
      ok = metric == 0
      ratio = 0.0 if ok else float('inf')
      tol_text = 'exact'
    else:
      tol = float(tol)
      ok = metric <= tol
      ratio = metric / tol if tol > 0 else (0.0 if metric == 0 else float('inf'))
      tol_text = '%.3g' % tol
    if ratio > self.ratio:
      self.ratio = ratio
      self.where = '%s %.3g (tol %s)' % (name, metric, tol_text)
    if not ok:
      self.failures.append('%s %.3g > %s' % (name, metric, tol_text))

  def report(self, result, label):
    if not self.count:
      return
    if self.failures:
      detail = '%d of %d outside: %s' % (
          len(self.failures), self.count, '; '.join(self.failures[:4]))
      if len(self.failures) > 4:
        detail += '; ...'
    else:
      detail = '%d within; worst %s' % (self.count, self.where)
    result.add(label, not self.failures, detail)


# --------------------------------------------------------------------------
# train_trajectory
# --------------------------------------------------------------------------
@dataclasses.dataclass
class Trajectory:
  """What our training run produced, by original names."""
  steps: dict          # quantity -> [K] float64
  step1_grads: dict    # trainable name -> array
  step1_vars: dict     # non-trainable name -> array
  final: dict          # every name -> array
  report: str = ''


def _dropout_layers(model):
  from deeplab_tf.models.layers import Dropout  # pylint: disable=g-import-not-at-top
  return [l for l in model.layers if isinstance(l, Dropout)]


def run_trajectory(case_path, case, arrays, checkpoint=None, workdir=None):
  """Runs our Trainer on the case; returns a Trajectory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.trainer import Trainer  # pylint: disable=g-import-not-at-top
  flag_values = case['flags']
  _check_supported(flag_values)
  steps = int(case['steps'])
  images = arrays['images'].astype(np.float32)
  labels = arrays['labels'].astype(np.int32)
  if images.shape[0] < steps or labels.shape[0] < steps:
    raise ValueError('%s: %d steps but %d image batches / %d label batches.'
                     % (case_path, steps, images.shape[0], labels.shape[0]))
  owned = workdir is None
  workdir = workdir or tempfile.mkdtemp(prefix='deeplab_trajectory_')
  try:
    if checkpoint is None:
      writer = _writer(case_path)
      checkpoint = os.path.join(workdir, 'initial', 'model.ckpt')
      writer.write_checkpoint(writer.load_manifest(case_path), checkpoint)
    options = model_options_from_flags(flag_values, case['num_classes'],
                                       case.get('crop_size'))
    settings = train_settings_from_flags(
        flag_values, os.path.join(workdir, 'train'), checkpoint,
        case.get('ignore_label', 255))
    batch = {'image': images[:steps], 'label': labels[:steps]}

    def dataset_fn(unused_context):
      return tf.data.Dataset.from_tensor_slices(batch)

    trainer = Trainer(options, settings, dataset_fn,
                      ignore_label=case.get('ignore_label', 255))
    noise = _install_dropout_noise(trainer.model, case, arrays, steps)
    named = checkpoints.model_variables(trainer.model)
    trainable_ids = {id(v) for v in trainer.train_variables}
    record = {q: [] for q in STEP_QUANTITIES + (GLOBAL_STEP,)}
    step1 = {}

    def on_step(step, values):
      record['learning_rate'].append(float(trainer.schedule(step - 1)))
      record['total_loss'].append(values['total_loss'])
      record['ce_loss'].append(values['task_loss'])
      record['regularization_loss'].append(values['regularization_loss'])
      record[GLOBAL_STEP].append(step - 1)
      if step == 1:
        for name, var in named.items():
          if id(var) in trainable_ids:
            step1['grad/' + name] = np.array(
                trainer.optimizer.accumulator(var))
          else:
            step1['var/' + name] = np.array(var)
        step1['var/' + GLOBAL_STEP] = np.array(trainer.step, np.int64)
      if noise is not None and step < steps:
        noise.assign(arrays['dropout_uniform'][step])

    trainer.train(max_steps=steps, on_step=on_step)
    final = {name: np.array(var) for name, var in named.items()}
    final[GLOBAL_STEP] = np.array(trainer.step, np.int64)
    return Trajectory(
        steps={q: np.asarray(v, np.float64) for q, v in record.items()},
        step1_grads={k[5:]: v for k, v in step1.items()
                     if k.startswith('grad/')},
        step1_vars={k[4:]: v for k, v in step1.items()
                    if k.startswith('var/')},
        final=final)
  finally:
    if owned:
      import shutil  # pylint: disable=g-import-not-at-top
      shutil.rmtree(workdir, ignore_errors=True)


def _install_dropout_noise(model, case, arrays, steps):
  """Replays the original's dropout draws; returns the variable fed per step."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  layers = _dropout_layers(model)
  if 'dropout_uniform' not in arrays:
    if layers:
      raise CannotRun('the model has %d dropout layer(s) but the case stores '
                      'no dropout_uniform draws.' % len(layers))
    return None
  if len(layers) != 1:
    raise CannotRun('the case stores the draws of one dropout op; our model '
                    'has %d dropout layers.' % len(layers))
  draws = arrays['dropout_uniform']
  if draws.shape[0] < steps:
    raise ValueError('dropout_uniform has %d steps, the case runs %d.'
                     % (draws.shape[0], steps))
  noise = tf.Variable(draws[0].astype(np.float32), trainable=False,
                      name='replayed_dropout_uniform')
  expected = tuple(draws.shape[1:])

  def source(shape):
    del shape
    return noise.read_value()

  layer = layers[0]
  if tuple(layer.input.shape[1:]) != expected[1:]:
    raise ValueError('dropout input %s does not match the stored draws %s.'
                     % (tuple(layer.input.shape), expected))
  layer.uniform_source = source
  return noise


def _final_reference(row, arrays, writer_module):
  """('full', array) or ('sketch', 7-vector), or (None, None)."""
  name = row['name']
  if row.get('stored', 'full') == 'sketch' or 'sketch/' + name in arrays:
    if 'sketch/' + name in arrays:
      return 'sketch', arrays['sketch/' + name]
  if 'final/' + name in arrays:
    return 'full', arrays['final/' + name]
  return None, None


def _step1_reference(row, arrays):
  name = row['name']
  if row.get('trainable'):
    for key, kind in (('step1/grad/', 'full'), ('step1/gradsketch/', 'sketch')):
      if key + name in arrays:
        return kind, arrays[key + name]
    return None, None
  if 'step1/var/' + name in arrays:
    return 'full', arrays['step1/var/' + name]
  return None, None


def compare_trajectory(result, case, arrays, ours: Trajectory, writer_module):
  tol = case['tolerance']
  steps = int(case['steps'])
  atol = float(tol.get('steps_atol', 0.0))
  # Per-step scalars.
  for q in STEP_QUANTITIES:
    key = 'step/' + q
    if key not in arrays:
      continue
    ref = np.asarray(arrays[key], np.float64)[:steps]
    got = ours.steps[q][:steps]
    rel = np.asarray(tol['steps_rel'][q], np.float64)[:steps]
    if got.shape != ref.shape:
      result.add(key, False, 'ours has %d steps, the fixture %d'
                 % (got.size, ref.size))
      continue
    diff = np.abs(got - ref)
    limit = rel * np.abs(ref) + atol
    bad = np.nonzero(diff > limit)[0]
    worst = int(np.argmax(diff / limit))
    detail = ('worst step %d: %.9g vs %.9g (|d| %.2g, tol %.2g)'
              % (worst, got[worst], ref[worst], diff[worst], limit[worst]))
    if bad.size:
      detail = 'steps %s outside; ' % bad.tolist() + detail
    result.add(key, not bad.size, detail)
  if 'step/global_step' in arrays:
    ref = np.asarray(arrays['step/global_step'], np.int64)[:steps]
    got = ours.steps[GLOBAL_STEP].astype(np.int64)[:steps]
    conformance.compare_equal(result, 'step/global_step', got, ref)

  rows = case['variables']
  floors = tol.get('step1_grad_floor', {})
  # Step 1: applied gradients (trainable) and state (non-trainable).
  grad_classes, var_classes, missing = {}, {}, []
  for row in rows:
    name = row['name']
    kind, ref = _step1_reference(row, arrays)
    if kind is None:
      continue
    if row.get('trainable'):
      got = ours.step1_grads.get(name)
      if got is None:
        missing.append('step1 grad ' + name)
        continue
      floor = float(floors.get(_row_class(row), 0.0))
      if kind == 'sketch':
        got_s = sketch(name, got, np.zeros_like(got))
        ref = np.asarray(ref, np.float64)
        metric = float(np.linalg.norm(got_s - ref) / (ref[1] + floor))
        envelope = tol.get('step1_grad_sketch_rel', {})
      else:
        got = np.asarray(got, np.float64)
        ref = np.asarray(ref, np.float64)
        if got.shape != ref.shape:
          missing.append('step1 grad %s shape %s vs %s'
                         % (name, got.shape, ref.shape))
          continue
        metric = float(np.linalg.norm(got - ref) /
                       (np.linalg.norm(ref) + floor))
        envelope = tol.get('step1_grad_rel', {})
      grad_classes.setdefault(_row_class(row), _Worst()).add(
          name, metric, _tolerance(row, 'tol_step1', envelope, 0.0))
    else:
      got = ours.step1_vars.get(name)
      if got is None:
        missing.append('step1 var ' + name)
        continue
      got = np.asarray(got, np.float64)
      metric = float(np.abs(got - np.asarray(ref, np.float64)).max()) \
          if np.size(ref) else 0.0
      var_classes.setdefault(_row_class(row), _Worst()).add(
          name, metric, _tolerance(row, 'tol_step1',
                                   tol.get('step1_var_abs', {}), 0.0))
  for cls in sorted(grad_classes):
    grad_classes[cls].report(result, 'step1 grad ' + cls)
  for cls in sorted(var_classes):
    var_classes[cls].report(result, 'step1 state ' + cls)

  # Final values.
  final_classes = {}
  for row in rows:
    name = row['name']
    kind, ref = _final_reference(row, arrays, writer_module)
    if kind is None:
      missing.append('fixture stores no final value of %s' % name)
      continue
    got = ours.final.get(name)
    if got is None:
      missing.append('final ' + name)
      continue
    if kind == 'sketch':
      initial = writer_module.variable_value(name, row['shape'], row['dtype'])
      metric = float(np.abs(sketch(name, got, initial) -
                            np.asarray(ref, np.float64)).max())
      envelope = tol.get('final_sketch_abs', {})
    else:
      if np.shape(got) != np.shape(ref):
        missing.append('final %s shape %s vs %s'
                       % (name, np.shape(got), np.shape(ref)))
        continue
      metric = float(np.abs(np.asarray(got, np.float64) -
                            np.asarray(ref, np.float64)).max()) \
          if np.size(ref) else 0.0
      envelope = tol.get('final_abs', {})
    final_classes.setdefault(_row_class(row), _Worst()).add(
        name, metric, _tolerance(row, 'tol_final', envelope, 0.0))
  for cls in sorted(final_classes):
    final_classes[cls].report(result, 'final ' + cls)
  extra = sorted(set(ours.final) - {r['name'] for r in rows})
  if missing or extra:
    text = '; '.join(missing[:6]) + (' ...' if len(missing) > 6 else '')
    if extra:
      text += '%svariables the original lacks: %s' % (
          '; ' if text else '', extra[:6])
    result.add('variables', False, text)
  else:
    result.add('variables', True, 'all %d variables of the original, no '
               'others' % len(rows))


def _dump_trajectory(ours: Trajectory):
  out = {'step/' + q: ours.steps[q].astype(np.float32)
         for q in STEP_QUANTITIES}
  out['step/global_step'] = ours.steps[GLOBAL_STEP].astype(np.int64)
  for name, value in ours.final.items():
    out['final/' + name] = value
  for name, value in ours.step1_grads.items():
    out['step1/grad/' + name] = value
  for name, value in ours.step1_vars.items():
    out['step1/var/' + name] = value
  return out


@conformance.register('train_trajectory')
def check_train_trajectory(case_path, case, arrays, checkpoint=None, **unused):
  result = conformance.CaseResult(case_path, 'train_trajectory')
  writer = _writer(case_path)
  ours = run_trajectory(case_path, case, arrays, checkpoint=checkpoint)
  compare_trajectory(result, case, arrays, ours, writer)
  result.arrays.update(_dump_trajectory(ours))
  return result


# --------------------------------------------------------------------------
# init
# --------------------------------------------------------------------------
def _init_flags(case):
  flag_values = dict(case.get('flags', {}))
  crop = case.get('crop_size') or flag_values.get('train_crop_size')
  return flag_values, crop


def build_initial_model(case, seed=0):
  """Our model from scratch, as train.py builds it for the case's flags."""
  import random  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import build_model  # pylint: disable=g-import-not-at-top
  flag_values, crop = _init_flags(case)
  options = model_options_from_flags(flag_values, case['num_classes'], crop)
  # Unseeded Keras initialisers take their seeds from Python's random: one
  # fixed draw makes the statistics check repeatable. The global state is
  # put back (keras.utils.set_random_seed would also fix TensorFlow's and
  # NumPy's seeds for the rest of the process).
  state = random.getstate()
  random.seed(seed)
  try:
    return build_model(options, fine_tune_batch_norm=bool(
        flag_values.get('fine_tune_batch_norm', True)))
  finally:
    random.setstate(state)


def _stats_ok(row, values):
  """The fixture's rule on the statistics of one initialisation."""
  expected_std = float(row.get('expected_std', 0.0))
  expected_mean = float(row.get('expected_mean', 0.0))
  values = np.asarray(values, np.float64)
  if expected_std == 0.0:
    bad = float(np.abs(values - expected_mean).max()) if values.size else 0.0
    return bad == 0.0, 'constant %g: max|d| %.3g' % (expected_mean, bad)
  size = values.size
  std, mean = float(values.std()), float(values.mean())
  std_tol = (0.01 + 4.0 / math.sqrt(2.0 * size)) * expected_std
  mean_tol = 4.0 * expected_std / math.sqrt(size) + 1e-6
  ok = abs(std - expected_std) <= std_tol and abs(mean - expected_mean) <= mean_tol
  return ok, ('std %.4g vs %.4g (tol %.2g), mean %.3g vs %.3g (tol %.2g)'
              % (std, expected_std, std_tol, mean, expected_mean, mean_tol))


@conformance.register('init')
def check_init(case_path, case, arrays, **unused):
  """Each original variable: initialiser, shape, trainability, L2, statistics."""
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import initializers  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import regularization  # pylint: disable=g-import-not-at-top
  del arrays
  result = conformance.CaseResult(case_path, 'init')
  model = build_initial_model(case)
  named = checkpoints.model_variables(model)
  inits = initializers.variable_initializers(model)
  trainable_ids = {id(v) for v in model.trainable_weights}
  regularized = regularization.regularized_variables(model)
  rows = [r for r in case['variables'] if r['name'] != GLOBAL_STEP]
  problems = {'initializer': [], 'shape': [], 'trainable': [], 'l2': [],
              'statistics': []}
  stats_checked = 0
  for row in rows:
    name = row['name']
    var = named.get(name)
    if var is None:
      continue
    value = np.asarray(var)
    result.arrays[name] = value
    if list(value.shape) != list(row['shape']):
      problems['shape'].append('%s %s vs %s' % (name, list(value.shape),
                                                row['shape']))
      continue
    original = initializers.describe_original(row['initializer'],
                                              row.get('initializer_params'))
    ours = (initializers.describe(inits[name]) if inits.get(name) is not None
            else ('unknown', {}))
    if not initializers.same_description(ours, original):
      problems['initializer'].append('%s: ours %s, original %s' % (
          name, initializers.format_description(ours),
          initializers.format_description(original)))
    if (id(var) in trainable_ids) != bool(row.get('trainable')):
      problems['trainable'].append('%s: ours %s' % (name,
                                                    id(var) in trainable_ids))
    if 'l2_regularized' in row and (name in regularized) != bool(
        row['l2_regularized']):
      problems['l2'].append('%s: ours %s' % (name, name in regularized))
    ok, detail = _stats_ok(row, value)
    stats_checked += 1
    if not ok:
      problems['statistics'].append('%s %s' % (name, detail))
  names = {r['name'] for r in rows}
  missing = sorted(names - set(named))
  extra = sorted(set(named) - names)
  result.add('variables', not missing and not extra,
             '%d of %d present%s%s' % (
                 len(names) - len(missing), len(names),
                 '; missing %s' % missing[:5] if missing else '',
                 '; not in the original %s' % extra[:5] if extra else ''))
  labels = {'initializer': 'initialiser family and parameters',
            'shape': 'shapes', 'trainable': 'trainable flags',
            'l2': 'L2 regularised', 'statistics': 'one initialisation'}
  for key, label in labels.items():
    found = problems[key]
    result.add(label, not found,
               ('%d wrong: %s' % (len(found), '; '.join(found[:4]))
                + (' ...' if len(found) > 4 else '')) if found else
               'all %d variables agree' % (stats_checked if key == 'statistics'
                                           else len(names) - len(missing)))
  counts = case.get('counts')
  if counts:
    sizes = {n: int(np.prod(v.shape)) for n, v in named.items()}
    trainable = [n for n, v in named.items() if id(v) in trainable_ids]
    ours = {'variables': len(named) + (1 if any(
                r['name'] == GLOBAL_STEP for r in case['variables']) else 0),
            'trainable': len(trainable),
            'params': sum(sizes.values()),
            'trainable_params': sum(sizes[n] for n in trainable)}
    wrong = ['%s %d (original %d)' % (k, ours[k], int(counts[k]))
             for k in ('variables', 'trainable', 'params', 'trainable_params')
             if k in counts and int(counts[k]) != ours[k]]
    result.add('counts', not wrong, '; '.join(wrong) if wrong else
               '%d variables (global_step: the optimizer\'s iterations), '
               '%d trainable, %d values' % (ours['variables'],
                                            ours['trainable'], ours['params']))
  return result
