"""The in-graph serving path: uint8 images of any size in, label maps out.

What the original ``export_model.py`` put around ``predict_labels`` in its
frozen graph, restated as a ``tf.Module`` that saves as a SavedModel (and
that ``frozen_graph`` freezes into the original's GraphDef, so the two
artefacts run the same computation):

  1. cast to float32; ``resize_to_range`` when ``min_resize_value`` or
     ``max_resize_value`` is set (bilinear, align_corners, as the original);
  2. pad bottom/right with the variant's mean pixel to the crop size;
  3. run the predictor (single- or multi-scale, optional flips);
  4. crop the valid region and resize back to the input size: labels by
     nearest neighbour (align_corners), probabilities bilinearly
     (align_corners), as the original's ``SemanticPredictions`` /
     ``SemanticProbabilities``.

Deviations from the original, on purpose:

  * any batch size (the original placeholder is ``[1, None, None, 3]``);
  * an image larger than the crop (after the resize) is padded to the smallest
    ``k * output_stride + 1`` that holds it instead of failing; the model then
    runs without a crop size (image pooling = global mean), which is what the
    original computes for an image padded to its crop size;
  * labels come out int32 (``semantic``), as the original
    ``SemanticPredictions``; probabilities float32
    (``semantic_probabilities``).

Only when ``image_pooling_crop_size`` makes the image pooling something else
than a global mean (e.g. MobileNetV3 LR-ASPP: 769x769 window, stride 4,5)
is the model built for the crop size; larger images are then refused with a
message, as the original fails on them.
"""
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.core import pixels
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import preprocess

INPUT_KEY = 'image'
LABELS_KEY = 'semantic'
PROBABILITIES_KEY = 'semantic_probabilities'
# Only from ``ServingModule.segment(..., raw=True)`` (the frozen graph).
RAW_LABELS_KEY = 'raw_semantic'
RAW_PROBABILITIES_KEY = 'raw_semantic_probabilities'
SERVING_SIGNATURE = 'serving_default'
ANY_CHANNELS_SIGNATURE = 'serving_any_channels'


class ExportError(DeeplabError, ValueError):
  """An export that cannot be made as asked; the message says what to change."""


def _positive_int(name, value, allow_none=True):
  if value is None and allow_none:
    return
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ExportError('%s must be a positive int%s; got %r.'
                      % (name, ' or None' if allow_none else '', value))


@dataclasses.dataclass(frozen=True)
class ServingSettings:
  """Pre/post-processing of the serving graph (the original export flags).

  Attributes:
    crop_size: (height, width) the image is padded to (original --crop_size,
      default 513x513).
    min_resize_value, max_resize_value, resize_factor: ``resize_to_range``
      settings (original common.py flags; unset = no resize).
  """
  crop_size: Tuple[int, int] = (513, 513)
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  # deeplab_tf.crf.CRFParams: the dense CRF (DeepLab v1/v2) on the padded
  # batch inside the graph; None: no CRF.
  crf: Optional[object] = None

  def __post_init__(self):
    crop = tuple(self.crop_size) if self.crop_size is not None else ()
    if len(crop) != 2:
      raise ExportError('crop_size must be [height, width] (two values, e.g. '
                        '--crop_size=513 --crop_size=513); got %r.'
                        % (self.crop_size,))
    for name, value in zip(('crop height', 'crop width'), crop):
      _positive_int(name, value, allow_none=False)
    object.__setattr__(self, 'crop_size', crop)
    for name in ('min_resize_value', 'max_resize_value', 'resize_factor'):
      _positive_int(name, getattr(self, name))
    if self.max_resize_value and not self.min_resize_value:
      raise ExportError('max_resize_value=%d needs min_resize_value (the '
                        'short-side target of resize_to_range), as the '
                        'original.' % self.max_resize_value)

  @property
  def resizes(self):
    return bool(self.min_resize_value or self.max_resize_value)


def global_image_pooling(options, crop_size):
  """Whether the ASPP image pooling is a global mean over the padded crop.

  It is unless ``image_pooling_crop_size`` names another window than the crop
  (the pooling then has a fixed kernel and stride, so the model needs the
  crop size). Without the image-level branch there is nothing to pool.
  """
  if not options.add_image_level_feature:
    return True
  pool = options.image_pooling_crop_size
  return pool is None or tuple(pool) == tuple(crop_size)


def serving_model_options(options, crop_size):
  """The options of the model inside the serving graph.

  Without a crop size (any input size, global image pooling) when that
  equals the original's crop-size model on padded images; else the crop size.
  """
  if global_image_pooling(options, crop_size):
    return options.replace(crop_size=None)
  return options.replace(crop_size=tuple(crop_size))


