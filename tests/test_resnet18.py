"""ResNet-18 backbones (resnet_v1_18, resnet_v1_18_beta) of the original feature_extractor.

Expected values are written out by hand from the original sources (DeepLab
``core/resnet_v1_beta.py``: ``lite_bottleneck``, ``resnet_v1_small_beta_block``,
``resnet_v1_18`` / ``resnet_v1_18_beta`` with ``root_depth_multiplier=0.25``;
``core/feature_extractor.py``: name_scope, networks_to_feature_maps,
_PREPROCESS_FN, mean_pixel; slim ``resnet_utils.stack_blocks_dense``) and from
the original-graph fixture ``shared/reference/variants/case_L.json``, not read
back from ``deeplab_tf``'s own block tables.
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
from deeplab_tf.models import initializers
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.options import OptionsError
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings
from conftest import REFERENCE_DIR
from test_trainer import synthetic_dataset_fn

SCOPE = 'resnet_v1_18'
BN_LEAVES = ('beta', 'gamma', 'moving_mean', 'moving_variance')
CASE_L = os.path.join(REFERENCE_DIR or '', 'variants', 'case_L.json')
UNIT = SCOPE + '/block%d/unit_%d/lite_bottleneck_v1'


def _case_l():
  with open(CASE_L) as f:
    return json.load(f)


def _backbone_model(variant, output_stride, size=65, multi_grid=None):
  """Backbone only: {'features': ..., end point: ...} on normalised images."""
  backbone = backbones.get_backbone(variant)
  images = keras.Input((size, size, 3), batch_size=1)
  features, end_points = backbone.build(LayerBuilder(), images, output_stride,
                                        multi_grid=multi_grid,
                                        scope=backbone.scope)
  return keras.Model(images, dict(end_points, features=features))


def _variables(model):
  return {k: tuple(v.shape)
          for k, v in checkpoints.model_variables(model).items()}


def _conv_rate(model, scope):
  layer = model.get_layer(scope.replace('/', '.'))
  return tuple(layer.strides), tuple(layer.dilation_rate)


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
    elif leaf in ('beta', 'moving_mean'):
      value = 0.1 * rng.standard_normal(shape)
    else:
      value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
    var.assign(value.astype(np.float32))


# --- names and sizes -------------------------------------------------------------
@pytest.fixture(scope='module')
def case_l_model():
  return build_model(ModelOptions.from_dict(_case_l()['model_options']))


def test_variable_names_equal_the_original_graph(case_l_model):
  """Every variable of the original graph of case L, by name and shape."""
  with open(os.path.join(os.path.dirname(CASE_L), 'manifest_L.json')) as f:
    manifest = {v['name']: tuple(v['shape']) for v in json.load(f)
                if v['name'] != 'global_step'}
  got = _variables(case_l_model)
  assert sorted(got) == sorted(manifest)
  assert got == manifest
  # Beta root at depth multiplier 0.25: 16/2, 16, 32.
  assert got[SCOPE + '/conv1_1/weights'] == (3, 3, 3, 16)
  assert got[SCOPE + '/conv1_3/weights'] == (3, 3, 16, 32)
  # Basic units: two 3x3 convs; a 1x1 shortcut where the depth changes.
  assert got[UNIT % (1, 1) + '/shortcut/weights'] == (1, 1, 32, 64)
  assert got[UNIT % (1, 1) + '/conv1/weights'] == (3, 3, 32, 64)
  assert got[UNIT % (1, 2) + '/conv2/weights'] == (3, 3, 64, 64)
  assert UNIT % (1, 2) + '/shortcut/weights' not in got
  assert got[UNIT % (4, 1) + '/conv1/weights'] == (3, 3, 256, 512)
  assert not any('/conv3/' in k for k in got)
  assert not any(k.startswith(SCOPE + '/block4/unit_3') for k in got)
  case = _case_l()
  total = sum(int(np.prod(s)) for s in got.values())
  trainable = sum(int(np.prod(v.shape)) for v in case_l_model.trainable_weights)
  assert total == case['num_params_all_float_vars'] == 15308229
  assert trainable == case['num_params_excluding_bn_moving_stats'] == 15295429


def test_non_beta_stem_and_shortcuts():
  """resnet_v1_18: one 7x7/2 conv of 64, so block1/unit_1 has no shortcut conv."""
  got = _variables(_backbone_model('resnet_v1_18', 32, size=33))
  assert got[SCOPE + '/conv1/weights'] == (7, 7, 3, 64)
  assert not any(k.startswith(SCOPE + '/conv1_') for k in got)
  assert UNIT % (1, 1) + '/shortcut/weights' not in got
  for block, depth_in, depth in ((2, 64, 128), (3, 128, 256), (4, 256, 512)):
    assert got[UNIT % (block, 1) + '/shortcut/weights'] == (1, 1, depth_in, depth)
    assert UNIT % (block, 2) + '/shortcut/weights' not in got
  convs = [k for k in got if k.endswith('/weights')]
  assert len(convs) == 1 + 8 * 2 + 3   # stem, 8 units of 2 convs, 3 shortcuts
  assert len(got) == 5 * len(convs)    # each conv with its BatchNorm


def test_registry_input_normalisation_and_pad_value():
  plain = backbones.get_backbone('resnet_v1_18')
  beta = backbones.get_backbone('resnet_v1_18_beta')
  assert plain.scope == beta.scope == SCOPE
  assert plain.preprocess == backbones.SUBTRACT_IMAGENET_MEAN
  assert beta.preprocess == backbones.ZERO_MEAN_UNIT_RANGE
  # The original mean_pixel lists only resnet_v1_50/101: both pad with 127.5.
  assert pixels.mean_pixel('resnet_v1_18') == [127.5] * 3
  assert pixels.mean_pixel('resnet_v1_18_beta') == [127.5] * 3
  for b in (plain, beta):
    assert b.uses_multi_grid and b.multi_grid_length == 2
    assert b.decoder_end_points == {
        s: ('block%d/unit_1/lite_bottleneck_v1/conv2' % i,)
        for s, i in ((4, 1), (8, 2), (16, 3))}


def test_multi_grid_takes_two_rates():
  with pytest.raises(OptionsError, match=r"multi_grid must have 2 rates, got "
                     r"\[1, 2, 4\] \(model_variant 'resnet_v1_18_beta'\)"):
    build_model(ModelOptions(model_variant='resnet_v1_18_beta',
                             crop_size=(33, 33), multi_grid=(1, 2, 4)))
  with pytest.raises(OptionsError, match='multi_grid must have 3 rates'):
    build_model(ModelOptions(model_variant='resnet_v1_50',
                             crop_size=(33, 33), multi_grid=(1, 2)))


def test_new_convs_use_the_resnet_arg_scope_initializer():
  model = _backbone_model('resnet_v1_18_beta', 32, size=33)
  inits = initializers.variable_initializers(model)
  want = initializers.describe(initializers.slim_variance_scaling())
  for scope in (SCOPE + '/conv1_1', UNIT % (1, 1) + '/conv1',
                UNIT % (1, 1) + '/conv2', UNIT % (4, 1) + '/shortcut'):
    assert initializers.describe(inits[scope + '/weights']) == want, scope


# --- strides and rates -------------------------------------------------------------
@pytest.mark.parametrize('multi_grid', [None, (1, 2)])
@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_output_shapes_and_rates(output_stride, multi_grid):
  model = _backbone_model('resnet_v1_18_beta', output_stride,
                          multi_grid=multi_grid)
  # 65 -> 33 (conv1_1) -> 17 (pool1) -> 9 (block1) -> 5 (block2) -> 3 (block3).
  size_at = {4: 17, 8: 9, 16: 5, 32: 3}
  s = size_at[output_stride]
  out = model.output
  assert out['features'].shape == (1, s, s, 512)
  assert out[SCOPE + '/block4'].shape == (1, s, s, 512)
  assert out[UNIT % (1, 1) + '/conv2'].shape == (1, 17, 17, 64)
  assert out[SCOPE + '/block1'].shape == (1, 9, 9, 64)
  assert out[UNIT % (2, 1) + '/conv2'].shape == (1, 9, 9, 128)
  s16 = size_at[min(16, output_stride)]
  assert out[UNIT % (3, 1) + '/conv2'].shape == (1, s16, s16, 256)
  # The stride sits in each block's last unit, on conv2 only; the rate
  # (stack_blocks_dense) dilates both 3x3 convs; block4 adds multi-grid.
  base = {8: 4, 16: 2, 32: 1}[output_stride]
  grid = multi_grid or (1, 1)
  for unit, g in ((1, grid[0]), (2, grid[1])):
    for conv in ('conv1', 'conv2'):
      rate = base * g
      assert _conv_rate(model, UNIT % (4, unit) + '/' + conv) == (
          (1, 1), (rate, rate))
  block3_stride = 2 if output_stride == 32 else 1
  block3_rate = 2 if output_stride == 8 else 1
  assert _conv_rate(model, UNIT % (3, 2) + '/conv2') == (
      (block3_stride,) * 2, (block3_rate,) * 2)
  assert _conv_rate(model, UNIT % (3, 1) + '/conv1') == (
      (1, 1), (block3_rate,) * 2)
  block2_stride = 1 if output_stride == 8 else 2
  assert _conv_rate(model, UNIT % (2, 2) + '/conv2') == (
      (block2_stride,) * 2, (1, 1))
  assert _conv_rate(model, UNIT % (2, 2) + '/conv1') == ((1, 1), (1, 1))


# --- numerics ----------------------------------------------------------------------
def test_lite_unit_against_numpy():
  """conv1 3x3 + BN + ReLU; conv2 3x3 + BN (the end point); ReLU(sum)."""
  model = _backbone_model('resnet_v1_18', 32, size=33)
  _fill(model, seed=1)
  w = {k: v.numpy().astype(np.float64)
       for k, v in checkpoints.model_variables(model).items()}
  x = np.random.default_rng(2).uniform(-1, 1, (1, 33, 33, 3)).astype(np.float32)
  out = {k: np.asarray(v, np.float64) for k, v in model(x).items()}

  def bn(v, scope):
    g, b = w[scope + '/BatchNorm/gamma'], w[scope + '/BatchNorm/beta']
    m = w[scope + '/BatchNorm/moving_mean']
    var = w[scope + '/BatchNorm/moving_variance']
    return g * (v - m) / np.sqrt(var + 1e-5) + b

  def conv3x3(v, kernel, stride):
    """conv2d_same: symmetric pad 1, then stride."""
    p = np.pad(v, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h = (v.shape[1] - 1) // stride + 1
    acc = 0.0
    for i in range(3):
      for j in range(3):
        acc = acc + np.einsum(
            'nhwc,cd->nhwd',
            p[:, i:i + stride * (h - 1) + 1:stride,
              j:j + stride * (h - 1) + 1:stride], kernel[i, j])
    return acc

  # block1/unit_2: 64 -> 64 with stride 2: subsample shortcut (1x1/2 max pool).
  unit = UNIT % (1, 2)
  x_in = out[UNIT % (1, 1)]
  assert x_in.shape == (1, 9, 9, 64)
  r = np.maximum(bn(conv3x3(x_in, w[unit + '/conv1/weights'], 1),
                    unit + '/conv1'), 0.0)
  np.testing.assert_allclose(out[unit + '/conv1'], r, rtol=1e-4, atol=1e-4)
  r = bn(conv3x3(out[unit + '/conv1'], w[unit + '/conv2/weights'], 2),
         unit + '/conv2')
  np.testing.assert_allclose(out[unit + '/conv2'], r, rtol=1e-4, atol=1e-4)
  assert out[unit + '/conv2'].min() < 0     # linear: no ReLU before the sum
  np.testing.assert_allclose(
      out[unit], np.maximum(out[unit + '/conv2'] + x_in[:, ::2, ::2], 0.0),
      rtol=1e-5, atol=1e-5)


def test_decoder_reads_the_conv2_batch_norm_output():
  options = ModelOptions(model_variant='resnet_v1_18', crop_size=(65, 65),
                         output_stride=16, decoder_output_stride=(4,),
                         outputs_to_num_classes={'semantic': 3})
  model = build_model(options)
  got = _variables(model)
  assert got['decoder/feature_projection0/weights'] == (1, 1, 64, 48)
  projection = model.get_layer('decoder.feature_projection0')
  end_point = model.get_layer(
      (UNIT % (1, 1) + '/conv2/BatchNorm').replace('/', '.'))
  assert projection.input is end_point.output
  assert tuple(projection.input.shape) == (None, 17, 17, 64)


# --- training ------------------------------------------------------------------------
def test_training_step_updates_the_lite_units(tmp_path):
  options = ModelOptions(model_variant='resnet_v1_18', crop_size=(33, 33),
                         output_stride=16, multi_grid=(1, 2),
                         aspp_convs_filters=32, decoder_output_stride=(8,),
                         decoder_filters=32,
                         outputs_to_num_classes={'semantic': 3})
  settings = TrainSettings(
      train_logdir=str(tmp_path), train_batch_size=2, log_steps=1,
      fine_tune_batch_norm=True,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=2))
  trainer = Trainer(options, settings, synthetic_dataset_fn(2))
  trainer.initialize()
  named = checkpoints.model_variables(trainer.model)
  watched = (SCOPE + '/conv1/weights',
             UNIT % (1, 1) + '/conv2/weights',
             UNIT % (4, 2) + '/conv1/weights',
             UNIT % (2, 1) + '/shortcut/BatchNorm/moving_mean',
             'decoder/feature_projection0/weights')
  before = {k: named[k].numpy().copy() for k in watched}
  metrics = trainer.train()
  assert trainer.step == 2
  assert np.isfinite(metrics['total_loss'])
  for name in watched:
    assert not np.array_equal(named[name].numpy(), before[name]), name


# --- against the original ------------------------------------------------------------
def test_case_l_conformance():
  """resnet_v1_18_beta, OS 16, regular ASPP 6/12/18: the original logits."""
  result = conformance.check_case(CASE_L)
  print(result.report())
  assert result.passed, result.report()
  assert {'checkpoint', 'logits', 'merged_logits', 'labels'} <= {
      c.name for c in result.checks}


def test_model_stats_match_the_original_graph():
  """Params equal the original graph's; multiply-adds its 21.03 G at 513x513
  (the profiler counts dilated convs on their SpaceToBatchND-padded input)."""
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.model_stats',
       '--model_variant=resnet_v1_18_beta', '--atrous_rates=6',
       '--atrous_rates=12', '--atrous_rates=18', '--output_stride=16',
       '--noaspp_with_separable_conv', '--num_classes=21',
       '--crop_size=513,513'], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  stats = json.loads(proc.stdout.strip().splitlines()[-1])
  case = _case_l()
  assert stats['trainable_params'] == case['num_params_excluding_bn_moving_stats']
  assert stats['total_params'] == case['num_params_all_float_vars']
  assert stats['multiply_adds'] == pytest.approx(
      case['perf_513x513']['multiply_adds_conv_depthwise'], rel=0.005)
