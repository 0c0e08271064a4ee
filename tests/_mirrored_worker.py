"""Subprocess body for test_trainer: N logical CPU devices, a few steps, save weights."""
import os
import sys

import numpy as np
import tensorflow as tf


def main(num_devices, logdir, init_ckpt, steps):
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  from deeplab_tf.training.trainer import Trainer, TrainSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  from test_trainer import OPTIONS, synthetic_dataset_fn  # pylint: disable=g-import-not-at-top
  strategy = (tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
              if num_devices == 2 else tf.distribute.get_strategy())
  settings = TrainSettings(
      train_logdir=logdir, train_batch_size=4, log_steps=1,
      tf_initial_checkpoint=init_ckpt,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=steps))
  trainer = Trainer(OPTIONS, settings, synthetic_dataset_fn(4), strategy)
  metrics = trainer.train()
  np.savez(os.path.join(logdir, 'weights.npz'),
           *[v.numpy() for v in trainer.model.weights])
  print('LOSS %.8f' % metrics['total_loss'])


if __name__ == '__main__':
  main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
