"""Quantisation-aware DeepLab: the graph ``tf.contrib.quantize`` leaves behind.

The original train.py calls ``create_training_graph(quant_delay=
--quantize_delay_step)`` and eval.py / vis.py / export_model.py call
``create_eval_graph()`` (g3doc/quantize.md; the model zoo's 8-bit
MobileNetV2 models). Both rewrite the slim graph: BatchNorm is folded into the
convolution before it (``fold_batch_norms.py``) and fake-quantisation ops are
inserted (``quantize.py``, ``quant_ops.py``). We build the rewritten graph
directly: ``QuantizingLayerBuilder`` makes every conv of a DeepLab model a
``QuantizedConv2D`` / ``QuantizedDepthwiseConv2D`` that holds what the
rewriter puts under that conv's scope, with the same variable names, so an
8-bit checkpoint of the original loads by name. The rewriter of TF 1.15 (the
last one) is followed; what it does to MobileNetV2 + ASPP + decoder + logits:

* **BatchNorm folding** (``_FoldFusedBatchNorms``). Training with batch
  statistics (``--fine_tune_batch_norm``): the float conv still runs for the
  batch mean / variance (and the moving averages, updated as before); the
  folded weights ``W * gamma / sigma_mv`` (moving variance, read before this
  step's update; ``correction_scale = sigma_b / sigma_mv`` times
  ``gamma / sigma_b``) are quantised, and the conv output is multiplied by
  ``sigma_mv / sigma_b`` (``post_conv_mul``) and given the bias
  ``beta - mu_b * gamma / sigma_b`` (``add_fold``): batch-normalised outputs
  from weights quantised at the moving scale. ``sigma_b`` uses the Bessel
  corrected variance times ``(n_l - 1) / n_l`` with ``n_l`` the size of the
  conv op's own output, which for atrous convs (space-to-batch in TF1) is the
  input padded to a multiple of the rate. ``create_training_graph`` never
  freezes BatchNorm (``freeze_bn_delay=None``). Inference, or BatchNorm
  frozen in training: ``W * gamma / sqrt(moving_var + eps)`` and bias
  ``beta - moving_mean * gamma / sqrt(moving_var + eps)``.
* **weights** (``weights_quant``): per tensor, 8 bits, narrow range
  (levels 1..255), after folding; the range is the last value
  (``LastValueQuantize``): ``[min(W, 0), max(W, 0)]`` assigned every training
  step, the stored variables at inference. Initial -6 / 6.
* **activations** (``act_quant``): 8 bits, full range, after the conv's
  activation (ReLU6 / ReLU), after MobileNetV2's linear projection (slim's
  ``project_activation_fn=tf.identity`` is the activation there), and after
  the logits' BiasAdd (the final layer). Ranges are exponential moving
  averages (decay 0.999) of ``min(x, 0)`` / ``max(x, 0)``, zero-debiased as
  ``assign_moving_average`` does by default (variables ``min/biased``,
  ``min/local_step``, ... in the training graph only), so the first training
  step takes the batch range; initial 0 / 6. The quantised value of a step
  uses the range updated by that step.
* **residual adds** (``post_activation_bypass_quant``): MobileNetV2's
  ``net + input`` is matched as the post-activation bypass of the projection
  before it and quantised under the block scope
  (``expanded_conv_2/post_activation_bypass_quant``), EMA ranges, initial
  -6 / 6. No ``conv_quant`` / ``add_quant``: the projection's Identity makes
  the bypass an "activation" in the rewriter's patterns.
* **not quantised**: the image input, resizes, average pooling, concat
  (TFLite propagates or requantises those ranges), biases (32 bit at
  inference).
* **quant_delay** (``--quantize_delay_step`` N > 0): a variable
  ``fake_quantization_step`` counts training steps; before the N-th step the
  fake-quant ops are bypassed (``delayed_quant``) while every range is still
  collected. ``quant_delay`` 0 (quantize.md's fine-tuning): quantised from the
  first step, no step variable. The inference graph is always quantised.

Variable names (original scope, as in the checkpoint): ``<conv
scope>/weights_quant/{min,max}``, ``<conv scope>/act_quant/{min,max}`` (+
``/biased``, ``/local_step`` for each in training), ``MobilenetV2/
expanded_conv_<k>/post_activation_bypass_quant/{min,max}`` (+ the same),
``fake_quantization_step``; e.g. ``MobilenetV2/Conv/weights_quant/min``,
``MobilenetV2/expanded_conv_1/depthwise/act_quant/max``,
``aspp0/act_quant/min``, ``logits/semantic/act_quant/max``.

Left out: the rewriter's ``_QuantizeActivationLayers`` also quantises Add /
Mul ops fed by fake-quantised tensors that it finds in the training graph
(with TF >= 1.14's dropout: the concat projection's dropout, training only);
their names follow TF-version op names, and the inference graph has none.

Supported: ``model_variant='mobilenet_v2'`` (the zoo's 8-bit models) with
the DeepLab v3 / v3+ head (ASPP, image pooling, decoder), one input scale,
one replica, as the original (``num_clones=1``, single-scale inference).

Example:
  >>> from deeplab_tf.models import ModelOptions
  >>> from deeplab_tf.models import quantize
  >>> m = quantize.build_quantized_model(ModelOptions(crop_size=(33, 33)),
  ...                                    quant_delay=0)
  >>> m.output['merged_logits'].shape
  (None, 5, 5, 21)
"""
import keras
import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.models import deeplab
from deeplab_tf.models import validation
from deeplab_tf.models.builder import _fresh
from deeplab_tf.models.builder import LayerBuilder

