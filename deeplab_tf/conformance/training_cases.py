"""Conformance of the training math against fixtures made by the original train_utils.

Kinds (``shared/reference/ops/README.md`` sections 5-8):

* ``softmax_loss``: per-scale losses, their total, ``k``, the normaliser, the
  weighted loss sums (rel 1e-5 / exact) for every case; unweighted per-pixel
  losses (max|d| <= 1e-4) and nearest-downsampled labels (exact) per scale.
* ``learning_rate``: every schedule at every step,
  ``|d| <= 1e-5 * |ref| + 1e-6 * base_learning_rate``.
* ``grad_multipliers``: the multiplier of every variable name, exact.
* ``weight_decay``: which variables of the tiny arg-scope builds get an L2
  term and its value (rel 1e-5), the slim regulariser example, and for each
  model-level configuration the counts of OUR model built from that
  configuration's options (regularised variables / parameters, trainable
  ones, non-regularised ones by leaf, BatchNorm update ops).

Every checker reads sizes, names and counts from the case file, so further
case files of the same format work unchanged.
"""
import collections
import json
import os
import zlib

import numpy as np

from deeplab_tf import conformance

LOSS_REL_TOL = 1e-5
LOSS_ABS_TOL = 1e-6
PIXEL_LOSS_TOL = 1e-4
LR_REL_TOL = 1e-5
LR_BASE_TOL = 1e-6
WD_REL_TOL = 1e-5
DEFAULT_IGNORE_LABEL = 255
# Model-level weight-decay builds: variables do not depend on the crop size.
SMALL_CROP = (65, 65)


def _rel_close(ours, ref, rel, abs_tol=0.0):
  ours = np.asarray(ours, np.float64)
  ref = np.asarray(ref, np.float64)
  if ours.shape != ref.shape:
    return False, float('inf')
  diff = np.abs(ours - ref)
  ok = bool(np.all(diff <= rel * np.abs(ref) + abs_tol))
  scale = np.maximum(np.abs(ref), 1e-30)
  return ok, float((diff / scale).max()) if diff.size else 0.0


def _expect_error(result, label, expected, fn):
  """For a case the original refused (``error``: 'Type: message'): we must raise."""
  expected_type = str(expected).split(':')[0].strip()
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    result.add(label, True, 'raises %s (original: %s)'
               % (type(e).__name__, expected))
    return
  result.add(label, False, 'returned a value; the original raised %s'
             % (expected_type or expected))


# --------------------------------------------------------------------------
# softmax_loss
# --------------------------------------------------------------------------
def _loss_inputs(case, arrays):
  """(ordered {scale: logits}, labels int32); regenerated if not stored."""
  shapes = case['logits_shapes']
  order = list(shapes)
  if 'labels' in arrays and all('logits__' + s in arrays for s in order):
    logits = {s: arrays['logits__' + s].astype(np.float32) for s in order}
    return logits, arrays['labels'].astype(np.int32)
  # The fixture's input rule (softmax_loss.json 'input_rule').
  rng = np.random.default_rng(11)
  logits = {s: (3.0 * rng.standard_normal(shapes[s])).astype(np.float32)
            for s in order}
  labels = rng.integers(0, case['num_classes'],
                        size=case['labels_shape']).astype(np.int32)
  labels[rng.random(labels.shape) < 0.15] = DEFAULT_IGNORE_LABEL
  return logits, labels


