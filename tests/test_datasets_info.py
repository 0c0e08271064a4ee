"""Dataset descriptors: the original table, CamVid, custom JSON descriptions."""
import json
import os

import pytest

from deeplab_tf.data import datasets_info as D


def test_original_descriptors():
  voc = D.get_descriptor('pascal_voc_seg')
  assert voc.splits_to_sizes == {'train': 1464, 'train_aug': 10582,
                                 'trainval': 2913, 'val': 1449}
  assert (voc.num_classes, voc.ignore_label) == (21, 255)
  cityscapes = D.get_descriptor('cityscapes')
  assert cityscapes.splits_to_sizes == {
      'train_fine': 2975, 'train_coarse': 22973, 'trainval_fine': 3475,
      'trainval_coarse': 23473, 'val_fine': 500, 'test_fine': 1525}
  assert (cityscapes.num_classes, cityscapes.ignore_label) == (19, 255)
  ade = D.get_descriptor('ade20k')
  assert ade.splits_to_sizes == {'train': 20210, 'val': 2000}
  assert (ade.num_classes, ade.ignore_label) == (151, 0)
  camvid = D.get_descriptor('camvid')
  assert camvid.splits_to_sizes == {'train': 367, 'val': 101, 'test': 233}
  assert (camvid.num_classes, camvid.ignore_label) == (11, 255)
  assert camvid.has_labels('test')
  # As the original, a split called 'test' is read without labels by default.
  assert not D.DatasetDescriptor('x', {'test': 1}, 2, 255).has_labels('test')


def test_colormaps():
  voc = D.PASCAL_VOC_SEG.colormap
  assert voc[:4] == ((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0))
  assert voc[15] == (192, 128, 128)   # person
  assert len(D.CITYSCAPES.colormap) == 19 and len(D.CAMVID.colormap) == 11


def test_json_round_trip(tmp_path):
  path = str(tmp_path / 'my.json')
  config = {'name': 'leaves', 'num_classes': 3, 'ignore_label': 255,
            'splits_to_sizes': {'train': 40, 'val': 10},
            'class_names': ['background', 'leaf', 'stem'],
            'colormap': [[0, 0, 0], [0, 200, 0], [120, 80, 0]]}
  with open(path, 'w') as f:
    json.dump(config, f)
  descriptor = D.get_descriptor(path)
  assert descriptor.name == 'leaves' and descriptor.num_classes == 3
  assert descriptor.class_names == ('background', 'leaf', 'stem')
  assert descriptor.colormap[1] == (0, 200, 0)
  again = str(tmp_path / 'again.json')
  D.save_descriptor(descriptor, again)
  assert D.load_descriptor(again) == descriptor


@pytest.mark.parametrize('change, message', [
    ({'num_classes': None}, 'missing key'),
    ({'extra': 1}, "unknown key.*extra"),
    ({'splits_to_sizes': {'train': 0}}, "size of split 'train'"),
    ({'splits_to_sizes': {}}, 'splits_to_sizes'),
    ({'num_classes': 300}, r'num_classes must be an int in \[1, 256\]'),
    ({'num_classes': True}, 'num_classes'),
    ({'ignore_label': -1}, 'ignore_label'),
    ({'class_names': ['a']}, 'class_names must be 3 strings'),
    ({'colormap': [[0, 0, 0]]}, 'at least num_classes=3'),
    ({'colormap': [[0, 0, 999]] * 3}, r'\[r, g, b\]'),
    ({'unlabeled_splits': 'test'}, 'unlabeled_splits must be a list'),
])
def test_invalid_json_names_the_file_and_the_problem(tmp_path, change, message):
  config = {'name': 'x', 'num_classes': 3, 'ignore_label': 255,
            'splits_to_sizes': {'train': 4}}
  for key, value in change.items():
    if value is None:
      del config[key]
    else:
      config[key] = value
  path = str(tmp_path / 'bad.json')
  with open(path, 'w') as f:
    json.dump(config, f)
  with pytest.raises(D.DescriptorError, match=message) as info:
    D.load_descriptor(path)
  assert 'bad.json' in str(info.value)


def test_unreadable_or_unknown(tmp_path):
  path = str(tmp_path / 'syntax.json')
  with open(path, 'w') as f:
    f.write('{"name": ')
  with pytest.raises(D.DescriptorError, match='syntax.json is not valid JSON'):
    D.get_descriptor(path)
  with pytest.raises(D.DescriptorError, match='does not exist'):
    D.get_descriptor(os.path.join(str(tmp_path), 'none.json'))
  with pytest.raises(D.DescriptorError, match='Unknown dataset.*pascal_voc_seg'):
    D.get_descriptor('voc2012')
  with pytest.raises(D.DescriptorError, match="Split 'trian'.*accepted"):
    D.CAMVID.split_size('trian')
  assert D.CAMVID.split_size('val') == 101
