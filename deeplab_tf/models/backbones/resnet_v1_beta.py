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

ResNet-18 (``resnet_v1_18`` / ``_beta``) uses the original's basic unit,
``lite_bottleneck`` (scope ``lite_bottleneck_v1``): two 3x3 convs of the unit's
depth, both dilated by ``rate * unit_rate``, the second strided (and linear
before the sum); blocks of 2 units (64/128/256, stride in the last unit),
block4 one 512 unit per multi-grid rate (two rates, default 1, 1). Its beta root
is the three-conv root at ``root_depth_multiplier`` 0.25 (16/2, 16, 32).
"""
import dataclasses
from typing import Optional, Tuple

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
DEFAULT_MULTI_GRID_RESNET_18 = (1, 1)
# The residual unit of a block, which is also its variable scope.
BOTTLENECK = 'bottleneck_v1'
LITE_BOTTLENECK = 'lite_bottleneck_v1'


@dataclasses.dataclass(frozen=True)
class Unit:
  depth: int
  depth_bottleneck: Optional[int]  # None for the lite (basic) unit
  stride: int
  unit_rate: int = 1


@dataclasses.dataclass(frozen=True)
class Block:
  scope: str
  units: Tuple[Unit, ...]
  unit: str = BOTTLENECK  # BOTTLENECK or LITE_BOTTLENECK


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


def _small_beta_block(scope, depth, num_units, stride):
  """The original ``resnet_v1_small_beta_block``: lite units, stride last."""
  unit = Unit(depth, None, 1)
  last = Unit(depth, None, stride)
  return Block(scope, (unit,) * (num_units - 1) + (last,), LITE_BOTTLENECK)


def resnet18_blocks(multi_grid=None):
  """Blocks of ResNet-v1-18: 2 lite units per block, block4 multi-grid (2)."""
  multi_grid = (tuple(multi_grid) if multi_grid
                else DEFAULT_MULTI_GRID_RESNET_18)
  if len(multi_grid) != 2:
    raise ValueError('Expect multi_grid to have length 2, got %r.'
                     % (multi_grid,))
  return [
      _small_beta_block('block1', 64, 2, 2),
      _small_beta_block('block2', 128, 2, 2),
      _small_beta_block('block3', 256, 2, 2),
      Block('block4', tuple(Unit(512, None, 1, r) for r in multi_grid),
            LITE_BOTTLENECK),
  ]


UNITS = {'resnet_v1_50': (3, 4, 6), 'resnet_v1_101': (3, 4, 23)}
RESNET_18 = 'resnet_v1_18'
# The beta root's depth multiplier (original resnet_v1_18_beta's
# root_depth_multiplier=0.25; 1 for the others).
BETA_ROOT_DEPTH_MULTIPLIER = {RESNET_18: 0.25}


def _shortcut(b, x, scope, depth, stride):
  """1x1 conv + BN when the depth changes, else ``resnet_utils.subsample``."""
  if depth == x.shape[-1]:
    if stride == 1:
      return x
    # resnet_utils.subsample: 1x1 max pool with the stride (VALID).
    return keras.layers.MaxPooling2D(1, strides=stride, padding='valid')(x)
  return b.conv2d(x, scope + '/shortcut', depth, 1, stride=stride,
                  bn=RESNET_BN, activation=None,
                  weights_initializer=RESNET_INIT)


def bottleneck(b, x, scope, unit, stride, rate, end_points):
  """The original ``bottleneck`` (v1: ReLU after the sum)."""
  shortcut = _shortcut(b, x, scope, unit.depth, stride)
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


def lite_bottleneck(b, x, scope, unit, stride, rate, end_points):
  """The original ``lite_bottleneck`` (ResNet-18's basic unit).

  conv1: 3x3 stride 1, BN + ReLU; conv2: 3x3 with the unit's stride
  (``conv2d_same``: explicit padding when strided), BN, no activation; both
  dilated by ``rate * unit_rate``; ReLU after the sum with the shortcut.
  """
  shortcut = _shortcut(b, x, scope, unit.depth, stride)
  r = b.conv2d(x, scope + '/conv1', unit.depth, 3,
               rate=rate * unit.unit_rate, bn=RESNET_BN, activation='relu',
               weights_initializer=RESNET_INIT)
  end_points[scope + '/conv1'] = r
  r = b.conv2d(r, scope + '/conv2', unit.depth, 3, stride=stride,
               rate=rate * unit.unit_rate, bn=RESNET_BN, activation=None,
               explicit_padding=True,
               weights_initializer=RESNET_INIT)
  # The decoder's low-level features: the BN output before the sum.
  end_points[scope + '/conv2'] = r
  return b.activation(shortcut + r, 'relu')


UNIT_FNS = {BOTTLENECK: bottleneck, LITE_BOTTLENECK: lite_bottleneck}


def blocks_for(depth_name, multi_grid=None):
  """The blocks of ``resnet_v1_{18,50,101}`` (their ``_beta`` share them)."""
  if depth_name == RESNET_18:
    return resnet18_blocks(multi_grid)
  return resnet_blocks(UNITS[depth_name], multi_grid)


def resnet_v1(b, images, blocks, output_stride, scope, beta,
              root_depth_multiplier=1.0):
  """Builds a ResNet-v1(-beta) body; returns ``(features, end_points)``.

  ``root_depth_multiplier`` scales the beta root's three convs (64, 64, 128)
  as the original ``root_block_fn_for_beta_variant``: ``int(d * m)``.
  """
  end_points = {}
  if output_stride is not None:
    if output_stride % 4:
      raise ValueError('ResNet needs an output_stride that is a multiple of 4, '
                       'got %d.' % output_stride)
    output_stride //= 4  # root conv and max pool
  if beta:
    d64, d128 = (int(64 * root_depth_multiplier),
                 int(128 * root_depth_multiplier))
    x = b.conv2d(images, scope + '/conv1_1', d64, 3, stride=2, bn=RESNET_BN,
                 activation='relu', explicit_padding=True,
                 weights_initializer=RESNET_INIT)
    x = b.conv2d(x, scope + '/conv1_2', d64, 3, bn=RESNET_BN, activation='relu',
                 weights_initializer=RESNET_INIT)
    x = b.conv2d(x, scope + '/conv1_3', d128, 3, bn=RESNET_BN,
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
    unit_scope = '%s/%s/unit_%d/%s' % (scope, block.scope, i + 1, block.unit)
    x = UNIT_FNS[block.unit](b, x, unit_scope, unit, stride, rate, end_points)
    end_points[unit_scope] = x
    if i == len(block.units) - 1:
      end_points['%s/%s' % (scope, block.scope)] = x
  return x, end_points


def resnet_v1_network(b, images, depth_name, beta, output_stride,
                      multi_grid=None, scope=None):
  """``resnet_v1_{18,50,101}`` or, with ``beta``, its ``_beta`` variant."""
  root = BETA_ROOT_DEPTH_MULTIPLIER.get(depth_name, 1.0) if beta else 1.0
  return resnet_v1(b, images, blocks_for(depth_name, multi_grid),
                   output_stride, scope or depth_name, beta=beta,
                   root_depth_multiplier=root)
