"""PNASNet and Auto-DeepLab (hnasnet): a stem, then a NAS cell along a path.

The original ``core/nas_network.py`` (``pnasnet``, ``hnasnet``,
``_build_nas_base``):

  * stem: 3x3/2 conv 64 -> BN -> ReLU -> 3x3 conv 64 -> BN (``conv1_bn``,
    the "input of the cell before" of cell 0) -> ReLU -> 3x3/2 conv 128 -> BN
    (``Stem`` end point, stride 4); strided convs pad explicitly;
  * cells ``cell_0 .. cell_11`` along the path (``nas_genotypes.py``): a cell
    one level deeper strides by 2 and doubles the filters
    (``nas_stem_output_num_conv_filters`` x 2 ** level at levels 1+); one
    level shallower first upsamples its input (bilinear, align_corners, to
    ``scale_dimension(size, 2)``) and halves them; each cell reads the output
    of the one before it and of the one before that. End points ``Cell_<n>``
    are the cell outputs;
  * a final ReLU; with ``nas_use_classification_head``, 3x3 convs
    (``downsample_os16``, ``downsample_os32``: 512, 1024 filters) take the
    features to stride 32 (strided while the requested output stride allows,
    atrous after), then a 1x1 conv 2048 (``classification_head``), each with
    BN and ReLU;
  * ``nas_remove_os32_stride``: a cell entering level 3 does not stride and
    the cell leaving it does not upsample (the stride-32 cells run at 16).

PNASNet's path follows the output stride (8, 16, 32). Auto-DeepLab's path is
fixed and ends at stride 8: without the classification head it exists at
output stride 8 only (``feature_stride``; ``validation.py`` refuses the
rest).
"""
import keras

from deeplab_tf.models import options as options_lib
from deeplab_tf.models.backbones import nas_cell
from deeplab_tf.models.backbones import nas_genotypes

PNASNET_SCOPE = 'pnasnet'
HNASNET_SCOPE = 'hnasnet'
# Original config(): filters grow by this factor per level.
FILTER_SCALING_RATE = 2.0
# Every kernel under these scopes gets an L2 term, the separable convs'
# depthwise kernels included (nas_arg_scope regularises
# slim.separable_conv2d, which puts both kernels in one scope).
REGULARIZED_DEPTHWISE_SCOPES = (PNASNET_SCOPE + '/', HNASNET_SCOPE + '/')

# Classification head: filters of the downsampling conv reaching a stride.
_HEAD_FILTERS = {8: 256, 16: 512, 32: 1024}
HEAD_FILTERS = 2048
# ModelOptions.nas_architecture_options, the original defaults filled in.
complete_options = options_lib.complete_nas_architecture_options


def _path(model_variant, output_stride):
  if model_variant == 'nas_hnasnet':
    return nas_genotypes.AUTO_DEEPLAB_PATH
  if output_stride not in nas_genotypes.PNASNET_PATHS:
    raise ValueError('PNASNet has no path for output_stride %r; accepted: %s.'
                     % (output_stride, sorted(nas_genotypes.PNASNET_PATHS)))
  return nas_genotypes.PNASNET_PATHS[output_stride]


def _head_strides(path, output_stride):
  """Strides of the classification head's downsampling convs (the original's
  loop), or ValueError when output_stride is not a multiple of the path's."""
  scale = 2 + path[-1]
  path_stride = 2 ** scale
  if output_stride % path_stride:
    raise ValueError('output_stride must be a multiple of backbone output '
                     'stride: %d is not a multiple of %d.'
                     % (output_stride, path_stride))
  left = output_stride // path_stride
  strides = []
  if path_stride != 32:
    for _ in range(5 - scale):
      if left != 1:
        strides.append(2)
        left //= 2
      else:
        strides.append(1)
  return scale, strides


def cell_schedule(path, remove_os32_stride=False):
  """Per cell of ``path``: (stride, whether its input is upsampled first,
  filter scaling), the original ``_build_nas_base`` loop."""
  schedule = []
  scaling = 1.0
  for n, level in enumerate(path):
    stride, upsample = 1, False
    if n == 0:
      if level == 1:
        stride = 2
        scaling *= FILTER_SCALING_RATE
    elif level == path[n - 1] + 1:
      stride = 1 if (level == 3 and remove_os32_stride) else 2
      scaling *= FILTER_SCALING_RATE
    elif level == path[n - 1] - 1:
      upsample = not (path[n - 1] == 3 and remove_os32_stride)
      scaling /= FILTER_SCALING_RATE
    schedule.append((stride, upsample, scaling))
  return schedule


def feature_stride(model_variant, output_stride, options=None):
  """The stride the backbone's features actually end at.

  It differs from ``output_stride`` for Auto-DeepLab without the
  classification head (always 8) and with ``nas_remove_os32_stride`` at
  output stride 32 (16).
  """
  options = complete_options(options)
  path = _path(model_variant, output_stride)
  stride = 4  # the stem
  for cell_stride, upsample, _ in cell_schedule(
      path, options['nas_remove_os32_stride']):
    stride = stride * cell_stride // (2 if upsample else 1)
  if options['nas_use_classification_head']:
    for head_stride in _head_strides(path, output_stride)[1]:
      stride *= head_stride
  return stride


