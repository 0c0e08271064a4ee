"""Unit tests of deeplab_tf.data.preprocess with hand-computed values.

The rules are those of shared/reference/ops/README.md sections 1-4 (the
original DeepLab preprocess_utils / input_preprocess).
"""
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import preprocess as P

F32 = np.float32


def _np(t):
  return np.asarray(t.numpy() if hasattr(t, 'numpy') else t)


# --------------------------------------------------------------------------
# resize_to_range: sizes
# --------------------------------------------------------------------------

@pytest.mark.parametrize('hw, kwargs, want', [
    # README section 1 examples.
    ((512, 683), dict(min_size=513, max_size=513, factor=16), [385, 513]),
    ((1024, 2048), dict(min_size=65, max_size=None, factor=8), [65, 137]),
    ((375, 500), dict(min_size=129, max_size=129, factor=16), [97, 129]),
    # keep_aspect_ratio=False: square of the larger computed side, not max.
    ((375, 500), dict(min_size=129, max_size=257, factor=16,
                      keep_aspect_ratio=False), [177, 177]),
    # No max: short side to min_size, long side floored (500 * 400/375).
    ((375, 500), dict(min_size=400), [400, 533]),
    # max_size 500 caps the long side: 375*(500/500), 500.
    ((375, 500), dict(min_size=300, max_size=500), [300, 400]),
    ((500, 333), dict(min_size=300, max_size=500), [450, 300]),
    # max lowered to k*factor+1: 100 -> 97, then both sides rounded up.
    ((100, 50), dict(min_size=65, max_size=100, factor=8), [97, 49]),
    # float32 arithmetic: 97/41 in float32 times 41 is just below 97, so the
    # short side floors to 96 (an exact computation would give 97).
    ((41, 41), dict(min_size=97), [96, 96]),
    ((25, 45), dict(min_size=65), [65, 116]),
])
def test_resize_to_range_sizes(hw, kwargs, want):
  assert P.resize_to_range_size(hw[0], hw[1], **kwargs).numpy().tolist() == want


def test_resize_to_range_size_rounds_up_to_factor_multiple_plus_one():
  # 375x500 with min 100 (no max): 100 x floor(500 * 100/375) = 100 x 133.
  assert P.resize_to_range_size(375, 500, 100).numpy().tolist() == [100, 133]
  # factor 16: 100 -> 113 (7*16+1), 133 -> 145 (9*16+1): rounded UP.
  assert P.resize_to_range_size(375, 500, 100, factor=16).numpy().tolist() == [
      113, 145]
  # factor 8: 100 -> 105, 133 -> 137; 97 = 12*8+1 would stay as it is.
  assert P.resize_to_range_size(375, 500, 100, factor=8).numpy().tolist() == [
      105, 137]
  assert P.resize_to_range_size(375, 500, 97, factor=8).numpy().tolist() == [
      97, 129]


# --------------------------------------------------------------------------
# resize_to_range: values (bilinear align_corners, nearest with roundf ties)
# --------------------------------------------------------------------------

def test_bilinear_align_corners_2x2_to_3x3():
  image = np.array([[0, 10], [20, 30]], F32)[..., None]
  label = np.array([[1, 2], [3, 4]], np.int32)[..., None]
  out_image, out_label = P.resize_to_range(image, label, min_size=3)
  # Corners kept, midpoints averaged (no half-pixel offset).
  np.testing.assert_array_equal(
      _np(out_image)[..., 0], [[0, 5, 10], [10, 15, 20], [20, 25, 30]])
  assert out_image.dtype == tf.float32
  # Nearest with align_corners: source 0.5 is a tie and rounds AWAY from
  # zero (C roundf) to 1: rows/cols taken [0, 1, 1].
  np.testing.assert_array_equal(
      _np(out_label)[..., 0], [[1, 2, 2], [3, 4, 4], [3, 4, 4]])
  assert out_label.dtype == tf.int32


