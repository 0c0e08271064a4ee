"""MobileNetV3 backbones of DeepLab: ``mobilenet_v3_large_seg`` and ``mobilenet_v3_small_seg``.

Howard et al., "Searching for MobileNetV3" (ICCV 2019), Tables 1 and 2, with
the segmentation changes of its Sec. 6.3 (last stage at half width, LR-ASPP
head). Built as the original DeepLab ``core/feature_extractor.py``
(``mobilenet_v3_large_seg`` / ``mobilenet_v3_small_seg`` -> ``_mobilenet_v3``)
builds slim's ``nets/mobilenet/mobilenet_v3.py`` ``V3_LARGE`` / ``V3_SMALL``
through ``nets/mobilenet/mobilenet.py`` ``mobilenet_base``, so that a model-zoo
checkpoint (``deeplab_mnv3_{large,small}_cityscapes_trainfine``) loads by
variable name. What that code does, and what this module reproduces:

  * variables live under ``MobilenetV3/``; slim's default scopes number the
    layers ``Conv``, ``expanded_conv``, ``expanded_conv_1``, ... ``Conv_1``
    and the end points ``layer_1`` .. (one-based, in spec order);
  * the network stops at the 1x1 conv after the last bottleneck
    (``layer_17`` large, ``layer_13`` small): the avg-pool and the
    biased 1280/1024-channel conv of the classifier are never built;
  * the seg variants halve ``num_outputs`` of the last three bottlenecks and of
    that 1x1 conv, and re-derive the expansion factor of the three bottlenecks
    so that their *expanded* widths are 336/480/480 (large) and 144/288/288
    (small): factor = new expansion / num_outputs of the previous spec entry,
    taken after that entry was itself halved (feature_extractor.py);
  * activations are explicit per layer: ``hard_swish`` on the stem conv and
    the last 1x1 conv, and ``relu`` (not relu6) or ``hard_swish`` inside each
    bottleneck (expand and depthwise; the projection is linear). The relu6 of
    DeepLab's ``mobilenet_v2_arg_scope`` never reaches a layer because the
    conv defs' own defaults (relu) sit inside it and every op names its own;
  * squeeze-excite (``conv_blocks.squeeze_excite`` with squeeze_factor 4,
    divisible_by 8) gates the depthwise output, before the projection:
    spatial mean -> 1x1 conv + biases + relu (``squeeze_excite/Conv``) ->
    1x1 conv + biases + gate (``squeeze_excite/Conv_1``), no BatchNorm; the
    gate is ``relu6(x + 3) * 0.16667`` (mobilenet_v3.py), i.e. DeepLab's
    ``utils.q_sigmoid``, not an exact 1/6;
  * channel rounding is always ``_make_divisible(n * multiplier, 8, 8)``: the
    original ``_mobilenet_v3`` discards ``divisible_by`` and relies on
    ``mobilenet.depth_multiplier``'s defaults, unlike MobileNetV2 whose
    divisor drops to 1 for multipliers other than 1;
  * TF ``SAME`` padding everywhere (``use_explicit_padding`` is never set),
    BatchNorm epsilon 1e-3 (slim default) and decay 0.997
    (``mobilenet_v2_arg_scope``);
  * output_stride: as MobileNetV2 (``mobilenet_base``): once the requested
    stride is reached a stride-2 layer runs at stride 1 and later layers are
    dilated; the residual test uses the stride the layer *runs* at, so a
    de-strided bottleneck whose depth is unchanged gets a residual
    (``expanded_conv_8`` of the small variant at output_stride <= 16).
"""
import dataclasses

import keras

from deeplab_tf.models.backbones.mobilenet_v2 import (MOBILENET_BN,
                                                      MOBILENET_INIT, Conv,
                                                      ExpandedConv,
                                                      expand_input,
                                                      make_divisible,
                                                      mobilenet_base)

SCOPE = 'MobilenetV3'
# Last layer each seg variant builds (feature_extractor.py).
LARGE_FINAL_ENDPOINT = 'layer_17'
SMALL_FINAL_ENDPOINT = 'layer_13'
# Channel rounding of every layer, whatever the depth multiplier.
DIVISIBLE_BY = 8
MIN_DEPTH = 8


@dataclasses.dataclass(frozen=True)
class SqueezeExcite:
  """Squeeze-and-excitation on a bottleneck's depthwise output.

  Called as ``se(builder, x, scope)`` by ``mobilenet_v2.expanded_conv``; the
  two 1x1 convs are ``<scope>/Conv`` (squeeze) and ``<scope>/Conv_1``
  (excite), both with biases and without BatchNorm.
  """
  squeeze_factor: int = 4
  divisible_by: int = 8
  inner_activation: str = 'relu'
  # relu6(x + 3) * 0.16667, the same function as utils.q_sigmoid.
  gating: str = 'q_sigmoid'

  def squeeze_channels(self, channels):
    return make_divisible(channels / self.squeeze_factor, self.divisible_by)

  def __call__(self, b, x, scope):
    channels = x.shape[-1]
    # reduce_mean over H, W (pool=None in the original call).
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    squeezed = b.conv2d(pooled, scope + '/Conv', self.squeeze_channels(channels),
                        1, bn=None, activation=self.inner_activation,
                        weights_initializer=MOBILENET_INIT)
    gate = b.conv2d(squeezed, scope + '/Conv_1', channels, 1, bn=None,
                    activation=self.gating,
                    weights_initializer=MOBILENET_INIT)
    return x * gate


