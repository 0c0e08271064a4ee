"""BatchNorm as the original DeepLab trains it (slim.batch_norm, fused).

The original builds every BatchNorm with ``tf_slim.batch_norm(is_training=
is_training and fine_tune_batch_norm, fused=True)`` (``model.py``, the
backbones' arg scopes). What that means, measured on the original graph in
``shared/reference/train`` and kept here:

* **statistics trained** (phase 1, ``fine_tune_batch_norm=True``): the fused
  kernel normalises with the biased batch variance, and the moving variance
  is updated with the *Bessel-corrected* one, ``n / (n - 1)`` larger
  (``moving -= (moving - batch) * float32(1 - decay)``). Keras'
  BatchNormalization uses the biased variance for both.
* **statistics frozen** (phase 2, ``fine_tune_batch_norm=False``): inference
  mode, the moving statistics are used and never change, but gamma and beta
  are still trainable variables and get SGD updates. Keras' usual way of
  freezing (``trainable=False``) would freeze them too.
* **several replicas** (model_deploy clones): each replica normalises with
  the statistics of its own sub-batch, and the moving averages take the first
  replica's update only (train.py runs the update ops of clone 0). The moving
  statistics are created with ``ONLY_FIRST_REPLICA`` aggregation for that.
  ``sync=True`` (``--sync_batch_norm``, not in the original) normalises with
  the statistics of the global batch instead, for small per-replica batches.
  ``ONLY_FIRST_REPLICA`` picks each worker's first local replica, so with
  several workers the first replica's statistics are broadcast to all
  replicas first (one all-reduce), and every worker keeps the same averages.

``trainable=False`` (set by ``--trainable_scopes`` on layers outside the
scopes) still freezes the whole layer, as in Keras.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package='deeplab_tf')
class BatchNorm(keras.layers.BatchNormalization):
  """slim.batch_norm(scale=True, center=True, fused=True) with the original update.

  Args:
    momentum: the moving-average decay (slim ``decay``).
    epsilon: added to the variance.
    train_statistics: True: in training, normalise with batch statistics and
      update the moving ones (the original ``is_training and
      fine_tune_batch_norm``); False: always the moving statistics, which
      then never change (gamma and beta still train).
    sync: with several replicas, normalise with the statistics of the global
      batch (all-reduced) instead of each replica's own.
  """

  def __init__(self, momentum=0.9997, epsilon=1e-3, train_statistics=True,
               sync=False, **kwargs):
    kwargs.setdefault('center', True)
    kwargs.setdefault('scale', True)
    super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)
    self.train_statistics = bool(train_statistics)
    self.sync = bool(sync)

  def build(self, input_shape):
    channels = (int(input_shape[-1]),)
    self.gamma = self.add_weight(
        shape=channels, name='gamma', initializer=self.gamma_initializer,
        trainable=True, autocast=False)
    self.beta = self.add_weight(
        shape=channels, name='beta', initializer=self.beta_initializer,
        trainable=True, autocast=False)
    # ONLY_FIRST_REPLICA: under tf.distribute the assignment each replica
    # makes is replaced by the first replica's (the original updates the
    # moving averages from clone 0).
    self.moving_mean = self.add_weight(
        shape=channels, name='moving_mean',
        initializer=self.moving_mean_initializer, trainable=False,
        autocast=False, aggregation='only_first_replica')
    self.moving_variance = self.add_weight(
        shape=channels, name='moving_variance',
        initializer=self.moving_variance_initializer, trainable=False,
        autocast=False, aggregation='only_first_replica')
    self._reduction_axes = list(range(len(input_shape) - 1))
    self.built = True

  def uses_batch_statistics(self, training):
    return bool(training) and self.trainable and self.train_statistics

  def call(self, inputs, training=None, mask=None):
    if mask is not None:
      raise ValueError('%s: masked BatchNorm is not supported.' % self.name)
    out_dtype = inputs.dtype
    x = tf.cast(inputs, tf.float32)
    shape = tf.shape(x)
    rank = x.shape.rank
    if rank != 4:
      # The fused kernel wants NHWC; every axis but the channel one is a
      # batch axis for the statistics, so fold them into N.
      x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
    if self.uses_batch_statistics(training):
      y = self._train(x)
    else:
      y = tf.raw_ops.FusedBatchNormV3(
          x=x, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
          variance=self.moving_variance, epsilon=self.epsilon,
          data_format='NHWC', is_training=False)[0]
    if rank != 4:
      y = tf.reshape(y, shape)
    return tf.cast(y, out_dtype)

  def _train(self, x):
    ctx = tf.distribute.get_replica_context()
    if self.sync and ctx is not None and ctx.num_replicas_in_sync > 1:
      y, mean, variance = self._global_batch_norm(x, ctx)
    else:
      # Returns the biased batch mean used to normalise and the unbiased
      # (n / (n - 1)) batch variance, as the original's fused op.
      empty = tf.constant([], tf.float32)
      y, mean, variance = tf.raw_ops.FusedBatchNormV3(
          x=x, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
          epsilon=self.epsilon, exponential_avg_factor=1.0,
          data_format='NHWC', is_training=True)[:3]
    if ctx is not None and not self.sync:
      mean = _from_first_replica(mean, ctx)
      variance = _from_first_replica(variance, ctx)
    self._update_moving(self.moving_mean, mean)
    self._update_moving(self.moving_variance, variance)
    return y

  def _update_moving(self, variable, value):
    # tf_keras' _assign_moving_average, which slim.batch_norm reaches: the
    # decay is float32(1 - momentum) computed in Python double first.
    decay = tf.constant(1.0 - self.momentum, tf.float32)
    variable.assign_sub((variable - tf.stop_gradient(value)) * decay)

  def _global_batch_norm(self, x, ctx):
    """Normalisation with the global batch's mean and (biased) variance.

    Two passes around the global mean, so replicas reproduce one device's
    statistics on the same global batch to float rounding. Returns the
    output, the mean and the Bessel-corrected variance for the moving average.
    """
    axes = [0, 1, 2]
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
    count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    mean = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                          tf.reduce_sum(x, axes)) / count
    squares = tf.reduce_sum(tf.square(x - mean), axes)
    variance = ctx.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count
    y = tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma,
                                  self.epsilon)
    unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
    return y, mean, unbiased

  def get_config(self):
    return dict(super().get_config(), train_statistics=self.train_statistics,
                sync=self.sync)


def _from_first_replica(value, ctx):
  """``value`` of global replica 0 on every replica, when there are several workers.

  Within one worker the variables' ONLY_FIRST_REPLICA aggregation already
  takes local replica 0 (global replica 0), with no communication.
  """
  if ctx.num_replicas_in_sync == 1:
    return value
  local = len(getattr(ctx.strategy.extended, 'worker_devices', ()) or ()) or 1
  if ctx.num_replicas_in_sync <= local:
    return value
  first = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), value.dtype)
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value * first)
