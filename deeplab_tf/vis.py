r"""Writes a split's predictions as pictures (the original vis.py flags, files).

Usage (PASCAL VOC val with a trained DeepLabv3+ Xception-65):
  python -m deeplab_tf.vis --dataset=pascal_voc_seg --vis_split=val \
      --dataset_dir=workspace/records/pascal_voc_seg \
      --checkpoint_dir=workspace/train/voc_xception65_os16 \
      --vis_logdir=workspace/vis/voc_xception65_os16 \
      --model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 \
      --atrous_rates=18 --output_stride=16 --decoder_output_stride=4 \
      --vis_crop_size=513,513 --max_number_of_iterations=1

For image N of the split (record order) it writes, at the image's original
size, into <vis_logdir>/segmentation_results/: N_image.png, N_prediction.png
(coloured with --colormap_type) and, additions, N_overlay.png (image blended
with the prediction, --overlay_alpha) and N_label.png (coloured ground truth,
when the split has labels); N is %06d. With --also_save_raw_predictions the
label ids go to <vis_logdir>/raw_segmentation_results/<image filename>.png;
for Cityscapes they are mapped from trainIds to labelIds (test server format).

Continuous mode, as the original: every new checkpoint of --checkpoint_dir is
visualised (files overwritten), at most one per --eval_interval_secs, until
--max_number_of_iterations (0: forever) or until the trainer in that folder
has written training_done.json and its last checkpoint was visualised. A
checkpoint prefix instead of a folder is visualised once.

Flag names and defaults are the original vis.py's and common.py's model
flags (--flagfile works); --master accepts only its default (no TF1 session
target); --quantize_delay_step >= 0 visualises the quantisation-aware graph
(single scale, as the original).
"""
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.config import model_flags
from deeplab_tf import visualization
from deeplab_tf.core.errors import DeeplabError

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
model_flags.define_resize_flags()
model_flags.define_dataset_flags()
model_flags.define_checkpoint_loop_flags()
model_flags.define_crf_flags()

# Folders (original vis.py).
flags.DEFINE_string('vis_logdir', None,
                    'Where the pictures are written (segmentation_results/ '
                    'and raw_segmentation_results/ inside).')

# Model evaluation (original vis.py).
flags.DEFINE_integer('vis_batch_size', 1,
                     'Images per batch. Every image is kept whole, padded to '
                     'vis_crop_size.', lower_bound=1)
model_flags.define_crop_size_flag(
    'vis_crop_size',
    'Crop "height,width": every image (after the optional resize) must fit '
    'in it. "auto": whole images of any size, each batch padded to the '
    'smallest k * output_stride + 1 holding it (as eval). The older original '
    'form --vis_crop_size=513 --vis_crop_size=513 works too.')
flags.DEFINE_integer('max_number_of_iterations', 0,
                     'Checkpoints to visualise before stopping; 0 or less '
                     'loops forever, waiting for new checkpoints (as the '
                     'original).')

# Dataset (original vis.py).
flags.DEFINE_string('vis_split', 'val', 'Split to visualise.')

# Output (original vis.py, then additions).
flags.DEFINE_enum('colormap_type', 'pascal',
                  (list(visualization.COLORMAP_NAMES)
                   + [visualization.DATASET_COLORMAP]),
                  'Colours of predictions and labels: a dataset palette, or '
                  '"dataset" for the dataset description\'s own "colormap" '
                  '(custom JSON datasets; else the palette named like the '
                  'dataset, else pascal).')
flags.DEFINE_boolean('also_save_raw_predictions', False,
                     'Also write the predicted label ids as 8-bit PNGs named '
                     'after the image filenames (Cityscapes: trainIds mapped '
                     'to labelIds).')
flags.DEFINE_boolean('save_overlay', True,
                     'Also write %06d_overlay.png: the image blended with the '
                     'coloured prediction (an addition).')
