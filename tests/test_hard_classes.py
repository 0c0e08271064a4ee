"""Hard-class duplication: epoch composition, presence key, cached index."""
import collections
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data import hard_classes
from deeplab_tf.data import pipeline
import record_helpers

DESCRIPTOR = datasets_info.DatasetDescriptor('tiny', {'train': 12}, 6, 255)


def _labels():
  """12 labels; records 1, 4, 7, 10 contain class 4 and 2, 3 contain class 5."""
  labels = []
  for i in range(12):
    label = np.zeros((6, 8), np.uint8)
    label[:3] = i % 3
    if i % 3 == 1:
      label[4, :4] = 4
    if i in (2, 3):
      label[5, 5:] = 5
    label[0, 0] = 255
    labels.append(label)
  return labels


HARD_4 = {'train_%04d' % i for i in (1, 4, 7, 10)}
HARD_5 = {'train_%04d' % i for i in (2, 3)}


def _composition(record_dir, hard, repeat, num_epochs=1, is_training=True,
                 input_context=None, index_dir=None):
  settings = pipeline.InputSettings(crop_size=(9, 9), hard_classes=hard,
                                    hard_class_repeat=repeat,
                                    class_presence_index_dir=index_dir)
  dataset = pipeline.build_dataset(DESCRIPTOR, 'train', record_dir, settings,
                                   batch_size=1, is_training=is_training,
                                   deterministic=True, num_epochs=num_epochs,
                                   input_context=input_context)
  return collections.Counter(b['filename'].numpy()[0].decode() for b in dataset)


@pytest.fixture(params=['presence_key', 'index'])
def record_dir(request, tmp_path):
  record_helpers.write_records(str(tmp_path), 'train', _labels(), num_shards=3,
                               with_presence=request.param == 'presence_key')
  return str(tmp_path)


def test_epoch_composition_is_exact(record_dir):
  names = ['train_%04d' % i for i in range(12)]
  got = _composition(record_dir, (4,), 3)
  assert got == collections.Counter(
      {n: 3 if n in HARD_4 else 1 for n in names})
  # Any of several hard classes; two epochs double every count.
  got = _composition(record_dir, (4, 5), 2, num_epochs=2)
  assert got == collections.Counter(
      {n: 4 if n in HARD_4 | HARD_5 else 2 for n in names})
  # A class no record contains, repeat 1, and evaluation: no duplication.
  plain = collections.Counter(names)
  assert _composition(record_dir, (3,), 5) == plain
  assert _composition(record_dir, (4,), 1) == plain
  assert _composition(record_dir, (4,), 3, is_training=False) == plain


def test_duplication_per_input_pipeline_adds_up(record_dir):
  total = collections.Counter()
  for pipeline_id in range(2):
    context = tf.distribute.InputContext(2, pipeline_id, 2)
    total += _composition(record_dir, (4,), 2, input_context=context)
  assert total == collections.Counter(
      {'train_%04d' % i: 2 if 'train_%04d' % i in HARD_4 else 1
       for i in range(12)})


def test_presence_key_needs_no_index(tmp_path):
  record_helpers.write_records(str(tmp_path), 'train', _labels(), num_shards=3)
  _composition(str(tmp_path), (4,), 2)
  assert not os.path.exists(hard_classes.index_path(str(tmp_path), 'train'))


def test_index_is_computed_once_and_rebuilt_when_a_shard_changes(
    tmp_path, monkeypatch):
  record_dir = str(tmp_path)
  labels = _labels()
  record_helpers.write_records(record_dir, 'train', labels, num_shards=3,
                               with_presence=False)
  calls = []
  real = hard_classes.compute_class_presence
  monkeypatch.setattr(hard_classes, 'compute_class_presence',
                      lambda files: calls.append(files) or real(files))
  first = _composition(record_dir, (4,), 2)
  path = hard_classes.index_path(record_dir, 'train')
  assert os.path.exists(path) and len(calls) == 1
  with open(path) as f:
    index = json.load(f)
  # The index holds every label value present (the ignore label included).
  assert index['presence'][0][1] == [0, 1, 4, 255]
  assert [len(p) for p in index['presence']] == [4, 4, 4]
  # Built once: later datasets (and later epochs) reuse it.
  assert _composition(record_dir, (4,), 2, num_epochs=2) == first + first
  assert _composition(record_dir, (5,), 3)['train_0002'] == 3
  assert len(calls) == 1
  # The index shard pattern never matches the index itself.
  assert pipeline.list_shards(record_dir, 'train') == sorted(
      tf.io.gfile.glob(os.path.join(record_dir, 'train-*.tfrecord')))
  # Rewrite the shards with class 4 added to record 0: the index is stale.
  labels[0][5, 0] = 4
  record_helpers.write_records(record_dir, 'train', labels, num_shards=3,
                               with_presence=False)
  os.utime(os.path.join(record_dir, 'train-00000-of-00003.tfrecord'),
           ns=(1, 1))
  got = _composition(record_dir, (4,), 2)
  assert len(calls) == 2
  assert got['train_0000'] == 2


