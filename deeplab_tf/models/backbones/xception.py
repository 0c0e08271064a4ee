"""Modified aligned Xception (Xception-41/65/71) for DeepLabv3+.

Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation" (ECCV 2018), Sec. 3.2; Dai et al. "Deformable ConvNets"
(aligned Xception). Mirrors the original ``research/deeplab/core/xception.py``:
every max-pool replaced by a strided separable conv, BN after every depthwise
and pointwise conv, and atrous rates taking over the strides past the
requested output stride.

Module semantics (the original ``xception_module``):
  * all blocks except ``exit_flow/block2`` are pre-activation: ReLU *before*
    each depthwise conv, BN without activation after depthwise and pointwise,
    output = residual + shortcut with no ReLU after the sum;
  * ``exit_flow/block2`` (``activation_fn_in_separable_conv``) has BN+ReLU
    after every depthwise and pointwise conv and no shortcut;
  * strided convs pad explicitly (``fixed_padding``) and convolve VALID.

``use_bounded_activation`` (quantisation-friendly; the original
``xception_arg_scope(use_bounded_activation=True)``, which also sets
``use_explicit_padding=False`` in every ``xception_module``):
  * the stem convs ``conv1_1`` / ``conv1_2`` use ReLU6 (``conv1_1`` keeps its
    explicit padding: ``resnet_utils.conv2d_same`` has no such switch);
  * pre-activation blocks apply ReLU6 before each depthwise conv and clip the
    BN outputs of depthwise and pointwise convs to [-6, 6] (the clip is their
    ``activation_fn``, so the decoder end point ``separable_conv2_pointwise``
    is the clipped tensor);
  * ``exit_flow/block2`` uses ReLU6 inside its separable convs;
  * before the residual sum both addends are clipped to [-6, 6] (the shortcut
    after its BN, the identity input as it is) and ReLU6 follows the sum
    (``'none'`` skip: no clip, no ReLU6);
  * strided separable convs use TF 'SAME' padding, no ``fixed_padding``.
"""
import dataclasses
from typing import Optional, Tuple

import keras

from deeplab_tf.models import initializers
from deeplab_tf.models.backbones.atrous import atrous_schedule
from deeplab_tf.models.builder import BatchNormParams

# Original extract_features: batch_norm_decay=0.9997, epsilon=1e-3 for Xception.
XCEPTION_BN = BatchNormParams(epsilon=1e-3, decay=0.9997)
# xception_arg_scope(weights_initializer_stddev=0.09): every conv.
XCEPTION_INIT = initializers.truncated_normal(0.09)
DEFAULT_MULTI_GRID = (1, 1, 1)
# The original _CLIP_CAP: bound of tf.clip_by_value under bounded activation.
CLIP_CAP = 6.0


@dataclasses.dataclass(frozen=True)
class XceptionBlock:
  scope: str
  depth_list: Tuple[int, int, int]
  skip_connection_type: str  # 'conv', 'sum' or 'none'
  activation_fn_in_separable_conv: bool
  num_units: int
  stride: int
  unit_rate_list: Optional[Tuple[int, int, int]] = None


def _entry(scope, depth, stride):
  return XceptionBlock('entry_flow/' + scope, (depth,) * 3, 'conv', False, 1,
                       stride)


def _middle_and_exit(num_middle_units, multi_grid):
  return [
      XceptionBlock('middle_flow/block1', (728,) * 3, 'sum', False,
                    num_middle_units, 1),
      XceptionBlock('exit_flow/block1', (728, 1024, 1024), 'conv', False, 1, 2),
      XceptionBlock('exit_flow/block2', (1536, 1536, 2048), 'none', True, 1, 1,
                    unit_rate_list=multi_grid),
  ]


def xception_41_blocks(multi_grid=None):
  return [_entry('block1', 128, 2), _entry('block2', 256, 2),
          _entry('block3', 728, 2)] + _middle_and_exit(8, multi_grid)


def xception_65_blocks(multi_grid=None):
  return [_entry('block1', 128, 2), _entry('block2', 256, 2),
          _entry('block3', 728, 2)] + _middle_and_exit(16, multi_grid)


def xception_71_blocks(multi_grid=None):
  # Xception-71 splits each of entry blocks 2 and 3 into two (stride 1 + 2).
  return [_entry('block1', 128, 2), _entry('block2', 256, 1),
          _entry('block3', 256, 2), _entry('block4', 728, 1),
          _entry('block5', 728, 2)] + _middle_and_exit(16, multi_grid)


BLOCKS = {
    'xception_41': xception_41_blocks,
    'xception_65': xception_65_blocks,
    'xception_71': xception_71_blocks,
}


