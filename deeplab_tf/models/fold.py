"""BatchNorm folding for inference: conv -> BN becomes one conv with a bias.

At inference BatchNorm is an affine map per channel, ``y = gamma * (x - mean)
/ sqrt(var + eps) + beta``, so it folds into the preceding conv's kernel and a
bias. This removes a full pass over every feature map (the original TF1 graph
runs a separate FusedBatchNorm op), at identical outputs up to float rounding.
"""
import numpy as np

from deeplab_tf.models import deeplab


def _folded_weights(conv_layer, bn_layer, epsilon):
  kernel = np.asarray(conv_layer.kernel, np.float64)
  gamma = np.asarray(bn_layer.gamma, np.float64)
  beta = np.asarray(bn_layer.beta, np.float64)
  mean = np.asarray(bn_layer.moving_mean, np.float64)
  var = np.asarray(bn_layer.moving_variance, np.float64)
  scale = gamma / np.sqrt(var + epsilon)
  if kernel.shape[-1] == scale.shape[0] and kernel.ndim == 4 and (
      conv_layer.__class__.__name__ != 'DepthwiseConv2D'):
    kernel = kernel * scale  # per output channel (last axis)
  else:
    # Depthwise [kh, kw, in, 1]: output channel c is input channel c.
    kernel = kernel * scale.reshape(1, 1, -1, 1)
  bias = beta - mean * scale
  return kernel.astype(np.float32), bias.astype(np.float32)


def fold_into(source, folded):
  """Copies ``source`` weights into ``folded`` (same options, built folded)."""
  src = {layer.name: layer for layer in source.layers}
  builder = folded.deeplab_builder
  for layer in folded.layers:
    if not layer.weights:
      continue
    scope = layer.name.replace('.', '/')
    if scope in builder.folded_batch_norms:
      eps = builder.folded_batch_norms[scope].epsilon
      kernel, bias = _folded_weights(src[layer.name],
                                     src[layer.name + '.BatchNorm'], eps)
      layer.set_weights([kernel, bias])
    else:
      layer.set_weights(src[layer.name].get_weights())
  return folded


def folded_predictor(source, eval_scales=(1.0,), add_flipped_images=False):
  """A BN-folded copy of a model built from ``source.deeplab_options``."""
  folded = deeplab.build_predictor(source.deeplab_options,
                                   eval_scales=eval_scales,
                                   add_flipped_images=add_flipped_images,
                                   fold_batch_norm=True)
  return fold_into(source, folded)
