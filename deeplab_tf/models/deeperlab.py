"""DeeperLab single-shot image parser: encoder + ASPP + S2D decoder + five heads.

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093).

* Encoder (Sec. 3.1): Xception-71 (accurate) or the Wider MobileNetV2 (fast),
  at output stride 16, followed by ASPP (DeepLabv3) with separable atrous
  convs. The Wider MobileNetV2 replaces every 3x3 convolution of MobileNetV2
  (the first conv and every depthwise conv) by a 5x5 one, which the paper says
  widens the receptive field to 981 x 981; ``receptive_field`` reproduces that
  number for the plain network (stride 32).
* Decoder and heads: ``heads/deeperlab_decoder.py``.

``build_deeperlab(options)`` returns a functional Keras model from float images
(0..255) to ``{'semantic', 'keypoint_heatmap', 'long_range_offsets',
'short_range_offsets', 'middle_range_offsets'}`` at stride 4. Offsets are in
input pixels (dy, dx), so upsampling the outputs keeps them valid.

Example:
  >>> from deeplab_tf.models.deeperlab import DeeperLabOptions, build_deeperlab
  >>> m = build_deeperlab(DeeperLabOptions(
  ...     model_variant='wider_mobilenet_v2', num_classes=5, crop_size=(65, 65),
  ...     depth_multiplier=0.25))
  >>> m.output['middle_range_offsets'].shape
  (None, 17, 17, 32)
"""
import dataclasses
from typing import Optional, Tuple

import keras

from deeplab_tf.core import keypoints
from deeplab_tf.models import backbones
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.backbones import mobilenet_v2
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.heads import aspp as aspp_lib
from deeplab_tf.models.heads import deeperlab_decoder as decoder_lib
from deeplab_tf.models import meta_architectures
from deeplab_tf.models.options import ModelOptions, OptionsError
from deeplab_tf.models.options import pair

XCEPTION_71 = 'xception_71'
WIDER_MOBILENET_V2 = 'wider_mobilenet_v2'
# Sec. 3.1: the Wider MobileNetV2 uses 5x5 kernels where MobileNetV2 has 3x3.
WIDER_KERNEL_SIZE = 5


def widen_spec(spec, kernel_size=WIDER_KERNEL_SIZE):
  """A MobileNet conv_defs spec with every 3x3 kernel replaced (Sec. 3.1)."""
  return [dataclasses.replace(layer, kernel_size=kernel_size)
          if layer.kernel_size == 3 else layer for layer in spec]


WIDER_V2_SPEC = widen_spec(mobilenet_v2.V2_SPEC)


def receptive_field(spec, output_stride=None, final_layer=18):
  """Receptive field (pixels) of ``layer_<final_layer>`` of a MobileNet spec.

  With atrous convs past ``output_stride`` (None: the plain strided network).
  The Wider MobileNetV2 gives 981 at stride 32, the paper's number (Sec. 3.1).
  """
  field, jump, stride_so_far, rate = 1, 1, 1, 1
  for layer in spec[:final_layer]:
    stride = layer.stride
    if output_stride is not None and stride_so_far >= output_stride and (
        stride > 1):
      rate, stride = rate * stride, 1
    effective = layer.kernel_size + (layer.kernel_size - 1) * (
        rate - 1 if layer.kernel_size > 1 else 0)
    field += (effective - 1) * jump
    jump *= stride
    stride_so_far *= stride
  return field


def _wider_mobilenet_v2(b, images, output_stride, depth_multiplier=1.0,
                        divisible_by=None, scope=None, **unused):
  return mobilenet_v2.mobilenet_base(
      b, images, WIDER_V2_SPEC, scope or 'MobilenetV2',
      depth_multiplier=depth_multiplier, output_stride=output_stride,
      final_endpoint='layer_18', divisible_by=divisible_by)


# The MobileNetV2 entry of the registry with the widened spec: same scopes and
# end points, so MobileNetV2 checkpoints map by name (all but the 5x5 kernels).
_MOBILENET = backbones.get_backbone('mobilenet_v2')
WIDER_MOBILENET_V2_BACKBONE = dataclasses.replace(
    _MOBILENET, name=WIDER_MOBILENET_V2, build=_wider_mobilenet_v2)