def preprocess_images(images, options, settings, fixed_crop=False):
  """uint8/float [B, H, W, 3] -> (padded float32 batch, resized size).

  Args:
    images: [batch, height, width, 3] tensor, raw pixel values 0..255.
    options: ModelOptions (model_variant picks the pad value, output_stride
      the padded size of large images).
    settings: ServingSettings.
    fixed_crop: the model needs exactly the crop size; larger images fail
      with a message naming both sizes.

  Returns:
    ``(padded, resized_size)``: float32 [B, H', W', 3] padded bottom/right with
    the mean pixel, and the int32 [2] size before padding.
  """
  images = tf.cast(images, tf.float32)
  size = tf.shape(images)[1:3]
  checks = [tf.debugging.assert_positive(
      size, message='DeepLab serving needs images with height and width >= 1; '
      'got height, width')]
  with tf.control_dependencies(checks):
    images = tf.identity(images)
  if settings.resizes:
    new_size = preprocess.resize_to_range_size(
        size[0], size[1], settings.min_resize_value, settings.max_resize_value,
        settings.resize_factor)
    images = geometry.resize_bilinear(images, new_size)
  resized_size = tf.shape(images)[1:3]
  if fixed_crop:
    fits = tf.debugging.assert_less_equal(
        resized_size, tf.constant(settings.crop_size, tf.int32),
        message='This export runs the model at its crop size %s (its image '
        'pooling window image_pooling_crop_size=%s is not global), so images '
        '(after resize_to_range) must fit in the crop; got height, width'
        % (list(settings.crop_size), list(options.image_pooling_crop_size)))
    with tf.control_dependencies([fits]):
      target = tf.constant(settings.crop_size, tf.int32)
  else:
    target = geometry.padded_size(resized_size, settings.crop_size,
                         options.output_stride)
  pad_pixel = tf.reshape(
      tf.constant(pixels.mean_pixel(options.model_variant), tf.float32),
      [1, 1, 3])
  padded = preprocess.pad_to_bounding_box(images, 0, 0, target[0], target[1],
                                          pad_pixel)
  if fixed_crop:
    padded = tf.ensure_shape(padded, [None] + list(settings.crop_size) + [3])
  return padded, resized_size


def postprocess(labels, probabilities, resized_size, image_size):
  """Crops the valid region and resizes it back to the input size.

  Args:
    labels: int [B, H', W'] labels of the padded image.
    probabilities: float32 [B, H', W', C].
    resized_size: int32 [2] size of the image before padding.
    image_size: int32 [2] size of the input image.

  Returns:
    ``(labels int32 [B, H, W], probabilities float32 [B, H, W, C])``.
  """
  labels = tf.cast(labels[:, :resized_size[0], :resized_size[1]], tf.int32)
  probabilities = probabilities[:, :resized_size[0], :resized_size[1], :]
  # Same size when nothing was resized: both kernels are then the identity.
  labels = geometry.resize_nearest(labels[..., tf.newaxis], image_size)[..., 0]
  probabilities = geometry.resize_bilinear(probabilities, image_size)
  return labels, probabilities


def to_rgb(images):
  """uint8 [B, H, W, C] with C = 1 (grey), 3 (RGB) or 4 (RGBA) -> RGB.

  Grey is repeated on the three channels; the alpha channel is dropped (not
  composited on a background). Any other channel count fails with a message.
  """
  channels = tf.shape(images)[3]
  accepted = tf.reduce_any(tf.equal(channels, [1, 3, 4]))
  check = tf.debugging.Assert(accepted, [
      'serving_any_channels takes 1 (grey), 3 (RGB) or 4 (RGBA) channels; '
      'got', channels])
  with tf.control_dependencies([check]):
    rgb = tf.cond(tf.equal(channels, 1),
                  lambda: tf.tile(images[..., :1], [1, 1, 1, 3]),
                  lambda: images[..., :3])
  return tf.ensure_shape(rgb, [None, None, None, 3])


def check_rgb(images):
  """``images`` unchanged, after a run-time check that they have 3 channels.

  A loaded SavedModel signature does not enforce its input shape, and a
  1-channel image would silently broadcast against the 3-channel pad value,
  so the channel count is checked in the graph.
  """
  check = tf.debugging.assert_equal(
      tf.shape(images)[3], 3,
      message='serving_default takes RGB images, uint8 [batch, height, width, '
      '3]; use the serving_any_channels signature for grey (1 channel) or '
      'RGBA (4 channels) images, or convert them to RGB. Channels received')
  with tf.control_dependencies([check]):
    return tf.identity(images)