def feature_size(model_variant, output_stride, size, options=None):
  """The (height, width) the backbone's features have for an input ``size``.

  Every stride-2 step gives ``ceil(d / 2)`` (explicit padding, SAME pools,
  ``scale_dimension(d, 0.5)``), every upsampling ``scale_dimension(d, 2) =
  2 d - 1``, so Auto-DeepLab's way down to stride 32 and back keeps
  ``scale_dimension(d, 1 / 8)`` only for ``d = 32 k + 1``.
  """
  options = complete_options(options)
  path = _path(model_variant, output_stride)

  def down(dims):
    return [(d - 1) // 2 + 1 for d in dims]

  dims = down(down(list(size)))  # the stem
  for cell_stride, upsample, _ in cell_schedule(
      path, options['nas_remove_os32_stride']):
    if upsample:
      dims = [2 * d - 1 for d in dims]
    if cell_stride == 2:
      dims = down(dims)
  if options['nas_use_classification_head']:
    for head_stride in _head_strides(path, output_stride)[1]:
      if head_stride == 2:
        dims = down(dims)
  return tuple(dims)


def nas_stem(b, images, scope):
  """The original ``_nas_stem``; returns (output, [conv1_bn, conv2_bn])."""
  net = nas_cell.conv(b, images, scope + '/conv0', 64, 3, stride=2)
  net = nas_cell.batch_norm(b, net, scope + '/conv0_bn')
  net = keras.layers.ReLU()(net)
  net = nas_cell.conv(b, net, scope + '/conv1', 64, 3)
  net = nas_cell.batch_norm(b, net, scope + '/conv1_bn')
  cell_outputs = [net]
  net = keras.layers.ReLU()(net)
  net = nas_cell.conv(b, net, scope + '/conv2', 128, 3, stride=2)
  net = nas_cell.batch_norm(b, net, scope + '/conv2_bn')
  cell_outputs.append(net)
  return net, cell_outputs


def build_nas_base(b, images, genotype, path, scope, output_stride,
                   nas_stem_output_num_conv_filters=20,
                   nas_use_classification_head=False,
                   nas_remove_os32_stride=False):
  """The original ``_build_nas_base`` (no logits): (features, end_points)."""
  end_points = {}
  net, cell_outputs = nas_stem(b, images, scope)
  end_points['Stem'] = net
  schedule = cell_schedule(path, nas_remove_os32_stride)
  for cell_num, (stride, upsample, filter_scaling) in enumerate(schedule):
    if upsample:
      net = nas_cell.ResizeByFactor(2.0)(net)
    net = nas_cell.nas_cell(
        b, net, cell_outputs[-2], genotype, '%s/cell_%d' % (scope, cell_num),
        int(nas_stem_output_num_conv_filters * filter_scaling), stride,
        cell_num, len(path))
    end_points['Cell_%d' % cell_num] = net
    cell_outputs.append(net)
  net = keras.layers.ReLU()(net)
  if nas_use_classification_head:
    scale, strides = _head_strides(path, output_stride)
    rate = 1
    for i, stride in enumerate(strides):
      target = 2 ** (scale + 1 + i)
      head_scope = '%s/downsample_os%d' % (scope, target)
      if stride == 1:
        rate *= 2
      net = nas_cell.conv(b, net, head_scope + '_conv', _HEAD_FILTERS[target],
                          3, stride=stride, rate=rate)
      net = nas_cell.batch_norm(b, net, head_scope + '_bn')
      end_points['downsample_os%d' % target] = net
      net = keras.layers.ReLU()(net)
    head_scope = scope + '/classification_head'
    net = nas_cell.conv(b, net, head_scope + '_conv', HEAD_FILTERS, 1)
    net = nas_cell.batch_norm(b, net, head_scope + '_bn')
    end_points['classification_head'] = net
    net = keras.layers.ReLU()(net)
  return net, end_points


def pnasnet(b, images, output_stride, scope=PNASNET_SCOPE,
            nas_architecture_options=None):
  """PNASNet-5 cells on the path of ``output_stride`` (8, 16 or 32)."""
  return build_nas_base(b, images, nas_genotypes.PNASNET_CELL,
                        _path('nas_pnasnet', output_stride), scope,
                        output_stride,
                        **complete_options(nas_architecture_options))


def hnasnet(b, images, output_stride, scope=HNASNET_SCOPE,
            nas_architecture_options=None):
  """Auto-DeepLab: its cell on its searched path (features at stride 8,
  or at ``output_stride`` with the classification head)."""
  return build_nas_base(b, images, nas_genotypes.AUTO_DEEPLAB_CELL,
                        nas_genotypes.AUTO_DEEPLAB_PATH, scope, output_stride,
                        **complete_options(nas_architecture_options))

