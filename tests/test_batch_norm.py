"""BatchNorm, dropout and initialisers as the original trains them."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_model
from deeplab_tf.models import initializers
from deeplab_tf.models.batch_norm import BatchNorm
from deeplab_tf.models.layers import Dropout

RNG = np.random.default_rng(3)
X = (2.0 * RNG.standard_normal((4, 3, 3, 5)) + 0.5).astype(np.float32)


def _layer(**kw):
  layer = BatchNorm(momentum=kw.pop('momentum', 0.9), epsilon=1e-3, **kw)
  layer.build(X.shape)
  layer.gamma.assign(np.linspace(0.5, 1.5, 5).astype(np.float32))
  layer.beta.assign(np.linspace(-0.2, 0.2, 5).astype(np.float32))
  layer.moving_mean.assign(np.full(5, 0.3, np.float32))
  layer.moving_variance.assign(np.full(5, 2.0, np.float32))
  return layer


def test_training_normalises_with_biased_and_updates_with_unbiased_variance():
  layer = _layer()
  out = layer(X, training=True).numpy()
  mean = X.mean(axis=(0, 1, 2), dtype=np.float64)
  biased = X.var(axis=(0, 1, 2), dtype=np.float64)
  n = X.size // 5
  gamma, beta = layer.gamma.numpy(), layer.beta.numpy()
  want = (X - mean) / np.sqrt(biased + 1e-3) * gamma + beta
  np.testing.assert_allclose(out, want, atol=2e-5)
  decay = np.float32(1 - 0.9)
  np.testing.assert_allclose(layer.moving_mean.numpy(),
                             0.3 - (0.3 - mean) * decay, atol=1e-6)
  unbiased = biased * n / (n - 1)
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             2.0 - (2.0 - unbiased) * decay, atol=1e-6)
  # Keras' own BatchNormalization would have used the biased variance; the
  # difference here (n = 36) is far above the tolerance above.
  assert abs(float(np.max((unbiased - biased) * decay))) > 1e-3


def test_frozen_statistics_still_train_gamma_and_beta():
  layer = _layer(train_statistics=False)
  assert {id(w) for w in layer.trainable_weights} == {id(layer.gamma),
                                                       id(layer.beta)}
  with tf.GradientTape() as tape:
    out = layer(X, training=True)
    loss = tf.reduce_sum(out * out)
  grads = tape.gradient(loss, [layer.gamma, layer.beta])
  assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)
  # Inference-mode normalisation with the moving statistics, which stay.
  want = (X - 0.3) / np.sqrt(2.0 + 1e-3) * layer.gamma.numpy() + \
      layer.beta.numpy()
  np.testing.assert_allclose(out.numpy(), want, atol=2e-5)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), np.full(5, 0.3, np.float32))
  np.testing.assert_array_equal(layer.moving_variance.numpy(), np.full(5, 2.0, np.float32))


def test_non_trainable_layer_is_frozen_whole():
  layer = _layer()
  layer.trainable = False   # what --trainable_scopes does outside its scopes
  assert not layer.trainable_weights
  layer(X, training=True)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), np.full(5, 0.3, np.float32))


def test_non_4d_inputs_and_serialisation():
  layer = _layer()
  flat = X.reshape(-1, 5)
  out = layer(flat, training=False).numpy()
  want = (flat - 0.3) / np.sqrt(2.0 + 1e-3) * layer.gamma.numpy() + \
      layer.beta.numpy()
  np.testing.assert_allclose(out, want, atol=2e-5)
  clone = BatchNorm.from_config(layer.get_config())
  assert (clone.momentum, clone.epsilon, clone.train_statistics,
          clone.sync) == (0.9, 1e-3, True, False)


def test_replicas_use_their_own_statistics_and_the_first_updates():
  """2 logical CPUs: per-replica statistics, first-replica moving averages; sync."""
  here = os.path.dirname(os.path.abspath(__file__))
  root = os.path.dirname(here)
  proc = subprocess.run([sys.executable,
                         os.path.join(here, '_bn_replicas_worker.py')],
                        capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=root + os.pathsep +
                                 os.environ.get('PYTHONPATH', '')))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split('RESULT ')[1])
  assert result['replicas'] == 2
  # Each replica's output is a single-device run on its half batch, and the
  # moving averages are the first half's update (not the second's).
  per = result['per_replica']
  assert per['output_gap'] < 1e-5
  assert per['moving_mean_gap'] < 1e-6 and per['moving_variance_gap'] < 1e-6
  assert result['second_replica_mean_gap'] > 1e-2
  # sync: the global batch's statistics for outputs and moving averages.
  sync = result['sync']
  assert sync['output_gap'] < 1e-5
  assert sync['moving_mean_gap'] < 1e-6 and sync['moving_variance_gap'] < 1e-5
  assert result['global_vs_first_half_mean'] > 1e-2


def test_dropout_replays_given_draws_as_the_original():
  layer = Dropout(keep_prob=0.9)
  x = tf.constant(np.arange(1.0, 9.0, dtype=np.float32).reshape(1, 2, 2, 2))
  u = np.array([0.05, 0.1, 0.5, 0.09999, 0.99, 0.0, 0.2, 0.3],
               np.float32).reshape(1, 2, 2, 2)
  layer.uniform_source = lambda shape: tf.constant(u)
  out = layer(x, training=True).numpy()
  keep = u >= np.float32(0.1)
  np.testing.assert_array_equal(
      out, np.where(keep, x.numpy() * np.float32(1.1111112), 0.0))
  np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
  # Without a source: fresh draws keep about 90%, scaled by 1/0.9.
  layer.uniform_source = None
  big = layer(tf.ones((1, 100, 100, 4)), training=True).numpy()
  assert set(np.unique(big).tolist()) <= {0.0, np.float32(1 / 0.9)}
  assert 0.88 < np.mean(big > 0) < 0.92


def test_slim_variance_scaling_statistics_and_description():
  init = initializers.slim_variance_scaling()   # factor 2, FAN_IN, truncated
  values = np.asarray(init((3, 3, 64, 128)))
  stddev = np.sqrt(1.3 * 2.0 / (3 * 3 * 64))
  assert np.abs(values).max() <= 2 * stddev + 1e-6
  assert values.std() == pytest.approx(0.8796 * stddev, rel=0.02)
  xavier = np.asarray(initializers.xavier()((1, 1, 320, 256)))
  limit = np.sqrt(3.0 / ((320 + 256) / 2))
  assert np.abs(xavier).max() <= limit and np.abs(xavier).max() > 0.99 * limit
  # The original's names and parameters describe the same initialisers.
  same = initializers.same_description
  assert same(initializers.describe(initializers.xavier()),
              initializers.describe_original(
                  'tf_slim.layers.initializers.variance_scaling_initializer.'
                  '<locals>._initializer',
                  {'factor': 1.0, 'mode': 'FAN_AVG', 'uniform': True}))
  assert same(initializers.describe(initializers.truncated_normal(0.09)),
              initializers.describe_original(
                  'tensorflow.python.ops.init_ops.TruncatedNormal',
                  {'mean': 0.0, 'stddev': 0.09}))
  # Keras' VarianceScaling truncated normal is another distribution.
  assert not same(
      initializers.describe(keras.initializers.VarianceScaling(
          2.0, 'fan_in', 'truncated_normal')),
      initializers.describe(initializers.slim_variance_scaling()))
  assert not same(initializers.describe(initializers.truncated_normal(0.09)),
                  initializers.describe(initializers.truncated_normal(0.01)))


def _init_of(model, name):
  return initializers.describe(initializers.variable_initializers(model)[name])


def test_models_carry_the_original_initialisers():
  resnet = build_model(ModelOptions(
      model_variant='resnet_v1_50_beta', crop_size=(33, 33), output_stride=16,
      atrous_rates=(6, 12, 18), aspp_with_separable_conv=False))
  family, params = _init_of(resnet, 'resnet_v1_50/block1/unit_1/'
                            'bottleneck_v1/conv2/weights')
  assert (family, params['distribution'], params['scale'],
          params['mode']) == ('variance_scaling', 'slim_truncated_normal', 2.0,
                              'fan_in')
  # A non-separable atrous ASPP conv and the logits.
  assert _init_of(resnet, 'aspp1/weights')[1]['distribution'] == 'uniform'
  assert _init_of(resnet, 'logits/semantic/weights') == (
      'truncated_normal', {'mean': 0.0, 'stddev': 0.01})
  v3 = build_model(ModelOptions(
      model_variant='mobilenet_v3_small_seg', crop_size=(33, 33),
      output_stride=16))
  names = checkpoints.model_variables(v3)
  se = [n for n in names if 'squeeze_excite/Conv/' in n]
  assert any(n.endswith('biases') for n in se)
  for n in se:
    want = (('constant', {'value': 0.0}) if n.endswith('biases') else
            ('truncated_normal', {'mean': 0.0, 'stddev': 0.09}))
    assert _init_of(v3, n) == want, n