ENCODERS = (XCEPTION_71, WIDER_MOBILENET_V2)

# What ``model_options.json`` and the train flags call this model; never a
# ModelOptions.meta_architecture (those are the semantic DeepLab heads).
META_ARCHITECTURE = 'deeperlab'


def get_encoder(model_variant):
  if model_variant == WIDER_MOBILENET_V2:
    return WIDER_MOBILENET_V2_BACKBONE
  if model_variant == XCEPTION_71:
    return backbones.get_backbone(XCEPTION_71)
  raise OptionsError('DeeperLab encoders are %s; got model_variant %r.'
                     % (' and '.join(ENCODERS), model_variant))


@dataclasses.dataclass
class DeeperLabOptions:
  """Every DeeperLab model choice (paper values as defaults)."""
  num_classes: int = 65   # Mapillary Vistas, the paper's dataset (Sec. 4).
  model_variant: str = XCEPTION_71
  crop_size: Optional[Tuple[int, int]] = None
  # Sec. 3.1: output stride 16 with ASPP; DeepLabv3's rates at stride 16.
  output_stride: int = 16
  atrous_rates: Tuple[int, ...] = (6, 12, 18)
  depth_multiplier: float = 1.0
  decoder: decoder_lib.DecoderSettings = dataclasses.field(
      default_factory=decoder_lib.DecoderSettings)
  # Sec. 3.2: K = 5 keypoints; the middle-range graph (see core.keypoints).
  num_keypoints: int = len(keypoints.KEYPOINT_NAMES)
  num_edges: int = len(keypoints.DEFAULT_EDGES)
  batch_norm_decay: float = 0.9997
  aspp_convs_filters: int = 256

  def __post_init__(self):
    if self.crop_size is not None:
      self.crop_size = tuple(int(d) for d in self.crop_size)
    self.atrous_rates = tuple(int(r) for r in self.atrous_rates)
    get_encoder(self.model_variant)
    if self.output_stride != 16:
      # The S2D / D2S by 4 folds stride 4 into stride 16 exactly.
      raise OptionsError('DeeperLab fuses stride-4 features into stride 16 by '
                         'space-to-depth(4): output_stride must be 16, got %r.'
                         % (self.output_stride,))
    if self.num_classes < 1:
      raise OptionsError('num_classes must be >= 1, got %r.'
                         % (self.num_classes,))

  def model_options(self):
    """The DeepLab ModelOptions that the ASPP (and backbone options) read."""
    return ModelOptions(
        outputs_to_num_classes={'semantic': self.num_classes},
        crop_size=self.crop_size, atrous_rates=self.atrous_rates,
        output_stride=self.output_stride, aspp_with_batch_norm=True,
        aspp_with_separable_conv=True, model_variant='mobilenet_v2'
        if self.model_variant == WIDER_MOBILENET_V2 else self.model_variant,
        depth_multiplier=self.depth_multiplier,
        batch_norm_decay=self.batch_norm_decay,
        aspp_convs_filters=self.aspp_convs_filters)

  def head_channels(self):
    return decoder_lib.head_channels(self.num_classes, self.num_keypoints,
                                     self.num_edges)

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self):
    """JSON-ready dict; ``meta_architecture`` tells it from a ModelOptions dict."""
    values = dataclasses.asdict(self)
    values['meta_architecture'] = META_ARCHITECTURE
    return values

  @classmethod
  def from_dict(cls, values):
    """Inverse of ``to_dict`` (lists from JSON become tuples again)."""
    values = dict(values)
    kind = values.pop('meta_architecture', META_ARCHITECTURE)
    if kind != META_ARCHITECTURE:
      raise OptionsError('DeeperLabOptions.from_dict got meta_architecture %r; '
                         'expected %r (a ModelOptions dict?).'
                         % (kind, META_ARCHITECTURE))
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise OptionsError('Unknown DeeperLab options %s; accepted: %s.'
                         % (unknown, sorted(known)))
    if isinstance(values.get('decoder'), dict):
      values['decoder'] = decoder_lib.DecoderSettings(**values['decoder'])
    return cls(**values)


