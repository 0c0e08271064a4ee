"""The original common.py model flags, defined once for every script.

Names, types and defaults are those of ``research/deeplab/common.py`` so an
original flagfile works unchanged. Only scripts import this module; the library
receives a ``ModelOptions`` built by ``model_options_from_flags``.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.models import backbones
from deeplab_tf.models import meta_architectures
from deeplab_tf.models import options as options_lib

FLAGS = flags.FLAGS

# The family of the semantic DeepLab models (v1, v2, v3, v3+): what eval, vis,
# export_model, the demo and convert_checkpoint build.
SEMANTIC_FAMILY = 'deeplab'


def define_model_flags(output_stride_default: int = 16) -> None:
  """Defines the model flags (idempotent: safe to call from several scripts)."""
  if 'model_variant' in FLAGS:
    return
  flags.DEFINE_string('model_variant', 'mobilenet_v2',
                      'DeepLab model variant (backbone): %s (vgg_16: DeepLab '
                      'v1/v2); with --meta_architecture=deeperlab: '
                      'xception_71 or wider_mobilenet_v2 (the paper\'s two '
                      'encoders).' % ', '.join(backbones.names()))
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
                             'e.g. 1,2,4; unset = 1,1,1 (resnet_v1_18*: two '
                             'rates, unset = 1,1).')
  # A comma list as in the original common.py (DEFINE_list): "8,4" gives a
  # two-stage decoder; the strides must be in descending order.
  flags.DEFINE_list('decoder_output_stride', None,
                    'Comma list of the output strides of the low-level '
                    'features the DeepLabv3+ decoder uses, in descending order '
                    '(4 for the paper; 8,4 refines twice); unset = no decoder.')
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
                       'Bounded activations for quantisation, as the original: '
                       'ReLU6 instead of ReLU in the Xception backbone, ASPP '
                       '(not image pooling) and decoder; Xception also clips '
                       'to [-6, 6] after its pre-activation separable-conv '
                       'BatchNorms and both residual addends, and its strided '
                       'separable convs use SAME instead of explicit padding '
                       '(the stem conv keeps it). Other backbones ignore it.')
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
  flags.DEFINE_multi_float('label_weights', None,
                           'Per-class loss weights, one flag per class in '
                           'class order (original common.py: read by the '
                           'training loss only); unset = 1.0 for every class.')
  flags.DEFINE_boolean('keep_aspect_ratio', True,
                       'Original common.py flag, accepted and, as in the '
                       'original, read by no script (resize_to_range always '
                       'keeps the aspect ratio there).')
  # The NAS / Dense Prediction Cell flags of the original common.py. The
  # original reads the nas_* flags only for its nas_* model variants and
  # ignores them otherwise; a dense prediction cell replaces ASPP.
  flags.DEFINE_string('dense_prediction_cell_json', '',
                      'A JSON file of a Dense Prediction Cell (Chen et al. '
                      '2018) that replaces ASPP; empty = ASPP. The model '
                      "zoo's cell: deeplab_tf/models/heads/"
                      'dense_prediction_cell_branch5_top1_cityscapes.json (a '
                      'missing path with that file name, such as the '
                      "original's deeplab/core/..., reads the shipped copy).")
  flags.DEFINE_integer('nas_stem_output_num_conv_filters', 20,
                       'Filters of the NAS stem output (nas_* variants only; '
                       'ignored for the others, as in the original).')
  flags.DEFINE_boolean('nas_use_classification_head', False,
                       'NAS backbones: use the classification head (nas_* '
                       'variants only; ignored for the others).')
  flags.DEFINE_boolean('nas_remove_os32_stride', False,
                       'NAS backbones: drop the output stride 32 reduction '
                       '(nas_* variants only; ignored for the others).')
  # Not an original flag: selects the DeepLab v1 / v2 heads.
  # Not an original flag: the model family and, for the semantic DeepLab
  # models, the head (the original is deeplab_v3).
  flags.DEFINE_enum('meta_architecture', options_lib.META_ARCHITECTURE_V3,
                    meta_architectures.names(),
                    'Which model. deeplab_v3: ASPP (+ decoder), the original; '
                    'deeplab_v1_largefov / deeplab_v1_msc_largefov: DeepLab v1 '
                    '(--model_variant=vgg_16); deeplab_v2_aspp: one branch per '
                    '--atrous_rates, logits summed (on vgg_16 or, with '
                    '--noaspp_with_batch_norm --logits_kernel_size=3, on '
                    'resnet_v1_101). Other families: %s.' % '; '.join(
                        '%s (%s)' % ('/'.join(e.names), e.description)
                        for e in meta_architectures.entries()[1:]))


def define_resize_flags() -> None:
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


def define_dataset_flags() -> None:
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


_DEFINERS = {'float': flags.DEFINE_float, 'integer': flags.DEFINE_integer,
             'list': flags.DEFINE_list, 'string': flags.DEFINE_string,
             'boolean': flags.DEFINE_boolean}


def define_task_flags(specs: Sequence[Any]) -> None:
  """Defines the flags a training task declares (``tasks.TaskFlag``); idempotent."""
  for spec in specs:
    if spec.name in FLAGS:
      continue
    kwargs = {}
    if spec.lower_bound is not None:
      kwargs['lower_bound'] = spec.lower_bound
    _DEFINERS[spec.kind](spec.name, spec.default, spec.help, **kwargs)


def task_flag_values(specs: Sequence[Any]) -> Dict[str, Any]:
  """{name: value} of the given task flags."""
  return {spec.name: FLAGS[spec.name].value for spec in specs}


def define_checkpoint_loop_flags() -> None:
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
  if 'master' not in FLAGS:   # train.py defines it too
    flags.DEFINE_string('master', '',
                        'Original TF1 session target (BNS name); only empty '
                        'here: evaluation runs in this process.')
  if 'quantize_delay_step' in FLAGS:
    return
  flags.DEFINE_integer('quantize_delay_step', -1,
                       '>= 0: the quantisation-aware graph of a model trained '
                       'with --quantize_delay_step (BatchNorm folded, 8-bit '
                       'fake quantisation with the learned ranges; the '
                       'original\'s create_eval_graph), single scale only; '
                       '< 0: the float graph.')


def define_initialization_flags() -> None:
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


def define_crf_flags() -> None:
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


def parse_crop_size(values: Optional[Sequence[str]],
                    flag_name: str) -> Optional[Tuple[int, int]]:
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


def model_flag_values() -> Dict[str, Any]:
  """{name: value} of every model flag this script defines."""
  names = {name for e in meta_architectures.entries() for name in e.flag_names}
  return {name: FLAGS[name].value for name in sorted(names) if name in FLAGS}


def options_from_flags(crop_size=None, num_classes: Optional[int] = None,
                       allowed: Optional[Sequence[str]] = None):
  """The options of the family --meta_architecture selects, from the flags.

  ``crop_size`` and ``num_classes`` come from the script (its crop flag, the
  dataset); ``allowed``: the families the script can use (None: any).
  """
  return meta_architectures.options_from_flag_values(
      model_flag_values(), crop_size=crop_size, num_classes=num_classes,
      allowed=allowed)


def model_options_from_flags(crop_size=None,
                             num_classes: Optional[int] = None
                             ) -> options_lib.ModelOptions:
  """ModelOptions (the semantic DeepLab models) from the model flags."""
  return options_from_flags(crop_size, num_classes, allowed=(SEMANTIC_FAMILY,))


def given_model_flags() -> List[str]:
  """Names of the model flags given on the command line (or a flagfile)."""
  return [name for name in model_flag_values() if FLAGS[name].present]


def checkpoint_options(checkpoint_path, flag_options,
                       script_fields=('crop_size',), json_path=None,
                       families=(SEMANTIC_FAMILY,)):
  """(options, source) of a checkpoint's model by the one rule of
  ``checkpoints.model_options``: the JSON beside it, the given model flags
  over it, the script's own fields over both; the flags alone without one."""
  from deeplab_tf.checkpoints import model_options  # pylint: disable=g-import-not-at-top
  return model_options.resolve(checkpoint_path, flag_options,
                               given_model_flags(), script_fields,
                               json_path=json_path, families=families)


