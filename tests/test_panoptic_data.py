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


# --- Cityscapes panoptic converter -------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cityscapes_instance_ids():
  """6x8 instanceIds: road (7), sky (23), cars (26) 26000 / 26001, a crowd
  of cars (26 without instance), a caravan instance (29: no trainId)."""
  ids = np.full((6, 8), 7, np.uint16)
  ids[:2] = 23
  ids[2:4, 0:3] = 26000
  ids[2:4, 3:6] = 26001
  ids[4, 0:2] = 26
  ids[5, 6:8] = 29002
  return ids


def test_instance_ids_to_panoptic():
  import importlib.util  # pylint: disable=g-import-not-at-top
  # By path: a 'datasets' package (e.g. Hugging Face's) may shadow ours.
  spec = importlib.util.spec_from_file_location(
      'build_cityscapes_panoptic_data',
      os.path.join(REPO, 'datasets', 'build_cityscapes_panoptic_data.py'))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  category, instance = script.instance_ids_to_panoptic(
      _cityscapes_instance_ids())
  assert category[0, 0] == 10 and instance[0, 0] == 0     # sky, stuff
  assert category[5, 0] == 0 and instance[5, 0] == 0      # road
  assert category[2, 0] == 13 and instance[2, 0] == 1     # car, k=0 -> 1
  assert category[2, 4] == 13 and instance[2, 4] == 2
  assert category[4, 0] == 13 and instance[4, 0] == 0     # crowd: no instance
  assert category[5, 7] == 255 and instance[5, 7] == 0    # caravan: ignored
  with pytest.raises(ValueError, match='instanceIds'):
    script.instance_ids_to_panoptic(np.array([[40]]))


def _run(*args):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'datasets',
                                    'build_cityscapes_panoptic_data.py')] +
      list(args), capture_output=True, text=True, env=env, cwd=REPO,
      timeout=120)


@pytest.mark.slow
def test_cityscapes_panoptic_script(tmp_path):
  root = tmp_path / 'cityscapes'
  rng = np.random.default_rng(0)
  stems = {'train': ['aachen_000000_000019', 'bochum_000000_000313'],
           'val': ['frankfurt_000000_000294']}
  for folder, names in stems.items():
    for stem in names:
      city = stem.split('_')[0]
      image_dir = root / 'leftImg8bit' / folder / city
      gt_dir = root / 'gtFine' / folder / city
      image_dir.mkdir(parents=True, exist_ok=True)
      gt_dir.mkdir(parents=True, exist_ok=True)
      (image_dir / (stem + '_leftImg8bit.png')).write_bytes(
          _png(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)))
      (gt_dir / (stem + '_gtFine_instanceIds.png')).write_bytes(
          _png(_cityscapes_instance_ids()))
  out = tmp_path / 'rec'
  run = _run('--cityscapes_root=%s' % root, '--output_dir=%s' % out,
             '--num_shards=2')
  assert run.returncode == 0, run.stderr
  assert 'train_fine: 2 images' in run.stdout
  assert 'val_fine: 1 images' in run.stdout
  shards = sorted(os.listdir(out))
  assert shards == ['train_fine-00000-of-00002.tfrecord',
                    'train_fine-00001-of-00002.tfrecord',
                    'val_fine-00000-of-00002.tfrecord',
                    'val_fine-00001-of-00002.tfrecord']
  [sample] = pr.read_panoptic_records(str(out / shards[1]), DIVISOR)
  assert sample['filename'] == b'bochum_000000_000313'
  assert sample['category'][2, 4] == 13 and sample['instance'][2, 4] == 2
  # A missing annotation names the file; nothing half-written is left.
  (root / 'gtFine' / 'val' / 'frankfurt' /
   'frankfurt_000000_000294_gtFine_instanceIds.png').unlink()
  out2 = tmp_path / 'rec2'
  run = _run('--cityscapes_root=%s' % root, '--output_dir=%s' % out2,
             '--splits=val_fine')
  assert run.returncode == 1
  assert 'frankfurt_000000_000294_gtFine_instanceIds.png' in run.stderr
  assert 'not found' in run.stderr
  assert not [n for n in os.listdir(out2) if n.startswith('val_fine')]
  run = _run('--cityscapes_root=%s' % root, '--output_dir=%s' % out2,
             '--splits=val_fine', '--skip_bad')
  assert run.returncode == 0 and 'skipped #0' in run.stderr
