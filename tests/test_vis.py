"""Visualisation: colormap facts, output geometry, deeplab_tf.vis end to end.

The script runs in subprocesses only: importing deeplab_tf.vis here would
define flags that other scripts' tests (deeplab_tf.train) also define.
"""
import json
import os
import re
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf import visualization as V
from deeplab_tf.data import datasets_info
from deeplab_tf.data import preprocess
from deeplab_tf.data import records
from deeplab_tf.visualization import vis_lib
from deeplab_tf.models import ModelOptions, build_predictor
from record_helpers import png

CROP = (65, 65)
MODEL_FLAGS = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.25',
               '--output_stride=16', '--vis_crop_size=65,65']


# ---------------------------------------------------------------------------
# Colormaps.
# ---------------------------------------------------------------------------

def test_colormap_facts():
  pascal = V.get_colormap('pascal')
  assert tuple(pascal[1]) == (128, 0, 0)          # aeroplane
  assert tuple(pascal[15]) == (192, 128, 128)     # person
  assert tuple(pascal[255]) == (224, 224, 192)    # VOC void / boundary
  cityscapes = V.get_colormap('cityscapes')
  assert tuple(cityscapes[0]) == (128, 64, 128)   # road
  assert tuple(cityscapes[13]) == (0, 0, 142)     # car
  assert tuple(cityscapes[19]) == (0, 0, 0)       # past the 19 trainIds
  ade = V.get_colormap('ade20k')
  assert len(V.ADE20K_COLORMAP) == 151
  assert tuple(ade[0]) == (0, 0, 0)               # "other objects" (ignored)
  assert tuple(ade[1]) == (120, 120, 120)         # wall
  assert tuple(ade[2]) == (180, 120, 120)         # building
  assert tuple(ade[150]) == (92, 0, 255)
  assert len(ade) == 151                          # the original's table
  vistas = V.get_colormap('mapillary_vistas')
  assert len(V.MAPILLARY_VISTAS_COLORMAP) == 66
  assert tuple(vistas[0]) == (165, 42, 42)        # bird
  assert tuple(vistas[1]) == (0, 192, 0)          # ground animal
  assert tuple(vistas[13]) == (128, 64, 128)      # road
  assert tuple(V.get_colormap('camvid')[0]) == (128, 128, 128)  # sky
  for name in V.COLORMAP_NAMES:
    table = V.get_colormap(name)
    assert table.shape == (V.COLORMAP_MAX_ENTRIES[name], 3), name
    assert table.dtype == np.uint8, name
  # The dataset's descriptor holds the 256 colours of 8-bit labels.
  np.testing.assert_array_equal(V.get_colormap('pascal_voc_seg'),
                                pascal[:256])
  # No longer a random palette: distinct classes, distinct colours.
  assert len({tuple(c) for c in V.ADE20K_COLORMAP}) >= 145


def test_unknown_colormap_is_refused_with_the_accepted_names():
  with pytest.raises(ValueError, match="Unknown colormap 'nope'; accepted: "
                     'pascal, cityscapes, ade20k, mapillary_vistas, camvid'):
    V.get_colormap('nope')
  with pytest.raises(vis_lib.VisError, match='Unknown colormap'):
    vis_lib.VisSettings(vis_logdir='x', colormap='nope')
  with pytest.raises(ValueError, match=r'\[r, g, b\]'):
    V.colorize([[0]], [[1, 2]])


