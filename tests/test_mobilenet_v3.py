"""MobileNetV3 seg backbones (mobilenet_v3_{large,small}_seg) and the LR-ASPP head.

Expected values are written out by hand from the original sources
(slim ``nets/mobilenet/mobilenet_v3.py`` V3_LARGE / V3_SMALL,
``conv_blocks.py`` expanded_conv / squeeze_excite, ``mobilenet.py``
mobilenet_base, DeepLab ``core/feature_extractor.py`` *_seg and
``model.py``), not read back from ``deeplab_tf``'s own spec tables.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_model
from deeplab_tf.models import backbones
from deeplab_tf.models.builder import LayerBuilder

SMALL = 'mobilenet_v3_small_seg'
LARGE = 'mobilenet_v3_large_seg'
BN_LEAVES = ('beta', 'gamma', 'moving_mean', 'moving_variance')

# --- the seg specs, by hand ---------------------------------------------------
# One row per bottleneck, in layer order (layer_2 ..):
#   (input depth, expanded depth, output depth, depthwise kernel, SE squeeze
#    depth or 0).
# Expanded depth = _make_divisible(input * factor, 8); SE squeeze depth =
# _make_divisible(expanded / 4, 8), e.g. 72 / 4 = 18 -> 16 is < 0.9 * 18, so 24;
# 144 / 4 = 36 -> 40. The last three rows are the halved seg stage:
# small 96 -> 48 outputs with expansions 144, 288, 288; large 160 -> 80 with
# 336, 480, 480. The stem conv is 3x3x3x16 and the last 1x1 conv is halved
# (576 -> 288, 960 -> 480).
SMALL_BLOCKS = [
    (16, 16, 16, 3, 8),      # layer_2  expanded_conv   (no expand: 16 -> 16)
    (16, 72, 24, 3, 0),      # layer_3  expanded_conv_1 (72/16 * 16)
    (24, 88, 24, 3, 0),      # layer_4  expanded_conv_2 (88/24 * 24)
    (24, 96, 40, 5, 24),     # layer_5  expanded_conv_3
    (40, 240, 40, 5, 64),    # layer_6
    (40, 240, 40, 5, 64),    # layer_7
    (40, 120, 48, 5, 32),    # layer_8
    (48, 144, 48, 5, 40),    # layer_9
    (48, 144, 48, 5, 40),    # layer_10 (seg: 96 -> 48, expansion 144)
    (48, 288, 48, 5, 72),    # layer_11 (seg: expansion 288)
    (48, 288, 48, 5, 72),    # layer_12 (seg: expansion 288)
]
SMALL_LAST = 288
LARGE_BLOCKS = [
    (16, 16, 16, 3, 0),      # layer_2
    (16, 64, 24, 3, 0),
    (24, 72, 24, 3, 0),
    (24, 72, 40, 5, 24),     # layer_5
    (40, 120, 40, 5, 32),
    (40, 120, 40, 5, 32),
    (40, 240, 80, 3, 0),     # layer_8
    (80, 200, 80, 3, 0),
    (80, 184, 80, 3, 0),
    (80, 184, 80, 3, 0),
    (80, 480, 112, 3, 120),  # layer_12
    (112, 672, 112, 3, 168),
    (112, 336, 80, 5, 88),   # layer_14 (seg: 160 -> 80, expansion 336)
    (80, 480, 80, 5, 120),
    (80, 480, 80, 5, 120),   # layer_16
]
LARGE_LAST = 480


def _block_scope(i):
  return 'MobilenetV3/' + ('expanded_conv' if i == 0 else 'expanded_conv_%d' % i)


def _expected_variables(blocks, last_depth):
  """{name: shape} of every backbone variable, from a hand-written table."""
  names = {}

  def conv(scope, shape, bn=True):
    names[scope + '/weights'] = shape
    if bn:
      for leaf in BN_LEAVES:
        names['%s/BatchNorm/%s' % (scope, leaf)] = (shape[-1],)
    else:
      names[scope + '/biases'] = (shape[-1],)

  conv('MobilenetV3/Conv', (3, 3, 3, 16))
  for i, (cin, exp, cout, k, se) in enumerate(blocks):
    scope = _block_scope(i)
    if exp != cin:
      conv(scope + '/expand', (1, 1, cin, exp))
    names[scope + '/depthwise/depthwise_weights'] = (k, k, exp, 1)
    for leaf in BN_LEAVES:
      names['%s/depthwise/BatchNorm/%s' % (scope, leaf)] = (exp,)
    if se:
      conv(scope + '/squeeze_excite/Conv', (1, 1, exp, se), bn=False)
      conv(scope + '/squeeze_excite/Conv_1', (1, 1, se, exp), bn=False)
    conv(scope + '/project', (1, 1, exp, cout))
  conv('MobilenetV3/Conv_1', (1, 1, blocks[-1][2], last_depth))
  return names


def _count_params(blocks, last_depth):
  """Parameter count (incl. BN moving statistics) from the hand table."""
  total = 3 * 3 * 3 * 16 + 4 * 16
  for cin, exp, cout, k, se in blocks:
    if exp != cin:
      total += cin * exp + 4 * exp
    total += k * k * exp + 4 * exp
    if se:
      total += (exp * se + se) + (se * exp + exp)
    total += exp * cout + 4 * cout
  return total + blocks[-1][2] * last_depth + 4 * last_depth


# --- helpers -----------------------------------------------------------------
def _backbone_model(variant, output_stride, size=65, **kwargs):
  """Backbone only: {'features': ..., end point: ...} on normalised images."""
  backbone = backbones.get_backbone(variant)
  images = keras.Input((size, size, 3), batch_size=1)
  features, end_points = backbone.build(LayerBuilder(), images, output_stride,
                                        scope=backbone.scope, **kwargs)
  outputs = dict(end_points, features=features)
  return keras.Model(images, outputs)


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


def _weights(model):
  return {k: v.numpy() for k, v in checkpoints.model_variables(model).items()}


def _bn(x, w, scope, eps):
  g, b = w[scope + '/BatchNorm/gamma'], w[scope + '/BatchNorm/beta']
  m, v = w[scope + '/BatchNorm/moving_mean'], w[scope + '/BatchNorm/moving_variance']
  return g * (x - m) / np.sqrt(v + eps) + b


def _conv1x1(x, w, scope):
  return np.einsum('nhwc,cd->nhwd', x, w[scope + '/weights'][0, 0])


def _relu6(x):
  return np.minimum(np.maximum(x, 0.0), 6.0)


def _resize_align_corners(x, out_h, out_w):
  """TF1 resize_bilinear(align_corners=True) in numpy."""
  n, h, w, c = x.shape

  def coords(size_in, size_out):
    if size_out == 1:
      return np.zeros(1)
    return np.arange(size_out) * (size_in - 1) / (size_out - 1)

  ys, xs = coords(h, out_h), coords(w, out_w)
  y0 = np.floor(ys).astype(int)
  x0 = np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  dy, dx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  out = np.empty((n, out_h, out_w, c))
  for i in range(n):
    a, b_ = x[i][y0][:, x0], x[i][y0][:, x1]
    c_, d = x[i][y1][:, x0], x[i][y1][:, x1]
    top = a + (b_ - a) * dx
    bottom = c_ + (d - c_) * dx
    out[i] = top + (bottom - top) * dy
  return out


def _zoo_options(variant, crop=(65, 65), **changes):
  """The model-zoo MobileNetV3 flags (g3doc/model_zoo.md), small crop."""
  values = dict(
      model_variant=variant, outputs_to_num_classes={'semantic': 19},
      crop_size=crop, output_stride=32, image_pooling_crop_size=crop,
      image_pooling_stride=(4, 5), add_image_level_feature=True,
      aspp_convs_filters=128, aspp_with_concat_projection=False,
      aspp_with_squeeze_and_excitation=True, decoder_use_sum_merge=True,
      decoder_filters=19, decoder_output_is_logits=True,
      image_se_uses_qsigmoid=True, decoder_output_stride=(8,))
  values.update(changes)
  return ModelOptions(**values)


@pytest.fixture(scope='module')
def small_os32():
  model = _backbone_model(SMALL, 32)
  _fill(model, seed=1)
  return model


@pytest.fixture(scope='module')
def small_zoo():
  model = build_model(_zoo_options(SMALL))
  _fill(model, seed=2)
  return model


# --- names and sizes -----------------------------------------------------------
def test_small_seg_variable_names_and_shapes(small_os32):
  got = {k: tuple(v.shape)
         for k, v in checkpoints.model_variables(small_os32).items()}
  expected = _expected_variables(SMALL_BLOCKS, SMALL_LAST)
  assert sorted(got) == sorted(expected)
  assert got == expected
  # Spot checks of the original naming.
  assert got['MobilenetV3/Conv/weights'] == (3, 3, 3, 16)
  assert 'MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases' in got
  assert got['MobilenetV3/expanded_conv_3/squeeze_excite/Conv/weights'] == (
      1, 1, 96, 24)
  assert got['MobilenetV3/expanded_conv_3/squeeze_excite/Conv_1/weights'] == (
      1, 1, 24, 96)
  # layer_2 (expanded_conv) has SE but no expansion (16 -> 16).
  assert 'MobilenetV3/expanded_conv/expand/weights' not in got
  assert 'MobilenetV3/expanded_conv/squeeze_excite/Conv/weights' in got
  # Blocks without SE have none; SE convs have no BatchNorm.
  assert not any(k.startswith('MobilenetV3/expanded_conv_1/squeeze_excite')
                 for k in got)
  assert not any('squeeze_excite' in k and 'BatchNorm' in k for k in got)
  # Nothing of the classifier past layer_13 (no Conv_2, no Logits).
  assert got['MobilenetV3/Conv_1/weights'] == (1, 1, 48, 288)
  assert not any(k.startswith(('MobilenetV3/Conv_2', 'MobilenetV3/Logits'))
                 for k in got)
  assert len(got) == 206


def test_small_seg_parameter_count(small_os32):
  n = sum(int(np.prod(v.shape))
          for v in checkpoints.model_variables(small_os32).values())
  # Per layer, weights + 4 BN vectors (gamma, beta, mean, variance); SE convs
  # have biases instead of BN.
  by_hand = (
      (27 * 16 + 4 * 16)                                         # Conv
      + (9 * 16 + 64) + (16 * 8 + 8) + (8 * 16 + 16) + (256 + 64)   # layer_2
      + (16 * 72 + 288) + (9 * 72 + 288) + (72 * 24 + 96)           # layer_3
      + (24 * 88 + 352) + (9 * 88 + 352) + (88 * 24 + 96)           # layer_4
      + (24 * 96 + 384) + (25 * 96 + 384) + (96 * 24 + 24) + (24 * 96 + 96)
      + (96 * 40 + 160)                                             # layer_5
      + 2 * ((40 * 240 + 960) + (25 * 240 + 960) + (240 * 64 + 64)
             + (64 * 240 + 240) + (240 * 40 + 160))                 # layer_6, 7
      + (40 * 120 + 480) + (25 * 120 + 480) + (120 * 32 + 32)
      + (32 * 120 + 120) + (120 * 48 + 192)                         # layer_8
      + 2 * ((48 * 144 + 576) + (25 * 144 + 576) + (144 * 40 + 40)
             + (40 * 144 + 144) + (144 * 48 + 192))                 # layer_9, 10
      + 2 * ((48 * 288 + 1152) + (25 * 288 + 1152) + (288 * 72 + 72)
             + (72 * 288 + 288) + (288 * 48 + 192))                 # layer_11, 12
      + (48 * 288 + 4 * 288))                                       # Conv_1
  assert by_hand == 398944
  assert n == by_hand == _count_params(SMALL_BLOCKS, SMALL_LAST)


def test_large_seg_names_and_parameter_count():
  model = _backbone_model(LARGE, 32, size=33)
  got = {k: tuple(v.shape) for k, v in checkpoints.model_variables(model).items()}
  assert got == _expected_variables(LARGE_BLOCKS, LARGE_LAST)
  assert got['MobilenetV3/expanded_conv_12/expand/weights'] == (1, 1, 112, 336)
  assert got['MobilenetV3/expanded_conv_12/squeeze_excite/Conv/weights'] == (
      1, 1, 336, 88)
  assert got['MobilenetV3/Conv_1/weights'] == (1, 1, 80, 480)
  # layer_2 of the large variant: no expansion and no SE.
  assert not any(k.startswith('MobilenetV3/expanded_conv/') and
                 ('expand/' in k or 'squeeze' in k) for k in got)
  n = sum(int(np.prod(s)) for s in got.values())
  assert n == _count_params(LARGE_BLOCKS, LARGE_LAST) == 1396960


@pytest.mark.parametrize('variant,depth,eps', [
    (SMALL, 288, {4: ('layer_2/depthwise_output', 16),
                  8: ('layer_4/depthwise_output', 88),
                  16: ('layer_9/depthwise_output', 144)}),
    (LARGE, 480, {4: ('layer_4/depthwise_output', 72),
                  8: ('layer_7/depthwise_output', 120),
                  16: ('layer_13/depthwise_output', 672)}),
])
def test_output_shapes_and_decoder_end_points(variant, depth, eps):
  backbone = backbones.get_backbone(variant)
  assert backbone.scope == 'MobilenetV3'
  assert not backbone.end_points_scoped and backbone.uses_depth_multiplier
  assert {k: v[0] for k, v in backbone.decoder_end_points.items()} == {
      k: v[0] for k, v in eps.items()}
  # 65 -> 33 -> 17 -> 9 -> 5 -> 3 with SAME stride-2 convs.
  size_at = {2: 33, 4: 17, 8: 9, 16: 5, 32: 3}
  for output_stride in (8, 16, 32):
    model = _backbone_model(variant, output_stride)
    assert model.output['features'].shape == (
        1, size_at[output_stride], size_at[output_stride], depth)
    for stride, (name, channels) in eps.items():
      s = size_at[min(stride, output_stride)]
      assert model.output[name].shape == (1, s, s, channels), (name,
                                                              output_stride)


def test_atrous_rates_and_strides_small_os8():
  model = _backbone_model(SMALL, 8)

  def dw(i):
    layer = model.get_layer('MobilenetV3.expanded_conv_%d.depthwise' % i)
    return tuple(layer.strides), tuple(layer.dilation_rate)

  # layer_1 (stride 2), layer_2 and layer_3 keep stride 2: stride 8 reached.
  assert dw(1) == ((2, 2), (1, 1))                   # layer_3
  assert dw(3) == ((1, 1), (1, 1))                   # layer_5, de-strided
  assert dw(4) == ((1, 1), (2, 2))                   # layers 6..9: rate 2
  assert dw(7) == ((1, 1), (2, 2))
  assert dw(8) == ((1, 1), (2, 2))                   # layer_10, de-strided
  assert dw(9) == ((1, 1), (4, 4))                   # layers 11, 12: rate 4
  assert dw(10) == ((1, 1), (4, 4))
  # Never dilated: 1x1 convs.
  assert tuple(model.get_layer('MobilenetV3.Conv_1').dilation_rate) == (1, 1)
  assert tuple(model.get_layer(
      'MobilenetV3.expanded_conv_9.expand').dilation_rate) == (1, 1)


def test_destrided_block_with_equal_depth_gets_residual():
  """expanded_conv_8 (layer_10, 48 -> 48): residual only when run at stride 1."""
  x = np.random.default_rng(3).uniform(-1, 1, (1, 65, 65, 3)).astype(np.float32)
  out = {}
  for output_stride in (16, 32):
    model = _backbone_model(SMALL, output_stride)
    _fill(model, seed=4)
    out[output_stride] = model(x)
  o16, o32 = out[16], out[32]
  np.testing.assert_allclose(
      o16['layer_10'], o16['layer_10/projection_output'] + o16['layer_9'],
      rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(o32['layer_10'], o32['layer_10/projection_output'])
  # layer_9 (stride 1, 48 -> 48) always has one.
  np.testing.assert_allclose(
      o32['layer_9'], o32['layer_9/projection_output'] + o32['layer_8'],
      rtol=1e-6, atol=1e-6)


def test_depth_multiplier_always_rounds_to_8():
  """The original _mobilenet_v3 drops divisible_by: _make_divisible(., 8, 8)."""
  model = _backbone_model(SMALL, 32, size=33, depth_multiplier=0.5,
                          divisible_by=1)
  got = {k: tuple(v.shape) for k, v in checkpoints.model_variables(model).items()}
  assert got['MobilenetV3/Conv/weights'] == (3, 3, 3, 8)          # 16 * .5 = 8
  # layer_3: 24 * 0.5 = 12 -> 16 (a divisor of 1 would keep 12); expansion
  # 8 * 4.5 = 36 -> 40.
  assert got['MobilenetV3/expanded_conv_1/expand/weights'] == (1, 1, 8, 40)
  assert got['MobilenetV3/expanded_conv_1/project/weights'] == (1, 1, 40, 16)
  # layer_13: 288 * 0.5 = 144; its input 48 * 0.5 = 24.
  assert got['MobilenetV3/Conv_1/weights'] == (1, 1, 24, 144)


# --- numerics ------------------------------------------------------------------
def test_squeeze_excite_and_hard_swish_against_numpy(small_os32):
  x = np.random.default_rng(5).uniform(-1, 1, (1, 65, 65, 3)).astype(np.float32)
  gated_input = small_os32.get_layer('MobilenetV3.expanded_conv.project').input
  probe = keras.Model(small_os32.input, [small_os32.output, gated_input])
  out, gated = probe(x)
  out = {k: np.asarray(v, np.float64) for k, v in out.items()}
  gated = np.asarray(gated, np.float64)
  w = {k: v.astype(np.float64) for k, v in _weights(small_os32).items()}
  eps = 1e-3  # slim batch_norm default (mobilenet_v2_arg_scope sets none)

  # layer_2: depthwise -> SE -> linear projection, no residual (stride 2).
  scope = 'MobilenetV3/expanded_conv'
  dw = out['layer_2/depthwise_output']
  assert dw.shape == (1, 17, 17, 16) and dw.min() >= 0.0  # relu block
  pooled = dw.mean(axis=(1, 2), keepdims=True)
  squeeze = np.maximum(_conv1x1(pooled, w, scope + '/squeeze_excite/Conv')
                       + w[scope + '/squeeze_excite/Conv/biases'], 0.0)
  assert squeeze.shape[-1] == 8
  excite = (_conv1x1(squeeze, w, scope + '/squeeze_excite/Conv_1')
            + w[scope + '/squeeze_excite/Conv_1/biases'])
  # The gate constant is 0.16667, not 1/6 (mobilenet_v3.py): the difference,
  # 2e-5 relative, is 100x the float32 error of this comparison.
  expected = dw * (_relu6(excite + 3.0) * 0.16667)
  np.testing.assert_allclose(gated, expected, rtol=2e-6, atol=1e-7)
  with pytest.raises(AssertionError):
    np.testing.assert_allclose(gated, dw * (_relu6(excite + 3.0) / 6.0),
                               rtol=2e-6, atol=1e-7)
  projected = _bn(_conv1x1(expected, w, scope + '/project'), w,
                  scope + '/project', eps)
  np.testing.assert_allclose(out['layer_2/projection_output'], projected,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out['layer_2'], out['layer_2/projection_output'])

  # layer_13 (Conv_1): 1x1 conv -> BN -> hard_swish x * relu6(x + 3) / 6.
  pre = _bn(_conv1x1(out['layer_12'], w, 'MobilenetV3/Conv_1'), w,
            'MobilenetV3/Conv_1', eps)
  hswish = pre * _relu6(pre + 3.0) / 6.0
  np.testing.assert_allclose(out['features'], hswish, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(out['features'], out['layer_13'])
  # A hard_swish block (layer_5) can go negative, never below -3/8.
  dw5 = out['layer_5/depthwise_output']
  assert dw5.min() < 0.0 and dw5.min() >= -0.375 - 1e-6


def test_lr_aspp_zoo_config_against_numpy(small_zoo):
  """LR-ASPP + sum-merge decoder with logits output, as model.py builds it."""
  names = {k: tuple(v.shape)
           for k, v in checkpoints.model_variables(small_zoo).items()}
  head = {k: s for k, s in names.items() if not k.startswith('MobilenetV3/')}
  assert head == {
      'image_pooling/weights': (1, 1, 288, 128),
      'image_pooling/biases': (128,),           # no BN: slim adds biases
      'aspp0/weights': (1, 1, 288, 128),
      'aspp0/BatchNorm/gamma': (128,), 'aspp0/BatchNorm/beta': (128,),
      'aspp0/BatchNorm/moving_mean': (128,),
      'aspp0/BatchNorm/moving_variance': (128,),
      'decoder/feature_projection0/weights': (1, 1, 88, 19),
      'decoder/feature_projection0/biases': (19,),
      'decoder/decoder_conv0/weights': (1, 1, 128, 19),
      'decoder/decoder_conv0/biases': (19,),
  }
  merged = small_zoo.output['merged_logits']
  assert merged.shape[1:] == (9, 9, 19)  # scale_dimension(65, 1/8) = 9

  features = small_zoo.get_layer('aspp0').input
  low_level = small_zoo.get_layer('decoder.feature_projection0').input
  encoder_9x9 = small_zoo.get_layer('decoder.decoder_conv0').input
  probe = keras.Model(small_zoo.input, [features, low_level, encoder_9x9,
                                        merged])
  images = np.random.default_rng(6).uniform(0, 255, (1, 65, 65, 3)).astype(
      np.float32)
  f, low, got_encoder, logits = [np.asarray(t, np.float64)
                                 for t in probe(images)]
  assert f.shape == (1, 3, 3, 288) and low.shape == (1, 9, 9, 88)
  w = {k: v.astype(np.float64) for k, v in _weights(small_zoo).items()}

  # Image pooling: avg_pool 3x3 (scale_dimension(65, 1/32) = 3), stride
  # (4, 5), VALID -> 1x1; conv + biases; q_sigmoid; resize to 3x3.
  pooled = f.mean(axis=(1, 2), keepdims=True)
  gate = _relu6(_conv1x1(pooled, w, 'image_pooling')
                + w['image_pooling/biases'] + 3.0) * 0.16667
  aspp0 = np.maximum(_bn(_conv1x1(f, w, 'aspp0'), w, 'aspp0', 1e-5), 0.0)
  encoder = _resize_align_corners(aspp0 * gate, 9, 9)  # no concat projection
  np.testing.assert_allclose(got_encoder, encoder, rtol=2e-6, atol=1e-7)
  expected = (_conv1x1(encoder, w, 'decoder/decoder_conv0')
              + w['decoder/decoder_conv0/biases']
              + _conv1x1(low, w, 'decoder/feature_projection0')
              + w['decoder/feature_projection0/biases'])
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


def test_lr_aspp_with_pooled_map_and_sigmoid():
  """Image-pooling stride leaving a 2x2 map (resized back), plain sigmoid gate."""
  options = _zoo_options(LARGE, image_pooling_crop_size=(33, 33),
                         image_pooling_stride=(1, 1),
                         image_se_uses_qsigmoid=False)
  model = build_model(options)
  _fill(model, seed=7)
  features = model.get_layer('aspp0').input
  pooled_conv = model.get_layer('image_pooling').output
  probe = keras.Model(model.input, [features, pooled_conv])
  images = np.random.default_rng(8).uniform(0, 255, (1, 65, 65, 3)).astype(
      np.float32)
  f, conv = [np.asarray(t, np.float64) for t in probe(images)]
  w = {k: v.astype(np.float64) for k, v in _weights(model).items()}
  # pool kernel scale_dimension(33, 1/32) = 2 on the 3x3 features -> 2x2.
  pooled = np.stack([np.stack([f[0, i:i + 2, j:j + 2].mean(axis=(0, 1))
                               for j in range(2)]) for i in range(2)])[None]
  np.testing.assert_allclose(
      conv, _conv1x1(pooled, w, 'image_pooling') + w['image_pooling/biases'],
      rtol=1e-4, atol=1e-5)
  assert model.output['merged_logits'].shape[1:] == (9, 9, 19)


def test_sum_merge_decoder_without_logits_output_names():
  """decoder_output_is_logits=False: BN + ReLU, split separable decoder conv."""
  options = _zoo_options(SMALL, decoder_output_is_logits=False,
                         decoder_filters=32, output_stride=16,
                         decoder_output_stride=(8,),
                         outputs_to_num_classes={'semantic': 5})
  model = build_model(options)
  names = set(checkpoints.model_variables(model))
  assert 'decoder/decoder_split_sep_conv0_depthwise/depthwise_weights' in names
  assert 'decoder/decoder_split_sep_conv0_pointwise/BatchNorm/gamma' in names
  assert 'decoder/feature_projection0/BatchNorm/gamma' in names
  assert 'decoder/feature_projection0/biases' not in names
  assert 'logits/semantic/biases' in names
  assert model.output['merged_logits'].shape[1:] == (9, 9, 5)


def test_tf1_checkpoint_round_trip(small_zoo, tmp_path):
  images = np.random.default_rng(9).uniform(0, 255, (1, 65, 65, 3)).astype(
      np.float32)
  expected = np.asarray(small_zoo(images)['merged_logits'])
  prefix = checkpoints.save_tf1_checkpoint(small_zoo, str(tmp_path / 'model.ckpt'))
  keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  assert keys['MobilenetV3/expanded_conv_3/squeeze_excite/Conv/biases'] == [24]
  assert keys['MobilenetV3/Conv/weights'] == [3, 3, 3, 16]

  fresh = build_model(_zoo_options(SMALL))
  report = checkpoints.load_tf1_checkpoint(fresh, prefix)
  assert report.ok and not report.unused, report.summary()
  got = np.asarray(fresh(images)['merged_logits'])
  np.testing.assert_array_equal(got, expected)
