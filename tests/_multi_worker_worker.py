"""Subprocess body for test_multi_worker: one worker of a local cluster, or the reference.

``worker``: a MultiWorkerMirroredStrategy worker (cluster from TF_CONFIG). It
trains as a job that is stopped and resumed: phase 1 stops on the chief's
request after the first step (``stop_after_seconds=0`` on the chief only: the
workers must agree to stop, or the other one would hang in the next step's
all-reduce), then both resume from the chief's checkpoint and train to
STEPS. ``single``: the default strategy, one step on worker 0's half of the
global batch (whose statistics the workers' moving averages must follow).
Each writes its weights (``<out>/<name>_step<N>.npz``) and one ``FACTS`` line.
"""
import json
import os
import sys

import numpy as np
import tensorflow as tf

STEPS = 3
GLOBAL_BATCH = 4


def well_conditioned_batch(seed=0):
  """GLOBAL_BATCH images that differ as wholes (own class layout, colour cast).

  Images that share one layout and differ only by pixel noise give the
  image-pooling branch's BatchNorm (4 pooled vectors) almost nothing but noise
  to normalise, which makes the gradient needlessly sensitive to rounding.
  """
  rng = np.random.default_rng(seed)
  palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.float32)
  labels = np.zeros((GLOBAL_BATCH, 33, 33, 1), np.int32)
  images = np.zeros((GLOBAL_BATCH, 33, 33, 3), np.float32)
  for i in range(GLOBAL_BATCH):
    a, b = np.sort(rng.choice(np.arange(4, 30), 2, replace=False))
    stripes = np.zeros(33, np.int32)
    stripes[a:] = 1
    stripes[b:] = 2
    stripes = rng.permutation(3)[stripes]
    layout = (np.tile(stripes[None, :], (33, 1)) if i % 2 == 0 else
              np.tile(stripes[:, None], (1, 33)))
    labels[i, ..., 0] = layout
    labels[i, :2] = 255
    images[i] = (palette[layout] + rng.uniform(-50, 50, 3) +
                 rng.normal(0, 30, (33, 33, 3)))
  return {'image': np.clip(images, 0, 255).astype(np.float32), 'label': labels}


def dataset_fn(ctx):
  """Every step's global batch is the same 4 images, sharded over the workers.

  So a resumed run (its input pipeline starting over) sees the data an
  uninterrupted one would, and worker k's half of a step is images k, k + 2.
  """
  ds = tf.data.Dataset.from_tensor_slices(well_conditioned_batch())
  ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
  return ds.repeat().batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH),
                           drop_remainder=True)


def first_worker_dataset_fn(ctx):
  """Worker 0's half of every global batch (images 0 and 2), on one device."""
  ds = tf.data.Dataset.from_tensor_slices(well_conditioned_batch())
  ds = ds.shard(2, 0)
  return ds.repeat().batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH // 2),
                           drop_remainder=True)


def main(role, logdir, init_ckpt, out):
  if role == 'worker':
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=120))
  else:
    strategy = tf.distribute.get_strategy()
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.trainer import Trainer, TrainSettings  # pylint: disable=g-import-not-at-top
  from test_trainer import OPTIONS  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  single = role == 'single'
  settings = TrainSettings(
      train_logdir=logdir,
      train_batch_size=GLOBAL_BATCH // 2 if single else GLOBAL_BATCH,
      log_steps=1,
      tf_initial_checkpoint=init_ckpt,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=STEPS))
  trainer = Trainer(OPTIONS, settings,
                    first_worker_dataset_fn if single else dataset_fn, strategy)
  name = ('single' if role == 'single' else
          'worker%d' % strategy.cluster_resolver.task_id)
  facts = {'pid': os.getpid(), 'replicas': strategy.num_replicas_in_sync,
           'chief': trainer.chief}

  def save_weights():
    np.savez(os.path.join(out, '%s_step%d.npz' % (name, trainer.step)),
             **{n: v.numpy() for n, v in
                checkpoints.model_variables(trainer.model).items()})

  if role == 'single':
    facts['init'] = trainer.initialize()
    save_weights()  # step 0: the initial weights
    facts['loss1'] = trainer.train(max_steps=1)['total_loss']
    save_weights()
  else:
    metrics = trainer.train(stop_after_seconds=0 if trainer.chief else None)
    facts['loss1'] = metrics['total_loss']
    facts['phase1_step'] = trainer.step
    save_weights()
    facts['worker_tmp_after_phase1'] = sorted(
        d for d in os.listdir(logdir) if d.startswith('worker_tmp'))
    # Resume: every worker restores the chief's latest checkpoint.
    facts['resume'] = trainer.initialize()
    facts['loss_last'] = trainer.train()['total_loss']
    save_weights()
  facts['step'] = trainer.step
  print('FACTS ' + json.dumps(facts), flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:5])