def test_colorize_names_and_rgb_lists():
  labels = np.array([[0, 1], [2, 255]])
  # 255 lies past ADE20K's 151 entries: refused as the original, or black
  # when asked (groundtruth pictures).
  with pytest.raises(ValueError, match="too large: 255 >= 151, the entries "
                     "of the 'ade20k' colormap"):
    V.colorize(labels, 'ade20k')
  np.testing.assert_array_equal(
      V.colorize(labels, 'ade20k', beyond_table='black'),
      [[[0, 0, 0], [120, 120, 120]], [[180, 120, 120], [0, 0, 0]]])
  # A list of colours is padded to 256 with black.
  custom = V.colorize(labels, [(1, 2, 3), (4, 5, 6), (7, 8, 9)])
  np.testing.assert_array_equal(custom[1, 0], (7, 8, 9))
  np.testing.assert_array_equal(custom[1, 1], (0, 0, 0))
  with pytest.raises(ValueError, match='too large: 256 >= 256'):
    V.colorize([[0, 256]], [(1, 2, 3)])
  # PASCAL's table has the original's 512 entries.
  np.testing.assert_array_equal(V.colorize([[300]]),
                                V.get_colormap('pascal')[[[300]]])
  with pytest.raises(ValueError, match='too large: 512 >= 512'):
    V.colorize([[0, 512]])
  with pytest.raises(ValueError, match='>= 0, got -1'):
    V.colorize([[0, -1]])
  with pytest.raises(ValueError, match='beyond_table'):
    V.colorize(labels, beyond_table='wrap')
  # A panoptic picture draws its ignore label black, past the table or not.
  category = np.array([[1, 255], [2, 255]])
  pic = V.colorize_panoptic(category, np.zeros_like(category), 'ade20k',
                            boundaries=False)
  np.testing.assert_array_equal(pic[:, 1], 0)
  np.testing.assert_array_equal(pic[0, 0], (120, 120, 120))


def test_colormap_for_a_dataset():
  assert vis_lib.colormap_for('ade20k', 'pascal_voc_seg') == 'ade20k'
  # One rule: a dataset's pictures use its descriptor's colours everywhere.
  assert vis_lib.colormap_for('dataset', 'ade20k') == V.ADE20K_COLORMAP
  # The same colours; the named table stops at the original's 151 entries,
  # the descriptor's is padded to 256 (black).
  by_dataset = V.resolve_colormap(vis_lib.colormap_for('dataset', 'ade20k'))
  np.testing.assert_array_equal(V.get_colormap('ade20k'), by_dataset[:151])
  assert by_dataset.shape == (256, 3) and not by_dataset[151:].any()
  np.testing.assert_array_equal(V.get_colormap('quickstart')[:6],
                                datasets_info.QUICKSTART_COLORMAP)
  np.testing.assert_array_equal(V.get_colormap('pascal_voc_seg'),
                                V.get_colormap('pascal')[:256])
  assert datasets_info.get_descriptor(
      'mapillary_vistas').label_colours == V.MAPILLARY_VISTAS_COLORMAP
  assert vis_lib.colormap_for('dataset', 'camvid')[0] == (128, 128, 128)
  custom = {'name': 'leaves', 'num_classes': 2, 'ignore_label': 255,
            'splits_to_sizes': {'val': 1}, 'colormap': [[0, 0, 0], [0, 200, 0]]}
  assert vis_lib.colormap_for(
      'dataset', datasets_info.descriptor_from_dict(custom)) == (
          (0, 0, 0), (0, 200, 0))
  del custom['colormap']
  assert vis_lib.colormap_for(
      'dataset', datasets_info.descriptor_from_dict(custom)) == 'pascal'
  with pytest.raises(ValueError, match="Unknown colormap 'rainbow'"):
    vis_lib.colormap_for('rainbow', 'camvid')


def test_cityscapes_train_id_to_label_id():
  train_ids = np.array([[0, 1, 2, 10], [11, 13, 18, 255]], np.uint8)
  label_ids = V.cityscapes_train_id_to_label_id(train_ids)
  # road 7, sidewalk 8, building 11, sky 23, person 24, car 26, bicycle 33;
  # 255 is left as it is, as in the original.
  np.testing.assert_array_equal(label_ids, [[7, 8, 11, 23], [24, 26, 33, 255]])
  assert label_ids.dtype == np.uint8
  assert vis_lib.raw_id_table_for('cityscapes') == (
      V.CITYSCAPES_TRAIN_ID_TO_LABEL_ID)
  assert vis_lib.raw_id_table_for('pascal_voc_seg') is None


