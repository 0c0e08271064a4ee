"""Building the predictor to export and filling it from a checkpoint.

The checkpoint may be one of ours (object-based, written by the trainer) or
an original TF1 model-zoo checkpoint (name-based); ``checkpoints.restore_model``
tells them apart. What this module adds is the export's error messages: a
path without a checkpoint names what the folder holds, and a checkpoint that
does not fit the model flags names the checkpoint, the flags the model was
built from and, when the trainer's ``model_options.json`` lies beside the
checkpoint, the options it was trained with.
"""
import dataclasses
from typing import Tuple

import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.export.serving import ExportError
from deeplab_tf.models import build_predictor
from deeplab_tf.models import fold
from deeplab_tf.models import quantize
from deeplab_tf.models.deeplab import original_inference_path


# Options named in a mismatch message: the ones that change variable shapes.
_SHAPE_FIELDS = ('model_variant', 'outputs_to_num_classes', 'depth_multiplier',
                 'divisible_by', 'atrous_rates', 'decoder_output_stride',
                 'aspp_with_batch_norm', 'aspp_with_separable_conv',
                 'add_image_level_feature', 'aspp_convs_filters',
                 'decoder_filters', 'decoder_use_separable_conv',
                 'aspp_with_concat_projection', 'logits_kernel_size',
                 'aspp_with_squeeze_and_excitation', 'decoder_use_sum_merge',
                 'decoder_output_is_logits')


@dataclasses.dataclass(frozen=True)
class PredictorSpec:
  """Everything that decides the exported predictor besides its input size.

  Attributes:
    options: ModelOptions from the model flags (crop_size is ignored: the
      serving graph or the TFLite input size decides it).
    eval_scales: original --inference_scales.
    add_flipped_images: original --add_flipped_images; as the original
      export_model.py, not read with scales (1.0,) (its single-scale path).
    fold_batch_norm: fold BatchNorm into the convolutions (same outputs up
      to float rounding, faster).
    quantize: the quantisation-aware graph (the original export_model.py's
      create_eval_graph for --quantize_delay_step >= 0; models/quantize.py):
      BatchNorm folded, fake quantisation with the checkpoint's ranges;
      single scale only.
  """
  options: object
  eval_scales: Tuple[float, ...] = (1.0,)
  add_flipped_images: bool = False
  fold_batch_norm: bool = False
  quantize: bool = False

  def __post_init__(self):
    scales = tuple(float(s) for s in self.eval_scales)
    if not scales or any(s <= 0 for s in scales):
      raise ExportError('inference_scales must be positive numbers; got %r.'
                        % (list(self.eval_scales),))
    object.__setattr__(self, 'eval_scales', scales)
    _, flip = original_inference_path(scales, self.add_flipped_images)
    object.__setattr__(self, 'add_flipped_images', flip)
    if self.quantize and scales != (1.0,):
      raise ExportError('Quantize mode is not supported with multi-scale '
                        'test (inference_scales %s).' % list(scales))
    if self.quantize and self.fold_batch_norm:
      raise ExportError('fold_batch_norm: the quantisation-aware graph folds '
                        'BatchNorm already (into the quantised weights).')


def find_checkpoint(path):
  """The checkpoint prefix for a prefix or a folder (``checkpoints.find_checkpoint``:
  a train_logdir's latest, a model-zoo folder's one checkpoint), or an error
  saying what is there."""
  if not path:
    raise ExportError('--checkpoint_path is empty; give a checkpoint prefix '
                      'or a folder holding one.')
  return checkpoints.find_checkpoint(path)


def describe_options(options):
  """One line with the options that decide variable shapes (for messages)."""
  values = options.to_dict()
  parts = []
  for field in _SHAPE_FIELDS:
    value = values[field]
    if field == 'outputs_to_num_classes':
      parts.append('num_classes=%s' % value.get('semantic'))
    else:
      parts.append('%s=%s' % (field, list(value) if isinstance(value, tuple)
                              else value))
  return ', '.join(parts)


