"""DeepLab v3 / v3+ meta-architecture: features -> ASPP -> [decoder] -> logits.

Mirrors the original ``research/deeplab/model.py`` function by function:
``multi_scale_logits`` -> ``get_logits`` -> ``extract_features`` (backbone +
ASPP) -> ``refine_by_decoder`` -> ``get_branch_logits``, and the evaluation
paths ``predict_labels`` and ``predict_labels_multi_scale``. Each returns a
Keras functional model whose layers carry the original variable scopes.

Papers: DeepLabv3 (arXiv:1706.05587), DeepLabv3+ (arXiv:1802.02611); the
image pyramid and max merge of DeepLabv2 (arXiv:1606.00915, Sec. 3.2).
DeepLab v1 and DeepLab-ASPP on VGG-16 have their own heads
(``deeplab_v1.py``, ``deeplab_v2.py``), reached from ``get_logits``; the
rest of this file (image pyramid, predictor) serves them unchanged.
"""
import keras
import tensorflow as tf

from deeplab_tf.models import backbones
from deeplab_tf.models import deeplab_v1
from deeplab_tf.models import deeplab_v2
from deeplab_tf.models import initializers
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models import meta_architectures
from deeplab_tf.models import options as options_lib
from deeplab_tf.models import validation
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.heads import aspp as aspp_lib
from deeplab_tf.models.heads import decoder as decoder_lib
from deeplab_tf.models.heads import dense_prediction_cell

LOGITS_SCOPE_NAME = 'logits'
MERGED_LOGITS_SCOPE = 'merged_logits'
META_ARCHITECTURE_SCOPE = 'meta_architecture'
# Original get_branch_logits: weights_initializer=truncated_normal(0.01).
LOGITS_STDDEV = 0.01

# meta_architecture -> head on DeepLab's VGG-16 (validation allows VGG-16 with
# these only). DeepLab-ASPP on other backbones is get_branch_logits below.
VGG_HEADS = {
    options_lib.META_ARCHITECTURE_V1_LARGEFOV: deeplab_v1.get_logits,
    options_lib.META_ARCHITECTURE_V1_MSC_LARGEFOV: deeplab_v1.get_logits,
    options_lib.META_ARCHITECTURE_V2_ASPP: deeplab_v2.get_logits,
}


def get_extra_layer_scopes(last_layers_contain_logits_only=False):
  """Scopes of the layers after the backbone (original get_extra_layer_scopes).

  These are the "last layers" that ``initialize_last_layer=False`` skips when
  restoring and that get the last-layer gradient multiplier.
  """
  if last_layers_contain_logits_only:
    return [LOGITS_SCOPE_NAME]
  return [LOGITS_SCOPE_NAME, aspp_lib.IMAGE_POOLING_SCOPE, aspp_lib.ASPP_SCOPE,
          aspp_lib.CONCAT_PROJECTION_SCOPE, decoder_lib.DECODER_SCOPE,
          META_ARCHITECTURE_SCOPE]


def extract_features(b, images, options, scale_index=0):
  """Backbone on normalised images, then ASPP when aspp_with_batch_norm.

  With ``options.dense_prediction_cell_config`` the Dense Prediction Cell
  takes ASPP's place, as in the original; ``scale_index`` (the image pyramid
  scale) picks its scope (``dense_prediction_cell.cell_scope``).
  """
  backbone = backbones.get_backbone(options.model_variant)
  x = dl_layers.NormalizeImage(backbone.preprocess)(images)
  features, end_points = backbone.build(
      b, x, options.output_stride, multi_grid=options.multi_grid,
      depth_multiplier=options.depth_multiplier,
      divisible_by=options.divisible_by, scope=backbone.scope,
      use_bounded_activation=options.use_bounded_activation,
      nas_architecture_options=options.nas_architecture_options)
  if options.aspp_with_batch_norm:
    if options.dense_prediction_cell_config is not None:
      features = dense_prediction_cell.build_cell(
          b, features, options,
          scope=dense_prediction_cell.cell_scope(scale_index))
    else:
      features = aspp_lib.aspp(b, features, options)
  return features, end_points, backbone


