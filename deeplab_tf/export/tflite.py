"""TFLite export: the predictor at a fixed input size, float or int8.

TFLite graphs run best with static shapes, so the TFLite model is the
predictor built for the crop size, without the serving graph's resize and
padding. What it expects and returns (also written to the export manifest):

  input  ``image``: float32 [1, crop_height, crop_width, 3], raw RGB values
         0..255 (the model normalises them itself); the image sits top-left
         and the rest is filled with the variant's mean pixel
         (``backbones.mean_pixel``: 127.5 for every variant but
         resnet_v1_50 / resnet_v1_101, which use the ImageNet mean). float32
         rather than uint8 because the pad value 127.5 is not a uint8.
  output ``semantic``: int32 [1, crop_height, crop_width], class per pixel;
         keep ``[:height, :width]`` of the image placed in the input (and
         resize that back by nearest neighbour if the image was resized).
  output ``semantic_probabilities``: float32 [1, crop_height, crop_width, C].

``pad_image`` and ``run_tflite`` do this pre/post-processing in Python.
Images larger than the crop must be resized first (resize_to_range with
max_resize_value <= the crop, as the serving graph does with those flags).

int8 post-training quantisation keeps float32 input and output (the model
quantises and dequantises at its edges) and runs every kernel in int8
(``TFLITE_BUILTINS_INT8``); it is calibrated on representative images -
real ones when given, else synthetic ones (coloured blocks with noise),
which give poorer activation ranges.

Variables are frozen into constants before conversion: converting the
variables directly leaves resource-variable reads in the TFLite graph,
which the int8 calibrator cannot run.

A quantisation-aware predictor (``models/quantize.py``, trained with
--quantize_delay_step) converts without calibration, with its learned
ranges, its backbone input quantised over [-1, 1] as the original's
conversion assumes (``quantize.InputQuant``):

  int8   the contract above (float32 image in, labels and probabilities
         out); int8 kernels need weight zero point 0, so each learned weight
         range [min, max] is widened to [-a, a], a = max(|min|, |max|);
         activations keep their learned ranges.
  uint8  the original's conversion (convert_to_tflite.py: QUANTIZED_UINT8,
         input stats mean 127.5, std 127.5 on the backbone input): every
         range as learned (asymmetric uint8 weights). Input uint8
         [1, crop_height, crop_width, 3]: the padded image's pixels (pad
         128); output int32 labels [1, crop_height, crop_width]; no
         probabilities.
"""
import glob as glob_lib
from typing import Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import convert_to_constants  # pylint: disable=g-direct-tensorflow-import

from deeplab_tf.data import preprocess
from deeplab_tf.export import serving
from deeplab_tf.export.serving import ExportError
from deeplab_tf.models import backbones
from deeplab_tf.models import quantize

QUANTIZATIONS = ('float', 'int8', 'uint8')
# The original's QUANTIZED_UINT8 input: real = (q - 127.5) / 127.5.
UINT8_INPUT_STATS = (127.5, 127.5)


def _check_fixed_size(predictor):
  crop = predictor.deeplab_options.crop_size
  if crop is None:
    raise ExportError('The TFLite export needs a predictor built for a fixed '
                      'crop size (build_and_restore(..., crop_size=...)); '
                      'this one takes any size.')
  return tuple(crop)


def frozen_module(predictor):
  """A variable-free tf.Module whose ``predict`` runs ``predictor``.

  Args:
    predictor: a predictor built for a crop size.

  Returns:
    A tf.Module with a ``predict`` tf.function: ``image`` float32 [1, h, w, 3]
    -> {'semantic': int32 [1, h, w], 'semantic_probabilities': float32
    [1, h, w, C]}.
  """
  crop = _check_fixed_size(predictor)
  spec = tf.TensorSpec([1, crop[0], crop[1], 3], tf.float32,
                       name=serving.INPUT_KEY)

  @tf.function(input_signature=[spec])
  def predict_with_variables(image):
    outputs = predictor(image, training=False)
    return (tf.cast(outputs['semantic'], tf.int32), outputs['semantic_prob'])

  frozen = convert_to_constants.convert_variables_to_constants_v2(
      predict_with_variables.get_concrete_function())

  @tf.function(input_signature=[spec])
  def predict(image):
    labels, probabilities = frozen(image)
    return {serving.LABELS_KEY: labels,
            serving.PROBABILITIES_KEY: probabilities}

  module = tf.Module()
  module.predict = predict
  return module


