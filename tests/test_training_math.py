"""The original DeepLab training math on hand-computed examples.

Loss: softmax cross-entropy with ignore label, label weights, hard-pixel
mining and its ramp; learning-rate policies and slow start; gradient
multipliers; L2 weight decay. Every expected value below is worked out by
hand from the rules in ``shared/reference/ops/README.md`` (sections 5-8).
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import training
from deeplab_tf.training import gradient_multipliers as gm
from deeplab_tf.training import losses
from deeplab_tf.training import regularization as reg
from deeplab_tf.training import schedules

LN2, LN3, LN4 = math.log(2.0), math.log(3.0), math.log(4.0)
IGNORE = 255


# --- A 2x2 example -----------------------------------------------------------
# Two classes. Pixel CEs: (0,0) logits [0, 0], label 0 -> ln 2;
# (0,1) [ln3, 0], label 0 -> -ln(3/4) = ln(4/3); (1,0) [ln3, 0], label 1 ->
# -ln(1/4) = ln 4; (1,1) ignored -> 0.
def _example():
  logits = np.array([[[[0.0, 0.0], [LN3, 0.0]],
                      [[LN3, 0.0], [0.0, 0.0]]]], np.float32)
  labels = np.array([[[[0], [0]], [[1], [IGNORE]]]], np.int32)
  return logits, labels


def _loss(logits, labels, **kwargs):
  return losses.softmax_cross_entropy_for_scale(logits, labels, 2, IGNORE,
                                                **kwargs)


def test_cross_entropy_2x2_hand_computed():
  logits, labels = _example()
  out = _loss(logits, labels)
  np.testing.assert_allclose(out.pixel_losses.numpy(),
                             [LN2, math.log(4 / 3), LN4, 0.0], rtol=1e-6)
  # Normaliser: 3 non-ignored pixels.
  assert float(out.num_present) == 3.0
  assert int(out.num_pixels) == 4 and int(out.k) == 4
  np.testing.assert_allclose(float(out.loss), math.log(32 / 3) / 3, rtol=1e-6)


def test_label_weights_do_not_enter_the_normaliser():
  logits, labels = _example()
  # Class 1 weighted 0.5: ln2 + ln(4/3) + 0.5 ln4 = ln(16/3), still over 3.
  out = _loss(logits, labels, loss_weight=[1.0, 0.5])
  np.testing.assert_allclose(float(out.loss), math.log(16 / 3) / 3, rtol=1e-6)
  np.testing.assert_allclose(out.weights.numpy(), [1.0, 1.0, 0.5, 0.0])
  # A class of weight 0 still counts in the denominator.
  out = _loss(logits, labels, loss_weight=[1.0, 0.0])
  np.testing.assert_allclose(float(out.loss), (LN2 + math.log(4 / 3)) / 3,
                             rtol=1e-6)
  assert float(out.num_present) == 3.0
  # A scalar weight scales the numerator only.
  out = _loss(logits, labels, loss_weight=2.0)
  np.testing.assert_allclose(float(out.loss), 2 * math.log(32 / 3) / 3,
                             rtol=1e-6)


def test_all_ignored_gives_zero_not_nan():
  logits, _ = _example()
  labels = np.full([1, 2, 2, 1], IGNORE, np.int32)
  out = _loss(logits, labels)
  assert float(out.loss) == 0.0 and float(out.num_present) == 0.0
  out = _loss(logits, labels, top_k_percent_pixels=0.5)
  assert float(out.loss) == 0.0


def test_top_k_mining_by_hand():
  logits, labels = _example()
  # N = 4 pixels (the ignored one included), k = int(0.5 * 4) = 2: the two
  # largest losses ln4 and ln2, both non-zero.
  out = _loss(logits, labels, top_k_percent_pixels=0.5)
  assert int(out.k) == 2
  np.testing.assert_allclose(float(out.loss), (LN4 + LN2) / 2, rtol=1e-6)
  # Weighted losses with class 1 at 0: [ln2, ln(4/3), 0, 0]. k = int(0.75*4)
  # = 3 keeps one zero, which leaves the normaliser: divide by 2, not 3.
  out = _loss(logits, labels, top_k_percent_pixels=0.75, loss_weight=[1.0, 0.0])
  assert int(out.k) == 3 and float(out.num_present) == 2.0
  np.testing.assert_allclose(float(out.loss), (LN2 + math.log(4 / 3)) / 2,
                             rtol=1e-6)


def test_top_k_ramp_by_hand():
  logits, labels = _example()
  # Ramp over 100 steps from all 4 pixels to 0.5 * 4 = 2.
  # step 50: r = 0.5, (0.5 * 0.5 + 0.5) * 4 = 3.
  ks = [int(_loss(logits, labels, top_k_percent_pixels=0.5,
                  hard_example_mining_step=100, step=s).k)
        for s in (0, 50, 100, 1000)]
  assert ks == [4, 3, 2, 2]
  # At the ramp start k = N but the normaliser is the non-zero count: the
  # ignored pixel's 0 drops out, so the loss equals the plain one here.
  start = _loss(logits, labels, top_k_percent_pixels=0.5,
                hard_example_mining_step=100, step=0)
  np.testing.assert_allclose(float(start.loss), math.log(32 / 3) / 3, rtol=1e-6)
  # The README's example: 33282 pixels, top 25 %, ramp 100.
  assert [int(losses.top_k_pixel_count(33282, 0.25, 100, s))
          for s in (0, 50, 200)] == [33282, 20801, 8320]
  # Without a ramp: int(float32(0.25 * 33282)) = int(8320.5) = 8320.
  assert int(losses.top_k_pixel_count(33282, 0.25)) == 8320


def test_downsampled_labels_nearest_align_corners():
  # 3x3 labels to 2x2 logits: source index round(y * 2) -> rows/cols 0 and 2.
  labels = np.arange(9, dtype=np.int32).reshape([1, 3, 3, 1]) % 2
  labels[0, 2, 2, 0] = IGNORE
  logits = np.zeros([1, 2, 2, 2], np.float32)
  out = _loss(logits, labels, upsample_logits=False)
  np.testing.assert_array_equal(out.labels.numpy(), [0, 0, 0, IGNORE])
  assert float(out.num_present) == 3.0
  np.testing.assert_allclose(float(out.loss), LN2, rtol=1e-6)


def test_upsampled_logits_align_corners():
  # Class-0 logits [[0, 2], [2, 4]] upsampled to 3x3 with align_corners: the
  # centre is their mean, 2. Only the centre is labelled (class 1):
  # CE = log(1 + e^2).
  logits = np.zeros([1, 2, 2, 2], np.float32)
  logits[0, :, :, 0] = [[0.0, 2.0], [2.0, 4.0]]
  labels = np.full([1, 3, 3, 1], IGNORE, np.int32)
  labels[0, 1, 1, 0] = 1
  out = _loss(logits, labels)
  assert int(out.num_pixels) == 9
  np.testing.assert_allclose(float(out.loss), math.log1p(math.exp(2.0)),
                             rtol=1e-6)


def test_each_scale_normalised_separately_and_summed():
  logits, labels = _example()
  scales = {'merged_logits': logits, 'logits_0.50': np.zeros_like(logits)}
  per_scale, total = losses.softmax_cross_entropy_loss_for_each_scale(
      scales, labels, 2, IGNORE)
  assert list(per_scale) == ['merged_logits', 'logits_0.50']
  np.testing.assert_allclose(float(per_scale['logits_0.50']), LN2, rtol=1e-6)
  np.testing.assert_allclose(float(total), math.log(32 / 3) / 3 + LN2,
                             rtol=1e-6)


def test_loss_inside_tf_function_with_step_tensor():
  logits, labels = _example()

  @tf.function
  def run(step):
    _, total = losses.softmax_cross_entropy_loss_for_each_scale(
        {'merged_logits': tf.constant(logits)}, tf.constant(labels), 2, IGNORE,
        hard_example_mining_step=100, top_k_percent_pixels=0.5, step=step)
    return total

  eager = _loss(logits, labels, hard_example_mining_step=100,
                top_k_percent_pixels=0.5, step=50).loss
  np.testing.assert_allclose(float(run(tf.constant(50, tf.int64))),
                             float(eager), rtol=1e-7)


def test_loss_per_replica_under_a_strategy():
  logits, labels = _example()
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])

  @tf.function
  def step_fn(x, y):
    _, total = losses.softmax_cross_entropy_loss_for_each_scale(
        {'merged_logits': x}, y, 2, IGNORE, top_k_percent_pixels=0.5,
        hard_example_mining_step=100, step=tf.constant(50, tf.int64))
    return training.total_training_loss(total, 0.25)

  out = strategy.run(step_fn, args=(tf.constant(logits), tf.constant(labels)))
  value = float(strategy.reduce(tf.distribute.ReduceOp.SUM, out, axis=None))
  # k = 3 at step 50: ln4 + ln2 + ln(4/3) over 3 non-zero, plus the L2 term.
  np.testing.assert_allclose(value, (LN4 + LN2 + math.log(4 / 3)) / 3 + 0.25,
                             rtol=1e-6)


def test_gradient_flows_to_logits_only():
  logits, labels = _example()
  x = tf.Variable(logits)
  with tf.GradientTape() as tape:
    loss = _loss(x, labels).loss
  grad = tape.gradient(loss, x).numpy()
  # The ignored pixel gets no gradient; others get (softmax - onehot) / 3.
  np.testing.assert_allclose(grad[0, 1, 1], [0.0, 0.0])
  np.testing.assert_allclose(grad[0, 0, 0], [-0.5 / 3, 0.5 / 3], rtol=1e-6)


@pytest.mark.parametrize('bad', [1, 0, (1.0, 1.0), np.float32(1.0), True])
def test_loss_weight_must_be_float_or_list(bad):
  logits, labels = _example()
  with pytest.raises(ValueError, match='loss_weight'):
    _loss(logits, labels, loss_weight=bad)


def test_int_loss_weight_error_names_the_value():
  with pytest.raises(ValueError, match=r"got 1 of type int \(write 1.0\)"):
    losses.validate_loss_weight(1, 21)
  with pytest.raises(ValueError, match='loss_weight'):
    losses.LossSettings(loss_weight=1)


def test_label_weights_length_must_match_num_classes():
  logits, labels = _example()
  with pytest.raises(ValueError, match='list of 3 weights but num_classes is 2'):
    _loss(logits, labels, loss_weight=[1.0, 1.0, 1.0])


def test_bad_mining_arguments_raise():
  logits, labels = _example()
  with pytest.raises(ValueError, match='top_k_percent_pixels'):
    _loss(logits, labels, top_k_percent_pixels=1.5)
  with pytest.raises(ValueError, match='hard_example_mining_step'):
    _loss(logits, labels, top_k_percent_pixels=0.5, hard_example_mining_step=-1)
  with pytest.raises(ValueError, match='num_classes is 3'):
    losses.softmax_cross_entropy_for_scale(logits, labels, 3, IGNORE)


def test_loss_settings_defaults_are_train_py():
  s = losses.LossSettings()
  assert s.loss_kwargs() == dict(loss_weight=1.0, upsample_logits=True,
                                 hard_example_mining_step=0,
                                 top_k_percent_pixels=1.0)
  assert s.ignore_label == 255


# --- Learning rate -------------------------------------------------------------
def _lr(step, **kwargs):
  return float(schedules.learning_rate(step, **kwargs))


VOC = dict(base_learning_rate=0.007, training_number_of_steps=30000,
           learning_power=0.9)


def test_poly_at_a_few_steps():
  assert _lr(0, **VOC) == pytest.approx(0.007, rel=1e-6)
  assert _lr(15000, **VOC) == pytest.approx(0.007 * 0.5 ** 0.9, rel=1e-5)
  assert _lr(27000, **VOC) == pytest.approx(0.007 * 0.1 ** 0.9, rel=1e-5)
  # Exactly 0 at and after the last step (end_learning_rate 0).
  assert _lr(30000, **VOC) == 0.0 and _lr(40000, **VOC) == 0.0


def test_poly_with_decay_steps_and_end_rate():
  kw = dict(VOC, decay_steps=20000.0, end_learning_rate=1e-5)
  assert _lr(10000, **kw) == pytest.approx((0.007 - 1e-5) * 0.5 ** 0.9 + 1e-5,
                                           rel=1e-5)
  assert _lr(25000, **kw) == pytest.approx(1e-5, rel=1e-6)


def test_slow_start_constant_then_jump():
  kw = dict(VOC, slow_start_step=100, slow_start_learning_rate=1e-4)
  assert _lr(0, **kw) == pytest.approx(1e-4, rel=1e-6)
  assert _lr(99, **kw) == pytest.approx(1e-4, rel=1e-6)
  # The policy starts at its full base value, on step - slow_start_step.
  assert _lr(100, **kw) == pytest.approx(0.007, rel=1e-6)
  assert _lr(100 + 14950, **kw) == pytest.approx(0.007 * 0.5 ** 0.9, rel=1e-5)


def test_slow_start_linear_burnin():
  kw = dict(VOC, slow_start_step=1000, slow_start_learning_rate=1e-4,
            slow_start_burnin_type='linear')
  assert _lr(0, **kw) == pytest.approx(1e-4, rel=1e-6)
  assert _lr(500, **kw) == pytest.approx(1e-4 + 0.0069 * 0.5, rel=1e-6)
  assert _lr(1000, **kw) == pytest.approx(0.007, rel=1e-6)


def test_step_cosine_multi_steps():
  step = dict(learning_policy='step', base_learning_rate=0.01,
              learning_rate_decay_step=2000, learning_rate_decay_factor=0.1,
              slow_start_step=100)
  assert _lr(2099, **step) == pytest.approx(0.01, rel=1e-6)
  assert _lr(2100, **step) == pytest.approx(0.001, rel=1e-6)
  assert _lr(4100, **step) == pytest.approx(1e-4, rel=1e-5)
  cosine = dict(learning_policy='cosine', base_learning_rate=0.01,
                training_number_of_steps=30000)
  assert _lr(15000, **cosine) == pytest.approx(0.005, rel=1e-6)
  assert _lr(30000, **cosine) == pytest.approx(0.0, abs=1e-12)
  multi = dict(learning_policy='multi_steps', boundaries=[1000, 20000],
               boundary_learning_rates=[0.01, 0.001, 1e-4])
  values = [_lr(s, **multi) for s in (0, 1000, 1001, 20000, 20001)]
  np.testing.assert_allclose(values, [0.01, 0.01, 0.001, 0.001, 1e-4],
                             rtol=1e-6)


def test_float32_rate_matches_the_originals_rounding():
  # float32 cancellation in 1 - step/D near the end: the original (which
  # multiplies by the float32 reciprocal of D) gives 0x1.69c9f2p-21 here;
  # exact division would give 0x1.6a5a26p-21 (1.6e-3 relative off).
  kw = dict(VOC, slow_start_step=1000, slow_start_learning_rate=1e-4,
            slow_start_burnin_type='linear')
  assert np.float32(_lr(29999, **kw)) == np.float32(float.fromhex('0x1.69c9f2p-21'))


def test_keras_schedule_and_defaults():
  s = schedules.LearningRateSettings()
  assert (s.learning_policy, s.base_learning_rate, s.training_number_of_steps,
          s.learning_power, s.slow_start_step, s.slow_start_learning_rate) == (
              'poly', 1e-4, 30000, 0.9, 0, 1e-4)
  schedule = schedules.DeepLabLearningRate(base_learning_rate=0.007,
                                           slow_start_step=100)
  assert float(schedule(50)) == pytest.approx(1e-4, rel=1e-6)
  assert float(schedule(tf.constant(100, tf.int64))) == pytest.approx(0.007)
  clone = schedules.DeepLabLearningRate.from_config(schedule.get_config())
  assert float(clone(5000)) == float(schedule(5000))
  optimizer = tf.keras.optimizers.SGD(schedule, momentum=0.9)
  assert float(optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)


@pytest.mark.parametrize('kwargs, message', [
    (dict(learning_policy='exp'), "Unknown learning_policy 'exp'"),
    (dict(slow_start_burnin_type='cubic'), "slow_start_burnin_type 'cubic'"),
    (dict(learning_policy='multi_steps'), 'needs boundaries'),
    (dict(learning_policy='multi_steps', boundaries=[10],
          boundary_learning_rates=[0.1]), 'one more entry'),
    (dict(slow_start_step=30000), 'decay length must be positive'),
])
def test_schedule_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    schedules.learning_rate(0, **kwargs)


# --- Gradient multipliers ---------------------------------------------------------
NAMES = [
    'xception_65/entry_flow/conv1_1/weights',
    'xception_65/entry_flow/conv1_1/BatchNorm/gamma',
    'MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases',
    'MobilenetV2/Logits/Conv2d_1c_1x1/weights',
    'aspp1_depthwise/depthwise_weights',
    'aspp0/BatchNorm/beta',
    'image_pooling/biases',
    'decoder/decoder_conv0_pointwise/weights',
    'logits/semantic/weights',
    'logits/semantic/biases',
]


def test_multipliers_logits_only():
  m = gm.get_gradient_multipliers(NAMES, ['logits'], 10.0)
  assert m == {
      'MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases': 2.0,
      'image_pooling/biases': 2.0,
      'logits/semantic/weights': 10.0,
      'logits/semantic/biases': 20.0,
  }  # 'Logits' (capital L) is not 'logits': the test is case-sensitive.


def test_multipliers_default_still_double_biases():
  m = gm.get_gradient_multipliers(NAMES, gm.get_extra_layer_scopes(), 1.0)
  assert m['image_pooling/biases'] == 2.0
  assert m['MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases'] == 2.0
  assert m['logits/semantic/biases'] == 2.0
  assert m['logits/semantic/weights'] == 1.0
  # Substring matching: aspp1_depthwise and aspp0/BatchNorm are under 'aspp'.
  assert m['aspp1_depthwise/depthwise_weights'] == 1.0
  assert m['aspp0/BatchNorm/beta'] == 1.0
  assert 'xception_65/entry_flow/conv1_1/weights' not in m
  assert 'xception_65/entry_flow/conv1_1/BatchNorm/gamma' not in m


def test_extra_layer_scopes():
  assert gm.get_extra_layer_scopes(True) == ['logits']
  assert gm.get_extra_layer_scopes() == [
      'logits', 'image_pooling', 'aspp', 'concat_projection', 'decoder',
      'meta_architecture']
  assert gm.GradientMultiplierSettings().last_layers == gm.get_extra_layer_scopes()
  with pytest.raises(ValueError, match='single string'):
    gm.get_gradient_multipliers(NAMES, 'logits', 10.0)


def test_multiplier_applies_to_gradient_pairs():
  names = ['backbone/conv/weights', 'backbone/conv/biases',
           'logits/semantic/weights', 'embedding/weights']
  variables = {n: tf.Variable(tf.ones([3, 2])) for n in names}
  mult = gm.GradientMultiplier(
      variables, gm.get_gradient_multipliers(names, ['logits', 'embedding'], 10.0))
  sparse = tf.IndexedSlices(tf.ones([1, 2]), tf.constant([1]),
                            tf.constant([3, 2]))
  pairs = [(tf.ones([3, 2]), variables['backbone/conv/weights']),
           (tf.ones([3, 2]), variables['backbone/conv/biases']),
           (None, variables['logits/semantic/weights']),
           (sparse, variables['embedding/weights'])]
  out = mult(pairs)
  assert out[0][0] is pairs[0][0]
  np.testing.assert_array_equal(out[1][0].numpy(), 2.0)
  assert out[2][0] is None
  assert isinstance(out[3][0], tf.IndexedSlices)
  np.testing.assert_array_equal(out[3][0].values.numpy(), 10.0)
  assert [v for _, v in out] == [v for _, v in pairs]
  with pytest.raises(ValueError, match='does not have'):
    gm.GradientMultiplier(variables, {'nope/biases': 2.0})


# --- Weight decay -------------------------------------------------------------
def test_which_variables_are_regularized():
  assert reg.is_regularized('aspp1_pointwise/weights')
  assert reg.is_regularized('logits/semantic/weights')
  assert reg.is_regularized('xception_65/entry_flow/conv1_1/weights:0')
  for name in ('aspp1_depthwise/depthwise_weights', 'aspp0/BatchNorm/gamma',
               'aspp0/BatchNorm/beta', 'logits/semantic/biases',
               'aspp0/BatchNorm/moving_mean'):
    assert not reg.is_regularized(name), name


def test_l2_term_is_half_sum_of_squares():
  w = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
  assert float(reg.l2_term(w, 0.1)) == pytest.approx(0.1 * 30 / 2)
  variables = {'a/weights': w, 'a/biases': w, 'b/depthwise_weights': w}
  assert float(reg.l2_regularization_loss(variables, 0.1)) == pytest.approx(1.5)
  assert float(reg.l2_regularization_loss({'a/biases': w})) == 0.0
  with pytest.raises(ValueError, match='weight_decay'):
    reg.RegularizationSettings(weight_decay=-1.0)
  assert reg.RegularizationSettings().weight_decay == 4e-5


def test_total_loss_across_replicas():
  per_scale = {'merged_logits': tf.constant(2.0), 'logits_0.50': tf.constant(1.0)}
  assert float(training.total_training_loss(per_scale, 0.5, 1)) == 3.5
  # Two replicas, gradients summed: each carries half of task + L2.
  assert float(training.total_training_loss(per_scale, 0.5, 2)) == 1.75


@pytest.fixture(scope='module')
def small_model():
  from deeplab_tf.models import ModelOptions, build_model  # pylint: disable=g-import-not-at-top
  return build_model(ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                                  output_stride=16), fine_tune_batch_norm=True)


def test_model_regularization_and_multipliers(small_model):
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  named = checkpoints.model_variables(small_model)
  regularized = reg.regularized_variables(small_model)
  assert regularized and all(n.endswith('/weights') for n in regularized)
  assert not any('depthwise' in n.rsplit('/', 1)[-1] for n in regularized)
  expected = sum(4e-5 * np.sum(np.square(v.numpy())) / 2
                 for v in regularized.values())
  assert float(reg.l2_regularization_loss(small_model)) == pytest.approx(
      expected, rel=1e-5)
  mult = gm.model_gradient_multipliers(small_model)
  biases = [n for n in named if 'biases' in n]
  assert biases and all(mult[n] == 2.0 for n in biases)
  assert mult['logits/semantic/weights'] == 1.0
  assert all(not n.startswith('MobilenetV2/') or 'biases' in n for n in mult)
  # The multiplier object finds the model's own variables by identity.
  applier = gm.GradientMultiplier.for_model(
      small_model, gm.GradientMultiplierSettings(
          last_layer_gradient_multiplier=10.0))
  assert applier.multiplier_of(named['logits/semantic/biases']) == 20.0
  assert applier.multiplier_of(named['MobilenetV2/Conv/weights']) == 1.0