def get_branch_logits(b, features, num_classes, options, scope_suffix):
  """1x1 logits conv; with v2-style ASPP (no BN) one branch per rate, summed."""
  rates = options.atrous_rates
  kernel = options.logits_kernel_size
  if options.aspp_with_batch_norm or rates is None:
    rates = (1,)
  branches = []
  for i, rate in enumerate(rates):
    scope = '%s/%s%s' % (LOGITS_SCOPE_NAME, scope_suffix,
                         '_%d' % i if i else '')
    branches.append(b.conv2d(
        features, scope, num_classes, kernel, rate=rate, bn=None,
        activation=None, use_bias=True,
        weights_initializer=initializers.truncated_normal(LOGITS_STDDEV)))
  return branches[0] if len(branches) == 1 else keras.layers.Add()(branches)


def get_logits(b, images, options, scale_index=0):
  """The original ``_get_logits``: {output name: logits at the logits stride}."""
  if options.model_variant == backbones.VGG_16:
    return VGG_HEADS[options.meta_architecture](b, images, options)
  features, end_points, backbone = extract_features(b, images, options,
                                                    scale_index)
  if options.decoder_output_stride:
    features = decoder_lib.refine_by_decoder(b, features, end_points, backbone,
                                             options)
  outputs = {}
  for output in sorted(options.outputs_to_num_classes):
    if options.decoder_output_is_logits:
      outputs[output] = features
    else:
      outputs[output] = get_branch_logits(
          b, features, options.outputs_to_num_classes[output], options, output)
  return outputs


def _scaled(value, scale):
  return None if value is None else tuple(
      dl_layers.scale_dimension(d, scale) for d in value)


def multi_scale_logits(b, images, options, image_pyramid=None):
  """The original ``multi_scale_logits``.

  Returns ``{output: {'merged_logits': ..., 'logits_0.50': ...}}``. Every
  scale's logits are resized (align_corners) to ``scale_dimension(crop,
  max(1, max(pyramid)) / logits_stride)`` and merged by max or mean; with a
  single scale only ``merged_logits`` is returned.
  """
  pyramid = tuple(image_pyramid or (1.0,))
  top = max(1.0, max(pyramid)) / options.logits_output_stride
  logits_size = _scaled(options.crop_size, top)
  result = {k: {} for k in options.outputs_to_num_classes}
  for scale_index, scale in enumerate(pyramid):
    if scale != 1.0:
      if options.crop_size is not None:
        scaled_images = dl_layers.ResizeBilinear(
            _scaled(options.crop_size, scale))(images)
      else:
        scaled_images = ResizeByScale(scale)(images)
      scaled_options = options.replace(
          crop_size=_scaled(options.crop_size, scale),
          image_pooling_crop_size=_scaled(options.image_pooling_crop_size,
                                          scale))
    else:
      scaled_images, scaled_options = images, options
    outputs = get_logits(b, scaled_images, scaled_options, scale_index)
    for output in sorted(outputs):
      if logits_size is not None:
        logits = dl_layers.ResizeBilinear(logits_size)(outputs[output])
      else:
        logits = ResizeByScale(top)(outputs[output], images)
      if len(pyramid) == 1:
        result[output][MERGED_LOGITS_SCOPE] = logits
      else:
        result[output]['logits_%.2f' % scale] = logits
  if len(pyramid) > 1:
    for output in result:
      per_scale = list(result[output].values())
      result[output][MERGED_LOGITS_SCOPE] = dl_layers.MergeLogits(
          options.merge_method)(per_scale)
  return result


def _input(options, batch_size=None, name='images'):
  shape = (tuple(options.crop_size) if options.crop_size else (None, None)) + (3,)
  return keras.Input(shape=shape, batch_size=batch_size, name=name,
                     dtype='float32')


def new_builder(fine_tune_batch_norm=False, sync_batch_norm=False,
                fold_batch_norm=False):
  return LayerBuilder(fine_tune_batch_norm=fine_tune_batch_norm,
                      sync_batch_norm=sync_batch_norm,
                      fold_batch_norm=fold_batch_norm)