def test_index_in_another_folder_when_records_are_read_only(tmp_path):
  record_dir = str(tmp_path / 'records')
  index_dir = str(tmp_path / 'index')
  os.makedirs(index_dir)
  record_helpers.write_records(record_dir, 'train', _labels(), num_shards=3,
                               with_presence=False)
  got = _composition(record_dir, (5,), 4, index_dir=index_dir)
  assert got['train_0002'] == 4 and got['train_0000'] == 1
  assert os.path.exists(hard_classes.index_path(record_dir, 'train', index_dir))
  assert not os.path.exists(hard_classes.index_path(record_dir, 'train'))


def test_unwritable_index_is_used_from_memory(tmp_path):
  record_dir = str(tmp_path)
  record_helpers.write_records(record_dir, 'train', _labels(), num_shards=3,
                               with_presence=False)
  got = _composition(record_dir, (5,), 2,
                     index_dir=os.path.join(record_dir, 'missing', 'folder'))
  assert got['train_0003'] == 2


def test_index_matches_the_presence_key(tmp_path):
  files = []
  record_helpers.write_records(str(tmp_path), 'train', _labels(), num_shards=2)
  files = pipeline.list_shards(str(tmp_path), 'train')
  from_index = [c for shard in hard_classes.compute_class_presence(files)
                for c in shard]
  from_key = []
  for path in files:
    for serialized in tf.data.TFRecordDataset(path):
      example = tf.train.Example.FromString(serialized.numpy())
      from_key.append(list(example.features.feature[
          'image/segmentation/class/present'].int64_list.value))
  assert [[c for c in p if c != 255] for p in from_index] == from_key


def test_repeat_counts():
  assert hard_classes.repeat_counts([[0, 2], [9], [], [1, 9, 11]], (9, 11),
                                    3) == [1, 3, 1, 3]


def test_presets_are_the_paper_classes():
  voc = datasets_info.PASCAL_VOC_SEG.class_names
  assert [voc[i] for i in datasets_info.VOC_HARD_CLASSES] == [
      'bicycle', 'chair', 'diningtable', 'pottedplant', 'sofa']
  cityscapes = datasets_info.CITYSCAPES.class_names
  assert sorted(cityscapes[i] for i in datasets_info.CITYSCAPES_HARD_CLASSES) == [
      'bicycle', 'bus', 'train']
  assert datasets_info.resolve_hard_classes(
      ['paper'], datasets_info.PASCAL_VOC_SEG) == (2, 9, 11, 16, 18)
  assert datasets_info.resolve_hard_classes(
      ['bus', '16', 18], datasets_info.CITYSCAPES) == (15, 16, 18)
  with pytest.raises(datasets_info.DescriptorError, match='table'):
    datasets_info.resolve_hard_classes(['table'], datasets_info.PASCAL_VOC_SEG)
  with pytest.raises(datasets_info.DescriptorError, match='No hard-class'):
    datasets_info.resolve_hard_classes(['paper'], datasets_info.CAMVID)
  with pytest.raises(datasets_info.DescriptorError, match='21'):
    datasets_info.resolve_hard_classes([21], datasets_info.PASCAL_VOC_SEG)


def test_hard_classes_help_names_what_is_accepted():
  """--hard_classes' help lists exactly the presets resolve_hard_classes takes."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from deeplab_tf import train  # pylint: disable=g-import-not-at-top,unused-import
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  text = flags.FLAGS['hard_classes'].help
  assert '"paper"' in text and 'class names' in text
  for name in datasets_info.HARD_CLASS_PRESETS:
    assert name in text
    ids = datasets_info.resolve_hard_classes(
        ['paper'], datasets_info.get_descriptor(name))
    assert ids == tuple(sorted(datasets_info.HARD_CLASS_PRESETS[name]))
  with pytest.raises(datasets_info.DescriptorError, match='presets exist for'):
    datasets_info.resolve_hard_classes(['paper'],
                                       datasets_info.get_descriptor('camvid'))
