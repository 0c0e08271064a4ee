"""Pixel values the original ties to a model variant: the means it subtracts
and the pad value (``feature_extractor.mean_pixel``) that the input pipeline,
eval padding, export and TFLite all fill with. Written once here, below both
``data`` and ``models``."""
from typing import Optional

# Original feature_extractor._MEAN_RGB (plain ResNet v1 subtracts it).
IMAGENET_MEAN_RGB = (123.15, 115.90, 103.06)
# The DeepLab v1/v2 Caffe prototxt's mean_value (VGG-16, Caffe ResNet-101).
CAFFE_MEAN_RGB = (122.675, 116.669, 104.008)
# The built-in variants whose pad value is not 127.5, so that the input
# pipeline works without importing the models (tests/test_core.py checks the
# backbone registry agrees). Other variants register theirs
# (``register_mean_pixel``, called by ``models.backbones.register``).
_IMAGENET_MEAN_VARIANTS = ('resnet_v1_50', 'resnet_v1_101')
_CAFFE_MEAN_VARIANTS = ('vgg_16',)
_REGISTERED = {}


def register_mean_pixel(model_variant: str, mean_rgb) -> None:
  """Sets a variant's pad value (the mean its normalisation maps to 0)."""
  _REGISTERED[model_variant] = tuple(float(v) for v in mean_rgb)


def mean_pixel(model_variant: Optional[str] = None):
  """The original ``feature_extractor.mean_pixel``: the pad value of each variant.

  Padding with it becomes 0 after the variant's own input normalisation.
  ``None`` returns the ImageNet mean, as the original (backward compatibility).
  """
  if model_variant in _REGISTERED:
    return list(_REGISTERED[model_variant])
  if model_variant is None or model_variant in _IMAGENET_MEAN_VARIANTS:
    return list(IMAGENET_MEAN_RGB)
  if model_variant in _CAFFE_MEAN_VARIANTS:
    # The Caffe crop layer pads with mean_value, which is 0 after the mean
    # subtraction (as the other variants' pad values).
    return list(CAFFE_MEAN_RGB)
  return [127.5, 127.5, 127.5]
