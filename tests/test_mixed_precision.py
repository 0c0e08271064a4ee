"""Mixed precision: low-precision convolutions, float32 weights, logits and loss."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.training.tasks import semantic as tasks_lib
from deeplab_tf.training.trainer import Trainer
from test_trainer import OPTIONS, _settings, synthetic_dataset_fn


@pytest.fixture
def float32_policy_afterwards(request):
  """The Trainer sets the global Keras policy: put float32 back, pass or fail."""
  assert keras.mixed_precision.global_policy().name == 'float32'
  request.addfinalizer(lambda: keras.mixed_precision.set_global_policy('float32'))


@pytest.mark.parametrize('policy, low', [('mixed_bfloat16', tf.bfloat16),
                                         ('mixed_float16', tf.float16)])
def test_mixed_precision_trains_with_float32_logits_and_loss(
    policy, low, tmp_path, monkeypatch, float32_policy_afterwards):
  seen = []
  # The Trainer's SemanticTask calls the loss from the tasks module.
  loss_fn = tasks_lib.softmax_cross_entropy_loss_for_each_scale

  def recording_loss(outputs, *args, **kwargs):
    losses, total = loss_fn(outputs, *args, **kwargs)
    seen.append(({k: v.dtype for k, v in outputs.items()},
                 [v.dtype for v in losses.values()], total.dtype))
    return losses, total
  monkeypatch.setattr(tasks_lib, 'softmax_cross_entropy_loss_for_each_scale',
                      recording_loss)

  trainer = Trainer(OPTIONS, _settings(tmp_path, 2, mixed_precision=policy,
                                       log_steps=1), synthetic_dataset_fn(4))
  model = trainer.model
  convs = [l for l in model.layers
           if isinstance(l, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
  assert convs
  for layer in convs:
    assert layer.compute_dtype == low.name, layer.name
    assert layer.variable_dtype == 'float32', layer.name
  assert all(v.dtype == 'float32' for v in model.weights)
  # The network itself computes in low precision, up to its logits ...
  raw = model(tf.zeros([1, 33, 33, 3]), training=False)
  assert all(v.dtype == low for v in raw.values())
  if policy == 'mixed_float16':
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)

  before = [v.numpy() for v in model.trainable_weights]
  metrics = trainer.train()
  assert trainer.step == 2
  # ... and the loss sees float32 logits and is float32 and finite.
  assert seen
  for logits_dtypes, loss_dtypes, total_dtype in seen:
    assert set(logits_dtypes.values()) == {tf.float32}, logits_dtypes
    assert set(loss_dtypes) == {tf.float32} and total_dtype == tf.float32
  for key in ('total_loss', 'task_loss', 'regularization_loss'):
    assert np.isfinite(metrics[key]), metrics
  assert 0.1 < metrics['total_loss'] < 10, metrics
  # The steps were applied (a float16 step with overflowing gradients would
  # have been skipped by the loss scaling).
  changed = [np.any(a != v.numpy()) for a, v in zip(before,
                                                    model.trainable_weights)]
  assert np.mean(changed) > 0.9, np.mean(changed)
