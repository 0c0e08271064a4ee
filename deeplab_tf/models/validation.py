"""Checks ModelOptions before building, with errors that name the bad value.

The original code fails late (a shape error deep in the graph, or silently
ignores an option); here each incompatible combination is refused up front
with the value received and what is accepted.
"""
from deeplab_tf.models import backbones
from deeplab_tf.models.options import OptionsError

_MERGE_METHODS = ('max', 'avg')


def validate(options):
  backbone = backbones.get_backbone(options.model_variant)
  os_ = options.output_stride
  if os_ not in (8, 16, 32):
    raise OptionsError('output_stride must be 8, 16 or 32, got %r.' % (os_,))
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
    if len(options.multi_grid) != 3:
      raise OptionsError('multi_grid must have 3 rates, got %r.'
                         % (list(options.multi_grid),))
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
      options.aspp_with_batch_norm):
    pool_crop = options.image_pooling_crop_size or options.crop_size
    for p, c in zip(pool_crop, options.crop_size):
      if (p - 1) // os_ > (c - 1) // os_:
        raise OptionsError(
            'image pooling window from image_pooling_crop_size %r is larger '
            'than the features of crop_size %r at output_stride %d.'
            % (list(pool_crop), list(options.crop_size), os_))
