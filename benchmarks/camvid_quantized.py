r"""CamVid: the mIoU drop of 8-bit quantisation-aware training (g3doc/quantize.md).

Usage:
  python benchmarks/camvid_quantized.py [--float_steps=1090] [--qat_steps=300]
      [--qat_learning_rate=1e-4] [--quantize_delay_step=0]
      [--float_checkpoint=DIR] [--work_dir=DIR] [--tflite]
      [--camvid_dir=../shared/camvid] [--max_images=N]

quantize.md's recommended path, on the project's CamVid recipe
(``experiments/camvid/mobilenetv2_from_scratch.flags``, the defaults of
``benchmarks/camvid_from_scratch.py``):

1. CamVid -> TFRecords (``camvid_records.py``).
2. The float model: DeepLabv3+ MobileNetV2 from scratch, ``--float_steps``
   of the recipe (poly LR 0.02, batch 8, crop 193x257, random scale
   0.25-1.0, BatchNorm decay 0.95, glorot_uniform kernels) - or an existing
   run (``--float_checkpoint``: a train dir or prefix of that recipe).
3. Quantisation-aware fine-tuning from it: the same data and recipe, with
   ``--quantize_delay_step`` (0: quantised from the first step, as
   quantize.md), a small poly learning rate (``--qat_learning_rate``; the
   original used 3e-5 on PASCAL) for ``--qat_steps``; BatchNorm keeps
   training (batch statistics, folded with the correction of
   ``models/quantize.py``). The control: the same fine-tuning of the float
   model without quantisation (``--float_control``), so that the drop
   measures quantisation, not the extra steps (which matter for a float
   model far from convergence).
4. All on CamVid val (101 images, whole, 361x481 crop) at scale 1.0 - the
   only inference the quantised graph has (the original refuses multi-scale
   with quantisation; the recipe's own number, 0.476, is at scale 0.5, also
   printed for the float model) - through ``evaluation.Evaluator``, the path
   of ``deeplab_tf.eval`` (``--quantize_delay_step=0`` for the second).
5. ``--tflite``: the quantised model exported to int8 and uint8 TFLite
   (learned ranges) and run on the same images (padded to the crop, as the
   export's contract).

Prints every mIoU, the drop (float minus quantised) and one JSON line. The
quantize.md zoo models lost about 1 point of PASCAL mIoU (75.32% -> 74.26%)
after 2k-5k fine-tuning steps on converged float models; a short CPU run is
far from that setting.
"""
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

import camvid_records  # benchmarks/camvid_records.py (the script's folder)

FLAGS = flags.FLAGS
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string('camvid_dir',
                    os.path.join(os.path.dirname(_REPO_ROOT), 'shared',
                                 'camvid'), 'CamVid folder (README there).')
flags.DEFINE_string('work_dir', None, 'Records, float/ and qat/ train dirs; '
                    'default a temporary folder, removed at the end.')
flags.DEFINE_string('float_checkpoint', None, 'An existing float model of '
                    'the CamVid recipe (train dir or prefix): skips step 2.')
flags.DEFINE_integer('float_steps', 1090, 'Float training steps (the recipe: '
                     '1090).', lower_bound=1)
flags.DEFINE_integer('qat_steps', 300, 'Quantisation-aware fine-tuning '
                     'steps.', lower_bound=1)
flags.DEFINE_float('float_learning_rate', 0.02, 'Float poly base LR.')
flags.DEFINE_float('qat_learning_rate', 1e-4, 'Fine-tuning poly base LR.')
flags.DEFINE_integer('quantize_delay_step', 0, 'The original flag for the '
                     'fine-tuning run.', lower_bound=0)
flags.DEFINE_integer('batch_size', 8, 'Training batch size.', lower_bound=1)
flags.DEFINE_list('crop_size', ['193', '257'], 'Training crop "h,w".')
flags.DEFINE_list('eval_crop_size', ['361', '481'], 'Eval crop "h,w".')
flags.DEFINE_float('batch_norm_decay', 0.95, 'Every BatchNorm\'s decay (the '
                   'recipe\'s --all_batch_norm_decay).')
flags.DEFINE_integer('max_images', 0, 'Only the first N pairs of each split '
                     '(smoke runs); 0: all.', lower_bound=0)
flags.DEFINE_boolean('float_control', True, 'Also fine-tune the float model '
                     'the same way without quantisation; the drop is then '
                     'measured against it.')
flags.DEFINE_boolean('tflite', False, 'Also export the quantised model to '
                     'int8 / uint8 TFLite and evaluate those.')
flags.DEFINE_integer('log_steps', 25, 'Progress line every N steps.',
                     lower_bound=1)

