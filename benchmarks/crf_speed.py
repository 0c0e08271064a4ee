r"""Speed of the fully connected CRF: seconds per image, ours vs pydensecrf.

Usage:
  python benchmarks/crf_speed.py [--height=321] [--width=481]
      [--num_classes=21] [--num_iterations=10]
      [--preset=deeplab_v2_resnet101_voc] [--repeats=5]
      [--image=PATH] [--camvid_dir=../shared/camvid]

The images are the first --num_images CamVid val pictures resized to height x
width (RGB), or a smooth synthetic one when CamVid is absent; the
probabilities are a softmax of smoothed random logits. Per image, each method
is timed as the best of --repeats runs after one warm-up run, the methods'
runs interleaved (ours, pydensecrf, ours, ...) so that a change in machine
load hits both alike; the figures printed are the medians over the images:

- ``eager``: deeplab_tf.crf.dense_crf_tf called eagerly;
- ``function``: deeplab_tf.crf.dense_crf (a tf.function traced once for all
  sizes; the trace is timed apart as ``first_call_s``);
- ``pydensecrf``: pydensecrf2 when installed, the same unary
  (-log of the clipped probabilities), kernels and weights; its default
  NORMALIZE_SYMMETRIC, so its speed is compared as people run it.

Prints seconds per image and one JSON line (``os.getloadavg()`` included:
the machine may be shared).
"""
import json
import os
import sys
import time

from absl import app
from absl import flags

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _REPO_ROOT)

FLAGS = flags.FLAGS
flags.DEFINE_integer('height', 321, 'Image height.', lower_bound=2)
flags.DEFINE_integer('width', 481, 'Image width.', lower_bound=2)
flags.DEFINE_integer('num_classes', 21, 'Classes.', lower_bound=2)
flags.DEFINE_integer('num_iterations', 10, 'Mean-field iterations.',
                     lower_bound=0)
flags.DEFINE_string('preset', 'deeplab_v2_resnet101_voc', 'CRF preset.')
flags.DEFINE_integer('repeats', 5, 'Timed runs per method (best kept).',
                     lower_bound=1)
flags.DEFINE_string('image', None, 'Image file (default: the first '
                    '--num_images CamVid val images).')
flags.DEFINE_integer('num_images', 3, 'CamVid val images timed (ignored with '
                     '--image or without CamVid).', lower_bound=1)
flags.DEFINE_string('camvid_dir',
                    os.path.join(os.path.dirname(_REPO_ROOT), 'shared',
                                 'camvid'), 'CamVid folder (val/).')
flags.DEFINE_bool('pydensecrf', True, 'Also time pydensecrf2 if installed.')


def _read_rgb(path, height, width):
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  bgr = cv2.imread(path)
  if bgr is None:
    raise ValueError('cannot read image %s' % path)
  rgb = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
  return np.ascontiguousarray(rgb[:, :, ::-1])


def _images(height, width):
  """[(uint8 RGB [height, width, 3], where it came from)]."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if FLAGS.image is not None:
    return [(_read_rgb(FLAGS.image, height, width), FLAGS.image)]
  val = os.path.join(FLAGS.camvid_dir, 'val')
  if os.path.isdir(val):
    names = sorted(n for n in os.listdir(val) if n.endswith('.png'))
    paths = [os.path.join(val, n) for n in names[:FLAGS.num_images]]
    if paths:
      return [(_read_rgb(p, height, width), p) for p in paths]
  rows, cols = np.mgrid[0:height, 0:width]
  rgb = np.stack([rows * 255 // max(1, height - 1),
                  cols * 255 // max(1, width - 1),
                  ((rows // 8 + cols // 8) % 2) * 200], axis=-1)
  return [(rgb.astype(np.uint8), 'synthetic')]


def _probabilities(height, width, num_classes):
  """Softmax of smoothed random logits, float32 [H, W, C]."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(height, width, num_classes)).astype(np.float32)
  logits = cv2.GaussianBlur(logits, (0, 0), max(1.0, min(height, width) / 40))
  logits = logits / max(1e-6, float(logits.std())) * 2.0
  e = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _interleaved_best_times(runners, repeats):
  """Best of ``repeats`` runs of each callable, their runs interleaved."""
  best = [float('inf')] * len(runners)
  for _ in range(repeats):
    for index, fn in enumerate(runners):
      start = time.perf_counter()
      fn()
      best[index] = min(best[index], time.perf_counter() - start)
  return best


def _median(values):
  ordered = sorted(values)
  middle = len(ordered) // 2
  if len(ordered) % 2:
    return ordered[middle]
  return 0.5 * (ordered[middle - 1] + ordered[middle])