def test_nearest_ties_round_away_from_zero_not_to_even():
  # 4 -> 7 samples: source y * 3/6 = 0, .5, 1, 1.5, 2, 2.5, 3. roundf gives
  # [0, 1, 1, 2, 2, 3, 3]; round-half-even would give [0, 0, 1, 2, 2, 2, 3]
  # and floor [0, 0, 1, 1, 2, 2, 3].
  label = np.arange(4, dtype=np.int32).reshape(4, 1, 1) * 10
  label = np.tile(label, [1, 4, 1])
  _, out = P.resize_to_range(np.zeros([4, 4, 3], F32), label, min_size=7)
  np.testing.assert_array_equal(_np(out)[:, 0, 0], [0, 10, 10, 20, 20, 30, 30])


def test_bilinear_downscale_samples_single_pixels_no_antialias():
  # 9 -> 3 with align_corners samples source rows 0, 4, 8 exactly.
  image = np.arange(81, dtype=F32).reshape(9, 9, 1)
  out, _ = P.resize_to_range(image, None, min_size=3)
  np.testing.assert_array_equal(_np(out)[..., 0],
                                image[::4, ::4, 0])


def test_resize_to_range_float_label_goes_bilinear():
  label = np.array([[0, 1], [2, 3]], F32)[..., None]
  _, out = P.resize_to_range(np.zeros([2, 2, 3], F32), label, min_size=3)
  assert out.dtype == tf.float32
  assert _np(out)[1, 1, 0] == 1.5


def test_resize_to_range_uint8_image_gives_float32():
  image = np.full([4, 6, 3], 7, np.uint8)
  out, label = P.resize_to_range(image, None, min_size=2)
  assert out.dtype == tf.float32 and label is None
  assert out.shape == (2, 3, 3)


