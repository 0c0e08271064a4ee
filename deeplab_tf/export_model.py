r"""Exports a trained DeepLab for inference: SavedModel, TFLite, Keras file,
or the original's frozen graph.

Usage (an extracted model-zoo tarball, one command):
  python -m deeplab_tf.export_model \
      --checkpoint_path=deeplabv3_mnv2_pascal_train_aug \
      --export_path=exported/mnv2_voc \
      --model_variant=mobilenet_v2 --num_classes=21

  (xception_65 zoo models also need --atrous_rates=6 --atrous_rates=12
  --atrous_rates=18 --output_stride=16 --decoder_output_stride=4.)

The flags are those of the original ``export_model.py`` with its defaults
(--crop_size=513 --crop_size=513, --output_stride=8, --inference_scales=1.0,
--noadd_flipped_images, --num_classes=21) plus the common.py model and
resize flags. --checkpoint_path takes one of our training checkpoints or an
original TF1 checkpoint, a prefix or a folder; the kind is detected.

The export folder holds a SavedModel (``tf.saved_model.load(export_path)``,
no deeplab_tf needed) with two signatures:

  serving_default(image: uint8 [batch, height, width, 3], any batch and size)
    -> semantic: int32 [batch, height, width]   (labels, at the input size)
       semantic_probabilities: float32 [batch, height, width, num_classes]
  serving_any_channels(image: uint8 [batch, height, width, 1|3|4])
    -> the same; grey is repeated to RGB, the alpha channel is dropped.

Inside the graph, as the original: resize_to_range when --min_resize_value /
--max_resize_value are set, padding with the mean pixel to the crop size,
prediction (multi-scale / flipped per --inference_scales and
--add_flipped_images), crop and resize back (labels nearest, probabilities
bilinear). Unlike the original it takes any batch size, and images larger
than the crop are padded to the next k * output_stride + 1 instead of
failing. ``serving_default`` refuses 1- or 4-channel images (its input is
[..., 3]); use ``serving_any_channels`` or convert them to RGB first.

With --export_formats=...,tflite it writes deeplab_float.tflite and / or
deeplab_int8.tflite (--tflite_quantization): input float32 [1, crop_height,
crop_width, 3] raw RGB 0..255, image top-left, rest filled with the mean
pixel; outputs ``semantic`` int32 and ``semantic_probabilities`` at the crop
size (see deeplab_tf/export/tflite.py). With ...,keras it writes
deeplab_predictor.keras: the predictor alone (float32 0..255 input, no
resize or padding inside). deeplab_export.json describes all of them.

--quantize_delay_step >= 0 (a model trained with it; g3doc/quantize.md)
exports the quantisation-aware graph, as the original's create_eval_graph:
BatchNorm folded, 8-bit fake quantisation with the checkpoint's ranges, in
the SavedModel and the frozen graph alike (single scale). Its TFLite files
take their ranges from the checkpoint, no calibration: deeplab_int8.tflite
(the contract above; weight ranges widened to be symmetric, as int8
kernels need) and deeplab_uint8.tflite (--tflite_quantization=uint8: the
original's convert_to_tflite.py conversion, every range as learned, uint8
pixels in, int32 labels out).

An --export_path ending in .pb writes what the original wrote instead: a
frozen GraphDef (variables folded into constants) with the original tensor
names, run by TensorFlow alone as model-zoo frozen_inference_graph.pb files:

  ImageTensor:0               uint8 [1, height, width, 3]
  SemanticPredictions:0       int32 [1, height, width]
  SemanticProbabilities:0     float32 [1, height, width, num_classes]
  RawSemanticPredictions:0    float32 [1, padded h, padded w] (before the
                              crop and the resize back, as the original)
  RawSemanticProbabilities:0  float32 [1, padded h, padded w, num_classes]

It is frozen from the same serving computation as the SavedModel (see
deeplab_tf/export/frozen_graph.py); --save_inference_graph then writes the
graph before freezing to inference_graph.pbtxt beside the .pb file.

A folder that already holds an export (or an existing .pb file) is refused
unless --overwrite.
"""
import os
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.config import model_flags
from deeplab_tf.core.errors import DeeplabError

FLAGS = flags.FLAGS

FORMATS = ('saved_model', 'tflite', 'keras')