NUM_CLASSES = camvid_records.NUM_CLASSES
IGNORE_LABEL = camvid_records.IGNORE_LABEL


def _pair(values, name):
  try:
    pair = tuple(int(v) for v in values)
  except ValueError:
    pair = ()
  if len(pair) != 2 or min(pair) < 1:
    raise app.UsageError('--%s must be "h,w"; got %s' % (name, ','.join(values)))
  return pair


def _train(options, descriptor, record_dir, train_dir, steps, learning_rate,
           crop, initial=None, quant_delay=None):
  """Trains with the CamVid recipe; returns (seconds, last metrics)."""
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import quantization  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import tasks  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  settings = trainer_lib.TrainSettings(
      train_logdir=train_dir, train_batch_size=FLAGS.batch_size,
      learning_rate=LearningRateSettings(
          learning_policy='poly', base_learning_rate=learning_rate,
          training_number_of_steps=steps),
      fine_tune_batch_norm=True, log_steps=FLAGS.log_steps,
      save_interval_secs=10 ** 6, save_summaries_secs=10 ** 6,
      batch_norm_decay=FLAGS.batch_norm_decay,
      kernel_initializer=None if initial else 'glorot_uniform',
      tf_initial_checkpoint=initial, colormap=descriptor.colormap)
  inputs = pipeline.InputSettings(
      crop_size=crop, model_variant=options.model_variant,
      min_scale_factor=0.25, max_scale_factor=1.0, scale_factor_step_size=0.25)

  def dataset_fn(ctx):
    return pipeline.build_dataset(
        descriptor, 'train', record_dir, inputs,
        batch_size=ctx.get_per_replica_batch_size(FLAGS.batch_size),
        is_training=True, input_context=ctx)

  task = None
  if quant_delay is not None:
    task = quantization.QuantizationAwareTask(
        tasks.task_for(options, settings.loss, None, IGNORE_LABEL),
        quant_delay, FLAGS.batch_norm_decay)
  start = time.time()
  metrics = trainer_lib.Trainer(options, settings, dataset_fn,
                                ignore_label=IGNORE_LABEL, task=task).train()
  return time.time() - start, metrics


def _evaluate(options, checkpoint, descriptor, record_dir, eval_crop,
              scales=(1.0,), quantized=False):
  from deeplab_tf.evaluation.evaluate import EvalSettings, Evaluator  # pylint: disable=g-import-not-at-top
  settings = EvalSettings(split='val', batch_size=1, crop_size=eval_crop,
                          eval_scales=scales, quantize=quantized)
  start = time.time()
  result = Evaluator(options, settings, descriptor, record_dir).evaluate(
      checkpoint)
  return result.miou, time.time() - start