def test_resize_to_range_in_graph_with_dynamic_shape():
  fn = tf.function(
      lambda im: P.resize_to_range(im, None, min_size=65, max_size=97,
                                   factor=8)[0],
      input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
  assert fn(tf.zeros([100, 50, 3])).shape == (97, 49, 3)
  assert fn(tf.zeros([50, 100, 3])).shape == (49, 97, 3)


# --------------------------------------------------------------------------
# random scale
# --------------------------------------------------------------------------

def test_random_scale_values_default_deeplab_setting():
  values = P.random_scale_values(0.5, 2.0, 0.25).numpy()
  np.testing.assert_array_equal(values,
                                F32([0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]))
  assert values.dtype == np.float32


def test_random_scale_values_truncated_count():
  # int((1.2 - 0.5) / 0.1 + 1) = int(7.999999999999999) = 7, spacing 0.11667.
  values = P.random_scale_values(0.5, 1.2, 0.1).numpy()
  assert len(values) == 7
  assert values[1] == F32(0.5) + (F32(1.2) - F32(0.5)) / F32(6)
  assert float(values[1]).hex() == '0x1.3bbbbc0000000p-1'
  assert values[-1] == F32(1.2)


def test_random_scale_values_are_float32():
  values = P.random_scale_values(0.5, 2.0, 0.1).numpy()
  assert len(values) == 16
  assert values[1] == F32(0.6) and float(values[1]) == 0.6000000238418579


def test_get_random_scale_draws_from_the_set():
  sampler = tf.function(lambda: P.get_random_scale(0.5, 2.0, 0.25))
  seen = {float(sampler().numpy()) for _ in range(300)}
  assert seen == {0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0}


def test_get_random_scale_special_cases():
  same = P.get_random_scale(1.0, 1.0, 0.25)
  assert tf.is_tensor(same) and same.shape == () and same.dtype == tf.float32
  assert float(same) == 1.0
  uniform = P.get_random_scale(0.5, 2.0, 0)
  assert uniform.shape == (1,)  # [1], not a scalar, as the original.
  assert 0.5 <= float(uniform[0]) < 2.0


@pytest.mark.parametrize('scale, kind, want', [
    (0.75, 'py', (24, 36)),
    (0.6, 'tensor', (19, 29)),   # float32(0.6) = 0.6000000238
    (2.0, 'py', (66, 98)),
])
def test_randomly_scale_sizes_truncate(scale, kind, want):
  image = np.zeros([33, 49, 3], F32)
  label = np.zeros([33, 49, 1], np.int32)
  value = tf.constant(scale, tf.float32) if kind == 'tensor' else scale
  out_image, out_label = P.randomly_scale_image_and_label(image, label, value)
  assert out_image.shape[:2] == want and out_label.shape[:2] == want
  assert out_label.dtype == tf.int32


def test_randomly_scale_size_is_float32_product():
  # float32(90) * float32(0.7) rounds to 63.0; float64 gives 62.99999 -> 62.
  out, _ = P.randomly_scale_image_and_label(np.zeros([90, 10, 3], F32), None,
                                            0.7)
  assert out.shape[0] == 63


def test_randomly_scale_python_one_is_a_short_cut_tensor_one_is_not():
  image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
  same, _ = P.randomly_scale_image_and_label(image, None, 1.0)
  assert same is image
  resized, _ = P.randomly_scale_image_and_label(image, None, tf.constant(1.0))
  assert resized.dtype == tf.float32  # the resize ran (identity values)
  np.testing.assert_array_equal(_np(resized), image.astype(F32))


# --------------------------------------------------------------------------
# pad
# --------------------------------------------------------------------------

RESNET_MEAN = [123.15, 115.90, 103.06]


def test_pad_values_are_exactly_the_float32_mean():
  image = np.arange(2 * 3 * 3, dtype=F32).reshape(2, 3, 3)
  pad = tf.reshape(tf.constant(RESNET_MEAN, tf.float32), [1, 1, 3])
  out = _np(P.pad_to_bounding_box(image, 1, 2, 4, 6, pad))
  assert out.shape == (4, 6, 3) and out.dtype == np.float32
  mask = np.ones([4, 6], bool)
  mask[1:3, 2:5] = False
  np.testing.assert_array_equal(out[mask], np.tile(F32(RESNET_MEAN),
                                                   [mask.sum(), 1]))
  np.testing.assert_array_equal(out[1:3, 2:5], image)  # integers restored


def test_pad_is_computed_as_pad_x_minus_mean_plus_mean():
  rng = np.random.default_rng(0)
  image = (rng.random([20, 20, 3]) * 255).astype(F32)
  pad = tf.reshape(tf.constant(RESNET_MEAN, tf.float32), [1, 1, 3])
  out = _np(P.pad_to_bounding_box(image, 0, 0, 21, 20, pad))[:20]
  expected = (image - F32(RESNET_MEAN)) + F32(RESNET_MEAN)
  np.testing.assert_array_equal(out, expected)
  # ... which is why non-integer pixels move (by an ulp of x - mean).
  moved = np.abs(out - image)
  assert 0 < moved.max() <= np.spacing(F32(256))


def test_pad_label_keeps_dtype_and_value():
  label = np.full([2, 2, 1], 7, np.uint8)
  out = P.pad_to_bounding_box(label, 0, 0, 3, 4, 255)
  assert out.dtype == tf.uint8
  np.testing.assert_array_equal(_np(out)[..., 0],
                                [[7, 7, 255, 255], [7, 7, 255, 255],
                                 [255, 255, 255, 255]])
  out0 = P.pad_to_bounding_box(label.astype(np.int32), 1, 0, 3, 2, 0)
  assert out0.dtype == tf.int32
  np.testing.assert_array_equal(_np(out0)[..., 0], [[0, 0], [7, 7], [7, 7]])


# --------------------------------------------------------------------------
# crop, flip
# --------------------------------------------------------------------------

def _positional(h, w):
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
  image = np.stack([rows, cols, rows * 0], -1).astype(F32)
  label = (rows * 1000 + cols)[..., None].astype(np.int32)
  return image, label


def test_random_crop_offsets_inclusive_and_shared():
  image, label = _positional(6, 5)
  fn = tf.function(lambda: P.random_crop([image, label], 4, 5))
  ys = set()
  for _ in range(60):
    crop_image, crop_label = [_np(t) for t in fn()]
    oy = int(crop_image[0, 0, 0])
    assert int(crop_image[0, 0, 1]) == 0  # crop width == image width
    np.testing.assert_array_equal(crop_label[..., 0],
                                  label[oy:oy + 4, :, 0])
    ys.add(oy)
  assert ys == {0, 1, 2}
  assert fn.get_concrete_function().structured_outputs[0].shape == (4, 5, 3)


def test_flip_applies_to_image_and_label_together():
  image, label = _positional(3, 4)
  fn = tf.function(lambda: P.flip_dim([image, label], 0.5, dim=1))
  outcomes = set()
  for _ in range(40):
    out_image, out_label, flipped = [_np(t) for t in fn()]
    expected_image = image[:, ::-1] if flipped else image
    expected_label = label[:, ::-1] if flipped else label
    np.testing.assert_array_equal(out_image, expected_image)
    np.testing.assert_array_equal(out_label, expected_label)
    outcomes.add(bool(flipped))
  assert outcomes == {True, False}
  always = P.flip_dim([image], prob=1.0, dim=0)
  np.testing.assert_array_equal(_np(always[0]), image[::-1])
  assert bool(always[1])


# --------------------------------------------------------------------------
# preprocess_image_and_label
# --------------------------------------------------------------------------

def test_eval_pads_bottom_right_and_keeps_uint8_original():
  image = np.full([3, 2, 3], 9, np.uint8)
  label = np.full([3, 2, 1], 4, np.uint8)
  original, processed, out_label = P.preprocess_image_and_label(
      image, label, 4, 4, is_training=False, model_variant='xception_65')
  assert original is not None and original.dtype == tf.uint8
  np.testing.assert_array_equal(_np(original), image)
  processed, out_label = _np(processed), _np(out_label)
  assert processed.shape == (4, 4, 3) and out_label.dtype == np.int32
  np.testing.assert_array_equal(processed[:3, :2], 9.0)
  np.testing.assert_array_equal(processed[3], 127.5)
  np.testing.assert_array_equal(processed[:, 2:], 127.5)
  np.testing.assert_array_equal(out_label[..., 0], [[4, 4, 255, 255]] * 3 +
                                [[255] * 4])


def test_eval_model_variant_none_pads_with_imagenet_mean():
  _, processed, _ = P.preprocess_image_and_label(
      np.zeros([1, 1, 3], np.uint8), None, 2, 1, is_training=False)
  np.testing.assert_array_equal(_np(processed)[1, 0], F32(RESNET_MEAN))


def test_eval_resize_makes_float32_original():
  image = np.zeros([20, 10, 3], np.uint8)
  original, processed, _ = P.preprocess_image_and_label(
      image, None, 33, 33, min_resize_value=17, max_resize_value=33,
      resize_factor=8, is_training=False, model_variant='mobilenet_v2')
  assert original.dtype == tf.float32 and original.shape == (33, 17, 3)
  assert processed.shape == (33, 33, 3)


def test_eval_never_crops_a_larger_image():
  image = np.zeros([90, 70, 3], np.uint8)
  label = np.zeros([90, 70, 1], np.uint8)
  _, processed, out_label = P.preprocess_image_and_label(
      image, label, 65, 65, is_training=False, model_variant='xception_65')
  assert processed.shape == (90, 70, 3) and out_label.shape == (90, 70, 1)
  # In a graph of unknown size the static shape claims the crop (original).
  fn = tf.function(
      lambda im, lab: P.preprocess_image_and_label(
          im, lab, 65, 65, is_training=False, model_variant='xception_65')[1:],
      input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                       tf.TensorSpec([None, None, 1], tf.uint8)])
  static = fn.get_concrete_function().structured_outputs
  assert static[0].shape.as_list() == [65, 65, 3]
  assert fn(image, label)[0].shape == (90, 70, 3)