# quantize_graph.create_training_graph / create_eval_graph defaults.
WEIGHT_BITS = 8
ACTIVATION_BITS = 8
EMA_DECAY = 0.999
# Scopes the rewriter creates (quantize.py).
WEIGHTS_QUANT = 'weights_quant'
ACT_QUANT = 'act_quant'
POST_ACTIVATION_BYPASS_QUANT = 'post_activation_bypass_quant'
QUANTIZATION_STEP = 'fake_quantization_step'   # common.CreateOrGetQuantizationStep
# Initial ranges (_InsertQuantOp: init_min=-6, init_max=6; act_quant init_min=0).
WEIGHTS_INIT_RANGE = (-6.0, 6.0)
ACT_INIT_RANGE = (0.0, 6.0)
BYPASS_INIT_RANGE = (-6.0, 6.0)
# Weight ranges at export: as learned, or widened to a range symmetric around
# zero (int8 TFLite convolutions need weight zero point 0).
WEIGHT_RANGES = ('learned', 'symmetric')
ACTIVATIONS = (None, 'relu', 'relu6')
SUPPORTED_VARIANTS = ('mobilenet_v2',)


class QuantizationError(DeeplabError, ValueError):
  """Model options or settings the quantisation-aware graph cannot have."""


def check_supported(options, num_replicas=1):
  """Refuses what the original rewriter (or this reproduction) does not cover.

  Args:
    options: ModelOptions.
    num_replicas: replicas that would train the model (the original refuses
      ``num_clones > 1``: "Quantization doesn't support multi-clone yet.").

  Raises:
    QuantizationError: naming every reason.
  """
  problems = []
  if num_replicas > 1:
    problems.append("Quantization doesn't support multi-clone yet (%d "
                    'replicas; train the float model on several and '
                    'fine-tune it quantised on one, as quantize.md advises)'
                    % num_replicas)
  if options.model_variant not in SUPPORTED_VARIANTS:
    problems.append('model_variant %r (quantisation-aware graphs are built '
                    'for %s, the model zoo\'s 8-bit models)'
                    % (options.model_variant, ', '.join(SUPPORTED_VARIANTS)))
  if not options.is_deeplab_v3:
    problems.append('meta_architecture %r (only the DeepLab v3 / v3+ head)'
                    % options.meta_architecture)
  if options.image_pyramid and len(options.image_pyramid) > 1:
    problems.append('image_pyramid %s (one input scale)'
                    % list(options.image_pyramid))
  if options.aspp_with_squeeze_and_excitation or options.decoder_output_is_logits:
    problems.append('the LR-ASPP / decoder-logits head of MobileNetV3')
  if getattr(options, 'dense_prediction_cell_config', None):
    problems.append('a Dense Prediction Cell head')
  if not options.aspp_with_batch_norm and len(options.atrous_rates or ()) > 1:
    problems.append('summed logits branches (aspp_with_batch_norm=False with '
                    'several atrous_rates)')
  if problems:
    raise QuantizationError('Cannot build the quantisation-aware model: %s.'
                            % '; '.join(problems))


