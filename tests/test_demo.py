"""deeplab_tf.demo: a checkpoint the test writes (model-zoo style and ours) on a CamVid image.

The tiny MobileNetV2 has random weights with BatchNorm statistics taken from
the image itself and balanced logits biases, so that it predicts many
classes (a freshly initialised net labels every pixel alike, which would
leave the overlay and the class shares untested).
"""
import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf import demo
from deeplab_tf import visualization
from deeplab_tf.checkpoints import model_options
from deeplab_tf.data import datasets_info
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import backbones
from deeplab_tf.models import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID_VAL = os.path.join(REPO, '..', 'shared', 'camvid', 'val')
NUM_CLASSES = 11   # CamVid, so --dataset=camvid names the classes
OPTIONS = ModelOptions(model_variant='mobilenet_v2', depth_multiplier=0.25,
                       output_stride=16,
                       outputs_to_num_classes={'semantic': NUM_CLASSES})
MODEL_FLAGS = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.25',
               '--output_stride=16']


def _image_path():
  if not os.path.isdir(CAMVID_VAL):
    pytest.fail('../shared/camvid not found beside the repository.')
  return os.path.join(CAMVID_VAL, sorted(os.listdir(CAMVID_VAL))[0])


def _model_for(image):
  """OPTIONS with BatchNorm statistics of ``image`` and centred logits.

  Calibrated on the image as the demo feeds it: padded with the mean pixel
  to the 513x513 crop (the image pooling sees the padding too).
  """
  height, width = image.shape[:2]
  padded = np.empty((1, 513, 513, 3), np.float32)
  padded[:] = backbones.mean_pixel(OPTIONS.model_variant)
  padded[0, :height, :width] = image
  model = build_model(OPTIONS, fine_tune_batch_norm=True)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.momentum = 0.0   # one training pass: moving stats = the image's
  model(padded, training=True)
  logits = model(padded, training=False)['merged_logits'].numpy()
  # merged_logits are at stride 16: keep the cells over the image.
  valid = logits[0, :height // 16 + 1, :width // 16 + 1]
  layer = model.get_layer('logits.semantic')
  layer.bias.assign(layer.bias - valid.mean(axis=(0, 1)))
  return model


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """The image, and the same weights as a model-zoo folder and as our run."""
  root = tmp_path_factory.mktemp('demo')
  image_path = _image_path()
  image = demo.read_image(image_path)
  model = _model_for(image)
  # As an extracted model-zoo tarball: model.ckpt.{index,data}, no state file.
  zoo = root / 'zoo'
  checkpoints.save_tf1_checkpoint(model, str(zoo / 'model.ckpt'))
  os.remove(zoo / 'checkpoint')
  # As a train_logdir: an object-based checkpoint and the trainer's options,
  # here at output stride 8 (the demo command overrides it with 16).
  ours = root / 'train'
  tf.train.Checkpoint(model=checkpoints.NamedVariables(model)).save(
      str(ours / 'ckpt'))
  with open(ours / 'model_options.json', 'w') as f:
    json.dump(OPTIONS.replace(output_stride=8, crop_size=(65, 65)).to_dict(),
              f)
  return {'root': root, 'image_path': image_path, 'image': image,
          'zoo': str(zoo), 'ours': str(ours)}


def _demo(args, out_dir):
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.demo', '--output_dir=%s' % out_dir]
      + args, cwd=REPO, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  return proc.stdout


def _read_png(path):
  import cv2  # pylint: disable=g-import-not-at-top
  array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  assert array is not None, path
  return array[..., ::-1] if array.ndim == 3 else array


@pytest.fixture(scope='module')
def zoo_run(setup):
  out = setup['root'] / 'out_zoo'
  stdout = _demo(['--checkpoint_path=%s' % setup['zoo'],
                  '--image=%s' % setup['image_path'], '--dataset=camvid']
                 + MODEL_FLAGS, out)
  return stdout, out


def test_zoo_checkpoint_overlay_labels_and_shares(setup, zoo_run):
  stdout, out = zoo_run
  image = setup['image']
  stem = os.path.splitext(os.path.basename(setup['image_path']))[0]
  labels = _read_png(out / ('%s_labels.png' % stem))
  overlay = _read_png(out / ('%s_overlay.png' % stem))
  prediction = _read_png(out / ('%s_prediction.png' % stem))
  # Outputs at the image's own size (360x480 CamVid: padded to 513, cropped back).
  assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
  assert overlay.shape == prediction.shape == image.shape
  present = np.unique(labels)
  assert present.max() < NUM_CLASSES and len(present) >= 3, present
  # The colours are CamVid's (--colormap_type=dataset) and the overlay is
  # the 50 / 50 blend of the image and those colours.
  colours = visualization.colorize(labels, datasets_info.CAMVID.colormap)
  np.testing.assert_array_equal(prediction, colours)
  np.testing.assert_array_equal(overlay,
                                visualization.overlay(image, colours, 0.5))
  # Every class present is printed with its name and share, largest first.
  assert 'TF1 checkpoint' in stdout and 'options from the model flags' in stdout
  printed = re.findall(r'^\s+(\d+)\s+(\S+)\s+([\d.]+)%$', stdout, re.M)
  assert [int(c) for c, _, _ in printed] == [
      c for c, _, _ in demo.class_shares(labels)]
  for class_id, name, share in printed:
    assert name == datasets_info.CAMVID.class_names[int(class_id)]
    assert float(share) == pytest.approx(
        100.0 * np.mean(labels == int(class_id)), abs=0.006)
  assert sum(float(s) for _, _, s in printed) == pytest.approx(100.0, abs=0.1)


def test_our_checkpoint_with_its_options_file(setup, zoo_run):
  """A train_logdir: options from model_options.json, --output_stride wins."""
  assert model_options.options_json_for(setup['ours']) == os.path.join(
      setup['ours'], 'model_options.json')
  assert model_options.options_json_for(setup['zoo']) is None
  out = setup['root'] / 'out_ours'
  stdout = _demo(['--checkpoint_path=%s' % setup['ours'],
                  '--image=%s' % setup['image_path'], '--dataset=camvid',
                  '--output_stride=16'], out)
  assert 'model_options.json with --output_stride' in stdout, stdout
  assert 'restored from checkpoint' in stdout
  stem = os.path.splitext(os.path.basename(setup['image_path']))[0]
  # Same weights, same options: the same labels as the model-zoo copy.
  np.testing.assert_array_equal(_read_png(out / ('%s_labels.png' % stem)),
                                _read_png(zoo_run[1] / ('%s_labels.png' % stem)))


def test_converter_options_file_is_found(tmp_path):
  prefix = tmp_path / 'converted' / 'x65'
  os.makedirs(prefix.parent)
  model = build_model(OPTIONS)
  checkpoints.save_tf1_checkpoint(model, str(prefix))
  with open(str(prefix) + '_options.json', 'w') as f:
    json.dump(OPTIONS.to_dict(), f)
  found = model_options.options_json_for(str(prefix))
  assert found == str(prefix) + '_options.json'
  assert model_options.resolve(None, None, json_path=found)[0] == OPTIONS


def test_class_shares_and_errors(tmp_path):
  labels = np.array([[0, 0, 2], [2, 2, 2]], np.uint8)
  assert demo.class_shares(labels, ['sky', 'road', 'car']) == (
      (2, 'car', 4 / 6), (0, 'sky', 2 / 6))
  assert demo.class_shares(labels)[0][1] == 'class 2'
  with pytest.raises(FileNotFoundError):
    demo.read_image(str(tmp_path / 'missing.png'))
  deeperlab = tmp_path / 'options.json'
  deeperlab.write_text(json.dumps({'meta_architecture': 'deeperlab'}))
  with pytest.raises(ValueError, match='DeeperLab'):
    model_options.resolve(None, None, json_path=str(deeperlab),
                          families=('deeplab',))