def test_training_keeps_image_and_label_aligned_in_tf_data():
  image, label = _positional(5, 7)
  settings = P.PreprocessSettings(crop_height=5, crop_width=7,
                                  model_variant='xception_65')
  data = tf.data.Dataset.from_tensors((image, label)).repeat(24).map(
      lambda im, lab: settings(im, lab, is_training=True)[1:])
  flips = set()
  for out_image, out_label in data:
    out_image, out_label = _np(out_image), _np(out_label)
    assert out_image.shape == (5, 7, 3) and out_label.shape == (5, 7, 1)
    rows, cols = out_image[..., 0].astype(int), out_image[..., 1].astype(int)
    np.testing.assert_array_equal(out_label[..., 0], rows * 1000 + cols)
    flips.add(bool(cols[0, 0] != 0))
  assert flips == {True, False}


def test_training_scale_and_crop_shapes_in_graph():
  fn = tf.function(
      lambda im, lab: P.preprocess_image_and_label(
          im, lab, 33, 33, min_scale_factor=0.5, max_scale_factor=2.0,
          scale_factor_step_size=0.25, model_variant='xception_65')[1:],
      input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                       tf.TensorSpec([None, None, 1], tf.uint8)])
  for _ in range(4):
    out_image, out_label = fn(np.zeros([40, 30, 3], np.uint8),
                              np.zeros([40, 30, 1], np.uint8))
    assert out_image.shape == (33, 33, 3) and out_label.shape == (33, 33, 1)
    assert out_image.dtype == tf.float32 and out_label.dtype == tf.int32


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

