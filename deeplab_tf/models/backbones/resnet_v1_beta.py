"""ResNet-v1 and ResNet-v1-beta (DeepLabv3) backbones with atrous blocks and multi-grid.

He et al., "Deep Residual Learning" (2016); Chen et al., "Rethinking Atrous
Convolution for Semantic Image Segmentation" (DeepLabv3, 2017), Sec. 3.2-3.3
(multi-grid). Mirrors the original ``research/deeplab/core/resnet_v1_beta.py``
with ``tf_slim.nets.resnet_utils.stack_blocks_dense``:

  * beta root: three 3x3 convs (64/2, 64, 128) instead of one 7x7/2 conv;
  * a 3x3/2 max pool (SAME) after the root;
  * the stride of each block sits in its *last* unit (3x3 conv2, explicitly
    padded when strided);
  * 1x1 shortcut conv only when the depth changes, else a 1x1/stride subsample;
  * block4 units use ``rate * multi_grid[i]`` (multi-grid).
"""
import dataclasses
from typing import Tuple

import keras

from deeplab_tf.models import initializers
from deeplab_tf.models.backbones.atrous import atrous_schedule
from deeplab_tf.models.builder import BatchNormParams

# Original extract_features passes batch_norm_decay=0.95, epsilon=1e-5 for ResNets.
RESNET_BN = BatchNormParams(epsilon=1e-5, decay=0.95)
# resnet_arg_scope: slim.variance_scaling_initializer() (factor 2, FAN_IN,
# truncated normal) for every conv.
RESNET_INIT = initializers.slim_variance_scaling()
DEFAULT_MULTI_GRID = (1, 1, 1)


@dataclasses.dataclass(frozen=True)
class Unit:
  depth: int
  depth_bottleneck: int
  stride: int
  unit_rate: int = 1


@dataclasses.dataclass(frozen=True)
class Block:
  scope: str
  units: Tuple[Unit, ...]


def _beta_block(scope, base_depth, num_units, stride):
  """The original ``resnet_v1_beta_block``: stride in the last unit."""
  unit = Unit(base_depth * 4, base_depth, 1)
  last = Unit(base_depth * 4, base_depth, stride)
  return Block(scope, (unit,) * (num_units - 1) + (last,))


def resnet_blocks(num_units, multi_grid=None):
  """Blocks of ResNet-v1-{50,101}: ``num_units`` for block1..3, block4 multi-grid."""
  multi_grid = tuple(multi_grid) if multi_grid else DEFAULT_MULTI_GRID
  if len(multi_grid) != 3:
    raise ValueError('Expect multi_grid to have length 3, got %r.'
                     % (multi_grid,))
  return [
      _beta_block('block1', 64, num_units[0], 2),
      _beta_block('block2', 128, num_units[1], 2),
      _beta_block('block3', 256, num_units[2], 2),
      Block('block4', tuple(Unit(2048, 512, 1, r) for r in multi_grid)),
  ]


UNITS = {'resnet_v1_50': (3, 4, 6), 'resnet_v1_101': (3, 4, 23)}


def bottleneck(b, x, scope, unit, stride, rate, end_points):
  """The original ``bottleneck`` (v1: ReLU after the sum)."""
  depth_in = x.shape[-1]
  if unit.depth == depth_in:
    if stride == 1:
      shortcut = x
    else:
      # resnet_utils.subsample: 1x1 max pool with the stride (VALID).
      shortcut = keras.layers.MaxPooling2D(1, strides=stride,
                                           padding='valid')(x)
  else:
    shortcut = b.conv2d(x, scope + '/shortcut', unit.depth, 1, stride=stride,
                        bn=RESNET_BN, activation=None,
                        weights_initializer=RESNET_INIT)
  r = b.conv2d(x, scope + '/conv1', unit.depth_bottleneck, 1, bn=RESNET_BN,
               activation='relu',
               weights_initializer=RESNET_INIT)
  r = b.conv2d(r, scope + '/conv2', unit.depth_bottleneck, 3, stride=stride,
               rate=rate * unit.unit_rate, bn=RESNET_BN, activation='relu',
               explicit_padding=True,
               weights_initializer=RESNET_INIT)
  r = b.conv2d(r, scope + '/conv3', unit.depth, 1, bn=RESNET_BN,
               activation=None,
               weights_initializer=RESNET_INIT)
  # slim collects every conv's output under its scope: '.../conv3' is the BN
  # output before the residual sum and ReLU (the decoder's low-level feature).
  end_points[scope + '/conv3'] = r
  return b.activation(shortcut + r, 'relu')


def resnet_v1(b, images, blocks, output_stride, scope, beta):
  """Builds a ResNet-v1(-beta) body; returns ``(features, end_points)``."""
  end_points = {}
  if output_stride is not None:
    if output_stride % 4:
      raise ValueError('ResNet needs an output_stride that is a multiple of 4, '
                       'got %d.' % output_stride)
    output_stride //= 4  # root conv and max pool
  if beta:
    x = b.conv2d(images, scope + '/conv1_1', 64, 3, stride=2, bn=RESNET_BN,
                 activation='relu', explicit_padding=True,
                 weights_initializer=RESNET_INIT)
    x = b.conv2d(x, scope + '/conv1_2', 64, 3, bn=RESNET_BN, activation='relu',
                 weights_initializer=RESNET_INIT)
    x = b.conv2d(x, scope + '/conv1_3', 128, 3, bn=RESNET_BN,
                 activation='relu',
                 weights_initializer=RESNET_INIT)
  else:
    x = b.conv2d(images, scope + '/conv1', 64, 7, stride=2, bn=RESNET_BN,
                 activation='relu', explicit_padding=True,
                 weights_initializer=RESNET_INIT)
  x = keras.layers.MaxPooling2D(3, strides=2, padding='same')(x)
  units = [(block, i, unit) for block in blocks
           for i, unit in enumerate(block.units)]
  schedule = atrous_schedule([u.stride for _, _, u in units], output_stride)
  for (block, i, unit), (stride, rate) in zip(units, schedule):
    unit_scope = '%s/%s/unit_%d/bottleneck_v1' % (scope, block.scope, i + 1)
    x = bottleneck(b, x, unit_scope, unit, stride, rate, end_points)
    end_points[unit_scope] = x
    if i == len(block.units) - 1:
      end_points['%s/%s' % (scope, block.scope)] = x
  return x, end_points
