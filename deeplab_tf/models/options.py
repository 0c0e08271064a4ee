"""ModelOptions: every model choice in one dataclass, as the original common.ModelOptions.

Field names and defaults are those of the original ``common.py`` flags and
``ModelOptions`` (``research/deeplab/common.py``), so a flagfile written for
the original code maps one to one. Scripts turn flags into this object; the
library never reads flags. One addition, ``meta_architecture``, selects the
DeepLab v1 / v2 heads (``deeplab_v1.py``, ``deeplab_v2.py``); its default
keeps the original (v3 / v3+) model.
"""
import dataclasses
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from deeplab_tf.core.errors import DeeplabError


class OptionsError(DeeplabError, ValueError):
  """Raised for model options that cannot build a model."""


# Original common.py default for --model_variant.
DEFAULT_MODEL_VARIANT = 'mobilenet_v2'

# Which DeepLab head sits on the backbone:
#   deeplab_v3: ASPP (+ decoder) of DeepLabv3/v3+ (deeplab.py, heads/); with
#     aspp_with_batch_norm=False, the original's v2-style summed logits;
#   deeplab_v1_largefov: DeepLab-LargeFOV on VGG-16 (deeplab_v1.py);
#   deeplab_v1_msc_largefov: DeepLab-MSc-LargeFOV on VGG-16 (deeplab_v1.py);
#   deeplab_v2_aspp: DeepLab-ASPP, one branch per atrous rate, logits summed
#     (deeplab_v2.py): fc6-fc7-fc8 branches on VGG-16, one 3x3 atrous conv per
#     branch on ResNet-101 (and the other backbones).
META_ARCHITECTURE_V3 = 'deeplab_v3'
META_ARCHITECTURE_V1_LARGEFOV = 'deeplab_v1_largefov'
META_ARCHITECTURE_V1_MSC_LARGEFOV = 'deeplab_v1_msc_largefov'
META_ARCHITECTURE_V2_ASPP = 'deeplab_v2_aspp'
META_ARCHITECTURES = (META_ARCHITECTURE_V3, META_ARCHITECTURE_V1_LARGEFOV,
                      META_ARCHITECTURE_V1_MSC_LARGEFOV,
                      META_ARCHITECTURE_V2_ASPP)

# The original ModelOptions.nas_architecture_options: its keys are the
# common.py flags of the same names, with these defaults.
NAS_ARCHITECTURE_DEFAULTS = {
    'nas_stem_output_num_conv_filters': 20,
    'nas_use_classification_head': False,
    'nas_remove_os32_stride': False,
}
_NAS_ARCHITECTURE_TYPES = {'nas_stem_output_num_conv_filters': int,
                           'nas_use_classification_head': bool,
                           'nas_remove_os32_stride': bool}


def complete_nas_architecture_options(values=None) -> Dict[str, Any]:
  """``nas_architecture_options`` with the original defaults filled in and
  each value typed; a key the original does not have is refused."""
  values = dict(values or {})
  unknown = sorted(set(values) - set(NAS_ARCHITECTURE_DEFAULTS))
  if unknown:
    raise OptionsError('Unknown nas_architecture_options %s; accepted: %s.'
                       % (unknown, sorted(NAS_ARCHITECTURE_DEFAULTS)))
  result = dict(NAS_ARCHITECTURE_DEFAULTS)
  for key, value in values.items():
    if value is not None:
      result[key] = _NAS_ARCHITECTURE_TYPES[key](value)
  return result