# --- the fake-quant ops (quant_ops.py) ----------------------------------------
def _data_range(x):
  """TFLite needs 0 inside every range: [min(x, 0), max(x, 0)]."""
  return (tf.minimum(tf.reduce_min(x), 0.0), tf.maximum(tf.reduce_max(x), 0.0))


def ema_update(variable, biased, local_step, value, decay=EMA_DECAY):
  """``assign_moving_average(variable, value, decay)`` with zero-debiasing.

  TF1's default (``zero_debias=True``): ``biased`` is the plain EMA started
  at 0, ``local_step`` counts updates and ``variable = biased / (1 -
  decay^t)``, so the first update sets ``variable`` to ``value``. Float32
  arithmetic as TF1 (``1 - decay`` rounded once). Returns the new value.
  """
  one_minus_decay = tf.constant(1.0 - decay, tf.float32)
  new_biased = biased.assign_sub((biased - value) * one_minus_decay)
  new_step = local_step.assign_add(1.0)
  bias_factor = 1.0 - tf.pow(1.0 - one_minus_decay, new_step)
  return variable.assign(new_biased / bias_factor)


def fake_quant(x, low, high, narrow_range):
  """``tf.quantization.fake_quant_with_min_max_vars``, 8 bits, ranges as given."""
  return tf.quantization.fake_quant_with_min_max_vars(
      x, low, high, num_bits=ACTIVATION_BITS if not narrow_range else WEIGHT_BITS,
      narrow_range=narrow_range)


def symmetric_range(low, high):
  """``[-a, a]`` with ``a = max(|low|, |high|)``: zero point 0 (narrow range)."""
  a = tf.maximum(-low, high)
  return -a, a


class _Delay:
  """The quantisation step shared by one model's quantised layers.

  A plain object (not a Keras layer or variable attribute), so that layers
  holding it do not also own its variable; the ``QuantizationStep`` layer
  does.
  """

  def __init__(self, quant_delay):
    self.quant_delay = int(quant_delay)
    self.variable = None

  def active(self):
    """True once the step (counted including this one) reached quant_delay."""
    return tf.greater_equal(self.variable, self.quant_delay)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class QuantizationStep(keras.layers.Layer):
  """``fake_quantization_step``: +1 per training call, identity on its input.

  It is called on the first conv's input, before any quantised layer reads
  the step (common.CreateOrGetQuantizationStep: the incremented value).
  """

  def __init__(self, delay=None, quant_delay=1, **kwargs):
    kwargs.setdefault('name', QUANTIZATION_STEP)
    super().__init__(**kwargs)
    self.delay = delay if delay is not None else _Delay(quant_delay)

  def build(self, input_shape):
    self.step = self.add_weight(name='step', shape=(), dtype='int64',
                                initializer='zeros', trainable=False)
    self.delay.variable = self.step
    self.built = True

  def original_variable_name(self, leaf):
    del leaf
    return QUANTIZATION_STEP   # a top-level variable in the original graph

  def call(self, inputs, training=None):
    if training:
      self.step.assign_add(1)
    return inputs

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return dict(super().get_config(), quant_delay=self.delay.quant_delay)


