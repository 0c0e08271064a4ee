"""Panoptic records (deeplab2 layout) and the DeeperLab input pipeline."""
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import panoptic_pipeline
from deeplab_tf.data import panoptic_records as pr
from deeplab_tf.data import panoptic_targets as pt
from deeplab_tf.data import pipeline
from deeplab_tf.data import records

DIVISOR = 1000
THINGS = (11, 13)
SEGMENTS = [(0, 0), (10, 0), (13, 1), (13, 2), (11, 7)]


def _png(array):
  ok, data = cv2.imencode('.png', array)
  assert ok
  return data.tobytes()


def _scene(height=40, width=48, seed=0):
  """Road (0) + sky (10), two cars (13) and a person (11), an ignored strip."""
  category = np.zeros((height, width), np.int32)
  instance = np.zeros((height, width), np.int32)
  category[:height // 3] = 10
  for cat, inst, (y0, y1, x0, x1) in ((13, 1, (20, 30, 4, 16)),
                                      (13, 2, (18, 34, 26, 40)),
                                      (11, 7, (8, 20, 18, 24))):
    category[y0:y1, x0:x1] = cat
    instance[y0:y1, x0:x1] = inst
  category[-2:] = 255
  # The image encodes the segment: a colour per (category, instance).
  image = np.stack([np.minimum(category * 18, 255), instance * 30,
                    np.full_like(category, 90)], -1).astype(np.uint8)
  return image, category, instance


def _write(record_dir, split, scenes):
  os.makedirs(record_dir, exist_ok=True)
  path = records.shard_filename(str(record_dir), split, 0, 1)
  with tf.io.TFRecordWriter(path) as writer:
    for index, (image, category, instance) in enumerate(scenes):
      panoptic = pr.encode_panoptic(category, instance, DIVISOR)
      writer.write(pr.panoptic_to_example(
          _png(image[:, :, ::-1]), 'img%d' % index, image.shape[0],
          image.shape[1], panoptic).SerializeToString())
  return path


def test_record_round_trip_and_layout(tmp_path):
  image, category, instance = _scene()
  path = _write(tmp_path, 'val_fine', [(image, category, instance)])
  [sample] = pr.read_panoptic_records(path, DIVISOR)
  np.testing.assert_array_equal(sample['image'], image)
  np.testing.assert_array_equal(sample['category'], category)
  np.testing.assert_array_equal(sample['instance'], instance)
  assert sample['filename'] == b'img0'
  # The map is raw little-endian int32 category * divisor + instance.
  raw = next(iter(tf.data.TFRecordDataset(path))).numpy()
  example = tf.train.Example.FromString(raw)
  feature = example.features.feature
  assert feature[records.LABEL_FORMAT].bytes_list.value == [b'raw']
  values = np.frombuffer(feature[records.LABEL_ENCODED].bytes_list.value[0],
                         '<i4').reshape(category.shape)
  assert values[25, 10] == 13 * DIVISOR + 1
  assert values[-1, 0] == 255 * DIVISOR
  layout = pr.get_layout('cityscapes')
  assert layout.label_divisor == 1000 and layout.thing_classes == tuple(
      range(11, 19))
  with pytest.raises(ValueError, match='label_divisor'):
    pr.encode_panoptic(category, instance + 999, DIVISOR)
  with pytest.raises(ValueError, match='no panoptic layout'):
    pr.get_layout('pascal_voc_seg')


def test_bad_record_names_the_file(tmp_path):
  image, category, _ = _scene()
  path = records.shard_filename(str(tmp_path), 'val_fine', 0, 1)
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(records.image_seg_to_example(
        _png(image), 'broken_one', 40, 48, _png(category.astype(np.uint8)),
        image_format='png').SerializeToString())
  with pytest.raises(tf.errors.InvalidArgumentError, match='broken_one'):
    pr.read_panoptic_records(path, DIVISOR)


def _targets_settings():
  return pt.PanopticTargetSettings(thing_classes=THINGS, radius=4.0)


def test_eval_batches_equal_the_targets_of_the_maps(tmp_path):
  scenes = [_scene(seed=i) for i in range(2)]
  _write(tmp_path, 'val_fine', scenes)
  settings = pipeline.InputSettings(crop_size=(41, 49),
                                    model_variant='mobilenet_v2')
  dataset = panoptic_pipeline.build_panoptic_dataset(
      'cityscapes', 'val_fine', str(tmp_path), settings, _targets_settings(),
      batch_size=2, is_training=False)
  [batch] = list(dataset)
  assert batch['image'].shape == (2, 41, 49, 3)
  _, category, instance = scenes[0]
  np.testing.assert_array_equal(batch['category'][0, :40, :48], category)
  np.testing.assert_array_equal(batch['instance'][0, :40, :48], instance)
  # Padding: ignore category, no instance.
  assert np.all(batch['category'][0, 40] == 255)
  assert np.all(batch['instance'][0, :, 48] == 0)
  expected = pt.panoptic_targets(batch['category'][0].numpy(),
                                 batch['instance'][0].numpy(),
                                 _targets_settings())
  for name, value in expected.items():
    np.testing.assert_allclose(batch[name][0].numpy(), value, atol=1e-6,
                               err_msg=name)


def test_training_crops_keep_maps_aligned_with_the_image(tmp_path):
  scenes = [_scene(seed=i) for i in range(3)]
  _write(tmp_path, 'train_fine', scenes)
  settings = pipeline.InputSettings(crop_size=(33, 33),
                                    model_variant='mobilenet_v2')
  dataset = panoptic_pipeline.build_panoptic_dataset(
      'cityscapes', 'train_fine', str(tmp_path), settings, _targets_settings(),
      batch_size=2, is_training=True, deterministic=True, seed=3)
  instances_seen = set()
  for batch in dataset.take(6):
    image = batch['image'].numpy()
    category = batch['category'].numpy()
    instance = batch['instance'].numpy()
    assert image.shape == (2, 33, 33, 3)
    assert batch['keypoint_heatmap'].shape == (2, 33, 33, 5)
    labelled = category != 255
    segment = category * 100 + instance
    # Image bilinear, maps nearest neighbour (as the original): a pixel's
    # colour is a blend in which its own segment weighs more than half, so
    # the nearest segment colour is its own one (away from corners where
    # three segments meet), wherever scaling, cropping and flipping moved it.
    padded = np.pad(segment, ((0, 0), (1, 1), (1, 1)), mode='edge')
    flat = np.ones_like(labelled)
    for dy in range(3):
      for dx in range(3):
        flat &= padded[:, dy:dy + 33, dx:dx + 33] == segment
    interior = labelled & flat
    assert interior.sum() > 0.3 * labelled.sum()
    palette = np.array([(c * 18, i * 30) for c, i in SEGMENTS], np.float32)
    colours = image[..., :2][interior]
    nearest = np.argmin(((colours[:, None] - palette[None]) ** 2).sum(-1), 1)
    own = [SEGMENTS.index((c, i)) for c, i in
           zip(category[interior], instance[interior])]
    np.testing.assert_array_equal(nearest, own)
    # Targets are recomputed on the crop: a heatmap only on thing pixels' disks.
    np.testing.assert_array_equal(batch['semantic'].numpy(), category)
    instances_seen.add(bool((batch['instance'].numpy() > 0).any()))
  assert True in instances_seen


def test_out_of_range_category_names_the_record(tmp_path):
  image, category, instance = _scene()
  category[0, 0] = 40
  _write(tmp_path, 'val_fine', [(image, category, instance)])
  dataset = panoptic_pipeline.build_panoptic_dataset(
      'cityscapes', 'val_fine', str(tmp_path),
      pipeline.InputSettings(crop_size=(41, 49), model_variant='mobilenet_v2'),
      _targets_settings(), batch_size=1, is_training=False)
  with pytest.raises(tf.errors.InvalidArgumentError, match='img0'):
    list(dataset)