@conformance.register('softmax_loss')
def check_softmax_loss(case_path, case, arrays, **unused):
  from deeplab_tf.training import losses  # pylint: disable=g-import-not-at-top
  result = conformance.CaseResult(case_path, 'softmax_loss')
  num_classes = int(case['num_classes'])
  ignore_label = int(case.get('ignore_label', DEFAULT_IGNORE_LABEL))
  logits, labels = _loss_inputs(case, arrays)

  for c in case['cases']:
    key = c.get('key', '?')
    order = c.get('scale_order') or list(logits)
    # JSON gives 1.0 as a float and per-class weights as a list: exactly the
    # two types the original accepts, passed on unchanged.
    kwargs = dict(loss_weight=c['loss_weight'],
                  upsample_logits=bool(c['upsample_logits']),
                  hard_example_mining_step=c['hard_example_mining_step'],
                  top_k_percent_pixels=c['top_k_percent_pixels'],
                  step=c.get('global_step', 0))
    if c.get('error'):
      _expect_error(result, '%s loss' % key, c['error'],
                    lambda kw=kwargs: losses.softmax_cross_entropy_for_scale(
                        logits[order[0]], labels, num_classes, ignore_label,
                        **kw))
      continue
    per_scale = [losses.softmax_cross_entropy_for_scale(
        logits[s], labels, num_classes, ignore_label, **kwargs) for s in order]
    scales_to_logits = {s: logits[s] for s in order}
    scale_losses, total = losses.softmax_cross_entropy_loss_for_each_scale(
        scales_to_logits, labels, num_classes, ignore_label, **kwargs)
    problems = []
    ours_losses = [float(scale_losses[s]) for s in order]
    ok, rel_l = _rel_close(ours_losses, c['losses'], LOSS_REL_TOL, LOSS_ABS_TOL)
    if not ok:
      problems.append('losses %s vs %s' % (ours_losses, c['losses']))
    ok_d, _ = _rel_close([float(p.loss) for p in per_scale], ours_losses,
                         LOSS_REL_TOL, LOSS_ABS_TOL)
    if not ok_d:
      problems.append('per-scale function disagrees with the dict function')
    ok, rel_t = _rel_close(float(total), c['total'], LOSS_REL_TOL, LOSS_ABS_TOL)
    if not ok:
      problems.append('total %r vs %r' % (float(total), c['total']))
    exact = (('num_present', [float(p.num_present) for p in per_scale]),
             ('num_pixels', [int(p.num_pixels) for p in per_scale]),
             ('k', [int(p.k) for p in per_scale]))
    for name, ours in exact:
      if name in c and list(ours) != [type(o)(r) for o, r in zip(ours, c[name])]:
        problems.append('%s %s vs %s' % (name, ours, c[name]))
    rel_w = 0.0
    if 'total_weighted_loss_sum' in c:
      ok, rel_w = _rel_close([float(p.weighted_loss_sum) for p in per_scale],
                             c['total_weighted_loss_sum'], LOSS_REL_TOL,
                             LOSS_ABS_TOL)
      if not ok:
        problems.append('weighted sums %s vs %s' % (
            [float(p.weighted_loss_sum) for p in per_scale],
            c['total_weighted_loss_sum']))
    detail = ('losses rel %.1e, total rel %.1e, weighted-sum rel %.1e; '
              'k/num_present/num_pixels exact' % (rel_l, rel_t, rel_w))
    result.add('%s loss' % key, not problems,
               '; '.join(problems) if problems else detail)

  # Unweighted per-pixel losses and downsampled labels, per scale.
  for mode, upsample in (('up', True), ('noup', False)):
    for scale in logits:
      pixel_key = 'pixel_losses__%s__%s' % (mode, scale)
      label_key = 'scaled_labels__%s__%s' % (mode, scale)
      if pixel_key not in arrays and label_key not in arrays:
        continue
      detail = losses.softmax_cross_entropy_for_scale(
          logits[scale], labels, num_classes, ignore_label, loss_weight=1.0,
          upsample_logits=upsample)
      if pixel_key in arrays:
        ours = detail.pixel_losses.numpy().astype(np.float32)
        conformance.compare_close(result, pixel_key, ours, arrays[pixel_key],
                                  PIXEL_LOSS_TOL)
        result.arrays[pixel_key] = ours
      if label_key in arrays:
        ref = arrays[label_key]
        ours = detail.labels.numpy().reshape(ref.shape).astype(ref.dtype)
        conformance.compare_equal(result, label_key, ours, ref)
        result.arrays[label_key] = ours
  return result


