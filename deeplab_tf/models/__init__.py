"""DeepLab model builders (Keras functional API) and their options."""
from deeplab_tf.models.deeplab import build_model
from deeplab_tf.models.deeplab import build_predictor
from deeplab_tf.models.options import ModelOptions
from deeplab_tf.models.validation import OptionsError

__all__ = ['ModelOptions', 'OptionsError', 'build_model', 'build_predictor']