class _RangeMixin:
  """EMA or last-value ranges and fake quantisation with the rewriter's names."""

  def _add_range(self, prefix, init, ema):
    """``<prefix>/min``, ``<prefix>/max`` (+ EMA state) under the layer's scope.

    Weight names carry the sub-scope with '.' (``act_quant.min.biased``);
    ``variable_names.original_name`` writes it with '/'. An empty prefix
    puts them directly under the layer's scope.
    """
    lead = prefix + '.' if prefix else ''
    low = self.add_weight(name=lead + 'min', shape=(), trainable=False,
                          initializer=keras.initializers.Constant(init[0]),
                          autocast=False)
    high = self.add_weight(name=lead + 'max', shape=(), trainable=False,
                           initializer=keras.initializers.Constant(init[1]),
                           autocast=False)
    state = None
    if ema:   # _zero_debias' shadow variables (float32, as the EMA's)
      state = {}
      for end in ('min', 'max'):
        for leaf in ('biased', 'local_step'):
          state[end + '.' + leaf] = self.add_weight(
              name='%s%s.%s' % (lead, end, leaf), shape=(), dtype='float32',
              initializer='zeros', trainable=False, autocast=False)
    return {'min': low, 'max': high, 'state': state}

  def _quantize(self, x, qrange, training, narrow_range, last_value=False,
                weight_range='learned'):
    """Fake-quantises ``x`` with ``qrange``; updates it in training."""
    if training:
      low, high = _data_range(x)
      if last_value:      # LastValueQuantize: assign the batch range
        low = qrange['min'].assign(low)
        high = qrange['max'].assign(high)
      else:               # MovingAvgQuantize: the zero-debiased EMA
        state = qrange['state']
        low = ema_update(qrange['min'], state['min.biased'],
                         state['min.local_step'], low, self.ema_decay)
        high = ema_update(qrange['max'], state['max.biased'],
                          state['max.local_step'], high, self.ema_decay)
      # The assign ops have no gradient in TF1: ranges are not trained.
      low, high = tf.stop_gradient(low), tf.stop_gradient(high)
    else:
      low = tf.convert_to_tensor(qrange['min'])
      high = tf.convert_to_tensor(qrange['max'])
      if weight_range == 'symmetric':
        low, high = symmetric_range(low, high)
    quantized = fake_quant(x, low, high, narrow_range)
    delay = self._delay
    if training and delay is not None and delay.quant_delay > 0:
      # delayed_quant: the ranges above are collected either way.
      return tf.cond(delay.active(), lambda: quantized, lambda: x)
    return quantized