@dataclasses.dataclass
class ModelOptions:
  """Options of a DeepLab model (original ``common.ModelOptions``).

  ``output_stride`` defaults to 8 as in the original ``ModelOptions``
  constructor (train.py / eval.py pass their own flag, default 16).
  ``crop_size=None`` builds a model for any input size: image pooling is then a
  global mean and every resize follows the actual feature size.

  ``meta_architecture`` (not an original field; see ``META_ARCHITECTURES``)
  picks DeepLab v1 / v2 heads. Those read ``model_variant``,
  ``output_stride``, ``atrous_rates`` (v2 branch rates), ``image_pyramid``,
  ``merge_method`` and, for v2 on ResNet, ``aspp_with_batch_norm=False`` and
  ``logits_kernel_size=3``; the ASPP / image pooling / decoder options belong
  to the v3 head.
  """
  outputs_to_num_classes: Dict[str, int] = dataclasses.field(
      default_factory=lambda: {'semantic': 21})
  crop_size: Optional[Tuple[int, int]] = None
  atrous_rates: Optional[Tuple[int, ...]] = None
  output_stride: int = 8
  preprocessed_images_dtype: str = 'float32'
  merge_method: str = 'max'
  add_image_level_feature: bool = True
  image_pooling_crop_size: Optional[Tuple[int, int]] = None
  image_pooling_stride: Tuple[int, int] = (1, 1)
  aspp_with_batch_norm: bool = True
  aspp_with_separable_conv: bool = True
  multi_grid: Optional[Tuple[int, ...]] = None
  decoder_output_stride: Optional[Tuple[int, ...]] = None
  decoder_use_separable_conv: bool = True
  logits_kernel_size: int = 1
  model_variant: str = DEFAULT_MODEL_VARIANT
  depth_multiplier: float = 1.0
  divisible_by: Optional[int] = None
  prediction_with_upsampled_logits: bool = True
  # The Dense Prediction Cell replacing ASPP (heads/dense_prediction_cell.py):
  # the list of operation dicts of --dense_prediction_cell_json; None = ASPP.
  dense_prediction_cell_config: Optional[List[Dict[str, Any]]] = None
  # Read by the nas_* backbones only (backbones/nas_network.py):
  # nas_stem_output_num_conv_filters, nas_use_classification_head,
  # nas_remove_os32_stride; missing keys take the original flag defaults.
  nas_architecture_options: Dict[str, Any] = dataclasses.field(
      default_factory=lambda: dict(NAS_ARCHITECTURE_DEFAULTS))
  use_bounded_activation: bool = False
  aspp_with_concat_projection: bool = True
  aspp_with_squeeze_and_excitation: bool = False
  aspp_convs_filters: int = 256
  decoder_use_sum_merge: bool = False
  decoder_filters: int = 256
  decoder_output_is_logits: bool = False
  image_se_uses_qsigmoid: bool = False
  batch_norm_decay: float = 0.9997
  sync_batch_norm_method: str = 'None'
  image_pyramid: Optional[Tuple[float, ...]] = None
  meta_architecture: str = META_ARCHITECTURE_V3

  def __post_init__(self):
    self.crop_size = _tuple_or_none(self.crop_size, int)
    self.atrous_rates = _tuple_or_none(self.atrous_rates, int)
    self.image_pooling_crop_size = _tuple_or_none(self.image_pooling_crop_size, int)
    self.image_pooling_stride = tuple(int(s) for s in self.image_pooling_stride)
    self.multi_grid = _tuple_or_none(self.multi_grid, int)
    if isinstance(self.decoder_output_stride, int):
      self.decoder_output_stride = (self.decoder_output_stride,)
    self.decoder_output_stride = _tuple_or_none(self.decoder_output_stride, int)
    self.image_pyramid = _tuple_or_none(self.image_pyramid, float)
    if self.dense_prediction_cell_config is not None:
      from deeplab_tf.models.heads import dense_prediction_cell  # pylint: disable=g-import-not-at-top
      self.dense_prediction_cell_config = (
          dense_prediction_cell.normalize_config(
              self.dense_prediction_cell_config))
    self.outputs_to_num_classes = {str(k): int(v) for k, v in
                                   dict(self.outputs_to_num_classes).items()}
    self.nas_architecture_options = complete_nas_architecture_options(
        self.nas_architecture_options)

  @property
  def num_classes(self):
    return self.outputs_to_num_classes['semantic']

  @property
  def is_deeplab_v3(self):
    return self.meta_architecture == META_ARCHITECTURE_V3

  @property
  def logits_output_stride(self):
    """Stride of the logits: the finest decoder stride, else output_stride."""
    if self.decoder_output_stride:
      return min(self.decoder_output_stride)
    return self.output_stride

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values, strict=False):
    """Builds options from a dict such as a conformance case's ``model_options``.

    Keys of the original ModelOptions that this reproduction does not model
    (label_weights) are ignored unless ``strict``;
    ``num_classes`` is accepted as a shorthand. ``nas_architecture_options``
    (a dict, read by the nas_* variants) gets the original defaults for the
    keys it lacks. ``dense_prediction_cell_config``
    (the parsed cell JSON, None for ASPP) is a field, checked when building.
    """
    values = dict(values)
    known = {f.name for f in dataclasses.fields(cls)}
    if 'num_classes' in values:
      values['outputs_to_num_classes'] = {'semantic': values.pop('num_classes')}
    unknown = sorted(set(values) - known)
    if unknown and strict:
      raise ValueError('Unknown model options %s; accepted: %s'
                       % (unknown, sorted(known)))
    return cls(**{k: v for k, v in values.items() if k in known})

  def to_json(self):
    return json.dumps(self.to_dict(), sort_keys=True)


