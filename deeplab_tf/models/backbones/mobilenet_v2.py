"""MobileNetV2 backbone (inverted residuals, linear bottlenecks) with atrous strides.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (2018),
Table 2; used by DeepLabv3 as in the model zoo. Mirrors slim's
``nets/mobilenet/{mobilenet,mobilenet_v2,conv_blocks}.py`` as called by the
original DeepLab ``feature_extractor._mobilenet_v2``:

  * layers are numbered ``layer_1`` .. ``layer_18`` (one-based) and the
    network stops at ``layer_18`` (320 channels): the 1280-channel ``Conv_1``
    is never built;
  * past the requested output stride, a strided layer runs at stride 1 with
    the current rate, and the rate is multiplied by its stride for the layers
    after it; rates never apply to 1x1 convs;
  * ReLU6, TF SAME padding (asymmetric for even sizes), BN epsilon 1e-3.
"""
import dataclasses
from typing import Callable, Optional

from deeplab_tf.models import initializers
from deeplab_tf.models.backbones.atrous import atrous_schedule
from deeplab_tf.models.builder import BatchNormParams

# slim batch_norm default epsilon 1e-3; mobilenet training_scope decay 0.997.
MOBILENET_BN = BatchNormParams(epsilon=1e-3, decay=0.997)
# mobilenet.training_scope: every conv and depthwise conv (stddev=0.09).
MOBILENET_INIT = initializers.truncated_normal(0.09)


def make_divisible(value, divisor, min_value=None):
  """slim mobilenet ``_make_divisible``: round to a multiple, never below 90%."""
  if min_value is None:
    min_value = divisor
  new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
  if new_value < 0.9 * value:
    new_value += divisor
  return int(new_value)


def expand_input(multiplier, divisible_by=8):
  """Expansion size as a function of the input depth (slim ``expand_input``)."""
  return lambda num_inputs: make_divisible(num_inputs * multiplier, divisible_by)


@dataclasses.dataclass(frozen=True)
class Conv:
  """A plain conv layer of a conv_defs spec (slim.conv2d)."""
  num_outputs: int
  kernel_size: int = 3
  stride: int = 1
  activation: Optional[str] = 'relu6'


@dataclasses.dataclass(frozen=True)
class ExpandedConv:
  """An inverted-residual block (slim ``conv_blocks.expanded_conv``)."""
  num_outputs: int
  stride: int = 1
  kernel_size: int = 3
  expansion_size: Callable[[int], int] = expand_input(6)
  activation: str = 'relu6'
  # MobileNetV3 additions: squeeze-excite on the depthwise output.
  squeeze_excite: Optional[object] = None
  residual: bool = True
  # EdgeTPU addition (slim ``mobilenet_v3.mbv3_fused``): no depthwise conv;
  # the expansion itself is a ``kernel_size`` conv at the nominal ``stride``.
  fused: bool = False


V2_SPEC = (
    [Conv(32, stride=2),
     ExpandedConv(16, expansion_size=expand_input(1, divisible_by=1)),
     ExpandedConv(24, stride=2), ExpandedConv(24),
     ExpandedConv(32, stride=2), ExpandedConv(32), ExpandedConv(32),
     ExpandedConv(64, stride=2)] + [ExpandedConv(64)] * 3
    + [ExpandedConv(96)] * 3
    + [ExpandedConv(160, stride=2)] + [ExpandedConv(160)] * 2
    + [ExpandedConv(320), Conv(1280, kernel_size=1)])


