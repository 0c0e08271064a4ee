"""Tests of the fully connected CRF (deeplab_tf.crf) and its tools."""
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import crf
from deeplab_tf.crf import permutohedral
from deeplab_tf.crf import reference

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAMVID_VAL = os.path.join(os.path.dirname(REPO), 'shared', 'camvid', 'val')


def _softmax(logits):
  e = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def _scene(seed, num_classes=4, height=20, width=24, colour_noise=3.0):
  """Coloured regions (one colour per class) and smooth, noisy unaries.

  Returns:
    (image uint8 [H, W, 3], probabilities [H, W, C], true labels [H, W]).
  """
  rng = np.random.default_rng(seed)
  labels = np.zeros((height, width), np.int64)
  labels[:, width // 2:] = 1
  labels[height // 2:, :width // 3] = 2
  labels[2:7, 3:9] = 3 % num_classes
  labels[12:17, 14:20] = (4 % num_classes) if num_classes > 4 else 0
  palette = np.array([[200, 40, 40], [40, 180, 60], [50, 60, 200],
                      [220, 200, 40], [150, 50, 190]], np.float64)
  image = palette[labels] + rng.normal(0, colour_noise, (height, width, 3))
  image = np.clip(image, 0, 255).astype(np.uint8)
  logits = rng.normal(0, 1, (height, width, num_classes))
  logits[np.arange(height)[:, None], np.arange(width)[None], labels] += 1.0
  logits = cv2.GaussianBlur(logits.astype(np.float32), (0, 0), 1.0) * 2
  return image, _softmax(logits), labels


def _flips(labels):
  """Label changes between 4-neighbours."""
  return int((labels[1:] != labels[:-1]).sum() +
             (labels[:, 1:] != labels[:, :-1]).sum())


# --- settings ---------------------------------------------------------------


def test_presets_hold_the_published_values():
  v2 = crf.PRESETS['deeplab_v2_resnet101_voc']
  assert (v2.bi_w, v2.bi_xy_std, v2.bi_rgb_std, v2.pos_w, v2.pos_xy_std,
          v2.num_iterations) == (4, 67, 3, 3, 1, 10)
  v1 = crf.PRESETS['deeplab_v1_largefov_voc']
  assert (v1.bi_w, v1.bi_xy_std, v1.bi_rgb_std, v1.pos_w, v1.pos_xy_std,
          v1.num_iterations) == (4, 121, 5, 3, 3, 10)
  vgg = crf.PRESETS['deeplab_v2_vgg16_voc']
  assert (vgg.bi_w, vgg.bi_xy_std, vgg.bi_rgb_std, vgg.pos_w,
          vgg.pos_xy_std) == (4, 65, 3, 2, 2)
  assert crf.CRFParams() == v2
  assert crf.get_params('deeplab_v1_largefov_voc', bi_w=5).bi_w == 5
  assert crf.get_params('deeplab_v1_largefov_voc', bi_w=5).bi_xy_std == 121
  with pytest.raises(KeyError, match='unknown CRF preset .*deeplab_v1'):
    crf.get_params('deeplab_v3')


@pytest.mark.parametrize('field,value,message', [
    ('bi_xy_std', 0.0, 'bi_xy_std must be a positive standard deviation, '
     'got 0.0'),
    ('pos_xy_std', -1.0, 'pos_xy_std must be a positive'),
    ('bi_w', -2.0, 'bi_w must be >= 0, got -2.0'),
    ('num_iterations', -1, 'num_iterations must be an integer >= 0'),
    ('normalization', 'l2', "normalization must be one of .*got 'l2'"),
    ('min_probability', 0.0, 'min_probability must be in'),
])
def test_bad_settings_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    crf.CRFParams(**{field: value})


def test_bad_inputs_are_refused():
  image, probabilities, _ = _scene(0)
  with pytest.raises(ValueError, match=r'image must be uint8 \[H, W, 3\]'):
    crf.dense_crf(image.astype(np.float32), probabilities)
  with pytest.raises(ValueError, match=r'image must be uint8 \[H, W, 3\]'):
    crf.dense_crf(image[..., :2], probabilities)
  with pytest.raises(ValueError, match='probabilities shape mismatch'):
    crf.dense_crf(image, probabilities[:-1])
  with pytest.raises(TypeError, match='image must be uint8'):
    crf.dense_crf_tf(tf.constant(image, tf.float32), probabilities)
  with pytest.raises(ValueError, match='probabilities shape mismatch'):
    crf.dense_crf_tf(image[None], probabilities)
  with pytest.raises(ValueError, match='probabilities shape mismatch'):
    crf.dense_crf_tf(image, probabilities[:, :-2])
  with pytest.raises(ValueError, match='at most 4096 pixels'):
    crf.brute_force_crf(np.zeros((70, 70, 3), np.uint8),
                        np.full((70, 70, 2), 0.5, np.float32))


# --- permutohedral lattice --------------------------------------------------


def _corner_coordinates(origin, rank, dim):
  """numpy [N, d+1, d+1]: corner t = origin + t - (d+1) [rank > d - t]."""
  t = np.arange(dim + 1)[None, :, None]
  return origin[:, None, :] + t - (dim + 1) * (rank[:, None, :] > dim - t)


def test_lattice_simplex_and_barycentric_weights():
  dim = 5
  features = np.random.default_rng(0).normal(0, 3, (500, dim))
  elevated = tf.matmul(tf.constant(features * permutohedral.position_scale(
      dim), tf.float32), permutohedral._elevation_matrix(dim))
  origin, rank, weights = permutohedral._enclosing_simplex(elevated, dim)
  origin, rank, weights = origin.numpy(), rank.numpy(), weights.numpy()
  corners = _corner_coordinates(origin, rank, dim)
  # Corners are lattice points: on H_d, all coordinates congruent mod d+1.
  assert np.all(corners.sum(-1) == 0)
  assert np.all((corners - corners[..., :1]) % (dim + 1) == 0)
  assert np.all(np.sort(rank, axis=1) == np.arange(dim + 1))
  assert weights.min() >= -1e-5
  np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
  rebuilt = (corners * weights[..., None]).sum(1)
  np.testing.assert_allclose(rebuilt, elevated.numpy(), atol=2e-3)
  # The elevation keeps distances (orthonormal rows).
  e = permutohedral._elevation_matrix(dim).numpy()
  np.testing.assert_allclose(e @ e.T, np.eye(dim), atol=1e-6)


def test_lattice_vertices_and_blur_neighbours():
  dim = 3
  features = np.random.default_rng(1).uniform(0, 3, (300, dim))
  features = tf.constant(features, tf.float32)
  lattice = permutohedral.build_lattice(features)
  shifted = features - tf.reduce_min(features, axis=0)
  elevated = tf.matmul(shifted * permutohedral.position_scale(dim),
                       permutohedral._elevation_matrix(dim))
  origin, rank, _ = permutohedral._enclosing_simplex(elevated, dim)
  corners = _corner_coordinates(origin.numpy(), rank.numpy(), dim)
  ids = lattice.vertex_ids.numpy()
  num_vertices = int(lattice.num_vertices)
  coords_of = {}
  for point_corners, point_ids in zip(corners, ids):
    for c, i in zip(point_corners, point_ids):
      assert coords_of.setdefault(int(i), tuple(c)) == tuple(c)
  assert sorted(coords_of) == list(range(num_vertices))
  id_of = {c: i for i, c in coords_of.items()}
  assert len(id_of) == num_vertices          # distinct corners, distinct ids
  neighbours = lattice.neighbours.numpy()
  assert neighbours.shape == (dim + 1, 2, num_vertices + 1)
  found = 0
  for j in range(dim + 1):
    step = np.full(dim + 1, -1)
    step[j] = dim
    for s, sign in enumerate((1, -1)):
      assert neighbours[j, s, num_vertices] == num_vertices
      for i in range(num_vertices):
        target = tuple(np.array(coords_of[i]) + sign * step)
        expected = id_of.get(target, num_vertices)
        assert neighbours[j, s, i] == expected, (j, sign, i)
        found += expected < num_vertices
  assert found > num_vertices                 # the check saw real neighbours


@pytest.mark.parametrize('dim,count', [(2, 3000), (5, 4000)])
def test_lattice_filter_approximates_the_gaussian_sum(dim, count):
  rng = np.random.default_rng(dim)
  features = rng.uniform(0, 6, (count, dim)).astype(np.float32)
  values = rng.uniform(0.5, 1.5, (count, 1)).astype(np.float32)
  lattice = permutohedral.build_lattice(features)
  fast = permutohedral.gaussian_filter(lattice, values).numpy()[:, 0]
  fast_ones = permutohedral.gaussian_filter(
      lattice, np.ones_like(values)).numpy()[:, 0]
  kernel = reference._kernel(features.astype(np.float64))
  exact = kernel @ values[:, 0]
  inside = np.all((features > 2) & (features < 4), axis=1)
  ratio = fast[inside] / exact[inside]
  # Amplitude (lattice_amplitude): d=2 is dense here, d=5 sparser (vertices
  # no point touched drop some of the blur, as in Adams et al.).
  assert abs(ratio.mean() - 1) < (0.02 if dim == 2 else 0.08)
  assert ratio.std() < (0.01 if dim == 2 else 0.04)
  # Normalised by the filtered ones, the estimate is within a few percent.
  normalised = (fast / fast_ones) / (exact / kernel.sum(1))
  assert np.percentile(np.abs(normalised - 1), 95) < 0.03


# --- mean field ---------------------------------------------------------------


@pytest.mark.parametrize('normalization,exclude_self,weights', [
    ('after', True, {}),
    ('after', False, {}),
    ('symmetric', True, {}),
    ('none', True, {'bi_w': 0.1, 'pos_w': 0.3}),
])
def test_fast_crf_agrees_with_brute_force(normalization, exclude_self,
                                          weights):
  params = crf.CRFParams(normalization=normalization,
                         exclude_self=exclude_self, **weights)
  agreements, mean_diffs = [], []
  for seed, num_classes in ((0, 3), (1, 4), (2, 5)):
    image, probabilities, labels = _scene(seed, num_classes)
    fast = crf.dense_crf(image, probabilities, params=params)
    exact = crf.brute_force_crf(image, probabilities, params)
    assert fast.shape == probabilities.shape and fast.dtype == np.float32
    np.testing.assert_allclose(fast.sum(-1), 1.0, atol=1e-5)
    agreements.append((fast.argmax(-1) == exact.argmax(-1)).mean())
    mean_diffs.append(np.abs(fast - exact).mean())
    # The CRF does something here: it corrects the noisy unaries.
    assert ((exact.argmax(-1) == labels).mean() >
            (probabilities.argmax(-1) == labels).mean())
  assert min(agreements) >= 0.99, agreements
  assert max(mean_diffs) <= 0.01, mean_diffs


def test_zero_weights_return_the_renormalised_input():
  rng = np.random.default_rng(3)
  image = rng.integers(0, 256, (12, 14, 3)).astype(np.uint8)
  probabilities = rng.uniform(0.01, 1.0, (12, 14, 4)).astype(np.float32)
  expected = probabilities / probabilities.sum(-1, keepdims=True)
  out = crf.dense_crf(image, probabilities, bi_w=0, pos_w=0)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      crf.brute_force_crf(image, probabilities, bi_w=0, pos_w=0), expected,
      rtol=1e-5, atol=1e-6)
  # Clipped at min_probability before the renormalisation.
  probabilities[0, 0] = [0.0, 0.0, 0.0, 1.0]
  out = crf.dense_crf(image, probabilities, num_iterations=3, bi_w=0,
                      pos_w=0)
  np.testing.assert_allclose(out[0, 0], np.array([1e-5, 1e-5, 1e-5, 1.0]) /
                             (1 + 3e-5), rtol=1e-4)


def test_noisy_unaries_on_a_smooth_image_are_denoised():
  rng = np.random.default_rng(4)
  height, width = 32, 40
  labels = np.zeros((height, width), np.int64)
  labels[:, 22:] = 1
  labels[20:, :15] = 2
  # Smooth image: each region a gentle gradient of its own hue.
  rows, cols = np.mgrid[0:height, 0:width]
  base = np.array([[180, 60, 60], [60, 160, 80], [70, 70, 190]], np.float64)
  image = base[labels] + (rows + cols)[..., None] * 0.5
  image = np.clip(image, 0, 255).astype(np.uint8)
  logits = rng.normal(0, 1, (height, width, 3))
  logits[rows, cols, labels] += 1.2
  probabilities = _softmax(logits)
  before = probabilities.argmax(-1)
  after = crf.dense_crf(image, probabilities, bi_xy_std=20).argmax(-1)
  assert _flips(after) < _flips(before) / 5, (_flips(after), _flips(before))
  assert (after == labels).mean() > 0.97 > 0.8 > (before == labels).mean()


def test_labels_follow_colour_edges():
  height, width = 16, 24
  image = np.zeros((height, width, 3), np.uint8)
  image[:, :12] = (200, 30, 30)
  image[:, 12:] = (30, 30, 200)
  # The unaries put the boundary 4 columns right of the colour edge.
  probabilities = np.zeros((height, width, 2), np.float32)
  probabilities[:, :16, 0] = 0.6
  probabilities[:, 16:, 0] = 0.4
  probabilities[..., 1] = 1 - probabilities[..., 0]
  colour_edge = np.repeat([[0] * 12 + [1] * 12], height, axis=0)
  unary_edge = np.repeat([[0] * 16 + [1] * 8], height, axis=0)
  bilateral = crf.dense_crf(image, probabilities, bi_xy_std=10, pos_w=0)
  np.testing.assert_array_equal(bilateral.argmax(-1), colour_edge)
  full = crf.dense_crf(image, probabilities, bi_xy_std=10)
  np.testing.assert_array_equal(full.argmax(-1), colour_edge)
  # Position alone cannot see the edge.
  smooth_only = crf.dense_crf(image, probabilities, bi_w=0, pos_xy_std=3)
  np.testing.assert_array_equal(smooth_only.argmax(-1), unary_edge)


def test_class_order_does_not_matter():
  image, probabilities, _ = _scene(5, num_classes=5)
  permutation = np.array([3, 0, 4, 1, 2])
  out = crf.dense_crf(image, probabilities)
  permuted = crf.dense_crf(image, probabilities[..., permutation])
  np.testing.assert_allclose(permuted, out[..., permutation], atol=1e-5)


def test_batched_graph_and_saved_model(tmp_path):
  scenes = [_scene(6, 3), _scene(7, 3)]
  images = np.stack([s[0] for s in scenes])
  probabilities = np.stack([s[1] for s in scenes])
  params = crf.PRESETS['deeplab_v1_largefov_voc']
  singles = np.stack([crf.dense_crf(i, p, params=params)
                      for i, p in zip(images, probabilities)])
  eager = crf.dense_crf_tf(images, probabilities, params).numpy()
  np.testing.assert_allclose(eager, singles, atol=1e-5)

  module = tf.Module()
  module.refine = tf.function(
      lambda i, p: crf.dense_crf_tf(i, p, params),
      input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8),
                       tf.TensorSpec([None, None, None, None], tf.float32)])
  export = str(tmp_path / 'crf_model')
  tf.saved_model.save(module, export)
  loaded = tf.saved_model.load(export)
  restored = loaded.refine(tf.constant(images),
                           tf.constant(probabilities)).numpy()
  np.testing.assert_allclose(restored, singles, atol=1e-5)
  # Another size through the same exported graph.
  small = loaded.refine(tf.constant(images[:1, :10, :12]),
                        tf.constant(probabilities[:1, :10, :12])).numpy()
  np.testing.assert_allclose(
      small[0], crf.dense_crf(images[0, :10, :12], probabilities[0, :10, :12],
                              params=params), atol=1e-5)