def build_model(options, fine_tune_batch_norm=False, sync_batch_norm=False,
                fold_batch_norm=False, name=None, builder=None):
  """Builds the DeepLab model for ``options`` (training and plain inference).

  The model takes float images with values 0..255, [batch, H, W, 3] (H, W =
  ``options.crop_size`` when set), normalises them as the variant's original
  extractor and returns the ``semantic`` scales-to-logits dict:
  ``{'merged_logits': [B, h, w, C]}`` plus ``'logits_%.2f'`` per scale when
  ``options.image_pyramid`` has several scales. Logits are at the logits
  stride (decoder stride or output stride), as the original's.

  Example:
    >>> from deeplab_tf.models import ModelOptions, build_model
    >>> m = build_model(ModelOptions(model_variant='mobilenet_v2',
    ...                              crop_size=(65, 65), output_stride=16))
    >>> m.output['merged_logits'].shape
    (None, 5, 5, 21)
  """
  validation.validate(options)
  # ``builder``: another LayerBuilder (models/quantize.py) in place of ours.
  b = builder or new_builder(fine_tune_batch_norm, sync_batch_norm,
                             fold_batch_norm)
  images = _input(options)
  outputs = multi_scale_logits(b, images, options, options.image_pyramid)
  model = keras.Model(images, outputs['semantic'],
                      name=name or 'deeplab_' + options.model_variant)
  model.deeplab_options = options
  model.deeplab_builder = b
  return model


def build_predictor(options, eval_scales=(1.0,), add_flipped_images=False,
                    fold_batch_norm=False, name=None, builder=None):
  """The original evaluation path as a Keras model (``predict_labels[_multi_scale]``).

  With ``eval_scales == (1.0,)`` and no flip this is ``predict_labels``:
  outputs ``merged_logits`` (low resolution), ``logits`` (upsampled to the
  input size, align_corners), ``semantic_prob`` (their softmax) and
  ``semantic`` (argmax, int64). ``options.image_pyramid`` is used there as the
  original. Otherwise it is ``predict_labels_multi_scale``: for each scale
  (and its left-right flip) the single-scale logits are upsampled to the input
  size and soft-maxed; ``averaged_prob`` is the mean of these probabilities,
  ``semantic`` its argmax, and ``semantic_prob`` is, as the original's
  ``semantic_prob`` (the export's SemanticProbabilities), a softmax of that
  mean (a quirk: the probabilities are soft-maxed twice; the CRF and the
  conformance cases use ``averaged_prob``).

  The original eval.py, vis.py and export_model.py never build
  ``eval_scales == (1.0,)`` with the flip: they take the single-scale path
  there and ignore ``add_flipped_images`` (``original_inference_path``).
  Called directly, this builds what it is asked, flip included.
  """
  validation.validate(options)
  eval_scales = tuple(float(s) for s in eval_scales)
  b = builder or new_builder(fold_batch_norm=fold_batch_norm)
  images = _input(options)
  outputs = {}
  if eval_scales == (1.0,) and not add_flipped_images:
    merged = multi_scale_logits(b, images, options, options.image_pyramid)[
        'semantic'][MERGED_LOGITS_SCOPE]
    outputs['merged_logits'] = merged
    if options.prediction_with_upsampled_logits:
      logits = dl_layers.ResizeBilinear(name='upsample_logits')(merged, images)
      outputs['logits'] = logits
      outputs['semantic_prob'] = keras.layers.Softmax(name='softmax')(logits)
      outputs['semantic'] = ArgMax(name='argmax')(logits)
    else:
      outputs['semantic'] = UpsampledArgMax(name='argmax')(merged, images)
      probs = keras.layers.Softmax()(merged)
      outputs['semantic_prob'] = dl_layers.ResizeBilinear(name='resize_prob')(
          probs, images)
  else:
    probs = []
    flipped = Flip()(images) if add_flipped_images else None
    for scale in eval_scales:
      for inputs, flip_back in ((images, False), (flipped, True)):
        if inputs is None:
          continue
        merged = multi_scale_logits(b, inputs, options, [scale])['semantic'][
            MERGED_LOGITS_SCOPE]
        if flip_back:
          merged = Flip()(merged)
        logits = dl_layers.ResizeBilinear()(merged, images)
        probs.append(keras.layers.Softmax()(logits))
    prob = (dl_layers.MergeLogits('avg', name='mean_prob')(probs)
            if len(probs) > 1 else probs[0])
    outputs['averaged_prob'] = prob
    outputs['semantic_prob'] = keras.layers.Softmax(name='softmax_of_mean')(
        prob)
    outputs['semantic'] = ArgMax(name='argmax')(prob)
  model = keras.Model(images, outputs,
                      name=name or 'deeplab_predictor_' + options.model_variant)
  model.deeplab_options = options
  model.deeplab_builder = b
  return model


