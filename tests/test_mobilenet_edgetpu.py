"""The EdgeTPU-MobileNet backbone (mobilenet_edgetpu) of EdgeTPU-DeepLab and -slim.

Expected values are written out by hand from the original sources (slim
``nets/mobilenet/mobilenet_v3.py`` V3_EDGETPU / mbv3_fused / mbv3_op,
``conv_blocks.py`` expanded_conv, ``mobilenet.py`` mobilenet_base, DeepLab
``core/feature_extractor.py`` mobilenet_edgetpu) and from the original-graph
fixture ``shared/reference/variants/case_K.json``, not read back from
``deeplab_tf``'s own spec table.
"""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from deeplab_tf import checkpoints
from deeplab_tf import conformance
from deeplab_tf.core import pixels
from deeplab_tf.models import ModelOptions, build_model
from deeplab_tf.models import backbones
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.options import OptionsError
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings
from conftest import REFERENCE_DIR
from test_trainer import synthetic_dataset_fn

VARIANT = 'mobilenet_edgetpu'
SCOPE = 'MobilenetEdgeTPU'
BN_LEAVES = ('beta', 'gamma', 'moving_mean', 'moving_variance')
CASE_K = os.path.join(REFERENCE_DIR or '', 'variants', 'case_K.json')

# --- the spec at depth multiplier 0.75, by hand --------------------------------
# One row per block after the stem, in layer order (layer_2 ..):
#   (input depth, expanded depth or None, output depth, kernel, fused).
# Outputs: _make_divisible(n * 0.75, 8, 8): 16 -> 12 -> 16, 32 -> 24,
# 48 -> 36 -> 40, 96 -> 72, 160 -> 120, 192 -> 144; stem 32 -> 24, Conv_1
# 1280 -> 960. Expansions: _make_divisible(input * factor, 8) of the actual
# input depth; layer_2 expands by 1 (24 -> 24, not wider): no expansion.
DM075_BLOCKS = (
    [(24, None, 16, 3, True)]                                  # layer_2
    + [(16, 128, 24, 3, True)]                                 # layer_3 (s2)
    + [(24, 96, 24, 3, True)] * 3                              # layer_4..6
    + [(24, 192, 40, 3, True)]                                 # layer_7 (s2)
    + [(40, 160, 40, 3, True)] * 3                             # layer_8..10
    + [(40, 320, 72, 3, False)]                                # layer_11 (s2)
    + [(72, 288, 72, 3, False)] * 3                            # layer_12..14
    + [(72, 576, 72, 3, False)]                                # layer_15, no residual
    + [(72, 288, 72, 3, False)] * 3                            # layer_16..18
    + [(72, 576, 120, 5, False)]                               # layer_19 (s2)
    + [(120, 480, 120, 5, False)] * 3                          # layer_20..22
    + [(120, 960, 144, 3, False)])                             # layer_23
DM075_STEM, DM075_LAST = 24, 960


def _block_scope(i):
  return '%s/%s' % (SCOPE, 'expanded_conv' if i == 0 else 'expanded_conv_%d' % i)


def _expected_variables(stem, blocks, last):
  names = {}

  def conv(scope, shape):
    names[scope + '/weights'] = shape
    for leaf in BN_LEAVES:
      names['%s/BatchNorm/%s' % (scope, leaf)] = (shape[-1],)

  conv(SCOPE + '/Conv', (3, 3, 3, stem))
  for i, (cin, exp, cout, k, fused) in enumerate(blocks):
    scope = _block_scope(i)
    if fused:
      if exp is not None:
        conv(scope + '/expand', (k, k, cin, exp))
    else:
      conv(scope + '/expand', (1, 1, cin, exp))
      names[scope + '/depthwise/depthwise_weights'] = (k, k, exp, 1)
      for leaf in BN_LEAVES:
        names['%s/depthwise/BatchNorm/%s' % (scope, leaf)] = (exp,)
    conv(scope + '/project', (1, 1, exp or cin, cout))
  conv(SCOPE + '/Conv_1', (1, 1, blocks[-1][2], last))
  return names


