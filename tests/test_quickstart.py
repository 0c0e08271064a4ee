"""The embedded quickstart dataset: deterministic, original schema, learnable."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import quickstart
from deeplab_tf.data import records

VALUES = set(range(6)) | {255}


@pytest.fixture(scope='module')
def quickstart_dir(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('quickstart'))
  start = time.time()
  descriptor = quickstart.write_quickstart(out)
  elapsed = time.time() - start
  return out, descriptor, elapsed


def _read_split(record_dir, split):
  samples = []
  for path in pipeline.list_shards(record_dir, split):
    for serialized in tf.data.TFRecordDataset(path):
      example = records.parse_example(serialized)
      samples.append((example.filename.numpy().decode(), example.image.numpy(),
                      example.label.numpy()[..., 0],
                      example.classes_present.numpy().tolist()))
  return samples


def test_scenes_are_seeded_and_deterministic():
  a = quickstart.generate_scene(quickstart.scene_rng(0, 'train', 5))
  b = quickstart.generate_scene(quickstart.scene_rng(0, 'train', 5))
  c = quickstart.generate_scene(quickstart.scene_rng(0, 'train', 6))
  d = quickstart.generate_scene(quickstart.scene_rng(0, 'val', 5))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])
  image, label = a
  assert image.shape == (96, 128, 3) and image.dtype == np.uint8
  assert label.shape == (96, 128) and label.dtype == np.uint8
  assert set(np.unique(label)) <= VALUES


def test_written_in_seconds_in_the_original_schema(quickstart_dir):
  out, descriptor, elapsed = quickstart_dir
  assert elapsed < 30, elapsed   # about 2 s on 2 cores
  assert descriptor.splits_to_sizes == {'train': 300, 'val': 60}
  assert descriptor.num_classes == 6 and descriptor.ignore_label == 255
  assert sorted(os.listdir(out)) == sorted(
      ['dataset.json', 'quickstart.json']
      + ['%s-%05d-of-00004.tfrecord' % (s, i) for s in ('train', 'val')
         for i in range(4)])
  assert datasets_info.load_descriptor(os.path.join(out, 'dataset.json')) == (
      descriptor)
  val = _read_split(out, 'val')
  assert len(val) == 60
  assert len(_read_split(out, 'train')) == 300
  counts = np.zeros(256, np.int64)
  for name, image, label, present in val:
    assert image.shape == (96, 128, 3)
    assert set(np.unique(label)) <= VALUES
    assert present == sorted(set(np.unique(label).tolist()) - {255})
    counts += np.bincount(label.ravel(), minlength=256)
  # Every class occurs, and the ignore band is thin.
  assert (counts[:6] > 0).all()
  assert counts[255] < 0.05 * counts.sum()
  # Records are the images the generator makes (JPEG-compressed).
  name, image, label, _ = val[7]
  assert name == 'quickstart_val_000007'
  want_image, want_label = quickstart.generate_scene(
      quickstart.scene_rng(0, 'val', 7))
  np.testing.assert_array_equal(label, want_label)
  assert np.abs(image.astype(np.int32) - want_image).mean() < 8


def test_pipeline_reads_it(quickstart_dir):
  out, descriptor, _ = quickstart_dir
  settings = pipeline.InputSettings(crop_size=(97, 129),
                                    hard_classes=(quickstart.CONE,),
                                    hard_class_repeat=2)
  batch = next(iter(pipeline.build_dataset(descriptor, 'train', out, settings,
                                           8, True, deterministic=True)))
  assert batch['image'].shape == (8, 97, 129, 3)
  assert set(np.unique(batch['label'])) <= VALUES
  # Registered under its name too (default sizes).
  assert datasets_info.get_descriptor('quickstart') == descriptor


def test_learnable_from_colour_alone(quickstart_dir):
  """A per-pixel Gaussian colour classifier fit on train scores well on val."""
  out, _, _ = quickstart_dir
  train = _read_split(out, 'train')[:100]
  val = _read_split(out, 'val')
  x = np.concatenate([s[1].reshape(-1, 3) for s in train]).astype(np.float64)
  y = np.concatenate([s[2].ravel() for s in train])
  xv = np.concatenate([s[1].reshape(-1, 3) for s in val]).astype(np.float64)
  yv = np.concatenate([s[2].ravel() for s in val])
  scores = []
  for c in range(6):
    xc = x[y == c]
    mean, cov = xc.mean(0), np.cov(xc.T) + np.eye(3)
    d = xv - mean
    scores.append(-0.5 * np.einsum('ij,jk,ik->i', d, np.linalg.inv(cov), d)
                  - 0.5 * np.linalg.slogdet(cov)[1])
  pred = np.argmax(np.stack(scores, 1), 1)
  valid = yv != 255
  ious = [((pred == c) & (yv == c) & valid).sum()
          / (((pred == c) | (yv == c)) & valid).sum() for c in range(6)]
  assert min(ious) > 0.5 and np.mean(ious) > 0.8, ious


def test_ensure_keeps_an_identical_dataset(tmp_path):
  out = str(tmp_path)
  quickstart.ensure_quickstart(out, num_train=8, num_val=4)
  shard = os.path.join(out, 'train-00000-of-00004.tfrecord')
  before = os.stat(shard).st_mtime_ns
  descriptor = quickstart.ensure_quickstart(out, num_train=8, num_val=4)
  assert os.stat(shard).st_mtime_ns == before
  assert descriptor.splits_to_sizes == {'train': 8, 'val': 4}
  quickstart.ensure_quickstart(out, num_train=8, num_val=4, seed=1)
  assert os.stat(shard).st_mtime_ns != before


def test_cli(tmp_path):
  out = str(tmp_path / 'qs')
  result = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.data.quickstart',
       '--output_dir=' + out, '--num_train=8', '--num_val=4'],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert result.returncode == 0, result.stderr
  assert 'wrote 8 train + 4 val images' in result.stdout
  assert len(tf.io.gfile.glob(os.path.join(out, 'train-*'))) == 4
