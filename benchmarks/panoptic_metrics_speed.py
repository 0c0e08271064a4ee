r"""Speed of Panoptic Quality and Parsing Covering on Cityscapes-size maps.

Usage:
  python benchmarks/panoptic_metrics_speed.py [--height=1024] [--width=2048]
      [--num_images=4] [--repeats=3] [--segments=50] [--notf]

Builds ``--num_images`` synthetic panoptic groundtruths (19 Cityscapes-like
categories: 11 stuff bands, thing boxes, a void strip with label 255; about
``--segments`` segments each) and predictions (bands and boxes shifted,
some boxes missed, a few false boxes), then times, per image:

- ``PanopticQuality.compare_and_accumulate`` and
  ``ParsingCovering.compare_and_accumulate`` (numpy, the offline metrics);
- ``StreamingPanopticQuality.update`` / ``StreamingParsingCovering.update``
  (TensorFlow ops, the eval-loop versions; the first call, which traces, is
  not timed).

Prints images/s per metric and one JSON line (with the metric values, which
the numpy and TF versions must share, and the load average).
"""
import json
import os
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_integer('height', 1024, 'Map height.', lower_bound=8)
flags.DEFINE_integer('width', 2048, 'Map width.', lower_bound=8)
flags.DEFINE_integer('num_images', 4, 'Distinct synthetic images.',
                     lower_bound=1)
flags.DEFINE_integer('repeats', 3, 'Passes over the images per timing.',
                     lower_bound=1)
flags.DEFINE_integer('segments', 50, 'About this many segments per image.',
                     lower_bound=12)
flags.DEFINE_bool('tf', True, 'Also time the TensorFlow streaming versions.')
flags.DEFINE_integer('seed', 0, 'Random seed of the synthetic maps.')

NUM_CATEGORIES = 19
STUFF = tuple(range(11))
THINGS = tuple(range(11, 19))
IGNORED = 255
MAX_INSTANCES = 256
OFFSET = 256 * 256