# --- helpers -------------------------------------------------------------------
def _backbone_model(output_stride, size=65, **kwargs):
  """Backbone only: {'features': ..., end point: ...} on normalised images."""
  backbone = backbones.get_backbone(VARIANT)
  images = keras.Input((size, size, 3), batch_size=1)
  features, end_points = backbone.build(LayerBuilder(), images, output_stride,
                                        scope=backbone.scope, **kwargs)
  return keras.Model(images, dict(end_points, features=features))


def _fill(model, seed=0):
  """Deterministic non-trivial weights (scaled like the reference fixtures)."""
  rng = np.random.default_rng(seed)
  for name, var in sorted(checkpoints.model_variables(model).items()):
    shape = tuple(var.shape)
    leaf = name.rsplit('/', 1)[1]
    if leaf == 'moving_variance':
      value = rng.uniform(0.5, 1.5, shape)
    elif leaf == 'gamma':
      value = 1 + 0.1 * rng.uniform(-1, 1, shape)
    elif leaf in ('beta', 'biases', 'moving_mean'):
      value = 0.1 * rng.standard_normal(shape)
    elif leaf == 'depthwise_weights':
      value = rng.standard_normal(shape) / np.sqrt(shape[0] * shape[1])
    else:
      value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
    var.assign(value.astype(np.float32))


def _variables(model):
  return {k: tuple(v.shape)
          for k, v in checkpoints.model_variables(model).items()}


def _bn(x, w, scope, eps=1e-3):
  g, b = w[scope + '/BatchNorm/gamma'], w[scope + '/BatchNorm/beta']
  m = w[scope + '/BatchNorm/moving_mean']
  v = w[scope + '/BatchNorm/moving_variance']
  return g * (x - m) / np.sqrt(v + eps) + b


def _conv_same(x, kernel):
  """Stride-1 SAME conv in numpy (odd kernel)."""
  k = kernel.shape[0]
  p = k // 2
  padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  h, w = x.shape[1:3]
  out = 0.0
  for i in range(k):
    for j in range(k):
      out = out + np.einsum('nhwc,cd->nhwd', padded[:, i:i + h, j:j + w],
                            kernel[i, j])
  return out


def _case_k():
  with open(CASE_K) as f:
    return json.load(f)


# --- names and sizes -------------------------------------------------------------
@pytest.fixture(scope='module')
def case_k_model():
  return build_model(ModelOptions.from_dict(_case_k()['model_options']))


def test_variable_names_equal_the_original_graph(case_k_model):
  """Every variable of the original graph of case K, by name and shape."""
  with open(os.path.join(os.path.dirname(CASE_K), 'manifest_K.json')) as f:
    manifest = {v['name']: tuple(v['shape']) for v in json.load(f)
                if v['name'] != 'global_step'}
  got = _variables(case_k_model)
  assert sorted(got) == sorted(manifest)
  assert got == manifest
  # The fused blocks: a 3x3 expansion and no depthwise; the first has none.
  assert got[SCOPE + '/expanded_conv_1/expand/weights'] == (3, 3, 16, 128)
  assert not any(k.startswith(SCOPE + '/expanded_conv_8/depthwise') for k in got)
  assert not any(k.startswith(SCOPE + '/expanded_conv/expand') for k in got)
  assert got[SCOPE + '/expanded_conv_17/depthwise/depthwise_weights'] == (
      5, 5, 768, 1)
  assert got[SCOPE + '/Conv_1/weights'] == (1, 1, 192, 1280)
  trainable = sum(int(np.prod(v.shape)) for v in case_k_model.trainable_weights)
  total = sum(int(np.prod(s)) for s in got.values())
  case = _case_k()
  assert total == case['num_params_all_float_vars'] == 3643699
  # BatchNorm frozen (the default) leaves gamma/beta trainable, as the original.
  assert trainable == case['num_params_excluding_bn_moving_stats'] == 3603283


def test_depth_multiplier_075_by_hand():
  """EdgeTPU-DeepLab-slim's backbone: every layer rounded to 8, Conv_1 too."""
  model = _backbone_model(32, size=33, depth_multiplier=0.75, divisible_by=1)
  got = _variables(model)
  expected = _expected_variables(DM075_STEM, DM075_BLOCKS, DM075_LAST)
  assert sorted(got) == sorted(expected)
  assert got == expected
  assert model.output['features'].shape == (1, 2, 2, 960)


