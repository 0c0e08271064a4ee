"""Checks ModelOptions before building, with errors that name the bad value.

The original code fails late (a shape error deep in the graph, or silently
ignores an option); here each incompatible combination is refused up front
with the value received and what is accepted.
"""
from deeplab_tf.core import geometry
from deeplab_tf.models import backbones
from deeplab_tf.models import options as options_lib
from deeplab_tf.models.backbones import nas_network
from deeplab_tf.models.heads import dense_prediction_cell
from deeplab_tf.models.options import OptionsError

_MERGE_METHODS = ('max', 'avg')
_V1 = (options_lib.META_ARCHITECTURE_V1_LARGEFOV,
       options_lib.META_ARCHITECTURE_V1_MSC_LARGEFOV)
_VGG_META_ARCHITECTURES = _V1 + (options_lib.META_ARCHITECTURE_V2_ASPP,)
NAS_VARIANTS = ('nas_pnasnet', 'nas_hnasnet')


def validate(options):
  backbone = backbones.get_backbone(options.model_variant)
  os_ = options.output_stride
  if os_ not in (8, 16, 32):
    raise OptionsError('output_stride must be 8, 16 or 32, got %r.' % (os_,))
  if backbone.output_strides and os_ not in backbone.output_strides:
    raise OptionsError(
        'model_variant %r is built at output_stride %s only, got %r.'
        % (options.model_variant,
           ' or '.join(str(s) for s in backbone.output_strides), os_))
  if options.model_variant in NAS_VARIANTS:
    _validate_nas(options)
  if not options.is_deeplab_v3:
    _validate_v1_v2(options)
    if options.dense_prediction_cell_config is not None:
      raise OptionsError(
          'dense_prediction_cell_config replaces the ASPP of deeplab_v3; '
          'meta_architecture %r has no ASPP to replace.'
          % options.meta_architecture)
  elif (options.dense_prediction_cell_config is not None and
        options.aspp_with_batch_norm):
    dense_prediction_cell.check_options(options)
  elif options.model_variant == backbones.VGG_16:
    raise OptionsError(
        "model_variant 'vgg_16' is DeepLab v1/v2's VGG-16; it needs "
        'meta_architecture %s, got %r.'
        % (' or '.join(_VGG_META_ARCHITECTURES), options.meta_architecture))
  if options.merge_method not in _MERGE_METHODS:
    raise OptionsError('merge_method must be one of %s, got %r.'
                       % (_MERGE_METHODS, options.merge_method))
  for name, n in options.outputs_to_num_classes.items():
    if n < 1:
      raise OptionsError('outputs_to_num_classes[%r] must be >= 1, got %r.'
                         % (name, n))
  if 'semantic' not in options.outputs_to_num_classes:
    raise OptionsError("outputs_to_num_classes needs a 'semantic' output, got "
                       '%r.' % (options.outputs_to_num_classes,))
  if options.crop_size is not None:
    if len(options.crop_size) != 2 or min(options.crop_size) < 1:
      raise OptionsError('crop_size must be [height, width] > 0, got %r.'
                         % (options.crop_size,))
  if options.multi_grid is not None:
    if not backbone.uses_multi_grid:
      raise OptionsError(
          'multi_grid=%r is only used by xception_* and resnet_* variants; '
          'model_variant %r has no multi-grid block.'
          % (list(options.multi_grid), options.model_variant))
    if len(options.multi_grid) != backbone.multi_grid_length:
      raise OptionsError('multi_grid must have %d rates, got %r (model_variant '
                         '%r).' % (backbone.multi_grid_length,
                                   list(options.multi_grid),
                                   options.model_variant))
  if options.depth_multiplier != 1.0 and not backbone.uses_depth_multiplier:
    raise OptionsError('depth_multiplier=%r is only used by MobileNet variants, '
                       'not %r.' % (options.depth_multiplier,
                                    options.model_variant))
  if options.atrous_rates is not None:
    if any(r < 1 for r in options.atrous_rates):
      raise OptionsError('atrous_rates must be >= 1, got %r.'
                         % (list(options.atrous_rates),))
    if options.aspp_with_squeeze_and_excitation:
      raise OptionsError(
          'atrous_rates=%r cannot be used with aspp_with_squeeze_and_excitation '
          '(LR-ASPP has no atrous branches).' % (list(options.atrous_rates),))
  if options.logits_kernel_size != 1 and (
      options.aspp_with_batch_norm or options.atrous_rates is None):
    raise OptionsError(
        'logits_kernel_size must be 1 when atrous_rates is None or '
        'aspp_with_batch_norm is set; got %d.' % options.logits_kernel_size)
  if options.decoder_output_stride:
    options_lib.check_decoder_output_stride(options.decoder_output_stride)
    for stride in options.decoder_output_stride:
      if stride not in backbone.decoder_end_points:
        raise OptionsError(
            'decoder_output_stride %d is not available for %r; accepted: %s.'
            % (stride, options.model_variant,
               sorted(backbone.decoder_end_points)))
      if stride > os_ or os_ % stride:
        raise OptionsError(
            'decoder_output_stride %d must divide output_stride %d.'
            % (stride, os_))
  if options.decoder_use_sum_merge and not options.decoder_output_stride:
    raise OptionsError('decoder_use_sum_merge needs decoder_output_stride.')
  if options.decoder_output_is_logits:
    if not options.decoder_output_stride:
      raise OptionsError('decoder_output_is_logits needs decoder_output_stride.')
    if options.decoder_filters != options.num_classes:
      raise OptionsError(
          'decoder_output_is_logits needs decoder_filters == num_classes, got '
          '%d and %d.' % (options.decoder_filters, options.num_classes))
  if options.image_pooling_crop_size is not None and options.crop_size is None:
    raise OptionsError('image_pooling_crop_size=%r needs crop_size.'
                       % (list(options.image_pooling_crop_size),))
  if options.crop_size is not None and options.add_image_level_feature and (
      options.aspp_with_batch_norm) and (
          options.dense_prediction_cell_config is None):
    pool_crop = options.image_pooling_crop_size or options.crop_size
    for p, c in zip(pool_crop, options.crop_size):
      if (p - 1) // os_ > (c - 1) // os_:
        raise OptionsError(
            'image pooling window from image_pooling_crop_size %r is larger '
            'than the features of crop_size %r at output_stride %d.'
            % (list(pool_crop), list(options.crop_size), os_))


