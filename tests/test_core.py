"""The lowest layer: resize kernels and size rules written once, the error base."""
import ast
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.core import errors
from deeplab_tf.core import geometry
from deeplab_tf.core import pixels
from deeplab_tf.core import progress

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'deeplab_tf')


def test_resizes_take_an_image_or_a_batch_and_keep_the_tf1_kernel():
  image = tf.reshape(tf.range(12, dtype=tf.float32), [3, 4, 1])
  out = geometry.resize_bilinear(image, [5, 7])
  assert out.shape == (5, 7, 1) and out.dtype == tf.float32
  # align_corners: the corners are the input's corners, the middle row the
  # mean of rows 0..2 sampled at y = 1 exactly.
  np.testing.assert_allclose(out[0, :, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3])
  np.testing.assert_allclose(out[2, :, 0], np.array([0, .5, 1, 1.5, 2, 2.5, 3]) + 4)
  np.testing.assert_allclose(out[-1, -1, 0], 11)
  batch = geometry.resize_bilinear(image[tf.newaxis], [5, 7])
  np.testing.assert_array_equal(batch[0], out)
  half = geometry.resize_bilinear(tf.cast(image, tf.float16), [5, 7])
  assert half.dtype == tf.float16
  assert geometry.resize_bilinear(tf.cast(image, tf.uint8), [5, 7],
                                  output_dtype=None).dtype == tf.float32
  # Nearest: roundf ties away from zero: 2 -> 3 samples at 0, 0.5, 1 -> 0, 1, 1.
  labels = tf.constant([[[1], [2]]], tf.int32)
  np.testing.assert_array_equal(
      geometry.resize_nearest(labels, [1, 3])[0, :, 0], [1, 2, 2])
  with pytest.raises(ValueError, match=r'\[H, W, C\] image or a \[B, H, W, C\]'):
    geometry.resize_bilinear(tf.zeros([4]), [2])


@pytest.mark.parametrize('size, multiple, expected', [
    (1, 16, 1), (17, 16, 17), (18, 16, 33), (513, 16, 513), (514, 8, 521)])
def test_next_aligned_size(size, multiple, expected):
  assert geometry.next_aligned_size(size, multiple) == expected
  assert int(geometry.next_aligned_size(tf.constant(size), multiple)) == expected


def test_padded_size_keeps_the_crop_where_the_image_fits():
  np.testing.assert_array_equal(
      geometry.padded_size([37, 70], (65, 65), 16), [65, 81])
  assert geometry.scale_dimension(513, 1 / 16) == 33
  assert int(geometry.scale_dimension(tf.constant(513), 0.25)) == 129


def test_mean_pixel_per_variant():
  assert pixels.mean_pixel('xception_65') == [127.5] * 3
  assert pixels.mean_pixel('resnet_v1_101') == list(pixels.IMAGENET_MEAN_RGB)
  assert pixels.mean_pixel(None) == list(pixels.IMAGENET_MEAN_RGB)
  assert pixels.mean_pixel('vgg_16') == list(pixels.CAFFE_MEAN_RGB)


def _error_classes():
  found = []
  for folder, _, files in os.walk(PACKAGE):
    for name in files:
      if not name.endswith('.py'):
        continue
      path = os.path.join(folder, name)
      for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.ClassDef) and node.name.endswith('Error'):
          found.append((os.path.relpath(path, PACKAGE), node.name))
  return found


def test_every_error_class_derives_from_the_one_base():
  import importlib  # pylint: disable=g-import-not-at-top
  classes = _error_classes()
  assert len(classes) >= 10
  for path, name in classes:
    module = importlib.import_module(
        'deeplab_tf.' + path[:-3].replace(os.sep, '.'))
    cls = getattr(module, name)
    assert issubclass(cls, errors.DeeplabError), (path, name)


# Each library layer and the layers it may import (its own included). The
# commands at the package top (train, eval, vis, ...) may import any layer.
LAYERS = {
    'core': set(),
    'data': {'core'},
    'models': {'core'},
    'crf': {'core'},
    'checkpoints': {'core', 'models'},
    'visualization': {'core', 'data', 'checkpoints'},
    'training': {'core', 'data', 'models', 'checkpoints', 'visualization'},
    'evaluation': {'core', 'data', 'models', 'crf', 'checkpoints'},
    'export': {'core', 'data', 'models', 'crf', 'checkpoints', 'evaluation'},
    'conformance': {'core', 'data', 'models', 'checkpoints', 'training'},
    # The script edge: flags -> settings, below only the commands.
    'config': {'core', 'data', 'models', 'crf', 'checkpoints', 'training'},
}


