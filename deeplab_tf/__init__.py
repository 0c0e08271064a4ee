"""deeplab_tf: a TensorFlow 2 / Keras reproduction of Google's DeepLab family."""
__version__ = '0.1.0'