def original_inference_path(eval_scales, add_flipped_images):
  """(eval_scales, add_flipped_images) as the original scripts build them.

  The original eval.py, vis.py and export_model.py take the single-scale
  ``predict_labels`` when the scales are exactly (1.0,), where
  ``add_flipped_images`` is not read: the flip happens only with
  ``predict_labels_multi_scale``. (eval.py still names its metric
  ``miou_1.0_flipped``.)
  """
  eval_scales = tuple(float(s) for s in eval_scales)
  if eval_scales == (1.0,):
    return eval_scales, False
  return eval_scales, bool(add_flipped_images)


def crf_probabilities(outputs):
  """The probabilities a CRF refines: the mean of the per-scale softmaxes
  (multi-scale) or the softmax (single scale), not the original's
  soft-maxed-again ``semantic_prob``."""
  return outputs.get('averaged_prob', outputs['semantic_prob'])


@keras.saving.register_keras_serializable(package='deeplab_tf')
class ResizeByScale(keras.layers.Layer):
  """Resize to ``scale_dimension(size, scale)`` of a reference (or the input).

  The dynamic-size form of the original's crop-size arithmetic, used when a
  model is built without a crop size.
  """

  def __init__(self, scale, **kwargs):
    super().__init__(**kwargs)
    self.scale = float(scale)

  def call(self, inputs, reference=None):
    ref = inputs if reference is None else reference
    size = dl_layers.scale_dimension(tf.shape(ref)[1:3], self.scale)
    return dl_layers.resize_bilinear(inputs, size)

  def compute_output_shape(self, inputs_shape, reference_shape=None):
    return (inputs_shape[0], None, None, inputs_shape[-1])

  def get_config(self):
    return dict(super().get_config(), scale=self.scale)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class Flip(keras.layers.Layer):
  """Left-right flip (``tf.reverse(x, [2])``)."""

  def call(self, inputs):
    return tf.reverse(inputs, [2])


@keras.saving.register_keras_serializable(package='deeplab_tf')
class ArgMax(keras.layers.Layer):
  """Argmax over classes (int64, as the original ``tf.argmax(logits, 3)``)."""

  def call(self, inputs):
    return tf.argmax(inputs, axis=3)

  def compute_output_spec(self, inputs):
    return keras.KerasTensor(inputs.shape[:3], dtype='int64')


@keras.saving.register_keras_serializable(package='deeplab_tf')
class UpsampledArgMax(keras.layers.Layer):
  """Argmax then nearest (align_corners) upsampling to the reference size.

  The original ``prediction_with_upsampled_logits=False`` path.
  """

  def call(self, inputs, reference):
    labels = tf.argmax(inputs, axis=3)[..., tf.newaxis]
    labels = dl_layers.resize_nearest(labels, tf.shape(reference)[1:3])
    return tf.squeeze(labels, 3)

  def compute_output_spec(self, inputs, reference):
    return keras.KerasTensor(tuple(reference.shape[:3]), dtype='int64')


meta_architectures.register(meta_architectures.MetaArchitecture(
    family='deeplab', names=options_lib.META_ARCHITECTURES,
    options_class=options_lib.ModelOptions, build_model=build_model,
    last_layer_scopes=get_extra_layer_scopes,
    options_from_values=options_lib.options_from_flag_values,
    flag_names=options_lib.FLAG_FIELDS + options_lib.NAS_FLAG_FIELDS + (
        'num_classes', 'dense_prediction_cell_json'),
    description='the semantic DeepLab models: v3 / v3+ (deeplab_v3), v1 '
    'LargeFOV / MSc, v2 ASPP'))