class _Untracked:
  """Keeps objects out of the SavedModel's object graph.

  Saving a tf.Module walks its attributes: a Keras model there has its own
  functions traced and saved, and every tf.function attribute is traced once
  more in the save context, seconds each. The SavedModel only needs the
  signatures (concrete functions traced once) and the variables they
  capture, which the module tracks itself.
  """

  def __init__(self, **objects):
    self.__dict__.update(objects)


class ServingModule(tf.Module):
  """A predictor wrapped in the serving pre/post-processing, ready to save.

  ``serve`` (the ``serving_default`` signature) takes ``image``: uint8
  [batch, height, width, 3] of any size and returns ``semantic`` (int32
  [batch, height, width]) and ``semantic_probabilities`` (float32 [batch,
  height, width, num_classes]). ``serve_any_channels`` accepts 1 or 4
  channels as well (see ``to_rgb``).
  """

  def __init__(self, predictor, settings, name='deeplab_serving'):
    """Args:
      predictor: a model from ``build_predictor`` (or a folded one) built with
        ``serving_model_options(options, settings.crop_size)``.
      settings: ServingSettings.
      name: module name.
    """
    super().__init__(name=name)
    self._untracked = _Untracked(predictor=predictor)
    # What the saved functions capture; tracked so the SavedModel holds them.
    self.model_variables = list(predictor.variables)
    self._options = predictor.deeplab_options
    self._settings = settings
    self._fixed_crop = self._options.crop_size is not None
    if self._fixed_crop and tuple(self._options.crop_size) != settings.crop_size:
      raise ExportError('The predictor is built for crop_size %s but the '
                        'serving settings pad to %s.'
                        % (list(self._options.crop_size),
                           list(settings.crop_size)))
    rgb_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_KEY)
    any_spec = tf.TensorSpec([None, None, None, None], tf.uint8,
                             name=INPUT_KEY)
    # No Python control flow on tensors here, so no autograph (faster traces).
    self._untracked.serve = tf.function(
        self._serve, input_signature=[rgb_spec], autograph=False)
    self._untracked.serve_any_channels = tf.function(
        self._serve_any_channels, input_signature=[any_spec], autograph=False)

  @property
  def predictor(self):
    return self._untracked.predictor

  # Plain methods, not tf.function attributes: tf.saved_model.save would
  # trace attributes once more (see _Untracked).
  def serve(self, image):
    """``serving_default``: uint8 [B, H, W, 3] -> outputs dict (graph mode)."""
    return self._untracked.serve(image)

  def serve_any_channels(self, image):
    """``serving_any_channels``: uint8 [B, H, W, 1 | 3 | 4] -> outputs dict."""
    return self._untracked.serve_any_channels(image)

  @property
  def options(self):
    return self._options

  @property
  def settings(self):
    return self._settings

  def segment(self, images, raw=False):
    """The serving computation on a [B, H, W, 3] batch (uint8 or float 0..255).

    Args:
      images: [B, H, W, 3] tensor.
      raw: also return the outputs of the padded image before the crop and
        the resize back (what the original frozen graph names
        ``RawSemanticPredictions`` / ``RawSemanticProbabilities``), under
        ``RAW_LABELS_KEY`` (int, as the predictor gives it) and
        ``RAW_PROBABILITIES_KEY``.

    Returns:
      ``{'semantic': int32 [B, H, W], 'semantic_probabilities': float32
      [B, H, W, C]}``, plus the two raw outputs [B, H', W'(, C)] with ``raw``.
    """
    image_size = tf.shape(images)[1:3]
    padded, resized_size = preprocess_images(images, self._options,
                                             self._settings, self._fixed_crop)
    outputs = self.predictor(padded, training=False)
    labels, probabilities = outputs['semantic'], outputs['semantic_prob']
    if self._settings.crf is not None:
      from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
      from deeplab_tf.models.deeplab import crf_probabilities  # pylint: disable=g-import-not-at-top
      probabilities = crf.refine_batch(padded, crf_probabilities(outputs),
                                       self._settings.crf)
      labels = tf.argmax(probabilities, axis=-1)
    result = {}
    if raw:
      result = {RAW_LABELS_KEY: labels, RAW_PROBABILITIES_KEY: probabilities}
    labels, probabilities = postprocess(labels, probabilities, resized_size,
                                        image_size)
    result.update({LABELS_KEY: labels, PROBABILITIES_KEY: probabilities})
    return result

  def _serve(self, image):
    return self.segment(check_rgb(image))

  def _serve_any_channels(self, image):
    return self.segment(to_rgb(image))

  def signatures(self):
    """{signature key: concrete function} for ``tf.saved_model.save``."""
    functions = self._untracked
    return {SERVING_SIGNATURE: functions.serve.get_concrete_function(),
            ANY_CHANNELS_SIGNATURE:
                functions.serve_any_channels.get_concrete_function()}