model_flags.define_model_flags(output_stride_default=8)
model_flags.define_resize_flags()
model_flags.define_crf_flags()
flags.DEFINE_string('checkpoint_path', None,
                    'Checkpoint to export: one of ours (train_logdir or a '
                    'model.ckpt-N prefix) or an original TF1 / model-zoo checkpoint '
                    '(model.ckpt prefix, or the extracted tarball folder when '
                    'it holds one checkpoint); detected automatically.')
flags.DEFINE_string('export_path', None,
                    'Folder to write the export to (the SavedModel itself, '
                    'plus the TFLite / Keras files and deeplab_export.json); '
                    'or a file path ending in .pb: the frozen GraphDef of the '
                    'original export_model.py (ImageTensor -> '
                    'SemanticPredictions, SemanticProbabilities, '
                    'RawSemanticPredictions, RawSemanticProbabilities), '
                    'nothing else.')


class _IntsParser(flags.ArgumentParser):
  """One int per occurrence (the original) or "h,w" (our other scripts)."""

  def parse(self, argument):
    if isinstance(argument, int):
      return argument
    try:
      values = [int(v) for v in str(argument).split(',') if v.strip()]
    except ValueError:
      raise ValueError('expected an int or "height,width"; got %r'
                       % (argument,)) from None
    return values[0] if len(values) == 1 else values

  def flag_type(self):
    return 'int or "height,width"'


# The original's multi-integer flag (--crop_size=513 --crop_size=513); the
# "513,513" form of our other scripts is accepted as well.
flags.DEFINE_multi(_IntsParser(), flags.ArgumentSerializer(), 'crop_size',
                   [513, 513],
                   'Crop size [height, width]: --crop_size=513 '
                   '--crop_size=513 as the original, or --crop_size=513,513. '
                   'Images are padded with the mean pixel to it (larger ones '
                   'to the next k * output_stride + 1); the TFLite input '
                   'size.')
flags.DEFINE_multi_float('inference_scales', [1.0],
                         'Scales to resize images to for inference (e.g. '
                         '0.5 ... 1.75 for multi-scale); probabilities are '
                         'averaged over scales.')
flags.DEFINE_bool('add_flipped_images', False,
                  'Also predict left-right flipped images and average.')
flags.DEFINE_integer('quantize_delay_step', -1,
                     '>= 0: export the quantisation-aware graph of a model '
                     'trained with --quantize_delay_step (BatchNorm folded, '
                     '8-bit fake quantisation with its learned ranges; the '
                     'original\'s create_eval_graph), single scale; its '
                     'TFLite files (int8, uint8) use those ranges, no '
                     'calibration. < 0: the float graph.')
flags.DEFINE_bool('save_inference_graph', False,
                  'Also write the graph as a text proto, '
                  'inference_graph.pbtxt, in the export folder: the '
                  'serving_default graph, or for a .pb --export_path the '
                  'graph before freezing, beside the .pb (as the original).')
flags.DEFINE_list('export_formats', ['saved_model'],
                  'What to write into the --export_path folder, comma list '
                  'of: %s. Not with a .pb --export_path (frozen graph only).'
                  % ', '.join(FORMATS))
flags.DEFINE_list('tflite_quantization', ['float'],
                  'TFLite models to write, comma list of: float (float32 '
                  'weights and kernels), int8 (full-integer kernels, '
                  'float32 input/output; post-training quantisation, or '
                  'the learned ranges with --quantize_delay_step), uint8 '
                  '(with --quantize_delay_step only: the original\'s '
                  'QUANTIZED_UINT8 conversion, uint8 pixels in, labels '
                  'out).')
flags.DEFINE_list('tflite_representative_images', [],
                  'int8 calibration images: comma list of glob patterns '
                  '(JPEG/PNG). Unset: synthetic images (poorer ranges).')
flags.DEFINE_integer('tflite_num_calibration_images', 100,
                     'Calibration images used for int8 (the first N files, '
                     'or N synthetic images).')
flags.DEFINE_bool('fold_batch_norm', False,
                  'Fold BatchNorm into the convolutions before exporting '
                  '(same predictions up to float rounding, faster).')
flags.DEFINE_bool('overwrite', False,
                  'Replace an earlier export in --export_path (only its own '
                  'files are removed).')
