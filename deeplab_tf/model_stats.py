r"""Parameter and multiply-add counts of a DeepLab model, from the original flags.

Usage:
  python -m deeplab_tf.model_stats --model_variant=xception_65 \
      --atrous_rates=6 --atrous_rates=12 --atrous_rates=18 \
      --output_stride=16 --decoder_output_stride=4 --crop_size=513,513 \
      --num_classes=21

Prints one JSON line. ``multiply_adds`` counts convolutions (regular and
depthwise) and matmuls, kernel taps times output positions, as the model zoo
and the TF profiler count them (float ops / 2; biases, BatchNorm, resizes and
pooling are not counted).
"""
import json
import sys

import numpy as np
from absl import app
from absl import flags

from deeplab_tf.config import model_flags

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
flags.DEFINE_list('crop_size', '513,513', 'Input size "height,width".')
flags.DEFINE_boolean('per_layer', False,
                     'Also print one JSON line per counted layer call.')


def conv_multiply_adds(model):
  """[(layer name, multiply-adds)] for every call of a conv/dense layer."""
  import keras  # pylint: disable=g-import-not-at-top
  rows = []
  for layer in model.layers:
    if isinstance(layer, keras.layers.DepthwiseConv2D):
      kernel = layer.kernel.shape  # kh, kw, in, multiplier
      per_position = int(np.prod(kernel))
    elif isinstance(layer, keras.layers.SeparableConv2D):
      # Depthwise then 1x1, both at the output positions (NAS cells).
      per_position = (int(np.prod(layer.depthwise_kernel.shape)) +
                      int(np.prod(layer.pointwise_kernel.shape)))
    elif isinstance(layer, keras.layers.Conv2D):
      per_position = int(np.prod(layer.kernel.shape))
    elif isinstance(layer, keras.layers.Dense):
      per_position = int(np.prod(layer.kernel.shape))
    else:
      continue
    for node in layer._inbound_nodes:  # pylint: disable=protected-access
      for out in node.output_tensors:
        spatial = out.shape[1:-1]
        if any(d is None for d in spatial):
          raise ValueError('Layer %s has a dynamic output size; give '
                           '--crop_size.' % layer.name)
        spatial = _space_to_batch_positions(layer, node, spatial)
        rows.append((layer.name, per_position * int(np.prod(spatial))))
  return rows


def _space_to_batch_positions(layer, node, spatial):
  """The output positions the TF profiler counts for one conv call.

  A dilated conv (or depthwise conv) of the original graph is SpaceToBatchND ->
  conv -> BatchToSpaceND (TF's ``_WithSpaceToBatch``): each spatial dim, with
  its SAME padding ``(k - 1) * rate``, is padded up to a multiple of its rate
  and the un-dilated conv runs on that, so it computes ``rate * ceil(in /
  rate)`` positions (SAME) instead of ``in``. ``spatial`` for the others.
  """
  import keras  # pylint: disable=g-import-not-at-top
  if not isinstance(layer, (keras.layers.Conv2D,
                            keras.layers.DepthwiseConv2D)):
    return spatial
  rates = tuple(layer.dilation_rate)
  if all(r == 1 for r in rates) or len(node.input_tensors) != 1:
    return spatial
  positions = []
  for d_in, k, r in zip(node.input_tensors[0].shape[1:-1],
                        layer.kernel_size, rates):
    pad = (k - 1) * r if layer.padding == 'same' else 0
    padded = d_in + pad + (-(d_in + pad)) % r
    positions.append(r * (padded // r - (k - 1)))
  return positions


def model_stats(model):
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  total = sum(int(np.prod(w.shape)) for w in model.weights)
  rows = conv_multiply_adds(model)
  return {'trainable_params': trainable, 'total_params': total,
          'multiply_adds': sum(m for _, m in rows)}, rows


def main(argv):
  del argv
  from deeplab_tf.models import build_model  # pylint: disable=g-import-not-at-top
  options = model_flags.model_options_from_flags(crop_size=FLAGS.crop_size)
  # BatchNorm trainable as in training, so trainable_params counts gamma/beta.
  model = build_model(options, fine_tune_batch_norm=True)
  stats, rows = model_stats(model)
  stats.update(model_variant=options.model_variant,
               crop_size=list(options.crop_size),
               output_stride=options.output_stride,
               multiply_adds_billions=round(stats['multiply_adds'] / 1e9, 3))
  if FLAGS.per_layer:
    for name, madds in rows:
      print(json.dumps({'layer': name, 'multiply_adds': madds}))
  print(json.dumps(stats, sort_keys=True))
  return 0


def run():
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