def convert(predictor, quantization='float', representative_images=None):
  """Converts a fixed-size predictor to a TFLite flatbuffer.

  Args:
    predictor: a predictor built for the crop size (weights loaded).
    quantization: 'float' or 'int8' (post-training, full integer kernels,
      float32 input/output).
    representative_images: for int8, a sequence of float32 [1, h, w, 3]
      inputs prepared as the model expects them (see ``pad_image``); at least
      one.

  Returns:
    The TFLite model as bytes.
  """
  if quantization not in QUANTIZATIONS:
    raise ExportError('TFLite quantization must be one of %s; got %r.'
                      % (', '.join(QUANTIZATIONS), quantization))
  if quantize.is_quantized(predictor):
    return convert_quantization_aware(predictor, quantization)
  if quantization == 'uint8':
    raise ExportError('uint8 TFLite models are converted from a '
                      'quantisation-aware model (train with '
                      '--quantize_delay_step, export with it); use int8 for '
                      'post-training quantisation.')
  module = frozen_module(predictor)
  converter = tf.lite.TFLiteConverter.from_concrete_functions(
      [module.predict.get_concrete_function()], module)
  if quantization == 'int8':
    samples = list(representative_images or ())
    if not samples:
      raise ExportError('int8 quantisation needs representative images '
                        '(at least one).')
    crop = _check_fixed_size(predictor)
    for i, sample in enumerate(samples):
      if tuple(np.shape(sample)) != (1, crop[0], crop[1], 3):
        raise ExportError('Representative image %d has shape %s; expected '
                          '[1, %d, %d, 3] (see pad_image).'
                          % (i, list(np.shape(sample)), crop[0], crop[1]))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        {serving.INPUT_KEY: np.asarray(s, np.float32)} for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  return converter.convert()


def convert_quantization_aware(predictor, quantization):
  """A quantisation-aware predictor -> TFLite with its learned ranges.

  Args:
    predictor: ``quantize.build_quantized_predictor(..., quantize_input=True)``
      for the crop size, weights loaded.
    quantization: 'int8' or 'uint8' (see the module doc).

  Returns:
    The TFLite model as bytes.
  """
  if quantization not in ('int8', 'uint8'):
    raise ExportError('A quantisation-aware model converts to int8 or uint8 '
                      'TFLite (its fake-quantisation ranges); got %r.'
                      % (quantization,))
  if not any(isinstance(layer, quantize.InputQuant)
             for layer in predictor.layers):
    raise ExportError('The quantisation-aware predictor has no quantised '
                      'input; build it with quantize_input=True.')
  if quantization == 'int8':
    quantize.set_weight_range(predictor, 'symmetric')
    try:
      module = frozen_module(predictor)
    finally:
      quantize.set_weight_range(predictor, 'learned')
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.predict.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()
  crop = _check_fixed_size(predictor)
  spec = tf.TensorSpec([1, crop[0], crop[1], 3], tf.float32,
                       name=serving.INPUT_KEY)

  @tf.function(input_signature=[spec])
  def labels(image):
    return tf.cast(predictor(image, training=False)['semantic'], tf.int32)

  function = convert_to_constants.convert_variables_to_constants_v2(
      labels.get_concrete_function())
  graph_def = function.graph.as_graph_def()
  inputs = [n.name for n in graph_def.node
            if n.name.endswith('/' + quantize.INPUT_QUANT_TENSOR)]
  if len(inputs) != 1:
    raise ExportError('Expected one quantised input tensor in the graph; '
                      'found %s.' % inputs)
  with tf.Graph().as_default() as graph:
    tf.graph_util.import_graph_def(graph_def, name='')
    with tf.compat.v1.Session(graph=graph) as session:
      # The original's convert_to_tflite: the backbone input is the TFLite
      # input (preprocessing stays outside), QUANTIZED_UINT8.
      converter = tf.compat.v1.lite.TFLiteConverter.from_session(
          session, [graph.get_tensor_by_name(inputs[0] + ':0')],
          [graph.get_tensor_by_name(function.outputs[0].name)])
      converter.inference_type = tf.uint8
      converter.quantized_input_stats = {
          converter.get_input_arrays()[0]: UINT8_INPUT_STATS}
      return converter.convert()


