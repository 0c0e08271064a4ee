"""The original train.py flags added for #16: Adam, clones, profiling, checks."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import quickstart
from deeplab_tf.models import options as options_lib
from deeplab_tf.training import trainer as trainer_lib
from deeplab_tf.training.optimizer import TF1Momentum
from tests.test_trainer import OPTIONS, _settings, synthetic_dataset_fn


def _tf1_adam_trajectory(grads, lr, epsilon):
  """The original's tf.train.AdamOptimizer on one variable, in a TF1 graph."""
  with tf.Graph().as_default():
    var = tf.compat.v1.get_variable('w', initializer=np.float32([1.0, -2.0]))
    grad = tf.compat.v1.placeholder(tf.float32, [2])
    opt = tf.compat.v1.train.AdamOptimizer(learning_rate=lr, epsilon=epsilon)
    step = opt.apply_gradients([(grad, var)])
    out = []
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      for g in grads:
        sess.run(step, {grad: g})
        out.append(sess.run(var))
  return np.array(out)


def test_adam_is_the_original_tf1_adam():
  grads = np.float32([[0.5, -1.0], [0.1, 0.3], [-2.0, 0.05], [0.0, 1.0]])
  settings = trainer_lib.TrainSettings(train_logdir='unused', optimizer='adam',
                                       adam_learning_rate=0.01,
                                       adam_epsilon=1e-3)
  optimizer = trainer_lib.make_optimizer(settings, schedule=None)
  var = tf.Variable(np.float32([1.0, -2.0]))
  ours = []
  for g in grads:
    optimizer.apply_gradients([(tf.constant(g), var)])
    ours.append(var.numpy())
  np.testing.assert_allclose(ours, _tf1_adam_trajectory(grads, 0.01, 1e-3),
                             rtol=1e-6, atol=1e-7)


def test_momentum_stays_the_default_and_bad_names_are_refused():
  settings = trainer_lib.TrainSettings(train_logdir='unused')
  assert isinstance(trainer_lib.make_optimizer(settings, 0.1), TF1Momentum)
  with pytest.raises(ValueError, match='optimizer must be one of momentum, adam'):
    trainer_lib.TrainSettings(train_logdir='unused', optimizer='sgd')
  values = {'optimizer': 'adam', 'adam_learning_rate': 0.002,
            'adam_epsilon': 1e-6, 'profile_logdir': '/p'}
  mapped = trainer_lib.train_settings_from_flag_values(values, 'logdir')
  assert (mapped.optimizer, mapped.adam_learning_rate, mapped.adam_epsilon,
          mapped.profile_logdir) == ('adam', 0.002, 1e-6, '/p')


def test_adam_training_reports_its_constant_rate_and_profiles(tmp_path):
  profile = tmp_path / 'profile'
  settings = _settings(tmp_path / 'train', 4, optimizer='adam',
                       adam_learning_rate=0.003, log_steps=1,
                       profile_logdir=str(profile))
  trainer = trainer_lib.Trainer(OPTIONS, settings, synthetic_dataset_fn(4))
  metrics = trainer.train()
  assert trainer.step == 4
  assert metrics['learning_rate'] == pytest.approx(0.003)
  assert type(trainer.optimizer).__name__ == 'Adam'
  traces = glob.glob(str(profile / 'plugins' / 'profile' / '*' / '*.xplane.pb'))
  assert traces, os.listdir(profile)


def test_decoder_output_stride_is_the_original_comma_list():
  base = {'num_classes': 21, 'model_variant': 'xception_65',
          'output_stride': 16}
  two = options_lib.options_from_flag_values(
      dict(base, decoder_output_stride=['8', '4']))
  assert two.decoder_output_stride == (8, 4)
  with pytest.raises(options_lib.OptionsError,
                     match='sorted in the descending order.*4,8'):
    options_lib.options_from_flag_values(
        dict(base, decoder_output_stride=['4', '8']))
  # --dense_prediction_cell_json is read (tests/test_dense_prediction_cell.py);
  # a missing file is refused by name.
  with pytest.raises(options_lib.OptionsError,
                     match='dense_prediction_cell_json=dpc.json: no such file'):
    options_lib.options_from_flag_values(
        dict(base, dense_prediction_cell_json='dpc.json'))


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  path = tmp_path_factory.mktemp('records')
  quickstart.write_quickstart(str(path), num_train=8, num_val=2)
  return str(path)


def _train(records, logdir, *extra, timeout=300):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
  cmd = [sys.executable, '-m', 'deeplab_tf.train', '--dataset',
         os.path.join(records, quickstart.DESCRIPTOR_FILE),
         '--dataset_dir', records, '--train_logdir', str(logdir),
         '--model_variant=mobilenet_v2', '--train_crop_size=65,65',
         '--train_batch_size=4', '--training_number_of_steps=2',
         '--log_steps=1'] + list(extra)
  return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                        env=env)


@pytest.mark.slow
def test_num_clones_on_cpu_trains_on_that_many_replicas(records, tmp_path):
  proc = _train(records, tmp_path / 'clones', '--num_clones=2',
                '--clone_on_cpu', '--startup_delay_steps=3')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'Training on 2 replicas (MirroredStrategy)' in proc.stderr
  assert 'step 2/2' in proc.stderr


@pytest.mark.parametrize('extra, message', [
    (['--num_classes=2'], '--num_classes=2, but dataset quickstart has 6 classes'),
    (['--decoder_output_stride=4,8'], 'sorted in the descending order'),
    # The deployment rules are unit-tested in test_original_flags.py; these
    # check the script's edge.
    pytest.param(['--num_ps_tasks=1'], 'parameter-server training',
                 marks=pytest.mark.slow),
    (['--num_clones=3', '--clone_on_cpu'], 'not divisible by the 3 replicas'),
])
def test_flags_without_a_meaning_here_fail_before_training(records, tmp_path,
                                                           extra, message):
  proc = _train(records, tmp_path / 'refused', *extra)
  assert proc.returncode != 0
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  import re  # pylint: disable=g-import-not-at-top
  assert re.search(message, proc.stderr), proc.stderr[-3000:]