def warn_if_flip_ignored(scales, add_flipped_images) -> None:
  """One line when the original's single-scale path ignores the flip."""
  if add_flipped_images and tuple(float(s) for s in scales) == (1.0,):
    logging.warning(
        'add_flipped_images with the single scale 1.0: as in the original '
        'eval.py / vis.py / export_model.py, the single-scale path '
        '(predict_labels) runs and the flip is not added. Give several '
        'scales to average flipped predictions.')



# Original common.py flags that only the NAS model variants read.
NAS_FLAGS = ('nas_stem_output_num_conv_filters', 'nas_use_classification_head',
             'nas_remove_os32_stride')


def warn_unread_nas_flags(model_variant: str, extra: Sequence[str] = ()) -> None:
  """One line when NAS-only flags are given for another backbone.

  The original reads them only inside its nas_* feature extractors and
  ignores them otherwise, so they are accepted and ignored here too.
  """
  given = [name for name in NAS_FLAGS + tuple(extra)
           if name in FLAGS and FLAGS[name].present]
  if given and not str(model_variant).startswith('nas_'):
    logging.warning('--%s: read only by the nas_* model variants; ignored for '
                    '--model_variant=%s, as in the original.',
                    ', --'.join(given), model_variant)


def check_num_classes(dataset_num_classes: int, dataset_name: str) -> None:
  """Refuses a --num_classes that contradicts the dataset's class count.

  The original train.py / eval.py / vis.py take the count from the dataset
  (they define no --num_classes); ours defines the flag for every script, so
  a given value must agree rather than be silently overridden.
  """
  if 'num_classes' not in FLAGS or not FLAGS['num_classes'].present:
    return
  if FLAGS.num_classes != dataset_num_classes:
    raise app.UsageError(
        '--num_classes=%d, but dataset %s has %d classes and the logits follow '
        'the dataset (as the original). Drop --num_classes, or describe a '
        'dataset with %d classes in a dataset JSON (--dataset=path.json).'
        % (FLAGS.num_classes, dataset_name, dataset_num_classes,
           FLAGS.num_classes))