flags.mark_flags_as_required(['checkpoint_path', 'export_path'])
# --help lists the model and resize flags too, not only this module's.
flags.adopt_module_key_flags(model_flags)

# Behaviour that differs from the original export, for the manifest.
DEVIATIONS = (
    'any batch size (the original takes [1, None, None, 3])',
    'images larger than the crop (after resize) are padded to the next '
    'k * output_stride + 1 instead of failing; the model then pools the '
    'image globally, as the original does for an image padded to its crop',
    'a SavedModel (the original frozen GraphDef only for an export_path '
    'ending in .pb); its outputs semantic (int32, the original '
    'SemanticPredictions) and semantic_probabilities (float32, the original '
    'SemanticProbabilities); no Raw* outputs in the SavedModel',
    'quantize_delay_step >= 0: the TFLite files are converted here from '
    'the quantised graph (int8: weight ranges widened to be symmetric; '
    'uint8: the original convert_to_tflite.py conversion)',
)


def _check_formats(values, accepted, flag):
  values = [v.strip() for v in values if v.strip()]
  unknown = [v for v in values if v not in accepted]
  if unknown or not values:
    raise app.UsageError('--%s: %s not accepted; choose from %s.'
                         % (flag, unknown or 'nothing', ', '.join(accepted)))
  return values


def _crop_size():
  """--crop_size occurrences flattened: [513, 513] or [[513, 513]]."""
  values = []
  for value in FLAGS.crop_size or ():
    values.extend(value if isinstance(value, list) else [value])
  return tuple(values)


def _settings():
  from deeplab_tf.export import ServingSettings  # pylint: disable=g-import-not-at-top
  return ServingSettings(
      crop_size=_crop_size(),
      # 0 and None both mean "no resize", as the original's truthiness test.
      min_resize_value=FLAGS.min_resize_value or None,
      max_resize_value=FLAGS.max_resize_value or None,
      resize_factor=FLAGS.resize_factor or None,
      crf=model_flags.crf_params_from_flags())


def _calibration_images(options, settings):
  from deeplab_tf.export import tflite  # pylint: disable=g-import-not-at-top
  count = FLAGS.tflite_num_calibration_images
  if FLAGS.tflite_representative_images:
    images = tflite.load_images(FLAGS.tflite_representative_images, count)
    source = '%d image files' % len(images)
  else:
    logging.warning('int8 calibration on synthetic images: pass '
                    '--tflite_representative_images for better ranges.')
    images = tflite.synthetic_images(count, settings.crop_size)
    source = '%d synthetic images' % len(images)
  inputs = tflite.representative_inputs(images, settings.crop_size,
                                        options.model_variant, settings)
  return inputs, source


