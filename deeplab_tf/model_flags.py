"""The original common.py model flags, defined once for every script.

Names, types and defaults are those of ``research/deeplab/common.py`` so an
original flagfile works unchanged. Only scripts import this module; the library
receives a ``ModelOptions`` built by ``model_options_from_flags``.
"""
from absl import app
from absl import flags

from deeplab_tf.models import deeperlab
from deeplab_tf.models import options as options_lib
from deeplab_tf.models.options import ModelOptions

FLAGS = flags.FLAGS

# --meta_architecture value of the DeeperLab parser (not a ModelOptions one:
# DeeperLab has its own options, ``deeperlab.DeeperLabOptions``).
META_ARCHITECTURE_DEEPERLAB = deeperlab.META_ARCHITECTURE


def define_model_flags(output_stride_default=16):
  """Defines the model flags (idempotent: safe to call from several scripts)."""
  if 'model_variant' in FLAGS:
    return
  flags.DEFINE_string('model_variant', 'mobilenet_v2',
                      'DeepLab model variant (backbone): xception_41, '
                      'xception_65, xception_71, resnet_v1_50(_beta), '
                      'resnet_v1_101(_beta), mobilenet_v2, '
                      'mobilenet_v3_large_seg, mobilenet_v3_small_seg, '
                      'vgg_16 (DeepLab v1/v2); with '
                      '--meta_architecture=deeperlab: xception_71 or '
                      'wider_mobilenet_v2 (the paper\'s two encoders).')
  flags.DEFINE_integer('num_classes', 21,
                       'Number of semantic classes of the logits.')
  flags.DEFINE_integer('output_stride', output_stride_default,
                       'Ratio of input to backbone output resolution (8, 16 '
                       'or 32); atrous convolution keeps the resolution past it.')
  flags.DEFINE_multi_integer('atrous_rates', None,
                             'Atrous rates of the ASPP 3x3 branches, one flag '
                             'per rate (6,12,18 at output_stride 16; 12,24,36 '
                             'at 8). Unset: ASPP has only the 1x1 branch '
                             '(DeeperLab: unset = 6,12,18, its ASPP at '
                             'output stride 16).')
  flags.DEFINE_multi_integer('multi_grid', None,
                             'Multi-grid unit rates of the last block '
                             '(ResNet block4 / Xception exit_flow block2), '
                             'e.g. 1,2,4; unset = 1,1,1.')
  flags.DEFINE_multi_integer('decoder_output_stride', None,
                             'Output stride(s) of the low-level features the '
                             'DeepLabv3+ decoder uses (4 for the paper); '
                             'unset = no decoder.')
  flags.DEFINE_boolean('decoder_use_separable_conv', True,
                       'Separable 3x3 convs in the decoder.')
  flags.DEFINE_boolean('aspp_with_batch_norm', True,
                       'ASPP with BatchNorm (DeepLabv3). False: DeepLabv2 '
                       'style logits branches, one per atrous rate, summed.')
  flags.DEFINE_boolean('aspp_with_separable_conv', True,
                       'Separable atrous convs in ASPP (DeepLabv3+).')
  flags.DEFINE_boolean('add_image_level_feature', True,
                       'Add the image pooling branch to ASPP.')
  flags.DEFINE_list('image_pooling_crop_size', None,
                    'Crop size ("h,w") from which the image pooling kernel is '
                    'computed; unset = the crop size.')
  flags.DEFINE_list('image_pooling_stride', '1,1',
                    'Stride ("h,w") of the image pooling average pool.')
  flags.DEFINE_integer('logits_kernel_size', 1,
                       'Kernel size of the logits conv (must be 1 with ASPP '
                       'BatchNorm).')
  flags.DEFINE_float('depth_multiplier', 1.0,
                     'Channel multiplier of MobileNet backbones.')
  flags.DEFINE_integer('divisible_by', None,
                       'MobileNet channel rounding; unset = 8 at multiplier 1.')
  flags.DEFINE_multi_float('image_pyramid', None,
                           'Input scales of the image pyramid (multi-scale '
                           'inputs, merged by merge_method); unset = 1.0.')
  flags.DEFINE_enum('merge_method', 'max', ['max', 'avg'],
                    'How the image pyramid logits are merged.')
  flags.DEFINE_boolean('prediction_with_upsampled_logits', True,
                       'Upsample logits before argmax (else argmax then '
                       'nearest upsampling).')
  flags.DEFINE_boolean('use_bounded_activation', False,
                       'ReLU6 instead of ReLU in ASPP/decoder (quantisation).')
  flags.DEFINE_boolean('aspp_with_concat_projection', True,
                       '1x1 projection after the ASPP concat.')
  flags.DEFINE_boolean('aspp_with_squeeze_and_excitation', False,
                       'LR-ASPP (MobileNetV3): image pooling as a gate.')
  flags.DEFINE_integer('aspp_convs_filters', 256, 'Channels of ASPP convs.')
  flags.DEFINE_boolean('decoder_use_sum_merge', False,
                       'Decoder merges by sum (LR-ASPP) instead of concat.')
  flags.DEFINE_integer('decoder_filters', 256, 'Channels of decoder convs.')
  flags.DEFINE_boolean('decoder_output_is_logits', False,
                       'The decoder output is the logits (LR-ASPP).')
  flags.DEFINE_boolean('image_se_uses_qsigmoid', False,
                       'q-sigmoid gate in LR-ASPP image pooling.')
  flags.DEFINE_float('batch_norm_decay', 0.9997,
                     'Original common.py flag, accepted and, as in the '
                     'original, read by nothing: model.py fixes the ASPP / '
                     'decoder BatchNorm decay at 0.9997 and each backbone has '
                     'its own (Xception 0.9997, MobileNet 0.997, ResNet '
                     '0.95). train.py --all_batch_norm_decay (ours) sets '
                     'every BatchNorm\'s decay.')
  # Not an original flag: selects the DeepLab v1 / v2 heads.
  flags.DEFINE_enum('meta_architecture', options_lib.META_ARCHITECTURE_V3,
                    list(options_lib.META_ARCHITECTURES)
                    + [META_ARCHITECTURE_DEEPERLAB],
                    'Head on the backbone: deeplab_v3 (ASPP, decoder; the '
                    'original), deeplab_v1_largefov / deeplab_v1_msc_largefov '
                    '(DeepLab v1, --model_variant=vgg_16), deeplab_v2_aspp '
                    '(one branch per --atrous_rates, logits summed; on '
                    'vgg_16 or, with --noaspp_with_batch_norm '
                    '--logits_kernel_size=3, on resnet_v1_101), deeperlab '
                    '(the DeeperLab parser: S2D decoder and five heads on '
                    '--model_variant=xception_71 or wider_mobilenet_v2; '
                    'trained by deeplab_tf.train on panoptic records).')


