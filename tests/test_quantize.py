"""Quantisation-aware DeepLab (--quantize_delay_step): the tf.contrib.quantize graph.

The expected names below are written from the original rewriter (TF 1.15
``tensorflow/contrib/quantize/python/{quantize,fold_batch_norms,quant_ops,
common}.py``) applied to the slim MobileNetV2 DeepLab graph: the conv op's
scope is the context; ``act_quant`` follows the activation (ReLU6, ReLU,
the projection's ``tf.identity``, the logits' BiasAdd); a residual add is the
post-activation bypass of the projection before it; EMA ranges carry
``assign_moving_average``'s zero-debias variables in the training graph.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.evaluation.evaluate import EvalSettings
from deeplab_tf.export import tflite
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import build_model
from deeplab_tf.models import quantize
from deeplab_tf.models.variable_names import model_variables

# The zoo 8-bit model's head (mobilenet_v2, image pooling + aspp0, no atrous
# branches, no decoder), small: 49x49 at output stride 16 (4x4 features, an
# even size, so the atrous layers' TF1 op output is the feature map itself).
OPTIONS = ModelOptions(model_variant='mobilenet_v2', crop_size=(49, 49),
                       output_stride=16, depth_multiplier=0.25,
                       outputs_to_num_classes={'semantic': 4})
EMA_STATE = ('min/biased', 'min/local_step', 'max/biased', 'max/local_step')


def _range_names(scope, ema):
  names = [scope + '/min', scope + '/max']
  return names + [scope + '/' + s for s in EMA_STATE] if ema else names


def _conv_names(scope, ema=True):
  return (_range_names(scope + '/weights_quant', False)
          + _range_names(scope + '/act_quant', ema))


@pytest.fixture(scope='module')
def models():
  """Float and quantised training models with the same (non-trivial) weights."""
  float_model = build_model(OPTIONS, fine_tune_batch_norm=True)
  qat = quantize.build_quantized_model(OPTIONS, quant_delay=2)
  float_vars, qat_vars = model_variables(float_model), model_variables(qat)
  rng = np.random.default_rng(0)
  for name, var in float_vars.items():
    shape = tuple(var.shape)
    if name.endswith('moving_variance'):
      var.assign(rng.uniform(0.5, 2.0, shape))
    elif name.endswith('moving_mean'):
      var.assign(rng.normal(0, 0.2, shape))
    elif name.endswith('gamma'):
      var.assign(rng.uniform(0.5, 1.5, shape))
    elif name.endswith('beta'):
      var.assign(rng.normal(0, 0.1, shape))
    qat_vars[name].assign(var)
  for model in (float_model, qat):   # dropout keeps everything: comparable
    for layer in model.layers:
      if hasattr(layer, 'uniform_source'):
        layer.uniform_source = tf.ones
  return float_model, qat


def test_variable_names_are_the_rewriters(models):
  _, qat = models
  names = set(quantize.quantization_variable_names(qat))
  expected = (
      # layer_1: conv + BN + ReLU6.
      _conv_names('MobilenetV2/Conv')
      # expanded_conv (no expansion): depthwise + ReLU6, linear projection.
      + _conv_names('MobilenetV2/expanded_conv/depthwise')
      + _conv_names('MobilenetV2/expanded_conv/project')
      # expanded_conv_2: expand, depthwise, projection, then the residual
      # add quantised under the block scope.
      + _conv_names('MobilenetV2/expanded_conv_2/expand')
      + _conv_names('MobilenetV2/expanded_conv_2/depthwise')
      + _conv_names('MobilenetV2/expanded_conv_2/project')
      + _range_names('MobilenetV2/expanded_conv_2/post_activation_bypass_quant',
                     True)
      # ASPP of the zoo model and the logits (act_quant after the BiasAdd).
      + _conv_names('image_pooling') + _conv_names('aspp0')
      + _conv_names('concat_projection') + _conv_names('logits/semantic')
      + ['fake_quantization_step'])
  assert set(expected) <= names, sorted(set(expected) - names)
  # Nothing else: 55 convs x 8, 10 residual adds x 6, the step.
  assert len(names) == 55 * 8 + 10 * 6 + 1
  residual = sorted(n.split('/')[1] for n in names
                    if 'post_activation_bypass_quant/min' in n
                    and n.endswith('/min'))
  assert residual == sorted('expanded_conv_%d' % k
                            for k in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15))
  assert not any('conv_quant' in n or 'add_quant' in n for n in names)
  # The float variables keep their names; the ranges are not trained.
  float_names = set(model_variables(models[0]))
  assert float_names == set(model_variables(qat)) - names
  assert not any(any(s in w.path for s in ('min', 'max', 'step'))
                 for w in qat.trainable_weights)
  # create_eval_graph: the ranges only (no EMA state, no step).
  predictor = quantize.build_quantized_predictor(OPTIONS)
  eval_names = set(quantize.quantization_variable_names(predictor))
  assert eval_names == {n for n in names if not n.endswith(
      ('/biased', '/local_step')) and n != 'fake_quantization_step'}


def test_decoder_and_separable_aspp_names():
  options = OPTIONS.replace(atrous_rates=(1, 2, 3), decoder_output_stride=(4,),
                            crop_size=(33, 33))
  names = set(quantize.quantization_variable_names(
      quantize.build_quantized_predictor(options)))
  for scope in ('aspp1_depthwise', 'aspp1_pointwise', 'aspp3_pointwise',
                'decoder/feature_projection0', 'decoder/decoder_conv0_depthwise',
                'decoder/decoder_conv1_pointwise', 'logits/semantic'):
    assert set(_conv_names(scope, ema=False)) <= names, scope


def test_tf1_checkpoint_with_the_original_names_loads(tmp_path):
  """A checkpoint written by a TF1 Saver, as the zoo's 8-bit ones, loads by name."""
  predictor = quantize.build_quantized_predictor(OPTIONS)
  wanted = model_variables(predictor)
  rng = np.random.default_rng(1)
  values = {n: rng.uniform(0.1, 1.0, tuple(v.shape)).astype(np.float32)
            for n, v in wanted.items()}
  # The training graph's extras: EMA state, Momentum slots, the step.
  extras = {'MobilenetV2/Conv/act_quant/min/biased': np.float32(0.5),
            'MobilenetV2/Conv/weights/Momentum': values[
                'MobilenetV2/Conv/weights'],
            'global_step': np.int64(3000)}
  prefix = str(tmp_path / 'model.ckpt')
  with tf.Graph().as_default():
    variables = [tf.compat.v1.get_variable(n, initializer=v)
                 for n, v in {**values, **extras}.items()]
    saver = tf.compat.v1.train.Saver(variables)
    with tf.compat.v1.Session() as session:
      session.run(tf.compat.v1.global_variables_initializer())
      saver.save(session, prefix, write_meta_graph=False)
  report = checkpoints.load_tf1_checkpoint(predictor, prefix, strict=True)
  assert len(report.loaded) == len(wanted) and not report.missing
  assert report.unused == sorted(n for n in extras if n != 'global_step')
  for name in ('MobilenetV2/Conv/weights_quant/max', 'aspp0/act_quant/min',
               'logits/semantic/act_quant/max',
               'MobilenetV2/expanded_conv_2/post_activation_bypass_quant/min'):
    np.testing.assert_array_equal(wanted[name].numpy(), values[name])
  # The training model reads it too: the EMA state starts fresh.
  fresh = quantize.build_quantized_model(OPTIONS, quant_delay=0)
  report = checkpoints.load_tf1_checkpoint(fresh, prefix, strict=False)
  assert all(n.endswith(('/biased', '/local_step')) for n in report.missing)