# --------------------------------------------------------------------------
# learning_rate
# --------------------------------------------------------------------------
@conformance.register('learning_rate')
def check_learning_rate(case_path, case, arrays, **unused):
  from deeplab_tf.training import schedules  # pylint: disable=g-import-not-at-top
  result = conformance.CaseResult(case_path, 'learning_rate')
  steps = np.asarray(arrays['steps'] if 'steps' in arrays else case['steps'],
                     np.int64)
  result.arrays['steps'] = steps
  for config in case['configs']:
    name = config['name']
    kwargs = dict(config['kwargs'])
    base = float(kwargs.get('base_learning_rate', 1e-4))
    if config.get('error'):
      _expect_error(result, name, config['error'],
                    lambda kw=kwargs: schedules.learning_rate(0, **kw))
      continue
    ref_key = 'lr__' + name
    ref = np.asarray(arrays[ref_key] if ref_key in arrays else config['lr'],
                     np.float32)
    # One scalar step at a time, as the original's session and an optimizer
    # evaluate it (TF's vectorised pow may differ from the scalar one by an
    # ulp, so a vector of steps is not used here).
    ours = np.array([schedules.learning_rate(int(s), **kwargs).numpy()
                     for s in steps], np.float32)
    # The Keras schedule object must give the same values as the function.
    as_schedule = schedules.DeepLabLearningRate(**kwargs)
    same = all(float(as_schedule(int(s))) == float(o)
               for s, o in zip(steps, ours))
    diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
    tol = LR_REL_TOL * np.abs(ref.astype(np.float64)) + LR_BASE_TOL * base
    ok = ours.shape == ref.shape and bool(np.all(diff <= tol)) and same
    bitwise = int(np.sum(ours == ref)) if ours.shape == ref.shape else 0
    worst = int(np.argmax(diff / tol)) if diff.size else 0
    detail = ('max|d|=%.3g; worst |d|/tol=%.2g at step %d; %d of %d '
              'bit-exact' % (float(diff.max()), float((diff / tol)[worst]),
                             int(steps[worst]), bitwise, ref.size))
    if not same:
      detail += '; DeepLabLearningRate differs from learning_rate()'
    result.add(name, ok, detail)
    result.arrays[ref_key] = ours
  return result


# --------------------------------------------------------------------------
# grad_multipliers
# --------------------------------------------------------------------------
@conformance.register('grad_multipliers')
def check_grad_multipliers(case_path, case, arrays, **unused):
  from deeplab_tf.training import gradient_multipliers as gm  # pylint: disable=g-import-not-at-top
  result = conformance.CaseResult(case_path, 'grad_multipliers')
  names = list(case['variables'])
  for i, setting in enumerate(case['settings']):
    ours = gm.get_gradient_multipliers(
        names, setting['last_layers'], setting['last_layer_gradient_multiplier'])
    wrong = []
    for name, expected in setting['multipliers'].items():
      got = ours.get(name)
      if (got is None) != (expected is None) or (
          expected is not None and float(got) != float(expected)):
        wrong.append('%s: %s (expected %s)' % (name, got, expected))
    extra = sorted(set(ours) - set(setting['multipliers']))
    if extra:
      wrong.append('multipliers for unlisted variables %s' % extra)
    if 'dict_is_empty' in setting and (not ours) != setting['dict_is_empty']:
      wrong.append('dict empty: %s (expected %s)'
                   % (not ours, setting['dict_is_empty']))
    label = 'setting%d %s x%g' % (i, '+'.join(setting['last_layers']),
                                  setting['last_layer_gradient_multiplier'])
    result.add(label, not wrong, '; '.join(wrong) if wrong else
               '%d names, %d multipliers, all equal'
               % (len(setting['multipliers']), len(ours)))
  return result


# --------------------------------------------------------------------------
# weight_decay
# --------------------------------------------------------------------------
def _tiny_weight(arrays, builder, builder_index, row):
  """The stored weight, or the fixture's input rule when it is not stored."""
  key = '%s__%s' % (builder, row['variable'])
  if key in arrays:
    return arrays[key].astype(np.float32), key
  seed = zlib.crc32(row['variable'].encode('utf-8')) + builder_index
  return (np.random.default_rng(seed).standard_normal(row['shape'])
          .astype(np.float32), key)