def _export_tflite(spec, prefix, serving_predictor, settings, quantizations,
                   calibration):
  """Writes the TFLite files; returns their manifest entries.

  ``calibration`` is ``(inputs, description)`` for int8, else None.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import build_and_restore  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import saved_model  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import tflite  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import backbones  # pylint: disable=g-import-not-at-top
  if spec.quantize:
    # Its TFLite input is the quantised backbone input (quantize.InputQuant).
    predictor, _ = build_and_restore(spec, prefix, settings.crop_size,
                                     quantize_input=True)
  elif serving_predictor.deeplab_options.crop_size == settings.crop_size:
    predictor = serving_predictor
  else:
    predictor, _ = build_and_restore(spec, prefix, settings.crop_size)
  entries = {}
  for quantization in quantizations:
    representative, source = None, None
    if spec.quantize:
      source = 'ranges learned in quantisation-aware training (no calibration)'
    elif quantization == 'int8':
      representative, source = calibration
    content = tflite.convert(predictor, quantization, representative)
    path = os.path.join(FLAGS.export_path, saved_model.TFLITE_FILES[quantization])
    with open(path, 'wb') as f:
      f.write(content)
    # Smoke run: the file loads and gives labels of the right shape.
    labels, _ = tflite.run_tflite(
        content, np.full(settings.crop_size + (3,), 128, np.uint8),
        spec.options.model_variant)
    if labels.shape != settings.crop_size:
      raise RuntimeError('The TFLite model %s returned labels of shape %s; '
                         'expected %s.' % (path, labels.shape,
                                           settings.crop_size))
    entries[quantization] = {
        'file': os.path.basename(path), 'bytes': len(content),
        'calibration': source,
        'input': {'image': 'float32 [1, %d, %d, 3] raw RGB 0..255, image '
                           'top-left, the rest filled with mean_pixel'
                           % settings.crop_size},
        'outputs': {'semantic': 'int32 [1, %d, %d]; keep [:height, :width]'
                                % settings.crop_size,
                    'semantic_probabilities': 'float32 [1, %d, %d, %d]'
                                              % (settings.crop_size
                                                 + (spec.options.num_classes,))},
        'mean_pixel': list(backbones.mean_pixel(spec.options.model_variant))}
    if quantization == 'uint8':
      entries[quantization]['input'] = {
          'unnamed (no signature)': 'uint8 [1, %d, %d, 3] RGB pixels, image '
                                    'top-left, the rest 128; the model '
                                    'reads (q - 127.5) / 127.5'
                                    % settings.crop_size}
      entries[quantization]['outputs'] = {
          'unnamed': 'int32 [1, %d, %d] labels; keep [:height, :width]'
                     % settings.crop_size}
    print('wrote %s (%s, %d bytes)' % (path, quantization, len(content)))
  return entries


def _export_keras(predictor, settings):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import saved_model  # pylint: disable=g-import-not-at-top
  path = os.path.join(FLAGS.export_path, saved_model.KERAS_FILE)
  size = settings.crop_size if predictor.deeplab_options.crop_size else (33, 33)
  image = np.random.default_rng(0).uniform(0, 255, (1,) + tuple(size) + (3,))
  diff = predictor_lib.keras_round_trip_check(predictor, path,
                                              image.astype(np.float32))
  if diff > 1e-5:
    raise RuntimeError('The .keras file %s does not reproduce the predictor '
                       '(max probability difference %g).' % (path, diff))
  print('wrote %s (reloaded: max probability difference %g)' % (path, diff))
  crop = predictor.deeplab_options.crop_size
  return {'file': os.path.basename(path), 'round_trip_max_abs_diff': diff,
          'input': 'float32 [batch, %s, 3] raw RGB 0..255, already padded '
                   '(no resize or padding inside); outputs semantic (int64), '
                   'semantic_prob, ...'
                   % ('%d, %d' % tuple(crop) if crop else 'height, width')}


def _export_frozen_graph(predictor, settings, num_classes):
  """Writes the original's frozen GraphDef to --export_path; returns its entry."""
  from deeplab_tf.export import ServingModule, frozen_graph  # pylint: disable=g-import-not-at-top
  module = ServingModule(predictor, settings)
  written = frozen_graph.write_frozen_graph(
      module, FLAGS.export_path, overwrite=FLAGS.overwrite,
      save_inference_graph=FLAGS.save_inference_graph)
  print('wrote frozen graph %s (tensors: %s)'
        % (written[0], ', '.join(frozen_graph.description(num_classes))))
  for path in written[1:]:
    print('wrote %s' % path)
  return {'file': written[0],
          'tensors': frozen_graph.description(num_classes)}


