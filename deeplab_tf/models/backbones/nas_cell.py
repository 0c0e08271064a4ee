"""The NAS cell of DeepLab's NAS backbones, and drop path.

A cell in the NASNet / PNASNet family (Zoph et al., CVPR 2018; Liu et al.,
ECCV 2018), as the original ``core/nas_cell.py`` builds it for PNASNet and
Auto-DeepLab (the genotypes are in ``nas_genotypes.py``):

  * base: the cell input gets ReLU -> 1x1 conv -> BN (``1x1``,
    ``beginning_bn``); the input of the cell before is resized (bilinear,
    align_corners) to this cell's size when the widths differ and, when its
    channel count is not the cell's, gets ReLU -> 1x1 conv -> BN
    (``prev_1x1``, ``prev_bn``). These are hidden states 0 and 1;
  * ``comb_iter_i``: two operations (``left``, ``right``) on two hidden
    states, summed into a new state; a stride-2 cell strides only the
    operations that read state 0 or 1;
  * the output concatenates the states the genotype marks unused.

Operations: a separable op is ``k`` times ReLU -> one-scope separable conv
(depthwise + pointwise, variables ``depthwise_weights`` and
``pointwise_weights``; strided: explicit padding + VALID) -> BN; an atrous op
is ReLU -> conv at rate 2 -> BN, or when strided, ReLU -> bilinear resize to
``scale_dimension(size, 0.5)`` -> conv at rate 1 -> BN; a pool is a SAME max
/ average pool (1x1 conv + BN only if the channels differ); ``none`` is the
identity (ReLU -> strided 1x1 conv -> BN when it must stride or change
channels). Every operation but ``none`` ends with drop path.

The original ``nas_arg_scope``: convs without biases, BatchNorm decay 0.9997,
epsilon 1e-3, weights from ``variance_scaling(1/3, FAN_IN, uniform)``, and an
L2 term on every kernel, the depthwise ones of the separable convs included
(``training/regularization.py``).

Drop path (Zoph et al. 2018, Sec. 4; the original ``_apply_drop_path``):
in training, each operation's output is zeroed per example with
probability ``1 - keep`` and otherwise scaled by ``1 / keep``, where

  keep_cell = 1 - (cell_num + 1) / total_num_cells * (1 - drop_path_keep_prob)
  keep      = 1 - min(1, step / total_training_steps) * (1 - keep_cell)

so deeper cells drop more, and the rate ramps up from none at step 0 to its
full value at the last training step. The layers are built with keep 1 (the
identity); the trainer sets the probability, the total steps and the step
counter (``configure_drop_path``), as the original's train.py passes
``nas_training_hyper_parameters``.
"""
import keras
import tensorflow as tf

from deeplab_tf.models import initializers
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.batch_norm import BatchNorm
from deeplab_tf.models.builder import BatchNormParams

# nas_arg_scope as feature_extractor calls it.
NAS_BN = BatchNormParams(epsilon=1e-3, decay=0.9997)
NAS_INIT_FACTOR = 1.0 / 3.0
# The original config(): total_training_steps when train.py passes none.
DEFAULT_TOTAL_TRAINING_STEPS = 500000


def nas_initializer():
  """A fresh ``variance_scaling_initializer(1/3, FAN_IN, uniform=True)``."""
  return initializers.slim_variance_scaling(factor=NAS_INIT_FACTOR,
                                            mode='FAN_IN', uniform=True)