def test_quant_delay_bypasses_quantisation_but_collects_ranges(models):
  float_model, qat = models
  qat_vars = model_variables(qat)
  x = tf.constant(np.random.default_rng(2).uniform(0, 255, (2, 49, 49, 3)),
                  tf.float32)
  start = {n: qat_vars[n].numpy() for n in ('MobilenetV2/Conv/act_quant/max',
                                            'logits/semantic/act_quant/min')}
  assert qat_vars['fake_quantization_step'].numpy() == 0
  # Step 1 < quant_delay 2: the folded graph computes what BatchNorm does.
  expected = float_model(x, training=True)['merged_logits']
  got = qat(x, training=True)['merged_logits']
  assert qat_vars['fake_quantization_step'].numpy() == 1
  scale = float(tf.reduce_max(tf.abs(expected)))
  np.testing.assert_allclose(got, expected, atol=2e-4 * scale)
  float_vars = model_variables(float_model)
  for name in ('MobilenetV2/Conv/BatchNorm/moving_mean',
               'aspp0/BatchNorm/moving_variance'):
    np.testing.assert_allclose(qat_vars[name].numpy(), float_vars[name].numpy(),
                               rtol=1e-5, atol=1e-6)
  # ... while every range was collected: the EMA's first (debiased) value is
  # the batch's range, the weights' the folded weights'.
  for name, value in start.items():
    assert qat_vars[name].numpy() != value
  assert qat_vars['MobilenetV2/Conv/act_quant/min/local_step'].numpy() == 1
  low = qat_vars['logits/semantic/act_quant/min'].numpy()
  high = qat_vars['logits/semantic/act_quant/max'].numpy()
  # (merged_logits: the logits through an align_corners resize to their own
  # size, equal to float rounding.)
  assert low == pytest.approx(min(float(tf.reduce_min(got)), 0.0), abs=1e-5)
  assert high == pytest.approx(max(float(tf.reduce_max(got)), 0.0), abs=1e-5)
  # Step 2 = quant_delay: quantised. The logits lie on the 8-bit grid of
  # their range (merged_logits = the logits, resized to their own size).
  got = qat(x, training=True)['merged_logits'].numpy()
  low = float(qat_vars['logits/semantic/act_quant/min'].numpy())
  high = float(qat_vars['logits/semantic/act_quant/max'].numpy())
  step = (high - low) / 255
  assert quantize.quantization_grid_error(got, low, high) < 1e-3 * step
  assert len(np.unique(got)) <= 256


