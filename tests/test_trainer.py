"""The training loop: learning, resume, initial checkpoints, replicas, summaries."""
import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_model
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings

# No concat-projection dropout, so runs with different replica counts are comparable.
OPTIONS = ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                       output_stride=16, outputs_to_num_classes={'semantic': 3},
                       aspp_with_concat_projection=False)


def synthetic_dataset_fn(global_batch, seed=0):
  """Images whose class is told by colour: left third red, ... ; some ignore pixels."""
  rng = np.random.default_rng(seed)
  labels = np.zeros((8, 33, 33, 1), np.int32)
  labels[:, :, 11:22] = 1
  labels[:, :, 22:] = 2
  labels[:, :2] = 255
  palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.float32)
  images = palette[np.minimum(labels[..., 0], 2)] + rng.normal(0, 50, (8, 33, 33, 3))
  images = np.clip(images, 0, 255).astype(np.float32)

  def dataset_fn(ctx):
    per_replica = ctx.get_per_replica_batch_size(global_batch)
    ds = tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels})
    return ds.repeat().batch(per_replica, drop_remainder=True)
  return dataset_fn


def _settings(logdir, steps, **kw):
  lr = LearningRateSettings(base_learning_rate=kw.pop('lr', 0.01),
                            training_number_of_steps=steps)
  return TrainSettings(train_logdir=str(logdir), train_batch_size=4,
                       learning_rate=lr, log_steps=kw.pop('log_steps', 5), **kw)


