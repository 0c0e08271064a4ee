"""COCO-format panoptic annotations (COCO, Mapillary Vistas) -> panoptic records."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data.convert import coco_panoptic as cp
from deeplab_tf.data import colormaps
from deeplab_tf.data import convert
from deeplab_tf.data import datasets_info
from deeplab_tf.data.convert import panoptic as panoptic_convert
from deeplab_tf.data import panoptic_pipeline
from deeplab_tf.data import panoptic_records as pr
from deeplab_tf.data import panoptic_targets
from deeplab_tf.data import pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# COCO-like: two things and two stuff categories with gaps in their ids.
CATEGORIES = [
    {'id': 184, 'name': 'sky', 'isthing': 0, 'color': [70, 130, 180]},
    {'id': 1, 'name': 'person', 'isthing': 1, 'color': [220, 20, 60]},
    {'id': 149, 'name': 'road', 'isthing': 0, 'color': [128, 64, 128]},
    {'id': 3, 'name': 'car', 'isthing': 1, 'color': [0, 0, 142]},
]
# Segment ids chosen to use all three PNG channels.
SKY, ROAD, PERSON_A, PERSON_B, CAR, CROWD = (7, 300, 70001, 3 * 65536 + 2,
                                             12, 13)


def _segments():
  """6x8 segment-id map and its segments_info (areas counted here)."""
  ids = np.zeros((6, 8), np.int64)
  ids[0:2] = SKY
  ids[4:6] = ROAD
  ids[2, 0:3] = PERSON_A
  ids[2, 4:7] = PERSON_B
  ids[3, 0:4] = CAR
  ids[3, 4:6] = CROWD
  # ids[2, 3], ids[2, 7], ids[3, 6:8] stay 0: void.
  info = [{'id': SKY, 'category_id': 184}, {'id': ROAD, 'category_id': 149},
          {'id': PERSON_A, 'category_id': 1}, {'id': PERSON_B, 'category_id': 1},
          {'id': CAR, 'category_id': 3},
          {'id': CROWD, 'category_id': 3, 'iscrowd': 1}]
  for segment in info:
    segment['area'] = int((ids == segment['id']).sum())
    segment.setdefault('iscrowd', 0)
  return ids, info


def _rgb(ids):
  return np.stack([ids % 256, ids // 256 % 256, ids // 65536],
                  -1).astype(np.uint8)


def _mapping(first=1, ignore=0):
  return cp.category_mapping(CATEGORIES, first, ignore)


def test_category_mapping_is_sorted_contiguous_with_things():
  mapping = _mapping()
  assert mapping.dataset_ids == (1, 3, 149, 184)
  assert mapping.lookup() == {1: 1, 3: 2, 149: 3, 184: 4}
  assert mapping.thing_classes == (1, 2) and mapping.num_classes == 5
  assert mapping.class_names() == ('void', 'person', 'car', 'road', 'sky')
  assert mapping.colormap()[4] == (70, 130, 180)
  zero_based = _mapping(first=0, ignore=255)
  assert zero_based.lookup()[184] == 3 and zero_based.thing_classes == (0, 1)
  with pytest.raises(ValueError, match='ignore label 2 would be a class id'):
    _mapping(first=0, ignore=2)
  with pytest.raises(ValueError, match='listed twice'):
    cp.category_mapping(CATEGORIES + [CATEGORIES[0]], 1, 0)


def test_rgb_ids_round_trip():
  ids, _ = _segments()
  np.testing.assert_array_equal(cp.rgb_to_segment_ids(_rgb(ids)), ids)


def test_segments_to_maps_follows_deeplab2():
  ids, info = _segments()
  category, instance = cp.segments_to_maps(ids, info, _mapping(), 256)
  assert category[0, 0] == 4 and instance[0, 0] == 0        # sky: stuff
  assert category[5, 7] == 3 and instance[5, 7] == 0        # road
  assert (category[2, 0:3] == 1).all() and (instance[2, 0:3] == 1).all()
  assert (category[2, 4:7] == 1).all() and (instance[2, 4:7] == 2).all()
  assert (category[3, 0:4] == 2).all() and (instance[3, 0:4] == 1).all()
  assert (category[3, 4:6] == 0).all() and (instance[3, 4:6] == 0).all()
  for r, c in ((2, 3), (2, 7), (3, 6), (3, 7)):               # void
    assert category[r, c] == 0 and instance[r, c] == 0
  # Crowds may keep their class (no instance) instead.
  category, instance = cp.segments_to_maps(ids, info, _mapping(), 256,
                                           treat_crowd_as_ignore=False)
  assert (category[3, 4:6] == 2).all() and (instance[3, 4:6] == 0).all()
  # A segment listed but absent from the PNG (area 0) is fine.
  cp.segments_to_maps(ids, info + [{'id': 99, 'category_id': 3, 'area': 0}],
                      _mapping(), 256)


@pytest.mark.parametrize('change, message', [
    (lambda info: info.pop(0), r'segment ids \[7\] of the PNG have no'),
    (lambda info: info[1].update(area=5), 'segment 300: the PNG has 16 pixels'),
    (lambda info: info[0].update(iscrowd=1), 'stuff category 184 marked'),
    (lambda info: info[2].update(category_id=2), 'category_id 2, not in'),
    (lambda info: info.append(dict(info[2])), 'listed twice'),
])
def test_segments_to_maps_refuses_inconsistent_annotations(change, message):
  ids, info = _segments()
  change(info)
  with pytest.raises(ValueError, match=message):
    cp.segments_to_maps(ids, info, _mapping(), 256)


def test_too_many_instances_for_the_divisor():
  ids, info = _segments()
  with pytest.raises(ValueError, match='more than 1 instances of class 1'):
    cp.segments_to_maps(ids, info, _mapping(), 2)


def test_png_label_format_round_trip_and_errors(tmp_path):
  ids, info = _segments()
  category, instance = cp.segments_to_maps(ids, info, _mapping(), 256)
  panoptic = pr.encode_panoptic(category, instance, 1000)
  image = np.zeros((6, 8, 3), np.uint8)
  path = str(tmp_path / 'x.tfrecord')
  with tf.io.TFRecordWriter(path) as writer:
    for fmt in pr.LABEL_FORMATS:
      writer.write(pr.panoptic_to_example(
          tf.io.encode_png(image).numpy(), 'img_' + fmt, 6, 8, panoptic,
          label_format=fmt).SerializeToString())
  raw, png = pr.read_panoptic_records(path, 1000)
  for sample in (raw, png):
    np.testing.assert_array_equal(sample['category'], category)
    np.testing.assert_array_equal(sample['instance'], instance)
  with pytest.raises(ValueError, match=r'\[0, 2\^24\)'):
    pr.encode_panoptic_png(np.full((2, 2), 1 << 24))
  # A PNG map of another size, and an unknown format, name the record.
  bad = str(tmp_path / 'bad.tfrecord')
  with tf.io.TFRecordWriter(bad) as writer:
    example = pr.panoptic_to_example(tf.io.encode_png(image).numpy(), 'small',
                                     6, 8, panoptic, label_format='panoptic_png')
    example.features.feature['image/segmentation/class/encoded'].bytes_list \
        .value[0] = pr.encode_panoptic_png(panoptic[:3])
    writer.write(example.SerializeToString())
  with pytest.raises(tf.errors.InvalidArgumentError, match='small'):
    pr.read_panoptic_records(bad, 1000)
  with pytest.raises(ValueError, match='label_format'):
    pr.panoptic_to_example(b'', 'x', 6, 8, panoptic, label_format='jpeg')


def _jpeg(rng, height, width):
  return cv2.imencode('.jpg', rng.integers(0, 256, (height, width, 3),
                                           dtype=np.uint8))[1].tobytes()


def _write_json_split(image_dir, png_dir, json_path, names, rng,
                      categories=CATEGORIES):
  """COCO-format split: per name a JPEG, an RGB PNG and a JSON entry."""
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(png_dir, exist_ok=True)
  ids, info = _segments()
  data = {'images': [], 'annotations': [], 'categories': categories}
  for index, name in enumerate(names):
    with open(os.path.join(image_dir, name + '.jpg'), 'wb') as f:
      f.write(_jpeg(rng, 6, 8))
    with open(os.path.join(png_dir, name + '.png'), 'wb') as f:
      f.write(cv2.imencode('.png', _rgb(ids)[..., ::-1])[1].tobytes())
    data['images'].append({'id': 100 + index, 'file_name': name + '.jpg',
                           'height': 6, 'width': 8})
    data['annotations'].append({'image_id': 100 + index,
                                'file_name': name + '.png',
                                'segments_info': info})
  with open(json_path, 'w') as f:
    json.dump(data, f)


def _coco_root(root, rng):
  for split, names in (('train', ['000000000009', '000000000025',
                                  '000000000030']),
                       ('val', ['000000000139'])):
    _write_json_split(os.path.join(root, split + '2017'),
                      os.path.join(root, 'annotations', 'panoptic_%s2017'
                                   % split),
                      os.path.join(root, 'annotations', 'panoptic_%s2017.json'
                                   % split), names, rng)


def _coco_settings():
  return (cp.JsonDatasetSettings(
      name='coco_panoptic', first_class_id=1, ignore_label=0,
      json=cp.PanopticJsonSettings(label_divisor=256)))


def _convert_settings(out, **kwargs):
  return panoptic_convert.PanopticConvertSettings(
      output_dir=str(out), split_name='', label_divisor=0, num_classes=0,
      num_shards=2, **kwargs)


def test_coco_split_to_records_and_descriptor(tmp_path):
  root = str(tmp_path / 'coco')
  _coco_root(root, np.random.default_rng(0))
  out = tmp_path / 'rec'
  summaries = [cp.convert_json_split(cp.coco_split(root, split),
                                     _coco_settings(), _convert_settings(out))
               for split in ('train', 'val')]
  assert [s.num_written for s, _ in summaries] == [3, 1]
  assert sorted(os.listdir(out)) == [
      'dataset.json', 'train-00000-of-00002.tfrecord',
      'train-00001-of-00002.tfrecord', 'val-00000-of-00002.tfrecord',
      'val-00001-of-00002.tfrecord']
  # The written descriptor: both splits, the JSON's names and colours.
  descriptor = datasets_info.get_descriptor(str(out / 'dataset.json'))
  assert descriptor.splits_to_sizes == {'train': 3, 'val': 1}
  assert descriptor.num_classes == 5 and descriptor.ignore_label == 0
  assert descriptor.thing_classes == (1, 2)
  assert descriptor.panoptic_label_divisor == 256
  assert descriptor.class_names[1:] == ('person', 'car', 'road', 'sky')
  layout = pr.get_layout(str(out / 'dataset.json'))
  assert layout.label_divisor == 256 and layout.thing_classes == (1, 2)
  # Records: deeplab2's raw layout, sorted by file name, maps as the rules.
  first, second = pr.read_panoptic_records(
      str(out / 'train-00000-of-00002.tfrecord'), 256)
  assert (first['filename'], second['filename']) == (b'000000000009',
                                                     b'000000000025')
  expected = cp.segments_to_maps(*_segments(), _mapping(), 256)
  np.testing.assert_array_equal(first['category'], expected[0])
  np.testing.assert_array_equal(first['instance'], expected[1])
  # The panoptic pipeline reads them with the descriptor file.
  dataset = panoptic_pipeline.build_panoptic_dataset(
      str(out / 'dataset.json'), 'val', str(out),
      pipeline.InputSettings(crop_size=None),
      panoptic_targets.PanopticTargetSettings(thing_classes=(1, 2),
                                              ignore_label=0),
      batch_size=1, is_training=False)
  batch = next(iter(dataset))
  np.testing.assert_array_equal(batch['category'][0], expected[0])
  np.testing.assert_array_equal(batch['instance'][0], expected[1])
  # Converting with other classes into the same folder is refused up front.
  other = [dict(c, id=c['id'] + 1000) for c in CATEGORIES] + [
      {'id': 7, 'name': 'dog', 'isthing': 1}]
  _write_json_split(str(tmp_path / 'o_img'), str(tmp_path / 'o_png'),
                    str(tmp_path / 'o.json'), ['a'], np.random.default_rng(1),
                    categories=other)
  with pytest.raises(convert.ConversionError, match='describes other classes'):
    cp.convert_json_split(
        cp.JsonSplit('test', str(tmp_path / 'o.json'), str(tmp_path / 'o_img'),
                     str(tmp_path / 'o_png')),
        _coco_settings(), _convert_settings(out))
  assert 'test' not in str(sorted(os.listdir(out)))


def test_bad_samples_name_their_file_or_are_skipped(tmp_path):
  root = str(tmp_path / 'coco')
  _coco_root(root, np.random.default_rng(0))
  os.remove(os.path.join(root, 'annotations', 'panoptic_train2017',
                         '000000000025.png'))
  json_path = os.path.join(root, 'annotations', 'panoptic_train2017.json')
  with open(json_path) as f:
    data = json.load(f)
  data['annotations'] = [a for a in data['annotations']
                         if a['image_id'] != 102]           # 000000000030
  with open(json_path, 'w') as f:
    json.dump(data, f)
  split = cp.coco_split(root, 'train')
  with pytest.raises(convert.ConversionError,
                     match='000000000025.png: panoptic PNG file not found'):
    cp.convert_json_split(split, _coco_settings(),
                          _convert_settings(tmp_path / 'a'))
  assert not os.path.exists(tmp_path / 'a' / 'dataset.json')
  summary, descriptor = cp.convert_json_split(
      split, _coco_settings(), _convert_settings(tmp_path / 'b',
                                                 skip_bad=True))
  assert summary.num_written == 1 and len(summary.skipped) == 2
  assert 'no entry in the panoptic JSON' in summary.skipped[1]
  assert descriptor.splits_to_sizes == {'train': 1}
  with pytest.raises(convert.ConversionError, match='missing categories'):
    del data['categories']
    with open(json_path, 'w') as f:
      json.dump(data, f)
    cp.load_panoptic_json(json_path)


def _mapillary_root(root, version_dir, rng):
  for split, folder, names in (('train', 'training', ['a1', 'b2']),
                               ('val', 'validation', ['c3'])):
    del split
    panoptic_dir = os.path.join(root, folder, version_dir)
    _write_json_split(os.path.join(root, folder, 'images'), panoptic_dir,
                      os.path.join(panoptic_dir, 'panoptic_2018.json'), names,
                      rng)


def test_mapillary_layouts(tmp_path):
  root = str(tmp_path / 'v12')
  _mapillary_root(root, 'panoptic', np.random.default_rng(0))
  split = cp.mapillary_split(root, 'val')
  assert split.json_path.endswith(os.path.join('validation', 'panoptic',
                                               'panoptic_2018.json'))
  assert split.image_dir == os.path.join(root, 'validation', 'images')
  root2 = str(tmp_path / 'v20')
  _mapillary_root(root2, os.path.join('v2.0', 'panoptic'),
                  np.random.default_rng(0))
  assert cp.mapillary_split(root2, 'train').png_dir.endswith('/v2.0/panoptic')
  with pytest.raises(convert.ConversionError, match='no panoptic JSON found'):
    cp.mapillary_split(root2, 'train', 'v1.2')
  with pytest.raises(convert.ConversionError, match='unsupported split'):
    cp.mapillary_split(root, 'test')


def _run(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'datasets', script)] + list(args),
      capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_coco_script_on_another_coco_format_dataset(tmp_path):
  """The flags path: one split from explicit files, a class layout from 0."""
  _write_json_split(str(tmp_path / 'img'), str(tmp_path / 'png'),
                    str(tmp_path / 'p.json'), ['x', 'y'],
                    np.random.default_rng(0))
  out = tmp_path / 'rec'
  args = ['--panoptic_json=%s' % (tmp_path / 'p.json'),
          '--image_dir=%s' % (tmp_path / 'img'),
          '--png_dir=%s' % (tmp_path / 'png'), '--output_dir=%s' % out,
          '--dataset_name=street', '--first_class_id=0', '--ignore_label=255',
          '--label_divisor=1000', '--num_shards=1', '--label_format=panoptic_png']
  run = _run('build_coco_panoptic_data.py', '--splits=train', *args)
  assert run.returncode == 0, run.stderr
  assert 'train: 2 images, 12 segments, 1 shards, 0 skipped' in run.stdout
  descriptor = datasets_info.get_descriptor(str(out / 'dataset.json'))
  assert descriptor.name == 'street' and descriptor.thing_classes == (0, 1)
  first, _ = pr.read_panoptic_records(str(out / 'train-00000-of-00001.tfrecord'),
                                      1000)
  assert first['filename'] == b'x' and first['category'][0, 0] == 3
  run = _run('build_coco_panoptic_data.py', *args)   # two default splits
  assert run.returncode != 0 and 'exactly one --splits entry' in run.stderr


def test_mapillary_script(tmp_path):
  root = str(tmp_path / 'mapillary')
  _mapillary_root(root, 'panoptic', np.random.default_rng(0))
  out = tmp_path / 'rec'
  run = _run('build_mapillary_panoptic_data.py', '--mapillary_root=%s' % root,
             '--output_dir=%s' % out, '--num_shards=1')
  assert run.returncode == 0, run.stderr
  assert 'train: 2 images' in run.stdout and 'val: 1 images' in run.stdout
  assert 'dataset.json (4 classes, 2 things, ignore label 255' in run.stdout
  descriptor = datasets_info.get_descriptor(str(out / 'dataset.json'))
  assert descriptor.thing_classes == (0, 1)
  assert descriptor.panoptic_label_divisor == 1000
  # PNG-encoded maps by default; classes from 0, void and crowds 255.
  raw = next(iter(tf.data.TFRecordDataset(
      str(out / 'val-00000-of-00001.tfrecord')))).numpy()
  example = tf.train.Example.FromString(raw)
  assert example.features.feature[
      'image/segmentation/class/format'].bytes_list.value == [b'panoptic_png']
  [sample] = pr.read_panoptic_records(str(out / 'val-00000-of-00001.tfrecord'),
                                      1000)
  expected = cp.segments_to_maps(*_segments(), _mapping(0, 255), 1000)
  np.testing.assert_array_equal(sample['category'], expected[0])
  np.testing.assert_array_equal(sample['instance'], expected[1])
  assert sample['category'][3, 4] == 255 and sample['category'][0, 0] == 3


def test_descriptor_panoptic_fields():
  text = {'name': 'x', 'num_classes': 4, 'ignore_label': 255,
          'splits_to_sizes': {'train': 2}, 'thing_classes': [2, 1, 2],
          'panoptic_label_divisor': 100}
  descriptor = datasets_info.descriptor_from_dict(text)
  assert descriptor.thing_classes == (1, 2)
  assert datasets_info.descriptor_from_dict(
      descriptor.to_dict()) == descriptor
  with pytest.raises(datasets_info.DescriptorError, match=r'\[4\] are not'):
    datasets_info.descriptor_from_dict(dict(text, thing_classes=[4]))
  with pytest.raises(datasets_info.DescriptorError, match='positive int'):
    datasets_info.descriptor_from_dict(dict(text, panoptic_label_divisor=0))
  # Registered panoptic datasets; Mapillary's things come from its JSON.
  assert pr.get_layout('coco_panoptic').thing_classes == tuple(range(1, 81))
  assert pr.get_layout('cityscapes').label_divisor == 1000
  with pytest.raises(ValueError, match=r'\(thing_classes missing\)'):
    pr.get_layout('mapillary_vistas')
  assert pr.get_layout('mapillary_vistas', thing_classes=[3]).label_divisor \
      == 1000
  with pytest.raises(ValueError, match='not class ids of dataset'):
    pr.get_layout('cityscapes', thing_classes=[19])


CAMVID = os.path.join(os.path.dirname(REPO), 'shared', 'camvid')
CAMVID_THINGS = (8, 9, 10)            # car, pedestrian, bicyclist


def _camvid_as_coco_panoptic(list_name, count, image_dir, png_dir, json_path):
  """CamVid pairs in the COCO panoptic format: things are connected components.

  Real photos through the real converter; the instances are ours (CamVid has
  no instance labels), so this checks the plumbing, not a published number.
  """
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(png_dir, exist_ok=True)
  categories = [{'id': c + 1, 'name': datasets_info.CAMVID_CLASSES[c],
                 'isthing': int(c in CAMVID_THINGS),
                 'color': list(colormaps.CAMVID_COLORMAP[c])}
                for c in range(11)]
  data = {'images': [], 'annotations': [], 'categories': categories}
  with open(os.path.join(CAMVID, list_name)) as f:
    pairs = [line.split() for line in f if line.strip()][:count]
  for index, (image, label) in enumerate(pairs):
    name = os.path.splitext(os.path.basename(image))[0]
    with open(os.path.join(CAMVID, image), 'rb') as src, open(
        os.path.join(image_dir, name + '.png'), 'wb') as dst:
      dst.write(src.read())
    classes = cv2.imread(os.path.join(CAMVID, label), cv2.IMREAD_GRAYSCALE)
    ids = np.zeros(classes.shape, np.int64)
    info = []
    for c in range(11):
      mask = classes == c
      if not mask.any():
        continue
      if c not in CAMVID_THINGS:
        ids[mask] = c + 1
        info.append({'id': c + 1, 'category_id': c + 1,
                     'area': int(mask.sum()), 'iscrowd': 0})
        continue
      count_cc, components = cv2.connectedComponents(mask.astype(np.uint8))
      for k in range(1, count_cc):
        segment = components == k
        sid = 1000 * (c + 1) + k
        ids[segment] = sid
        info.append({'id': sid, 'category_id': c + 1,
                     'area': int(segment.sum()), 'iscrowd': 0})
    cv2.imwrite(os.path.join(png_dir, name + '.png'), _rgb(ids)[..., ::-1])
    data['images'].append({'id': index, 'file_name': name + '.png',
                           'height': int(classes.shape[0]),
                           'width': int(classes.shape[1])})
    data['annotations'].append({'image_id': index, 'file_name': name + '.png',
                                'segments_info': info})
  with open(json_path, 'w') as f:
    json.dump(data, f)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(CAMVID), reason='needs ../shared/camvid')
def test_real_photos_convert_train_and_evaluate(tmp_path):
  """COCO-format panoptic from CamVid -> converter -> train.py -> eval_deeperlab."""
  out = tmp_path / 'records'
  for split, list_name, count in (('train', 'train.txt', 4),
                                  ('val', 'val.txt', 2)):
    base = tmp_path / ('coco_' + split)
    _camvid_as_coco_panoptic(list_name, count, str(base / 'images'),
                             str(base / 'png'), str(base / 'p.json'))
    run = _run('build_coco_panoptic_data.py', '--splits=' + split,
               '--panoptic_json=%s' % (base / 'p.json'),
               '--image_dir=%s' % (base / 'images'),
               '--png_dir=%s' % (base / 'png'), '--output_dir=%s' % out,
               '--dataset_name=camvid_panoptic', '--num_shards=1')
    assert run.returncode == 0, run.stderr
  descriptor = datasets_info.get_descriptor(str(out / 'dataset.json'))
  assert descriptor.splits_to_sizes == {'train': 4, 'val': 2}
  assert descriptor.thing_classes == (9, 10, 11)     # CamVid 8..10, from 1
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  logdir = tmp_path / 'train'
  common = ['--dataset=%s' % (out / 'dataset.json'), '--dataset_dir=%s' % out]
  run = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.train', '--meta_architecture=deeperlab',
       '--model_variant=wider_mobilenet_v2', '--depth_multiplier=0.25',
       '--aspp_convs_filters=32', '--train_split=train',
       '--train_crop_size=129,129', '--train_batch_size=2',
       '--training_number_of_steps=3', '--base_learning_rate=0.01',
       '--train_logdir=%s' % logdir] + common,
      capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  assert tf.train.latest_checkpoint(str(logdir)).endswith('-3')
  run = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.eval_deeperlab',
       '--checkpoint_dir=%s' % logdir, '--eval_split=val',
       '--min_resize_value=257', '--max_resize_value=257'] + common,
      capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  metrics = json.loads((logdir / 'eval_panoptic' /
                        'panoptic_metrics-3.json').read_text())
  assert metrics['num_images'] == 2
  assert 0.0 <= metrics['panoptic_quality']['All']['pq'] <= 1.0
  assert len(metrics['pq_per_class']) == 12
