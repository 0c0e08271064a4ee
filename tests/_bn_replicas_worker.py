"""Subprocess body for test_batch_norm: BatchNorm on 2 logical CPUs vs one device.

Prints ``RESULT {json}`` with the largest differences between each replica's
output and a single-device run on its half batch (per-replica statistics),
or on the whole batch (sync), and between the moving statistics and the
single-device updates.
"""
import json
import sys

import numpy as np
import tensorflow as tf


def main():
  cpus = tf.config.list_physical_devices('CPU')
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  from deeplab_tf.models.batch_norm import BatchNorm  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = (3.0 * rng.standard_normal((4, 5, 5, 3)) + 1.0).astype(np.float32)
  halves = [x[:2], x[2:]]

  def single(inputs):
    layer = BatchNorm(momentum=0.9, epsilon=1e-3)
    out = layer(tf.constant(inputs), training=True).numpy()
    return out, layer.moving_mean.numpy(), layer.moving_variance.numpy()

  strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
  result = {'replicas': strategy.num_replicas_in_sync}
  for sync in (False, True):
    with strategy.scope():
      layer = BatchNorm(momentum=0.9, epsilon=1e-3, sync=sync)
      layer.build((None, 5, 5, 3))
    inputs = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(halves[ctx.replica_id_in_sync_group]))

    @tf.function
    def step(batch, layer=layer):
      return layer(batch, training=True)
    outs = [t.numpy() for t in strategy.experimental_local_results(
        strategy.run(step, args=(inputs,)))]
    mean = layer.moving_mean.numpy()
    variance = layer.moving_variance.numpy()
    if sync:
      ref_out, ref_mean, ref_var = single(x)
      out_gap = float(np.abs(np.concatenate(outs) - ref_out).max())
    else:
      refs = [single(h) for h in halves]
      out_gap = max(float(np.abs(o - r[0]).max()) for o, r in zip(outs, refs))
      ref_out, ref_mean, ref_var = refs[0]
      second_mean = refs[1][1]
      result['second_replica_mean_gap'] = float(
          np.abs(mean - second_mean).max())
    key = 'sync' if sync else 'per_replica'
    result[key] = {'output_gap': out_gap,
                   'moving_mean_gap': float(np.abs(mean - ref_mean).max()),
                   'moving_variance_gap': float(np.abs(variance - ref_var).max())}
  # How far apart the per-replica and global statistics are (the test's
  # evidence that the comparison can tell them apart).
  _, global_mean, _ = single(x)
  _, half_mean, _ = single(halves[0])
  result['global_vs_first_half_mean'] = float(np.abs(global_mean - half_mean).max())
  print('RESULT ' + json.dumps(result))


if __name__ == '__main__':
  sys.exit(main())
