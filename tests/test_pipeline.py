"""deeplab_tf.data.pipeline on real CamVid records and small synthetic ones."""
import collections
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import preprocess
import record_helpers

CAMVID_VALUES = set(range(11)) | {255}


@pytest.fixture(scope='module')
def camvid_dir(tmp_path_factory):
  if not os.path.isdir(record_helpers.CAMVID_DIR):
    pytest.fail('../shared/camvid not found beside the repository.')
  record_dir = str(tmp_path_factory.mktemp('camvid_records'))
  train = record_helpers.write_camvid_records(record_dir, 'train', 'train.txt',
                                              48, num_shards=4)
  val = record_helpers.write_camvid_records(record_dir, 'val', 'val.txt', 6,
                                            num_shards=1)
  return record_dir, train, val


def _batches(dataset, limit=None):
  out = []
  for batch in dataset:
    out.append({k: v.numpy() for k, v in batch.items()})
    if limit and len(out) >= limit:
      break
  return out


# ---------------------------------------------------------------------------
# Shapes, dtypes, values, padding.
# ---------------------------------------------------------------------------

def test_training_batches_shapes_dtypes_and_label_values(camvid_dir):
  record_dir, _, _ = camvid_dir
  settings = pipeline.InputSettings(crop_size=(129, 161), min_resize_value=120,
                                    model_variant='xception_65')
  dataset = pipeline.build_dataset('camvid', 'train', record_dir, settings,
                                   batch_size=4, is_training=True,
                                   deterministic=True, num_epochs=1)
  spec = dataset.element_spec
  assert spec['image'].shape.as_list() == [4, 129, 161, 3]
  assert spec['label'].shape.as_list() == [4, 129, 161, 1]
  assert spec['image'].dtype == tf.float32 and spec['label'].dtype == tf.int32
  assert 'original_image' not in spec
  batches = _batches(dataset)
  assert len(batches) == 12   # 48 records, batch 4, one epoch
  for b in batches:
    assert b['image'].min() >= 0.0 and b['image'].max() <= 255.0
    assert set(np.unique(b['label'])) <= CAMVID_VALUES
    assert b['height'].tolist() == [360] * 4 and b['width'].tolist() == [480] * 4
    assert b['filename'].dtype == object
  names = [n for b in batches for n in b['filename']]
  assert len(set(names)) == 48


@pytest.mark.parametrize('variant, pad', [
    ('xception_65', [127.5, 127.5, 127.5]),
    ('resnet_v1_50', [123.15, 115.90, 103.06]),
])
def test_eval_keeps_whole_image_padded_with_mean_pixel_and_ignore(
    camvid_dir, variant, pad):
  record_dir, _, val = camvid_dir
  settings = pipeline.InputSettings(crop_size=(365, 483), model_variant=variant,
                                    keep_original_image=True)
  dataset = pipeline.build_dataset('camvid', 'val', record_dir, settings,
                                   batch_size=4, is_training=False)
  batches = _batches(dataset)
  assert [b['image'].shape[0] for b in batches] == [4, 2]
  seen = set()
  for b in batches:
    assert b['image'].shape[1:] == (365, 483, 3)
    for i, name in enumerate(b['filename']):
      name = name.decode()
      seen.add(name)
      image, label = val[name]
      np.testing.assert_allclose(b['image'][i, :360, :480], image, atol=1e-4)
      np.testing.assert_allclose(b['image'][i, 360:], np.broadcast_to(
          np.float32(pad), (5, 483, 3)), rtol=0, atol=0)
      np.testing.assert_allclose(b['image'][i, :, 480:], np.broadcast_to(
          np.float32(pad), (365, 3, 3)), rtol=0, atol=0)
      # Labels untouched (nearest neighbour, no resize), padded with 255.
      np.testing.assert_array_equal(b['label'][i, :360, :480, 0], label)
      assert (b['label'][i, 360:] == 255).all()
      assert (b['label'][i, :, 480:] == 255).all()
      np.testing.assert_array_equal(b['original_image'][i], image)
      assert b['original_image'].dtype == np.uint8
  assert seen == set(val)


def test_eval_image_larger_than_crop_is_an_error_naming_the_file(camvid_dir):
  record_dir, _, val = camvid_dir
  settings = pipeline.InputSettings(crop_size=(300, 481))
  dataset = pipeline.build_dataset('camvid', 'val', record_dir, settings,
                                   batch_size=1, is_training=False)
  # Parallel decoding: whichever val image is decoded first is named.
  names = '|'.join(re.escape(n) for n in val)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'(%s).*does not fit crop_size' % names):
    _batches(dataset, limit=1)


