r"""Speed of the fully connected CRF: seconds per image, ours vs pydensecrf.

Usage:
  python benchmarks/crf_speed.py [--height=321] [--width=481]
      [--num_classes=21] [--num_iterations=10]
      [--preset=deeplab_v2_resnet101_voc] [--repeats=5]
      [--image=PATH] [--camvid_dir=../shared/camvid]

The image is the first CamVid val picture resized to height x width (RGB),
or a smooth synthetic one when CamVid is absent; the probabilities are a
softmax of smoothed random logits. Timed, each as the best of --repeats runs
after one warm-up run:

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
flags.DEFINE_string('image', None, 'Image file (default: first CamVid val '
                    'image).')
flags.DEFINE_string('camvid_dir',
                    os.path.join(os.path.dirname(_REPO_ROOT), 'shared',
                                 'camvid'), 'CamVid folder (val/).')
flags.DEFINE_bool('pydensecrf', True, 'Also time pydensecrf2 if installed.')


def _image(height, width):
  """uint8 RGB [height, width, 3] and where it came from."""
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  path = FLAGS.image
  if path is None:
    val = os.path.join(FLAGS.camvid_dir, 'val')
    if os.path.isdir(val):
      names = sorted(n for n in os.listdir(val) if n.endswith('.png'))
      path = os.path.join(val, names[0]) if names else None
  if path is not None:
    bgr = cv2.imread(path)
    if bgr is None:
      raise ValueError('cannot read image %s' % path)
    rgb = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb[:, :, ::-1]), path
  rows, cols = np.mgrid[0:height, 0:width]
  rgb = np.stack([rows * 255 // max(1, height - 1),
                  cols * 255 // max(1, width - 1),
                  ((rows // 8 + cols // 8) % 2) * 200], axis=-1)
  return rgb.astype(np.uint8), 'synthetic'


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


def _best_time(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


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
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top
  params = crf.get_params(FLAGS.preset, num_iterations=FLAGS.num_iterations)
  image, source = _image(FLAGS.height, FLAGS.width)
  probabilities = _probabilities(FLAGS.height, FLAGS.width, FLAGS.num_classes)
  image_t = tf.constant(image)
  probabilities_t = tf.constant(probabilities)

  start = time.perf_counter()
  refined = crf.dense_crf(image, probabilities, params=params)
  first_call_s = time.perf_counter() - start
  function_s = _best_time(
      lambda: crf.dense_crf(image, probabilities, params=params),
      FLAGS.repeats)
  eager = lambda: crf.dense_crf_tf(image_t, probabilities_t, params).numpy()
  eager()
  eager_s = _best_time(eager, FLAGS.repeats)

  pydensecrf_s = agreement = None
  runner = _pydensecrf_runner(image, probabilities, params) if (
      FLAGS.pydensecrf) else None
  if runner is not None:
    theirs = runner()
    pydensecrf_s = _best_time(runner, FLAGS.repeats)
    ours_labels = refined.argmax(-1).reshape(-1)
    agreement = float((theirs.argmax(0) == ours_labels).mean())

  size = '%dx%dx%d' % (FLAGS.height, FLAGS.width, FLAGS.num_classes)
  print('CRF %s, %d iterations, preset %s, image %s' %
        (size, params.num_iterations, FLAGS.preset, source))
  print('ours eager        %7.3f s/image' % eager_s)
  print('ours tf.function  %7.3f s/image (first call, with tracing: %.2f s)' %
        (function_s, first_call_s))
  if pydensecrf_s is None:
    print('pydensecrf2       not installed (pip install pydensecrf2)')
  else:
    print('pydensecrf2       %7.3f s/image (labels agree with ours on %.2f%% '
          'of pixels; its NORMALIZE_SYMMETRIC vs our %r)' %
          (pydensecrf_s, 100 * agreement, params.normalization))
  record = {
      'benchmark': 'crf_speed', 'height': FLAGS.height, 'width': FLAGS.width,
      'num_classes': FLAGS.num_classes,
      'num_iterations': params.num_iterations, 'preset': FLAGS.preset,
      'image': source, 'eager_s': eager_s, 'function_s': function_s,
      'first_call_s': first_call_s, 'pydensecrf_s': pydensecrf_s,
      'label_agreement_with_pydensecrf': agreement,
      'loadavg': list(os.getloadavg()), 'cpu_count': os.cpu_count(),
      'devices': [d.device_type for d in tf.config.list_logical_devices()],
  }
  print(json.dumps(record, sort_keys=True), flush=True)


if __name__ == '__main__':
  app.run(main)
