"""The original TFRecord schema: write, read back, size checks."""
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import records


def _png(array):
  return tf.io.encode_png(array).numpy()


def test_round_trip_and_original_keys(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
  label = rng.integers(0, 4, (7, 5, 1), dtype=np.uint8)
  ex = records.image_seg_to_example(_png(image), 'a.png', 7, 5, _png(label),
                                    image_format='png', classes_present=[0, 1, 2, 3])
  keys = set(ex.features.feature)
  assert {'image/encoded', 'image/filename', 'image/format', 'image/height',
          'image/width', 'image/channels', 'image/segmentation/class/encoded',
          'image/segmentation/class/format'} <= keys
  path = records.shard_filename(str(tmp_path), 'train', 0, 4)
  assert path.endswith('train-00000-of-00004.tfrecord')
  with tf.io.TFRecordWriter(path) as w:
    w.write(ex.SerializeToString())
  decoded = records.parse_example(next(iter(tf.data.TFRecordDataset(path))))
  np.testing.assert_array_equal(decoded.image, image)
  np.testing.assert_array_equal(decoded.label, label)
  assert decoded.filename.numpy() == b'a.png'
  np.testing.assert_array_equal(decoded.classes_present, [0, 1, 2, 3])


def test_label_size_mismatch_names_the_file():
  image = np.zeros((7, 5, 3), np.uint8)
  label = np.zeros((6, 5, 1), np.uint8)
  ex = records.image_seg_to_example(_png(image), 'bad_one.png', 7, 5, _png(label))
  with pytest.raises(tf.errors.InvalidArgumentError, match='bad_one.png'):
    records.parse_example(ex.SerializeToString())