def test_inference_graph_uses_the_stored_ranges(models):
  """create_eval_graph: folded with the moving statistics, stored ranges, on the grid."""
  _, qat = models
  predictor = quantize.build_quantized_predictor(OPTIONS)
  for name, var in model_variables(predictor).items():
    var.assign(model_variables(qat)[name])
  x = np.random.default_rng(3).uniform(0, 255, (1, 49, 49, 3)).astype(
      np.float32)
  before = {n: v.numpy() for n, v in model_variables(predictor).items()}
  logits = predictor(x)['merged_logits'].numpy()
  after = {n: v.numpy() for n, v in model_variables(predictor).items()}
  assert all(np.array_equal(before[n], after[n]) for n in before)
  named = model_variables(predictor)
  low = float(named['logits/semantic/act_quant/min'].numpy())
  high = float(named['logits/semantic/act_quant/max'].numpy())
  assert quantize.quantization_grid_error(logits, low, high) < 1e-3 * (
      high - low) / 255
  # Weights: the folded kernel is quantised on the narrow grid of its range.
  layer = predictor.get_layer('MobilenetV2.Conv')
  folded = layer.kernel * layer.gamma * tf.math.rsqrt(
      tf.convert_to_tensor(layer.moving_variance) + layer.batch_norm[0])
  w_low = float(named['MobilenetV2/Conv/weights_quant/min'].numpy())
  w_high = float(named['MobilenetV2/Conv/weights_quant/max'].numpy())
  quantised = quantize.fake_quant(folded, w_low, w_high, narrow_range=True)
  assert quantize.quantization_grid_error(quantised, w_low, w_high,
                                          narrow_range=True) < 1e-6


def test_ema_is_zero_debiased_as_assign_moving_average():
  variable, biased, step = (tf.Variable(6.0), tf.Variable(0.0),
                            tf.Variable(0.0))
  values = [2.0, 4.0, -1.0]
  got = [float(quantize.ema_update(variable, biased, step, v, decay=0.9))
         for v in values]
  ema, expected = 0.0, []
  for t, v in enumerate(values, 1):
    ema = 0.9 * ema + 0.1 * v
    expected.append(ema / (1 - 0.9 ** t))
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got[0] == pytest.approx(2.0, rel=1e-6)   # the value, not the init 6


