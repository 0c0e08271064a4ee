r"""Evaluates a DeeperLab checkpoint on panoptic records: PQ, Parsing Covering, mIoU.

  python -m deeplab_tf.eval_deeperlab --checkpoint_dir=workspace/train/deeperlab_fast \
      --dataset=cityscapes --dataset_dir=workspace/records/cityscapes_panoptic \
      --eval_split=val_fine --eval_logdir=workspace/eval/deeperlab_fast \
      [--vis_dir=workspace/vis/deeperlab_fast --max_vis_images=20]

The model is rebuilt from ``model_options.json`` beside the checkpoint (written
by deeplab_tf.train) and restored from the newest checkpoint (or the given
prefix). Images are evaluated whole (each padded to k * 16 + 1 with the mean
pixel and the ignore label, which is not scored), parsed on the host
(``evaluation.deeperlab_inference``) and scored with the original-API
PanopticQuality / ParsingCovering (``evaluation.deeperlab_eval``).

Writes ``<eval_logdir>/panoptic_metrics-<step>.json`` and TensorBoard scalars
``eval/pq``, ``eval/sq``, ``eval/rq``, ``eval/pq_things``, ``eval/pq_stuff``,
``eval/pc`` and ``eval/miou``; prints the PQ and PC tables. With --vis_dir,
``%06d_image.png``, ``%06d_panoptic.png`` (prediction) and
``%06d_panoptic_gt.png`` (instances coloured around their class colour).
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.config import model_flags
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.training.tasks import deeperlab as deeperlab_task

FLAGS = flags.FLAGS
model_flags.define_dataset_flags()
# Resizing at input time, as training (Mapillary: longer side 1441).
model_flags.define_resize_flags()
flags.DEFINE_string('checkpoint_dir', None, 'A DeeperLab train_logdir (its '
                    'newest checkpoint and model_options.json) or a checkpoint '
                    'prefix inside one.')
flags.DEFINE_string('eval_split', 'val_fine', 'Split of panoptic records.')
flags.DEFINE_string('eval_logdir', None, 'Where metrics JSON and TensorBoard '
                    'summaries go (default: <checkpoint_dir>/eval_panoptic).')
flags.DEFINE_integer('eval_batch_size', 1, 'Images per batch.', lower_bound=1)
flags.DEFINE_integer('max_number_of_images', 0, 'Stop after this many images '
                     '(0: the whole split).', lower_bound=0)
model_flags.define_task_flags(deeperlab_task.LAYOUT_FLAGS)
flags.DEFINE_integer('max_instances_per_category', None, 'Original metric '
                     'argument: instance ids must be smaller. Unset: the '
                     'original\'s 256, or the records\' label divisor if '
                     'larger (Cityscapes, Mapillary: 1000).', lower_bound=1)
flags.DEFINE_integer('offset', None, 'Original metric argument: bound on '
                     'segment ids (> num_classes * max_instances_per_category). '
                     'Unset: the original\'s 256 * 256, doubled until it '
                     'exceeds that product.', lower_bound=1)
flags.DEFINE_float('keypoint_radius', 32.0, 'Disk radius R of the targets the '
                   'model was trained with (PersonLab\'s 32; not in the '
                   'DeeperLab paper): normalises votes, bounds snapping.')
flags.DEFINE_float('vote_threshold', 0.01, 'Heatmap probability below which a '
                   'pixel does not vote (not in the paper).')
flags.DEFINE_float('peak_threshold', 0.1, 'Minimum normalised Hough score of '
                   'a keypoint (not in the paper).')
flags.DEFINE_integer('nms_radius', 3, 'Keypoints of one type closer than this '
                     'are merged (not in the paper).', lower_bound=0)
flags.DEFINE_string('vis_dir', None, 'Also write panoptic pictures here.')
flags.DEFINE_integer('max_vis_images', 20, 'Pictures written with --vis_dir.',
                     lower_bound=0)


def _prefix_and_logdir(path):
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  prefix = checkpoints.find_checkpoint(path)
  logdir = path if os.path.isdir(path) else os.path.dirname(prefix)
  return prefix, logdir


def load_model(checkpoint_dir):
  """(model, DeeperLabOptions, checkpoint prefix, step, train_logdir)."""
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import deeperlab  # pylint: disable=g-import-not-at-top
  prefix, logdir = _prefix_and_logdir(checkpoint_dir)
  # The one rule of every script (checkpoints.model_options); DeeperLab has
  # no model flags here, so the JSON beside the checkpoint says it all.
  options, source = model_flags.checkpoint_options(
      prefix, None, script_fields=(), families=('deeperlab',))
  logging.info('Model options from %s.', source)
  options = options.replace(crop_size=None)   # whole images of any size
  model = deeperlab.build_deeperlab(options)
  logging.info(checkpoints.restore_model(model, prefix))
  return (model, options, prefix, checkpoints.checkpoint_step(prefix) or 0,
          logdir)


def _vis_writer(vis_dir, limit, colormap):
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf import visualization  # pylint: disable=g-import-not-at-top
  os.makedirs(vis_dir, exist_ok=True)

  def write(index, batch, position, category, instance):
    if index >= limit:
      return
    height = int(batch['height'][position])
    width = int(batch['width'][position])
    image = np.clip(batch['image'][position].numpy()[:height, :width], 0, 255)
    pictures = {
        'image': image.astype(np.uint8),
        'panoptic': visualization.colorize_panoptic(
            category[:height, :width], instance[:height, :width], colormap),
        'panoptic_gt': visualization.colorize_panoptic(
            batch['category'][position].numpy()[:height, :width],
            batch['instance'][position].numpy()[:height, :width], colormap)}
    for name, rgb in pictures.items():
      cv2.imwrite(os.path.join(vis_dir, '%06d_%s.png' % (index, name)),
                  np.ascontiguousarray(rgb[:, :, ::-1]))

  return write


def evaluate_from_flags():
  """Runs the evaluation; returns the PanopticEvalResult."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import panoptic_pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import panoptic_targets  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation import deeperlab_eval  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation import deeperlab_inference  # pylint: disable=g-import-not-at-top
  if not FLAGS.checkpoint_dir or not FLAGS.dataset_dir:
    raise app.UsageError('--checkpoint_dir and --dataset_dir are required.')
  descriptor = datasets_info.get_descriptor(FLAGS.dataset)
  model, options, prefix, step, train_logdir = load_model(
      FLAGS.checkpoint_dir)
  if options.num_classes != descriptor.num_classes:
    raise ValueError('the model predicts %d classes, dataset %r has %d.'
                     % (options.num_classes, descriptor.name,
                        descriptor.num_classes))
  try:
    layout = deeperlab_task.layout_from_flag_values(
        model_flags.task_flag_values(deeperlab_task.LAYOUT_FLAGS), descriptor)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  things = layout.thing_classes
  max_instances, offset = deeperlab_eval.default_id_layout(
      descriptor.num_classes, layout.label_divisor,
      FLAGS.max_instances_per_category)
  offset = FLAGS.offset or offset
  inputs = pipeline.InputSettings(crop_size=None, pad_multiple=16,
                                  model_variant=options.model_options()
                                  .model_variant,
                                  min_resize_value=FLAGS.min_resize_value,
                                  max_resize_value=FLAGS.max_resize_value,
                                  resize_factor=FLAGS.resize_factor)
  targets = panoptic_targets.PanopticTargetSettings(
      thing_classes=things, radius=FLAGS.keypoint_radius,
      ignore_label=descriptor.ignore_label)
  dataset = panoptic_pipeline.build_panoptic_dataset(
      descriptor, FLAGS.eval_split, FLAGS.dataset_dir, inputs, targets,
      batch_size=FLAGS.eval_batch_size, is_training=False, layout=layout)
  settings = deeperlab_eval.PanopticEvalSettings(
      num_classes=descriptor.num_classes, thing_classes=things,
      ignore_label=descriptor.ignore_label,
      max_instances_per_category=max_instances,
      offset=offset,
      inference=deeperlab_inference.InferenceSettings(
          thing_classes=things, radius=FLAGS.keypoint_radius,
          vote_threshold=FLAGS.vote_threshold,
          peak_threshold=FLAGS.peak_threshold, nms_radius=FLAGS.nms_radius))
  evaluator = deeperlab_eval.DeeperLabEvaluator(model, settings)
  on_image = (_vis_writer(FLAGS.vis_dir, FLAGS.max_vis_images,
                          descriptor.label_colours)
              if FLAGS.vis_dir else None)
  total = descriptor.splits_to_sizes.get(FLAGS.eval_split)
  result = evaluator.evaluate(
      dataset, max_images=FLAGS.max_number_of_images or None,
      on_image=on_image, total_images=total)
  logdir = FLAGS.eval_logdir or os.path.join(train_logdir, 'eval_panoptic')
  os.makedirs(logdir, exist_ok=True)
  record = dict(result.to_dict(), checkpoint=prefix, step=step,
                split=FLAGS.eval_split)
  with open(os.path.join(logdir, 'panoptic_metrics-%d.json' % step), 'w') as f:
    json.dump(record, f, indent=1, sort_keys=True)
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default(step=step):
    pq = result.panoptic_quality
    for key in ('pq', 'sq', 'rq'):
      tf.summary.scalar('eval/' + key, pq['All'][key])
    for group in ('Things', 'Stuff'):
      if group in pq:
        tf.summary.scalar('eval/pq_' + group.lower(), pq[group]['pq'])
    tf.summary.scalar('eval/pc', result.pc)
    tf.summary.scalar('eval/miou', result.semantic['miou'])
  writer.flush()
  is_thing = settings.is_thing()
  evaluator.pq.print_detailed_results(is_thing)
  evaluator.pc.print_detailed_results(is_thing)
  print(result.summary(), flush=True)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    evaluate_from_flags()
  except (DeeplabError, ValueError) as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  return 0


def run():
  """Console entry point (setup.py: deeplab-eval-deeperlab)."""
  app.run(main)


if __name__ == '__main__':
  run()
