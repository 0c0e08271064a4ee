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
"""
import dataclasses
from typing import Optional, Tuple

from deeplab_tf.models import initializers
from deeplab_tf.models.backbones.atrous import atrous_schedule
from deeplab_tf.models.builder import BatchNormParams

# Original extract_features: batch_norm_decay=0.9997, epsilon=1e-3 for Xception.
XCEPTION_BN = BatchNormParams(epsilon=1e-3, decay=0.9997)
# xception_arg_scope(weights_initializer_stddev=0.09): every conv.
XCEPTION_INIT = initializers.truncated_normal(0.09)
DEFAULT_MULTI_GRID = (1, 1, 1)


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


def _separable_conv(b, x, scope, depth, stride, rate, activation_in_conv):
  """The original ``separable_conv2d_same`` in its split (non-regularised) form."""
  if activation_in_conv:
    act = 'relu'
  else:
    x = b.activation(x, 'relu')
    act = None
  explicit = stride > 1
  x = b.depthwise_conv2d(x, scope + '_depthwise', 3, stride=stride, rate=rate,
                         bn=XCEPTION_BN, activation=act,
                         explicit_padding=explicit,
                         weights_initializer=XCEPTION_INIT)
  return b.conv2d(x, scope + '_pointwise', depth, 1, bn=XCEPTION_BN,
                  activation=act,
                  weights_initializer=XCEPTION_INIT)


def xception_module(b, x, scope, block, stride, rate, end_points):
  """One Xception unit: three separable convs plus a shortcut."""
  unit_rates = block.unit_rate_list or DEFAULT_MULTI_GRID
  residual = x
  for i in range(3):
    conv_scope = '%s/separable_conv%d' % (scope, i + 1)
    residual = _separable_conv(
        b, residual, conv_scope, block.depth_list[i],
        stride=stride if i == 2 else 1, rate=rate * unit_rates[i],
        activation_in_conv=block.activation_fn_in_separable_conv)
    end_points[conv_scope + '_pointwise'] = residual
  if block.skip_connection_type == 'conv':
    shortcut = b.conv2d(x, scope + '/shortcut', block.depth_list[-1], 1,
                        stride=stride, bn=XCEPTION_BN, activation=None,
                        weights_initializer=XCEPTION_INIT)
    out = residual + shortcut
  elif block.skip_connection_type == 'sum':
    out = residual + x
  elif block.skip_connection_type == 'none':
    out = residual
  else:
    raise ValueError('Unsupported skip connection type %r.'
                     % (block.skip_connection_type,))
  end_points[scope] = out
  return out


def xception(b, images, blocks, output_stride, scope):
  """Builds the Xception body on normalised images.

  Returns ``(features, end_points)`` with end points keyed by the original
  names (``<scope>/entry_flow/block2/unit_1/xception_module/...``).
  """
  end_points = {}
  if output_stride is not None:
    if output_stride % 2:
      raise ValueError('Xception needs an even output_stride, got %d.'
                       % output_stride)
    output_stride //= 2  # the stride-2 root below
  x = b.conv2d(images, scope + '/entry_flow/conv1_1', 32, 3, stride=2,
               bn=XCEPTION_BN, activation='relu', explicit_padding=True,
               weights_initializer=XCEPTION_INIT)
  x = b.conv2d(x, scope + '/entry_flow/conv1_2', 64, 3, bn=XCEPTION_BN,
               activation='relu',
               weights_initializer=XCEPTION_INIT)
  units = [(block, u) for block in blocks for u in range(block.num_units)]
  schedule = atrous_schedule([block.stride for block, _ in units],
                             output_stride)
  for (block, u), (stride, rate) in zip(units, schedule):
    unit_scope = '%s/%s/unit_%d/xception_module' % (scope, block.scope, u + 1)
    x = xception_module(b, x, unit_scope, block, stride, rate, end_points)
  return x, end_points
