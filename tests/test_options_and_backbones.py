"""ModelOptions defaults/validation and every backbone at every output stride."""
import json
import os

import keras
import numpy as np
import pytest

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, OptionsError, build_model
from deeplab_tf.models import backbones


def test_defaults_are_the_originals():
  o = ModelOptions()
  assert o.model_variant == 'mobilenet_v2'
  assert o.output_stride == 8  # original ModelOptions default
  assert o.aspp_with_separable_conv and o.decoder_use_separable_conv
  assert o.add_image_level_feature and o.aspp_with_batch_norm
  assert o.image_pooling_stride == (1, 1)
  assert o.merge_method == 'max' and o.prediction_with_upsampled_logits
  assert o.aspp_convs_filters == 256 and o.decoder_filters == 256
  assert o.batch_norm_decay == 0.9997
  assert o.atrous_rates is None and o.decoder_output_stride is None


def test_options_from_case_json(reference_dir):
  with open(os.path.join(reference_dir, 'case_C.json')) as f:
    case = json.load(f)
  o = ModelOptions.from_dict(case['model_options'])
  assert o.model_variant == 'resnet_v1_101_beta'
  assert o.multi_grid == (1, 2, 4) and o.atrous_rates == (6, 12, 18)
  assert o.crop_size == (129, 129) and not o.aspp_with_separable_conv
  with pytest.raises(ValueError, match='Unknown model options'):
    ModelOptions.from_dict(dict(case['model_options'], bogus=1), strict=True)


@pytest.mark.parametrize('changes,message', [
    (dict(model_variant='xception_99'), "Unknown model_variant 'xception_99'.*xception_65"),
    (dict(output_stride=12), 'output_stride must be 8, 16 or 32, got 12'),
    (dict(output_stride=8, decoder_output_stride=(16,)),
     'decoder_output_stride 16 must divide output_stride 8'),
    (dict(decoder_output_stride=(2,)), 'decoder_output_stride 2 is not available.*\\[4, 8, 16\\]'),
    (dict(model_variant='mobilenet_v2', multi_grid=(1, 2, 4)),
     "multi_grid=\\[1, 2, 4\\] is only used by xception.*'mobilenet_v2'"),
    (dict(multi_grid=(1, 2)), 'multi_grid must have 3 rates, got \\[1, 2\\]'),
    (dict(atrous_rates=(6, 12), aspp_with_squeeze_and_excitation=True),
     'atrous_rates=\\[6, 12\\] cannot be used with aspp_with_squeeze_and_excitation'),
    (dict(logits_kernel_size=3), 'logits_kernel_size must be 1.*got 3'),
    (dict(depth_multiplier=0.5), 'depth_multiplier=0.5 is only used by MobileNet'),
    (dict(merge_method='sum'), "merge_method must be one of .*'sum'"),
    (dict(crop_size=None, image_pooling_crop_size=(65, 65)), 'needs crop_size'),
])
def test_bad_options_are_refused_with_the_value(changes, message):
  base = dict(model_variant='xception_65', crop_size=(65, 65), output_stride=16)
  base.update(changes)
  with pytest.raises(OptionsError, match=message):
    build_model(ModelOptions(**base))


VARIANTS = ['xception_41', 'xception_65', 'xception_71', 'resnet_v1_50',
            'resnet_v1_50_beta', 'resnet_v1_101', 'resnet_v1_101_beta',
            'mobilenet_v2']


