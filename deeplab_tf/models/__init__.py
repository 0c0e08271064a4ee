"""DeepLab model builders (Keras functional API) and their options.

DeepLab v3 / v3+: ``deeplab.py`` and ``heads/``; DeepLab v1 (LargeFOV,
MSc-LargeFOV): ``deeplab_v1.py``; DeepLab v2 (ASPP, multi-scale inputs):
``deeplab_v2.py``; ``ModelOptions.meta_architecture`` picks one.
"""
from deeplab_tf.models.deeplab import build_model
from deeplab_tf.models.deeplab import build_predictor
from deeplab_tf.models.options import META_ARCHITECTURES
from deeplab_tf.models.options import ModelOptions
from deeplab_tf.models.validation import OptionsError

__all__ = ['META_ARCHITECTURES', 'ModelOptions', 'OptionsError', 'build_model',
           'build_predictor']
