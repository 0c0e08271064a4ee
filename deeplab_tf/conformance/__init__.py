"""Conformance against fixtures produced by the ORIGINAL DeepLab graph.

A case is a JSON file (plus its npz) as in ``../shared/reference``: either a
model case (``model_options`` + ``cmdline`` + a variable manifest) or a
fixture naming its ``fixture`` kind: op level (``resize_to_range``,
``softmax_loss``, ...) or training as a whole (``train_trajectory``: our
Trainer on the original's batches from its checkpoint; ``init``: the
original's initialisers; ``trajectory.py``). ``check_case(path)`` runs our code on the case's input
and compares every array the fixture pins; ``python -m deeplab_tf.conformance
CASE_JSON`` is the command-line form and exits non-zero outside tolerance.

Each kind registers a checker with ``@register('kind')``; a checker takes the
case path, its parsed JSON and the loaded npz and returns a ``CaseResult``.
"""
import dataclasses
import importlib
import json
import os
from typing import Callable, Dict, List, Optional

import numpy as np

MODEL_KIND = 'model'

# kind -> module that registers its checker (imported lazily: some need TF).
_CHECKER_MODULES = {
    MODEL_KIND: 'deeplab_tf.conformance.model_case',
    # Preprocessing (research/deeplab/core/preprocess_utils.py, input_preprocess.py).
    'resize_to_range': 'deeplab_tf.conformance.preprocess_cases',
    'eval_preprocess': 'deeplab_tf.conformance.preprocess_cases',
    'random_scale': 'deeplab_tf.conformance.preprocess_cases',
    'pad_crop': 'deeplab_tf.conformance.preprocess_cases',
    # Training math (research/deeplab/utils/train_utils.py, arg scopes).
    'softmax_loss': 'deeplab_tf.conformance.training_cases',
    'learning_rate': 'deeplab_tf.conformance.training_cases',
    'grad_multipliers': 'deeplab_tf.conformance.training_cases',
    'weight_decay': 'deeplab_tf.conformance.training_cases',
    # Training as a whole (research/deeplab/train.py; shared/reference/train).
    'train_trajectory': 'deeplab_tf.conformance.trajectory',
    'init': 'deeplab_tf.conformance.trajectory',
}
_CHECKERS: Dict[str, Callable] = {}


@dataclasses.dataclass
class Check:
  """One compared quantity."""
  name: str
  passed: bool
  detail: str


@dataclasses.dataclass
class CaseResult:
  case: str
  kind: str
  checks: List[Check] = dataclasses.field(default_factory=list)
  # Arrays our code computed, under the fixture's own npz keys (for --dump).
  arrays: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  @property
  def passed(self):
    return bool(self.checks) and all(c.passed for c in self.checks)

  def add(self, name, passed, detail):
    self.checks.append(Check(name, bool(passed), detail))

  def report(self):
    lines = ['%s [%s]: %s' % (self.case, self.kind,
                               'PASS' if self.passed else 'FAIL')]
    for c in self.checks:
      lines.append('  %-4s %-28s %s' % ('ok' if c.passed else 'FAIL', c.name,
                                        c.detail))
    return '\n'.join(lines)


def register(kind):
  """Decorator registering a checker function for fixture ``kind``.

  The module holding it must also be named in ``_CHECKER_MODULES`` so that
  it is imported when a case of that kind is checked.
  """
  def wrap(fn):
    _CHECKERS[kind] = fn
    return fn
  return wrap


def case_kind(case):
  if 'fixture' in case:
    return case['fixture']
  if 'model_options' in case:
    return MODEL_KIND
  raise ValueError("Case has neither a 'fixture' kind nor 'model_options'; "
                   'keys: %s' % sorted(case))


def known_kinds():
  return sorted(_CHECKER_MODULES)


def load_case(path):
  with open(path) as f:
    case = json.load(f)
  npz_path = npz_path_for(path, case)
  arrays = dict(np.load(npz_path, allow_pickle=False)) if npz_path else {}
  return case, arrays


def npz_path_for(path, case):
  refs = case.get('reference_files', {})
  name = refs.get('npz') or os.path.splitext(os.path.basename(path))[0] + '.npz'
  candidate = os.path.join(os.path.dirname(os.path.abspath(path)), name)
  return candidate if os.path.exists(candidate) else None


def check_case(path, **options) -> CaseResult:
  """Checks one case file; returns its CaseResult."""
  case, arrays = load_case(path)
  kind = case_kind(case)
  if kind not in _CHECKERS:
    module = _CHECKER_MODULES.get(kind)
    if module is None:
      raise NotImplementedError(
          'No conformance checker for fixture kind %r (%s); known kinds: %s'
          % (kind, path, ', '.join(known_kinds())))
    importlib.import_module(module)
  result = _CHECKERS[kind](path, case, arrays, **options)
  result.case = path
  result.kind = kind
  return result


def compare_close(result, name, ours, ref, max_tol, mean_tol=None):
  """Adds a max/mean absolute difference check of two float arrays."""
  ours = np.asarray(ours, np.float64)
  ref = np.asarray(ref, np.float64)
  if ours.shape != ref.shape:
    result.add(name, False, 'shape %s, expected %s' % (ours.shape, ref.shape))
    return
  diff = np.abs(ours - ref)
  max_diff = float(diff.max()) if diff.size else 0.0
  mean_diff = float(diff.mean()) if diff.size else 0.0
  ok = max_diff <= max_tol and (mean_tol is None or mean_diff <= mean_tol)
  detail = 'max|d|=%.3g (tol %.3g)' % (max_diff, max_tol)
  if mean_tol is not None:
    detail += ' mean|d|=%.3g (tol %.3g)' % (mean_diff, mean_tol)
  result.add(name, ok, detail)


def compare_equal(result, name, ours, ref):
  """Adds an exact-equality check (shapes and values)."""
  ours = np.asarray(ours)
  ref = np.asarray(ref)
  if ours.shape != ref.shape:
    result.add(name, False, 'shape %s, expected %s' % (ours.shape, ref.shape))
    return
  wrong = int(np.sum(ours != ref))
  result.add(name, wrong == 0, '%d of %d values differ' % (wrong, ref.size))


def shared_reference_dir(start: Optional[str] = None):
  """Finds ``shared/reference`` beside the repository (../shared/reference)."""
  here = os.path.abspath(start or os.path.dirname(__file__))
  for _ in range(6):
    candidate = os.path.join(here, 'shared', 'reference')
    if os.path.isdir(candidate):
      return candidate
    candidate = os.path.join(os.path.dirname(here), 'shared', 'reference')
    if os.path.isdir(candidate):
      return candidate
    here = os.path.dirname(here)
  return None
