"""Acceptance: the training-math fixtures of the original graph pass, and broken copies fail."""
import json
import os

import numpy as np
import pytest

from deeplab_tf import conformance
from conftest import REFERENCE_DIR

KINDS = ('softmax_loss', 'learning_rate', 'grad_multipliers', 'weight_decay')


def _fixture(reference_dir, kind):
  return os.path.join(reference_dir, 'ops', kind + '.json')


@pytest.mark.parametrize('kind', KINDS)
def test_fixture_passes(reference_dir, kind):
  result = conformance.check_case(_fixture(reference_dir, kind))
  print(result.report())
  assert result.passed, result.report()
  assert result.kind == kind


def _copy(reference_dir, kind, tmp_path, edit_json=None, edit_npz=None):
  """A copy of a fixture (json + npz) with edits; returns its json path."""
  with open(_fixture(reference_dir, kind)) as f:
    case = json.load(f)
  arrays = dict(np.load(os.path.join(reference_dir, 'ops', kind + '.npz')))
  if edit_json:
    edit_json(case)
  if edit_npz:
    edit_npz(arrays)
  path = tmp_path / (kind + '.json')
  path.write_text(json.dumps(case))
  np.savez(tmp_path / (kind + '.npz'), **arrays)
  return str(path)


def _failed(result):
  return [c.name for c in result.checks if not c.passed]


def test_softmax_loss_subset_passes_and_wrong_values_fail(reference_dir,
                                                           tmp_path):
  # A case file with fewer cases still passes (nothing is hard-coded) ...
  def keep_two(case):
    case['cases'] = [c for c in case['cases'] if c['key'] in ('case3', 'case17')]
  ok = conformance.check_case(_copy(reference_dir, 'softmax_loss', tmp_path,
                                    keep_two))
  assert ok.passed, ok.report()

  # ... and one with a wrong k, loss or per-pixel loss fails.
  def break_case(case):
    keep_two(case)
    case['cases'][0]['k'][0] += 1
    case['cases'][1]['losses'][1] *= 1.001

  def break_pixels(arrays):
    arrays['pixel_losses__up__merged_logits'][7] += 1e-3
  bad = conformance.check_case(_copy(reference_dir, 'softmax_loss', tmp_path,
                                     break_case, break_pixels))
  assert not bad.passed
  assert _failed(bad) == ['case3 loss', 'case17 loss',
                          'pixel_losses__up__merged_logits']


def test_learning_rate_off_by_a_little_fails(reference_dir, tmp_path):
  def nudge(arrays):
    # 2e-5 relative: above the 1e-5 * |ref| + 1e-6 * base tolerance.
    arrays['lr__cosine_slow100'][10] *= np.float32(1 + 2e-5)
  bad = conformance.check_case(_copy(reference_dir, 'learning_rate', tmp_path,
                                     edit_npz=nudge))
  assert _failed(bad) == ['cosine_slow100']


def test_grad_multiplier_mismatch_fails(reference_dir, tmp_path):
  def bn_gets_multiplier(case):
    name = 'xception_65/entry_flow/conv1_1/BatchNorm/gamma'
    case['settings'][0]['multipliers'][name] = 10.0
  bad = conformance.check_case(_copy(reference_dir, 'grad_multipliers',
                                     tmp_path, bn_gets_multiplier))
  assert _failed(bad) == ['setting0 logits x10']


def test_weight_decay_rule_and_counts_can_fail(reference_dir, tmp_path):
  def break_rule(case):
    rows = case['tiny_builds']['xception_arg_scope']['variables']
    depthwise = [r for r in rows if r['variable'].endswith('depthwise_weights')]
    depthwise[0]['regularized'] = True
    rows[0]['l2_loss'] *= 1.001
    # Keep one model-level config (a quick MobileNet build), with a count off.
    configs = case['model_level_training_graphs']['configs']
    case['model_level_training_graphs']['configs'] = {'B': configs['B']}
    configs['B']['regularized_vars'] += 1
  bad = conformance.check_case(_copy(reference_dir, 'weight_decay', tmp_path,
                                     break_rule))
  assert _failed(bad) == ['xception_arg_scope rule', 'xception_arg_scope L2',
                          'config B']


def test_training_cases_exist():
  assert REFERENCE_DIR is not None
  for kind in KINDS:
    assert os.path.exists(os.path.join(REFERENCE_DIR, 'ops', kind + '.json'))