def _evaluate_tflite(options, checkpoint, eval_crop, pairs):
  """mIoU of the int8 and uint8 TFLite exports on (image, label) files."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.metrics import StreamingConfusionMatrix  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import tflite  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import quantize  # pylint: disable=g-import-not-at-top
  predictor = quantize.build_quantized_predictor(
      options.replace(crop_size=eval_crop), quantize_input=True)
  checkpoints.restore_model(predictor, checkpoint)
  results = {}
  for kind in ('int8', 'uint8'):
    runner = tflite.interpreter(tflite.convert(predictor, kind))
    metric = StreamingConfusionMatrix(NUM_CLASSES, IGNORE_LABEL)
    for pair in pairs:
      image = cv2.cvtColor(cv2.imread(pair.image_path, cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
      label = cv2.imread(pair.label_path, cv2.IMREAD_UNCHANGED).astype(
          np.int64)
      label[label == camvid_records.VOID] = IGNORE_LABEL
      labels, _ = tflite.run_tflite(runner, image, options.model_variant)
      metric.update(label[None], labels[None])
    results[kind] = metric.mean_iou()
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  logging.set_verbosity(logging.INFO)
  crop = _pair(FLAGS.crop_size, 'crop_size')
  eval_crop = _pair(FLAGS.eval_crop_size, 'eval_crop_size')
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import ModelOptions  # pylint: disable=g-import-not-at-top
  start = time.time()
  work = FLAGS.work_dir or tempfile.mkdtemp(prefix='camvid_quantized_')
  record_dir = os.path.join(work, 'records')
  os.makedirs(record_dir, exist_ok=True)
  record = {}
  try:
    print('[1/4] converting %s -> %s' % (FLAGS.camvid_dir, record_dir),
          flush=True)
    counts = camvid_records.convert_camvid(FLAGS.camvid_dir, record_dir,
                                           FLAGS.max_images)
    descriptor = dataclasses.replace(datasets_info.CAMVID,
                                     splits_to_sizes=counts)
    options = ModelOptions(model_variant='mobilenet_v2', crop_size=crop,
                           output_stride=16, decoder_output_stride=(4,),
                           outputs_to_num_classes={'semantic': NUM_CLASSES})
    float_dir = FLAGS.float_checkpoint
    if float_dir is None:
      float_dir = os.path.join(work, 'float')
      print('[2/4] float model: %d steps of the CamVid recipe'
            % FLAGS.float_steps, flush=True)
      seconds, _ = _train(options, descriptor, record_dir, float_dir,
                          FLAGS.float_steps, FLAGS.float_learning_rate, crop)
      record['float_train_s'] = round(seconds, 1)
    else:
      print('[2/4] float model: %s' % float_dir, flush=True)
    qat_dir = os.path.join(work, 'qat')
    print('[3/4] quantisation-aware fine-tuning: %d steps, lr %g, '
          'quantize_delay_step %d' % (FLAGS.qat_steps, FLAGS.qat_learning_rate,
                                      FLAGS.quantize_delay_step), flush=True)
    seconds, _ = _train(options, descriptor, record_dir, qat_dir,
                        FLAGS.qat_steps, FLAGS.qat_learning_rate, crop,
                        initial=float_dir,
                        quant_delay=FLAGS.quantize_delay_step)
    record['qat_train_s'] = round(seconds, 1)
    control_dir = os.path.join(work, 'float_finetuned')
    if FLAGS.float_control:
      print('[3/4] control: the same fine-tuning, float', flush=True)
      _train(options, descriptor, record_dir, control_dir, FLAGS.qat_steps,
             FLAGS.qat_learning_rate, crop, initial=float_dir)
    print('[4/4] evaluating val (%d images, crop %dx%d, scale 1.0)'
          % (counts['val'], eval_crop[0], eval_crop[1]), flush=True)
    eval_options = options.replace(crop_size=eval_crop)
    record['float_miou'], _ = _evaluate(eval_options, float_dir, descriptor,
                                        record_dir, eval_crop)
    record['float_miou_scale_0.5'], _ = _evaluate(
        eval_options, float_dir, descriptor, record_dir, eval_crop, (0.5,))
    record['quantized_miou'], record['quantized_eval_s'] = _evaluate(
        eval_options, qat_dir, descriptor, record_dir, eval_crop,
        quantized=True)
    if FLAGS.float_control:
      record['float_finetuned_miou'], _ = _evaluate(
          eval_options, control_dir, descriptor, record_dir, eval_crop)
    if FLAGS.tflite:
      from deeplab_tf.data import convert  # pylint: disable=g-import-not-at-top
      pairs = convert.read_pair_list(os.path.join(FLAGS.camvid_dir,
                                                  'val.txt'), FLAGS.camvid_dir)
      if FLAGS.max_images:
        pairs = pairs[:FLAGS.max_images]
      tflite_miou = _evaluate_tflite(options, qat_dir, eval_crop, pairs)
      record.update({'tflite_%s_miou' % k: v for k, v in tflite_miou.items()})
  finally:
    if FLAGS.work_dir is None:
      shutil.rmtree(work, ignore_errors=True)
  record.update({
      'float_steps': None if FLAGS.float_checkpoint else FLAGS.float_steps,
      'float_checkpoint': FLAGS.float_checkpoint,
      'qat_steps': FLAGS.qat_steps, 'qat_learning_rate': FLAGS.qat_learning_rate,
      'quantize_delay_step': FLAGS.quantize_delay_step,
      'batch_size': FLAGS.batch_size, 'crop_size': list(crop),
      'eval_crop_size': list(eval_crop), 'eval_scale': 1.0,
      'num_train_images': counts['train'], 'num_val_images': counts['val'],
      'miou_drop': record.get('float_finetuned_miou', record['float_miou'])
                   - record['quantized_miou'],
      'wall_s': round(time.time() - start, 1),
      'load_average_1m': round(os.getloadavg()[0], 2)})
  print('\nval mIoU at scale 1.0: float %.4f%s, quantised (8-bit QAT graph) '
        '%.4f, drop %.4f%s; float at scale 0.5 %.4f'
        % (record['float_miou'],
           ', float fine-tuned alike %.4f' % record['float_finetuned_miou']
           if 'float_finetuned_miou' in record else '',
           record['quantized_miou'], record['miou_drop'],
           ''.join('; %s TFLite %.4f' % (k, record['tflite_%s_miou' % k])
                   for k in ('int8', 'uint8') if 'tflite_%s_miou' % k in record),
           record['float_miou_scale_0.5']))
  print(json.dumps(record, sort_keys=True), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
