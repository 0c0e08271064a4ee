"""Exporting a trained DeepLab: SavedModel for serving, TFLite, Keras file.

The original ``export_model.py`` froze a TF1 graph taking one uint8 image and
returning its label map. Here the same pre/post-processing (resize, mean
padding, predict, crop, resize back) lives inside a SavedModel signature
(``serving``), the predictor restores from our checkpoints or model-zoo ones
(``predictor``), the export folder is written and guarded against
overwriting (``saved_model``), and a fixed-size TFLite model can be written
beside it, float or int8 (``tflite``). The original's artefact itself, a
frozen GraphDef with its tensor names, is frozen from the same serving
computation (``frozen_graph``). The script is
``python -m deeplab_tf.export_model``.
"""
from deeplab_tf.export.frozen_graph import write_frozen_graph
from deeplab_tf.export.predictor import PredictorSpec
from deeplab_tf.export.predictor import build_and_restore
from deeplab_tf.export.predictor import find_checkpoint
from deeplab_tf.export.predictor import restore_checkpoint
from deeplab_tf.export.saved_model import check_export_dir
from deeplab_tf.export.saved_model import prepare_export_dir
from deeplab_tf.export.saved_model import save_serving_module
from deeplab_tf.export.serving import ExportError
from deeplab_tf.export.serving import ServingModule
from deeplab_tf.export.serving import ServingSettings
from deeplab_tf.export.serving import serving_model_options

__all__ = ['ExportError', 'PredictorSpec', 'ServingModule', 'ServingSettings',
           'build_and_restore', 'check_export_dir', 'find_checkpoint',
           'prepare_export_dir', 'restore_checkpoint', 'save_serving_module',
           'serving_model_options', 'write_frozen_graph']