SE = SqueezeExcite()


def _block(ef, n, k, s=1, act='relu', se=False):
  """One V3 bottleneck: expansion factor, outputs, depthwise kernel, stride."""
  return ExpandedConv(n, stride=s, kernel_size=k, expansion_size=expand_input(ef),
                      activation=act, squeeze_excite=SE if se else None)


# The classification specs up to (and including) the last 1x1 conv; the
# network never goes further for segmentation. Layer i + 1 of the end points is
# entry i. Table 1 / Table 2 of the paper; expansion factors as slim writes
# them (expanded width / input width).
V3_LARGE_SPEC = (
    Conv(16, kernel_size=3, stride=2, activation='hard_swish'),     # layer_1
    _block(1, 16, 3),                                               # layer_2
    _block(4, 24, 3, s=2),
    _block(3, 24, 3),
    _block(3, 40, 5, s=2, se=True),                                 # layer_5
    _block(3, 40, 5, se=True),
    _block(3, 40, 5, se=True),
    _block(6, 80, 3, s=2, act='hard_swish'),                        # layer_8
    _block(2.5, 80, 3, act='hard_swish'),
    _block(184 / 80., 80, 3, act='hard_swish'),
    _block(184 / 80., 80, 3, act='hard_swish'),
    _block(6, 112, 3, act='hard_swish', se=True),                   # layer_12
    _block(6, 112, 3, act='hard_swish', se=True),
    _block(6, 160, 5, s=2, act='hard_swish', se=True),              # layer_14
    _block(6, 160, 5, act='hard_swish', se=True),
    _block(6, 160, 5, act='hard_swish', se=True),
    Conv(960, kernel_size=1, activation='hard_swish'),              # layer_17
)

V3_SMALL_SPEC = (
    Conv(16, kernel_size=3, stride=2, activation='hard_swish'),     # layer_1
    _block(1, 16, 3, s=2, se=True),                                 # layer_2
    _block(72 / 16., 24, 3, s=2),
    _block(88 / 24., 24, 3),
    _block(4, 40, 5, s=2, act='hard_swish', se=True),               # layer_5
    _block(6, 40, 5, act='hard_swish', se=True),
    _block(6, 40, 5, act='hard_swish', se=True),
    _block(3, 48, 5, act='hard_swish', se=True),
    _block(3, 48, 5, act='hard_swish', se=True),                    # layer_9
    _block(6, 96, 5, s=2, act='hard_swish', se=True),               # layer_10
    _block(6, 96, 5, act='hard_swish', se=True),
    _block(6, 96, 5, act='hard_swish', se=True),
    Conv(576, kernel_size=1, activation='hard_swish'),              # layer_13
)


def halve_last_stage(spec, changes):
  """The seg variants' reduction of feature_extractor.py.

  ``changes``: ``(index, expanded width or None)`` pairs, zero-based spec
  indices, applied in order. Each listed layer gets half its outputs; a
  bottleneck's expansion factor becomes ``expanded width / num_outputs of the
  previous entry``, read after the previous entry's own halving, so the
  factor is relative to the (halved) input width.
  """
  spec = list(spec)
  for index, expanded in changes:
    layer = dataclasses.replace(spec[index],
                                num_outputs=spec[index].num_outputs / 2)
    if expanded is not None:
      factor = expanded / spec[index - 1].num_outputs
      layer = dataclasses.replace(layer, expansion_size=expand_input(factor))
    spec[index] = layer
  return tuple(spec)


V3_LARGE_SEG_SPEC = halve_last_stage(
    V3_LARGE_SPEC, [(13, 336), (14, 480), (15, 480), (16, None)])
V3_SMALL_SEG_SPEC = halve_last_stage(
    V3_SMALL_SPEC, [(9, 144), (10, 288), (11, 288), (12, None)])


def mobilenet_v3(b, images, spec, final_endpoint, output_stride=None,
                 depth_multiplier=1.0, scope=SCOPE):
  """Builds ``spec`` up to ``final_endpoint``; returns ``(features, end_points)``."""
  return mobilenet_base(b, images, spec, scope,
                        depth_multiplier=depth_multiplier,
                        output_stride=output_stride,
                        final_endpoint=final_endpoint,
                        divisible_by=DIVISIBLE_BY, min_depth=MIN_DEPTH,
                        bn=MOBILENET_BN)


def mobilenet_v3_large_seg(b, images, output_stride, depth_multiplier=1.0,
                           scope=SCOPE):
  return mobilenet_v3(b, images, V3_LARGE_SEG_SPEC, LARGE_FINAL_ENDPOINT,
                      output_stride, depth_multiplier, scope)


def mobilenet_v3_small_seg(b, images, output_stride, depth_multiplier=1.0,
                           scope=SCOPE):
  return mobilenet_v3(b, images, V3_SMALL_SEG_SPEC, SMALL_FINAL_ENDPOINT,
                      output_stride, depth_multiplier, scope)