def _validate_nas(options):
  """NAS backbones: their features must end at output_stride (nas_network)."""
  nas = options.nas_architecture_options
  filters = nas['nas_stem_output_num_conv_filters']
  if filters < 1:
    raise OptionsError('nas_stem_output_num_conv_filters must be >= 1, got '
                       '%r.' % (filters,))
  stride = nas_network.feature_stride(options.model_variant,
                                      options.output_stride, nas)
  if stride == options.output_stride:
    _validate_nas_crop(options)
    return
  if options.model_variant == 'nas_hnasnet':
    raise OptionsError(
        "model_variant 'nas_hnasnet' (Auto-DeepLab) exists at output_stride 8 "
        'only: its searched cell path ends at stride 8 whatever output_stride '
        'says (in the original graph at output_stride %d, image pooling '
        'sized for stride %d meets the stride-8 features and the graph '
        'cannot be built); got output_stride=%d. Use output_stride 8, or '
        'nas_use_classification_head=True, whose head strides the features '
        'down to the requested output stride.'
        % (options.output_stride, options.output_stride,
           options.output_stride))
  raise OptionsError(
      'model_variant %r with nas_architecture_options %r ends its features at '
      'stride %d, not at output_stride %d (nas_remove_os32_stride keeps the '
      'stride-32 cells at 16; in the original graph image pooling sized for '
      'stride %d then meets them and the graph cannot be built); use '
      'output_stride %d or drop nas_remove_os32_stride.'
      % (options.model_variant, nas, stride, options.output_stride,
         options.output_stride, stride))


def _validate_nas_crop(options):
  """Image pooling on a crop size needs the features at the crop's size."""
  if (options.crop_size is None or not options.add_image_level_feature or
      not options.aspp_with_batch_norm or
      getattr(options, 'dense_prediction_cell_config', None) is not None):
    return
  size = nas_network.feature_size(options.model_variant, options.output_stride,
                                  options.crop_size,
                                  options.nas_architecture_options)
  expected = tuple(geometry.scale_dimension(d, 1.0 / options.output_stride)
                   for d in options.crop_size)
  if size != expected:
    raise OptionsError(
        'model_variant %r at crop_size %r: the features come out %dx%d (the '
        'cell path downsamples by ceil(d / 2) and upsamples to 2 d - 1), but '
        'image pooling on the crop size expects %dx%d at output_stride %d, '
        'so the original graph cannot be built. Use crop sizes of the form '
        '32 k + 1 (e.g. 513), or add_image_level_feature=False.'
        % (options.model_variant, list(options.crop_size), size[0], size[1],
           expected[0], expected[1], options.output_stride))


def _validate_v1_v2(options):
  """DeepLab v1 / v2 heads (deeplab_v1.py, deeplab_v2.py)."""
  meta = options.meta_architecture
  if meta not in options_lib.META_ARCHITECTURES:
    raise OptionsError('meta_architecture must be one of %s, got %r.'
                       % (', '.join(options_lib.META_ARCHITECTURES), meta))
  if options.decoder_output_stride:
    raise OptionsError(
        'meta_architecture %r has no decoder (the decoder is DeepLabv3+); '
        'got decoder_output_stride=%r.'
        % (meta, list(options.decoder_output_stride)))
  vgg = options.model_variant == backbones.VGG_16
  if meta in _V1:
    if not vgg:
      raise OptionsError(
          "meta_architecture %r is built on VGG-16 (model_variant='vgg_16'), "
          'got model_variant %r.' % (meta, options.model_variant))
    if options.atrous_rates is not None:
      raise OptionsError(
          'meta_architecture %r has one fc6 at rate 12; got atrous_rates=%r '
          "(for one branch per rate use 'deeplab_v2_aspp')."
          % (meta, list(options.atrous_rates)))
    return
  # deeplab_v2_aspp
  if not options.atrous_rates:
    raise OptionsError(
        "meta_architecture 'deeplab_v2_aspp' needs atrous_rates, one branch "
        'per rate: 2,4,8,12 (ASPP-S) or 6,12,18,24 (ASPP-L); got %r.'
        % (options.atrous_rates,))
  if vgg:
    if options.logits_kernel_size != 1:
      raise OptionsError(
          "meta_architecture 'deeplab_v2_aspp' on VGG-16 ends each branch "
          'with a 1x1 fc8; got logits_kernel_size=%d.'
          % options.logits_kernel_size)
  elif options.aspp_with_batch_norm or options.logits_kernel_size != 3:
    raise OptionsError(
        "meta_architecture 'deeplab_v2_aspp' on %r is one 3x3 atrous conv "
        'per branch, the v2-style logits of the v3 builder: set '
        'aspp_with_batch_norm=False and logits_kernel_size=3 (got '
        'aspp_with_batch_norm=%r, logits_kernel_size=%d).'
        % (options.model_variant, options.aspp_with_batch_norm,
           options.logits_kernel_size))
