r"""Latency of the exported SavedModel per image, with and without BN folding.

Usage:
  python benchmarks/export_latency.py [--variants=mobilenet_v2,xception_65]
      [--size=513] [--repeats=5] [--warmup=2]

For each variant it builds the predictor with random weights (nothing is
downloaded), wraps it in the serving graph of ``deeplab_tf.export``
(mean padding, predict, crop, resize back), saves it as a SavedModel, loads
it back with ``tf.saved_model.load`` and times ``serving_default`` on one
uint8 size x size image: the median of --repeats calls after --warmup
calls. It does so twice, without and with BatchNorm folding
(--fold_batch_norm of the export). Settings: mobilenet_v2 at the export's
default output stride 8 (model-zoo MobileNetV2 VOC settings); xception_65
at output stride 16 with atrous rates 6,12,18 and the decoder at 4 (config A
of benchmarks/inference.py, whose original TF1 graph took 1.51 s on the
reference 2-vCPU machine). Prints a table and one JSON line per variant,
with /proc/loadavg before and after, since the machine may be shared.
"""
import json
import os
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list('variants', ['mobilenet_v2', 'xception_65'],
                  'Variants to time: %s.' % ', '.join(
                      ['mobilenet_v2', 'xception_65']))
flags.DEFINE_integer('size', 513, 'Image height and width (also the crop).')
flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement (median).')
flags.DEFINE_integer('warmup', 2, 'Untimed calls before timing.')
flags.DEFINE_float('depth_multiplier', 1.0,
                   'MobileNetV2 depth multiplier (smaller for smoke tests).')

CONFIGS = {
    'mobilenet_v2': dict(model_variant='mobilenet_v2', output_stride=8),
    'xception_65': dict(model_variant='xception_65', atrous_rates=(6, 12, 18),
                        output_stride=16, decoder_output_stride=(4,)),
}


def _loadavg():
  try:
    with open('/proc/loadavg') as f:
      return f.read().split()[:3]
  except OSError:
    return None


def _median_ms(fn, image, repeats, warmup):
  for _ in range(warmup):
    fn(image=image)['semantic'].numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(image=image)['semantic'].numpy()
    times.append(time.perf_counter() - start)
  return 1000.0 * statistics.median(times)


def _time_export(options, size, fold, image, workdir):
  """(median ms per image, export seconds) of one SavedModel."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import export  # pylint: disable=g-import-not-at-top
  spec = export.PredictorSpec(options, fold_batch_norm=fold)
  settings = export.ServingSettings((size, size))
  crop = export.serving_model_options(options, settings.crop_size).crop_size
  start = time.perf_counter()
  predictor, _ = export.build_and_restore(spec, None, crop)
  module = export.ServingModule(predictor, settings)
  path = os.path.join(workdir, 'folded' if fold else 'plain')
  export.save_serving_module(module, path, any_channels=False)
  export_s = time.perf_counter() - start
  serve = tf.saved_model.load(path).signatures['serving_default']
  return _median_ms(serve, image, FLAGS.repeats, FLAGS.warmup), export_s


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import ModelOptions  # pylint: disable=g-import-not-at-top
  size = FLAGS.size
  image = tf.constant(np.random.default_rng(0).integers(
      0, 256, (1, size, size, 3), dtype=np.uint8))
  print('%-14s %6s %4s %12s %12s %8s %9s' % (
      'variant', 'size', 'OS', 'plain ms', 'folded ms', 'speedup', 'export s'))
  for name in FLAGS.variants:
    if name not in CONFIGS:
      raise app.UsageError('Unknown variant %r; known: %s'
                           % (name, ', '.join(CONFIGS)))
    config = dict(CONFIGS[name])
    if name == 'mobilenet_v2':
      config['depth_multiplier'] = FLAGS.depth_multiplier
    options = ModelOptions(**config)
    load_before = _loadavg()
    with tempfile.TemporaryDirectory() as workdir:
      plain_ms, plain_export_s = _time_export(options, size, False, image,
                                              workdir)
      folded_ms, folded_export_s = _time_export(options, size, True, image,
                                                workdir)
    result = {
        'variant': name, 'size': size, 'output_stride': options.output_stride,
        'depth_multiplier': options.depth_multiplier,
        'repeats': FLAGS.repeats, 'warmup': FLAGS.warmup,
        'saved_model_ms': round(plain_ms, 2),
        'saved_model_folded_ms': round(folded_ms, 2),
        'folding_speedup': round(plain_ms / folded_ms, 3),
        'export_s': {'plain': round(plain_export_s, 1),
                     'folded': round(folded_export_s, 1)},
        'loadavg': {'before': load_before, 'after': _loadavg()},
        'cpu_count': os.cpu_count()}
    print('%-14s %6d %4d %12.1f %12.1f %7.2fx %9.1f' % (
        name, size, options.output_stride, plain_ms, folded_ms,
        result['folding_speedup'], plain_export_s + folded_export_s),
          flush=True)
    print(json.dumps(result, sort_keys=True), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