@keras.saving.register_keras_serializable(package='deeplab_tf')
class ActivationQuant(_RangeMixin, keras.layers.Layer):
  """One ``MovingAvgQuantize`` on its own (the residual adds' bypass quant).

  Named by its scope: the layer ``X.post_activation_bypass_quant`` holds
  ``X/post_activation_bypass_quant/{min,max}``.
  """

  def __init__(self, init_range=BYPASS_INIT_RANGE, is_training=True,
               ema_decay=EMA_DECAY, delay=None, **kwargs):
    super().__init__(**kwargs)
    self.init_range = tuple(float(v) for v in init_range)
    self.is_training = bool(is_training)
    self.ema_decay = float(ema_decay)
    self._delay = delay

  def build(self, input_shape):
    # The layer's name is the scope: weights 'min', 'max', 'min.biased', ...
    self.range = self._add_range('', self.init_range, ema=self.is_training)
    self.built = True

  def call(self, inputs, training=None):
    x = tf.cast(inputs, tf.float32)
    training = bool(training) and self.is_training
    y = self._quantize(x, self.range, training, narrow_range=False)
    return tf.cast(y, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return dict(super().get_config(), init_range=self.init_range,
                is_training=self.is_training, ema_decay=self.ema_decay)


class _FoldedQuantizedConv(_RangeMixin):
  """A conv as the rewriter leaves it: [BN folded] -> quantised weights ->
  conv -> [correction, bias] -> activation -> quantised activation.

  Variables (names under the layer's scope): ``weights`` /
  ``depthwise_weights``, ``biases`` (no BatchNorm), ``BatchNorm/{gamma, beta,
  moving_mean, moving_variance}``, ``weights_quant/{min,max}``,
  ``act_quant/{min,max}`` and, in a training model, their EMA state.
  """

  def _setup(self, batch_norm, activation, is_training, ema_decay, delay):
    if activation not in ACTIVATIONS:
      raise QuantizationError('Quantised convs take activation %s; got %r.'
                              % (ACTIVATIONS, activation))
    # batch_norm: None (a bias instead) or (epsilon, decay, train_statistics).
    self.batch_norm = None if batch_norm is None else (
        float(batch_norm[0]), float(batch_norm[1]), bool(batch_norm[2]))
    self.fused_activation = activation
    self.is_training = bool(is_training)
    self.ema_decay = float(ema_decay)
    self._delay = delay
    # 'symmetric' at int8 TFLite export only (see WEIGHT_RANGES).
    self.weight_range = 'learned'

  def _out_channels(self, input_shape):
    raise NotImplementedError

  def _build_quantization(self, input_shape):
    channels = self._out_channels(input_shape)
    if self.batch_norm is not None:
      def add(name, init, trainable):
        return self.add_weight(
            name='BatchNorm.' + name, shape=(channels,), initializer=init,
            trainable=trainable, autocast=False,
            aggregation='mean' if trainable else 'only_first_replica')
      self.gamma = add('gamma', 'ones', True)
      self.beta = add('beta', 'zeros', True)
      self.moving_mean = add('moving_mean', 'zeros', False)
      self.moving_variance = add('moving_variance', 'ones', False)
    self.weights_range = self._add_range(WEIGHTS_QUANT, WEIGHTS_INIT_RANGE,
                                         ema=False)
    self.act_range = self._add_range(ACT_QUANT, ACT_INIT_RANGE,
                                     ema=self.is_training)

  # --- the conv op, as the subclass' Keras layer computes it ---------------------
  def _conv(self, x, kernel):
    raise NotImplementedError

  def _scale_shape(self, kernel):
    raise NotImplementedError

  def _op_output_size(self, y):
    """Elements per channel of the TF1 conv op's output (see module doc)."""
    shape = tf.shape(y)
    rate = self.dilation_rate
    if max(rate) > 1 and self.padding == 'same':
      height = (shape[1] + rate[0] - 1) // rate[0] * rate[0]
      width = (shape[2] + rate[1] - 1) // rate[1] * rate[1]
      return tf.cast(shape[0] * height * width, tf.float32)
    return tf.cast(shape[0] * shape[1] * shape[2], tf.float32)

  def uses_batch_statistics(self, training):
    return (bool(training) and self.trainable and self.batch_norm is not None
            and self.batch_norm[2])

  def call(self, inputs, training=None):
    x = tf.cast(inputs, tf.float32)
    kernel = tf.cast(self.kernel, tf.float32)
    training = bool(training)
    collect = training and self.is_training
    post_scale, bias = None, None
    if self.batch_norm is not None:
      epsilon = self.batch_norm[0]
      gamma, beta = self.gamma, self.beta
      if self.uses_batch_statistics(training):
        # The float conv the original keeps for the batch statistics.
        z = self._conv(x, kernel)
        mean, biased_variance = tf.nn.moments(z, axes=[0, 1, 2])
        n = tf.cast(tf.reduce_prod(tf.shape(z)[:3]), tf.float32)
        variance = biased_variance * (n / tf.maximum(n - 1.0, 1.0))
        n_op = self._op_output_size(z)
        fold_variance = variance * ((n_op - 1.0) / n_op)
        # BatchNorm_Fold/batch_norm_correction, with the moving variance
        # read before this step's update.
        recip_sigma_mv = tf.math.rsqrt(
            tf.convert_to_tensor(self.moving_variance) + epsilon)
        recip_sigma = tf.math.rsqrt(fold_variance + epsilon)
        correction = recip_sigma_mv / recip_sigma
        multiplier = gamma * recip_sigma
        bias = beta - mean * multiplier
        folded = (tf.reshape(correction, self._scale_shape(kernel)) * kernel
                  ) * tf.reshape(multiplier, self._scale_shape(kernel))
        post_scale = tf.math.reciprocal(correction)
        self._update_moving(self.moving_mean, mean)
        self._update_moving(self.moving_variance, variance)
      else:
        multiplier = gamma * tf.math.rsqrt(
            tf.convert_to_tensor(self.moving_variance) + epsilon)
        bias = beta - tf.convert_to_tensor(self.moving_mean) * multiplier
        folded = kernel * tf.reshape(multiplier, self._scale_shape(kernel))
    else:
      folded = kernel
      if self.use_bias:
        bias = tf.cast(self.bias, tf.float32)
    weights = self._quantize(folded, self.weights_range, collect,
                             narrow_range=True, last_value=True,
                             weight_range=self.weight_range)
    y = self._conv(x, weights)
    if post_scale is not None:
      y = post_scale * y          # post_conv_mul (correction_add adds zeros)
    if bias is not None:
      y = tf.nn.bias_add(y, bias)  # add_fold, or the conv's own BiasAdd
    if self.fused_activation == 'relu6':
      y = tf.nn.relu6(y)
    elif self.fused_activation == 'relu':
      y = tf.nn.relu(y)
    y = self._quantize(y, self.act_range, collect, narrow_range=False)
    return tf.cast(y, self.compute_dtype)

  def _update_moving(self, variable, value):
    # As models.batch_norm.BatchNorm (slim's fused update, decay in float32).
    decay = tf.constant(1.0 - self.batch_norm[1], tf.float32)
    variable.assign_sub((variable - tf.stop_gradient(value)) * decay)

  # Keras' convs save their kernel and bias only: save every variable.
  def save_own_variables(self, store):
    keras.layers.Layer.save_own_variables(self, store)

  def load_own_variables(self, store):
    keras.layers.Layer.load_own_variables(self, store)

  def _quant_config(self):
    return {'batch_norm': self.batch_norm, 'fused_activation':
            self.fused_activation, 'is_training': self.is_training,
            'ema_decay': self.ema_decay}


@keras.saving.register_keras_serializable(package='deeplab_tf')
class QuantizedConv2D(_FoldedQuantizedConv, keras.layers.Conv2D):
  """slim.conv2d [+ BatchNorm] [+ ReLU / ReLU6] after the quantisation rewrite."""

  def __init__(self, filters, kernel_size, batch_norm=None,
               fused_activation=None, is_training=False, ema_decay=EMA_DECAY,
               delay=None, **kwargs):
    kwargs.pop('activation', None)
    super().__init__(filters, kernel_size, **kwargs)
    self._setup(batch_norm, fused_activation, is_training, ema_decay, delay)

  def build(self, input_shape):
    super().build(input_shape)
    self._build_quantization(input_shape)

  def _out_channels(self, input_shape):
    return self.filters

  def _scale_shape(self, kernel):
    return [-1]                   # per output channel: the kernel's last axis

  def _conv(self, x, kernel):
    return tf.nn.conv2d(x, kernel, strides=[1] + list(self.strides) + [1],
                        padding=self.padding.upper(),
                        dilations=[1] + list(self.dilation_rate) + [1])

  def get_config(self):
    config = super().get_config()
    config.update(self._quant_config())
    return config


@keras.saving.register_keras_serializable(package='deeplab_tf')
class QuantizedDepthwiseConv2D(_FoldedQuantizedConv,
                               keras.layers.DepthwiseConv2D):
  """slim.separable_conv2d(num_outputs=None) [+ BatchNorm] [+ activation], rewritten."""

  def __init__(self, kernel_size, batch_norm=None, fused_activation=None,
               is_training=False, ema_decay=EMA_DECAY, delay=None, **kwargs):
    kwargs.pop('activation', None)
    super().__init__(kernel_size, **kwargs)
    self._setup(batch_norm, fused_activation, is_training, ema_decay, delay)

  def build(self, input_shape):
    super().build(input_shape)
    self._build_quantization(input_shape)

  def _out_channels(self, input_shape):
    return int(input_shape[-1]) * self.depth_multiplier

  def _scale_shape(self, kernel):
    # fold_batch_norms' scale_reshape: [in_channels, multiplier].
    return [int(kernel.shape[2]), int(kernel.shape[3])]

  def _conv(self, x, kernel):
    return tf.nn.depthwise_conv2d(
        x, kernel, strides=[1] + list(self.strides) + [1],
        padding=self.padding.upper(), dilations=list(self.dilation_rate))

  def get_config(self):
    config = super().get_config()
    config.update(self._quant_config())
    return config


INPUT_QUANT_TENSOR = 'quantized_input'   # InputQuant's input, for the export


@keras.saving.register_keras_serializable(package='deeplab_tf')
class InputQuant(keras.layers.Layer):
  """Export only: the backbone input quantised to 8 bits over [-1, 1].

  What the original's TFLite conversion assumes of its input array
  (``quantized_input_stats`` mean 127.5, std 127.5 on
  ``MobilenetV2/MobilenetV2/input``); evaluation graphs have no such op.
  """

  def call(self, inputs):
    x = tf.identity(tf.cast(inputs, tf.float32), name=INPUT_QUANT_TENSOR)
    return tf.quantization.fake_quant_with_min_max_args(
        x, min=-1.0, max=1.0, num_bits=ACTIVATION_BITS)

  def compute_output_shape(self, input_shape):
    return input_shape


# --- the builder ---------------------------------------------------------------
class QuantizingLayerBuilder(LayerBuilder):
  """A LayerBuilder whose convs are built as the quantisation rewrite leaves them.

  Args:
    is_training: the training graph (``create_training_graph``: ranges
      collected, EMA state variables) or the inference graph
      (``create_eval_graph``: stored ranges, always quantised).
    quant_delay: training only; > 0 adds ``fake_quantization_step`` and
      bypasses quantisation before that step.
    fine_tune_batch_norm: as LayerBuilder (batch statistics in training).
    batch_norm_decay: overrides every BatchNorm decay (--all_batch_norm_decay).
    quantize_input: export only: quantise the first conv's input (InputQuant).
  """

  def __init__(self, is_training=False, quant_delay=None,
               fine_tune_batch_norm=False, batch_norm_decay=None,
               quantize_input=False):
    super().__init__(fine_tune_batch_norm=fine_tune_batch_norm)
    self.is_training = bool(is_training)
    self.batch_norm_decay = batch_norm_decay
    self.quantize_input = bool(quantize_input)
    self.delay = None
    if self.is_training and quant_delay is not None and quant_delay > 0:
      self.delay = _Delay(quant_delay)
    self._first = True

  def _before_first(self, x):
    if not self._first:
      return x
    self._first = False
    if self.quantize_input:
      x = InputQuant(name='input_quant')(x)
    if self.delay is not None:
      x = QuantizationStep(delay=self.delay, name=QUANTIZATION_STEP)(x)
    return x

  def _batch_norm_setting(self, bn):
    if bn is None:
      return None
    decay = bn.decay if self.batch_norm_decay is None else self.batch_norm_decay
    return (bn.epsilon, decay, self.fine_tune_batch_norm)

  def _check_activation(self, activation, scope):
    if activation not in ACTIVATIONS:
      raise QuantizationError('%s: activation %r has no quantisation-aware '
                              'form here (only ReLU, ReLU6 or none).'
                              % (scope, activation))

  def conv2d(self, x, scope, filters, kernel_size, stride=1, rate=1, bn=None,
             activation=None, use_bias=None, explicit_padding=False,
             weights_initializer=None):
    self._check_activation(activation, scope)
    if use_bias is None:
      use_bias = bn is None
    x = self._before_first(x)
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: QuantizedConv2D(
        filters, kernel_size, strides=stride, dilation_rate=rate,
        padding=padding, use_bias=use_bias and bn is None,
        kernel_initializer=_fresh(weights_initializer),
        bias_initializer='zeros', batch_norm=self._batch_norm_setting(bn),
        fused_activation=activation, is_training=self.is_training,
        delay=self.delay, name=name))
    return layer(x)

  def depthwise_conv2d(self, x, scope, kernel_size, stride=1, rate=1, bn=None,
                       activation=None, explicit_padding=False,
                       weights_initializer=None):
    self._check_activation(activation, scope)
    x = self._before_first(x)
    x, padding = self._pad(x, kernel_size, stride, rate, explicit_padding)
    layer = self.get(scope, lambda name: QuantizedDepthwiseConv2D(
        kernel_size, strides=stride, dilation_rate=rate, padding=padding,
        depth_multiplier=1, use_bias=bn is None,
        depthwise_initializer=_fresh(weights_initializer),
        bias_initializer='zeros', batch_norm=self._batch_norm_setting(bn),
        fused_activation=activation, is_training=self.is_training,
        delay=self.delay, name=name))
    return layer(x)

  def residual(self, net, shortcut, scope):
    """MobileNetV2's ``net + input``, then the post-activation bypass quant."""
    net = super().residual(net, shortcut, scope)
    layer = self.get(scope + '/' + POST_ACTIVATION_BYPASS_QUANT,
                     lambda name: ActivationQuant(
                         init_range=BYPASS_INIT_RANGE,
                         is_training=self.is_training, delay=self.delay,
                         name=name))
    return layer(net)