def test_eval_resize_then_pad(camvid_dir):
  record_dir, _, _ = camvid_dir
  # 360x480 -> resize_to_range(min 200, max 250): the long side caps the
  # size, 187 x 249 in float32 (250/480*480 rounds below 250), padded.
  want = preprocess.resize_to_range_size(360, 480, 200, 250).numpy().tolist()
  assert want == [187, 249]
  settings = pipeline.InputSettings(crop_size=(193, 257), min_resize_value=200,
                                    max_resize_value=250,
                                    keep_original_image=True)
  b = _batches(pipeline.build_dataset('camvid', 'val', record_dir, settings,
                                      batch_size=2, is_training=False), 1)[0]
  assert b['original_image'].shape == (2, 187, 249, 3)
  assert b['original_image'].dtype == np.float32   # the resized image
  assert (b['label'][:, 187:] == 255).all() and (b['label'][:, :, 249:] == 255).all()
  assert set(np.unique(b['label'][:, :187, :249])) <= CAMVID_VALUES


# ---------------------------------------------------------------------------
# Augmentation statistics (real images).
# ---------------------------------------------------------------------------

def _scaled_extent(image, pad_value):
  """(height, width, flipped) of the content inside a padded, uncropped sample."""
  content = np.any(image != np.float32(pad_value), axis=-1)
  rows = np.flatnonzero(content.any(axis=1))
  cols = np.flatnonzero(content.any(axis=0))
  height, width = rows[-1] + 1, cols[-1] - cols[0] + 1
  assert rows[0] == 0, 'padding is added at the bottom only'
  assert cols[0] == 0 or cols[-1] == image.shape[1] - 1, 'one pad side'
  return height, width, cols[0] > 0


def test_augmentation_scales_from_the_allowed_set_and_flip_rate(camvid_dir):
  record_dir, _, _ = camvid_dir
  # CamVid resized to 90x120 first; crop 181x241 holds every scale up to 2.0
  # so nothing is cropped and the padding shows the scaled size and the flip
  # (flipped samples have their padding on the left).
  settings = pipeline.InputSettings(crop_size=(181, 241), min_resize_value=90,
                                    model_variant='mobilenet_v2')
  dataset = pipeline.build_dataset('camvid', 'train', record_dir, settings,
                                   batch_size=8, is_training=True,
                                   deterministic=True, seed=7, num_epochs=6)
  scales = preprocess.random_scale_values(0.5, 2.0, 0.25)
  allowed = {(int(np.float32(90) * np.float32(s)),
              int(np.float32(120) * np.float32(s))) for s in scales}
  assert len(allowed) == 7
  sizes = collections.Counter()
  flips = 0
  total = 0
  for b in _batches(dataset):
    for image, label in zip(b['image'], b['label']):
      height, width, flipped = _scaled_extent(image, 127.5)
      sizes[(height, width)] += 1
      flips += int(flipped)
      total += 1
      # Image and label were scaled, padded and flipped together.
      cols = slice(241 - width, 241) if flipped else slice(0, width)
      content = np.zeros(label.shape[:2], bool)
      content[:height, cols] = True
      assert (label[~content] == 255).all()
      assert (label[content] != 255).any()
      assert set(np.unique(label)) <= CAMVID_VALUES
  assert total == 288
  assert set(sizes) <= allowed, set(sizes) - allowed
  assert set(sizes) == allowed   # all seven scales drawn
  # p = 0.5, n = 288: sd 0.03, the bounds are 3.4 sd away (and seeded).
  assert 0.4 <= flips / total <= 0.6, flips / total


# ---------------------------------------------------------------------------
# Determinism, sharding.
# ---------------------------------------------------------------------------

def test_deterministic_mode_gives_identical_batches(camvid_dir):
  record_dir, _, _ = camvid_dir
  settings = pipeline.InputSettings(crop_size=(97, 129), min_resize_value=90)

  def first_batches(seed):
    return _batches(pipeline.build_dataset(
        'camvid', 'train', record_dir, settings, batch_size=4,
        is_training=True, deterministic=True, seed=seed), 3)

  a, b, c = first_batches(3), first_batches(3), first_batches(4)
  for x, y in zip(a, b):
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert any(not np.array_equal(x['image'], z['image']) for x, z in zip(a, c))


@pytest.mark.parametrize('num_shards', [4, 1])
@pytest.mark.parametrize('is_training', [True, False])
def test_two_input_pipelines_cover_every_record_once(tmp_path, num_shards,
                                                      is_training):
  labels = [np.full((6, 8), i % 3, np.uint8) for i in range(22)]
  names = record_helpers.write_records(str(tmp_path), 'train', labels,
                                       num_shards=num_shards)
  descriptor = datasets_info.DatasetDescriptor('tiny', {'train': 22}, 3, 255)
  settings = pipeline.InputSettings(crop_size=(9, 9))
  seen = collections.Counter()
  per_pipeline = []
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2,
                                         input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
    dataset = pipeline.build_dataset(descriptor, 'train', str(tmp_path),
                                     settings, batch_size=1,
                                     is_training=is_training,
                                     input_context=context, num_epochs=1)
    got = [n.decode() for b in _batches(dataset) for n in b['filename']]
    per_pipeline.append(len(got))
    seen.update(got)
  assert seen == collections.Counter(names)
  assert min(per_pipeline) > 0