def check_script_edge(model_variant: str, dataset_num_classes: int,
                      dataset_name: str) -> None:
  """The original-flag checks shared by eval.py and vis.py."""
  if FLAGS.master:
    raise app.UsageError(
        '--master=%s: there is no TF1 session target here; evaluation and '
        'visualisation run in this process (leave --master empty).'
        % FLAGS.master)
  check_num_classes(dataset_num_classes, dataset_name)
  warn_unread_nas_flags(model_variant)


class _CropSizeFlag(flags.Flag):
  """A "height,width" list flag (the latest original's DEFINE_list) that also
  takes the older original scripts' repeated form (``--x=513 --x=513``, a
  multi-integer flag there): two single values in a row make the pair. A
  later full "h,w" replaces the value, as a list flag's last occurrence."""

  def __init__(self, name, default, help_text):
    super().__init__(flags.ListParser(), flags.CsvListSerializer(','), name,
                     default, help_text)

  def parse(self, argument):
    previous = list(self.value or ()) if self.present else None
    super().parse(argument)
    if previous is not None and len(previous) == 1 and len(self.value) == 1:
      self.value = previous + list(self.value)

  def flag_type(self):
    return '"height,width" list (or the flag given twice)'


def define_crop_size_flag(name: str, help_text: str,
                          default: str = '513,513') -> None:
  """Defines a crop-size flag of train / eval / vis (idempotent)."""
  if name not in FLAGS:
    flags.DEFINE_flag(_CropSizeFlag(name, default, help_text))
