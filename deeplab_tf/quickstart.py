r"""The quickstart: a short real training and evaluation on the embedded dataset.

Usage:
  python -m deeplab_tf.quickstart [--workdir=workspace/quickstart] [--steps=300]

1. Generates the embedded quickstart dataset (procedural scenes, 6 classes,
   seeded; ``deeplab_tf.data.quickstart``) as TFRecords in the original
   schema, unless an identical copy is already there.
2. Trains DeepLabv3+ MobileNetV2 (output stride 16, decoder at stride 4) from
   scratch with the original recipe (poly learning rate, momentum, random
   scale 0.5-2.0, crop, flip, BatchNorm trained), writing checkpoints and
   TensorBoard logs to ``<workdir>/train``. Rerunning resumes.
3. Evaluates the last checkpoint on the val split (whole images, streaming
   confusion matrix, mIoU as the original eval.py) and writes
   ``<workdir>/eval/metrics.json`` and a TensorBoard scalar.

Nothing is downloaded. ``tensorboard --logdir <workdir>`` shows the curves.
"""
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', 'workspace/quickstart',
                    'Folder for records, checkpoints, logs and metrics.')
flags.DEFINE_integer('steps', 300, 'Training steps.')
flags.DEFINE_integer('batch_size', 8, 'Training batch size.')
flags.DEFINE_float('base_learning_rate', 0.02, 'Poly base learning rate.')
flags.DEFINE_float('batch_norm_decay', 0.95,
                   'BatchNorm moving-average decay for this short run (the '
                   'original 0.997/0.9997 needs thousands of steps).')
flags.DEFINE_string('kernel_initializer', 'glorot_uniform',
                    'Keras initializer of every conv kernel for this run from '
                    'scratch (the original\'s, meant for a pretrained '
                    'backbone, reach a lower mIoU in 300 steps); empty: the '
                    'original\'s.')
flags.DEFINE_integer('num_train', 300, 'Generated training images.')
flags.DEFINE_integer('num_val', 60, 'Generated validation images.')

CROP = (97, 129)  # k * 16 + 1 around the 96x128 scenes


def model_options(num_classes):
  from deeplab_tf.models import ModelOptions  # pylint: disable=g-import-not-at-top
  return ModelOptions(model_variant='mobilenet_v2', crop_size=CROP,
                      output_stride=16, decoder_output_stride=(4,),
                      outputs_to_num_classes={'semantic': num_classes})


def main(argv):
  del argv
  logging.set_verbosity(logging.INFO)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import quickstart as quickstart_data  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.evaluate import evaluate_checkpoint  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  record_dir = os.path.join(FLAGS.workdir, 'records')
  train_dir = os.path.join(FLAGS.workdir, 'train')
  eval_dir = os.path.join(FLAGS.workdir, 'eval')
  start = time.time()
  descriptor = quickstart_data.ensure_quickstart(
      record_dir, num_train=FLAGS.num_train, num_val=FLAGS.num_val)
  print('[1/3] quickstart records in %s (%.1f s)' % (record_dir,
                                                     time.time() - start),
        flush=True)
  options = model_options(descriptor.num_classes)
  settings = trainer_lib.TrainSettings(
      train_logdir=train_dir, train_batch_size=FLAGS.batch_size,
      learning_rate=LearningRateSettings(
          base_learning_rate=FLAGS.base_learning_rate,
          training_number_of_steps=FLAGS.steps),
      log_steps=20, save_interval_secs=60, save_summaries_secs=30,
      save_summaries_images=True, colormap=descriptor.label_colours,
      batch_norm_decay=FLAGS.batch_norm_decay,
      kernel_initializer=FLAGS.kernel_initializer or None)
  inputs = pipeline.InputSettings(crop_size=CROP,
                                  model_variant=options.model_variant)

  def dataset_fn(ctx):
    return pipeline.build_dataset(
        descriptor, 'train', record_dir, inputs,
        batch_size=ctx.get_per_replica_batch_size(FLAGS.batch_size),
        is_training=True, input_context=ctx)

  trainer = trainer_lib.Trainer(options, settings, dataset_fn,
                                ignore_label=descriptor.ignore_label)
  print('[2/3] training %d steps into %s' % (FLAGS.steps, train_dir),
        flush=True)
  trainer.train()
  results = evaluate_checkpoint(options, train_dir, descriptor, record_dir)
  os.makedirs(eval_dir, exist_ok=True)
  with open(os.path.join(eval_dir, 'metrics.json'), 'w') as f:
    json.dump(results, f, indent=1)
  writer = tf.summary.create_file_writer(eval_dir)
  with writer.as_default(step=trainer.step):
    tf.summary.scalar('miou', results['miou'])
    tf.summary.scalar('pixel_accuracy', results['pixel_accuracy'])
  writer.flush()
  names = descriptor.class_names or [str(i) for i in
                                     range(descriptor.num_classes)]
  print('[3/3] val mIoU %.4f, pixel accuracy %.4f on %d images (%s)'
        % (results['miou'], results['pixel_accuracy'], results['num_images'],
           ', '.join('%s %.2f' % (n, v) for n, v in
                     zip(names, results['iou_per_class']) if v is not None)))
  print('checkpoints + TensorBoard logs: %s; metrics: %s; total %.0f s'
        % (train_dir, os.path.join(eval_dir, 'metrics.json'),
           time.time() - start))
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
