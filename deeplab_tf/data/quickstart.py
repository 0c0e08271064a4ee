r"""The embedded quickstart dataset: procedural street-like scenes, no download.

Each image is a small scene: a sky gradient above a random horizon, textured
grass below it, a road in perspective with dashed markings, and one to five
objects of three shapes (rectangular boxes, round balls, striped triangular
cones) drawn over it. Six classes, separable by colour, shape and texture so
a small model learns them in minutes; a one-pixel band around every object
carries the ignore label (as the object borders of PASCAL VOC). Noise,
brightness/contrast and per-object colour jitter keep it from being trivial.

Everything is seeded (image ``i`` of a split depends only on the seed, the
split and ``i``), and the split is written as TFRecords of the original
schema (JPEG images, PNG labels, with the class-presence key), 4 shards per
split, plus ``dataset.json`` (the descriptor, readable by
``datasets_info.load_descriptor``). 300 train + 60 val images at 96x128 take
a few seconds.

Usage:
  python -m deeplab_tf.data.quickstart --output_dir=/tmp/quickstart
"""
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import records

DESCRIPTOR = datasets_info.QUICKSTART
SKY, GRASS, ROAD, BOX, BALL, CONE = range(6)
OBJECT_CLASSES = (BOX, BALL, CONE)
IGNORE_LABEL = DESCRIPTOR.ignore_label
DEFAULT_HEIGHT = 96
DEFAULT_WIDTH = 128
NUM_SHARDS = 4
_VERSION = 1
_STAMP = 'quickstart.json'
DESCRIPTOR_FILE = 'dataset.json'
_SPLIT_IDS = {'train': 0, 'val': 1}


def _jitter(rng, colour, amount):
  return np.clip(np.asarray(colour, np.float32)
                 + rng.uniform(-amount, amount, 3), 0, 255)


def _smooth_noise(rng, height, width, cells, amplitude):
  """Low-frequency noise: a coarse random grid upsampled bilinearly."""
  grid = rng.normal(0, amplitude, (cells, cells)).astype(np.float32)
  return cv2.resize(grid, (width, height), interpolation=cv2.INTER_LINEAR)