@pytest.mark.parametrize('variant', VARIANTS)
def test_backbone_output_strides(variant):
  """Features at ceil(crop / OS) for OS 8/16/32; decoder logits at stride 4."""
  crop = 65
  for os_ in (8, 16, 32):
    options = ModelOptions(model_variant=variant, crop_size=(crop, crop),
                           output_stride=os_, outputs_to_num_classes={'semantic': 2})
    model = build_model(options)
    size = -(-crop // os_)
    assert model.output['merged_logits'].shape == (None, size, size, 2), (variant, os_)
  options = ModelOptions(model_variant=variant, crop_size=(crop, crop),
                         output_stride=16, decoder_output_stride=(4,),
                         atrous_rates=(6, 12, 18))
  assert build_model(options).output['merged_logits'].shape == (None, 17, 17, 21)


def _names(options):
  return set(checkpoints.model_variables(build_model(options)))


def test_xception_depths_differ_by_middle_flow_units():
  """xception_65 has 8 more middle-flow units than xception_41 (3 separable convs each)."""
  n41 = _names(ModelOptions(model_variant='xception_41', crop_size=(33, 33)))
  n65 = _names(ModelOptions(model_variant='xception_65', crop_size=(33, 33)))
  n71 = _names(ModelOptions(model_variant='xception_71', crop_size=(33, 33)))
  # per unit: 3 x (depthwise weights + 4 BN + pointwise weights + 4 BN)
  assert len(n65) - len(n41) == 8 * 3 * 10
  assert 'xception_41/middle_flow/block1/unit_8/xception_module/separable_conv3_pointwise/weights' in n41
  assert not any('unit_9/' in n for n in n41)
  # xception_71 adds two entry blocks with 1x1 conv shortcuts:
  # 2 x (3 x 10 + shortcut weights + 4 BN) variables.
  assert len(n71) - len(n65) == 2 * (30 + 5)
  assert 'xception_71/entry_flow/block5/unit_1/xception_module/shortcut/weights' in n71


def test_resnet_names_and_roots():
  beta = _names(ModelOptions(model_variant='resnet_v1_50_beta', crop_size=(33, 33)))
  plain = _names(ModelOptions(model_variant='resnet_v1_50', crop_size=(33, 33)))
  assert 'resnet_v1_50/conv1_3/BatchNorm/gamma' in beta
  assert 'resnet_v1_50/conv1/weights' in plain
  assert 'resnet_v1_50/block3/unit_6/bottleneck_v1/conv3/weights' in plain
  assert not any('block3/unit_7/' in n for n in plain)
  # Shortcut convs only where the depth changes: the first unit of each block.
  shortcuts = sorted(n for n in plain if n.endswith('shortcut/weights'))
  assert shortcuts == ['resnet_v1_50/block%d/unit_1/bottleneck_v1/shortcut/weights' % i
                       for i in (1, 2, 3, 4)]


def test_mean_pixel():
  assert backbones.mean_pixel('resnet_v1_101') == [123.15, 115.90, 103.06]
  assert backbones.mean_pixel(None) == [123.15, 115.90, 103.06]
  assert backbones.mean_pixel('resnet_v1_101_beta') == [127.5] * 3
  assert backbones.mean_pixel('xception_65') == [127.5] * 3


def test_mobilenet_depth_multiplier_channels():
  model = build_model(ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                                   depth_multiplier=0.5))
  names = checkpoints.model_variables(model)
  # 32 * 0.5 = 16 first conv; 320 * 0.5 = 160 last projection (divisible_by 1).
  assert names['MobilenetV2/Conv/weights'].shape == (3, 3, 3, 16)
  assert names['MobilenetV2/expanded_conv_16/project/weights'].shape[-1] == 160


def test_train_mode_batch_norm_and_dropout():
  options = ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                         output_stride=16, aspp_with_concat_projection=False)
  frozen = build_model(options)
  trainable = build_model(options, fine_tune_batch_norm=True)
  # gamma and beta train in both phases, as the original.
  assert len(trainable.trainable_weights) == len(frozen.trainable_weights)
  n_bn = sum(1 for l in frozen.layers
             if isinstance(l, keras.layers.BatchNormalization))
  assert n_bn > 50 and sum(1 for w in frozen.trainable_weights
                           if w.name in ('gamma', 'beta')) == 2 * n_bn
  x = np.random.default_rng(0).uniform(0, 255, (2, 33, 33, 3)).astype(np.float32)
  # Frozen statistics: training=True is the inference computation ...
  np.testing.assert_array_equal(frozen(x, training=True)['merged_logits'],
                                frozen(x, training=False)['merged_logits'])
  # ... while fine-tuned BatchNorm uses the batch statistics.
  a = trainable(x, training=False)['merged_logits'].numpy()
  b = trainable(x, training=True)['merged_logits'].numpy()
  assert a.shape == b.shape and not np.allclose(a, b, rtol=1e-2, atol=0)
  # The concat-projection dropout is active in training only.
  with_dropout = build_model(options.replace(aspp_with_concat_projection=True))
  c = with_dropout(x, training=True)['merged_logits'].numpy()
  d = with_dropout(x, training=False)['merged_logits'].numpy()
  # (From-scratch logits are ~1e-10 in inference: compare relatively.)
  assert not np.allclose(c, d, rtol=1e-2, atol=0)


def test_atrous_schedule():
  from deeplab_tf.models.backbones.atrous import atrous_schedule
  # ResNet-50 units after the stride-4 root, OS16 -> 4 inside the blocks.
  strides = [1, 1, 2] + [1, 1, 1, 2] + [1] * 5 + [2] + [1, 1, 1]
  sched = atrous_schedule(strides, 4)
  assert sched[:7] == [(1, 1), (1, 1), (2, 1), (1, 1), (1, 1), (1, 1), (2, 1)]
  assert sched[12] == (1, 1)  # block3's last unit loses its stride ...
  assert sched[13:] == [(1, 2)] * 3  # ... and block4 runs at rate 2
  assert atrous_schedule(strides, None) == [(s, 1) for s in strides]
  with pytest.raises(ValueError, match='cannot be reached'):
    atrous_schedule(strides, 32)
  assert atrous_schedule([2, 2], 8, strict=False) == [(2, 1), (2, 1)]
