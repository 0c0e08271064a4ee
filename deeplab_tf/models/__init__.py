"""DeepLab model builders (Keras functional API) and their options.

DeepLab v3 / v3+: ``deeplab.py`` and ``heads/``; DeepLab v1 (LargeFOV,
MSc-LargeFOV): ``deeplab_v1.py``; DeepLab v2 (ASPP, multi-scale inputs):
``deeplab_v2.py``; ``ModelOptions.meta_architecture`` picks one. DeeperLab:
``deeperlab.py``. Each family registers itself in ``meta_architectures``;
the imports below are the registrations.
"""
# Registrations (each module calls meta_architectures.register).
from deeplab_tf.models import deeplab  # pylint: disable=unused-import
from deeplab_tf.models import deeperlab  # pylint: disable=unused-import
from deeplab_tf.models.deeplab import build_model
from deeplab_tf.models.deeplab import build_predictor
from deeplab_tf.models.options import META_ARCHITECTURES
from deeplab_tf.models.meta_architectures import options_from_dict
from deeplab_tf.models.options import ModelOptions
from deeplab_tf.models.validation import OptionsError

__all__ = ['META_ARCHITECTURES', 'ModelOptions', 'OptionsError', 'build_model',
           'build_predictor', 'options_from_dict']
