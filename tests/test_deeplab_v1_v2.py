"""DeepLab v1 (LargeFOV, MSc-LargeFOV) and v2 (ASPP on VGG-16 / ResNet-101, MSC).

Sizes, strides and rates are checked against the papers' numbers
(arXiv:1412.7062, arXiv:1606.00915); weight files are written here with
random values, nothing is downloaded.
"""
import h5py
import numpy as np
import pytest

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, OptionsError
from deeplab_tf.models import build_model, build_predictor
from deeplab_tf.models import deeplab
from deeplab_tf.models import deeplab_v1
from deeplab_tf.checkpoints import vgg16_imagenet
from deeplab_tf.models.backbones import vgg16
from deeplab_tf.training.gradient_multipliers import get_gradient_multipliers
from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.losses import softmax_cross_entropy_loss_for_each_scale
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings
from test_trainer import synthetic_dataset_fn

V1 = 'deeplab_v1_largefov'
MSC = 'deeplab_v1_msc_largefov'
V2 = 'deeplab_v2_aspp'
VGG_CONVS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
             (256, 256), (256, 512), (512, 512), (512, 512), (512, 512),
             (512, 512), (512, 512)]


def vgg_options(meta, crop=(65, 65), classes=21, **kw):
  return ModelOptions(model_variant='vgg_16', meta_architecture=meta,
                      crop_size=crop, outputs_to_num_classes={'semantic': classes},
                      **kw)


def randomise(model, seed=0, scale=0.05):
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if layer.weights:
      layer.set_weights([scale * rng.standard_normal(w.shape).astype(np.float32)
                         for w in layer.get_weights()])


def images(n=1, size=65, seed=0):
  rng = np.random.default_rng(seed)
  return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)


# --- architecture ---------------------------------------------------------------
def test_largefov_parameter_count_is_the_papers_20_5m():
  convs = sum(9 * cin * cout + cout for cin, cout in VGG_CONVS)
  assert convs == 14714688  # VGG-16 without its fc layers
  fc6 = 3 * 3 * 512 * 1024 + 1024   # 3x3 kernel, 1024 filters (v1 Sec. 3.2 / 5)
  fc7 = 1024 * 1024 + 1024
  fc8 = 1024 * 21 + 21
  model = build_model(vgg_options(V1, crop=None))
  assert model.count_params() == convs + fc6 + fc7 + fc8 == 20505429
  assert round(model.count_params() / 1e6, 1) == 20.5  # v1 Table 2
  msc = build_model(vgg_options(MSC, crop=None))
  mlps = (9 * 128 * (3 + 64 + 128 + 256 + 512) + 5 * 128  # 3x3 layers
          + 5 * (128 * 128 + 128))                      # 1x1 layers
  classifier = (1024 + 5 * 128) * 21 + 21
  assert msc.count_params() == convs + fc6 + fc7 + mlps + classifier == 21711445
  aspp = build_model(vgg_options(V2, crop=None, atrous_rates=(6, 12, 18, 24)))
  assert aspp.count_params() == convs + 4 * (fc6 + fc7 + fc8) == 37877652


def test_layer_names_rates_and_kernels():
  model = build_model(vgg_options(V1))
  conv_names = ['conv%d_%d' % (b, i) for b, n in vgg16.BLOCKS
                for i in range(1, len(n) + 1)]
  for name in conv_names:
    layer = model.get_layer(name)
    assert layer.kernel_size == (3, 3)
    # v1 Sec. 3.1: conv5 dilated by 2, the others dense.
    assert layer.dilation_rate == ((2, 2) if name.startswith('conv5') else (1, 1))
  fc6, fc7 = model.get_layer('fc6'), model.get_layer('fc7')
  assert (fc6.kernel_size, fc6.dilation_rate, fc6.filters) == ((3, 3), (12, 12), 1024)
  assert (fc7.kernel_size, fc7.dilation_rate, fc7.filters) == ((1, 1), (1, 1), 1024)
  fc8 = model.get_layer('logits.semantic')
  assert fc8.kernel_size == (1, 1) and fc8.kernel.shape == (1, 1, 1024, 21)
  pools = [l for l in model.layers if l.__class__.__name__ == 'MaxPooling2D']
  assert [(p.pool_size, p.strides) for p in pools] == [((3, 3), (s, s))
                                                       for s in (2, 2, 2, 1, 1)]
  names = set(checkpoints.model_variables(model))
  assert {'conv1_1/weights', 'conv5_3/biases', 'fc6/weights', 'fc7/biases',
          'logits/semantic/weights', 'logits/semantic/biases'} <= names
  assert len(names) == 2 * (13 + 3)


