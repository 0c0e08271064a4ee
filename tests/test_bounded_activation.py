"""``use_bounded_activation`` as in the original (xception.py, model.py).

The original option turns the Xception backbone quantisation friendly: ReLU6
everywhere ReLU was, the BN outputs of the pre-activation separable convs and
both addends of every residual sum clipped to [-6, 6], ReLU6 after the sum,
and TF 'SAME' padding for the strided separable convs (the stem keeps its
explicit padding). ASPP and decoder use ReLU6, except the image pooling conv,
which the original keeps at ReLU. The variables are the same either way.

The reference below restates the original ``xception_module`` with plain
``tf.nn`` ops; it is checked against our unbounded module too, whose whole
model the conformance cases A-C hold to the original graph.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_model
from deeplab_tf.models import options as options_lib
from deeplab_tf.models.backbones import xception
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.heads import aspp as aspp_lib

CAP = 6.0
EPS = 1e-3  # Xception BatchNorm epsilon


def _model(bounded, variant='xception_65'):
  return build_model(ModelOptions(
      model_variant=variant, crop_size=(34, 34), output_stride=16,
      atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
      use_bounded_activation=bounded))


@pytest.fixture(scope='module')
def x65_models():
  return _model(False), _model(True)


def test_same_variables_with_and_without_bounded_activation(x65_models):
  """Checkpoints convert by name: bounded activation adds no variable."""
  plain, bounded = (checkpoints.model_variables(m) for m in x65_models)
  assert sorted(plain) == sorted(bounded)
  assert all(tuple(plain[k].shape) == tuple(bounded[k].shape) for k in plain)


def _strided_depthwise(model):
  return [l for l in model.layers
          if isinstance(l, keras.layers.DepthwiseConv2D) and l.strides != (1, 1)]


def test_bounded_xception_pads_same_except_the_stem(x65_models):
  plain, bounded = x65_models
  # Unbounded: the stem and the three strided entry blocks pad explicitly.
  assert sum(isinstance(l, keras.layers.ZeroPadding2D)
             for l in plain.layers) == 4
  assert {l.padding for l in _strided_depthwise(plain)} == {'valid'}
  # Bounded: only the stem (resnet_utils.conv2d_same has no switch).
  assert sum(isinstance(l, keras.layers.ZeroPadding2D)
             for l in bounded.layers) == 1
  assert bounded.get_layer('xception_65.entry_flow.conv1_1').padding == 'valid'
  strided = _strided_depthwise(bounded)
  assert len(strided) == 3 and {l.padding for l in strided} == {'same'}


def test_bounded_activation_reaches_the_model_from_a_case(reference_dir):
  """A case's ``model_options`` (original field names) carry the option."""
  import json, os  # pylint: disable=g-import-not-at-top,multiple-imports
  with open(os.path.join(reference_dir, 'case_A.json')) as f:
    values = dict(json.load(f)['model_options'], use_bounded_activation=True)
  assert ModelOptions.from_dict(values).use_bounded_activation is True
  flags = dict(values, num_classes=21)
  assert options_lib.options_from_flag_values(
      flags, crop_size=(33, 33)).use_bounded_activation is True


# --- one Xception module against the original semantics ----------------------

def _bn(x, v, scope):
  g, b, m, var = (v[scope + '/BatchNorm/' + k]
                  for k in ('gamma', 'beta', 'moving_mean', 'moving_variance'))
  return (x - m) / np.sqrt(var + EPS) * g + b


def _clip(x):
  return tf.clip_by_value(x, -CAP, CAP)


def reference_module(x, v, scope, block, stride, rate, bounded):
  """The original ``xception_module`` (split separable convs), in tf.nn ops."""
  relu = tf.nn.relu6 if bounded else tf.nn.relu
  rates = block.unit_rate_list or (1, 1, 1)
  residual = x
  for i in range(3):
    conv = '%s/separable_conv%d' % (scope, i + 1)
    s, r = (stride if i == 2 else 1), rate * rates[i]
    if block.activation_fn_in_separable_conv:
      act = relu
    else:
      residual = relu(residual)
      act = _clip if bounded else (lambda t: t)
    padding = 'SAME'
    if s > 1 and not bounded:
      # fixed_padding: symmetric for the effective kernel, then VALID.
      total = 3 + 2 * (r - 1) - 1
      beg, end = total // 2, total - total // 2
      residual = tf.pad(residual, [[0, 0], [beg, end], [beg, end], [0, 0]])
      padding = 'VALID'
    residual = tf.nn.depthwise_conv2d(
        residual, v[conv + '_depthwise/depthwise_weights'], [1, s, s, 1],
        padding, dilations=[r, r])
    residual = act(_bn(residual, v, conv + '_depthwise'))
    residual = tf.nn.conv2d(residual, v[conv + '_pointwise/weights'], 1, 'SAME')
    residual = act(_bn(residual, v, conv + '_pointwise'))
  if block.skip_connection_type == 'none':
    return residual
  if block.skip_connection_type == 'conv':
    shortcut = tf.nn.conv2d(x, v[scope + '/shortcut/weights'], stride, 'SAME')
    shortcut = _bn(shortcut, v, scope + '/shortcut')
  else:
    shortcut = x
  if bounded:
    residual, shortcut = _clip(residual), _clip(shortcut)
  out = residual + shortcut
  return tf.nn.relu6(out) if bounded else out