def export(formats, quantizations):
  """The export; returns the manifest dict. Raises ExportError on bad input.

  An --export_path ending in .pb writes the frozen graph alone (no manifest
  file); the dict returned then has a 'frozen_graph' entry.
  """
  from deeplab_tf.export import PredictorSpec, ServingModule  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import frozen_graph  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import build_and_restore, check_export_dir  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import find_checkpoint, prepare_export_dir  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import saved_model, serving_model_options  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import ExportError  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import backbones  # pylint: disable=g-import-not-at-top
  quantized = FLAGS.quantize_delay_step >= 0
  if 'tflite' in formats and quantized and 'float' in quantizations:
    raise ExportError('--tflite_quantization=float with --quantize_delay_step='
                      '%d: the quantised graph converts to int8 or uint8 '
                      'TFLite.' % FLAGS.quantize_delay_step)
  if 'tflite' in formats and not quantized and 'uint8' in quantizations:
    raise ExportError('--tflite_quantization=uint8 needs a quantisation-aware '
                      'model (--quantize_delay_step >= 0); int8 is the '
                      'post-training quantisation.')
  settings = _settings()
  frozen = frozen_graph.is_frozen_graph_path(FLAGS.export_path)
  if frozen:
    frozen_graph.check_frozen_graph_path(FLAGS.export_path, FLAGS.overwrite,
                                         FLAGS.save_inference_graph)
  else:
    check_export_dir(FLAGS.export_path, FLAGS.overwrite)
  prefix = find_checkpoint(FLAGS.checkpoint_path)
  options, source = model_flags.checkpoint_options(
      prefix, model_flags.model_options_from_flags(crop_size=None))
  logging.info('Model options from %s.', source)
  model_flags.warn_if_flip_ignored(FLAGS.inference_scales,
                                   FLAGS.add_flipped_images)
  spec = PredictorSpec(options, tuple(FLAGS.inference_scales),
                       FLAGS.add_flipped_images, FLAGS.fold_batch_norm,
                       quantize=quantized)
  serving_options = serving_model_options(options, settings.crop_size)
  calibration = None
  if 'tflite' in formats and 'int8' in quantizations and not quantized:
    # Before the (long) model build: a bad image pattern fails fast.
    calibration = _calibration_images(options, settings)
  predictor, loaded = build_and_restore(spec, prefix,
                                        serving_options.crop_size)
  print(loaded)
  info = {
      'checkpoint': prefix, 'loaded': loaded,
      'model_options': options.to_dict(),
      'serving_model_crop_size': (list(serving_options.crop_size)
                                  if serving_options.crop_size else None),
      'crop_size': list(settings.crop_size),
      'min_resize_value': settings.min_resize_value,
      'max_resize_value': settings.max_resize_value,
      'resize_factor': settings.resize_factor,
      'inference_scales': list(spec.eval_scales),
      'add_flipped_images': spec.add_flipped_images,
      'fold_batch_norm': spec.fold_batch_norm,
      'quantize_delay_step': FLAGS.quantize_delay_step,
      'mean_pixel': list(backbones.mean_pixel(options.model_variant)),
      'deviations_from_original': list(DEVIATIONS),
  }
  if frozen:
    # DEVIATIONS describe the SavedModel; the frozen graph keeps the
    # original's batch of 1 (see deeplab_tf/export/frozen_graph.py).
    del info['deviations_from_original']
    info['frozen_graph'] = _export_frozen_graph(predictor, settings,
                                                options.num_classes)
    return info
  removed = prepare_export_dir(FLAGS.export_path, FLAGS.overwrite)
  if removed:
    print('removed the earlier export: %s' % ', '.join(removed))
  if 'saved_model' in formats:
    module = ServingModule(predictor, settings)
    keys = saved_model.save_serving_module(module, FLAGS.export_path)
    info['saved_model'] = {
        'signatures': saved_model.signature_description(options.num_classes)}
    print('wrote SavedModel %s (signatures: %s)'
          % (FLAGS.export_path, ', '.join(keys)))
    if FLAGS.save_inference_graph:
      print('wrote %s' % saved_model.write_inference_graph(module,
                                                           FLAGS.export_path))
  if 'tflite' in formats:
    info['tflite'] = _export_tflite(spec, prefix, predictor, settings,
                                    quantizations, calibration)
  if 'keras' in formats:
    info['keras'] = _export_keras(predictor, settings)
  print('wrote %s' % saved_model.write_info(FLAGS.export_path, info))
  return info


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  formats = _check_formats(FLAGS.export_formats, FORMATS, 'export_formats')
  quantizations = _check_formats(FLAGS.tflite_quantization,
                                 ('float', 'int8', 'uint8'),
                                 'tflite_quantization')
  if (FLAGS['export_formats'].present and FLAGS.export_path and
      FLAGS.export_path.endswith('.pb')):
    raise app.UsageError(
        '--export_path=%s ends in .pb: only the frozen graph of the original '
        'export_model.py is written there; --export_formats=%s needs a folder '
        'as --export_path (leave the flag out for the frozen graph).'
        % (FLAGS.export_path, ','.join(FLAGS.export_formats)))
  if FLAGS.tflite_num_calibration_images < 1:
    raise app.UsageError('--tflite_num_calibration_images must be >= 1; got '
                         '%d.' % FLAGS.tflite_num_calibration_images)
  try:
    export(formats, quantizations)
  except DeeplabError as e:
    print('ERROR: %s' % e, file=sys.stderr)
    return 1
  return 0


def run():
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