def test_decoder_is_refused_as_the_original_cannot_build_it():
  backbone = backbones.get_backbone(VARIANT)
  assert backbone.scope == SCOPE and backbone.decoder_end_points == {}
  assert not backbone.end_points_scoped and backbone.uses_depth_multiplier
  with pytest.raises(OptionsError, match="decoder_output_stride 4 is not "
                     "available for 'mobilenet_edgetpu'"):
    build_model(ModelOptions(model_variant=VARIANT, crop_size=(33, 33),
                             decoder_output_stride=(4,)))


def test_input_normalisation_and_pad_value():
  assert backbones.get_backbone(VARIANT).preprocess == backbones.ZERO_MEAN_UNIT_RANGE
  assert pixels.mean_pixel(VARIANT) == [127.5, 127.5, 127.5]


# --- strides and rates -------------------------------------------------------------
@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_output_shapes(output_stride):
  model = _backbone_model(output_stride)
  # 65 -> 33 (Conv) -> 17 (layer_3) -> 9 (layer_7) -> 5 (layer_11) -> 3 (layer_19).
  size_at = {2: 33, 4: 17, 8: 9, 16: 5, 32: 3}
  s = size_at[output_stride]
  out = model.output
  assert out['features'].shape == (1, s, s, 1280)
  assert out['layer_24'].shape == (1, s, s, 1280)
  assert out['layer_2'].shape == (1, 33, 33, 16)
  assert out['layer_3/expansion_output'].shape == (1, 17, 17, 128)
  assert out['layer_7'].shape == (1, 9, 9, 48)
  assert out['layer_11/depthwise_output'].shape == (
      1, size_at[min(16, output_stride)], size_at[min(16, output_stride)], 384)
  assert out['layer_23'].shape == (1, s, s, 192)
  assert 'layer_3/depthwise_output' not in out   # fused: no depthwise


def test_atrous_rates_os8_and_os16():
  def dw(model, i):
    layer = model.get_layer('%s.expanded_conv_%d.depthwise' % (SCOPE, i))
    return tuple(layer.strides), tuple(layer.dilation_rate)

  os8 = _backbone_model(8, size=33)
  assert dw(os8, 9) == ((1, 1), (1, 1))      # layer_11: stride 16 dropped
  assert dw(os8, 10) == ((1, 1), (2, 2))     # layers 12..18: rate 2
  assert dw(os8, 16) == ((1, 1), (2, 2))
  assert dw(os8, 17) == ((1, 1), (2, 2))     # layer_19: stride 32 dropped
  assert dw(os8, 18) == ((1, 1), (4, 4))     # layers 20..23: rate 4
  assert dw(os8, 21) == ((1, 1), (4, 4))
  # The fused 3x3 expansions keep their stride and are never dilated.
  expand = os8.get_layer(SCOPE + '.expanded_conv_5.expand')
  assert tuple(expand.strides) == (2, 2) and tuple(expand.dilation_rate) == (1, 1)
  assert tuple(os8.get_layer(SCOPE + '.Conv_1').dilation_rate) == (1, 1)

  os16 = _backbone_model(16, size=33)
  assert dw(os16, 9) == ((2, 2), (1, 1))
  assert dw(os16, 16) == ((1, 1), (1, 1))
  assert dw(os16, 17) == ((1, 1), (1, 1))    # layer_19 de-strided, rate 1
  assert dw(os16, 18) == ((1, 1), (2, 2))
  assert dw(os16, 21) == ((1, 1), (2, 2))


