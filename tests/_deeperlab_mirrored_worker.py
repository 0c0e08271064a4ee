"""Subprocess body for test_deeperlab_training: DeeperLab on 2 logical CPUs."""
import json
import os
import sys

import tensorflow as tf


def main(logdir, steps):
  # Logical devices must be set before TensorFlow initialises its runtime.
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  from deeplab_tf.models.batch_norm import BatchNorm  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.trainer import Trainer  # pylint: disable=g-import-not-at-top
  from test_deeperlab_training import OPTIONS, panoptic_dataset_fn, settings  # pylint: disable=g-import-not-at-top
  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  trainer = Trainer(OPTIONS, settings(logdir, steps, train_batch_size=4,
                                      sync_batch_norm=True),
                    panoptic_dataset_fn(4), strategy)
  metrics = trainer.train()
  print('RESULT ' + json.dumps({
      'step': trainer.step, 'replicas': strategy.num_replicas_in_sync,
      'sync_batch_norm': all(l.sync for l in trainer.model.layers
                             if isinstance(l, BatchNorm)),
      'metrics': metrics}))


if __name__ == '__main__':
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  main(sys.argv[1], int(sys.argv[2]))