# --- models --------------------------------------------------------------------
def build_quantized_model(options, quant_delay=0, fine_tune_batch_norm=True,
                          batch_norm_decay=None, name=None):
  """The training model after ``create_training_graph(quant_delay)``.

  Same inputs and outputs as ``deeplab.build_model``; variables as the
  original's rewritten graph (module doc). ``batch_norm_decay`` overrides
  every BatchNorm's decay (--all_batch_norm_decay).
  """
  check_supported(options, tf.distribute.get_strategy().num_replicas_in_sync)
  builder = QuantizingLayerBuilder(
      is_training=True, quant_delay=quant_delay,
      fine_tune_batch_norm=fine_tune_batch_norm,
      batch_norm_decay=batch_norm_decay)
  model = deeplab.build_model(options, builder=builder,
                              name=name or 'deeplab_quantized_' +
                              options.model_variant)
  model.quant_delay = quant_delay
  # The ranges (and EMA state, step) a float initial checkpoint lacks; the
  # loaders of checkpoints/ read both attributes.
  model.quantization_variables = tuple(quantization_variable_names(model))
  model.initial_checkpoint_may_lack = model.quantization_variables
  return model


def build_quantized_predictor(options, eval_scales=(1.0,),
                              add_flipped_images=False, quantize_input=False,
                              name=None):
  """The inference model after ``create_eval_graph()`` (single scale only).

  ``quantize_input`` (export) quantises the backbone input as the TFLite
  conversion assumes.
  """
  if tuple(float(s) for s in eval_scales) != (1.0,) or add_flipped_images:
    raise QuantizationError(
        'Quantize mode is not supported with multi-scale test (eval_scales '
        '%s%s).' % (list(eval_scales), ', flipped' if add_flipped_images
                    else ''))
  check_supported(options)
  validation.validate(options)
  builder = QuantizingLayerBuilder(is_training=False,
                                   quantize_input=quantize_input)
  model = deeplab.build_predictor(options, builder=builder,
                                  name=name or 'deeplab_quantized_predictor_' +
                                  options.model_variant)
  model.quantization_variables = tuple(quantization_variable_names(model))
  return model