def test_overlay_blends_with_alpha():
  image = np.full((2, 3, 3), 100, np.uint8)
  colours = np.full((2, 3, 3), 200, np.uint8)
  np.testing.assert_array_equal(V.overlay(image, colours, 0.25), 125)
  np.testing.assert_array_equal(V.overlay(image, colours, 0.0), 100)
  np.testing.assert_array_equal(V.overlay(image, colours, 1.0), 200)
  with pytest.raises(ValueError, match=r'alpha must be in \[0, 1\]; got 1.5'):
    V.overlay(image, colours, 1.5)
  with pytest.raises(ValueError, match='same'):
    V.overlay(image, colours[:1], 0.5)


# ---------------------------------------------------------------------------
# Geometry and files.
# ---------------------------------------------------------------------------

def test_restore_labels_crops_padding_and_resizes_back_nearest():
  padded = np.full((6, 8), 255, np.int64)
  padded[:3, :4] = np.arange(12).reshape(3, 4)
  # No resize: only the padding goes.
  np.testing.assert_array_equal(vis_lib.restore_labels(padded, (3, 4), (3, 4)),
                                np.arange(12).reshape(3, 4))
  # 3x4 back to 5x7, align_corners nearest: source index round(i * 0.5),
  # halves away from zero (TF's roundf).
  out = vis_lib.restore_labels(padded, (3, 4), (5, 7))
  rows, cols = [0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 3, 3]
  np.testing.assert_array_equal(out, np.arange(12).reshape(3, 4)[rows][:, cols])
  with pytest.raises(vis_lib.VisError, match='at least 7 x 4'):
    vis_lib.restore_labels(padded, (7, 4), (7, 4))


def test_restore_image_and_resized_size():
  image = np.zeros((10, 12, 3), np.float32)
  image[:4, :6] = 77.4
  np.testing.assert_array_equal(vis_lib.restore_image(image, (4, 6), (4, 6)),
                                np.full((4, 6, 3), 77, np.uint8))
  back = vis_lib.restore_image(image, (4, 6), (7, 11))
  assert back.shape == (7, 11, 3) and back.dtype == np.uint8
  np.testing.assert_array_equal(back, 77)   # a flat image stays flat
  assert vis_lib.resized_size(37, 50) == (37, 50)
  # Short side to 33: 45x61 -> 33 x floor(61 * 33 / 45) = 33x44.
  assert vis_lib.resized_size(45, 61, 33, 65) == (33, 44)
  assert vis_lib.resized_size(30, 23, 33, 65) == (43, 33)


def test_png_files_are_rgb_and_raw_ids(tmp_path):
  rgb = np.zeros((3, 5, 3), np.uint8)
  rgb[..., 0] = 200   # red
  path = vis_lib.write_png(str(tmp_path / 'a.png'), rgb)
  bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  np.testing.assert_array_equal(bgr[..., 2], 200)
  np.testing.assert_array_equal(bgr[..., :2], 0)
  ids = np.array([[0, 7], [33, 255]], np.int64)
  path = vis_lib.write_png(str(tmp_path / 'b.png'), ids)
  np.testing.assert_array_equal(cv2.imread(path, cv2.IMREAD_UNCHANGED), ids)
  with pytest.raises(vis_lib.VisError,
                     match=r'\[0, 255\] fit an 8-bit PNG; got \[0, 300\]'):
    vis_lib.encode_png(np.array([[0, 300]]))
  assert vis_lib.raw_prediction_filename(
      b'frankfurt/frankfurt_000000_000294_leftImg8bit') == (
          'frankfurt_000000_000294_leftImg8bit.png')


