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
