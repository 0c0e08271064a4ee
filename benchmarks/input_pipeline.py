r"""Training input pipeline throughput (images/s) at 513x513 crops.

Usage:
  python benchmarks/input_pipeline.py [--batch_size=8] [--num_batches=60]
      [--datasets=voc,camvid] [--camvid_dir=../shared/camvid]

Two record sets are written to a temporary folder first:

* ``voc``: 200 synthetic VOC-like records, 375x500 JPEG images (smooth
  random colour fields, shapes and noise) with PNG labels (21 classes and
  ignore borders), 4 shards;
* ``camvid``: the 367 CamVid training images of ``--camvid_dir`` (PNG,
  360x480; void 11 -> 255), written with ``records.image_seg_to_example``.

Each is read by ``pipeline.build_dataset`` with the original training
settings (crop 513x513, random scale 0.5..2.0 step 0.25, flip, shuffle,
mobilenet_v2 padding). After ``--warmup_batches`` the time of
``--num_batches`` batches gives images/s, and the process CPU time per
image (which bounds the rate on idle cores: cores * 1000 / CPU ms). The
machine should be otherwise idle; the number is the pipeline alone (no
model).
"""
import os
import resource
import shutil
import sys
import tempfile
import time

from absl import app
from absl import flags
import cv2
import numpy as np
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import records

FLAGS = flags.FLAGS
flags.DEFINE_list('datasets', ['voc', 'camvid'], 'Record sets to time.')
flags.DEFINE_integer('batch_size', 8, 'Batch size.')
flags.DEFINE_integer('num_batches', 60, 'Timed batches.')
flags.DEFINE_integer('warmup_batches', 10, 'Batches before timing.')
flags.DEFINE_integer('num_voc_images', 200, 'Synthetic VOC-like records.')
flags.DEFINE_string('camvid_dir', None,
                    'CamVid folder (default: ../shared/camvid beside the '
                    'repository).')
flags.DEFINE_string('model_variant', 'mobilenet_v2', 'Sets the pad value.')


def _voc_like(rng, height=375, width=500):
  grid = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
  image = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
  label = np.zeros((height, width), np.uint8)
  for _ in range(int(rng.integers(1, 5))):
    cls = int(rng.integers(1, 21))
    x0, y0 = int(rng.integers(0, width - 60)), int(rng.integers(0, height - 60))
    x1 = x0 + int(rng.integers(40, width - x0))
    y1 = y0 + int(rng.integers(40, height - y0))
    colour = rng.uniform(0, 255, 3)
    cv2.rectangle(image, (x0, y0), (x1, y1), colour.tolist(), -1)
    cv2.rectangle(label, (x0, y0), (x1, y1), cls, -1)
    cv2.rectangle(label, (x0, y0), (x1, y1), 255, 3)
  image += rng.normal(0, 8, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8), label


def write_voc_like(output_dir, num_images, num_shards=4):
  rng = np.random.default_rng(0)
  per_shard = -(-num_images // num_shards)
  for shard in range(num_shards):
    path = records.shard_filename(output_dir, 'train', shard, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(shard * per_shard, min(num_images, (shard + 1) * per_shard)):
        image, label = _voc_like(rng)
        jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        png = cv2.imencode('.png', label)[1]
        present = [int(c) for c in np.unique(label) if c != 255]
        writer.write(records.image_seg_to_example(
            jpeg.tobytes(), 'voc_%05d' % i, 375, 500, png.tobytes(),
            image_format='jpeg', classes_present=present).SerializeToString())
  return datasets_info.DatasetDescriptor(
      'voc_like', {'train': num_images}, 21, 255, unlabeled_splits=())


def write_camvid(camvid_dir, output_dir, num_shards=4):
  with open(os.path.join(camvid_dir, 'train.txt')) as f:
    pairs = [line.split() for line in f if line.strip()]
  per_shard = -(-len(pairs) // num_shards)
  for shard in range(num_shards):
    path = records.shard_filename(output_dir, 'train', shard, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for image_path, label_path in pairs[shard * per_shard:
                                          (shard + 1) * per_shard]:
        with open(os.path.join(camvid_dir, image_path), 'rb') as f:
          image_data = f.read()
        label = cv2.imread(os.path.join(camvid_dir, label_path),
                           cv2.IMREAD_UNCHANGED)
        label[label == 11] = 255
        height, width = label.shape
        present = [int(c) for c in np.unique(label) if c != 255]
        writer.write(records.image_seg_to_example(
            image_data, os.path.basename(image_path), height, width,
            cv2.imencode('.png', label)[1].tobytes(), image_format='png',
            classes_present=present).SerializeToString())
  return datasets_info.CAMVID


def time_pipeline(descriptor, record_dir):
  settings = pipeline.InputSettings(crop_size=(513, 513),
                                    model_variant=FLAGS.model_variant)
  dataset = pipeline.build_dataset(descriptor, 'train', record_dir, settings,
                                   FLAGS.batch_size, is_training=True)
  iterator = iter(dataset)
  for _ in range(FLAGS.warmup_batches):
    next(iterator)
  usage = resource.getrusage(resource.RUSAGE_SELF)
  start = time.perf_counter()
  for _ in range(FLAGS.num_batches):
    batch = next(iterator)
  batch['image'].numpy()
  seconds = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_SELF)
  cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
  images = FLAGS.num_batches * FLAGS.batch_size
  return images / seconds, 1000.0 * cpu / images


def main(argv):
  del argv
  camvid_dir = FLAGS.camvid_dir or os.path.join(
      os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared',
      'camvid')
  print('input pipeline, training, crop 513x513, scale 0.5..2.0, batch %d, '
        '%d CPU cores' % (FLAGS.batch_size, os.cpu_count()))
  tmp = tempfile.mkdtemp(prefix='deeplab_input_bench_')
  try:
    for name in FLAGS.datasets:
      record_dir = os.path.join(tmp, name)
      os.makedirs(record_dir)
      start = time.time()
      if name == 'voc':
        descriptor = write_voc_like(record_dir, FLAGS.num_voc_images)
        what = '%d synthetic 375x500 JPEG records' % FLAGS.num_voc_images
      elif name == 'camvid':
        if not os.path.isdir(camvid_dir):
          print('camvid: %s not found, skipped' % camvid_dir)
          continue
        descriptor = write_camvid(camvid_dir, record_dir)
        what = 'CamVid train, 367 360x480 PNG records'
      else:
        raise app.UsageError('Unknown dataset %r (voc, camvid).' % name)
      written = time.time() - start
      rate, cpu_ms = time_pipeline(descriptor, record_dir)
      # CPU time per image bounds the rate on idle cores: the wall-clock
      # rate drops when other processes share the machine.
      print('%-7s %6.1f images/s  %5.1f CPU ms/image (at most %.0f images/s '
            'on %d idle cores)  (%s, written in %.1f s)'
            % (name, rate, cpu_ms, os.cpu_count() * 1000.0 / cpu_ms,
               os.cpu_count(), what, written))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return 0


if __name__ == '__main__':
  sys.exit(app.run(main))