def test_atrous_fold_counts_the_space_to_batch_output():
  """TF1 runs atrous convs on space-to-batch blocks: n is the padded size."""
  layer = quantize.QuantizedDepthwiseConv2D(
      3, dilation_rate=2, padding='same', use_bias=False,
      batch_norm=(1e-3, 0.997, True), is_training=True)
  y = tf.zeros([2, 5, 7, 4])
  assert float(layer._op_output_size(y)) == 2 * 6 * 8
  plain = quantize.QuantizedConv2D(4, 1, padding='same', use_bias=False,
                                   batch_norm=(1e-3, 0.997, True))
  assert float(plain._op_output_size(y)) == 2 * 5 * 7


def test_unsupported_settings_are_refused_with_the_reason():
  with pytest.raises(quantize.QuantizationError, match='multi-clone'):
    quantize.check_supported(OPTIONS, num_replicas=2)
  with pytest.raises(quantize.QuantizationError, match="'xception_65'"):
    quantize.check_supported(OPTIONS.replace(model_variant='xception_65'))
  with pytest.raises(quantize.QuantizationError, match='one input scale'):
    quantize.check_supported(OPTIONS.replace(image_pyramid=(0.5, 1.0)))
  with pytest.raises(quantize.QuantizationError,
                     match='not supported with multi-scale test'):
    quantize.build_quantized_predictor(OPTIONS, eval_scales=(0.5, 1.0))
  with pytest.raises(quantize.QuantizationError,
                     match='not supported with multi-scale test'):
    EvalSettings(eval_scales=(0.75, 1.0), quantize=True)


def test_tflite_int8_and_uint8_keep_the_keras_labels(models):
  """No calibration: the learned ranges; labels agree with the quantised graph."""
  _, qat = models
  qat_vars = model_variables(qat)
  x = tf.constant(np.random.default_rng(4).uniform(0, 255, (2, 49, 49, 3)),
                  tf.float32)
  for _ in range(3):   # ranges of real activations (ours, quantised)
    qat(x, training=True)
  predictor = quantize.build_quantized_predictor(OPTIONS, quantize_input=True)
  for name, var in model_variables(predictor).items():
    var.assign(qat_vars[name])
  image = np.random.default_rng(5).uniform(0, 255, (40, 45, 3)).astype(
      np.uint8)
  padded = tflite.pad_image(image, (49, 49), 'mobilenet_v2')
  reference = predictor(padded)['semantic'].numpy()[0, :40, :45]
  int8 = tflite.convert(predictor, 'int8')
  labels, probabilities = tflite.run_tflite(int8, image, 'mobilenet_v2')
  assert probabilities.shape == (40, 45, 4)
  assert np.mean(labels == reference) > 0.9
  runner = tflite.interpreter(int8)
  kinds = {d['op_name'] for d in runner._get_ops_details()}  # pylint: disable=protected-access
  assert {'CONV_2D', 'DEPTHWISE_CONV_2D', 'ADD'} <= kinds
  uint8 = tflite.convert(predictor, 'uint8')
  runner = tflite.interpreter(uint8)
  assert runner.get_input_details()[0]['dtype'] == np.uint8
  labels, probabilities = tflite.run_tflite(uint8, image, 'mobilenet_v2')
  assert probabilities is None
  assert np.mean(labels == reference) > 0.9
  # The learned (asymmetric) weight ranges survive in uint8.
  weights = [runner._get_tensor_details(d['inputs'][1], 0)  # pylint: disable=protected-access
             for d in runner._get_ops_details() if d['op_name'] == 'CONV_2D']  # pylint: disable=protected-access
  assert any(int(w['quantization'][1]) != 128 for w in weights)
  with pytest.raises(tflite.ExportError, match='converts to int8 or uint8'):
    tflite.convert(predictor, 'float')


_SCRIPT = textwrap.dedent('''
    import importlib, sys
    from absl import app, flags
    module = importlib.import_module('deeplab_tf.' + sys.argv[1])
    FLAGS = flags.FLAGS
    for line in sys.stdin.read().strip().splitlines():
      argv = [sys.argv[1]] + line.split()
      FLAGS.unparse_flags()
      try:
        FLAGS(argv)
        rc = module.main(argv[:1])
      except app.UsageError as e:
        print('USAGE: %s' % e, file=sys.stderr)
        rc = 2
      print('CASE rc=%s' % rc, file=sys.stderr, flush=True)
    ''')