def _pydensecrf_runner(image, probabilities, params):
  """A closure running pydensecrf2 with our settings; None if absent."""
  try:
    import pydensecrf.densecrf as dcrf  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  import numpy as np  # pylint: disable=g-import-not-at-top
  height, width, channels = probabilities.shape
  unary = np.ascontiguousarray(
      -np.log(np.clip(probabilities, params.min_probability, 1.0))
      .reshape(-1, channels).T.astype(np.float32))

  def run():
    model = dcrf.DenseCRF2D(width, height, channels)
    model.setUnaryEnergy(unary)
    model.addPairwiseGaussian(sxy=params.pos_xy_std, compat=params.pos_w)
    model.addPairwiseBilateral(sxy=params.bi_xy_std, srgb=params.bi_rgb_std,
                               rgbim=image, compat=params.bi_w)
    return np.array(model.inference(params.num_iterations))

  return run


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
  params = crf.get_params(FLAGS.preset, num_iterations=FLAGS.num_iterations)
  probabilities = _probabilities(FLAGS.height, FLAGS.width, FLAGS.num_classes)
  probabilities_t = tf.constant(probabilities)
  images = _images(FLAGS.height, FLAGS.width)

  first_call_s = None
  per_image = []
  for image, source in images:
    image_t = tf.constant(image)
    start = time.perf_counter()
    refined = crf.dense_crf(image, probabilities, params=params)
    if first_call_s is None:
      first_call_s = time.perf_counter() - start
    function = lambda: crf.dense_crf(image, probabilities, params=params)  # pylint: disable=cell-var-from-loop
    eager = lambda: crf.dense_crf_tf(image_t, probabilities_t, params).numpy()  # pylint: disable=cell-var-from-loop
    eager()
    runners = [function, eager]
    pydensecrf = _pydensecrf_runner(image, probabilities, params) if (
        FLAGS.pydensecrf) else None
    agreement = None
    if pydensecrf is not None:
      theirs = pydensecrf()
      agreement = float(np.mean(theirs.argmax(0) ==
                                refined.argmax(-1).reshape(-1)))
      runners.append(pydensecrf)
    times = _interleaved_best_times(runners, FLAGS.repeats)
    per_image.append({
        'image': source, 'function_s': times[0], 'eager_s': times[1],
        'pydensecrf_s': times[2] if pydensecrf is not None else None,
        'label_agreement_with_pydensecrf': agreement})

  def median_of(key):
    values = [r[key] for r in per_image if r[key] is not None]
    return _median(values) if values else None

  function_s, eager_s = median_of('function_s'), median_of('eager_s')
  pydensecrf_s = median_of('pydensecrf_s')
  agreement = median_of('label_agreement_with_pydensecrf')
  size = '%dx%dx%d' % (FLAGS.height, FLAGS.width, FLAGS.num_classes)
  print('CRF %s, %d iterations, preset %s, %d image(s), median of per-image '
        'best of %d' % (size, params.num_iterations, FLAGS.preset,
                        len(images), FLAGS.repeats))
  for record in per_image:
    line = '  %s: ours %.3f s' % (os.path.basename(record['image']),
                                  record['function_s'])
    if record['pydensecrf_s'] is not None:
      line += ', pydensecrf2 %.3f s' % record['pydensecrf_s']
    print(line)
  print('ours eager        %7.3f s/image' % eager_s)
  print('ours tf.function  %7.3f s/image (first call, with tracing: %.2f s)' %
        (function_s, first_call_s))
  if pydensecrf_s is None:
    print('pydensecrf2       not installed (pip install pydensecrf2)')
  else:
    print('pydensecrf2       %7.3f s/image (labels agree with ours on %.2f%% '
          'of pixels; its NORMALIZE_SYMMETRIC vs our %r); ours / theirs = '
          '%.2f' % (pydensecrf_s, 100 * agreement, params.normalization,
                    function_s / pydensecrf_s))
  record = {
      'benchmark': 'crf_speed', 'height': FLAGS.height, 'width': FLAGS.width,
      'num_classes': FLAGS.num_classes,
      'num_iterations': params.num_iterations, 'preset': FLAGS.preset,
      'images': [r['image'] for r in per_image], 'per_image': per_image,
      'eager_s': eager_s, 'function_s': function_s,
      'first_call_s': first_call_s, 'pydensecrf_s': pydensecrf_s,
      'ratio_to_pydensecrf': (function_s / pydensecrf_s
                              if pydensecrf_s else None),
      'label_agreement_with_pydensecrf': agreement,
      'loadavg': list(os.getloadavg()), 'cpu_count': os.cpu_count(),
      'devices': [d.device_type for d in tf.config.list_logical_devices()],
  }
  print(json.dumps(record, sort_keys=True), flush=True)


if __name__ == '__main__':
  app.run(main)