def define_resize_flags():
  """The original common.py resize flags (idempotent)."""
  if 'min_resize_value' in FLAGS:
    return
  flags.DEFINE_integer('min_resize_value', None,
                       'Desired size of the smaller image side (original '
                       'resize_to_range); unset: no resize.')
  flags.DEFINE_integer('max_resize_value', None,
                       'Maximum allowed size of the larger image side.')
  flags.DEFINE_integer('resize_factor', None,
                       'Resized dimensions are a multiple of factor plus '
                       'one.')


def define_dataset_flags():
  """dataset / dataset_dir, shared by train, eval and vis (idempotent)."""
  if 'dataset' in FLAGS:
    return
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('dataset', 'pascal_voc_seg',
                      'Dataset name (%s) or the path of a dataset JSON (a '
                      'custom dataset, or the dataset.json a panoptic '
                      'converter writes).' % ', '.join(sorted(
                          datasets_info.DATASETS)))
  flags.DEFINE_string('dataset_dir', None, 'Folder of the TFRecord shards.')


def define_panoptic_layout_flags():
  """thing_classes / panoptic_label_divisor, shared by DeeperLab train and eval (idempotent)."""
  if 'thing_classes' in FLAGS:
    return
  flags.DEFINE_list('thing_classes', None,
                    'DeeperLab: class ids of the "thing" classes (their '
                    'instances get keypoints and offsets); unset: the dataset '
                    'descriptor\'s thing_classes (cityscapes: trainIds 11..18, '
                    'coco_panoptic: 1..80; the JSON a panoptic converter '
                    'writes has them).')
  flags.DEFINE_integer('panoptic_label_divisor', None,
                       'DeeperLab: the records\' panoptic ids are category * '
                       'this + instance; unset: the dataset descriptor\'s '
                       'panoptic_label_divisor (cityscapes: 1000, '
                       'coco_panoptic: 256, as deeplab2).', lower_bound=1)


