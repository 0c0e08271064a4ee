"""Writing an export folder: SavedModel, TFLite and Keras files, and a manifest.

One folder holds everything: the SavedModel itself (so
``tf.saved_model.load(export_path)`` works), the optional TFLite and
``.keras`` files beside it, and ``deeplab_export.json`` describing inputs,
outputs and the model options. A folder that already holds any of these is
refused unless overwriting is asked for; then only these entries are
removed, never anything else the user keeps there.
"""
import json
import os

import tensorflow as tf

from deeplab_tf.export import serving
from deeplab_tf.export.serving import ExportError

INFO_FILE = 'deeplab_export.json'
KERAS_FILE = 'deeplab_predictor.keras'
TFLITE_FILES = {'float': 'deeplab_float.tflite', 'int8': 'deeplab_int8.tflite',
                'uint8': 'deeplab_uint8.tflite'}
INFERENCE_GRAPH_FILE = 'inference_graph.pbtxt'
# What tf.saved_model.save writes.
SAVED_MODEL_ENTRIES = ('saved_model.pb', 'saved_model.pbtxt', 'variables',
                       'assets', 'assets.extra', 'fingerprint.pb')
EXPORT_ENTRIES = SAVED_MODEL_ENTRIES + (
    INFO_FILE, KERAS_FILE, INFERENCE_GRAPH_FILE) + tuple(TFLITE_FILES.values())


def existing_export_entries(export_path):
  """The entries of an earlier export present in ``export_path`` (sorted)."""
  if not tf.io.gfile.isdir(export_path):
    return []
  present = set(tf.io.gfile.listdir(export_path))
  # gfile lists folders with a trailing slash on some file systems.
  present |= {p.rstrip('/') for p in present}
  return sorted(e for e in EXPORT_ENTRIES if e in present)


def check_export_dir(export_path, overwrite=False):
  """Refuses an export folder that cannot or may not be written (no changes).

  Args:
    export_path: the export folder (it may not exist yet).
    overwrite: whether the entries of an earlier export may be replaced.

  Returns:
    The entries of an earlier export that ``prepare_export_dir`` will remove.
  """
  if not export_path:
    raise ExportError('--export_path is empty; give the folder to write the '
                      'export to.')
  if tf.io.gfile.exists(export_path) and not tf.io.gfile.isdir(export_path):
    raise ExportError(
        'export_path %s is a file; expected a folder: the SavedModel is a '
        'folder (plus optional .tflite / .keras files in it). For the '
        "original's frozen graph file give a path ending in .pb (e.g. "
        '.../frozen_inference_graph.pb).' % export_path)
  entries = existing_export_entries(export_path)
  if entries and not overwrite:
    what = ('a SavedModel' if 'saved_model.pb' in entries
            else 'an earlier export')
    raise ExportError('export_path %s already holds %s (%s). Pass '
                      '--overwrite to replace it, or choose another folder.'
                      % (export_path, what, ', '.join(entries)))
  return entries


def prepare_export_dir(export_path, overwrite=False):
  """Makes ``export_path`` ready for a new export, or ExportError saying why not.

  Call it once the model is built and restored, so a failing export leaves
  an earlier one in place.

  Args:
    export_path: the export folder (created when missing).
    overwrite: remove the entries of an earlier export first; without it a
      folder that holds one is refused.

  Returns:
    The list of entries removed.
  """
  entries = check_export_dir(export_path, overwrite)
  for entry in entries:
    path = os.path.join(export_path, entry)
    if tf.io.gfile.isdir(path):
      tf.io.gfile.rmtree(path)
    else:
      tf.io.gfile.remove(path)
  tf.io.gfile.makedirs(export_path)
  return entries


def save_serving_module(module, export_path, any_channels=True):
  """Writes ``module`` (a ServingModule) as a SavedModel.

  Args:
    module: a ServingModule.
    export_path: the folder.
    any_channels: also write the ``serving_any_channels`` signature (one more
      trace of the model; benchmarks leave it out).

  Returns:
    The signature keys written.
  """
  signatures = module.signatures()
  if not any_channels:
    signatures.pop(serving.ANY_CHANNELS_SIGNATURE)
  tf.saved_model.save(module, export_path, signatures=signatures)
  return sorted(signatures)


def write_inference_graph(module, export_path):
  """The serving_default graph as a text proto (original --save_inference_graph).

  Returns:
    The path written.
  """
  function = module.signatures()[serving.SERVING_SIGNATURE]
  graph_def = function.graph.as_graph_def()
  tf.io.write_graph(graph_def, export_path, INFERENCE_GRAPH_FILE, as_text=True)
  return os.path.join(export_path, INFERENCE_GRAPH_FILE)


def signature_description(num_classes):
  """How to call the SavedModel signatures (goes into the manifest)."""
  outputs = {
      serving.LABELS_KEY: 'int32 [batch, height, width]: class per pixel at '
                          'the input size',
      serving.PROBABILITIES_KEY: 'float32 [batch, height, width, %d]: '
                                 'softmax probabilities at the input size'
                                 % num_classes}
  return {
      serving.SERVING_SIGNATURE: {
          'inputs': {serving.INPUT_KEY: 'uint8 [batch, height, width, 3] RGB, '
                                        'any batch and size'},
          'outputs': outputs},
      serving.ANY_CHANNELS_SIGNATURE: {
          'inputs': {serving.INPUT_KEY: 'uint8 [batch, height, width, C], C = '
                                        '1 (grey, repeated to RGB), 3 (RGB) or '
                                        '4 (RGBA, alpha dropped)'},
          'outputs': outputs},
  }


def write_info(export_path, info):
  """Writes the manifest ``deeplab_export.json``; returns its path."""
  path = os.path.join(export_path, INFO_FILE)
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(info, f, indent=1, sort_keys=True)
  return path