def _check_tiny_builds(result, case, arrays):
  from deeplab_tf.training import regularization as reg  # pylint: disable=g-import-not-at-top
  default_wd = float(case.get('weight_decay', reg.DEFAULT_WEIGHT_DECAY))
  for index, (builder, build) in enumerate(case.get('tiny_builds', {}).items()):
    wd = float(build.get('weight_decay', default_wd))
    wrong_rule, bad_terms, terms, worst = [], [], [], 0.0
    for row in build['variables']:
      name = row['variable']
      if reg.is_regularized(name) != bool(row['regularized']):
        wrong_rule.append('%s: ours %s, original %s' % (
            name, reg.is_regularized(name), row['regularized']))
      if not row['regularized'] or not reg.is_regularized(name):
        continue
      w, key = _tiny_weight(arrays, builder, index, row)
      term = float(reg.l2_term(w, wd))
      terms.append(term)
      if key in arrays:
        result.arrays[key] = w
      if 'l2_loss' in row:
        ok, rel = _rel_close(term, row['l2_loss'], WD_REL_TOL)
        worst = max(worst, rel)
        if not ok:
          bad_terms.append('%s %.9g vs %.9g' % (name, term, row['l2_loss']))
    result.add('%s rule' % builder, not wrong_rule,
               '; '.join(wrong_rule) if wrong_rule else
               '%d variables, %d regularised'
               % (len(build['variables']), len(terms)))
    problems = list(bad_terms)
    if 'regularization_loss_total' in build:
      ok, rel = _rel_close(sum(terms), build['regularization_loss_total'],
                           WD_REL_TOL)
      worst = max(worst, rel)
      if not ok:
        problems.append('total %.9g vs %.9g' % (
            sum(terms), build['regularization_loss_total']))
    result.add('%s L2' % builder, not problems,
               '; '.join(problems) if problems else
               'terms and total within rel %.0e (max rel %.1e)'
               % (WD_REL_TOL, worst))


def _check_l2_example(result, case, arrays):
  from deeplab_tf.training import regularization as reg  # pylint: disable=g-import-not-at-top
  example = case.get('l2_example')
  if not example:
    return
  if 'example_w' in arrays:
    w = arrays['example_w'].astype(np.float32)
  else:
    w = np.random.default_rng(7).standard_normal([3, 3, 4, 8]).astype(np.float32)
  result.arrays['example_w'] = w
  ours = float(reg.l2_term(w, float(example['weight_decay'])))
  ok, rel = _rel_close(ours, example['slim_l2_regularizer_value'], WD_REL_TOL)
  result.add('l2_example', ok, 'ours %.9g, slim %.9g (rel %.1e)'
             % (ours, example['slim_l2_regularizer_value'], rel))


def _find_model_options(case_path, config_name, config):
  """A model-level config's options: inline, else ../case_<name>.json."""
  if 'model_options' in config:
    return config['model_options'], 'inline'
  here = os.path.dirname(os.path.abspath(case_path))
  candidates = [os.path.join(d, 'case_%s.json' % config_name)
                for d in (here, os.path.dirname(here))]
  shared = conformance.shared_reference_dir()
  if shared:
    candidates.append(os.path.join(shared, 'case_%s.json' % config_name))
  for path in candidates:
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)['model_options'], path
  raise FileNotFoundError('No model options for weight-decay config %r: not '
                          'inline and none of %s exists.'
                          % (config_name, candidates))


def _build_training_model(options_dict):
  """Our model as train.py builds it (BatchNorm trained), at a small crop."""
  from deeplab_tf.models import ModelOptions, build_model  # pylint: disable=g-import-not-at-top
  options = ModelOptions.from_dict(options_dict)
  small = options.replace(crop_size=SMALL_CROP)
  try:
    return build_model(small, fine_tune_batch_norm=True)
  except ValueError:
    # Some option combinations need the configured crop (e.g. a fixed
    # image-pooling crop): variables are the same either way.
    return build_model(options, fine_tune_batch_norm=True)


