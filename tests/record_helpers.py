"""Small TFRecord writers shared by the input-pipeline tests."""
import os

import cv2
import numpy as np
import tensorflow as tf

from deeplab_tf.data import records

SHARED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..',
                          '..', 'shared')
CAMVID_DIR = os.path.join(SHARED_DIR, 'camvid')


def png(array):
  ok, data = cv2.imencode('.png', array)
  assert ok
  return data.tobytes()


def write_records(record_dir, split, labels, num_shards=1, with_presence=True,
                  prefix=None, ignore_label=255, seed=0):
  """One record per label (uint8 [H, W]) with a random PNG image.

  Records are spread over the shards in order (shard k holds a contiguous
  run). Returns the filenames in write order.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(record_dir, exist_ok=True)
  prefix = prefix or split
  names = ['%s_%04d' % (prefix, i) for i in range(len(labels))]
  per_shard = -(-len(labels) // num_shards)
  for shard in range(num_shards):
    path = records.shard_filename(record_dir, split, shard, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for i in range(shard * per_shard, min(len(labels), (shard + 1) * per_shard)):
        label = np.asarray(labels[i], np.uint8)
        height, width = label.shape
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        present = None
        if with_presence:
          present = [int(c) for c in np.unique(label) if c != ignore_label]
        writer.write(records.image_seg_to_example(
            png(image), names[i], height, width, png(label),
            image_format='png', classes_present=present).SerializeToString())
  return names


def read_camvid_pairs(list_name, count):
  with open(os.path.join(CAMVID_DIR, list_name)) as f:
    pairs = [line.split() for line in f if line.strip()]
  return pairs[:count]


def write_camvid_records(record_dir, split, list_name, count, num_shards):
  """CamVid images (PNG bytes as they are) with void 11 -> 255 labels.

  Returns {filename: (image uint8 [H, W, 3] RGB, label uint8 [H, W])}.
  """
  os.makedirs(record_dir, exist_ok=True)
  pairs = read_camvid_pairs(list_name, count)
  per_shard = -(-len(pairs) // num_shards)
  truth = {}
  for shard in range(num_shards):
    path = records.shard_filename(record_dir, split, shard, num_shards)
    with tf.io.TFRecordWriter(path) as writer:
      for image_path, label_path in pairs[shard * per_shard:
                                          (shard + 1) * per_shard]:
        with open(os.path.join(CAMVID_DIR, image_path), 'rb') as f:
          image_data = f.read()
        label = cv2.imread(os.path.join(CAMVID_DIR, label_path),
                           cv2.IMREAD_UNCHANGED)
        label[label == 11] = 255
        name = os.path.basename(image_path)
        image = cv2.cvtColor(cv2.imread(os.path.join(CAMVID_DIR, image_path)),
                             cv2.COLOR_BGR2RGB)
        truth[name] = (image, label)
        height, width = label.shape
        present = [int(c) for c in np.unique(label) if c != 255]
        writer.write(records.image_seg_to_example(
            image_data, name, height, width, png(label), image_format='png',
            classes_present=present).SerializeToString())
  return truth
