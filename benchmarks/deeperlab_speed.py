r"""Frames per second of the DeeperLab parser (network only) on this machine.

Usage:
  python benchmarks/deeperlab_speed.py [--sizes=1441:2,721:3,513:5]
      [--model_variant=wider_mobilenet_v2] [--depth_multiplier=1.0]
      [--num_classes=66] [--warmup=1]

``--sizes`` lists ``side:repeats`` pairs: a square input of that side is run
``repeats`` times after ``--warmup`` untimed calls (the first traces). The
model has random weights and runs inside ``tf.function`` in inference mode;
the five head outputs (stride 4) are computed, grouping and fusion are not.
1441 x 1441 is the paper's input (arXiv:1902.05093, Sec. 4; its abstract
reports 22.6 fps on GPU for the fast setting, 3 fps for the accurate one);
the default uses few repeats at that size to stay within minutes on a CPU.

Prints fps per size and one JSON line with the load average.
"""
import json
import os
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_list('sizes', ['1441:2', '721:3', '513:5'],
                  'side:repeats pairs (square inputs).')
flags.DEFINE_string('model_variant', 'wider_mobilenet_v2',
                    'wider_mobilenet_v2 or xception_71.')
flags.DEFINE_float('depth_multiplier', 1.0, 'Backbone depth multiplier.')
flags.DEFINE_integer('num_classes', 66, 'Semantic classes (Mapillary: 66).')
flags.DEFINE_integer('warmup', 1, 'Untimed calls per size.', lower_bound=1)


def parse_sizes(values):
  """['1441:2', '513'] -> [(1441, 2), (513, 1)]."""
  sizes = []
  for value in values:
    side, _, repeats = str(value).partition(':')
    sizes.append((int(side), int(repeats or 1)))
    if sizes[-1][0] < 17 or sizes[-1][1] < 1:
      raise ValueError('a size must be side >= 17 with repeats >= 1; got %r.'
                       % (value,))
  return sizes


def measure(sizes, model_variant='wider_mobilenet_v2', depth_multiplier=1.0,
            num_classes=66, warmup=1):
  """{side: {'fps', 'seconds', 'repeats', 'output_size'}} for square inputs."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import deeperlab  # pylint: disable=g-import-not-at-top

  model = deeperlab.build_deeperlab(deeperlab.DeeperLabOptions(
      model_variant=model_variant, num_classes=num_classes,
      depth_multiplier=depth_multiplier))
  run = tf.function(lambda x: model(x, training=False))
  results = {}
  for side, repeats in sizes:
    images = tf.constant(np.random.RandomState(side).uniform(
        0, 255, (1, side, side, 3)).astype(np.float32))
    for _ in range(warmup):
      outputs = run(images)
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      outputs = run(images)
      _ = outputs['semantic'].numpy()
      times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    results[side] = {'fps': 1.0 / seconds, 'seconds': seconds,
                     'repeats': repeats,
                     'output_size': list(outputs['semantic'].shape[1:3])}
  return results


def main(argv):
  del argv
  sizes = parse_sizes(FLAGS.sizes)
  results = measure(sizes, FLAGS.model_variant, FLAGS.depth_multiplier,
                    FLAGS.num_classes, FLAGS.warmup)
  for side, r in results.items():
    print('%s %dx%d: %.3f fps (%.2f s/frame, median of %d; heads at %s)'
          % (FLAGS.model_variant, side, side, r['fps'], r['seconds'],
             r['repeats'], r['output_size']))
  print(json.dumps({
      'benchmark': 'deeperlab_speed', 'model_variant': FLAGS.model_variant,
      'depth_multiplier': FLAGS.depth_multiplier,
      'num_classes': FLAGS.num_classes,
      'fps': {str(s): round(r['fps'], 4) for s, r in results.items()},
      'seconds': {str(s): round(r['seconds'], 4) for s, r in results.items()},
      'cpu_count': os.cpu_count(), 'loadavg': list(os.getloadavg())}))


if __name__ == '__main__':
  app.run(main)
