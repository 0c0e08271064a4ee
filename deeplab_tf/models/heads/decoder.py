"""The DeepLabv3+ decoder: refine encoder features with low-level features.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation" (ECCV 2018), Sec. 3.1 and Fig. 2. Mirrors the original
``model.refine_by_decoder``: for each decoder output stride, the low-level end
point is projected to 48 channels (1x1 conv + BN + ReLU), both it and the
current features are resized (align_corners) to ``scale_dimension(crop,
1/stride)``, concatenated with the *encoder features first*, and smoothed by
two 3x3 (separable) convs. ``decoder_use_sum_merge`` (MobileNetV3 LR-ASPP)
adds instead of concatenating, after one conv on the encoder branch.
"""
import keras

from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.heads.aspp import head_batch_norm

DECODER_SCOPE = 'decoder'


def _resize_to_stride(features, options, stride, reference):
  """Align-corners resize to ``scale_dimension(crop, 1/stride)`` (or the reference)."""
  if options.crop_size is not None:
    size = [dl_layers.scale_dimension(d, 1.0 / stride) for d in options.crop_size]
    return dl_layers.ResizeBilinear(size)(features)
  # No crop size: the low-level end point already has that size, because
  # ceil-strided convs give scale_dimension(d, 1/stride) == ceil(d/stride).
  return dl_layers.ResizeBilinear()(features, reference)


def refine_by_decoder(b, features, end_points, backbone, options):
  if options.decoder_output_is_logits:
    bn, activation, kernel = None, None, 1
    use_separable = False
  else:
    bn = head_batch_norm(options)
    activation = 'relu6' if options.use_bounded_activation else 'relu'
    kernel = 3
    use_separable = options.decoder_use_separable_conv
  projected_filters = 48
  if options.decoder_use_sum_merge:
    projected_filters = options.decoder_filters
  decoder_features = features
  scope_suffix = ''
  for stage, stride in enumerate(options.decoder_output_stride):
    feature_names = backbone.decoder_end_points[stride]
    if stage:
      scope_suffix = '_{}'.format(stage)
    for i, name in enumerate(feature_names):
      low_level = end_points[backbone.end_point_key(name)]
      projected = b.conv2d(
          low_level, '%s/feature_projection%d%s' % (DECODER_SCOPE, i,
                                                    scope_suffix),
          projected_filters, 1, bn=bn, activation=activation)
      pair = [_resize_to_stride(f, options, stride, low_level)
              for f in (decoder_features, projected)]
      if options.decoder_use_sum_merge:
        decoder_features = _sum_merge(b, pair, options, use_separable, kernel,
                                      bn, activation, scope_suffix)
      else:
        if not use_separable:
          # The original prepends the feature index to the suffix here.
          scope_suffix = str(i) + scope_suffix
        decoder_features = _concat_merge(b, pair, options, use_separable, bn,
                                         activation, scope_suffix)
  return decoder_features


def _sum_merge(b, pair, options, use_separable, kernel, bn, activation, suffix):
  if use_separable:
    x = b.split_separable_conv2d(
        pair[0], '%s/decoder_split_sep_conv0%s' % (DECODER_SCOPE, suffix),
        options.decoder_filters, bn=bn, activation=activation)
  else:
    x = b.conv2d(pair[0], '%s/decoder_conv0%s' % (DECODER_SCOPE, suffix),
                 options.decoder_filters, kernel, bn=bn, activation=activation)
  return x + pair[1]


def _concat_merge(b, pair, options, use_separable, bn, activation, suffix):
  x = keras.layers.Concatenate(axis=3)(pair)
  if use_separable:
    for j in range(2):
      x = b.split_separable_conv2d(
          x, '%s/decoder_conv%d%s' % (DECODER_SCOPE, j, suffix),
          options.decoder_filters, bn=bn, activation=activation)
    return x
  # slim.repeat(..., 2, conv2d, scope='decoder_conv<suffix>') names the convs
  # decoder_conv<suffix>/decoder_conv<suffix>_1 and _2.
  base = 'decoder_conv' + suffix
  for j in range(2):
    x = b.conv2d(x, '%s/%s/%s_%d' % (DECODER_SCOPE, base, base, j + 1),
                 options.decoder_filters, 3, bn=bn, activation=activation)
  return x
