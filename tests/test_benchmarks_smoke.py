"""Smoke tests of the training benchmarks: the smallest settings, end to end."""
import json
import os
import subprocess
import sys

import pytest

# Benchmarks end to end at toy sizes: minutes in all, run by .ci/run after
# the default suite (python -m pytest -m slow).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID = os.path.join(os.path.dirname(REPO), 'shared', 'camvid')


def _run(script, *args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks', script)] + list(args),
      cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  records = [json.loads(line) for line in proc.stdout.splitlines()
             if line.startswith('{')]
  assert records, proc.stdout[-2000:]
  return proc.stdout, records


def test_train_speed(tmp_path):
  stdout, records = _run('train_speed.py', '--configs=mobilenet_v2',
                         '--crop_size=33,33', '--steps=1', '--warmup=1',
                         '--jit=false,true')
  assert 'img/s' in stdout
  assert len(records) == 1
  record = records[0]
  for key in ('config', 'model_variant', 'crop_size', 'batch_size',
              'output_stride', 'steps', 'warmup', 'median_step_s',
              'steps_per_sec', 'images_per_sec', 'first_step_s', 'xla_mode',
              'xla_error', 'xla_images_per_sec', 'xla_speedup'):
    assert key in record, key
  assert record['config'] == 'mobilenet_v2'
  assert record['crop_size'] == [33, 33] and record['batch_size'] == 2
  assert record['images_per_sec'] > 0
  # XLA is measured one way or the other, or its failure is reported.
  assert record['xla_images_per_sec'] or (record['xla_error']
                                          and record['xla_replica_error'])


@pytest.mark.skipif(not os.path.isdir(CAMVID),
                    reason='../shared/camvid not found beside the repository')
def test_camvid_from_scratch(tmp_path):
  stdout, records = _run(
      'camvid_from_scratch.py', '--camvid_dir', CAMVID, '--max_images=3',
      '--budget_minutes=0.4', '--calibration_steps=4', '--batch_size=2',
      '--crop_size=65,65', '--log_steps=1', '--eval_scales=0.5',
      '--record_dir', str(tmp_path / 'records'),
      '--train_dir', str(tmp_path / 'train'))
  assert 'mIoU' in stdout
  assert len(records) == 1
  record = records[0]
  assert record['budget_minutes'] == 0.4 and record['planned_steps'] >= 1
  assert 1 <= record['steps'] <= record['planned_steps']
  assert record['train_s'] < 0.4 * 60 + 15   # the budget, plus the save
  assert record['eval_scales'] == [0.5]
  for key in ('steps', 'batch_size', 'crop_size', 'eval_crop_size',
              'num_train_images', 'num_val_images', 'train_s', 'eval_s',
              'wall_s', 'train_images_per_sec', 'steady_images_per_sec',
              'miou', 'pixel_accuracy', 'iou_per_class'):
    assert key in record, key
  assert record['crop_size'] == [65, 65]
  assert record['num_train_images'] == 3 and record['num_val_images'] == 3
  assert 0.0 <= record['miou'] <= 1.0
  assert len(record['iou_per_class']) == 11
  assert record['train_images_per_sec'] > 0
  # Records and checkpoints went where they were asked to.
  assert any(f.startswith('val-') for f in os.listdir(tmp_path / 'records'))
  assert any(f.startswith('model.ckpt') for f in os.listdir(tmp_path / 'train'))


@pytest.mark.skipif(not os.path.isdir(CAMVID),
                    reason='../shared/camvid not found beside the repository')
def test_eval_speed():
  stdout, records = _run('eval_speed.py', '--camvid_dir', CAMVID,
                         '--max_images=1', '--modes=single',
                         '--eval_crop_size=auto')
  assert 'images/s' in stdout
  record = records[0]
  assert record['num_images'] == 1 and record['random_weights']
  assert record['eval_crop_size'] == 'auto'
  assert record['single']['images_per_sec'] > 0
  assert 'multi_scale_flip' not in record


def test_panoptic_convert_speed():
  stdout, records = _run('panoptic_convert_speed.py', '--height=60',
                         '--width=80', '--segments=12', '--things=5',
                         '--repeats=1')
  record = records[0]
  assert 'segments_to_maps_s' in stdout
  assert record['raw_mb'] == 60 * 80 * 4 / 1e6
  assert 0 < record['png_mb'] < record['raw_mb']
  assert record['decode_png_s'] > 0 and record['decode_raw_s'] > 0