def test_save_sample_labels_past_a_named_table(tmp_path):
  # Mapillary Vistas: 66 entries, ignore label 255 in the groundtruth. The
  # prediction is drawn as the original would (its ids are below 66); the
  # groundtruth picture (ours) draws 255 black instead of failing.
  settings = vis_lib.VisSettings(vis_logdir=str(tmp_path),
                                 colormap='mapillary_vistas',
                                 save_overlay=False)
  vis_lib.prepare_output_dirs(settings)
  sample = vis_lib.Sample(image=np.zeros((2, 2, 3), np.uint8),
                          prediction=np.array([[0, 13], [13, 65]]),
                          filename='a', label=np.array([[0, 13], [255, 65]]))
  paths = vis_lib.save_sample(0, sample, settings)
  truth = cv2.imread(paths[-1])[..., ::-1]
  vistas = V.get_colormap('mapillary_vistas')
  np.testing.assert_array_equal(truth[0], vistas[[0, 13]])
  np.testing.assert_array_equal(truth[1], [[0, 0, 0], vistas[65]])
  sample.prediction[0, 0] = 66
  with pytest.raises(ValueError, match='too large: 66 >= 66'):
    vis_lib.save_sample(1, sample, settings)


def test_settings_errors():
  with pytest.raises(vis_lib.VisError,
                     match=r'overlay_alpha .* \[0, 1\]; got 2'):
    vis_lib.VisSettings(vis_logdir='x', overlay_alpha=2)
  with pytest.raises(vis_lib.VisError, match='needs min_resize_value'):
    vis_lib.VisSettings(vis_logdir='x', max_resize_value=10)
  with pytest.raises(vis_lib.VisError, match='vis_logdir'):
    vis_lib.VisSettings(vis_logdir='')


# ---------------------------------------------------------------------------
# End to end.
# ---------------------------------------------------------------------------

