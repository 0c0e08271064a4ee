"""Acceptance: our models, loaded from the original-graph fixtures' checkpoints, give their logits."""
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deeplab_tf import conformance
from deeplab_tf.models import layers as dl_layers
from conftest import REFERENCE_DIR

CASES = sorted(glob.glob(os.path.join(REFERENCE_DIR or '', 'case_*.json')))


def test_reference_cases_exist():
  assert len(CASES) >= 3, 'expected case_A/B/C in %s' % REFERENCE_DIR


@pytest.mark.parametrize('case_path', CASES, ids=os.path.basename)
def test_reference_case_passes(case_path):
  result = conformance.check_case(case_path)
  print(result.report())
  assert result.passed, result.report()
  names = {c.name for c in result.checks}
  assert {'checkpoint', 'logits', 'merged_logits', 'labels'} <= names


def test_half_pixel_resize_is_caught(monkeypatch, reference_dir):
  """The checker can fail: a tf.image.resize-style resize (half-pixel centres) is a real bug."""
  def half_pixel(images, size, output_dtype=None):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    out = tf.raw_ops.ResizeBilinear(images=images, size=size,
                                    align_corners=False, half_pixel_centers=True)
    return tf.cast(out, output_dtype or images.dtype)
  monkeypatch.setattr(dl_layers, 'resize_bilinear', half_pixel)
  result = conformance.check_case(os.path.join(reference_dir, 'case_B.json'))
  assert not result.passed
  failed = {c.name for c in result.checks if not c.passed}
  assert 'logits' in failed


def _run_cli(*args):
  return subprocess.run([sys.executable, '-m', 'deeplab_tf.conformance'] + list(args),
                        capture_output=True, text=True, timeout=600)


def test_cli_dump_and_exit_codes(tmp_path, reference_dir):
  # A tampered copy of case B (one logit moved by 0.01) must fail with exit 1.
  for name in ('case_B.json', 'manifest_B.json', 'make_tf1_checkpoint.py'):
    shutil.copy(os.path.join(reference_dir, name), tmp_path / name)
  arrays = dict(np.load(os.path.join(reference_dir, 'case_B.npz')))
  arrays['logits'] = arrays['logits'].copy()
  arrays['logits'][5, 7, 3] += 0.01
  np.savez(tmp_path / 'case_B.npz', **arrays)
  dump = tmp_path / 'ours.npz'
  proc = _run_cli(str(tmp_path / 'case_B.json'), '--dump', str(dump))
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert 'FAIL' in proc.stdout and 'logits' in proc.stdout
  ours = np.load(dump)
  assert set(ours.files) == {'logits', 'merged_logits', 'labels'}
  ref = np.load(os.path.join(reference_dir, 'case_B.npz'))
  assert np.abs(ours['logits'] - ref['logits']).max() < 1e-4
  # An unknown fixture kind: exit 2 with the kinds we know.
  bad = tmp_path / 'weird.json'
  bad.write_text(json.dumps({'fixture': 'no_such_kind'}))
  proc = _run_cli(str(bad))
  assert proc.returncode == 2
  assert 'no_such_kind' in proc.stdout and 'resize_to_range' in proc.stdout
