"""EdgeTPU-MobileNet backbone of EdgeTPU-DeepLab: ``mobilenet_edgetpu``.

The backbone of the model zoo's EdgeTPU-DeepLab (EdgeMobilenet-1.0) and
EdgeTPU-DeepLab-slim (EdgeMobilenet-0.75, ``depth_multiplier=0.75``)
Cityscapes checkpoints (``g3doc/model_zoo.md``, "EdgeTPU-DeepLab models").
Built as the original DeepLab ``core/feature_extractor.py``
(``mobilenet_edgetpu`` -> ``_mobilenet_v3``) builds slim's
``nets/mobilenet/mobilenet_v3.py`` ``V3_EDGETPU`` through ``mobilenet.py``
``mobilenet_base``, so that the zoo checkpoints load by variable name. What
that code does, and what this module reproduces:

  * variables live under ``MobilenetEdgeTPU/`` (the original ``name_scope``
    entry); slim's default scopes number the layers ``Conv``,
    ``expanded_conv``, ``expanded_conv_1`` .. ``expanded_conv_21``,
    ``Conv_1``, end points ``layer_1`` .. ``layer_24``;
  * the whole conv_defs spec is built, up to ``layer_24``, the 1280-channel
    1x1 ``Conv_1`` (the original drops any ``final_endpoint`` it is given);
    the features DeepLab's head sees are its output;
  * the first nine bottlenecks are *fused* (``mbv3_fused``): a 3x3 conv does
    the expansion (and the block's stride) and there is no depthwise conv;
    the first of them expands by 1, i.e. not at all, and is a bare 1x1
    projection (``expanded_conv/project`` only). The other thirteen are
    ordinary inverted residuals (1x1 expand -> 3x3 / 5x5 depthwise -> 1x1
    project); one of them (``expanded_conv_13``, 96 -> 96 at stride 1) has
    its residual switched off in the spec;
  * every activation is ReLU (not ReLU6): the conv defs' own defaults
    (``mobilenet_v3.DEFAULTS``) sit inside DeepLab's
    ``mobilenet_v2_arg_scope`` and win over its relu6; projections are
    linear; no squeeze-excite, no hard-swish;
  * channel rounding is ``_make_divisible(n * multiplier, 8, 8)`` for every
    multiplier (the original discards ``divisible_by``), ``Conv_1`` included
    (no fine-grain classification mode: 0.75 gives 960 channels);
    expansions are ``_make_divisible(input depth * factor, 8)``;
  * TF ``SAME`` padding, BatchNorm epsilon 1e-3 (slim default) and decay
    0.997, weights truncated normal (stddev 0.09), L2 on conv ``weights``
    only (``mobilenet_v2_arg_scope``);
  * output stride as ``mobilenet_base`` (shared with MobileNetV2 / V3); the
    fused blocks stride at output stride 4 and 8, below any DeepLab output
    stride, so only ordinary bottlenecks are ever de-strided and dilated;
  * the original ``networks_to_feature_maps`` has no ``mobilenet_edgetpu``
    entry, so the original cannot build a decoder on it (a KeyError in
    ``refine_by_decoder``); the model zoo uses none (its table: ASPP and
    decoder "N/A"). Here a decoder is refused up front.
"""
from deeplab_tf.models.backbones.mobilenet_v2 import (MOBILENET_BN, Conv,
                                                      ExpandedConv,
                                                      expand_input,
                                                      mobilenet_base)

SCOPE = 'MobilenetEdgeTPU'
# feature_extractor._MOBILENET_EDGETPU: the last layer of V3_EDGETPU.
FINAL_ENDPOINT = 'layer_24'
# Channel rounding of every layer, whatever the depth multiplier.
DIVISIBLE_BY = 8
MIN_DEPTH = 8


def _fused(ef, n, k=3, s=1):
  """A fused bottleneck: k x k expansion conv (stride s) -> 1x1 projection."""
  return ExpandedConv(n, stride=s, kernel_size=k, expansion_size=expand_input(ef),
                      activation='relu', fused=True)


def _block(ef, n, k=3, s=1, residual=True):
  """An inverted residual: 1x1 expand -> k x k depthwise -> 1x1 projection."""
  return ExpandedConv(n, stride=s, kernel_size=k, expansion_size=expand_input(ef),
                      activation='relu', residual=residual)


# Layer i + 1 of the end points is entry i.
EDGETPU_SPEC = (
    Conv(32, kernel_size=3, stride=2, activation='relu'),   # layer_1  Conv
    _fused(1, 16),                                          # layer_2  expanded_conv
    _fused(8, 32, s=2),                                     # layer_3  (stride 4)
    _fused(4, 32),
    _fused(4, 32),
    _fused(4, 32),
    _fused(8, 48, s=2),                                     # layer_7  (stride 8)
    _fused(4, 48),
    _fused(4, 48),
    _fused(4, 48),                                          # layer_10
    _block(8, 96, s=2),                                     # layer_11 (stride 16)
    _block(4, 96),
    _block(4, 96),
    _block(4, 96),
    _block(8, 96, residual=False),                          # layer_15 expanded_conv_13
    _block(4, 96),
    _block(4, 96),
    _block(4, 96),
    _block(8, 160, k=5, s=2),                               # layer_19 (stride 32)
    _block(4, 160, k=5),
    _block(4, 160, k=5),
    _block(4, 160, k=5),
    _block(8, 192),                                         # layer_23 expanded_conv_21
    Conv(1280, kernel_size=1, activation='relu'),           # layer_24 Conv_1
)


def mobilenet_edgetpu(b, images, output_stride, depth_multiplier=1.0,
                      scope=SCOPE):
  """Builds ``EDGETPU_SPEC`` to ``layer_24``; returns ``(features, end_points)``."""
  return mobilenet_base(b, images, EDGETPU_SPEC, scope,
                        depth_multiplier=depth_multiplier,
                        output_stride=output_stride,
                        final_endpoint=FINAL_ENDPOINT,
                        divisible_by=DIVISIBLE_BY, min_depth=MIN_DEPTH,
                        bn=MOBILENET_BN)