# --- numerics ----------------------------------------------------------------------
def test_fused_block_residuals_and_relu_against_numpy():
  model = _backbone_model(32, size=33)
  _fill(model, seed=1)
  # Large Conv_1 gammas push its pre-activations past 6: ReLU, not ReLU6.
  gamma = model.get_layer(SCOPE + '.Conv_1.BatchNorm').gamma
  gamma.assign(gamma * 60.0)
  w = {k: v.numpy().astype(np.float64)
       for k, v in checkpoints.model_variables(model).items()}
  x = np.random.default_rng(2).uniform(-1, 1, (1, 33, 33, 3)).astype(np.float32)
  out = {k: np.asarray(v, np.float64) for k, v in model(x).items()}

  # layer_2 (expanded_conv): no expansion, linear 1x1 projection, no residual.
  scope = SCOPE + '/expanded_conv'
  proj = _bn(np.einsum('nhwc,cd->nhwd', out['layer_1'],
                       w[scope + '/project/weights'][0, 0]), w, scope + '/project')
  np.testing.assert_allclose(out['layer_2'], proj, rtol=1e-5, atol=1e-5)

  # layer_4 (expanded_conv_2): 3x3 expansion + BN + ReLU -> 1x1 + BN, + input.
  scope = SCOPE + '/expanded_conv_2'
  expanded = np.maximum(_bn(_conv_same(out['layer_3'],
                                       w[scope + '/expand/weights']),
                            w, scope + '/expand'), 0.0)
  np.testing.assert_allclose(out['layer_4/expansion_output'], expanded,
                             rtol=1e-5, atol=1e-5)
  proj = _bn(np.einsum('nhwc,cd->nhwd', expanded,
                       w[scope + '/project/weights'][0, 0]), w, scope + '/project')
  np.testing.assert_allclose(out['layer_4'], proj + out['layer_3'],
                             rtol=1e-5, atol=1e-5)

  # layer_15 (expanded_conv_13, 96 -> 96 at stride 1): residual switched off;
  # its neighbour layer_16 keeps one.
  np.testing.assert_array_equal(out['layer_15'], out['layer_15/projection_output'])
  np.testing.assert_allclose(
      out['layer_16'], out['layer_16/projection_output'] + out['layer_15'],
      rtol=1e-6, atol=1e-6)
  # Depthwise activations are ReLU too (non-negative).
  assert out['layer_12/depthwise_output'].min() >= 0.0

  # layer_24 (Conv_1): 1x1 conv -> BN -> ReLU, unbounded.
  pre = _bn(np.einsum('nhwc,cd->nhwd', out['layer_23'],
                      w[SCOPE + '/Conv_1/weights'][0, 0]), w, SCOPE + '/Conv_1')
  np.testing.assert_allclose(out['features'], np.maximum(pre, 0.0),
                             rtol=1e-5, atol=1e-4)
  assert out['features'].max() > 6.0


# --- training ------------------------------------------------------------------------
def test_training_step_updates_the_fused_blocks(tmp_path):
  options = ModelOptions(model_variant=VARIANT, crop_size=(33, 33),
                         output_stride=16, depth_multiplier=0.75,
                         aspp_convs_filters=32,
                         outputs_to_num_classes={'semantic': 3})
  settings = TrainSettings(
      train_logdir=str(tmp_path), train_batch_size=2, log_steps=1,
      fine_tune_batch_norm=True,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=2))
  trainer = Trainer(options, settings, synthetic_dataset_fn(2))
  trainer.initialize()
  named = checkpoints.model_variables(trainer.model)
  watched = (SCOPE + '/expanded_conv_1/expand/weights',
             SCOPE + '/expanded_conv_9/depthwise/depthwise_weights',
             SCOPE + '/Conv/BatchNorm/moving_mean')
  before = {k: named[k].numpy().copy() for k in watched}
  metrics = trainer.train()
  assert trainer.step == 2
  assert np.isfinite(metrics['total_loss'])
  for name in watched:
    assert not np.array_equal(named[name].numpy(), before[name]), name


# --- against the original ------------------------------------------------------------
def test_case_k_conformance():
  """EdgeTPU-DeepLab (OS 16, 19 classes): the original graph's logits."""
  result = conformance.check_case(CASE_K)
  print(result.report())
  assert result.passed, result.report()
  assert {'checkpoint', 'logits', 'merged_logits', 'labels'} <= {
      c.name for c in result.checks}


def test_model_stats_match_the_original_graph():
  """Params equal the original graph's; multiply-adds its 7.07 G at 513x513."""
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.model_stats', '--model_variant=' + VARIANT,
       '--aspp_convs_filters=256', '--output_stride=16', '--num_classes=19',
       '--crop_size=513,513'], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  stats = json.loads(proc.stdout.strip().splitlines()[-1])
  case = _case_k()
  assert stats['trainable_params'] == case['num_params_excluding_bn_moving_stats']
  assert stats['total_params'] == case['num_params_all_float_vars']
  assert stats['multiply_adds'] == pytest.approx(
      case['perf_513x513']['multiply_adds_conv_depthwise'], rel=0.005)
