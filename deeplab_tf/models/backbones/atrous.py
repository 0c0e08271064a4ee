"""Atrous convolution in place of striding past the requested output stride.

DeepLabv3 (arXiv:1706.05587) Sec. 3.2: to keep features at ``output_stride``,
every stride that would go beyond it is removed and the following layers are
dilated by the product of the removed strides. The original spells this out in
``resnet_utils.stack_blocks_dense`` (ResNet, Xception) and in slim's
``mobilenet_base``; all three backbones here use this one schedule.
"""


def atrous_schedule(unit_strides, output_stride, strict=True):
  """Per unit ``(stride, rate)`` so the stack stops striding at ``output_stride``.

  Args:
    unit_strides: the nominal stride of each unit, in order (after any root
      layers, whose stride the caller has already divided out).
    output_stride: the stride to reach, or None to keep every stride.
    strict: raise when ``output_stride`` cannot be reached exactly (ResNet,
      Xception); MobileNet's base only dilates and never checks.

  Returns:
    A list of ``(stride, rate)``: the unit's stride is kept while the running
    stride is below ``output_stride``; from there on it runs at stride 1 with
    the current rate, which then grows by the unit's nominal stride.
  """
  schedule = []
  current, rate = 1, 1
  for stride in unit_strides:
    if strict and output_stride is not None and current > output_stride:
      raise ValueError('The target output_stride cannot be reached.')
    if output_stride is not None and current == output_stride:
      schedule.append((1, rate))
      rate *= stride
    else:
      schedule.append((stride, 1))
      current *= stride
  if strict and output_stride is not None and current != output_stride:
    raise ValueError('The target output_stride cannot be reached.')
  return schedule