def _relu(bounded):
  return 'relu6' if bounded else 'relu'


def _clip(x):
  """The original ``tf.clip_by_value(x, -_CLIP_CAP, _CLIP_CAP)``."""
  return keras.ops.clip(x, -CLIP_CAP, CLIP_CAP)


def _separable_conv(b, x, scope, depth, stride, rate, activation_in_conv,
                    bounded=False):
  """The original ``separable_conv2d_same`` in its split (non-regularised) form.

  ``bounded``: the original ``use_bounded_activation``; it also switches the
  strided depthwise conv from explicit padding to 'SAME'.
  """
  clip_after_bn = False
  if activation_in_conv:
    act = _relu(bounded)
  else:
    x = b.activation(x, _relu(bounded))
    act = None
    # Bounded: the original's activation_fn is a clip to [-6, 6] here.
    clip_after_bn = bounded
  explicit = stride > 1 and not bounded
  x = b.depthwise_conv2d(x, scope + '_depthwise', 3, stride=stride, rate=rate,
                         bn=XCEPTION_BN, activation=act,
                         explicit_padding=explicit,
                         weights_initializer=XCEPTION_INIT)
  if clip_after_bn:
    x = _clip(x)
  x = b.conv2d(x, scope + '_pointwise', depth, 1, bn=XCEPTION_BN,
               activation=act,
               weights_initializer=XCEPTION_INIT)
  return _clip(x) if clip_after_bn else x


def xception_module(b, x, scope, block, stride, rate, end_points,
                    bounded=False):
  """One Xception unit: three separable convs plus a shortcut."""
  unit_rates = block.unit_rate_list or DEFAULT_MULTI_GRID
  residual = x
  for i in range(3):
    conv_scope = '%s/separable_conv%d' % (scope, i + 1)
    residual = _separable_conv(
        b, residual, conv_scope, block.depth_list[i],
        stride=stride if i == 2 else 1, rate=rate * unit_rates[i],
        activation_in_conv=block.activation_fn_in_separable_conv,
        bounded=bounded)
    end_points[conv_scope + '_pointwise'] = residual
  if block.skip_connection_type == 'conv':
    shortcut = b.conv2d(x, scope + '/shortcut', block.depth_list[-1], 1,
                        stride=stride, bn=XCEPTION_BN, activation=None,
                        weights_initializer=XCEPTION_INIT)
    out = _bounded_sum(residual, shortcut, bounded)
  elif block.skip_connection_type == 'sum':
    out = _bounded_sum(residual, x, bounded)
  elif block.skip_connection_type == 'none':
    out = residual
  else:
    raise ValueError('Unsupported skip connection type %r.'
                     % (block.skip_connection_type,))
  end_points[scope] = out
  return out


def _bounded_sum(residual, shortcut, bounded):
  """residual + shortcut; bounded: clip both addends, ReLU6 the sum."""
  if not bounded:
    return residual + shortcut
  return keras.layers.ReLU(max_value=6.0)(_clip(residual) + _clip(shortcut))


def xception(b, images, blocks, output_stride, scope,
             use_bounded_activation=False):
  """Builds the Xception body on normalised images.

  ``use_bounded_activation``: the original option of that name (ReLU6,
  clips, 'SAME' padding; see the module docstring). The variables and their
  names are the same either way.

  Returns ``(features, end_points)`` with end points keyed by the original
  names (``<scope>/entry_flow/block2/unit_1/xception_module/...``).
  """
  end_points = {}
  if output_stride is not None:
    if output_stride % 2:
      raise ValueError('Xception needs an even output_stride, got %d.'
                       % output_stride)
    output_stride //= 2  # the stride-2 root below
  relu = _relu(use_bounded_activation)
  x = b.conv2d(images, scope + '/entry_flow/conv1_1', 32, 3, stride=2,
               bn=XCEPTION_BN, activation=relu, explicit_padding=True,
               weights_initializer=XCEPTION_INIT)
  x = b.conv2d(x, scope + '/entry_flow/conv1_2', 64, 3, bn=XCEPTION_BN,
               activation=relu,
               weights_initializer=XCEPTION_INIT)
  units = [(block, u) for block in blocks for u in range(block.num_units)]
  schedule = atrous_schedule([block.stride for block, _ in units],
                             output_stride)
  for (block, u), (stride, rate) in zip(units, schedule):
    unit_scope = '%s/%s/unit_%d/xception_module' % (scope, block.scope, u + 1)
    x = xception_module(b, x, unit_scope, block, stride, rate, end_points,
                        bounded=use_bounded_activation)
  return x, end_points