def test_errors_name_the_value():
  image = np.zeros([4, 4, 3], F32)
  with pytest.raises(ValueError, match='min_size'):
    P.resize_to_range(image, None, min_size=None, max_size=65)
  with pytest.raises(ValueError, match='factor'):
    P.resize_to_range(image, None, min_size=3, factor=0)
  with pytest.raises(ValueError, match='min_resize_value'):
    P.preprocess_image_and_label(image, None, 5, 5, max_resize_value=65,
                                 is_training=False, model_variant='x')
  with pytest.raises(ValueError, match='label must be provided'):
    P.preprocess_image_and_label(image, None, 5, 5, is_training=True)
  with pytest.raises(ValueError, match='min_scale_factor=2.0'):
    P.get_random_scale(2.0, 1.0, 0.25)
  with pytest.raises(ValueError, match='step_size'):
    P.get_random_scale(0.5, 1.0, -0.1)
  with pytest.raises(ValueError, match='dim=3'):
    P.flip_dim([image], dim=3)
  with pytest.raises(ValueError, match='127.5'):
    P.pad_to_bounding_box(np.zeros([2, 2, 1], np.int32), 0, 0, 3, 3, 127.5)
  with pytest.raises(ValueError, match='crop_height'):
    P.random_crop([image], 0, 2)
  with pytest.raises(ValueError, match='rank'):
    P.resize_to_range(np.zeros([4, 4], F32), None, min_size=3)


def test_runtime_size_errors():
  image = np.zeros([4, 4, 3], F32)
  with pytest.raises(tf.errors.InvalidArgumentError, match='target_height'):
    P.pad_to_bounding_box(image, 1, 0, 4, 4, 0.0)
  with pytest.raises(tf.errors.InvalidArgumentError, match='crop_width'):
    P.random_crop([image], 2, 5)
  with pytest.raises(tf.errors.InvalidArgumentError, match='image_list'):
    P.random_crop([image, np.zeros([3, 4, 1], np.int32)], 2, 2)
  with pytest.raises(tf.errors.InvalidArgumentError, match='scaled size'):
    P.randomly_scale_image_and_label(image, None, tf.constant(0.1))


def test_settings_validate():
  with pytest.raises(ValueError, match='min_resize_value'):
    P.PreprocessSettings(crop_height=5, crop_width=5, max_resize_value=9)
  with pytest.raises(ValueError, match='crop_width'):
    P.PreprocessSettings(crop_height=5, crop_width=0)
