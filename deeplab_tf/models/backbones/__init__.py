"""Backbone registry: model_variant -> builder, scope, decoder end points, input range.

The counterpart of the original ``feature_extractor`` maps (``networks_map``,
``name_scope``, ``networks_to_feature_maps``, ``_PREPROCESS_FN``,
``mean_pixel``). A backbone builder takes ``(builder, normalised_images,
output_stride, multi_grid, depth_multiplier, divisible_by, scope,
use_bounded_activation, nas_architecture_options)`` and returns ``(features,
end_points)``; it ignores the keywords it has no use for. As the original
``extract_features``, only Xception reads ``use_bounded_activation`` (the ASPP
and decoder read it too), only the nas_* variants
``nas_architecture_options``.

``vgg_16`` is DeepLab v1/v2's VGG-16 (``vgg16.py``), used only by the v1/v2
meta-architectures; it is not one of the original ``networks_map`` entries.
"""
import dataclasses
from typing import Callable, Dict, Optional, Tuple

from deeplab_tf.core import pixels
from deeplab_tf.models.backbones import mobilenet_edgetpu as _mobilenet_edgetpu
from deeplab_tf.models.backbones import mobilenet_v2 as _mobilenet_v2
from deeplab_tf.models.backbones import mobilenet_v3 as _mobilenet_v3
from deeplab_tf.models.backbones import nas_network as _nas
from deeplab_tf.models.backbones import resnet_v1_beta as _resnet
from deeplab_tf.models.backbones import vgg16 as _vgg16
from deeplab_tf.models.backbones import xception as _xception
from deeplab_tf.models.options import OptionsError

ZERO_MEAN_UNIT_RANGE = 'zero_mean_unit_range'
SUBTRACT_IMAGENET_MEAN = 'subtract_imagenet_mean'
# The backbone normalises its input itself (VGG-16: the Caffe mean, in its
# first layer).
NO_PREPROCESS = 'none'
# The pad value of each variant lives below data and models (core.pixels).
MEAN_RGB = pixels.IMAGENET_MEAN_RGB
mean_pixel = pixels.mean_pixel


@dataclasses.dataclass(frozen=True)
class Backbone:
  name: str
  build: Callable
  scope: str
  # decoder output stride -> end point names (original networks_to_feature_maps)
  decoder_end_points: Dict[int, Tuple[str, ...]]
  preprocess: str = ZERO_MEAN_UNIT_RANGE
  # Whether decoder end points are prefixed by the network scope (original:
  # MobileNet end points are not).
  end_points_scoped: bool = True
  uses_multi_grid: bool = False
  uses_depth_multiplier: bool = False
  # The only output strides it can be built at (None: 8, 16 and 32).
  output_strides: Optional[Tuple[int, ...]] = None
  # How many multi_grid rates it takes (its multi-grid block's units).
  multi_grid_length: int = 3
  # The pad value where the original's mean_pixel does not follow from
  # `preprocess` (None: the value `preprocess` maps to 0).
  pad_value: Optional[Tuple[float, float, float]] = None

  def end_point_key(self, name):
    return '%s/%s' % (self.scope, name) if self.end_points_scoped else name


def _xception_builder(variant):
  def build(b, images, output_stride, multi_grid=None, scope=None,
            use_bounded_activation=False, **unused):
    return _xception.xception(b, images, _xception.BLOCKS[variant](multi_grid),
                              output_stride, scope or variant,
                              use_bounded_activation=use_bounded_activation)
  return build


def _resnet_builder(depth_name, beta):
  def build(b, images, output_stride, multi_grid=None, scope=None, **unused):
    return _resnet.resnet_v1_network(b, images, depth_name, beta,
                                     output_stride, multi_grid, scope)
  return build


def _mobilenet_v2_builder(b, images, output_stride, depth_multiplier=1.0,
                          divisible_by=None, scope=None, **unused):
  return _mobilenet_v2.mobilenet_v2(b, images, output_stride,
                                    scope=scope or 'MobilenetV2',
                                    depth_multiplier=depth_multiplier,
                                    divisible_by=divisible_by)


def _mobilenet_v3_builder(build_fn):
  # The original _mobilenet_v3 discards divisible_by: V3 always rounds to 8.
  def build(b, images, output_stride, depth_multiplier=1.0, scope=None,
            **unused):
    return build_fn(b, images, output_stride,
                    depth_multiplier=depth_multiplier,
                    scope=scope or _mobilenet_v3.SCOPE)
  return build


def _mobilenet_edgetpu_builder(b, images, output_stride, depth_multiplier=1.0,
                               scope=None, **unused):
  # As _mobilenet_v3, the original mobilenet_edgetpu discards divisible_by.
  return _mobilenet_edgetpu.mobilenet_edgetpu(
      b, images, output_stride, depth_multiplier=depth_multiplier,
      scope=scope or _mobilenet_edgetpu.SCOPE)


def _nas_builder(build_fn, default_scope):
  # The original passes nas_architecture_options only to its nas_* variants.
  def build(b, images, output_stride, scope=None,
            nas_architecture_options=None, **unused):
    return build_fn(b, images, output_stride, scope=scope or default_scope,
                    nas_architecture_options=nas_architecture_options)
  return build


_XCEPTION_EP = 'entry_flow/block%d/unit_1/xception_module/separable_conv2_pointwise'
_EXIT_EP = 'exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise'


def _resnet_ep(block3_units):
  return {4: ('block1/unit_2/bottleneck_v1/conv3',),
          8: ('block2/unit_3/bottleneck_v1/conv3',),
          16: ('block3/unit_%d/bottleneck_v1/conv3' % block3_units,)}


REGISTRY: Dict[str, Backbone] = {}


