"""TFDS sources: mapping functions on hand-made features, mock_data end to end.

No network: the features are built by hand in the shapes of each builder's
``features`` (TFDS 4.9), and the end-to-end test uses tfds.testing.mock_data.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import tfds_sources as S


def _image(height, width, seed=0):
  return tf.constant(np.random.default_rng(seed).integers(
      0, 256, (height, width, 3), dtype=np.uint8))


def _check_sample(sample, height, width):
  assert sample['image'].dtype == tf.uint8
  assert sample['image'].shape.as_list() == [height, width, 3]
  assert sample['label'].dtype == tf.uint8
  assert sample['label'].shape.as_list() == [height, width, 1]
  assert sample['filename'].dtype == tf.string


def test_cityscapes_label_ids_to_train_ids():
  ids = np.array([[0, 7, 8, 11], [24, 26, 33, 34], [255, 6, 31, 28]], np.uint8)
  features = {'image_id': tf.constant('aachen_000000_000019'),
              'image_left': _image(3, 4),
              'segmentation_label': tf.constant(ids[..., None])}
  sample = S.cityscapes_to_sample(features)
  _check_sample(sample, 3, 4)
  np.testing.assert_array_equal(
      sample['label'][..., 0],
      [[255, 0, 1, 2], [11, 13, 18, 255], [255, 255, 16, 15]])
  assert sample['filename'].numpy() == b'aachen_000000_000019'
  # The 19 train ids each come from exactly one label id.
  table = S.LABEL_ID_TO_TRAIN_ID
  assert sorted(table[table != 255].tolist()) == list(range(19))


def test_cityscapes_from_encoded_png_features():
  ids = np.full((5, 6, 1), 26, np.uint8)
  features = {'image_id': tf.constant('x'),
              'image_left': tf.io.encode_png(_image(5, 6)),
              'segmentation_label': tf.io.encode_png(ids)}
  sample = S.cityscapes_to_sample(features)
  assert (sample['label'].numpy() == 13).all()
  np.testing.assert_array_equal(sample['image'], _image(5, 6))


def _panoptic_png(segment_map):
  ids = np.asarray(segment_map, np.int64)
  return tf.constant(np.stack([ids % 256, (ids // 256) % 256, ids // 65536],
                              -1).astype(np.uint8))


def test_coco_panoptic_semantic_view():
  # Segment ids use all three channels (R + 256 G + 256^2 B).
  segment_map = [[0, 26, 26, 70000],
                 [300, 300, 70000, 70000],
                 [5, 5, 999, 0]]
  objects = {'id': tf.constant([70000, 26, 300, 5], tf.int64),
             'label': tf.constant([132, 0, 80, 17], tf.int64),
             'is_crowd': tf.constant([False, False, True, False]),
             'area': tf.constant([3, 2, 2, 2], tf.int64),
             'bbox': tf.zeros([4, 4], tf.float32)}
  features = {'image': _image(3, 4), 'image/filename': tf.constant('a.jpg'),
              'image/id': tf.constant(1, tf.int64),
              'panoptic_image': _panoptic_png(segment_map),
              'panoptic_image/filename': tf.constant('a.png'),
              'panoptic_objects': objects}
  sample = S.coco_panoptic_to_sample(features)
  _check_sample(sample, 3, 4)
  # 0 (unlabeled) and 999 (no segment) are ignored; crowd keeps its class.
  np.testing.assert_array_equal(sample['label'][..., 0],
                                [[255, 0, 0, 132], [80, 80, 132, 132],
                                 [17, 17, 255, 255]])
  assert sample['filename'].numpy() == b'a.jpg'


def test_coco_panoptic_without_segments_is_all_ignore():
  label = S.panoptic_to_semantic(_panoptic_png([[0, 4], [9, 0]]),
                                 tf.zeros([0], tf.int64),
                                 tf.zeros([0], tf.int64))
  assert label.shape == (2, 2, 1) and (label.numpy() == 255).all()


def test_scene_parse150_takes_the_red_channel():
  annotation = np.zeros((4, 5, 3), np.uint8)
  annotation[..., 0] = [[0, 1, 2, 3, 100]] * 4   # category ids
  annotation[..., 1] = 7                           # instance ids
  features = {'image': _image(4, 5), 'annotation': tf.constant(annotation),
              'tfds_id': tf.constant('scene_parse150-train.tfrecord-00000-of-00001__3')}
  sample = S.scene_parse150_to_sample(features)
  _check_sample(sample, 4, 5)
  np.testing.assert_array_equal(sample['label'][..., 0], annotation[..., 0])
  descriptor = S.get_source('scene_parse150').descriptor
  assert (descriptor.num_classes, descriptor.ignore_label) == (101, 0)


def test_oxford_pet_trimap():
  trimap = np.array([[1, 2, 3], [2, 2, 1]], np.uint8)[..., None]
  features = {'image': _image(2, 3), 'label': tf.constant(3, tf.int64),
              'species': tf.constant(1, tf.int64),
              'file_name': tf.constant('Abyssinian_1.jpg'),
              'segmentation_mask': tf.constant(trimap),
              'head_bbox': tf.zeros([4], tf.float32)}
  sample = S.oxford_pet_to_sample(features)
  _check_sample(sample, 2, 3)
  np.testing.assert_array_equal(sample['label'][..., 0],
                                [[1, 0, 255], [0, 0, 1]])


def test_size_mismatch_names_the_example():
  features = {'image': _image(2, 3), 'file_name': tf.constant('cat_7.jpg'),
              'segmentation_mask': tf.ones([3, 3, 1], tf.uint8)}
  with pytest.raises(tf.errors.InvalidArgumentError, match='cat_7.jpg'):
    S.oxford_pet_to_sample(features)


def test_sources_selected_by_name_and_descriptors():
  assert sorted(S.SOURCES) == ['cityscapes/semantic_segmentation',
                               'coco/2017_panoptic', 'oxford_iiit_pet',
                               'scene_parse150']
  assert S.get_source('coco/2017_panoptic').descriptor.num_classes == 133
  assert S.get_source('oxford_iiit_pet').descriptor.num_classes == 2
  cityscapes = S.get_source('cityscapes/semantic_segmentation').descriptor
  assert cityscapes.num_classes == 19 and not cityscapes.has_labels('test')
  with pytest.raises(datasets_info.DescriptorError, match='accepted'):
    S.get_source('voc')


def test_build_errors_without_network(tmp_path):
  settings = pipeline.InputSettings(crop_size=(65, 65))
  with pytest.raises(datasets_info.DescriptorError, match='accepted'):
    S.build_tfds_dataset('oxford_iiit_pet', 'validation', settings, 2, True,
                         data_dir=str(tmp_path))
  with pytest.raises(pipeline.InputError, match='Hard-class'):
    S.build_tfds_dataset('oxford_iiit_pet', 'train',
                         pipeline.InputSettings(hard_classes=(1,),
                                                hard_class_repeat=2),
                         2, True, data_dir=str(tmp_path))
  with pytest.raises(pipeline.InputError, match='not prepared'):
    S.build_tfds_dataset('oxford_iiit_pet', 'train[:10%]', settings, 2, True,
                         data_dir=str(tmp_path))


def test_mock_cityscapes_through_the_pipeline():
  settings = pipeline.InputSettings(crop_size=(65, 129), min_resize_value=64,
                                    max_resize_value=128)
  with tfds.testing.mock_data(num_examples=2,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    train = S.build_tfds_dataset('cityscapes/semantic_segmentation', 'train',
                                 settings, 2, True, deterministic=True,
                                 num_epochs=1)
    evaluation = S.build_tfds_dataset('cityscapes/semantic_segmentation',
                                      'test', settings, 2, False)
    train_batches = list(train)
    eval_batches = list(evaluation)
  assert len(train_batches) == 1
  batch = train_batches[0]
  assert batch['image'].shape == (2, 65, 129, 3)
  assert batch['label'].shape == (2, 65, 129, 1)
  assert batch['label'].dtype == tf.int32
  assert set(np.unique(batch['label'])) <= set(range(19)) | {255}
  assert batch['height'].numpy().tolist() == [1024, 1024]
  # The test split has no labels.
  assert [b['image'].shape[0] for b in eval_batches] == [2]
  assert 'label' not in eval_batches[0]