# --- pydensecrf, on a real image ------------------------------------------------


@pytest.mark.skipif(not glob.glob(os.path.join(CAMVID_VAL, '*.png')),
                    reason='../shared/camvid/val not found')
@pytest.mark.parametrize('normalization', ['symmetric', 'after'])
def test_agrees_with_pydensecrf_on_camvid(normalization):
  dcrf = pytest.importorskip('pydensecrf.densecrf')
  path = sorted(glob.glob(os.path.join(CAMVID_VAL, '*.png')))[3]
  image = np.ascontiguousarray(cv2.imread(path)[100:220, 100:260, ::-1])
  height, width, num_classes = image.shape[0], image.shape[1], 5
  rng = np.random.default_rng(0)
  logits = cv2.GaussianBlur(
      rng.normal(size=(height, width, num_classes)).astype(np.float32),
      (0, 0), 6)
  probabilities = _softmax(logits / logits.std() * 2)
  # Fair: the same unary, kernels and weights; the lattice sums include the
  # pixel itself in pydensecrf, so exclude_self=False here.
  params = crf.get_params('deeplab_v2_resnet101_voc',
                          normalization=normalization, exclude_self=False)
  kind = {'symmetric': dcrf.NORMALIZE_SYMMETRIC,
          'after': dcrf.NORMALIZE_AFTER}[normalization]
  model = dcrf.DenseCRF2D(width, height, num_classes)
  model.setUnaryEnergy(np.ascontiguousarray(
      -np.log(np.clip(probabilities, params.min_probability, 1))
      .reshape(-1, num_classes).T))
  model.addPairwiseGaussian(sxy=params.pos_xy_std, compat=params.pos_w,
                            normalization=kind)
  model.addPairwiseBilateral(sxy=params.bi_xy_std, srgb=params.bi_rgb_std,
                             rgbim=image, compat=params.bi_w,
                             normalization=kind)
  theirs = np.array(model.inference(params.num_iterations)).T.reshape(
      height, width, num_classes)
  ours = crf.dense_crf(image, probabilities, params=params)
  agreement = (theirs.argmax(-1) == ours.argmax(-1)).mean()
  changed = (theirs.argmax(-1) != probabilities.argmax(-1)).mean()
  assert changed > 0.05                      # the CRF did change labels
  assert agreement >= 0.99, agreement
  assert np.abs(theirs - ours).mean() < 0.005


