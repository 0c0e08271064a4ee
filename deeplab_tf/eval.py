r"""Evaluates DeepLab checkpoints: the original eval.py flags, streaming mIoU.

Usage (PASCAL VOC val, the model-zoo protocol: output stride 8, six scales
and the flip):
  python -m deeplab_tf.eval --dataset=pascal_voc_seg --eval_split=val \
      --dataset_dir=workspace/records/pascal_voc_seg \
      --checkpoint_dir=workspace/train/voc_xception65_phase2 \
      --eval_logdir=workspace/eval/voc_xception65_phase2 \
      --model_variant=xception_65 --atrous_rates=12 --atrous_rates=24 \
      --atrous_rates=36 --output_stride=8 --decoder_output_stride=4 \
      --eval_crop_size=513,513 --eval_scales=0.5 --eval_scales=0.75 \
      --eval_scales=1.0 --eval_scales=1.25 --eval_scales=1.5 \
      --eval_scales=1.75 --add_flipped_images --max_number_of_evaluations=1

Flag names and defaults are the original eval.py's (and common.py's model
and resize flags); ``--flagfile`` works. ``--checkpoint_dir`` may be a
train_logdir (its newest checkpoint, then each new one), one checkpoint
prefix, or an original TF1 model-zoo checkpoint (told apart automatically).

Continuous mode as the original: every new checkpoint is evaluated once, at
most one evaluation per ``--eval_interval_secs``, until
``--max_number_of_evaluations`` (0 = forever). Additions: the loop also ends
after the final checkpoint of a finished training (the trainer writes
``training_done.json``), or after ``--eval_timeout_secs`` without a new one;
``--eval_crop_size=auto`` evaluates whole images of any size, each batch
padded to the smallest k * output_stride + 1 that holds it.

Results per checkpoint in --eval_logdir: ``metrics-<step>.json``,
``confusion_matrix-<step>.csv``, ``per_class_iou-<step>.csv``,
``metrics_latest.json`` and TensorBoard summaries (the original's
``eval/miou_<scales>_overall`` and ``eval/miou_<scales>_class_<c>`` scalars,
pixel accuracy, the confusion matrix as an image, the per-class table).
"""
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.config import model_flags
from deeplab_tf.core.errors import DeeplabError

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
model_flags.define_resize_flags()
model_flags.define_dataset_flags()
model_flags.define_checkpoint_loop_flags()
model_flags.define_crf_flags()

flags.DEFINE_string('eval_logdir', None, 'Where to write the event logs and '
                    'the metrics files (required).')
flags.DEFINE_integer('eval_batch_size', 1, 'Images per evaluation batch.')
model_flags.define_crop_size_flag(
    'eval_crop_size',
    'Crop "height,width" every image is padded to (mean pixel; labels with '
    'the ignore label), as the original; it must hold the largest image '
    '(after any resize). "auto": whole images of any size, each batch padded '
    'to the smallest k * output_stride + 1 that holds it. The older original '
    'form --eval_crop_size=513 --eval_crop_size=513 works too.')
flags.DEFINE_string('eval_split', 'val', 'Split to evaluate.')
flags.DEFINE_integer('max_number_of_evaluations', 0, 'Stop after this many '
                     'evaluations; 0 loops until told the training is done '
                     '(or forever, as the original, if it never is).')
flags.DEFINE_integer('eval_timeout_secs', None, 'Stop when no new checkpoint '
                     'appeared for this many seconds (unset: wait forever).')
flags.DEFINE_integer('log_every_n_images', 100, 'Progress line every N '
                     'images (with the ETA of the current evaluation).')


def eval_settings_from_flags():
  from deeplab_tf.evaluation.evaluate import EvalSettings  # pylint: disable=g-import-not-at-top
  try:
    crop_size = model_flags.parse_crop_size(FLAGS.eval_crop_size,
                                            'eval_crop_size')
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  return EvalSettings(split=FLAGS.eval_split, batch_size=FLAGS.eval_batch_size,
                      crop_size=crop_size,
                      eval_scales=tuple(FLAGS.eval_scales),
                      add_flipped_images=FLAGS.add_flipped_images,
                      min_resize_value=FLAGS.min_resize_value,
                      max_resize_value=FLAGS.max_resize_value,
                      resize_factor=FLAGS.resize_factor,
                      crf=model_flags.crf_params_from_flags(),
                      quantize=FLAGS.quantize_delay_step >= 0)