def test_classifier_is_the_last_layer_of_the_original_machinery():
  assert deeplab_v1.LOGITS_SCOPE_NAME == deeplab.LOGITS_SCOPE_NAME
  names = checkpoints.model_variables(build_model(vgg_options(MSC)))
  last = deeplab.get_extra_layer_scopes(last_layers_contain_logits_only=True)
  mult = get_gradient_multipliers(names, last, 10.0)
  # Caffe lr_mult 10 / 20 on fc8, 1 / 2 everywhere else (v1 Sec. 5).
  assert mult['logits/semantic/weights'] == 10.0
  assert mult['logits/semantic/biases'] == 20.0
  assert mult['fc6/biases'] == 2.0 and mult['msc/pool1/mlp_1/biases'] == 2.0
  assert 'fc6/weights' not in mult and 'conv1_1/weights' not in mult
  excluded = [n for n in names if any(n.startswith(s) for s in last)]
  assert sorted(excluded) == ['logits/semantic/biases', 'logits/semantic/weights']


@pytest.mark.parametrize('meta,kw', [(V1, {}), (MSC, {}),
                                     (V2, dict(atrous_rates=(6, 12, 18, 24)))])
def test_output_stride_8_at_321(meta, kw):
  model = build_model(vgg_options(meta, crop=(321, 321), **kw))
  # Caffe: ceil((n + 2 - 3) / s) + 1 -> 161, 81, 41, then 41, 41.
  pools = [l.output.shape[1] for l in model.layers
           if l.__class__.__name__ == 'MaxPooling2D']
  assert pools == [161, 81, 41, 41, 41]
  assert model.output['merged_logits'].shape == (None, 41, 41, 21)


