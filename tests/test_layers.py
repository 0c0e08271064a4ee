"""Original-semantics layers: align_corners resize, scale_dimension, fixed padding."""
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.models import layers as dl_layers


def numpy_resize_align_corners(x, out_h, out_w):
  """Bilinear resize with align_corners=True, restated in float64."""
  in_h, in_w = x.shape[1:3]
  ys = np.arange(out_h) * ((in_h - 1) / (out_h - 1) if out_h > 1 else 0.0)
  xs = np.arange(out_w) * ((in_w - 1) / (out_w - 1) if out_w > 1 else 0.0)
  y0 = np.floor(ys).astype(int)
  x0 = np.floor(xs).astype(int)
  y1 = np.minimum(y0 + 1, in_h - 1)
  x1 = np.minimum(x0 + 1, in_w - 1)
  dy = (ys - y0)[None, :, None, None]
  dx = (xs - x0)[None, None, :, None]
  top = x[:, y0][:, :, x0] * (1 - dx) + x[:, y0][:, :, x1] * dx
  bottom = x[:, y1][:, :, x0] * (1 - dx) + x[:, y1][:, :, x1] * dx
  return top * (1 - dy) + bottom * dy


def test_resize_bilinear_is_align_corners():
  x = np.random.default_rng(0).normal(size=(1, 9, 7, 2)).astype(np.float32)
  ours = dl_layers.ResizeBilinear((33, 25))(x).numpy()
  np.testing.assert_allclose(ours, numpy_resize_align_corners(x, 33, 25),
                             atol=1e-5)
  # Corners are copied exactly (align_corners), unlike tf.image.resize.
  np.testing.assert_array_equal(ours[0, 0, 0], x[0, 0, 0])
  np.testing.assert_array_equal(ours[0, -1, -1], x[0, -1, -1])
  half_pixel = tf.image.resize(x, (33, 25)).numpy()
  assert np.abs(half_pixel - ours).max() > 1e-2


def test_resize_bilinear_reference_size():
  x = tf.zeros((2, 5, 5, 3))
  ref = tf.zeros((2, 17, 11, 1))
  assert dl_layers.ResizeBilinear()(x, ref).shape == (2, 17, 11, 3)


@pytest.mark.parametrize('dim,scale,expected', [
    (513, 1 / 16, 33), (513, 1 / 4, 129), (129, 1 / 16, 9), (512, 1 / 16, 32),
    (513, 0.5, 257), (513, 0.75, 385), (513, 1.25, 641), (1025, 1 / 8, 129)])
def test_scale_dimension(dim, scale, expected):
  assert dl_layers.scale_dimension(dim, scale) == expected
  tensor = dl_layers.scale_dimension(tf.constant(dim), scale)
  assert int(tensor) == expected


@pytest.mark.parametrize('kernel,rate,expected', [
    (3, 1, (1, 1)), (3, 2, (2, 2)), (7, 1, (3, 3)), (1, 1, (0, 0)), (4, 1, (1, 2))])
def test_fixed_padding(kernel, rate, expected):
  assert dl_layers.fixed_padding_amounts(kernel, rate) == expected


def test_normalize_image_modes():
  x = np.array([[[[0., 127.5, 255.]]]], np.float32)
  z = dl_layers.NormalizeImage('zero_mean_unit_range')(x).numpy()
  np.testing.assert_allclose(z, [[[[-1., 0., 1.]]]], atol=1e-6)
  m = dl_layers.NormalizeImage('subtract_imagenet_mean')(x).numpy()
  np.testing.assert_allclose(m, [[[[-123.15, 127.5 - 115.9, 255 - 103.06]]]],
                             atol=1e-4)
  with pytest.raises(ValueError, match='Unknown image normalisation'):
    dl_layers.NormalizeImage('imagenet')


def test_merge_logits():
  a = np.full((1, 2, 2, 3), 1.0, np.float32)
  b = np.full((1, 2, 2, 3), 3.0, np.float32)
  np.testing.assert_allclose(dl_layers.MergeLogits('max')([a, b]), b)
  np.testing.assert_allclose(dl_layers.MergeLogits('avg')([a, b]), 2.0)