def _shape_mask(rng, kind, height, width):
  """A boolean mask of one box / ball / cone at a random place and size."""
  mask = np.zeros((height, width), np.uint8)
  size = int(rng.integers(max(6, height // 10), max(12, height // 3)))
  cy = int(rng.integers(size // 2, height - size // 2))
  cx = int(rng.integers(size // 2, width - size // 2))
  if kind == BOX:
    h = int(size * rng.uniform(0.6, 1.2))
    w = int(size * rng.uniform(0.6, 1.4))
    angle = float(rng.uniform(-20, 20))
    corners = cv2.boxPoints(((cx, cy), (w, h), angle))
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
  elif kind == BALL:
    cv2.circle(mask, (cx, cy), max(3, size // 2), 1, thickness=-1)
  else:
    half = size // 2
    apex = (cx + int(rng.integers(-half // 3, half // 3 + 1)), cy - half)
    triangle = np.array([apex, (cx - half, cy + half), (cx + half, cy + half)],
                        np.int32)
    cv2.fillPoly(mask, [triangle], 1)
  return mask.astype(bool)


def _paint_object(rng, kind, image, mask, rows, cols):
  ys, xs = np.nonzero(mask)
  if kind == BOX:
    colour = _jitter(rng, (195, 55, 40), 25)
    # Vertical shading across the box.
    span = max(1, ys.max() - ys.min())
    shade = 1.15 - 0.3 * (ys - ys.min()) / span
    image[ys, xs] = np.clip(colour[None, :] * shade[:, None], 0, 255)
  elif kind == BALL:
    colour = _jitter(rng, (235, 205, 45), 20)
    cy, cx = ys.mean(), xs.mean()
    radius = max(1.0, np.sqrt(mask.sum() / np.pi))
    dist = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2) / radius
    shade = 1.2 - 0.45 * np.clip(dist, 0, 1)
    image[ys, xs] = np.clip(colour[None, :] * shade[:, None], 0, 255)
  else:
    dark = _jitter(rng, (145, 50, 185), 20)
    light = _jitter(rng, (215, 170, 235), 15)
    period = int(rng.integers(3, 6))
    stripes = ((rows[ys, xs] // period) % 2 == 0)
    image[ys, xs] = np.where(stripes[:, None], dark[None, :], light[None, :])


def generate_scene(rng, height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH):
  """One scene: (image uint8 [H, W, 3] RGB, label uint8 [H, W])."""
  rows, cols = np.mgrid[0:height, 0:width]
  image = np.zeros((height, width, 3), np.float32)
  label = np.zeros((height, width), np.uint8)

  # Sky above the horizon: a vertical gradient.
  horizon = int(rng.integers(int(0.3 * height), int(0.55 * height)))
  top = _jitter(rng, (60, 115, 200), 20)
  bottom = _jitter(rng, (175, 205, 235), 15)
  t = (rows / max(1, horizon))[..., None]
  image[:] = top * (1 - t) + bottom * t
  label[:] = SKY

  # Grass below it: green with blotches and fine-grained texture.
  ground = rows >= horizon
  grass = _jitter(rng, (65, 150, 55), 20)
  blotch = _smooth_noise(rng, height, width, 6, 18)[..., None]
  grain = rng.normal(0, 16, (height, width, 1)).astype(np.float32)
  grass_pixels = grass + blotch * np.array([0.6, 1.0, 0.4]) + grain
  image[ground] = grass_pixels[ground]
  label[ground] = GRASS

  # A road in perspective: narrow at the horizon, wide at the bottom.
  if rng.uniform() < 0.85:
    vanish = float(rng.uniform(0.25, 0.75) * width)
    base_center = float(rng.uniform(0.2, 0.8) * width)
    half_bottom = float(rng.uniform(0.25, 0.45) * width)
    depth = np.clip((rows - horizon) / max(1, height - horizon), 0, 1)
    center = vanish + (base_center - vanish) * depth
    half = 1.0 + half_bottom * depth
    road = ground & (np.abs(cols - center) <= half)
    grey = float(rng.uniform(90, 125))
    road_pixels = (np.full((height, width, 3), grey, np.float32)
                   + rng.normal(0, 5, (height, width, 1)))
    dashes = (np.abs(cols - center) <= np.maximum(0.6, 0.04 * half)) & (
        ((rows - horizon) // 5) % 2 == 0)
    road_pixels[dashes] = 235.0
    image[road] = road_pixels[road]
    label[road] = ROAD

  # Objects, drawn back to front.
  for _ in range(int(rng.integers(1, 6))):
    kind = int(rng.choice(OBJECT_CLASSES))
    mask = _shape_mask(rng, kind, height, width)
    _paint_object(rng, kind, image, mask, rows, cols)
    label[mask] = kind

  # Ignore a one-pixel band inside each object where it meets anything else.
  padded = np.pad(label, 1, mode='edge')
  differs = np.zeros((height, width), bool)
  for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
    differs |= padded[dy:dy + height, dx:dx + width] != label
  band = differs & np.isin(label, OBJECT_CLASSES)
  label[band] = IGNORE_LABEL

  # Photometric jitter and sensor noise.
  contrast = rng.uniform(0.85, 1.15)
  brightness = rng.uniform(-15, 15)
  image = (image - 128.0) * contrast + 128.0 + brightness
  image += rng.normal(0, 4, image.shape)
  return np.clip(np.round(image), 0, 255).astype(np.uint8), label


def _encode(image, label):
  ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_JPEG_QUALITY, 95])
  ok2, png = cv2.imencode('.png', label)
  if not (ok and ok2):
    raise RuntimeError('OpenCV could not encode a quickstart image.')
  return jpeg.tobytes(), png.tobytes()


def scene_rng(seed, split_name, index):
  """The generator of image ``index`` of a split (independent of the count)."""
  return np.random.default_rng([seed, _SPLIT_IDS.get(split_name, 2), index])


def write_split(output_dir, split_name, num_images, seed=0,
                height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH,
                num_shards=NUM_SHARDS):
  """Writes ``<split>-0000k-of-0000n.tfrecord``; returns the shard paths."""
  tf.io.gfile.makedirs(output_dir)
  num_shards = max(1, min(num_shards, num_images))
  per_shard = -(-num_images // num_shards)
  paths = []
  for shard in range(num_shards):
    path = records.shard_filename(output_dir, split_name, shard, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(shard * per_shard, min(num_images, (shard + 1) * per_shard)):
        image, label = generate_scene(scene_rng(seed, split_name, i), height,
                                      width)
        jpeg, png = _encode(image, label)
        present = [int(c) for c in np.unique(label) if c != IGNORE_LABEL]
        example = records.image_seg_to_example(
            jpeg, 'quickstart_%s_%06d' % (split_name, i), height, width, png,
            image_format='jpeg', label_format='png', classes_present=present)
        writer.write(example.SerializeToString())
    paths.append(path)
  return paths


def _config(num_train, num_val, height, width, seed):
  return {'version': _VERSION, 'num_train': num_train, 'num_val': num_val,
          'height': height, 'width': width, 'seed': seed,
          'num_shards': NUM_SHARDS}


def descriptor_for(num_train, num_val):
  return datasets_info.DatasetDescriptor(
      name=DESCRIPTOR.name,
      splits_to_sizes={'train': num_train, 'val': num_val},
      num_classes=DESCRIPTOR.num_classes, ignore_label=DESCRIPTOR.ignore_label,
      class_names=DESCRIPTOR.class_names, colormap=DESCRIPTOR.colormap,
      unlabeled_splits=())


def write_quickstart(output_dir, num_train=300, num_val=60,
                     height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH, seed=0):
  """Generates both splits into ``output_dir``; returns their descriptor."""
  for name, value in (('num_train', num_train), ('num_val', num_val),
                      ('height', height), ('width', width)):
    if not isinstance(value, int) or value <= 0:
      raise ValueError('%s must be a positive int; got %r.' % (name, value))
  if height < 32 or width < 32:
    raise ValueError('quickstart scenes need at least 32x32 pixels; got %dx%d.'
                     % (height, width))
  tf.io.gfile.makedirs(output_dir)
  for old in tf.io.gfile.glob(os.path.join(output_dir, '*.tfrecord')):
    tf.io.gfile.remove(old)
  write_split(output_dir, 'train', num_train, seed, height, width)
  write_split(output_dir, 'val', num_val, seed, height, width)
  descriptor = descriptor_for(num_train, num_val)
  datasets_info.save_descriptor(descriptor,
                                os.path.join(output_dir, DESCRIPTOR_FILE))
  with tf.io.gfile.GFile(os.path.join(output_dir, _STAMP), 'w') as f:
    json.dump(_config(num_train, num_val, height, width, seed), f)
  return descriptor


def ensure_quickstart(output_dir, num_train=300, num_val=60,
                      height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH, seed=0):
  """Like ``write_quickstart``, but keeps an identical dataset already there."""
  stamp = os.path.join(output_dir, _STAMP)
  wanted = _config(num_train, num_val, height, width, seed)
  if tf.io.gfile.exists(stamp):
    with tf.io.gfile.GFile(stamp, 'r') as f:
      try:
        found = json.load(f)
      except ValueError:
        found = None
    shards = tf.io.gfile.glob(os.path.join(output_dir, '*.tfrecord'))
    if found == wanted and len(shards) == 2 * NUM_SHARDS:
      return descriptor_for(num_train, num_val)
  return write_quickstart(output_dir, num_train, num_val, height, width, seed)


FLAGS = flags.FLAGS


def _define_flags():
  flags.DEFINE_string('output_dir', None, 'Folder for the TFRecord shards.')
  flags.DEFINE_integer('num_train', 300, 'Training images.')
  flags.DEFINE_integer('num_val', 60, 'Validation images.')
  flags.DEFINE_integer('height', DEFAULT_HEIGHT, 'Image height.')
  flags.DEFINE_integer('width', DEFAULT_WIDTH, 'Image width.')
  flags.DEFINE_integer('seed', 0, 'Seed of the scenes.')
  flags.mark_flag_as_required('output_dir')


def main(argv):
  del argv
  start = time.time()
  descriptor = write_quickstart(FLAGS.output_dir, FLAGS.num_train,
                                FLAGS.num_val, FLAGS.height, FLAGS.width,
                                FLAGS.seed)
  print('quickstart: wrote %d train + %d val images (%dx%d, %d classes: %s) '
        'to %s in %.1f s; descriptor: %s'
        % (FLAGS.num_train, FLAGS.num_val, FLAGS.height, FLAGS.width,
           descriptor.num_classes, ', '.join(descriptor.class_names),
           FLAGS.output_dir, time.time() - start,
           os.path.join(FLAGS.output_dir, DESCRIPTOR_FILE)))
  return 0


def run():
  _define_flags()
  app.run(main)


if __name__ == '__main__':
  logging.set_verbosity(logging.WARNING)
  sys.exit(run())
