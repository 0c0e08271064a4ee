r"""Speed and size of panoptic conversion at Mapillary-like resolution.

Usage:
  python benchmarks/panoptic_convert_speed.py [--height=3000] [--width=4000]
      [--segments=150] [--things=100] [--repeats=3]

A synthetic COCO-format annotation (Voronoi cells: ``--segments`` segments,
the first ``--things`` of them thing instances over 5 classes, the others
stuff over 10 classes) is converted as datasets/build_*_panoptic_data.py do,
and each step timed (best of --repeats):

- ``segments_to_maps_s``: segment-id map + segments_info -> (category, instance);
- ``encode_raw_s`` / ``encode_png_s``: the map as raw int32 bytes (deeplab2's
  layout) or as an RGB PNG (``panoptic_png``), with their sizes in MB;
- ``decode_raw_s`` / ``decode_png_s``: ``parse_panoptic_example`` of a record
  with each format (the input pipeline's parsing cost per image; the
  record's image, a flat grey PNG of the same size and cheap to decode, is
  decoded too).

Prints one line per figure and one JSON line.
"""
import json
import os
import sys
import time

from absl import app
from absl import flags

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))

FLAGS = flags.FLAGS
flags.DEFINE_integer('height', 3000, 'Map height.', lower_bound=8)
flags.DEFINE_integer('width', 4000, 'Map width.', lower_bound=8)
flags.DEFINE_integer('segments', 150, 'Segments per image.', lower_bound=2)
flags.DEFINE_integer('things', 100, 'How many of them are thing instances.',
                     lower_bound=0)
flags.DEFINE_integer('repeats', 3, 'Timed runs per step (best kept).',
                     lower_bound=1)


def _best(fn, repeats):
  best, value = float('inf'), None
  for _ in range(repeats):
    start = time.perf_counter()
    value = fn()
    best = min(best, time.perf_counter() - start)
  return best, value


def synthetic_annotation(height, width, segments, things, seed=0):
  """(segment-id map, segments_info, categories) of Voronoi cells."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  small = (max(8, height // 8), max(8, width // 8))
  seeds = rng.uniform((0, 0), small, (segments, 2))
  yy, xx = np.mgrid[:small[0], :small[1]]
  nearest = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 +
                      (xx[..., None] - seeds[:, 1]) ** 2, axis=-1)
  cells = cv2.resize(nearest.astype(np.uint16), (width, height),
                     interpolation=cv2.INTER_NEAREST)
  ids = cells.astype(np.int64) * 3 + 1       # segment ids 1, 4, 7, ...
  categories = ([{'id': c, 'isthing': 1} for c in range(1, 6)] +
                [{'id': c, 'isthing': 0} for c in range(6, 16)])
  areas = np.bincount(cells.ravel(), minlength=segments)
  info = [{'id': int(k * 3 + 1),
           'category_id': int(1 + k % 5) if k < things else int(6 + k % 10),
           'area': int(areas[k]), 'iscrowd': 0} for k in range(segments)]
  return ids, info, categories


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data.convert import coco_panoptic  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import panoptic_records  # pylint: disable=g-import-not-at-top
  ids, info, categories = synthetic_annotation(
      FLAGS.height, FLAGS.width, FLAGS.segments, FLAGS.things)
  mapping = coco_panoptic.category_mapping(categories, 0, 255)
  divisor = 1000
  out = {'height': FLAGS.height, 'width': FLAGS.width,
         'segments': FLAGS.segments, 'things': FLAGS.things}
  out['segments_to_maps_s'], (category, instance) = _best(
      lambda: coco_panoptic.segments_to_maps(ids, info, mapping, divisor),
      FLAGS.repeats)
  panoptic = panoptic_records.encode_panoptic(category, instance, divisor)
  out['encode_raw_s'], raw = _best(
      lambda: panoptic.astype('<i4').tobytes(), FLAGS.repeats)
  out['encode_png_s'], png = _best(
      lambda: panoptic_records.encode_panoptic_png(panoptic), FLAGS.repeats)
  out['raw_mb'] = len(raw) / 1e6
  out['png_mb'] = len(png) / 1e6
  image = tf.io.encode_png(np.full((FLAGS.height, FLAGS.width, 3), 128,
                                   np.uint8)).numpy()
  for fmt in panoptic_records.LABEL_FORMATS:
    serialized = panoptic_records.panoptic_to_example(
        image, 'x', FLAGS.height, FLAGS.width, panoptic,
        label_format=fmt).SerializeToString()
    parse = tf.function(lambda s: panoptic_records.parse_panoptic_example(
        s, divisor)['instance'])
    parse(serialized)          # trace
    key = 'decode_%s_s' % ('raw' if fmt == panoptic_records.RAW_FORMAT
                           else 'png')
    out[key], decoded = _best(lambda: parse(serialized).numpy(),
                              FLAGS.repeats)
    assert (decoded == instance).all(), fmt
  for key, value in out.items():
    print('%-20s %s' % (key, round(value, 4) if isinstance(value, float)
                        else value))
  out['loadavg'] = os.getloadavg()
  print(json.dumps(out))


if __name__ == '__main__':
  app.run(main)