def _progress_logger(every):
  from deeplab_tf.core import progress  # pylint: disable=g-import-not-at-top
  state = {'next': every}

  def log_progress(done, total, seconds):
    if done >= state['next'] or done == total:
      state['next'] = done + every
      logging.info('evaluated %s', progress.progress_line(
          done, total, seconds, final=done == total))
  return log_progress


def evaluate_from_flags():
  """Runs the evaluation loop; returns the list of EvalResults."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation import report  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation import watch  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import Evaluator  # pylint: disable=g-import-not-at-top
  if FLAGS.quantize_delay_step >= 0 and tuple(FLAGS.eval_scales) != (1.0,):
    raise app.UsageError('Quantize mode is not supported with multi-scale '
                         'test (--quantize_delay_step=%d, --eval_scales=%s).'
                         % (FLAGS.quantize_delay_step,
                            ','.join(str(s) for s in FLAGS.eval_scales)))
  settings = eval_settings_from_flags()
  model_flags.warn_if_flip_ignored(settings.eval_scales,
                                   settings.add_flipped_images)
  descriptor = datasets_info.get_descriptor(FLAGS.dataset)
  model_flags.check_script_edge(FLAGS.model_variant, descriptor.num_classes,
                                descriptor.name)
  # The evaluated dataset decides the class count; the options JSON beside
  # the checkpoint, under any model flag given, decides the rest.
  options, source = model_flags.checkpoint_options(
      FLAGS.checkpoint_dir,
      model_flags.model_options_from_flags(num_classes=descriptor.num_classes),
      script_fields=('crop_size', 'outputs_to_num_classes'))
  logging.info('Model options from %s.', source)
  if FLAGS.max_number_of_evaluations == 1:
    # One evaluation asked: no waiting for a checkpoint that is not there.
    checkpoints.find_checkpoint(FLAGS.checkpoint_dir)
  evaluator = Evaluator(options, settings, descriptor, FLAGS.dataset_dir)
  logging.info('Evaluating %s (%d images) with %s, eval crop %s, scales %s%s.',
               settings.split, evaluator.num_images, options.model_variant,
               'auto' if settings.crop_size is None else settings.crop_size,
               list(settings.eval_scales),
               (' + flip' if settings.add_flipped_images else '') +
               (' + CRF %s' % (settings.crf,) if settings.crf else '') +
               (', quantised graph (8-bit fake quantisation)'
                if settings.quantize else ''))
  tf.io.gfile.makedirs(FLAGS.eval_logdir)
  writer = tf.summary.create_file_writer(FLAGS.eval_logdir)
  results = []
  for prefix in watch.checkpoints_to_evaluate(
      FLAGS.checkpoint_dir, interval_secs=FLAGS.eval_interval_secs,
      max_evaluations=FLAGS.max_number_of_evaluations,
      timeout_secs=FLAGS.eval_timeout_secs, log=logging.info):
    logging.info('Evaluating checkpoint %s', prefix)
    result = evaluator.evaluate(
        prefix, progress=_progress_logger(max(1, FLAGS.log_every_n_images)))
    paths = report.write_files(result, FLAGS.eval_logdir)
    report.write_summaries(result, writer)
    print(report.summary_line(result), flush=True)
    logging.info('Wrote %s', ', '.join(sorted(paths.values())))
    results.append(result)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  logging.set_verbosity(logging.INFO)
  try:
    evaluate_from_flags()
  except (DeeplabError, ValueError) as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  return 0


def run():
  flags.mark_flags_as_required(['checkpoint_dir', 'eval_logdir',
                                'dataset_dir'])
  app.run(main)


if __name__ == '__main__':
  run()