flags.DEFINE_float('overlay_alpha', 0.5,
                   'Weight of the prediction colours in the overlay: 0 shows '
                   'the image only, 1 the colours only.',
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_boolean('save_labels', True,
                     'Also write %06d_label.png, the coloured ground truth, '
                     'when the split has labels (an addition).')


def visualize_from_flags():
  """Checks the inputs, builds the predictor and runs the checkpoint loop."""
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.visualization import vis_lib  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation import watch  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import count_records  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import make_predict_fn  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import build_predictor  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models.deeplab import original_inference_path  # pylint: disable=g-import-not-at-top

  if FLAGS.quantize_delay_step >= 0 and tuple(FLAGS.eval_scales) != (1.0,):
    raise app.UsageError('Quantize mode is not supported with multi-scale '
                         'test (--quantize_delay_step=%d, --eval_scales=%s).'
                         % (FLAGS.quantize_delay_step,
                            ','.join(str(s) for s in FLAGS.eval_scales)))
  # A continuous run may start before the trainer's first checkpoint; a run
  # of one checkpoint may not.
  descriptor = vis_lib.check_inputs(
      FLAGS.dataset, FLAGS.vis_split, FLAGS.dataset_dir, FLAGS.checkpoint_dir,
      wait_for_checkpoint=FLAGS.max_number_of_iterations != 1)
  model_flags.check_script_edge(FLAGS.model_variant, descriptor.num_classes,
                                descriptor.name)
  settings = vis_lib.VisSettings(
      vis_logdir=FLAGS.vis_logdir,
      colormap=vis_lib.colormap_for(FLAGS.colormap_type, descriptor),
      also_save_raw_predictions=FLAGS.also_save_raw_predictions,
      raw_id_table=vis_lib.raw_id_table_for(descriptor.name),
      save_overlay=FLAGS.save_overlay, overlay_alpha=FLAGS.overlay_alpha,
      save_labels=FLAGS.save_labels, min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor)
  if settings.raw_id_table and FLAGS.also_save_raw_predictions:
    logging.info('Cityscapes: raw predictions are mapped from trainIds to '
                 'labelIds.')
  try:
    crop_size = model_flags.parse_crop_size(FLAGS.vis_crop_size,
                                            'vis_crop_size')
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  options, source = model_flags.checkpoint_options(
      FLAGS.checkpoint_dir,
      model_flags.model_options_from_flags(
          crop_size=crop_size, num_classes=descriptor.num_classes),
      script_fields=('crop_size', 'outputs_to_num_classes'))
  logging.info('Model options from %s.', source)
  inputs = pipeline.InputSettings(
      crop_size=options.crop_size, model_variant=options.model_variant,
      pad_multiple=options.output_stride,
      keep_original_image=True, min_resize_value=FLAGS.min_resize_value,
      max_resize_value=FLAGS.max_resize_value,
      resize_factor=FLAGS.resize_factor)
  # Eval reads records in a fixed order: image N is the same image for
  # every checkpoint.
  dataset = pipeline.build_dataset(
      descriptor, FLAGS.vis_split, FLAGS.dataset_dir, inputs,
      batch_size=FLAGS.vis_batch_size, is_training=False)
  # As the original vis.py: scales (1.0,) take the single-scale path,
  # which ignores --add_flipped_images.
  model_flags.warn_if_flip_ignored(FLAGS.eval_scales, FLAGS.add_flipped_images)
  eval_scales, flip = original_inference_path(FLAGS.eval_scales,
                                              FLAGS.add_flipped_images)
  if FLAGS.quantize_delay_step >= 0:
    # The original's create_eval_graph(): the quantisation-aware graph.
    from deeplab_tf.models import quantize  # pylint: disable=g-import-not-at-top
    predictor = quantize.build_quantized_predictor(options)
  else:
    predictor = build_predictor(options, eval_scales=eval_scales,
                                add_flipped_images=flip)
  predict_fn = make_predict_fn(predictor, model_flags.crf_params_from_flags())
  total = count_records(FLAGS.dataset_dir, FLAGS.vis_split)
  logging.info('Visualising split %r of %s (%d images) into %s',
               FLAGS.vis_split, descriptor.name, total, FLAGS.vis_logdir)

  visualised = 0
  for checkpoint in watch.checkpoints_to_evaluate(
      FLAGS.checkpoint_dir, interval_secs=FLAGS.eval_interval_secs,
      max_evaluations=max(0, FLAGS.max_number_of_iterations),
      log=logging.info):
    logging.info('Visualising checkpoint %s', checkpoint)
    count = vis_lib.visualize_checkpoint(
        predictor, checkpoint, dataset, settings, predict_fn=predict_fn,
        total=total, log=logging.info)
    visualised += 1
    print('visualised %d images of split %s with %s into %s'
          % (count, FLAGS.vis_split, checkpoint, settings.save_dir))
    sys.stdout.flush()
  return visualised


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  try:
    visualize_from_flags()
  except (DeeplabError, FileNotFoundError) as e:
    print('ERROR: %s' % e, file=sys.stderr)
    return 1
  except tf.errors.InvalidArgumentError as e:
    # A bad record (image larger than the crop, label out of range): the
    # pipeline's assertion names the file; the rest is tf.data's wrapping.
    _, found, words = e.message.partition('assertion failed: ')
    print('ERROR: %s' % (words.split('\n')[0] if found else e.message),
          file=sys.stderr)
    return 1
  return 0


def run():
  flags.mark_flags_as_required(['vis_logdir', 'checkpoint_dir', 'dataset_dir'])
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