def quantized_layers(model):
  """The model's layers that fake-quantise (convs and bypass quants)."""
  return [l for l in model.layers
          if isinstance(l, (_FoldedQuantizedConv, ActivationQuant))]


def set_weight_range(model, mode):
  """'learned' or 'symmetric' weight ranges in ``model``'s inference graph."""
  if mode not in WEIGHT_RANGES:
    raise QuantizationError('weight range must be one of %s; got %r.'
                            % (WEIGHT_RANGES, mode))
  for layer in model.layers:
    if isinstance(layer, _FoldedQuantizedConv):
      layer.weight_range = mode


def quantization_variable_names(model):
  """Original names of the variables the rewrite adds (ranges, EMA state, step)."""
  from deeplab_tf.models.variable_names import model_variables  # pylint: disable=g-import-not-at-top
  marks = ('/%s/' % WEIGHTS_QUANT, '/%s/' % ACT_QUANT,
           '/%s/' % POST_ACTIVATION_BYPASS_QUANT)
  return sorted(n for n in model_variables(model)
                if n == QUANTIZATION_STEP or any(m in n for m in marks))


def is_quantized(model):
  return bool(quantized_layers(model))


def quantization_grid_error(values, low, high, narrow_range=False):
  """Largest distance of ``values`` from the 8-bit grid of ``[low, high]``.

  The grid of ``fake_quant_with_min_max_vars`` after its zero-point nudge
  (quant_ops: scale = (high - low) / (levels - 1), zero point rounded).
  For tests and checks.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  quant_min = 1 if narrow_range else 0
  quant_max = 255
  scale = (high - low) / (quant_max - quant_min)
  zero_point = min(max(round(quant_min - low / scale), quant_min), quant_max)
  nudged_low = (quant_min - zero_point) * scale
  steps = (np.asarray(values, np.float64) - nudged_low) / scale
  return float(np.max(np.abs(steps - np.round(steps))) * scale)

