r"""Evaluation speed on CamVid val: single scale and multi-scale + flip.

Usage:
  python benchmarks/eval_speed.py [--model_variant=mobilenet_v2]
      [--output_stride=16] [--checkpoint=PREFIX_OR_DIR] [--batch_size=1]
      [--modes=single,multi_scale_flip] [--max_images=0]
      [--camvid_dir=../shared/camvid]

Converts CamVid val (101 images, 360x480) to records in a temporary folder,
then runs ``deeplab_tf.evaluation.Evaluator`` (the same path as
``deeplab_tf.eval``: records -> padding to the 361x481 eval crop -> predictor
-> streaming confusion matrix) once per mode:

- ``single``: eval_scales [1.0] (the original ``predict_labels``);
- ``multi_scale_flip``: eval_scales 0.5, 0.75, 1.0, 1.25, 1.5, 1.75 and the
  left-right flip (the original's multi-scale test, 12 passes per image).

Without ``--checkpoint`` the model has random weights (speed only; the mIoU
printed is then meaningless). Prints images/s per mode (the first batch,
which traces the graph, is timed apart) and one JSON line.
"""
import dataclasses
import json
import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS
_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)

flags.DEFINE_string('camvid_dir',
                    os.path.join(os.path.dirname(_REPO_ROOT), 'shared',
                                 'camvid'),
                    'CamVid folder (val/, valannot/, val.txt).')
flags.DEFINE_string('model_variant', 'mobilenet_v2', 'Backbone.')
flags.DEFINE_integer('output_stride', 16, 'Output stride.')
flags.DEFINE_list('atrous_rates', [], 'ASPP rates (empty: none).')
flags.DEFINE_integer('decoder_output_stride', None, 'Decoder stride.')
flags.DEFINE_string('checkpoint', None, 'A checkpoint (ours or TF1) with 11 '
                    'CamVid classes; unset: random weights.')
flags.DEFINE_integer('batch_size', 1, 'Eval batch size (original default 1).',
                     lower_bound=1)
flags.DEFINE_list('modes', ['single', 'multi_scale_flip'], 'Modes to time.')
flags.DEFINE_list('eval_crop_size', ['361', '481'], 'Eval crop "h,w" (must '
                  'hold 360x480), or "auto" (each batch padded to the '
                  'smallest k * output_stride + 1 holding it).')
flags.DEFINE_integer('max_images', 0, 'Use only the first N val images (0: '
                     'all).', lower_bound=0)

MODES = {
    'single': ((1.0,), False),
    'multi_scale_flip': ((0.5, 0.75, 1.0, 1.25, 1.5, 1.75), True),
}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  unknown = [m for m in FLAGS.modes if m not in MODES]
  if unknown:
    raise app.UsageError('unknown --modes %s; accepted: %s'
                         % (unknown, ', '.join(MODES)))
  sys.path.insert(0, _HERE)
  import camvid_records  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import EvalSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import Evaluator  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import ModelOptions  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import build_predictor  # pylint: disable=g-import-not-at-top

  crop = (None if FLAGS.eval_crop_size == ['auto'] else
          tuple(int(v) for v in FLAGS.eval_crop_size))
  temp = tempfile.mkdtemp(prefix='eval_speed_')
  try:
    record_dir = os.path.join(temp, 'records')
    counts = camvid_records.convert_camvid(
        FLAGS.camvid_dir, record_dir, FLAGS.max_images, num_shards=4,
        splits=('val',))
    descriptor = dataclasses.replace(datasets_info.CAMVID,
                                     splits_to_sizes=counts)
    options = ModelOptions(
        model_variant=FLAGS.model_variant, crop_size=crop,
        output_stride=FLAGS.output_stride,
        atrous_rates=[int(r) for r in FLAGS.atrous_rates] or None,
        decoder_output_stride=FLAGS.decoder_output_stride,
        outputs_to_num_classes={'semantic': descriptor.num_classes})
    checkpoint = FLAGS.checkpoint
    if checkpoint is None:
      checkpoint = os.path.join(temp, 'random', 'model.ckpt')
      checkpoints.save_tf1_checkpoint(build_predictor(options), checkpoint)
    record = {'model_variant': FLAGS.model_variant,
              'output_stride': FLAGS.output_stride,
              'batch_size': FLAGS.batch_size,
              'eval_crop_size': list(crop) if crop else 'auto',
              'num_images': counts['val'],
              'random_weights': FLAGS.checkpoint is None,
              'cpu_count': os.cpu_count()}
    for mode in FLAGS.modes:
      scales, flip = MODES[mode]
      settings = EvalSettings(batch_size=FLAGS.batch_size, crop_size=crop,
                              eval_scales=scales, add_flipped_images=flip)
      evaluator = Evaluator(options, settings, descriptor, record_dir)
      marks = []
      evaluator.evaluate(checkpoint,
                         progress=lambda done, total, s: marks.append((done, s)))
      # The evaluation's own clock: first batch (tracing) apart.
      first_done, first_s = marks[0]
      done, total_s = marks[-1]
      steady = ((done - first_done) / (total_s - first_s)
                if done > first_done else float('nan'))
      result = evaluator.evaluate(checkpoint)   # traced: a clean second pass
      record[mode] = {
          'eval_scales': list(scales), 'add_flipped_images': flip,
          'first_batch_s': round(first_s, 3),
          'images_per_sec_first_pass': round(steady, 3),
          'images_per_sec': round(result.num_images / result.seconds, 3),
          'seconds': round(result.seconds, 2), 'miou': result.miou}
      print('%-17s %6.2f images/s (%.1f s for %d images; first batch %.1f s '
            'with tracing)  mIoU %.4f' % (
                mode, record[mode]['images_per_sec'], result.seconds,
                result.num_images, first_s, result.miou), flush=True)
  finally:
    shutil.rmtree(temp, ignore_errors=True)
  record['load_average_1m'] = round(os.getloadavg()[0], 2)
  print(json.dumps(record, sort_keys=True), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