def test_batch_size_is_per_replica_and_drops_the_remainder_in_training(tmp_path):
  labels = [np.zeros((6, 8), np.uint8)] * 10
  record_helpers.write_records(str(tmp_path), 'train', labels)
  descriptor = datasets_info.DatasetDescriptor('tiny', {'train': 10}, 3, 255)
  settings = pipeline.InputSettings(crop_size=(9, 9))
  train = _batches(pipeline.build_dataset(descriptor, 'train', str(tmp_path),
                                          settings, 4, True, num_epochs=1))
  evaluation = _batches(pipeline.build_dataset(descriptor, 'train',
                                               str(tmp_path), settings, 4,
                                               False))
  assert [len(b['filename']) for b in train] == [4, 4]
  assert [len(b['filename']) for b in evaluation] == [4, 4, 2]
  # Training repeats forever by default.
  forever = pipeline.build_dataset(descriptor, 'train', str(tmp_path),
                                   settings, 4, True)
  assert len(_batches(forever, limit=7)) == 7


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------

def test_no_shard_names_the_pattern(tmp_path):
  with pytest.raises(pipeline.InputError, match=r'train_aug-\*'):
    pipeline.build_dataset('pascal_voc_seg', 'train_aug', str(tmp_path),
                           pipeline.InputSettings(), 2, True)


def test_split_not_in_descriptor_lists_the_accepted_ones(tmp_path):
  with pytest.raises(datasets_info.DescriptorError,
                     match="'train'.*'cityscapes'.*accepted: test_fine, "
                     "train_coarse, train_fine"):
    pipeline.build_dataset('cityscapes', 'train', str(tmp_path),
                           pipeline.InputSettings(), 2, True)
  with pytest.raises(datasets_info.DescriptorError, match='accepted: train, '
                     'train_aug, trainval, val'):
    pipeline.build_dataset('pascal_voc_seg', 'test', str(tmp_path),
                           pipeline.InputSettings(), 2, False)


def test_zero_records_is_an_error(tmp_path):
  for shard in range(2):
    open(os.path.join(str(tmp_path), 'val-%05d-of-00002.tfrecord' % shard),
         'wb').close()
  with pytest.raises(pipeline.InputError, match="'val' has zero records"):
    pipeline.build_dataset('camvid', 'val', str(tmp_path),
                           pipeline.InputSettings(), 2, False)


def test_unlabeled_split_reads_without_label_and_cannot_train(tmp_path):
  record_helpers.write_records(str(tmp_path), 'test',
                               [np.zeros((6, 8), np.uint8)] * 3)
  descriptor = datasets_info.DatasetDescriptor('tiny', {'train': 1, 'test': 3},
                                               3, 255)
  assert not descriptor.has_labels('test')
  settings = pipeline.InputSettings(crop_size=(9, 9))
  batches = _batches(pipeline.build_dataset(descriptor, 'test', str(tmp_path),
                                            settings, 3, False))
  assert 'label' not in batches[0] and batches[0]['image'].shape == (3, 9, 9, 3)
  with pytest.raises(pipeline.InputError, match='has no labels'):
    pipeline.build_dataset(descriptor, 'test', str(tmp_path), settings, 3, True)


def test_label_value_out_of_range_names_the_file(tmp_path):
  labels = [np.zeros((6, 8), np.uint8), np.full((6, 8), 30, np.uint8)]
  record_helpers.write_records(str(tmp_path), 'val', labels, prefix='bad')
  dataset = pipeline.build_dataset('camvid', 'val', str(tmp_path),
                                   pipeline.InputSettings(crop_size=(9, 9)), 1,
                                   False)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'(?s)bad_0001.*value.*30'):
    _batches(dataset)


def test_settings_validation():
  with pytest.raises(pipeline.InputError, match='crop_size'):
    pipeline.InputSettings(crop_size=(0, 5))
  with pytest.raises(pipeline.InputError, match='hard_class_repeat'):
    pipeline.InputSettings(hard_class_repeat=0)
  with pytest.raises(pipeline.InputError, match='hard_classes'):
    pipeline.InputSettings(hard_classes=('chair',))
  with pytest.raises(ValueError, match='max_resize_value'):
    pipeline.InputSettings(max_resize_value=513)
  with pytest.raises(ValueError):
    pipeline.InputSettings(min_scale_factor=2.0, max_scale_factor=0.5)
  with pytest.raises(pipeline.InputError, match=r'hard_classes \[11\]'):
    pipeline.build_dataset('camvid', 'train', '/nonexistent',
                           pipeline.InputSettings(hard_classes=(3, 11)), 1,
                           True)
  with pytest.raises(pipeline.InputError, match='InputSettings'):
    pipeline.build_dataset('camvid', 'train', '/nonexistent', object(), 1, True)


def test_defaults_are_the_original_train_flags():
  s = pipeline.InputSettings()
  assert s.crop_size == (513, 513)
  assert (s.min_scale_factor, s.max_scale_factor,
          s.scale_factor_step_size) == (0.5, 2.0, 0.25)
  assert (s.min_resize_value, s.max_resize_value, s.resize_factor) == (
      None, None, None)
  assert s.model_variant == 'mobilenet_v2'
  assert s.shuffle_buffer == 100
  assert s.hard_classes == () and s.hard_class_repeat == 1