def panoptic_layout_from_flags(descriptor):
  """The dataset's PanopticLayout; --thing_classes / --panoptic_label_divisor override it."""
  from deeplab_tf.data import panoptic_records  # pylint: disable=g-import-not-at-top
  try:
    things = [int(c) for c in FLAGS.thing_classes or ()]
  except ValueError:
    raise app.UsageError('--thing_classes must be class ids (ints); got %s.'
                         % ','.join(FLAGS.thing_classes)) from None
  try:
    return panoptic_records.get_layout(
        descriptor, thing_classes=things,
        label_divisor=FLAGS.panoptic_label_divisor)
  except ValueError as e:
    raise app.UsageError('DeeperLab needs the thing classes (whose instances '
                         'get keypoints) and the records\' label divisor: %s'
                         % e) from None


def define_checkpoint_loop_flags():
  """The original eval.py / vis.py flags of the checkpoint loop and the
  multi-scale test, shared by eval and vis (idempotent)."""
  if 'checkpoint_dir' in FLAGS:
    return
  flags.DEFINE_string('checkpoint_dir', None,
                      'A train_logdir (its newest checkpoint, then each new '
                      'one), a checkpoint prefix, or an original TF1 '
                      'model-zoo checkpoint (told apart automatically).')
  flags.DEFINE_integer('eval_interval_secs', 60 * 5,
                       'Continuous mode: at least this many seconds between '
                       'two checkpoints; also the polling period.',
                       lower_bound=0)
  flags.DEFINE_multi_float('eval_scales', [1.0],
                           'Input scales, one flag per scale (e.g. 0.5 ... '
                           '1.75 for the multi-scale test); the softmax '
                           'probabilities are averaged, as the original.')
  flags.DEFINE_boolean('add_flipped_images', False,
                       'Also predict left-right flipped inputs (averaged).')
  flags.DEFINE_integer('quantize_delay_step', -1,
                       'Original flag for quantized models; only the default '
                       '(-1, no quantization) is supported. For int8 use the '
                       'TFLite export of deeplab_tf.export_model.')


def define_initialization_flags():
  """initialize_last_layer / last_layers_contain_logits_only (train, convert_checkpoint)."""
  if 'initialize_last_layer' in FLAGS:
    return
  flags.DEFINE_boolean('initialize_last_layer', True,
                       'Restore the last layers from the initial checkpoint; '
                       'False excludes them (see '
                       '--last_layers_contain_logits_only).')
  flags.DEFINE_boolean('last_layers_contain_logits_only', False,
                       'Last layers = logits only; else also ASPP, image '
                       'pooling, concat projection and decoder, as the '
                       'original.')


def define_crf_flags():
  """The fully connected CRF of DeepLab v1/v2 as a post-processing step (idempotent)."""
  if 'crf' in FLAGS:
    return
  flags.DEFINE_boolean('crf', False, 'Refine the softmax probabilities with '
                       'the fully connected CRF (DeepLab v1/v2) before the '
                       'argmax.')
  flags.DEFINE_string('crf_preset', 'deeplab_v2_resnet101_voc', 'Published '
                      'CRF settings to start from (deeplab_tf.crf.PRESETS: '
                      'deeplab_v2_resnet101_voc, deeplab_v2_vgg16_voc, '
                      'deeplab_v1_largefov_voc); the --crf_* flags override '
                      'single values.')
  flags.DEFINE_float('crf_bi_w', None, 'Appearance kernel weight w1.')
  flags.DEFINE_float('crf_bi_xy_std', None, 'Appearance kernel position std '
                     '(sigma_alpha, pixels).')
  flags.DEFINE_float('crf_bi_rgb_std', None, 'Appearance kernel colour std '
                     '(sigma_beta).')
  flags.DEFINE_float('crf_pos_w', None, 'Smoothness kernel weight w2.')
  flags.DEFINE_float('crf_pos_xy_std', None, 'Smoothness kernel position '
                     'std (sigma_gamma, pixels).')
  flags.DEFINE_integer('crf_num_iterations', None, 'Mean-field iterations '
                       '(preset: 10).')


def crf_params_from_flags():
  """CRFParams from the --crf* flags, or None without --crf."""
  if not FLAGS.crf:
    return None
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
  return crf.get_params(FLAGS.crf_preset, bi_w=FLAGS.crf_bi_w,
                        bi_xy_std=FLAGS.crf_bi_xy_std,
                        bi_rgb_std=FLAGS.crf_bi_rgb_std,
                        pos_w=FLAGS.crf_pos_w,
                        pos_xy_std=FLAGS.crf_pos_xy_std,
                        num_iterations=FLAGS.crf_num_iterations)