def test_training_learns_and_writes_summaries(tmp_path):
  trainer = Trainer(OPTIONS, _settings(tmp_path, 40, lr=0.05),
                    synthetic_dataset_fn(4))
  metrics = trainer.train()
  assert trainer.step == 40
  assert metrics['pixel_accuracy'] > 0.9, metrics
  assert os.path.exists(tmp_path / 'checkpoint')
  assert os.path.exists(tmp_path / 'model_options.json')
  tags = set()
  for event_file in glob.glob(str(tmp_path / 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  assert {'total_loss', 'task_loss', 'regularization_loss', 'learning_rate',
          'images_per_sec', 'pixel_accuracy'} <= tags


def test_resume_keeps_step_optimizer_state_and_schedule(tmp_path):
  settings = _settings(tmp_path, 6)
  first = Trainer(OPTIONS, settings, synthetic_dataset_fn(4))
  first.train(max_steps=3)
  assert first.step == 3
  # Not finished: no training_done.json (eval loops keep waiting).
  assert checkpoints.folders.read_training_done(str(tmp_path)) is None
  saved = {v.path: v.numpy() for v in first.optimizer.variables}
  second = Trainer(OPTIONS, settings, synthetic_dataset_fn(4))
  assert second.initialize().startswith('resumed from')
  assert second.step == 3
  for v in second.optimizer.variables:
    np.testing.assert_array_equal(v.numpy(), saved[v.path])
  np.testing.assert_allclose(float(second.schedule(second.step)),
                             float(first.schedule(3)))
  second.train()
  assert second.step == 6
  assert checkpoints.find_checkpoint(str(tmp_path)).endswith('ckpt-6')
  done = checkpoints.folders.read_training_done(str(tmp_path))
  assert done['step'] == 6 and done['checkpoint'].endswith('ckpt-6')


def test_initial_tf1_checkpoint_without_last_layer(tmp_path):
  source = build_model(OPTIONS.replace(outputs_to_num_classes={'semantic': 5}))
  checkpoints.save_tf1_checkpoint(source, str(tmp_path / 'init' / 'model.ckpt'))
  settings = _settings(tmp_path / 'train', 1,
                       tf_initial_checkpoint=str(tmp_path / 'init' / 'model.ckpt'),
                       initialize_last_layer=False)
  trainer = Trainer(OPTIONS, settings, synthetic_dataset_fn(4))
  message = trainer.initialize()
  assert 'initialised from TF1 checkpoint' in message
  want = source.get_layer('MobilenetV2.Conv').get_weights()[0]
  np.testing.assert_array_equal(
      trainer.model.get_layer('MobilenetV2.Conv').get_weights()[0], want)
  # With the last layer, 5 vs 3 classes does not fit: a clear error.
  bad = _settings(tmp_path / 'train2', 1,
                  tf_initial_checkpoint=str(tmp_path / 'init' / 'model.ckpt'))
  with pytest.raises(checkpoints.CheckpointMismatchError, match='logits/semantic'):
    Trainer(OPTIONS, bad, synthetic_dataset_fn(4)).initialize()


def test_frozen_batch_norm_phase(tmp_path):
  """Phase 2 as the original: moving statistics kept, gamma and beta train."""
  trainer = Trainer(OPTIONS, _settings(tmp_path, 2, fine_tune_batch_norm=False),
                    synthetic_dataset_fn(4))
  named = checkpoints.model_variables(trainer.model)
  before = {n: v.numpy().copy() for n, v in named.items()}
  trainer.train()
  statistics = [n for n in named if n.endswith(('moving_mean',
                                                'moving_variance'))]
  affine = [n for n in named if n.endswith(('/gamma', '/beta'))]
  assert len(statistics) == len(affine) > 50
  for n in statistics:
    np.testing.assert_array_equal(named[n].numpy(), before[n], err_msg=n)
  # Every gamma and beta trains (the original's T2 fixture: 108 of 108): its
  # momentum accumulator holds its gradients. (Gammas start at 1.0, where
  # two small steps can round away.)
  trained = [n for n in affine
             if np.abs(trainer.optimizer.accumulator(named[n]).numpy()).max() > 0]
  assert sorted(trained) == sorted(affine), sorted(set(affine) - set(trained))
  assert any(not np.array_equal(named[n].numpy(), before[n]) for n in affine)


def _run_worker(tmp_path, name, num_devices, init, global_batch, sync):
  here = os.path.dirname(os.path.abspath(__file__))
  logdir = tmp_path / name
  proc = subprocess.run(
      [sys.executable, os.path.join(here, '_mirrored_worker.py'),
       str(num_devices), str(logdir), str(init), '1', str(global_batch),
       str(int(sync))], capture_output=True, text=True,
      timeout=600, env=dict(os.environ, PYTHONPATH=here + os.pathsep +
                            os.environ.get('PYTHONPATH', '')))
  assert proc.returncode == 0, proc.stderr[-3000:]
  loss = float(proc.stdout.split('LOSS ')[1].split()[0])
  return loss, dict(np.load(logdir / 'weights.npz'))


def _initial(init):
  start = build_model(OPTIONS, fine_tune_batch_norm=True)
  checkpoints.load_tf1_checkpoint(start, str(init))
  return {n: v.numpy() for n, v in checkpoints.model_variables(start).items()}


@pytest.mark.slow
def test_two_replicas_with_sync_batch_norm_match_one_device(tmp_path):
  """--sync_batch_norm on 2 logical CPUs == one device on the same global batch."""
  init = tmp_path / 'init' / 'model.ckpt'
  checkpoints.save_tf1_checkpoint(build_model(OPTIONS), str(init))
  loss1, one = _run_worker(tmp_path, 'one', 1, init, 4, sync=False)
  loss2, two = _run_worker(tmp_path, 'two', 2, init, 4, sync=True)
  assert loss1 == pytest.approx(loss2, abs=1e-5)
  start = _initial(init)
  for key, w0 in start.items():
    # The update of every variable (weights and BN moving statistics) agrees
    # up to kernel noise: sync BN is composed of ops, one device uses the
    # fused kernel, and the original's own reruns (oneDNN on / off) differ by
    # up to 3% in step-1 BatchNorm gradients (shared/reference/train).
    update = np.linalg.norm(one[key] - w0)
    gap = np.linalg.norm(one[key] - two[key])
    assert gap <= 5e-2 * update + 1e-5, (key, gap, update)


@pytest.mark.slow
def test_two_replicas_take_moving_averages_from_the_first(tmp_path):
  """Default (the original's clones): the moving statistics after one step are
  those of a one-device run on the first replica's half batch."""
  init = tmp_path / 'init' / 'model.ckpt'
  checkpoints.save_tf1_checkpoint(build_model(OPTIONS), str(init))
  _, half = _run_worker(tmp_path, 'half', 1, init, 2, sync=False)
  _, whole = _run_worker(tmp_path, 'whole', 1, init, 4, sync=False)
  _, two = _run_worker(tmp_path, 'two', 2, init, 4, sync=False)
  start = _initial(init)
  statistics = [k for k in start if k.endswith(('moving_mean',
                                                'moving_variance'))]
  assert len(statistics) > 50
  for key in statistics:
    update = np.abs(half[key] - start[key]).max()
    np.testing.assert_allclose(two[key], half[key], atol=1e-6 + 1e-4 * update,
                               err_msg=key)
  # ... which differ from the global batch's (what sync BN would give).
  assert max(np.abs(whole[k] - two[k]).max() for k in statistics) > 1e-3


def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path):
  trainer = Trainer(OPTIONS, _settings(tmp_path, 3, lr=0.01),
                    synthetic_dataset_fn(4))
  trainer.train(max_steps=1)  # leaves ckpt-1
  bad = Trainer(OPTIONS, _settings(tmp_path, 3, lr=0.01),
                synthetic_dataset_fn(4))
  bad.initialize()
  layer = bad.model.get_layer('logits.semantic')
  kernel, bias = layer.get_weights()
  layer.set_weights([kernel * np.nan, bias])
  bad.initialize = lambda: 'poisoned'  # keep the NaN weights
  # The second update (step 2) is the first with a NaN loss.
  with pytest.raises(FloatingPointError, match=r'nan at step 2 .*ckpt-1'):
    bad.train()


@pytest.mark.slow
def test_xla_train_step(tmp_path):
  """jit_compile compiles the replica step (the iterator read stays outside XLA)."""
  trainer = Trainer(OPTIONS, _settings(tmp_path, 1, jit_compile=True),
                    synthetic_dataset_fn(4))
  metrics = trainer.train()
  assert trainer.step == 1 and np.isfinite(metrics['total_loss'])


def test_kernel_initializer_replaces_the_original_initialisers(tmp_path):
  from deeplab_tf.models import initializers  # pylint: disable=g-import-not-at-top
  original = Trainer(OPTIONS, _settings(tmp_path / 'a', 1),
                     synthetic_dataset_fn(4))
  described = initializers.describe(initializers.variable_initializers(
      original.model)['MobilenetV2/Conv/weights'])
  assert described == ('truncated_normal', {'mean': 0.0, 'stddev': 0.09})
  glorot = Trainer(OPTIONS, _settings(tmp_path / 'b', 1,
                                      kernel_initializer='glorot_uniform'),
                   synthetic_dataset_fn(4))
  kernel = glorot.model.get_layer('MobilenetV2.Conv').kernel.numpy()
  kh, kw, cin, cout = kernel.shape
  limit = np.sqrt(6.0 / (kh * kw * (cin + cout)))   # glorot uniform
  assert np.abs(kernel).max() <= limit
  assert np.abs(kernel).max() > 0.9 * limit   # not the 0.09-truncated normal
  with pytest.raises(ValueError, match='not a Keras initializer'):
    _settings(tmp_path / 'c', 1, kernel_initializer='no_such_init')
