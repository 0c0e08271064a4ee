"""Input pipeline pieces: the original DeepLab preprocessing for TF 2.

See ``deeplab_tf.data.preprocess``.
"""
from deeplab_tf.data.preprocess import PROB_OF_FLIP
from deeplab_tf.data.preprocess import PreprocessSettings
from deeplab_tf.data.preprocess import flip_dim
from deeplab_tf.data.preprocess import get_random_scale
from deeplab_tf.data.preprocess import pad_to_bounding_box
from deeplab_tf.data.preprocess import preprocess_image_and_label
from deeplab_tf.data.preprocess import random_crop
from deeplab_tf.data.preprocess import random_scale_values
from deeplab_tf.data.preprocess import randomly_scale_image_and_label
from deeplab_tf.data.preprocess import resize_to_range
from deeplab_tf.data.preprocess import resize_to_range_size

__all__ = [
    'PROB_OF_FLIP', 'PreprocessSettings', 'flip_dim', 'get_random_scale',
    'pad_to_bounding_box', 'preprocess_image_and_label', 'random_crop',
    'random_scale_values', 'randomly_scale_image_and_label', 'resize_to_range',
    'resize_to_range_size',
]

# Input pipeline: descriptors, tf.data, hard-class duplication, TFDS, quickstart.
from deeplab_tf.data.datasets_info import DATASETS
from deeplab_tf.data.datasets_info import CITYSCAPES_HARD_CLASSES
from deeplab_tf.data.datasets_info import DatasetDescriptor
from deeplab_tf.data.datasets_info import DescriptorError
from deeplab_tf.data.datasets_info import PAPER_HARD_CLASS_REPEAT
from deeplab_tf.data.datasets_info import VOC_HARD_CLASSES
from deeplab_tf.data.datasets_info import get_descriptor
from deeplab_tf.data.datasets_info import load_descriptor
from deeplab_tf.data.datasets_info import resolve_hard_classes
from deeplab_tf.data.datasets_info import save_descriptor
from deeplab_tf.data.pipeline import InputError
from deeplab_tf.data.pipeline import InputSettings
from deeplab_tf.data.pipeline import build_dataset
from deeplab_tf.data.tfds_sources import build_tfds_dataset

__all__ += [
    'DATASETS', 'CITYSCAPES_HARD_CLASSES', 'DatasetDescriptor',
    'DescriptorError', 'PAPER_HARD_CLASS_REPEAT', 'VOC_HARD_CLASSES',
    'get_descriptor', 'load_descriptor', 'resolve_hard_classes',
    'save_descriptor', 'InputError', 'InputSettings', 'build_dataset',
    'ensure_quickstart', 'write_quickstart', 'build_tfds_dataset',
]


def __getattr__(name):
  # quickstart is also a script (python -m deeplab_tf.data.quickstart):
  # imported lazily so that running it does not import it twice.
  if name in ('ensure_quickstart', 'write_quickstart'):
    from deeplab_tf.data import quickstart  # pylint: disable=g-import-not-at-top
    return getattr(quickstart, name)
  raise AttributeError('module %r has no attribute %r' % (__name__, name))