# --- tools ----------------------------------------------------------------------


def _run(args, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run([sys.executable] + args, cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  return proc.stdout


@pytest.mark.slow
def test_benchmark_smoke():
  stdout = _run([os.path.join('benchmarks', 'crf_speed.py'), '--height=24',
                 '--width=32', '--num_classes=3', '--num_iterations=2',
                 '--repeats=1', '--pydensecrf=false'])
  assert 'ours tf.function' in stdout and 'ours eager' in stdout
  records = [json.loads(l) for l in stdout.splitlines() if l.startswith('{')]
  assert len(records) == 1
  record = records[0]
  assert (record['height'], record['width'], record['num_classes'],
          record['num_iterations']) == (24, 32, 3, 2)
  assert record['eager_s'] > 0 and record['function_s'] > 0
  assert record['pydensecrf_s'] is None


def test_crf_search_finds_the_bilateral_setting(tmp_path):
  for name in ('image_dir', 'prob_dir', 'label_dir'):
    (tmp_path / name).mkdir()
  for index in range(3):
    image, probabilities, labels = _scene(10 + index, num_classes=3)
    name = 'sample%d' % index
    cv2.imwrite(str(tmp_path / 'image_dir' / (name + '.png')),
                image[:, :, ::-1])
    np.save(tmp_path / 'prob_dir' / (name + '.npy'), probabilities)
    labels = labels.astype(np.uint8)
    labels[0, 0] = 255                        # ignored
    cv2.imwrite(str(tmp_path / 'label_dir' / (name + '.png')), labels)
  output = tmp_path / 'search.json'
  stdout = _run(['-m', 'deeplab_tf.crf_search',
                 '--image_dir=%s' % (tmp_path / 'image_dir'),
                 '--prob_dir=%s' % (tmp_path / 'prob_dir'),
                 '--label_dir=%s' % (tmp_path / 'label_dir'),
                 '--bi_w=0.01,4', '--bi_xy_std=10,30', '--bi_rgb_std=3',
                 '--output_json=%s' % output])
  assert '3 images, 4 settings' in stdout
  assert stdout.count('mIoU=') == 1 + 4 + 1   # baseline, grid, best
  summary = json.loads(output.read_text())
  assert len(summary['results']) == 4 and summary['num_images'] == 3
  best = summary['best']
  assert best == max(summary['results'], key=lambda r: r['miou'])
  assert 'best: bi_w=%g bi_xy_std=%g' % (best['bi_w'],
                                          best['bi_xy_std']) in stdout
  # A real appearance kernel beats the near-zero one and the raw unaries.
  assert best['bi_w'] == 4
  assert best['miou'] > summary['baseline_miou'] + 0.1
