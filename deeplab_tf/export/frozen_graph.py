"""The original export artefact: the frozen GraphDef (frozen_inference_graph.pb).

The original ``export_model.py`` wrote a single TF1 GraphDef with the
variables folded into constants; model-zoo users load it with
``tf.compat.v1.import_graph_def`` and feed ``ImageTensor:0`` in a
``Session``. This module writes that file from the serving computation of
``serving.ServingModule`` (``segment``: resize_to_range, mean padding,
prediction, crop, resize back), traced once and frozen with
``convert_variables_to_constants_v2``, so the frozen graph and the
SavedModel cannot compute different things.

Tensors, under the original's names:

  ImageTensor:0                uint8 [1, None, None, 3]   the image
  RawSemanticPredictions:0     float32 [1, H', W']        labels of the padded
                                                          image (the original
                                                          casts its argmax to
                                                          float32)
  RawSemanticProbabilities:0   float32 [1, H', W', C]     probabilities of the
                                                          padded image
  SemanticPredictions:0        int32 [1, H, W]            labels at the input
                                                          size
  SemanticProbabilities:0      float32 [1, H, W, C]       probabilities at the
                                                          input size

``H' x W'`` is the crop size, or for an image larger than the crop (after
resize_to_range) the next ``k * output_stride + 1`` (see ``serving``; the
original fails there). The Semantic* outputs are the Raw* ones cropped to the
resized image and resized back, labels by nearest neighbour, probabilities
bilinearly, both with align_corners, as the original.
"""
import os

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from deeplab_tf.export import saved_model
from deeplab_tf.export import serving
from deeplab_tf.export.serving import ExportError

INPUT_NAME = 'ImageTensor'
LABELS_NAME = 'SemanticPredictions'
PROBABILITIES_NAME = 'SemanticProbabilities'
RAW_LABELS_NAME = 'RawSemanticPredictions'
RAW_PROBABILITIES_NAME = 'RawSemanticProbabilities'
OUTPUT_NAMES = (LABELS_NAME, PROBABILITIES_NAME, RAW_LABELS_NAME,
                RAW_PROBABILITIES_NAME)
# An --export_path with this ending names the frozen graph file.
SUFFIX = '.pb'


def is_frozen_graph_path(path):
  """Whether ``path`` names a frozen graph file (ends in .pb) for the export."""
  return bool(path) and path.endswith(SUFFIX)


def inference_graph_path(path):
  """Where --save_inference_graph puts the text graph: beside the .pb file."""
  return os.path.join(os.path.dirname(path) or '.',
                      saved_model.INFERENCE_GRAPH_FILE)


def frozen_graph_function(module):
  """The serving computation of ``module`` under the original tensor names.

  Args:
    module: a ServingModule.

  Returns:
    A concrete function (variables not yet folded): ``ImageTensor`` uint8
    [1, None, None, 3] in, the four outputs named in the module docstring.
  """
  spec = tf.TensorSpec([1, None, None, 3], tf.uint8, name=INPUT_NAME)

  def graph(image):
    outputs = module.segment(image, raw=True)
    # tf.identity gives each output its node name, as the original did.
    return {
        RAW_LABELS_NAME: tf.identity(
            tf.cast(outputs[serving.RAW_LABELS_KEY], tf.float32),
            name=RAW_LABELS_NAME),
        RAW_PROBABILITIES_NAME: tf.identity(
            outputs[serving.RAW_PROBABILITIES_KEY],
            name=RAW_PROBABILITIES_NAME),
        LABELS_NAME: tf.identity(outputs[serving.LABELS_KEY],
                                 name=LABELS_NAME),
        PROBABILITIES_NAME: tf.identity(outputs[serving.PROBABILITIES_KEY],
                                        name=PROBABILITIES_NAME),
    }

  function = tf.function(graph, input_signature=[spec], autograph=False)
  return function.get_concrete_function()


def freeze(module):
  """``(frozen GraphDef, GraphDef before freezing)`` of ``module``.

  The frozen graph has no variables and no function library (control flow,
  e.g. the dense CRF's loop, is lowered to TF1 Switch / Merge ops), so a
  TF1 ``Session`` runs it; devices are cleared, as the original's
  ``clear_devices=True``.
  """
  function = frozen_graph_function(module)
  inference_graph = function.graph.as_graph_def(add_shapes=True)
  frozen = convert_to_constants.convert_variables_to_constants_v2(function)
  graph_def = frozen.graph.as_graph_def(add_shapes=True)
  for node in graph_def.node:
    node.device = ''
  names = {node.name for node in graph_def.node}
  missing = [n for n in (INPUT_NAME,) + OUTPUT_NAMES if n not in names]
  if missing:
    # A node of the model already had one of these names, so TensorFlow
    # renamed ours; the graph would not load as the original's.
    raise RuntimeError('The frozen graph lacks the nodes %s.' % missing)
  return graph_def, inference_graph


def check_frozen_graph_path(path, overwrite=False, save_inference_graph=False):
  """Refuses a frozen graph path that cannot or may not be written.

  Args:
    path: the .pb file to write.
    overwrite: whether existing files may be replaced.
    save_inference_graph: the text graph is written beside it as well.

  Returns:
    The existing files that writing will replace.
  """
  if tf.io.gfile.isdir(path):
    raise ExportError(
        'export_path %s is a folder. An export_path ending in %s names the '
        'frozen graph file to write (as the original export_model.py, e.g. '
        '.../frozen_inference_graph.pb); a folder path without %s gets a '
        'SavedModel.' % (path, SUFFIX, SUFFIX))
  targets = [path]
  if save_inference_graph:
    targets.append(inference_graph_path(path))
  existing = [p for p in targets if tf.io.gfile.exists(p)]
  if existing and not overwrite:
    raise ExportError('%s already exist%s. Pass --overwrite to replace %s, or '
                      'choose another export_path.'
                      % (', '.join(existing), 's' if len(existing) == 1 else '',
                         'it' if len(existing) == 1 else 'them'))
  return existing


def write_frozen_graph(module, path, overwrite=False,
                       save_inference_graph=False):
  """Writes the frozen GraphDef of ``module`` to ``path``.

  Args:
    module: a ServingModule.
    path: the .pb file (its folder is created when missing).
    overwrite: replace existing files; without it they are refused.
    save_inference_graph: also write the graph before freezing as a text
      proto, ``inference_graph.pbtxt`` beside the file (the original
      --save_inference_graph).

  Returns:
    The paths written.
  """
  check_frozen_graph_path(path, overwrite, save_inference_graph)
  graph_def, inference_graph = freeze(module)
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(graph_def.SerializeToString())
  written = [path]
  if save_inference_graph:
    tf.io.write_graph(inference_graph, folder or '.',
                      saved_model.INFERENCE_GRAPH_FILE, as_text=True)
    written.append(inference_graph_path(path))
  return written


def description(num_classes):
  """The tensors of the frozen graph (for messages and the export summary)."""
  return {
      INPUT_NAME + ':0': 'uint8 [1, height, width, 3] RGB, any size',
      LABELS_NAME + ':0': 'int32 [1, height, width]: class per pixel at the '
                          'input size',
      PROBABILITIES_NAME + ':0': 'float32 [1, height, width, %d]: softmax '
                                 'probabilities at the input size'
                                 % num_classes,
      RAW_LABELS_NAME + ':0': 'float32 [1, padded height, padded width]: '
                              'labels of the padded image',
      RAW_PROBABILITIES_NAME + ':0': 'float32 [1, padded height, padded '
                                     'width, %d]' % num_classes,
  }