def expanded_conv(b, x, scope, spec, num_outputs, stride, rate, bn,
                  end_points, end_point):
  """expand 1x1 (only if it widens) -> depthwise -> project 1x1 (linear) [+ input].

  A fused block (``spec.fused``) has no depthwise conv: its expansion is a
  ``spec.kernel_size`` conv. As slim's, that conv keeps the nominal
  ``spec.stride`` and rate 1 whatever the output stride asks (its stride is
  bound into the block's ``expansion_fn``); only the residual test reads the
  stride the layer runs at. No expansion (an input already as wide) leaves
  just the 1x1 projection.
  """
  in_depth = x.shape[-1]
  inner = spec.expansion_size(in_depth)
  net = x
  if inner > in_depth:
    if spec.fused:
      kernel, expand_stride = spec.kernel_size, spec.stride
    else:
      kernel, expand_stride = 1, 1
    net = b.conv2d(net, scope + '/expand', inner, kernel, stride=expand_stride,
                   bn=bn, activation=spec.activation,
                   weights_initializer=MOBILENET_INIT)
    end_points[end_point + '/expansion_output'] = net
  if not spec.fused:
    net = b.depthwise_conv2d(net, scope + '/depthwise', spec.kernel_size,
                             stride=stride, rate=rate, bn=bn,
                             activation=spec.activation,
                             weights_initializer=MOBILENET_INIT)
    end_points[end_point + '/depthwise_output'] = net
  if spec.squeeze_excite is not None:
    net = spec.squeeze_excite(b, net, scope + '/squeeze_excite')
  net = b.conv2d(net, scope + '/project', num_outputs, 1, bn=bn,
                 activation=None,
                 weights_initializer=MOBILENET_INIT)
  end_points[end_point + '/projection_output'] = net
  if spec.residual and stride == 1 and in_depth == num_outputs:
    net = b.residual(net, x, scope)
  return net


def mobilenet_base(b, images, spec, scope, depth_multiplier=1.0,
                   output_stride=None, final_endpoint='layer_18',
                   divisible_by=None, min_depth=None, bn=MOBILENET_BN,
                   conv_scope_names=None):
  """Builds layers ``layer_1 .. final_endpoint`` of a MobileNet conv_defs spec.

  Returns ``(features, end_points)``; end points use the slim names
  (``layer_4/depthwise_output`` ...), without the network scope, as the
  original DeepLab decoder looks them up for MobileNets.
  """
  if divisible_by is None:
    divisible_by = 8 if depth_multiplier == 1.0 else 1
  if min_depth is None:
    min_depth = 8 if depth_multiplier == 1.0 else 1
  if output_stride is not None:
    if output_stride == 0 or (output_stride > 1 and output_stride % 2):
      raise ValueError('Output stride must be None, 1 or a multiple of 2, '
                       'got %r.' % (output_stride,))
  names = conv_scope_names or default_scope_names(spec)
  end_points = {}
  net = images
  schedule = atrous_schedule([layer.stride for layer in spec], output_stride,
                             strict=False)
  for i, (layer, (layer_stride, layer_rate)) in enumerate(zip(spec, schedule)):
    end_point = 'layer_%d' % (i + 1)
    if layer.kernel_size == 1:
      layer_rate = 1  # rates are never applied to 1x1 convs
    num_outputs = make_divisible(layer.num_outputs * depth_multiplier,
                                 divisible_by, min_depth)
    layer_scope = '%s/%s' % (scope, names[i])
    if isinstance(layer, Conv):
      net = b.conv2d(net, layer_scope, num_outputs, layer.kernel_size,
                     stride=layer_stride, rate=layer_rate, bn=bn,
                     activation=layer.activation,
                     weights_initializer=MOBILENET_INIT)
    else:
      net = expanded_conv(b, net, layer_scope, layer, num_outputs,
                          layer_stride, layer_rate, bn, end_points, end_point)
    end_points[end_point] = net
    if end_point == final_endpoint:
      break
  return net, end_points


def default_scope_names(spec):
  """slim's default scope names: Conv, Conv_1, expanded_conv, expanded_conv_1 ..."""
  counts, names = {}, []
  for layer in spec:
    base = 'Conv' if isinstance(layer, Conv) else 'expanded_conv'
    n = counts.get(base, 0)
    names.append(base if n == 0 else '%s_%d' % (base, n))
    counts[base] = n + 1
  return names


def mobilenet_v2(b, images, output_stride, scope='MobilenetV2',
                 depth_multiplier=1.0, divisible_by=None):
  return mobilenet_base(b, images, V2_SPEC, scope,
                        depth_multiplier=depth_multiplier,
                        output_stride=output_stride, final_endpoint='layer_18',
                        divisible_by=divisible_by)