def synthetic_pair(rng, height, width, segments):
  """One groundtruth and prediction: (gt_cat, gt_inst, pred_cat, pred_inst).

  Args:
    rng: numpy Generator.
    height, width: map size.
    segments: about this many segments (8 stuff bands, void, things).

  Returns:
    Four uint16 [height, width] arrays.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  gt_cat = np.zeros([height, width], np.uint16)
  gt_inst = np.zeros([height, width], np.uint16)
  pred_cat = np.zeros_like(gt_cat)
  pred_inst = np.zeros_like(gt_inst)
  # Stuff: horizontal bands; the prediction's borders are a few rows off.
  bands = np.sort(rng.choice(np.arange(1, height), 7, replace=False))
  edges = np.concatenate([[0], bands, [height]])
  stuff = rng.choice(STUFF, 8, replace=False)
  shift = height // 100 + 1
  pred_edges = np.clip(edges + rng.integers(-shift, shift + 1, edges.size), 0,
                       height)
  pred_edges[0], pred_edges[-1] = 0, height
  pred_edges = np.maximum.accumulate(pred_edges)
  for k in range(8):
    gt_cat[edges[k]:edges[k + 1]] = stuff[k]
    pred_cat[pred_edges[k]:pred_edges[k + 1]] = stuff[k]
  # Things: boxes, each its own instance; predictions jittered, some missed.
  next_instance = {c: 1 for c in THINGS}
  for _ in range(segments - 10):
    category = int(rng.choice(THINGS))
    h = int(rng.integers(height // 30 + 1, height // 5 + 2))
    w = int(rng.integers(width // 60 + 1, width // 8 + 2))
    y, x = int(rng.integers(0, height - h)), int(rng.integers(0, width - w))
    instance = next_instance[category] % MAX_INSTANCES
    next_instance[category] += 1
    gt_cat[y:y + h, x:x + w] = category
    gt_inst[y:y + h, x:x + w] = instance
    if rng.random() < 0.1:
      continue                                    # missed
    dy, dx = (int(v) for v in rng.integers(-h // 6 - 1, h // 6 + 2, 2))
    y0, x0 = max(y + dy, 0), max(x + dx, 0)
    pred_cat[y0:y + h + dy, x0:x + w + dx] = category
    pred_inst[y0:y + h + dy, x0:x + w + dx] = instance
  for _ in range(3):                               # false boxes
    y, x = int(rng.integers(0, height - 8)), int(rng.integers(0, width - 8))
    pred_cat[y:y + height // 20 + 4, x:x + width // 40 + 4] = THINGS[0]
    pred_inst[y:y + height // 20 + 4, x:x + width // 40 + 4] = 255
  # Void: the bottom strip (the ego vehicle in Cityscapes).
  gt_cat[height - height // 12:] = IGNORED
  gt_inst[height - height // 12:] = 0
  return gt_cat, gt_inst, pred_cat, pred_inst


def _time(function, images, repeats):
  """Seconds per image of ``function(*image)`` over ``repeats`` passes."""
  start = time.perf_counter()
  for _ in range(repeats):
    for image in images:
      function(*image)
  return (time.perf_counter() - start) / (repeats * len(images))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.panoptic_quality import PanopticQuality  # pylint: disable=g-import-not-at-top
  from deeplab_tf.evaluation.parsing_covering import ParsingCovering  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(FLAGS.seed)
  images = [synthetic_pair(rng, FLAGS.height, FLAGS.width, FLAGS.segments)
            for _ in range(FLAGS.num_images)]
  segment_counts = [len(np.unique(g.astype(np.int64) * MAX_INSTANCES + i))
                    for g, i, _, _ in images]
  record = {'height': FLAGS.height, 'width': FLAGS.width,
            'num_images': FLAGS.num_images, 'repeats': FLAGS.repeats,
            'gt_segments_mean': float(np.mean(segment_counts)),
            'cpu_count': os.cpu_count()}

  metrics = {}
  for name, make in (('pq', lambda: PanopticQuality(
      NUM_CATEGORIES, IGNORED, MAX_INSTANCES, OFFSET)),
                     ('pc', lambda: ParsingCovering(
                         NUM_CATEGORIES, IGNORED, MAX_INSTANCES, OFFSET))):
    metric = make()
    seconds = _time(metric.compare_and_accumulate, images, FLAGS.repeats)
    metrics[name] = metric
    record[name] = metric.result()
    record[name + '_images_per_sec'] = 1.0 / seconds
    print('%s (numpy): %.1f images/s (%.1f ms/image), %s = %.4f' % (
        name.upper(), 1.0 / seconds, 1000 * seconds, name, record[name]))

  if FLAGS.tf:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from deeplab_tf.evaluation import streaming_panoptic  # pylint: disable=g-import-not-at-top
    record['tf_device'] = ('GPU' if tf.config.list_physical_devices('GPU')
                           else 'CPU')
    for name, cls in (('pq', streaming_panoptic.StreamingPanopticQuality),
                      ('pc', streaming_panoptic.StreamingParsingCovering)):
      metric = cls(num_classes=NUM_CATEGORIES,
                   max_instances_per_category=MAX_INSTANCES,
                   ignored_label=IGNORED, offset=OFFSET)
      tensors = [tuple(tf.constant(a) for a in image) for image in images]
      metric.update(*tensors[0]).numpy()           # traces
      metric.reset()

      def update(*image, metric=metric):
        # .numpy() waits for the result (the update may run on a GPU).
        metric.update(*image).numpy()

      seconds = _time(update, tensors, FLAGS.repeats)
      numpy_metric = metric.to_metric()
      record['tf_' + name] = numpy_metric.result()
      record['tf_%s_images_per_sec' % name] = 1.0 / seconds
      print('%s (TF streaming, %s): %.1f images/s (%.1f ms/image), %s = %.4f'
            % (name.upper(), record['tf_device'], 1.0 / seconds,
               1000 * seconds, name, record['tf_' + name]))
  try:
    record['loadavg'] = open('/proc/loadavg').read().split()[:3]
  except OSError:
    record['loadavg'] = None
  print(json.dumps(record, sort_keys=True))


if __name__ == '__main__':
  app.run(main)