BLOCKS = {
    # entry-flow style: conv shortcut, stride 2 on an even input
    'conv_stride2': (xception.XceptionBlock('b', (6, 6, 8), 'conv', False, 1, 2),
                     2, 1),
    # middle-flow style: identity shortcut, atrous
    'sum_atrous': (xception.XceptionBlock('b', (5, 5, 5), 'sum', False, 1, 1),
                   1, 2),
    # exit_flow/block2 style: activation inside, multi-grid, no shortcut
    'none_in_conv': (xception.XceptionBlock('b', (4, 6, 7), 'none', True, 1, 1,
                                            unit_rate_list=(1, 2, 3)), 1, 2),
}


@pytest.mark.parametrize('bounded', [False, True])
@pytest.mark.parametrize('kind', sorted(BLOCKS))
def test_xception_module_matches_the_original_semantics(kind, bounded):
  block, stride, rate = BLOCKS[kind]
  channels = 5
  rng = np.random.default_rng(7)
  b = LayerBuilder()
  inputs = keras.Input((10, 10, channels))
  end_points = {}
  out = xception.xception_module(b, inputs, 'm', block, stride, rate,
                                 end_points, bounded=bounded)
  model = keras.Model(inputs, {'out': out, **end_points})
  values = {}
  for name, var in checkpoints.model_variables(model).items():
    shape = tuple(var.shape)
    if name.endswith('moving_variance'):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith('gamma'):
      value = rng.uniform(0.5, 1.5, shape)
    elif name.endswith(('beta', 'moving_mean')):
      value = 4.0 * rng.standard_normal(shape)  # push values past +-6
    else:
      value = rng.standard_normal(shape) * 2.0
    var.assign(value.astype(np.float32))
    values[name] = tf.constant(value, tf.float32)
  x = tf.constant(5.0 * rng.standard_normal((2, 10, 10, channels)), tf.float32)
  ours = model(x, training=False)
  ref = reference_module(x, values, 'm', block, stride, rate, bounded)
  np.testing.assert_allclose(ours['out'].numpy(), ref.numpy(), rtol=1e-4,
                             atol=1e-4 * max(1.0, float(np.abs(ref).max())))
  got = ours['out'].numpy()
  if bounded:
    # ReLU6 after the sum, or inside the convs of the 'none' block.
    assert got.min() >= 0.0 and got.max() <= CAP
    if not block.activation_fn_in_separable_conv:
      # The decoder's end point is the clipped pointwise output; the clip is
      # really active in this draw.
      pw = ours['m/separable_conv2_pointwise'].numpy()
      assert pw.min() >= -CAP and pw.max() <= CAP
      assert np.mean(np.abs(pw) == CAP) > 0.01
  else:
    assert np.abs(got).max() > CAP  # the draw does exceed the bound


def test_image_pooling_keeps_relu_under_bounded_activation():
  """The original sets ``image_feature_activation_fn = tf.nn.relu`` for the
  image pooling conv; the other ASPP convs take ReLU6."""
  options = ModelOptions(crop_size=None, use_bounded_activation=True,
                         aspp_convs_filters=4, aspp_with_concat_projection=False)
  b = LayerBuilder()
  features = keras.Input((5, 5, 3))
  model = keras.Model(features, aspp_lib.aspp(b, features, options))
  for name, var in checkpoints.model_variables(model).items():
    if name.endswith('BatchNorm/beta'):
      var.assign(np.full(var.shape, 10.0, np.float32))  # BN output ~ 10
  out = model(np.zeros((1, 5, 5, 3), np.float32), training=False).numpy()
  image_pooling, aspp0 = out[..., :4], out[..., 4:]
  np.testing.assert_allclose(image_pooling, 10.0, rtol=1e-5)
  np.testing.assert_allclose(aspp0, CAP)