def _run_script(module, lines):
  """Runs ``module.main`` once per line of flags in one process; (rcs, stderr)."""
  proc = subprocess.run(
      [sys.executable, '-c', _SCRIPT, module], input='\n'.join(lines),
      capture_output=True, text=True, timeout=900,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  rcs = [l.split('rc=')[1] for l in proc.stderr.splitlines()
         if l.startswith('CASE rc=')]
  return rcs, proc.stderr


@pytest.mark.slow
def test_train_eval_export_scripts(tmp_path):
  """train.py --quantize_delay_step on tiny records, then eval and export."""
  from deeplab_tf.data import quickstart  # pylint: disable=g-import-not-at-top
  records = tmp_path / 'records'
  quickstart.write_quickstart(str(records), num_train=4, num_val=2, height=48,
                              width=48)
  dataset = str(records / quickstart.DESCRIPTOR_FILE)
  logdir = tmp_path / 'train'
  model = ('--model_variant=mobilenet_v2 --depth_multiplier=0.25 '
           '--output_stride=16')
  train = ('--dataset=%s --dataset_dir=%s --train_logdir=%s %s '
           '--train_crop_size=49,49 --train_batch_size=2 '
           '--training_number_of_steps=2 --base_learning_rate=0.001 '
           '--log_steps=1 --quantize_delay_step=1'
           % (dataset, records, logdir, model))
  rcs, err = _run_script('train', [
      train, train.replace('--quantize_delay_step=1',
                           '--quantize_delay_step=0 --num_clones=2')])
  assert rcs == ['0', '2'], err[-5000:]
  assert "Quantization doesn't support multi-clone yet" in err
  evaluate = ('--dataset=%s --dataset_dir=%s --checkpoint_dir=%s '
              '--eval_logdir=%s --eval_crop_size=49,49 '
              '--max_number_of_evaluations=1 --quantize_delay_step=0 %s'
              % (dataset, records, logdir, tmp_path / 'eval', model))
  rcs, err = _run_script('eval', [
      evaluate, evaluate + ' --eval_scales=0.5 --eval_scales=1.0'])
  assert rcs == ['0', '2'], err[-5000:]
  assert 'Quantize mode is not supported with multi-scale test' in err
  assert 'quantised graph' in err
  export = ('--checkpoint_path=%s --export_path=%s --crop_size=49,49 '
            '--quantize_delay_step=0 --export_formats=saved_model,tflite '
            '--tflite_quantization=int8,uint8 --num_classes=%d %s'
            % (logdir, tmp_path / 'export', 6, model))
  rcs, err = _run_script('export_model', [export])
  assert rcs == ['0'], err[-5000:]
  prefix = tf.train.latest_checkpoint(str(logdir))
  keys = ' '.join(k for k, _ in tf.train.list_variables(prefix))
  for name in ('fake_quantization_step', 'MobilenetV2/Conv/act_quant/min',
               'logits/semantic/weights_quant/max'):
    assert name.replace('/', '.S') in keys or name in keys, name
  metrics = json.loads((tmp_path / 'eval' / 'metrics-2.json').read_text())
  assert 0.0 <= metrics['miou'] <= 1.0
  info = json.loads((tmp_path / 'export' / 'deeplab_export.json').read_text())
  assert set(info['tflite']) == {'int8', 'uint8'}
  assert 'no calibration' in info['tflite']['int8']['calibration']
  # The exported int8 model against the quantised Keras graph of the checkpoint.
  options = OPTIONS.replace(outputs_to_num_classes={'semantic': 6})
  predictor = quantize.build_quantized_predictor(options, quantize_input=True)
  checkpoints.restore_model(predictor, prefix)
  image = np.random.default_rng(6).uniform(0, 255, (45, 49, 3)).astype(
      np.uint8)
  reference = predictor(tflite.pad_image(image, (49, 49), 'mobilenet_v2'))[
      'semantic'].numpy()[0, :45]
  for kind in ('int8', 'uint8'):
    labels, _ = tflite.run_tflite(
        str(tmp_path / 'export' / ('deeplab_%s.tflite' % kind)), image,
        'mobilenet_v2')
    assert np.mean(labels == reference) > 0.9, kind