def model_weight_decay_summary(model):
  """Counts of a model's variables as the fixture's model-level entries."""
  import keras  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import regularization as reg  # pylint: disable=g-import-not-at-top
  named = checkpoints.model_variables(model)
  trainable_ids = {id(v) for v in model.trainable_weights}
  trainable = {n: v for n, v in named.items() if id(v) in trainable_ids}
  regularized = reg.regularized_variables(model)
  size = lambda v: int(np.prod(v.shape))
  not_reg = collections.Counter(n.rsplit('/', 1)[-1] for n in trainable
                                if n not in regularized)
  # One moving-average update per trained BatchNorm statistic.
  updates = 0
  for layer in model.layers:
    if (isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
        and getattr(layer, 'train_statistics', True)):
      updates += len([w for w in layer.non_trainable_weights
                      if w.name.split('/')[-1].startswith('moving_')])
  return {
      'trainable_vars': len(trainable),
      'regularized_vars': len(regularized),
      'regularized_params': sum(size(v) for v in regularized.values()),
      'trainable_params': sum(size(v) for v in trainable.values()),
      'not_regularized_by_leaf': dict(not_reg),
      'exceptions': [],   # by construction: the rule is the leaf name
      'update_ops': updates,
      'regularized_names': sorted(regularized),
  }


def _check_model_level(result, case_path, case):
  from deeplab_tf.training import regularization as reg  # pylint: disable=g-import-not-at-top
  graphs = case.get('model_level_training_graphs', {})
  for config_name, ref in graphs.get('configs', {}).items():
    label = 'config %s' % config_name
    try:
      options, _ = _find_model_options(case_path, config_name, ref)
    except FileNotFoundError as e:
      result.add(label, False, str(e))
      continue
    model = _build_training_model(options)
    ours = model_weight_decay_summary(model)
    wrong = []
    for key in ('trainable_vars', 'regularized_vars', 'regularized_params',
                'trainable_params', 'update_ops'):
      if key in ref and int(ref[key]) != ours[key]:
        wrong.append('%s %d (expected %d)' % (key, ours[key], ref[key]))
    if 'not_regularized_by_leaf' in ref and (
        ours['not_regularized_by_leaf'] != ref['not_regularized_by_leaf']):
      wrong.append('not regularised by leaf %s (expected %s)'
                   % (ours['not_regularized_by_leaf'],
                      ref['not_regularized_by_leaf']))
    if 'exceptions' in ref and list(ref['exceptions']) != ours['exceptions']:
      wrong.append('original has rule exceptions %s' % ref['exceptions'])
    for loss_name in ref.get('example_reg_loss_names', ()):
      # '<scope>/kernel/Regularizer/l2_regularizer:0' regularises <scope>/weights.
      scope = loss_name.split('/kernel/Regularizer')[0]
      if scope + '/weights' not in ours['regularized_names']:
        wrong.append('%s/weights not regularised in our model' % scope)
    # The loss itself must have one term per regularised variable.
    terms = reg.l2_terms(model, float(graphs.get('weight_decay', 4e-5)))
    if len(terms) != ours['regularized_vars']:
      wrong.append('%d L2 terms for %d regularised variables'
                   % (len(terms), ours['regularized_vars']))
    result.add(label, not wrong, '; '.join(wrong) if wrong else
               '%d of %d trainable regularised (%d params), update ops %d'
               % (ours['regularized_vars'], ours['trainable_vars'],
                  ours['regularized_params'], ours['update_ops']))


@conformance.register('weight_decay')
def check_weight_decay(case_path, case, arrays, **unused):
  result = conformance.CaseResult(case_path, 'weight_decay')
  _check_tiny_builds(result, case, arrays)
  _check_l2_example(result, case, arrays)
  _check_model_level(result, case_path, case)
  return result