def _tuple_or_none(value, cast):
  if value is None:
    return None
  if isinstance(value, (str, bytes)):
    value = [v for v in str(value).split(',') if v]
  if not isinstance(value, Sequence):
    value = [value]
  value = tuple(cast(v) for v in value)
  return value or None


def check_decoder_output_stride(strides) -> None:
  """The original ModelOptions' rule: decoder strides in descending order."""
  strides = _tuple_or_none(strides, int)
  if strides and sorted(strides, reverse=True) != list(strides):
    raise OptionsError(
        'Decoder output stride need to be sorted in the descending order '
        '(as the original requires); got %s, e.g. write 8,4.'
        % ','.join(str(s) for s in strides))


def pair(value):
  """A (height, width) of ints from a list, tuple or "h,w" string; None stays None."""
  if value is None:
    return None
  if isinstance(value, str):
    value = value.split(',')
  values = [int(v) for v in value]
  if len(values) != 2:
    raise ValueError('Expected "height,width", got %r.' % (value,))
  return tuple(values)


# The ModelOptions fields that the original common.py model flags set, under
# the same names (outputs_to_num_classes and crop_size come from the script;
# preprocessed_images_dtype and sync_batch_norm_method have no flag).
FLAG_FIELDS = (
    'atrous_rates', 'output_stride', 'merge_method', 'add_image_level_feature',
    'image_pooling_crop_size', 'image_pooling_stride', 'aspp_with_batch_norm',
    'aspp_with_separable_conv', 'multi_grid', 'decoder_output_stride',
    'decoder_use_separable_conv', 'logits_kernel_size', 'model_variant',
    'depth_multiplier', 'divisible_by', 'prediction_with_upsampled_logits',
    'use_bounded_activation', 'aspp_with_concat_projection',
    'aspp_with_squeeze_and_excitation', 'aspp_convs_filters',
    'decoder_use_sum_merge', 'decoder_filters', 'decoder_output_is_logits',
    'image_se_uses_qsigmoid', 'batch_norm_decay', 'image_pyramid',
    'meta_architecture')

# The common.py flags that set ModelOptions.nas_architecture_options[name].
NAS_FLAG_FIELDS = tuple(NAS_ARCHITECTURE_DEFAULTS)


def options_from_flag_values(values, crop_size=None, num_classes=None):
  """ModelOptions from model flag values by name.

  ``values``: the scripts' flags, or a conformance case's dict of original
  flags. A name that is absent or None keeps the ModelOptions default (every
  flag whose default is None has a None field default too).
  ``dense_prediction_cell_json`` names a cell JSON file, read as the original
  common.py reads it (``json.load``) into ``dense_prediction_cell_config``.
  """
  kwargs = {name: values[name] for name in FLAG_FIELDS
            if values.get(name) is not None}
  nas = {name: values[name] for name in NAS_FLAG_FIELDS
         if values.get(name) is not None}
  if nas:
    kwargs['nas_architecture_options'] = nas
  if values.get('dense_prediction_cell_json'):
    from deeplab_tf.models.heads import dense_prediction_cell  # pylint: disable=g-import-not-at-top
    kwargs['dense_prediction_cell_config'] = dense_prediction_cell.load_config(
        values['dense_prediction_cell_json'])
  check_decoder_output_stride(kwargs.get('decoder_output_stride'))
  for name in ('image_pooling_crop_size', 'image_pooling_stride'):
    if name in kwargs:
      kwargs[name] = pair(kwargs[name])
  return ModelOptions(
      outputs_to_num_classes={'semantic': int(num_classes or
                                              values['num_classes'])},
      crop_size=pair(crop_size), **kwargs)