def _image(height, width, seed):
  """Left dark, right bright noise: something for a random model to split."""
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  image[:, :width // 2] //= 5
  return image


def _write_split(record_dir, split, images, labels):
  os.makedirs(record_dir, exist_ok=True)
  names = ['%s/img_%02d' % (split, i) for i in range(len(images))]
  path = records.shard_filename(record_dir, split, 0, 1)
  with tf.io.TFRecordWriter(path) as writer:
    for name, image, label in zip(names, images, labels):
      writer.write(records.image_seg_to_example(
          png(image[:, :, ::-1]), name, image.shape[0], image.shape[1],
          png(label), image_format='png').SerializeToString())
  return [os.path.basename(n) for n in names]


def _predictor(num_classes, seed):
  """A tiny predictor with seeded weights whose labels vary across an image.

  Keras' initialisation is not seeded and its features vanish through the
  backbone, so: seeded He-normal kernels, BatchNorm statistics measured on a
  few images (unit-scale activations all the way down), and logits biases
  that cancel the mean feature's response (else one class wins everywhere).
  """
  options = ModelOptions(model_variant='mobilenet_v2', depth_multiplier=0.25,
                         output_stride=16, crop_size=CROP,
                         outputs_to_num_classes={'semantic': num_classes})
  predictor = build_predictor(options)
  variables = checkpoints.model_variables(predictor)
  rng = np.random.default_rng(seed)
  for name, var in sorted(variables.items()):
    shape = tuple(var.shape)
    if name.endswith(('moving_variance', 'gamma')):
      value = np.ones(shape)
    elif name.endswith(('beta', 'moving_mean', 'biases')):
      value = np.zeros(shape)
    else:   # conv kernels: He-normal over the fan-in
      fan_in = np.prod(shape[:2] if 'depthwise' in name else shape[:-1])
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    var.assign(value.astype(np.float32))
  calibration = np.stack([_image(CROP[0], CROP[1], 100 + i)
                          for i in range(4)]).astype(np.float32)
  norms = [l for l in predictor.layers
           if isinstance(l, keras.layers.BatchNormalization)]
  inputs = keras.Model(predictor.input, [l.input for l in norms])(calibration)
  for layer, x in zip(norms, inputs):
    x = x.numpy().reshape(-1, x.shape[-1])
    layer.moving_mean.assign(x.mean(0))
    layer.moving_variance.assign(x.var(0) + 1e-3)
  weights = variables['logits/semantic/weights']
  logits_layer = next(l for l in predictor.layers
                      if any(w is weights for w in l.weights))
  features = keras.Model(predictor.input, logits_layer.input)(calibration)
  mean_feature = features.numpy().reshape(-1, weights.shape[2]).mean(0)
  variables['logits/semantic/biases'].assign(
      -mean_feature @ weights.numpy()[0, 0])
  return predictor


def _predict(predictor, images, batch_size):
  """(labels, top-2 logit gap) of each image (float [h, w, 3] <= crop).

  Images are padded with the mean pixel and batched as the script batches
  them, so the numbers are computed the same way.
  """
  out = []
  for start in range(0, len(images), batch_size):
    group = images[start:start + batch_size]
    padded = np.empty((len(group),) + CROP + (3,), np.float32)
    padded[...] = preprocess.mean_pixel('mobilenet_v2')
    for i, image in enumerate(group):
      padded[i, :image.shape[0], :image.shape[1]] = image
    result = predictor(padded, training=False)
    top2 = np.sort(result['logits'].numpy(), axis=-1)[..., -2:]
    for i, image in enumerate(group):
      h, w = image.shape[:2]
      out.append((result['semantic'].numpy()[i, :h, :w],
                  (top2[i, :h, :w, 1] - top2[i, :h, :w, 0])))
  return out


def _assert_same_labels(actual, expected, gap):
  """Equal wherever the decision is not a float32 tie (gap below 1e-4)."""
  decided = gap > 1e-4
  assert decided.mean() > 0.99, 'too many ties to compare'
  np.testing.assert_array_equal(actual[decided], expected[decided])


def _run_vis(args, timeout=300):
  proc = subprocess.run([sys.executable, '-m', 'deeplab_tf.vis'] + args,
                        capture_output=True, text=True, timeout=timeout)
  return proc


def _read_rgb(path):
  return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  """A 4-class JSON dataset, odd image sizes, a training-style checkpoint."""
  root = tmp_path_factory.mktemp('vis_tiny')
  sizes = [(37, 50), (41, 29), (20, 33)]
  images = [_image(h, w, i) for i, (h, w) in enumerate(sizes)]
  rng = np.random.default_rng(7)
  labels = [rng.integers(0, 4, (h, w)).astype(np.uint8) for h, w in sizes]
  labels[0][:5, :5] = 255
  descriptor = {'name': 'tiny', 'num_classes': 4, 'ignore_label': 255,
                'splits_to_sizes': {'val': 3, 'test': 1}}
  json_path = str(root / 'tiny.json')
  with open(json_path, 'w') as f:
    json.dump(descriptor, f)
  record_dir = str(root / 'records')
  names = _write_split(record_dir, 'val', images, labels)
  predictor = _predictor(4, seed=0)
  # The script runs with --vis_batch_size=2.
  expected = _predict(predictor, [im.astype(np.float32) for im in images], 2)
  train_dir = str(root / 'train')
  prefix = tf.train.Checkpoint(
      model=checkpoints.NamedVariables(predictor)).save(
          os.path.join(train_dir, 'ckpt'))
  # The trainer's "finished" marker ends the continuous loop after it.
  checkpoints.folders.write_training_done(train_dir, 1, prefix)
  return dict(root=root, json=json_path, records=record_dir, names=names,
              images=images, labels=labels, expected=expected,
              train_dir=train_dir)


def test_script_end_to_end_continuous_mode(tiny):
  # Several classes per image, or the colour checks would be weak.
  assert all(len(np.unique(labels)) >= 2 for labels, _ in tiny['expected'])
  out = str(tiny['root'] / 'vis')
  proc = _run_vis(['--dataset', tiny['json'], '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', tiny['train_dir'], '--vis_logdir', out,
                   '--vis_batch_size=2', '--also_save_raw_predictions',
                   '--eval_interval_secs=0', '--overlay_alpha=0.25']
                  + MODEL_FLAGS)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Continuous mode (max_number_of_iterations=0) ended by training_done.json.
  assert 'training finished at step 1' in proc.stderr
  assert "Visualising split 'val' of tiny (3 images)" in proc.stderr
  assert re.search(r'visualised 3(/3)? images \([0-9.]+ images/s\) in ',
                   proc.stderr), proc.stderr
  assert 'visualised 3 images of split val' in proc.stdout
  results = os.path.join(out, 'segmentation_results')
  assert sorted(os.listdir(results)) == sorted(
      '%06d_%s.png' % (i, kind) for i in range(3)
      for kind in ('image', 'prediction', 'overlay', 'label'))
  pascal = V.get_colormap('pascal')
  for i, (image, label, (expected, gap)) in enumerate(
      zip(tiny['images'], tiny['labels'], tiny['expected'])):
    saved = _read_rgb(os.path.join(results, '%06d_image.png' % i))
    np.testing.assert_array_equal(saved, image)   # original size and pixels
    prediction = _read_rgb(os.path.join(results, '%06d_prediction.png' % i))
    assert prediction.shape == image.shape
    _assert_same_labels(prediction, pascal[expected], gap)
    overlay = _read_rgb(os.path.join(results, '%06d_overlay.png' % i))
    blend = 0.75 * image.astype(np.float64) + 0.25 * pascal[expected]
    assert np.abs(overlay - blend)[gap > 1e-4].max() <= 0.5 + 1e-6
    truth = _read_rgb(os.path.join(results, '%06d_label.png' % i))
    np.testing.assert_array_equal(truth, pascal[label])   # 255: VOC cream
    raw = cv2.imread(os.path.join(out, 'raw_segmentation_results',
                                  tiny['names'][i] + '.png'),
                     cv2.IMREAD_UNCHANGED)
    assert raw.shape == image.shape[:2]
    _assert_same_labels(raw, expected, gap)


def test_script_cityscapes_resize_and_tf1_checkpoint(tmp_path):
  """min/max_resize_value undone, trainId -> labelId raw files, batch of 2."""
  sizes = [(45, 61), (30, 23)]
  images = [_image(h, w, 10 + i) for i, (h, w) in enumerate(sizes)]
  rng = np.random.default_rng(3)
  labels = [rng.integers(0, 19, (h, w)).astype(np.uint8) for h, w in sizes]
  record_dir = str(tmp_path / 'records')
  names = _write_split(record_dir, 'val_fine', images, labels)
  predictor = _predictor(19, seed=0)
  prefix = checkpoints.save_tf1_checkpoint(predictor,
                                           str(tmp_path / 'tf1' / 'model.ckpt'))
  resized = [preprocess.resize_to_range(
      image=tf.cast(image, tf.float32), min_size=33, max_size=65,
      align_corners=True)[0].numpy() for image in images]
  assert [r.shape[:2] for r in resized] == [(33, 44), (43, 33)]
  expected = []
  for image, (low, gap) in zip(images, _predict(predictor, resized, 2)):
    # Back to the original size: nearest neighbour, align_corners.
    back = [tf.compat.v1.image.resize_nearest_neighbor(
        x[np.newaxis, :, :, np.newaxis], image.shape[:2],
        align_corners=True).numpy()[0, :, :, 0] for x in (low, gap)]
    assert len(np.unique(back[0])) >= 2
    expected.append(back)
  out = str(tmp_path / 'vis')
  proc = _run_vis(['--dataset=cityscapes', '--vis_split=val_fine',
                   '--dataset_dir', record_dir, '--checkpoint_dir', prefix,
                   '--vis_logdir', out, '--colormap_type=cityscapes',
                   '--also_save_raw_predictions', '--nosave_overlay',
                   '--min_resize_value=33', '--max_resize_value=65',
                   '--vis_batch_size=2'] + MODEL_FLAGS)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'trainIds to labelIds' in proc.stderr
  assert re.search(r'visualised 2(/2)? images \([0-9.]+ images/s\) in ',
                   proc.stderr), proc.stderr
  results = os.path.join(out, 'segmentation_results')
  assert sorted(os.listdir(results)) == sorted(
      '%06d_%s.png' % (i, kind) for i in range(2)
      for kind in ('image', 'prediction', 'label'))
  colours = V.get_colormap('cityscapes')
  for i, (image, label) in enumerate(zip(images, labels)):
    saved = _read_rgb(os.path.join(results, '%06d_image.png' % i))
    assert saved.shape == image.shape
    prediction = _read_rgb(os.path.join(results, '%06d_prediction.png' % i))
    assert prediction.shape == image.shape
    _assert_same_labels(prediction, colours[expected[i][0]], expected[i][1])
    truth = _read_rgb(os.path.join(results, '%06d_label.png' % i))
    assert truth.shape == image.shape
    raw = cv2.imread(os.path.join(out, 'raw_segmentation_results',
                                  names[i] + '.png'), cv2.IMREAD_UNCHANGED)
    table = np.asarray(V.CITYSCAPES_TRAIN_ID_TO_LABEL_ID)
    _assert_same_labels(raw, table[expected[i][0]], expected[i][1])
    assert raw.min() >= 7 and raw.max() <= 33


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------

def test_check_inputs_errors(tiny, tmp_path):
  empty = tmp_path / 'empty_train'
  empty.mkdir()
  args = (tiny['json'], 'val', tiny['records'])
  assert vis_lib.check_inputs(*args, tiny['train_dir']).name == 'tiny'
  with pytest.raises(checkpoints.NoCheckpointError,
                     match='No checkpoint in .*empty_train'):
    vis_lib.check_inputs(*args, str(empty))
  # A continuous run may wait for a trainer's first checkpoint.
  vis_lib.check_inputs(*args, str(empty), wait_for_checkpoint=True)
  with pytest.raises(checkpoints.NoCheckpointError, match='neither a folder nor'):
    vis_lib.check_inputs(*args, str(tmp_path / 'nowhere'),
                         wait_for_checkpoint=True)
  with pytest.raises(ValueError, match=r"No TFRecord shard matches .*test-\*"):
    vis_lib.check_inputs(tiny['json'], 'test', tiny['records'],
                         tiny['train_dir'])
  with pytest.raises(ValueError, match="Split 'nope' is not a split of dataset "
                     "'tiny'; accepted: test, val"):
    vis_lib.check_inputs(tiny['json'], 'nope', tiny['records'],
                         tiny['train_dir'])


@pytest.mark.slow
def test_script_errors_and_help(tiny, tmp_path):
  common = ['--dataset', tiny['json'], '--dataset_dir', tiny['records'],
            '--vis_logdir', str(tmp_path / 'vis')] + MODEL_FLAGS
  missing = _run_vis(common + ['--checkpoint_dir', str(tmp_path / 'nowhere')])
  assert missing.returncode == 1
  assert 'ERROR: %s is neither a folder nor a checkpoint prefix' % (
      tmp_path / 'nowhere') in missing.stderr
  assert not os.path.exists(str(tmp_path / 'vis'))
  colormap = _run_vis(common + ['--checkpoint_dir', tiny['train_dir'],
                                '--colormap_type=nope'])
  assert colormap.returncode != 0
  assert ('--colormap_type=nope: value should be one of <pascal|cityscapes|'
          'ade20k|mapillary_vistas|camvid|dataset>') in colormap.stderr
  too_small = _run_vis(common + ['--checkpoint_dir', tiny['train_dir'],
                                 '--vis_crop_size=33,33',
                                 '--max_number_of_iterations=1'])
  assert too_small.returncode == 1
  assert ('ERROR: [eval keeps whole images: image] [val/img_00] [is] [37] [x] '
          '[50]') in too_small.stderr
  helped = _run_vis(['--helpfull'])
  text = helped.stdout + helped.stderr
  for flag in ('vis_logdir', 'checkpoint_dir', 'vis_batch_size',
               'vis_crop_size', 'eval_interval_secs', 'eval_scales',
               '[no]add_flipped_images', 'dataset', 'vis_split', 'dataset_dir',
               'colormap_type', '[no]also_save_raw_predictions',
               'max_number_of_iterations', 'min_resize_value',
               'max_resize_value', 'resize_factor', 'output_stride',
               'atrous_rates', 'model_variant', '[no]save_overlay',
               'overlay_alpha', '[no]save_labels'):
    assert '--' + flag + ':' in text, flag
  assert "default: '513,513'" in text and "default: 'pascal'" in text


@pytest.mark.slow
def test_script_auto_crop_takes_images_a_small_crop_refuses(tiny, tmp_path):
  """--vis_crop_size=auto: whole images padded to k * 16 + 1, any size."""
  out = str(tmp_path / 'vis_auto')
  flags_auto = [f for f in MODEL_FLAGS if not f.startswith('--vis_crop_size')]
  proc = _run_vis(['--dataset', tiny['json'], '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', tiny['train_dir'], '--vis_logdir', out,
                   '--vis_crop_size=auto', '--max_number_of_iterations=1',
                   '--nosave_overlay', '--nosave_labels'] + flags_auto)
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = os.path.join(out, 'segmentation_results')
  assert len(os.listdir(results)) == 6
  pascal = V.get_colormap('pascal')[:4]
  for i, image in enumerate(tiny['images']):
    prediction = _read_rgb(os.path.join(results, '%06d_prediction.png' % i))
    assert prediction.shape == image.shape
    # Every pixel is the colour of one of the 4 classes.
    match = (prediction[:, :, None, :] == pascal[None, None]).all(-1)
    assert match.any(-1).all()
  bad = _run_vis(['--dataset', tiny['json'], '--dataset_dir', tiny['records'],
                  '--checkpoint_dir', tiny['train_dir'], '--vis_logdir', out,
                  '--vis_crop_size=65'] + flags_auto)
  assert bad.returncode != 0 and '"auto"' in bad.stderr


def test_colorize_panoptic_instances_share_class_hue_and_differ():
  category = np.zeros((6, 8), np.int32)
  instance = np.zeros((6, 8), np.int32)
  category[:, 4:] = 15          # person (VOC) on the right half
  instance[:3, 4:] = 1
  instance[3:, 4:] = 2
  category[0, 0] = 255          # ignore
  pic = V.colorize_panoptic(category, instance, 'pascal', boundaries=False)
  person = V.get_colormap('pascal')[15].astype(int)
  a, b = pic[0, 5].astype(int), pic[5, 5].astype(int)
  assert not np.array_equal(a, b)
  assert np.abs(a - person).max() <= V.PANOPTIC_JITTER
  assert np.abs(b - person).max() <= V.PANOPTIC_JITTER
  # Stuff keeps the class colour, ignore is black.
  np.testing.assert_array_equal(pic[3, 1], V.get_colormap('pascal')[0])
  np.testing.assert_array_equal(pic[0, 0], [0, 0, 0])
  # Same instance, same colour, in any call (deterministic).
  again = V.colorize_panoptic(category, instance, 'pascal', boundaries=False)
  np.testing.assert_array_equal(pic, again)
  flat = V.colorize_panoptic(category, instance, 'pascal', jitter=0,
                             boundaries=False)
  np.testing.assert_array_equal(flat[0, 5], person)


def test_colorize_panoptic_boundaries_and_split():
  panoptic = np.array([[15001, 15001, 15002, 15002],
                       [15001, 15001, 15002, 15002],
                       [0, 0, 0, 0]])
  category, instance = V.split_panoptic(panoptic, 1000)
  np.testing.assert_array_equal(category[0], [15, 15, 15, 15])
  np.testing.assert_array_equal(instance[0], [1, 1, 2, 2])
  edges = V.segment_boundaries(category * 10 + instance)
  np.testing.assert_array_equal(edges, [[0, 1, 1, 0], [1, 1, 1, 1],
                                        [1, 1, 1, 1]])
  pic = V.colorize_panoptic(category, instance)
  np.testing.assert_array_equal(pic[0, 1], V.BOUNDARY_COLOUR)
  inner = V.colorize_panoptic(category, instance, boundaries=False)
  np.testing.assert_array_equal(pic[0, 0], inner[0, 0])
  with pytest.raises(ValueError, match='same'):
    V.colorize_panoptic(category, instance[:2])
