"""Subprocess body for test_trainer: N logical CPU devices, a few steps, save weights.

Args: num_devices logdir init_ckpt steps global_batch sync(0/1).
"""
import os
import sys

import numpy as np
import tensorflow as tf


def main(num_devices, logdir, init_ckpt, steps, global_batch, sync):
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.trainer import Trainer, TrainSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  from test_trainer import OPTIONS, synthetic_dataset_fn  # pylint: disable=g-import-not-at-top
  strategy = (tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
              if num_devices == 2 else tf.distribute.get_strategy())
  settings = TrainSettings(
      train_logdir=logdir, train_batch_size=global_batch, log_steps=1,
      sync_batch_norm=sync,
      tf_initial_checkpoint=init_ckpt,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=steps))
  trainer = Trainer(OPTIONS, settings, synthetic_dataset_fn(global_batch),
                    strategy)
  metrics = trainer.train()
  np.savez(os.path.join(logdir, 'weights.npz'),
           **{n: v.numpy() for n, v in
              checkpoints.model_variables(trainer.model).items()})
  print('LOSS %.8f' % metrics['total_loss'])


if __name__ == '__main__':
  main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]),
       int(sys.argv[5]), bool(int(sys.argv[6])))