def parse_crop_size(values, flag_name):
  """A "height,width" list flag -> (h, w); "auto" -> None (whole images).

  Raises ValueError naming the flag and the value.
  """
  values = list(values or [])
  if len(values) == 1 and values[0].strip().lower() == 'auto':
    return None
  try:
    crop = tuple(int(v) for v in values)
  except ValueError:
    crop = ()
  if len(crop) != 2 or min(crop) < 1:
    raise ValueError('--%s must be "height,width" (positive ints) or "auto"; '
                     'got %s.' % (flag_name, ','.join(values)))
  return crop


def _pair(value):
  if value is None:
    return None
  if isinstance(value, str):
    value = value.split(',')
  values = [int(v) for v in value]
  if len(values) != 2:
    raise ValueError('Expected "height,width", got %r.' % (value,))
  return tuple(values)


def is_deeperlab():
  """Whether --meta_architecture selects the DeeperLab parser."""
  return FLAGS.meta_architecture == META_ARCHITECTURE_DEEPERLAB


def deeperlab_options_from_flags(crop_size=None, num_classes=None):
  """DeeperLabOptions from the model flags DeeperLab reads.

  Those are model_variant, output_stride (16 only), atrous_rates (unset: the
  default 6, 12, 18), depth_multiplier, batch_norm_decay and
  aspp_convs_filters; the decoder and heads keep the paper's sizes.
  """
  values = dict(num_classes=num_classes or FLAGS.num_classes,
                model_variant=FLAGS.model_variant, crop_size=_pair(crop_size),
                output_stride=FLAGS.output_stride,
                depth_multiplier=FLAGS.depth_multiplier,
                batch_norm_decay=FLAGS.batch_norm_decay,
                aspp_convs_filters=FLAGS.aspp_convs_filters)
  if FLAGS.atrous_rates:
    values['atrous_rates'] = tuple(FLAGS.atrous_rates)
  return deeperlab.DeeperLabOptions(**values)


def model_options_from_flags(crop_size=None, num_classes=None):
  """ModelOptions from the model flags; ``crop_size`` comes from the script."""
  if is_deeperlab():
    raise ValueError(
        '--meta_architecture=deeperlab selects the DeeperLab parser, which '
        'has DeeperLabOptions (deeperlab_options_from_flags), not the '
        'semantic DeepLab ModelOptions this script builds; expected one of %s.'
        ' DeeperLab is trained by deeplab_tf.train and evaluated with '
        'deeplab_tf.evaluation.deeperlab_eval.'
        % list(options_lib.META_ARCHITECTURES))
  return ModelOptions(
      outputs_to_num_classes={'semantic': num_classes or FLAGS.num_classes},
      crop_size=_pair(crop_size),
      atrous_rates=FLAGS.atrous_rates,
      output_stride=FLAGS.output_stride,
      merge_method=FLAGS.merge_method,
      add_image_level_feature=FLAGS.add_image_level_feature,
      image_pooling_crop_size=_pair(FLAGS.image_pooling_crop_size),
      image_pooling_stride=_pair(FLAGS.image_pooling_stride),
      aspp_with_batch_norm=FLAGS.aspp_with_batch_norm,
      aspp_with_separable_conv=FLAGS.aspp_with_separable_conv,
      multi_grid=FLAGS.multi_grid,
      decoder_output_stride=FLAGS.decoder_output_stride,
      decoder_use_separable_conv=FLAGS.decoder_use_separable_conv,
      logits_kernel_size=FLAGS.logits_kernel_size,
      model_variant=FLAGS.model_variant,
      depth_multiplier=FLAGS.depth_multiplier,
      divisible_by=FLAGS.divisible_by,
      prediction_with_upsampled_logits=FLAGS.prediction_with_upsampled_logits,
      use_bounded_activation=FLAGS.use_bounded_activation,
      aspp_with_concat_projection=FLAGS.aspp_with_concat_projection,
      aspp_with_squeeze_and_excitation=FLAGS.aspp_with_squeeze_and_excitation,
      aspp_convs_filters=FLAGS.aspp_convs_filters,
      decoder_use_sum_merge=FLAGS.decoder_use_sum_merge,
      decoder_filters=FLAGS.decoder_filters,
      decoder_output_is_logits=FLAGS.decoder_output_is_logits,
      image_se_uses_qsigmoid=FLAGS.image_se_uses_qsigmoid,
      batch_norm_decay=FLAGS.batch_norm_decay,
      image_pyramid=FLAGS.image_pyramid,
      meta_architecture=FLAGS.meta_architecture)