# --- Layers ------------------------------------------------------------------
@keras.saving.register_keras_serializable(package='deeplab_tf')
class ResizeByFactor(keras.layers.Layer):
  """Bilinear (align_corners) resize of the input to ``scale_dimension(size,
  factor)``: the original's ``resize_bilinear(net, [scale_dimension(h, f),
  scale_dimension(w, f)])`` inside the NAS cells and paths."""

  def __init__(self, factor, **kwargs):
    super().__init__(**kwargs)
    self.factor = float(factor)

  def _size(self, shape):
    return tuple(None if d is None else
                 dl_layers.scale_dimension(int(d), self.factor)
                 for d in shape[1:3])

  def call(self, inputs):
    size = self._size(inputs.shape)
    if any(d is None for d in size):
      size = dl_layers.scale_dimension(tf.shape(inputs)[1:3], self.factor)
    return dl_layers.resize_bilinear(inputs, size)

  def compute_output_shape(self, input_shape):
    return (input_shape[0],) + self._size(input_shape) + (input_shape[-1],)

  def get_config(self):
    return dict(super().get_config(), factor=self.factor)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class DropPath(keras.layers.Layer):
  """Drop path on one NAS-cell operation (module docstring), the identity
  outside training or at keep probability 1.

  Args:
    cell_num, total_num_cells: where the cell sits (deeper drops more).
    keep_prob: the original ``drop_path_keep_prob`` (before the per-cell and
      per-step schedules).
    total_training_steps: the step at which the schedule reaches full rate.

  ``training_step``: a callable returning the current training step (the
  trainer's step counter; ``configure_drop_path``). Without one, training
  calls use the schedule's end, ``keep = keep_cell``.
  """

  def __init__(self, cell_num=0, total_num_cells=1, keep_prob=1.0,
               total_training_steps=DEFAULT_TOTAL_TRAINING_STEPS, seed=None,
               **kwargs):
    super().__init__(**kwargs)
    self.cell_num = int(cell_num)
    self.total_num_cells = int(total_num_cells)
    self.keep_prob = float(keep_prob)
    self.total_training_steps = int(total_training_steps)
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)
    # A plain callable (not a variable: Keras would track it as a weight).
    self.training_step = None

  @property
  def cell_keep_prob(self):
    """The keep probability of this cell once the step ramp is complete."""
    ratio = (self.cell_num + 1) / float(self.total_num_cells)
    return 1.0 - ratio * (1.0 - self.keep_prob)

  def call(self, inputs, training=None):
    if not training or self.keep_prob >= 1.0:
      return inputs
    if self.training_step is not None:
      step = tf.cast(self.training_step(), tf.float32)
      ratio = tf.minimum(1.0, step / float(self.total_training_steps))
    else:
      ratio = tf.constant(1.0, tf.float32)
    keep = 1.0 - ratio * (1.0 - self.cell_keep_prob)
    noise_shape = tf.stack([tf.shape(inputs)[0], 1, 1, 1])
    uniform = keras.random.uniform(noise_shape, seed=self.seed_generator,
                                   dtype='float32')
    mask = tf.cast(tf.floor(keep + uniform), inputs.dtype)
    return inputs * tf.cast(1.0 / keep, inputs.dtype) * mask

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return dict(super().get_config(), cell_num=self.cell_num,
                total_num_cells=self.total_num_cells, keep_prob=self.keep_prob,
                total_training_steps=self.total_training_steps, seed=self.seed)


def drop_path_layers(model):
  """The model's DropPath layers (none unless it has a NAS backbone)."""
  return [layer for layer in model.layers if isinstance(layer, DropPath)]


def configure_drop_path(model, keep_prob,
                        total_training_steps=DEFAULT_TOTAL_TRAINING_STEPS,
                        training_step=None):
  """Sets drop path for training, as the original's
  ``nas_training_hyper_parameters``; returns the number of layers set.

  Args:
    keep_prob: ``drop_path_keep_prob`` in (0, 1]; 1 turns drop path off.
    total_training_steps: the original ``training_number_of_steps``.
    training_step: the step counter, a variable (e.g. the optimizer's
      ``iterations``) or a callable returning the step.
  """
  if not 0.0 < keep_prob <= 1.0:
    raise ValueError('drop_path_keep_prob must be in (0, 1]; got %r.'
                     % (keep_prob,))
  if total_training_steps < 1:
    raise ValueError('total_training_steps must be >= 1; got %r.'
                     % (total_training_steps,))
  if training_step is not None and not callable(training_step):
    training_step = _reader(training_step)
  layers = drop_path_layers(model)
  for layer in layers:
    layer.keep_prob = float(keep_prob)
    layer.total_training_steps = int(total_training_steps)
    layer.training_step = training_step
  return len(layers)


def _reader(variable):
  def read():
    return variable
  return read


# --- Building blocks ---------------------------------------------------------
def batch_norm(b, x, scope):
  """slim.batch_norm under its own scope (``<cell>/beginning_bn``, ...).

  NAS BatchNorms sit beside their convs, not inside them, so they are never
  folded (``fold_batch_norm`` folds the heads only).
  """
  layer = b.get(scope, lambda name: BatchNorm(
      momentum=NAS_BN.decay, epsilon=NAS_BN.epsilon,
      train_statistics=b.fine_tune_batch_norm, sync=b.sync_batch_norm,
      name=name))
  return layer(x)


def conv(b, x, scope, filters, kernel_size, stride=1, rate=1):
  """``resnet_utils.conv2d_same`` / ``slim.conv2d`` under nas_arg_scope: no
  bias, no normaliser, no activation; strided convs pad explicitly."""
  return b.conv2d(x, scope, filters, kernel_size, stride=stride, rate=rate,
                  bn=None, activation=None, use_bias=False,
                  explicit_padding=True, weights_initializer=nas_initializer())


def separable_conv(b, x, scope, filters, kernel_size, stride=1):
  """The original ``separable_conv2d_same(regularize_depthwise=True)``: one
  slim.separable_conv2d (one scope, both kernels); a strided one pads
  explicitly and convolves VALID."""
  padding = 'same'
  if stride > 1:
    beg, end = dl_layers.fixed_padding_amounts(kernel_size)
    x = keras.layers.ZeroPadding2D(((beg, end), (beg, end)))(x)
    padding = 'valid'
  layer = b.get(scope, lambda name: keras.layers.SeparableConv2D(
      filters, kernel_size, strides=stride, padding=padding,
      depth_multiplier=1, use_bias=False,
      depthwise_initializer=nas_initializer(),
      pointwise_initializer=nas_initializer(), name=name))
  return layer(x)


