"""The two-phase recipe as one command, on tiny quickstart records."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import quickstart
from deeplab_tf.recipe import phase_commands

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_phase_commands_chain_the_phases():
  p1, p2 = phase_commands('a.flags', 'b.flags', '/runs/x', ['--dataset_dir=d'])
  assert p1[-1] == '--train_logdir=/runs/x/phase1' and '--flagfile=a.flags' in p1
  assert '--tf_initial_checkpoint=/runs/x/phase1' in p2
  assert p2.index('--dataset_dir=d') < p2.index('--train_logdir=/runs/x/phase2')


@pytest.mark.slow
def test_two_phases_run_and_phase2_starts_from_phase1(tmp_path):
  records = str(tmp_path / 'records')
  quickstart.write_quickstart(records, num_train=16, num_val=4)
  common = ['--dataset=%s' % os.path.join(records, quickstart.DESCRIPTOR_FILE),
            '--dataset_dir=%s' % records, '--train_split=train',
            '--model_variant=mobilenet_v2', '--train_crop_size=65,65',
            '--train_batch_size=2', '--log_steps=1']
  (tmp_path / 'p1.flags').write_text('\n'.join(common + [
      '--output_stride=16', '--training_number_of_steps=2',
      '--fine_tune_batch_norm=true']))
  (tmp_path / 'p2.flags').write_text('\n'.join(common + [
      '--output_stride=8', '--training_number_of_steps=1',
      '--base_learning_rate=0.0', '--fine_tune_batch_norm=false']))
  root = tmp_path / 'run'
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.recipe',
       '--phase1_flagfile=%s' % (tmp_path / 'p1.flags'),
       '--phase2_flagfile=%s' % (tmp_path / 'p2.flags'),
       '--train_logdir=%s' % root], capture_output=True, text=True, timeout=600,
      cwd=REPO)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert 'initialised: restored from checkpoint' in proc.stderr
  p1 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(root / 'phase1')))
  p2 = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(root / 'phase2')))
  # Our checkpoints key the model by original variable name.
  key = 'model/by_name/MobilenetV2.SConv.SBatchNorm.Sgamma/.ATTRIBUTES/VARIABLE_VALUE'
  # Phase 2 (BN frozen, LR 0) keeps phase 1's BatchNorm exactly.
  np.testing.assert_array_equal(p1.get_tensor(key), p2.get_tensor(key))
  # A second run resumes: nothing left to train in either phase.
  again = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.recipe',
       '--phase1_flagfile=%s' % (tmp_path / 'p1.flags'),
       '--phase2_flagfile=%s' % (tmp_path / 'p2.flags'),
       '--train_logdir=%s' % root], capture_output=True, text=True, timeout=600,
      cwd=REPO)
  assert again.returncode == 0
  assert again.stderr.count('nothing to train') == 2