# The value each input normalisation maps to 0: the pad value of the input
# pipeline, eval padding and export (original feature_extractor.mean_pixel).
_MEAN_OF_PREPROCESS = {ZERO_MEAN_UNIT_RANGE: (127.5, 127.5, 127.5),
                       SUBTRACT_IMAGENET_MEAN: pixels.IMAGENET_MEAN_RGB,
                       NO_PREPROCESS: pixels.CAFFE_MEAN_RGB}


def register(backbone):
  """Adds a backbone: the one registration a new model_variant needs."""
  REGISTRY[backbone.name] = backbone
  pixels.register_mean_pixel(backbone.name, backbone.pad_value or
                             _MEAN_OF_PREPROCESS[backbone.preprocess])
  return backbone


def names():
  """Every model_variant, sorted."""
  return sorted(REGISTRY)


for _v, _eps in (('xception_41', (2, 3)), ('xception_65', (2, 3)),
                 ('xception_71', (3, 5))):
  register(Backbone(_v, _xception_builder(_v), _v,
                    {4: (_XCEPTION_EP % _eps[0],), 8: (_XCEPTION_EP % _eps[1],),
                     16: (_EXIT_EP,)}, uses_multi_grid=True))

for _depth, _b3 in (('resnet_v1_50', 5), ('resnet_v1_101', 22)):
  register(Backbone(_depth, _resnet_builder(_depth, beta=False), _depth,
                    _resnet_ep(_b3), preprocess=SUBTRACT_IMAGENET_MEAN,
                    uses_multi_grid=True))
  register(Backbone(_depth + '_beta', _resnet_builder(_depth, beta=True),
                    _depth, _resnet_ep(_b3), uses_multi_grid=True))

# ResNet-18 (lite units): both name_scope 'resnet_v1_18', end points in the
# first unit of blocks 1-3, two multi-grid rates. The original mean_pixel
# lists only resnet_v1_50/101, so plain resnet_v1_18 pads with 127.5 although
# it subtracts the ImageNet mean (kept, as the original).
_R18_EP = 'block%d/unit_1/lite_bottleneck_v1/conv2'
for _v, _beta in (('resnet_v1_18', False), ('resnet_v1_18_beta', True)):
  register(Backbone(_v, _resnet_builder('resnet_v1_18', beta=_beta),
                    'resnet_v1_18',
                    {4: (_R18_EP % 1,), 8: (_R18_EP % 2,), 16: (_R18_EP % 3,)},
                    preprocess=(ZERO_MEAN_UNIT_RANGE if _beta
                                else SUBTRACT_IMAGENET_MEAN),
                    uses_multi_grid=True, multi_grid_length=2,
                    pad_value=(127.5, 127.5, 127.5)))

register(Backbone('mobilenet_v2', _mobilenet_v2_builder, 'MobilenetV2',
                  {4: ('layer_4/depthwise_output',),
                   8: ('layer_7/depthwise_output',),
                   16: ('layer_14/depthwise_output',)},
                  end_points_scoped=False, uses_depth_multiplier=True))

# feature_extractor.networks_to_feature_maps / name_scope (both 'MobilenetV3').
register(Backbone('mobilenet_v3_large_seg',
                  _mobilenet_v3_builder(_mobilenet_v3.mobilenet_v3_large_seg),
                  _mobilenet_v3.SCOPE,
                  {4: ('layer_4/depthwise_output',),
                   8: ('layer_7/depthwise_output',),
                   16: ('layer_13/depthwise_output',)},
                  end_points_scoped=False, uses_depth_multiplier=True))
register(Backbone('mobilenet_v3_small_seg',
                  _mobilenet_v3_builder(_mobilenet_v3.mobilenet_v3_small_seg),
                  _mobilenet_v3.SCOPE,
                  {4: ('layer_2/depthwise_output',),
                   8: ('layer_4/depthwise_output',),
                   16: ('layer_9/depthwise_output',)},
                  end_points_scoped=False, uses_depth_multiplier=True))
# name_scope 'MobilenetEdgeTPU'; networks_to_feature_maps has no entry for it,
# so no decoder end points (the original cannot build its decoder).
register(Backbone('mobilenet_edgetpu', _mobilenet_edgetpu_builder,
                  _mobilenet_edgetpu.SCOPE, {},
                  end_points_scoped=False, uses_depth_multiplier=True))

# NAS backbones (nas_network.py): name_scope 'pnasnet' / 'hnasnet'; as
# MobileNet, their end points carry no scope. Which output strides they take
# depends on nas_architecture_options (validation.py).
register(Backbone('nas_pnasnet', _nas_builder(_nas.pnasnet, _nas.PNASNET_SCOPE),
                  _nas.PNASNET_SCOPE,
                  {4: ('Stem',), 8: ('Cell_3',), 16: ('Cell_7',)},
                  end_points_scoped=False))
register(Backbone('nas_hnasnet', _nas_builder(_nas.hnasnet, _nas.HNASNET_SCOPE),
                  _nas.HNASNET_SCOPE,
                  {4: ('Cell_2',), 8: ('Cell_5',), 16: ('Cell_7',)},
                  end_points_scoped=False))

# DeepLab v1/v2's VGG-16: Caffe layer names without a network scope, no
# decoder end points, output stride 8 only (v1 Sec. 3.1).
VGG_16 = 'vgg_16'
register(Backbone(VGG_16, _vgg16.vgg_16, '', {}, preprocess=NO_PREPROCESS,
                  end_points_scoped=False,
                  output_strides=(_vgg16.OUTPUT_STRIDE,)))


def get_backbone(model_variant) -> Backbone:
  if model_variant not in REGISTRY:
    raise OptionsError('Unknown model_variant %r; accepted: %s'
                       % (model_variant, ', '.join(sorted(REGISTRY))))
  return REGISTRY[model_variant]
