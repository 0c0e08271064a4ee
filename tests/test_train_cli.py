"""deeplab_tf.train end to end on the embedded quickstart records, killed and resumed."""
import os
import signal
import subprocess
import sys
import time

import pytest

from deeplab_tf.data import quickstart


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  path = tmp_path_factory.mktemp('quickstart_records')
  quickstart.write_quickstart(str(path), num_train=24, num_val=8)
  return str(path)


def _command(records, logdir, steps):
  return [sys.executable, '-m', 'deeplab_tf.train', '--dataset',
          os.path.join(records, quickstart.DESCRIPTOR_FILE),
          '--dataset_dir', records, '--train_split=train',
          '--train_logdir', logdir, '--model_variant=mobilenet_v2',
          '--output_stride=16', '--train_crop_size=65,65',
          '--train_batch_size=2', '--base_learning_rate=0.01',
          '--training_number_of_steps=%d' % steps, '--log_steps=1',
          '--save_interval_steps=1']


def test_help_lists_the_original_flags():
  proc = subprocess.run([sys.executable, '-m', 'deeplab_tf.train', '--helpfull'],
                        capture_output=True, text=True, timeout=300)
  text = proc.stdout + proc.stderr
  for flag in ('train_logdir', 'base_learning_rate', 'learning_policy',
               '[no]fine_tune_batch_norm', 'tf_initial_checkpoint',
               '[no]initialize_last_layer', 'top_k_percent_pixels',
               'hard_example_mining_step', 'train_crop_size', 'strategy',
               'mixed_precision', 'hard_classes', 'atrous_rates'):
    assert '--' + flag in text, flag


@pytest.mark.slow
def test_kill_and_resume(records, tmp_path):
  logdir = str(tmp_path / 'train')
  proc = subprocess.Popen(_command(records, logdir, 200), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 400
  try:
    while time.time() < deadline:
      if os.path.exists(os.path.join(logdir, 'model.ckpt-3.index')):
        break
      if proc.poll() is not None:
        pytest.fail('training exited early:\n' + proc.stdout.read()[-3000:])
      time.sleep(0.5)
    else:
      pytest.fail('no checkpoint after %d s' % 400)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  killed_at = int(tf.train.latest_checkpoint(logdir).rsplit('-', 1)[1])
  assert killed_at >= 3
  rerun = subprocess.run(_command(records, logdir, killed_at + 2),
                         capture_output=True, text=True, timeout=400)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert 'resumed from' in rerun.stderr and 'at step %d' % killed_at in rerun.stderr
  assert 'step %d/%d' % (killed_at + 2, killed_at + 2) in rerun.stderr
  assert 'ETA' in rerun.stderr
  assert tf.train.latest_checkpoint(logdir).endswith('ckpt-%d' % (killed_at + 2))


@pytest.mark.slow
def test_bad_flag_combinations_fail_before_compute(records, tmp_path):
  cmd = _command(records, str(tmp_path / 'a'), 5)
  # One image per replica with BatchNorm trained: the original trains on, and
  # so do we, with its advice as a warning.
  one = subprocess.run(_command(records, str(tmp_path / 'one'), 1)
                       + ['--train_batch_size=1'], capture_output=True,
                       text=True, timeout=300)
  assert one.returncode == 0, one.stderr[-3000:]
  assert 'fine_tune_batch_norm with 1 image per replica' in one.stderr
  assert 'larger than 12' in one.stderr and 'step 1/1' in one.stderr
  missing = subprocess.run(cmd + ['--train_split=nope'], capture_output=True,
                           text=True, timeout=300)
  assert missing.returncode != 0 and 'nope' in missing.stderr
  assert not os.path.exists(str(tmp_path / 'a' / 'checkpoint'))