def trainer_options_hint(prefix, options):
  """What ``model_options.json`` beside the checkpoint says differently, or ''."""
  path = checkpoints.options_file(prefix)
  trained = checkpoints.read_options_dict(prefix)
  if trained is None:
    return ''
  ours = options.to_dict()
  diffs = []
  for field in _SHAPE_FIELDS + ('output_stride', 'multi_grid'):
    if field in trained and _normalised(trained[field]) != _normalised(
        ours[field]):
      diffs.append('%s=%s (flags: %s)' % (field, trained[field], ours[field]))
  if not diffs:
    return ''
  return '\n%s says the checkpoint was trained with: %s' % (path,
                                                              '; '.join(diffs))


def _normalised(value):
  if isinstance(value, (list, tuple)):
    return [_normalised(v) for v in value]
  return value


def restore_checkpoint(model, checkpoint_path, options):
  """Fills ``model`` from ``checkpoint_path`` (ours or TF1), clear errors.

  Args:
    model: a model built from ``options``.
    checkpoint_path: a checkpoint prefix or a folder.
    options: the ModelOptions the model was built from (named in errors).

  Returns:
    A one-line description of what was loaded.

  Raises:
    ExportError: no checkpoint there, or it does not fit the model.
  """
  prefix = find_checkpoint(checkpoint_path)
  try:
    return checkpoints.restore_model(model, prefix)
  except (checkpoints.CheckpointMismatchError, ValueError,
          tf.errors.OpError) as e:
    raise ExportError(
        'Checkpoint %s does not fit the model built from the flags (%s).\n'
        'Pass the model flags the checkpoint was trained with '
        '(--model_variant, --num_classes, --atrous_rates, '
        '--decoder_output_stride, ...).%s\nDetails: %s'
        % (prefix, describe_options(options),
           trainer_options_hint(prefix, options), str(e)[:3000])) from e


def build_and_restore(spec, checkpoint_path=None, crop_size=None,
                      quantize_input=False):
  """The predictor of ``spec`` for ``crop_size``, with the checkpoint's weights.

  Args:
    spec: PredictorSpec.
    checkpoint_path: prefix or folder; None keeps the initial (random)
      weights (benchmarks).
    crop_size: fixed input size (TFLite) or None (any size).
    quantize_input: with ``spec.quantize``, quantise the backbone input
      (the TFLite conversion's input; ``quantize.InputQuant``).

  Returns:
    ``(keras predictor, description of what was loaded)``. BatchNorm is
    folded after restoring when ``spec.fold_batch_norm``.
  """
  options = spec.options.replace(
      crop_size=tuple(crop_size) if crop_size else None)
  if options.crop_size is None and options.image_pooling_crop_size:
    raise ExportError('image_pooling_crop_size=%s needs a model built for a '
                      'crop size.' % list(options.image_pooling_crop_size))
  if spec.quantize:
    try:
      model = quantize.build_quantized_predictor(
          options, quantize_input=quantize_input)
    except quantize.QuantizationError as e:
      raise ExportError(str(e)) from None
  else:
    model = build_predictor(options, eval_scales=spec.eval_scales,
                            add_flipped_images=spec.add_flipped_images)
  loaded = 'random initial weights (no checkpoint)'
  if checkpoint_path is not None:
    loaded = restore_checkpoint(model, checkpoint_path, spec.options)
  if spec.fold_batch_norm:
    model = fold.folded_predictor(model, eval_scales=spec.eval_scales,
                                  add_flipped_images=spec.add_flipped_images)
  return model, loaded


def keras_round_trip_check(model, path, image):
  """Saves ``model`` as ``.keras``, loads it and returns max |prob difference|.

  Used by the export to prove the written file reproduces the model.

  Args:
    model: the predictor.
    path: where the ``.keras`` file is written.
    image: float32 [1, H, W, 3] test input the model accepts.

  Returns:
    Maximum absolute difference of ``semantic_prob`` between the two.
  """
  import keras  # pylint: disable=g-import-not-at-top
  model.save(path)
  loaded = keras.models.load_model(path)
  a = model(image, training=False)['semantic_prob']
  b = loaded(image, training=False)['semantic_prob']
  return float(tf.reduce_max(tf.abs(a - b)))