def pad_image(image, crop_size, model_variant):
  """One RGB image -> the TFLite input (float32 [1, h, w, 3], mean-padded).

  Args:
    image: [height, width, 3] uint8 or float array with values 0..255, no
      larger than ``crop_size``.
    crop_size: (height, width) of the TFLite model.
    model_variant: picks the pad value (``backbones.mean_pixel``).

  Returns:
    float32 numpy array [1, crop_height, crop_width, 3].
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise ExportError('pad_image takes one RGB image [height, width, 3]; got '
                      'shape %s.' % (list(image.shape),))
  if image.shape[0] > crop_size[0] or image.shape[1] > crop_size[1]:
    raise ExportError('Image of %dx%d does not fit the TFLite input %dx%d; '
                      'resize it first (e.g. resize_to_range with '
                      'max_resize_value <= %d).'
                      % (image.shape[0], image.shape[1], crop_size[0],
                         crop_size[1], min(crop_size)))
  pad_pixel = tf.reshape(tf.constant(backbones.mean_pixel(model_variant),
                                     tf.float32), [1, 1, 3])
  padded = preprocess.pad_to_bounding_box(
      tf.cast(image, tf.float32), 0, 0, crop_size[0], crop_size[1], pad_pixel)
  return padded.numpy()[np.newaxis]


def fit_to_crop(image, crop_size, model_variant, settings=None):
  """Any image -> a TFLite input, for calibration only.

  resize_to_range when ``settings`` asks for it, then the top-left crop where
  the image is still larger than the crop size, then mean padding.

  Args:
    image: [height, width, 3] array, values 0..255.
    crop_size: (height, width).
    model_variant: picks the pad value.
    settings: optional ServingSettings (resize flags).

  Returns:
    float32 [1, crop_height, crop_width, 3].
  """
  image = tf.cast(image, tf.float32)
  if settings is not None and settings.resizes:
    image, _ = preprocess.resize_to_range(
        image, min_size=settings.min_resize_value,
        max_size=settings.max_resize_value, factor=settings.resize_factor)
  image = image[:crop_size[0], :crop_size[1]]
  return pad_image(image.numpy(), crop_size, model_variant)


def synthetic_images(count, size, seed=0):
  """``count`` uint8 RGB images of coloured blocks with noise (calibration).

  Args:
    count: number of images.
    size: (height, width).
    seed: numpy seed.

  Returns:
    A list of uint8 arrays [height, width, 3].
  """
  rng = np.random.default_rng(seed)
  height, width = size
  images = []
  for _ in range(count):
    blocks = rng.integers(2, 9)
    colours = rng.uniform(0, 255, (blocks, blocks, 3))
    rows = np.arange(height) * blocks // height
    cols = np.arange(width) * blocks // width
    image = colours[rows][:, cols] + rng.normal(0, 12, (height, width, 3))
    images.append(np.clip(image, 0, 255).astype(np.uint8))
  return images


def load_images(patterns: Sequence[str], limit: Optional[int] = None
                ) -> List[np.ndarray]:
  """Decodes the image files matching ``patterns`` (sorted, at most ``limit``).

  Args:
    patterns: glob patterns (or plain paths) of JPEG / PNG / BMP / GIF files.
    limit: keep the first ``limit`` files.

  Returns:
    uint8 arrays [height, width, 3] (grey and RGBA files converted to RGB).
  """
  files = []
  for pattern in patterns:
    matches = sorted(tf.io.gfile.glob(pattern)) or sorted(glob_lib.glob(pattern))
    if not matches:
      raise ExportError('Representative image pattern %r matches no file.'
                        % pattern)
    files.extend(matches)
  if limit:
    files = files[:limit]
  images = []
  for path in files:
    try:
      data = tf.io.read_file(path)
      image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.OpError, ValueError) as e:
      raise ExportError('Cannot decode representative image %s (expected a '
                        'JPEG, PNG, BMP or GIF file): %s' % (path, e)) from e
    images.append(image.numpy())
  return images


def representative_inputs(images: Iterable[np.ndarray], crop_size,
                          model_variant, settings=None):
  """Calibration inputs: each image through ``fit_to_crop``."""
  return [fit_to_crop(image, crop_size, model_variant, settings)
          for image in images]


def interpreter(model):
  """A ready ``tf.lite.Interpreter`` for a model path or flatbuffer bytes."""
  if isinstance(model, (bytes, bytearray)):
    result = tf.lite.Interpreter(model_content=bytes(model))
  else:
    result = tf.lite.Interpreter(model_path=str(model))
  result.allocate_tensors()
  return result


def run_tflite(model, image, model_variant):
  """Runs an exported TFLite model on one RGB image no larger than its input.

  Args:
    model: path of a ``.tflite`` file, flatbuffer bytes, or an interpreter.
    image: [height, width, 3] array, values 0..255.
    model_variant: picks the pad value (as at export).

  Returns:
    ``(labels int32 [height, width], probabilities float32 [height, width,
    C])``.
  """
  runner_source = model if isinstance(model, tf.lite.Interpreter) else (
      interpreter(model))
  if not runner_source.get_signature_list():
    return _run_uint8(runner_source, image, model_variant)
  runner = runner_source.get_signature_runner()
  crop = tuple(runner.get_input_details()[serving.INPUT_KEY]['shape'][1:3])
  image = np.asarray(image)
  outputs = runner(**{serving.INPUT_KEY: pad_image(image, crop, model_variant)})
  height, width = image.shape[:2]
  return (outputs[serving.LABELS_KEY][0, :height, :width],
          outputs[serving.PROBABILITIES_KEY][0, :height, :width])


def _run_uint8(runner, image, model_variant):
  """The uint8 model (no signature): pixels in, int32 labels out."""
  detail = runner.get_input_details()[0]
  if detail['dtype'] != np.uint8:
    raise ExportError('A TFLite model without signature is expected to be '
                      'the uint8 export; its input is %s.'
                      % detail['dtype'].__name__)
  crop = tuple(detail['shape'][1:3])
  image = np.asarray(image)
  padded = pad_image(image, crop, model_variant)
  runner.set_tensor(detail['index'],
                    np.clip(np.round(padded), 0, 255).astype(np.uint8))
  runner.invoke()
  labels = runner.get_tensor(runner.get_output_details()[0]['index'])
  height, width = image.shape[:2]
  return labels[0, :height, :width], None