def head_logits_scopes():
  """The final 1x1 conv of each head: ``<head>/logits``."""
  return ['%s/logits' % name for name in decoder_lib.HEAD_NAMES]


def get_extra_layer_scopes(last_layers_contain_logits_only=False):
  """DeeperLab's "last layers", as the original model.get_extra_layer_scopes.

  With ``last_layers_contain_logits_only``: the five heads' final 1x1 convs
  (the layers whose shape depends on the classes, keypoints and edges). Else
  everything after the encoder, as the original's definition for DeepLab:
  ASPP, image pooling, concat projection, the decoder and the five heads
  whole. ``initialize_last_layer=False`` skips these when restoring and
  ``last_layer_gradient_multiplier`` scales their gradients.
  """
  if last_layers_contain_logits_only:
    return head_logits_scopes()
  return [aspp_lib.IMAGE_POOLING_SCOPE, aspp_lib.ASPP_SCOPE,
          aspp_lib.CONCAT_PROJECTION_SCOPE, decoder_lib.DECODER_SCOPE
          ] + list(decoder_lib.HEAD_NAMES)


def deeperlab_heads(b, images, options):
  """Encoder -> ASPP -> S2D decoder -> {head name: stride-4 output}."""
  encoder = get_encoder(options.model_variant)
  model_options = options.model_options()
  x = dl_layers.NormalizeImage(encoder.preprocess)(images)
  features, end_points = encoder.build(
      b, x, options.output_stride, depth_multiplier=options.depth_multiplier,
      scope=encoder.scope)
  features = aspp_lib.aspp(b, features, model_options)
  low_level = end_points[encoder.end_point_key(
      encoder.decoder_end_points[4][0])]
  bn = aspp_lib.head_batch_norm(model_options)
  decoded = decoder_lib.deeperlab_decoder(b, features, low_level,
                                          options.decoder, bn)
  return decoder_lib.prediction_heads(b, decoded, options.head_channels(),
                                      options.decoder, bn)


def build_deeperlab(options: DeeperLabOptions, fine_tune_batch_norm=False,
                    sync_batch_norm=False, name=None) -> keras.Model:
  """The DeeperLab parser as a functional model (see the module docstring).

  ``sync_batch_norm``: batch statistics over all replicas when BatchNorm
  trains under a strategy with several (as ``build_model``).
  """
  b = LayerBuilder(fine_tune_batch_norm=fine_tune_batch_norm,
                   sync_batch_norm=sync_batch_norm)
  shape = (tuple(options.crop_size) if options.crop_size else (None, None))
  images = keras.Input(shape=shape + (3,), name='images', dtype='float32')
  outputs = deeperlab_heads(b, images, options)
  model = keras.Model(images, outputs,
                      name=name or 'deeperlab_' + options.model_variant)
  model.deeperlab_options = options
  model.deeplab_builder = b
  return model


# The model flags DeeperLab reads; the decoder and heads keep the paper's
# sizes. atrous_rates unset: the default 6, 12, 18.
FLAG_FIELDS = ('model_variant', 'output_stride', 'atrous_rates',
               'depth_multiplier', 'batch_norm_decay', 'aspp_convs_filters')


def options_from_flag_values(values, crop_size=None, num_classes=None):
  """DeeperLabOptions from model flag values by name (the scripts' flags)."""
  kwargs = {name: values[name] for name in FLAG_FIELDS}
  if not kwargs['atrous_rates']:
    del kwargs['atrous_rates']
  else:
    kwargs['atrous_rates'] = tuple(kwargs['atrous_rates'])
  return DeeperLabOptions(num_classes=num_classes or values['num_classes'],
                          crop_size=pair(crop_size), **kwargs)


meta_architectures.register(meta_architectures.MetaArchitecture(
    family='deeperlab', names=(META_ARCHITECTURE,),
    options_class=DeeperLabOptions, build_model=build_deeperlab,
    last_layer_scopes=get_extra_layer_scopes,
    options_from_values=options_from_flag_values,
    flag_names=FLAG_FIELDS + ('num_classes', 'meta_architecture'),
    description='the DeeperLab parser: S2D decoder and five heads on '
    'xception_71 or wider_mobilenet_v2, trained on panoptic records'))