def _relu(x):
  return keras.layers.ReLU()(x)


def _kernel_size(operation):
  return int(operation.split('x')[0][-1])


def apply_operation(b, x, operation, stride, from_cell_input, scope,
                    filter_size, drop_path):
  """One operation of a cell (module docstring); ``drop_path`` a DropPath
  factory for this cell."""
  if stride > 1 and not from_cell_input:
    stride = 1
  input_filters = x.shape[-1]
  if 'separable' in operation:
    num_layers = int(operation.split('_')[-1])
    k = _kernel_size(operation)
    for layer_num in range(1, num_layers + 1):
      x = _relu(x)
      x = separable_conv(b, x, '%s/separable_%dx%d_%d' % (scope, k, k,
                                                          layer_num),
                         filter_size, k, stride=stride)
      x = batch_norm(b, x, '%s/bn_sep_%dx%d_%d' % (scope, k, k, layer_num))
      stride = 1
  elif 'atrous' in operation:
    k = _kernel_size(operation)
    x = _relu(x)
    if stride == 2:
      x = ResizeByFactor(0.5)(x)
      x = conv(b, x, '%s/atrous_%dx%d' % (scope, k, k), filter_size, k)
    else:
      x = conv(b, x, '%s/atrous_%dx%d' % (scope, k, k), filter_size, k,
               rate=2)
    x = batch_norm(b, x, '%s/bn_atr_%dx%d' % (scope, k, k))
  elif operation == 'none':
    if stride > 1 or input_filters != filter_size:
      x = _relu(x)
      x = b.conv2d(x, scope + '/1x1', filter_size, 1, stride=stride, bn=None,
                   activation=None, use_bias=False,
                   weights_initializer=nas_initializer())
      x = batch_norm(b, x, scope + '/bn_1')
  elif 'pool' in operation:
    pooling_type = operation.split('_')[0]
    size = int(operation.split('_')[-1].split('x')[0])
    pools = {'avg': keras.layers.AveragePooling2D,
             'max': keras.layers.MaxPooling2D}
    if pooling_type not in pools:
      raise ValueError('Unimplemented pooling type %r in %r.'
                       % (pooling_type, operation))
    x = pools[pooling_type](size, strides=stride, padding='same')(x)
    if input_filters != filter_size:
      x = conv(b, x, scope + '/1x1', filter_size, 1)
      x = batch_norm(b, x, scope + '/bn_1')
  else:
    raise ValueError('Unimplemented NAS operation %r.' % (operation,))
  if operation != 'none':
    x = drop_path()(x)
  return x


def _widths_differ(a, b):
  """The original compares static widths; unknown ones (no crop size) are
  resized at run time, an identity when the sizes agree."""
  wa, wb = a.shape[2], b.shape[2]
  return wa is None or wb is None or wa != wb


def cell_base(b, net, prev_layer, scope, filter_size):
  """Hidden states 0 and 1 (module docstring)."""
  if prev_layer is None:
    prev_layer = net
  else:
    if _widths_differ(net, prev_layer):
      prev_layer = dl_layers.ResizeBilinear()(prev_layer, net)
    if filter_size != prev_layer.shape[-1]:
      prev_layer = _relu(prev_layer)
      prev_layer = conv(b, prev_layer, scope + '/prev_1x1', filter_size, 1)
      prev_layer = batch_norm(b, prev_layer, scope + '/prev_bn')
  net = _relu(net)
  net = conv(b, net, scope + '/1x1', filter_size, 1)
  net = batch_norm(b, net, scope + '/beginning_bn')
  return [net, prev_layer]


def nas_cell(b, net, prev_layer, genotype, scope, filter_size, stride,
             cell_num, total_num_cells):
  """One cell (the original ``NASBaseCell.__call__``); returns its output."""
  def drop_path():
    return DropPath(cell_num=cell_num, total_num_cells=total_num_cells)

  states = cell_base(b, net, prev_layer, scope, filter_size)
  ops, indices = genotype.operations, genotype.hiddenstate_indices
  for i in range(genotype.num_combinations):
    branches = []
    for j, side in ((2 * i, 'left'), (2 * i + 1, 'right')):
      branches.append(apply_operation(
          b, states[indices[j]], ops[j], stride, indices[j] < 2,
          '%s/comb_iter_%d/%s' % (scope, i, side), filter_size, drop_path))
    states.append(keras.layers.Add()(branches))
  unused = [h for h, used in zip(states, genotype.used_hiddenstates)
            if not used]
  if len(unused) == 1:
    return unused[0]
  return keras.layers.Concatenate(axis=3)(unused)
