r"""CPU inference seconds per 513x513 image (batch 1) for each reference backbone.

Usage:
  python benchmarks/inference.py [--configs=A,B,C] [--repeats=7] [--size=513]

For each configuration (the three reference cases: A xception_65 OS16 +
decoder, B mobilenet_v2 OS8, C resnet_v1_101_beta OS16) it times the
single-scale predictor (``predict_labels``: logits upsampled to the input,
argmax) three ways: a plain Keras call, a ``tf.function``, and a
``tf.function`` of the BatchNorm-folded model. It prints the median of
``--repeats`` runs after two warm-up runs, next to the original TF1 graph's
time measured on the same 2-vCPU machine (shared/reference README), and one
JSON line per configuration. The machine must be otherwise idle.
"""
import json
import statistics
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list('configs', ['A', 'B', 'C'],
                  'Configurations to time: A, B, C (the reference cases), '
                  'xception_41, xception_71, resnet_v1_50_beta, '
                  'mobilenet_v2_os16, mobilenet_v3_large_seg, or "all".')
flags.DEFINE_integer('repeats', 7, 'Timed runs per measurement.')
flags.DEFINE_integer('size', 513, 'Input height and width.')
flags.DEFINE_boolean('xla', False, 'Also time tf.function(jit_compile=True).')

CONFIGS = {
    'A': dict(model_variant='xception_65', atrous_rates=(6, 12, 18),
              output_stride=16, decoder_output_stride=(4,)),
    'B': dict(model_variant='mobilenet_v2', output_stride=8),
    'C': dict(model_variant='resnet_v1_101_beta', atrous_rates=(6, 12, 18),
              output_stride=16, multi_grid=(1, 2, 4),
              aspp_with_separable_conv=False),
    # Further backbones (no original timing on this machine).
    'xception_41': dict(model_variant='xception_41', atrous_rates=(6, 12, 18),
                        output_stride=16, decoder_output_stride=(4,)),
    'xception_71': dict(model_variant='xception_71', atrous_rates=(6, 12, 18),
                        output_stride=16, decoder_output_stride=(4,)),
    'resnet_v1_50_beta': dict(model_variant='resnet_v1_50_beta',
                              atrous_rates=(6, 12, 18), output_stride=16,
                              multi_grid=(1, 2, 4)),
    'mobilenet_v2_os16': dict(model_variant='mobilenet_v2', output_stride=16),
    # Model-zoo LR-ASPP settings of the MobileNetV3 segmentation models.
    'mobilenet_v3_large_seg': dict(
        model_variant='mobilenet_v3_large_seg', output_stride=16,
        aspp_with_squeeze_and_excitation=True, aspp_convs_filters=128,
        image_se_uses_qsigmoid=True, image_pooling_stride=(4, 5),
        aspp_with_concat_projection=False, decoder_output_stride=(8,),
        decoder_use_sum_merge=True, decoder_filters=21,
        decoder_output_is_logits=True),
}
# Original TF1 graph, same machine, median of 5 (shared/reference README).
ORIGINAL_TF1_SECONDS = {'A': 1.51, 'B': 0.34, 'C': 2.09}


def _median_seconds(fn, x, repeats):
  for _ in range(2):
    fn(x)['semantic'].numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(x)['semantic'].numpy()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import ModelOptions, build_predictor  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models.fold import folded_predictor  # pylint: disable=g-import-not-at-top
  size = FLAGS.size
  x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
  print('%-22s %-22s %9s %9s %9s %9s %8s' % ('config', 'variant', 'keras', 'tf.func',
                                            'folded', 'TF1 orig', 'speedup'))
  names = list(CONFIGS) if FLAGS.configs == ['all'] else FLAGS.configs
  for name in names:
    if name not in CONFIGS:
      raise app.UsageError('Unknown config %r; known: %s' % (name, ', '.join(CONFIGS)))
    options = ModelOptions(crop_size=(size, size), **CONFIGS[name])
    model = build_predictor(options)
    folded = folded_predictor(model)
    plain = lambda t, m=model: m(t, training=False)
    compiled = tf.function(lambda t, m=model: m(t, training=False))
    compiled_folded = tf.function(lambda t, m=folded: m(t, training=False))
    result = {'config': name, 'model_variant': options.model_variant,
              'size': size,
              'keras_call_s': _median_seconds(plain, x, FLAGS.repeats),
              'tf_function_s': _median_seconds(compiled, x, FLAGS.repeats),
              'folded_tf_function_s': _median_seconds(compiled_folded, x,
                                                      FLAGS.repeats)}
    if FLAGS.xla:
      xla = tf.function(lambda t, m=folded: m(t, training=False),
                        jit_compile=True)
      result['folded_xla_s'] = _median_seconds(xla, x, FLAGS.repeats)
    best = min(v for k, v in result.items() if k.endswith('_s'))
    original = ORIGINAL_TF1_SECONDS.get(name) if size == 513 else None
    result['original_tf1_s'] = original
    result['speedup_vs_original'] = round(original / best, 3) if original else None
    print('%-22s %-22s %9.3f %9.3f %9.3f %9s %8s' % (
        name, options.model_variant, result['keras_call_s'],
        result['tf_function_s'], result['folded_tf_function_s'],
        '%.2f' % original if original else '-',
        '%.2fx' % result['speedup_vs_original'] if original else '-'),
          flush=True)
    print(json.dumps(result, sort_keys=True), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