def _imported_layers(path):
  layers = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and (
        node.module.split('.')[0] == 'deeplab_tf'):
      if node.module == 'deeplab_tf':
        names = [alias.name for alias in node.names]
      else:
        names = [node.module.split('.')[1]]
    elif isinstance(node, ast.Import):
      names = [a.name.split('.')[1] for a in node.names
               if a.name.startswith('deeplab_tf.')]
    layers.update(names)
  return layers


def test_no_layer_imports_one_above_it():
  wrong = []
  for layer, allowed in LAYERS.items():
    folder = os.path.join(PACKAGE, layer)
    paths = ([os.path.join(folder + '.py')] if os.path.isfile(folder + '.py')
             else [os.path.join(d, f) for d, _, files in os.walk(folder)
                   for f in files if f.endswith('.py')])
    assert paths, layer
    for path in paths:
      for imported in _imported_layers(path) - allowed - {layer}:
        wrong.append('%s imports %s' % (os.path.relpath(path, PACKAGE),
                                        imported))
  assert not wrong, '\n'.join(sorted(wrong))


def test_progress_line():
  assert progress.progress_line(12, 60, 4.0) == (
      '12/60 images (3.00 images/s), ETA 0:00:16')
  assert progress.progress_line(0, 60, 0.0) == (
      '0/60 images (0.00 images/s), ETA ?')
  assert progress.progress_line(5, None, 2.0) == '5 images (2.50 images/s)'
  assert progress.progress_line(60, 60, 20.0, final=True) == (
      '60/60 images (3.00 images/s) in 0:00:20')
  assert progress.progress_line(3, 10, 1.5, unit='steps') == (
      '3/10 steps (2.00 steps/s), ETA 0:00:04')
  assert progress.eta_seconds(10, 0.0) is None
  assert progress.eta_seconds(-3, 2.0) == 0
  assert progress.format_duration(float('nan')) == '?'
  assert progress.format_duration(3725.4) == '1:02:05'


def test_progress_log_throttles_by_clock():
  now = [100.0]
  lines = []
  log = progress.ProgressLog(lines.append, total=8, every_secs=5.0,
                             prefix='x: ', clock=lambda: now[0])
  now[0] = 102.0
  assert not log.update(2)             # 2 s < 5 s: nothing
  now[0] = 105.0
  assert log.update(4, ', shard 1/2')   # 5 s: a line
  now[0] = 107.0
  assert not log.update(5)             # 2 s since the last line
  now[0] = 108.0
  log.finish(8)
  assert lines == ['x: 4/8 images (0.80 images/s), ETA 0:00:05, shard 1/2',
                   'x: 8/8 images (1.00 images/s) in 0:00:08']


def test_pad_values_of_registered_backbones_match_the_built_in_table(
    monkeypatch):
  """Each backbone registers its pad value; the table the input pipeline uses
  without the models (core.pixels) says the same for the built-in ones."""
  from deeplab_tf.models import backbones  # pylint: disable=g-import-not-at-top
  registered = {n: pixels.mean_pixel(n) for n in backbones.names()}
  monkeypatch.setattr(pixels, '_REGISTERED', {})
  assert {n: pixels.mean_pixel(n) for n in backbones.names()} == registered
  assert registered['resnet_v1_50'] == list(pixels.IMAGENET_MEAN_RGB)
  assert registered['resnet_v1_50_beta'] == [127.5] * 3
  assert registered['vgg_16'] == list(pixels.CAFFE_MEAN_RGB)
  # A new variant needs only its registration.
  monkeypatch.setattr(backbones, 'REGISTRY', dict(backbones.REGISTRY))
  backbones.register(dataclasses.replace(
      backbones.get_backbone('resnet_v1_50'), name='resnet_v1_26'))
  assert pixels.mean_pixel('resnet_v1_26') == list(pixels.IMAGENET_MEAN_RGB)
  assert 'resnet_v1_26' in backbones.names()