def test_caffe_ceil_mode_pooling():
  """Our pool equals Caffe's (ignored padding, ceil-mode size) on ReLU outputs."""
  import keras  # pylint: disable=g-import-not-at-top

  def caffe_pool(x, stride, k=3, pad=1):
    n = x.shape[1]
    out = -(-(n + 2 * pad - k) // stride) + 1
    y = np.zeros((x.shape[0], out, out, x.shape[3]), x.dtype)
    for i in range(out):
      for j in range(out):
        r0, c0 = i * stride - pad, j * stride - pad
        win = x[:, max(r0, 0):min(r0 + k, n), max(c0, 0):min(c0 + k, n)]
        y[:, i, j] = win.max(axis=(1, 2))
    return y

  rng = np.random.default_rng(0)
  for n in (10, 11, 16, 17):
    x = np.maximum(rng.standard_normal((1, n, n, 2)), 0).astype(np.float32)
    for stride in (1, 2):
      inp = keras.Input((n, n, 2))
      ours = keras.Model(inp, vgg16.caffe_max_pool(inp, stride))(x).numpy()
      np.testing.assert_array_equal(ours, caffe_pool(x, stride))
  assert caffe_pool(np.zeros((1, 10, 10, 1)), 2).shape[1] == 6  # not TF's 5


def test_forward_sizes_and_the_caffe_mean():
  model = build_model(vgg_options(V1, crop=None, classes=3))
  assert model(images(size=97))['merged_logits'].shape == (1, 13, 13, 3)
  data = model.get_layer('data')
  x = images(size=9)
  np.testing.assert_allclose(data(x).numpy(),
                             x - np.array([122.675, 116.669, 104.008]), atol=1e-4)


def test_msc_concatenates_640_channels_to_fc7():
  model = build_model(vgg_options(MSC, crop=(64, 64), classes=5))
  concat = [l for l in model.layers if l.__class__.__name__ == 'Concatenate']
  assert len(concat) == 1 and concat[0].output.shape[-1] == 1024 + 5 * 128
  assert model.get_layer('logits.semantic').kernel.shape == (1, 1, 1664, 5)
  # v1 Sec. 4.3: 128 3x3 filters then 128 1x1 filters; strided to stride 8.
  strides = {s: model.get_layer('msc.%s.mlp_1' % s).strides
             for s in deeplab_v1.MSC_SOURCES}
  assert strides == {'data': (8, 8), 'pool1': (4, 4), 'pool2': (2, 2),
                     'pool3': (1, 1), 'pool4': (1, 1)}
  for s in deeplab_v1.MSC_SOURCES:
    assert model.get_layer('msc.%s.mlp_1' % s).kernel.shape[:2] == (3, 3)
    assert model.get_layer('msc.%s.mlp_2' % s).kernel.shape == (1, 1, 128, 128)
  # 64 is not 8k+1: the MLP maps still match fc7's 9x9 (ceil-mode sizes).
  assert concat[0].output.shape[1:3] == (9, 9)


def _branch_outputs(model, names):
  import keras  # pylint: disable=g-import-not-at-top
  return keras.Model(model.input, [model.get_layer(n).output for n in names])


def test_v2_vgg_aspp_s_logits_are_the_sum_of_the_branches():
  rates = (2, 4, 8, 12)  # ASPP-S, v2 Table 3
  model = build_model(vgg_options(V2, classes=3, atrous_rates=rates))
  randomise(model)
  names = ['logits.semantic'] + ['logits.semantic_%d' % i for i in (1, 2, 3)]
  assert [model.get_layer('fc6' + s).dilation_rate[0]
          for s in ('', '_1', '_2', '_3')] == list(rates)
  x = images()
  branches = [b.numpy() for b in _branch_outputs(model, names)(x)]
  merged = model(x)['merged_logits'].numpy()
  assert merged.shape == (1, 9, 9, 3)
  np.testing.assert_allclose(merged, sum(branches), rtol=1e-5, atol=1e-5)
  assert min(np.abs(b).max() for b in branches) > 1e-3  # every branch counts


def test_v2_resnet101_aspp_l_is_the_sum_of_four_3x3_atrous_convs():
  options = ModelOptions(model_variant='resnet_v1_101', meta_architecture=V2,
                         crop_size=(33, 33), atrous_rates=(6, 12, 18, 24),
                         aspp_with_batch_norm=False, logits_kernel_size=3,
                         outputs_to_num_classes={'semantic': 3})
  model = build_model(options)
  names = ['logits.semantic'] + ['logits.semantic_%d' % i for i in (1, 2, 3)]
  layers = [model.get_layer(n) for n in names]
  assert [(l.kernel_size, l.dilation_rate[0]) for l in layers] == [
      ((3, 3), r) for r in (6, 12, 18, 24)]
  assert all(l.kernel.shape[2] == 2048 for l in layers)  # on block4 directly
  assert not any('aspp' in l.name or 'image_pooling' in l.name
                 for l in model.layers)
  x = images(size=33)
  branches = [b.numpy() for b in _branch_outputs(model, names)(x)]
  np.testing.assert_allclose(model(x)['merged_logits'].numpy(), sum(branches),
                             rtol=1e-4, atol=1e-4)


def test_dropout_only_in_training():
  for meta, kw, count in ((V1, {}, 2), (MSC, {}, 2 + 5 * 2),
                          (V2, dict(atrous_rates=(6, 12)), 2 * 2)):
    model = build_model(vgg_options(meta, crop=(33, 33), classes=3, **kw))
    dropouts = [l for l in model.layers if l.__class__.__name__ == 'Dropout']
    assert len(dropouts) == count and {d.rate for d in dropouts} == {0.5}
  x = images(size=33)
  a = model(x, training=False)['merged_logits'].numpy()
  np.testing.assert_array_equal(a, model(x, training=False)['merged_logits'])
  t1 = model(x, training=True)['merged_logits'].numpy()
  t2 = model(x, training=True)['merged_logits'].numpy()
  assert not np.allclose(a, t1) and not np.allclose(t1, t2)


# --- multi-scale inputs and training --------------------------------------------
def test_image_pyramid_max_merge_and_one_trainer_step(tmp_path):
  options = vgg_options(V1, crop=(33, 33), classes=3,
                        image_pyramid=(1.0, 0.75, 0.5))
  model = build_model(options)
  out = model(images(2, 33))
  assert set(out) == {'logits_1.00', 'logits_0.75', 'logits_0.50',
                      'merged_logits'}
  per_scale = [out['logits_%.2f' % s].numpy() for s in (1.0, 0.75, 0.5)]
  assert all(p.shape == (2, 5, 5, 3) for p in per_scale)
  np.testing.assert_allclose(out['merged_logits'].numpy(),
                             np.max(per_scale, axis=0), rtol=1e-6)
  # Same weights at every scale (one fc6, one logits layer).
  assert sum(l.name == 'fc6' for l in model.layers) == 1
  labels = np.zeros((2, 33, 33, 1), np.int32)
  losses, total = softmax_cross_entropy_loss_for_each_scale(
      out, labels, 3, 255, upsample_logits=False)
  assert set(losses) == set(out)
  np.testing.assert_allclose(float(total),
                             sum(float(v) for v in losses.values()), rtol=1e-6)

  settings = TrainSettings(
      train_logdir=str(tmp_path), train_batch_size=2,
      learning_rate=LearningRateSettings(base_learning_rate=1e-3,
                                         training_number_of_steps=1),
      loss=LossSettings(upsample_logits=False),
      gradient_multipliers=GradientMultiplierSettings(True, 10.0),
      weight_decay=5e-4, fine_tune_batch_norm=False, log_steps=1)
  trainer = Trainer(options, settings, synthetic_dataset_fn(2))
  before = {n: v.numpy() for n, v in
            checkpoints.model_variables(trainer.model).items()}
  metrics = trainer.train()
  assert trainer.step == 1 and np.isfinite(metrics['total_loss'])
  after = checkpoints.model_variables(trainer.model)
  for name in ('conv1_1/weights', 'fc6/weights', 'logits/semantic/weights'):
    assert not np.array_equal(after[name].numpy(), before[name]), name
  assert trainer.multiplier.multipliers['logits/semantic/biases'] == 20.0


def test_predictor_multi_scale_and_flip():
  options = vgg_options(V2, crop=(33, 33), classes=3, atrous_rates=(6, 12))
  predictor = build_predictor(options, eval_scales=(0.75, 1.0),
                              add_flipped_images=True)
  out = predictor(images(1, 33))
  assert out['semantic'].shape == (1, 33, 33)
  np.testing.assert_allclose(out['semantic_prob'].numpy().sum(-1), 1.0, atol=1e-5)


# --- checkpoints ----------------------------------------------------------------
def test_tf1_checkpoint_round_trip_and_largefov_is_one_aspp_branch(tmp_path):
  options = vgg_options(MSC, crop=(33, 33), classes=4)
  source = build_model(options)
  randomise(source, seed=1)
  prefix = checkpoints.save_tf1_checkpoint(source, str(tmp_path / 'msc' / 'model.ckpt'))
  fresh = build_model(options)
  report = checkpoints.load_tf1_checkpoint(fresh, prefix)
  assert len(report.loaded) == len(checkpoints.model_variables(source)) == 2 * 26
  x = images(2, 33)
  np.testing.assert_array_equal(fresh(x)['merged_logits'].numpy(),
                                source(x)['merged_logits'].numpy())
  # LargeFOV == DeepLab-ASPP with the single rate 12 (v2 Table 3), same names.
  v1 = build_model(vgg_options(V1, crop=(33, 33), classes=4))
  randomise(v1, seed=2)
  v1_prefix = checkpoints.save_tf1_checkpoint(v1, str(tmp_path / 'v1' / 'model.ckpt'))
  one_branch = build_model(vgg_options(V2, crop=(33, 33), classes=4,
                                       atrous_rates=(12,)))
  checkpoints.load_tf1_checkpoint(one_branch, v1_prefix)
  np.testing.assert_array_equal(one_branch(x)['merged_logits'].numpy(),
                                v1(x)['merged_logits'].numpy())


# --- options --------------------------------------------------------------------
@pytest.mark.parametrize('changes,message', [
    (dict(model_variant='resnet_v1_101'),
     "'deeplab_v1_largefov' is built on VGG-16.*got model_variant 'resnet_v1_101'"),
    (dict(output_stride=16), "'vgg_16' is built at output_stride 8 only, got 16"),
    (dict(decoder_output_stride=(4,)), 'has no decoder.*decoder_output_stride=\\[4\\]'),
    (dict(atrous_rates=(6, 12)), 'one fc6 at rate 12; got atrous_rates=\\[6, 12\\]'),
    (dict(meta_architecture=V2), 'needs atrous_rates.*6,12,18,24.*got None'),
    (dict(meta_architecture=V2, atrous_rates=(6,), aspp_with_batch_norm=False,
          logits_kernel_size=3), '1x1 fc8; got logits_kernel_size=3'),
    (dict(meta_architecture=V2, model_variant='resnet_v1_101', atrous_rates=(6,)),
     'set aspp_with_batch_norm=False and logits_kernel_size=3 \\(got '
     'aspp_with_batch_norm=True, logits_kernel_size=1\\)'),
    (dict(meta_architecture='deeplab_v3'),
     "'vgg_16' is DeepLab v1/v2's VGG-16; it needs meta_architecture"),
    (dict(meta_architecture='deeplab_v4'), "must be one of .*got 'deeplab_v4'"),
    (dict(multi_grid=(1, 2, 4)), "multi_grid=\\[1, 2, 4\\] is only used by"),
])
def test_bad_option_combinations(changes, message):
  base = dict(model_variant='vgg_16', meta_architecture=V1, crop_size=(65, 65))
  base.update(changes)
  with pytest.raises(OptionsError, match=message):
    build_model(ModelOptions(**base))


# --- ImageNet VGG-16 weights ----------------------------------------------------
@pytest.fixture(scope='module')
def vgg_arrays():
  """Random VGG-16 conv weights, HWIO with BGR conv1_1 inputs, and biases."""
  rng = np.random.default_rng(7)
  return {name: (rng.standard_normal(shape).astype(np.float32),
                 rng.standard_normal(shape[-1]).astype(np.float32))
          for name, shape in vgg16_imagenet.CONV_SHAPES.items()}


def _write_keras_h5(path, arrays):
  """The legacy keras.applications layout: a group per layer, weight_names."""
  with h5py.File(path, 'w') as f:
    names = [vgg16_imagenet.KERAS_NAMES[n] for n in arrays]
    f.attrs['layer_names'] = [n.encode() for n in names]
    for name, (kernel, bias) in arrays.items():
      keras_name = vgg16_imagenet.KERAS_NAMES[name]
      g = f.create_group(keras_name)
      weight_names = ['%s/kernel:0' % keras_name, '%s/bias:0' % keras_name]
      g.attrs['weight_names'] = [n.encode() for n in weight_names]
      g[weight_names[0]] = kernel
      g[weight_names[1]] = bias


def test_keras_h5_weights_land_in_the_caffe_named_layers(tmp_path, vgg_arrays):
  path = str(tmp_path / 'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')
  _write_keras_h5(path, vgg_arrays)
  model = build_model(vgg_options(V1, crop=None))
  report = vgg16_imagenet.load_vgg16_weights(model, path)
  assert len(report.loaded) == 13
  assert report.not_loaded == ['fc6', 'fc7', 'logits.semantic']  # notop file
  kernel, bias = vgg_arrays['conv1_1']
  got = model.get_layer('conv1_1').get_weights()
  np.testing.assert_array_equal(got[0], kernel[:, :, ::-1, :])  # BGR -> RGB
  np.testing.assert_array_equal(got[1], bias)
  for name in ('conv2_1', 'conv5_3'):
    got = model.get_layer(name).get_weights()
    np.testing.assert_array_equal(got[0], vgg_arrays[name][0])
    np.testing.assert_array_equal(got[1], vgg_arrays[name][1])
  rgb = build_model(vgg_options(V1, crop=None))
  vgg16_imagenet.load_vgg16_weights(rgb, path, input_channels='rgb')
  np.testing.assert_array_equal(rgb.get_layer('conv1_1').get_weights()[0], kernel)


def test_caffe_npz_with_subsampled_fc_into_every_aspp_branch(tmp_path, vgg_arrays):
  rng = np.random.default_rng(3)
  fc6 = rng.standard_normal((1024, 512, 3, 3)).astype(np.float32)  # Caffe OIHW
  fc7 = rng.standard_normal((1024, 1024)).astype(np.float32)       # InnerProduct
  data = {}
  for name, (kernel, bias) in vgg_arrays.items():
    data[name + '/weights'] = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    data[name + '/biases'] = bias
  data.update({'fc6/weights': fc6, 'fc6/biases': np.arange(1024.0, dtype=np.float32),
               'fc7/weights': fc7, 'fc7/biases': -np.arange(1024.0, dtype=np.float32)})
  path = str(tmp_path / 'vgg16_deeplab_init.npz')
  np.savez(path, **data)
  model = build_model(vgg_options(V2, crop=None, atrous_rates=(6, 12)))
  report = vgg16_imagenet.load_vgg16_weights(model, path)
  assert report.not_loaded == ['logits.semantic', 'logits.semantic_1']
  np.testing.assert_array_equal(model.get_layer('conv1_1').get_weights()[0],
                                vgg_arrays['conv1_1'][0][:, :, ::-1, :])
  np.testing.assert_array_equal(model.get_layer('conv4_2').get_weights()[0],
                                vgg_arrays['conv4_2'][0])
  for suffix in ('', '_1'):
    k6, b6 = model.get_layer('fc6' + suffix).get_weights()
    np.testing.assert_array_equal(k6, fc6.transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(b6, np.arange(1024.0))
    k7, _ = model.get_layer('fc7' + suffix).get_weights()
    np.testing.assert_array_equal(k7[0, 0], fc7.T)
  # The same weights as a TF1 checkpoint for --tf_initial_checkpoint.
  prefix = vgg16_imagenet.write_initial_checkpoint(
      path, str(tmp_path / 'init' / 'model.ckpt'), branches=2)
  fresh = build_model(vgg_options(V2, crop=None, atrous_rates=(6, 12)))
  loaded = checkpoints.load_tf1_checkpoint(fresh, str(tmp_path / 'init'),
                                           ignore_missing=True)
  assert sorted(loaded.missing) == ['logits/semantic/biases',
                                    'logits/semantic/weights',
                                    'logits/semantic_1/biases',
                                    'logits/semantic_1/weights']
  assert not loaded.unused and prefix.endswith('model.ckpt')
  for a, b in zip(fresh.get_layer('fc7_1').get_weights(),
                  model.get_layer('fc7_1').get_weights()):
    np.testing.assert_array_equal(a, b)


def test_full_fc_layers_are_decimated_and_thinned():
  rng = np.random.default_rng(0)
  fc6 = (rng.standard_normal((7, 7, 2, 16)), rng.standard_normal(16))
  fc7 = (rng.standard_normal((1, 1, 16, 12)), rng.standard_normal(12))
  (k6, b6), (k7, b7), kept6, kept7 = vgg16_imagenet.subsample_fc(fc6, fc7, filters=4,
                                                              seed=5)
  assert k6.shape == (3, 3, 2, 4) and k7.shape == (1, 1, 4, 4)
  assert list(kept6) == sorted(set(kept6)) and len(kept7) == 4
  for i, ti in enumerate((0, 3, 6)):   # every third tap: 7x7 -> 3x3
    for j, tj in enumerate((0, 3, 6)):
      np.testing.assert_array_equal(k6[i, j], fc6[0][ti, tj][:, kept6])
  np.testing.assert_array_equal(b6, fc6[1][kept6])
  # fc7's inputs are the filters fc6 kept.
  np.testing.assert_array_equal(k7[0, 0], fc7[0][0, 0][np.ix_(kept6, kept7)])
  np.testing.assert_array_equal(b7, fc7[1][kept7])
  again = vgg16_imagenet.subsample_fc(fc6, fc7, filters=4, seed=5)
  np.testing.assert_array_equal(again[2], kept6)
  assert not np.array_equal(vgg16_imagenet.subsample_fc(fc6, fc7, filters=4,
                                                     seed=6)[2], kept6)


def test_caffe_layouts_to_hwio():
  rng = np.random.default_rng(0)
  hwio = rng.standard_normal((2, 3, 4, 5))
  oihw = hwio.transpose(3, 2, 0, 1)
  np.testing.assert_array_equal(
      vgg16_imagenet.caffe_kernel_to_hwio(oihw, [(2, 3, 4, 5)]), hwio)
  np.testing.assert_array_equal(
      vgg16_imagenet.caffe_kernel_to_hwio(hwio, [(2, 3, 4, 5)]), hwio)
  # InnerProduct: input flattened as C, H, W.
  inner = oihw.reshape(5, 4 * 2 * 3)
  np.testing.assert_array_equal(
      vgg16_imagenet.caffe_kernel_to_hwio(inner, [(2, 3, 4, 5)]), hwio)
  assert inner[1, 2 * 6 + 1 * 3 + 2] == hwio[1, 2, 2, 1]
  with pytest.raises(vgg16_imagenet.VggWeightsError, match='shape \\(7, 7\\)'):
    vgg16_imagenet.caffe_kernel_to_hwio(np.zeros((7, 7)), [(2, 3, 4, 5)])


def test_weight_file_errors(tmp_path, vgg_arrays):
  partial = {k: v for k, v in vgg_arrays.items() if k != 'conv3_2'}
  path = str(tmp_path / 'partial.npz')
  np.savez(path, **{k + '/weights': w for k, (w, _) in partial.items()},
           **{k + '/biases': b for k, (_, b) in partial.items()})
  model = build_model(vgg_options(V1, crop=None))
  with pytest.raises(vgg16_imagenet.VggWeightsError, match="has no 'conv3_2'"):
    vgg16_imagenet.load_vgg16_weights(model, path)
  raw = dict(vgg_arrays, fc6=(np.zeros((3, 3, 512, 1024)), np.zeros(1024)))
  with pytest.raises(vgg16_imagenet.VggWeightsError, match='fc6 without fc7'):
    vgg16_imagenet.deeplab_weights(raw)
  with pytest.raises(vgg16_imagenet.VggWeightsError, match='keras .h5'):
    vgg16_imagenet.read_weights(str(tmp_path / 'weights.caffemodel'))
