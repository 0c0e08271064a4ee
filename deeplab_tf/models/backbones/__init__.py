"""Backbone registry: model_variant -> builder, scope, decoder end points, input range.

The counterpart of the original ``feature_extractor`` maps (``networks_map``,
``name_scope``, ``networks_to_feature_maps``, ``_PREPROCESS_FN``,
``mean_pixel``). A backbone builder takes ``(builder, normalised_images,
output_stride, multi_grid, depth_multiplier, divisible_by, scope,
use_bounded_activation)`` and returns ``(features, end_points)``; it ignores
the keywords it has no use for. As the original ``extract_features``, only
Xception reads ``use_bounded_activation`` (the ASPP and decoder read it too).

``vgg_16`` is DeepLab v1/v2's VGG-16 (``vgg16.py``), used only by the v1/v2
meta-architectures; it is not one of the original ``networks_map`` entries.
"""
import dataclasses
from typing import Callable, Dict, Optional, Tuple

from deeplab_tf.core import pixels
from deeplab_tf.models.backbones import mobilenet_v2 as _mobilenet_v2
from deeplab_tf.models.backbones import mobilenet_v3 as _mobilenet_v3
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
    blocks = _resnet.resnet_blocks(_resnet.UNITS[depth_name], multi_grid)
    return _resnet.resnet_v1(b, images, blocks, output_stride,
                             scope or depth_name, beta=beta)
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
  pixels.register_mean_pixel(backbone.name,
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
