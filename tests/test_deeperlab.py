"""DeeperLab: model shapes and sizes, targets, losses, inference on perfect outputs."""
import math

import numpy as np
import pytest
import tensorflow as tf

import panoptic_helpers

from deeplab_tf.data import panoptic_targets as pt
from deeplab_tf.evaluation import deeperlab_inference as inference
from deeplab_tf.evaluation.panoptic_quality import PanopticQuality
from deeplab_tf.models import deeperlab
from deeplab_tf.models.backbones import mobilenet_v2
from deeplab_tf.models.heads import deeperlab_decoder as dec
from deeplab_tf.training import deeperlab_losses as dl

EDGE_CENTER_TO_TL = pt.DEFAULT_EDGES.index((pt.CENTER, pt.TOP_LEFT))


# --- model ------------------------------------------------------------------

@pytest.fixture(scope='module')
def small_model():
  return deeperlab.build_deeperlab(deeperlab.DeeperLabOptions(
      model_variant=deeperlab.WIDER_MOBILENET_V2, num_classes=5,
      crop_size=(65, 65), depth_multiplier=0.25))


def _params(model, prefixes):
  return sum(layer.count_params() for layer in model.layers
             if layer.name.split('.')[0] in prefixes)


def test_wider_mobilenet_v2_receptive_field_is_the_papers_981():
  assert deeperlab.receptive_field(deeperlab.WIDER_V2_SPEC) == 981
  assert deeperlab.receptive_field(mobilenet_v2.V2_SPEC) == 491
  kernels = {layer.kernel_size for layer in deeperlab.WIDER_V2_SPEC}
  assert kernels == {1, 5}


def test_model_outputs_at_stride_4_and_names(small_model):
  shapes = {k: tuple(v.shape) for k, v in small_model.output.items()}
  assert shapes == {'semantic': (None, 17, 17, 5),
                    'keypoint_heatmap': (None, 17, 17, 5),
                    'long_range_offsets': (None, 17, 17, 10),
                    'short_range_offsets': (None, 17, 17, 10),
                    'middle_range_offsets': (None, 17, 17, 32)}
  names = {layer.name for layer in small_model.layers}
  for name in ('decoder.feature_projection0', 'decoder.space_to_depth',
               'decoder.decoder_conv0_depthwise',
               'decoder.decoder_conv1_pointwise', 'decoder.depth_to_space',
               'semantic.conv0_depthwise', 'semantic.logits',
               'middle_range_offsets.logits', 'aspp0', 'concat_projection'):
    assert name in names, name
  # The widened backbone: 5x5 depthwise kernels.
  depthwise = small_model.get_layer('MobilenetV2.expanded_conv_3.depthwise')
  assert depthwise.kernel_size == (5, 5)
  assert small_model.get_layer('MobilenetV2.Conv').kernel_size == (5, 5)


def test_decoder_and_head_parameter_count_by_hand(small_model):
  low = small_model.get_layer('decoder.feature_projection0').input.shape[-1]
  assert low == 40   # layer_4 depthwise of MobileNetV2 at multiplier 0.25
  bn = 4  # gamma, beta, moving mean, moving variance per channel
  decoder = ((low * 32 + bn * 32)                           # 1x1 -> 32
             + (49 * 768 + bn * 768 + 768 * 4096 + bn * 4096)   # 7x7 sep
             + (49 * 4096 + bn * 4096 + 4096 * 4096 + bn * 4096))
  per_head = 49 * 256 + bn * 256 + 256 * 256 + bn * 256
  outputs = 5 + 5 + 10 + 10 + 32
  heads = 5 * per_head + 256 * outputs + outputs
  counted_decoder = _params(small_model, {'decoder'})
  counted_heads = _params(small_model, set(dec.HEAD_NAMES))
  print('decoder params %d, heads %d, whole model %d'
        % (counted_decoder, counted_heads, small_model.count_params()))
  assert counted_decoder == decoder == 20213632 + low * 32
  assert counted_heads == heads


def test_model_runs_on_odd_sizes_without_crop_size():
  model = deeperlab.build_deeperlab(deeperlab.DeeperLabOptions(
      model_variant=deeperlab.WIDER_MOBILENET_V2, num_classes=3,
      depth_multiplier=0.25,
      decoder=dec.DecoderSettings(decoder_filters=64, head_filters=16)))
  out = model(np.zeros((1, 97, 129, 3), np.float32))
  assert out['semantic'].shape == (1, 25, 33, 3)
  assert out['middle_range_offsets'].shape == (1, 25, 33, 32)


def test_xception_71_encoder_builds():
  model = deeperlab.build_deeperlab(deeperlab.DeeperLabOptions(
      model_variant=deeperlab.XCEPTION_71, num_classes=4, crop_size=(65, 65),
      decoder=dec.DecoderSettings(decoder_filters=256, head_filters=32)))
  assert model.output['keypoint_heatmap'].shape == (None, 17, 17, 5)
  # Xception-71's stride-4 end point (entry_flow/block3) has 256 channels.
  assert model.get_layer('decoder.feature_projection0').input.shape[-1] == 256


def test_space_to_depth_round_trip_pads_and_crops():
  x = tf.reshape(tf.range(2 * 9 * 7 * 3, dtype=tf.float32), (2, 9, 7, 3))
  folded = dec.SpaceToDepth(4)(x)
  assert folded.shape == (2, 3, 2, 48)
  back = dec.DepthToSpace(4)(folded, x)
  np.testing.assert_array_equal(back.numpy(), x.numpy())


def test_options_errors_say_what_was_received():
  with pytest.raises(ValueError, match='output_stride must be 16, got 8'):
    deeperlab.DeeperLabOptions(output_stride=8)
  with pytest.raises(ValueError, match="got model_variant 'resnet_v1_50'"):
    deeperlab.DeeperLabOptions(model_variant='resnet_v1_50')
  with pytest.raises(ValueError, match='divisible by block_size'):
    dec.DecoderSettings(decoder_filters=100)


# --- targets ----------------------------------------------------------------

def _one_rectangle():
  category = np.zeros((16, 16), np.int32)
  instance = np.zeros((16, 16), np.int32)
  category[5:10, 4:11] = 1   # rows 5..9, cols 4..10: 5 x 7 = 35 pixels
  instance[5:10, 4:11] = 7
  category[0, :] = 255       # an ignored row
  return category, instance


def test_targets_of_one_rectangle():
  category, instance = _one_rectangle()
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=2.0)
  t = pt.panoptic_targets(category, instance, settings)
  (inst,) = pt.find_instances(category, instance, settings)
  np.testing.assert_array_equal(
      inst.keypoints, [[5, 4], [5, 10], [9, 4], [9, 10], [7, 7]])
  center_disk = t['keypoint_heatmap'][..., pt.CENTER]
  assert center_disk.sum() == 13   # pixels with dy^2 + dx^2 <= 4
  assert center_disk[7, 9] == 1 and center_disk[8, 9] == 0
  # Corner disks are clipped by nothing here; TL disk has 13 pixels too.
  assert t['keypoint_heatmap'][..., pt.TOP_LEFT].sum() == 13
  np.testing.assert_array_equal(t['short_range_offsets'][6, 8, 8:10], [1, -1])
  assert t['short_range_mask'][6, 8, pt.CENTER] == 1
  # Middle range: from (6, 8), in the centre disk, to the top-left corner.
  e = EDGE_CENTER_TO_TL
  np.testing.assert_array_equal(
      t['middle_range_offsets'][6, 8, 2 * e:2 * e + 2], [-1, -4])
  assert t['middle_range_mask'][..., e].sum() == 13
  # Long range from the bottom-left pixel to the centre and top-right corner.
  lr = t['long_range_offsets'][9, 4].reshape(5, 2)
  np.testing.assert_array_equal(lr[pt.CENTER], [-2, 3])
  np.testing.assert_array_equal(lr[pt.TOP_RIGHT], [-4, 6])
  assert t['long_range_mask'].sum() == 35 * 5
  assert t['long_range_mask'][4, 4].sum() == 0
  # Small instance (35 < 64 * 64 pixels) weighs 3, the rest 1, ignored 0.
  w = t['semantic_weights']
  assert (w == 3).sum() == 35 and (w == 0).sum() == 16
  assert w[12, 12] == 1
  np.testing.assert_array_equal(t['valid_mask'][0], np.zeros(16))


def test_large_instance_weight_one_and_stuff_is_not_an_instance():
  category = np.full((70, 70), 2, np.int32)
  instance = np.zeros((70, 70), np.int32)
  category[:65, :65] = 1     # 65 * 65 = 4225 >= 4096 pixels
  instance[:65, :65] = 1
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=3.0)
  t = pt.panoptic_targets(category, instance, settings)
  assert np.all(t['semantic_weights'] == 1)
  assert len(pt.find_instances(category, instance, settings)) == 1
  assert t['long_range_mask'][..., 0].sum() == 65 * 65


def test_thing_pixels_without_instance_are_a_crowd_not_an_instance():
  category = np.full((30, 30), 2, np.int32)
  instance = np.zeros((30, 30), np.int32)
  category[5:15, 5:15] = 1           # a crowd: thing class, instance 0
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=3.0)
  assert pt.find_instances(category, instance, settings) == []
  t = pt.panoptic_targets(category, instance, settings)
  assert t['semantic'][10, 10] == 1
  assert t['keypoint_heatmap'].sum() == 0 and t['long_range_mask'].sum() == 0


def test_overlapping_disks_go_to_the_nearest_keypoint():
  category = np.zeros((12, 20), np.int32)
  instance = np.zeros((12, 20), np.int32)
  category[4:7, 2:9] = 1
  instance[4:7, 2:9] = 1     # centre (5, 5)
  category[4:7, 9:16] = 1
  instance[4:7, 9:16] = 2    # centre (5, 12)
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=4.0)
  t = pt.panoptic_targets(category, instance, settings)
  c = 2 * pt.CENTER
  # (5, 8) is 3 from the first centre, 4 from the second.
  np.testing.assert_array_equal(t['short_range_offsets'][5, 8, c:c + 2],
                                [0, -3])
  np.testing.assert_array_equal(t['short_range_offsets'][5, 9, c:c + 2],
                                [0, 3])


def test_targets_tf_wrapper_in_tf_data_matches_numpy():
  category, instance = _one_rectangle()
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=2.0)
  ds = tf.data.Dataset.from_tensors((category, instance)).map(
      lambda c, i: pt.panoptic_targets_tf(c, i, settings))
  got = next(iter(ds))
  expected = pt.panoptic_targets(category, instance, settings)
  assert got['middle_range_offsets'].shape == (16, 16, 32)
  for name, value in expected.items():
    np.testing.assert_array_equal(got[name].numpy(), value, err_msg=name)


def test_target_errors_say_what_was_received():
  with pytest.raises(ValueError, match=r'\(4, 4\) and \(4, 5\)'):
    pt.panoptic_targets(np.zeros((4, 4), np.int32), np.zeros((4, 5), np.int32),
                        pt.PanopticTargetSettings())
  with pytest.raises(ValueError, match=r'got \[\(1, 1\)\]'):
    pt.PanopticTargetSettings(edges=((1, 1),))


# --- losses -----------------------------------------------------------------

def test_bootstrapped_ce_keeps_exactly_the_k_largest():
  # 20 pixels, 2 classes, label 0: CE_i = softplus(a_i).
  a = np.linspace(-3.0, 4.0, 20).astype(np.float32)
  rng = np.random.RandomState(0)
  a = a[rng.permutation(20)]
  logits = np.stack([np.zeros(20, np.float32), a], -1).reshape(1, 4, 5, 2)
  labels = np.zeros((1, 4, 5), np.int32)
  ce = np.log1p(np.exp(a.astype(np.float64)))
  top3 = np.sort(ce)[-3:]   # int(0.15 * 20) = 3
  weights = np.ones((1, 4, 5), np.float32)
  loss, k = dl.bootstrapped_cross_entropy(logits, labels, weights, 0.15)
  assert int(k) == 3
  np.testing.assert_allclose(float(loss), top3.mean(), rtol=1e-6)
  # Weight 3 on the hardest pixel: (3 c1 + c2 + c3) / 3.
  hardest = np.argmax(ce)
  weights.reshape(-1)[hardest] = 3.0
  loss, _ = dl.bootstrapped_cross_entropy(logits, labels, weights, 0.15)
  np.testing.assert_allclose(float(loss), (top3.sum() + 2 * top3[-1]) / 3,
                             rtol=1e-6)
  # Pixels rank by their unweighted CE (the paper's threshold on p_i): a
  # weight on the 4th hardest (3 c4 > c3) or the easiest changes nothing.
  weights.reshape(-1)[hardest] = 1.0
  fourth = np.argsort(ce)[-4]
  assert 3 * ce[fourth] > top3[0]
  weights.reshape(-1)[fourth] = 3.0
  weights.reshape(-1)[np.argmin(ce)] = 3.0
  loss, _ = dl.bootstrapped_cross_entropy(logits, labels, weights, 0.15)
  np.testing.assert_allclose(float(loss), top3.mean(), rtol=1e-6)
  # An ignored pixel is never selected, and K counts the valid pixels only.
  labels.reshape(-1)[hardest] = 255
  loss, k = dl.bootstrapped_cross_entropy(logits, labels, np.ones_like(
      weights), 0.15)
  assert int(k) == 2   # int(0.15 * 19)
  np.testing.assert_allclose(float(loss), np.sort(ce)[-3:-1].mean(),
                             rtol=1e-6)


def test_heatmap_and_offset_losses_by_hand():
  logits = np.zeros((1, 2, 2, 5), np.float32)
  targets = np.zeros((1, 2, 2, 5), np.float32)
  valid = np.array([[[1, 1], [1, 0]]], np.float32)
  np.testing.assert_allclose(float(dl.heatmap_loss(logits, targets, valid)),
                             math.log(2.0), rtol=1e-6)
  pred = np.zeros((1, 2, 2, 4), np.float32)
  target = np.zeros((1, 2, 2, 4), np.float32)
  mask = np.zeros((1, 2, 2, 2), np.float32)
  target[0, 0, 0] = [3, -4, 100, 100]   # second pair masked out
  mask[0, 0, 0] = [1, 0]
  target[0, 1, 1] = [0, 0, 1, 1]
  mask[0, 1, 1] = [0, 1]
  # (|3| + |-4| + |0 - 1| + |0 - 1|) / R / 2 entries, R = 2.
  np.testing.assert_allclose(
      float(dl.offset_loss(pred, target, mask, 2.0)), 9.0 / 2.0 / 2.0)


def _targets_batch(targets):
  return {k: tf.constant(v)[tf.newaxis] for k, v in targets.items()}


def test_deeperlab_loss_zero_offsets_for_perfect_outputs_and_weights():
  category, instance = _one_rectangle()
  settings = pt.PanopticTargetSettings(thing_classes=(1,), radius=2.0)
  targets = _targets_batch(pt.panoptic_targets(category, instance, settings))
  outputs = {
      'semantic': tf.one_hot(tf.where(targets['semantic'] == 255, 0,
                                      targets['semantic']), 2) * 20.0,
      'keypoint_heatmap': (targets['keypoint_heatmap'] * 2 - 1) * 30.0,
      'long_range_offsets': targets['long_range_offsets'],
      'short_range_offsets': targets['short_range_offsets'],
      'middle_range_offsets': targets['middle_range_offsets']}
  loss_settings = dl.DeeperLabLossSettings(offset_normalizer=2.0,
                                           heatmap_weight=4.0)
  total, parts = dl.deeperlab_loss(outputs, targets, loss_settings)
  assert set(parts) == set(dec.HEAD_NAMES)
  for name in ('long_range_offsets', 'short_range_offsets',
               'middle_range_offsets'):
    assert float(parts[name]) == 0.0
  assert float(parts['semantic']) < 1e-6
  # Shift the long-range prediction by (1, 1): L1 = 2 / R = 1 per entry.
  outputs['long_range_offsets'] += 1.0
  total, parts = dl.deeperlab_loss(outputs, targets, loss_settings)
  np.testing.assert_allclose(float(parts['long_range_offsets']), 1.0)
  np.testing.assert_allclose(
      float(total), sum(float(parts[n]) * (4.0 if n == 'keypoint_heatmap'
                                           else 1.0) for n in parts),
      rtol=1e-6)


def test_deeperlab_loss_on_model_outputs_resizes_and_has_gradients(
    small_model):
  category = np.zeros((65, 65), np.int32)
  instance = np.zeros((65, 65), np.int32)
  category[10:30, 20:50] = 3
  instance[10:30, 20:50] = 1
  targets = _targets_batch(pt.panoptic_targets(
      category, instance, pt.PanopticTargetSettings(thing_classes=(3,),
                                                    radius=4.0)))
  images = tf.random.uniform((1, 65, 65, 3), 0, 255, seed=1)
  with tf.GradientTape() as tape:
    outputs = small_model(images, training=True)
    total, parts = dl.deeperlab_loss(outputs, targets)
  grads = tape.gradient(total, small_model.trainable_variables)
  assert np.isfinite(float(total)) and float(total) > 0
  assert all(g is not None for g in grads)
  with pytest.raises(ValueError, match="lack \\['semantic'\\]"):
    dl.deeperlab_loss({k: v for k, v in outputs.items() if k != 'semantic'},
                      targets)


# --- inference --------------------------------------------------------------

def test_inference_recovers_the_groundtruth_from_perfect_outputs():
  category, instance = panoptic_helpers.scene()
  settings = pt.PanopticTargetSettings(thing_classes=(1, 3), radius=3.0)
  targets = pt.panoptic_targets(category, instance, settings)
  outputs = panoptic_helpers.perfect_outputs(targets, 4)
  inference_settings = inference.InferenceSettings(thing_classes=(1, 3),
                                                   radius=3.0)
  peaks = inference.detect_keypoints(outputs['keypoint_heatmap'],
                                     outputs['short_range_offsets'],
                                     inference_settings)
  centers = sorted((y, x) for y, x, _ in peaks[pt.CENTER])
  assert centers == [(8, 9), (22, 28), (27, 7)]
  assert sorted((y, x) for y, x, _ in peaks[pt.TOP_LEFT]) == [
      (4, 4), (18, 22), (24, 3)]
  pred_category, pred_instance = inference.parse(outputs, inference_settings)
  valid = category != 255
  np.testing.assert_array_equal(pred_category[valid], category[valid])
  # Instance ids differ from the groundtruth's but the partition is the same.
  for gt_key in {(c, i) for c, i in zip(category[valid], instance[valid])}:
    mask = (category == gt_key[0]) & (instance == gt_key[1])
    assert len(np.unique(pred_instance[mask])) == 1
  assert len(np.unique(pred_instance[np.isin(category, (1, 3))])) == 3
  assert np.all(pred_instance[np.isin(category, (0, 2))] == 0)
  metric = PanopticQuality(num_categories=4, ignored_label=255,
                           max_instances_per_category=256, offset=256 * 256)
  pq = metric.compare_and_accumulate(category, instance, pred_category,
                                     pred_instance)
  assert pq == 1.0


def test_majority_vote_and_unreachable_graph():
  semantic = np.array([[1, 1, 3], [3, 3, 0]])
  assignment = np.array([[1, 1, 1], [1, 1, 0]])
  category, inst = inference.fuse(semantic, assignment, (1, 3))
  np.testing.assert_array_equal(category, [[3, 3, 3], [3, 3, 0]])
  np.testing.assert_array_equal(inst, [[1, 1, 1], [1, 1, 0]])
  settings = inference.InferenceSettings(thing_classes=(1,),
                                         edges=((pt.CENTER, pt.TOP_LEFT),))
  peaks = [[], [], [], [], [(1, 1, 1.0)]]
  with pytest.raises(ValueError, match=r'keypoints \[1, 2, 3\] cannot be'):
    inference.group_instances(peaks, np.zeros((3, 3, 2)), settings)


def test_upsample_outputs_keeps_offsets_in_pixels():
  outputs = {'long_range_offsets': tf.fill((1, 5, 5, 10), 7.0),
             'semantic': tf.reshape(tf.range(25.0), (1, 5, 5, 1))}
  up = inference.upsample_outputs(outputs, (17, 17))
  assert up['long_range_offsets'].shape == (1, 17, 17, 10)
  np.testing.assert_allclose(up['long_range_offsets'], 7.0)
  # Align corners: the corner values stay where they were.
  assert up['semantic'][0, 16, 16, 0] == 24.0 and up['semantic'][0, 0, 4, 0] == 1.0


# --- benchmark --------------------------------------------------------------

@pytest.mark.slow
def test_speed_benchmark_smoke():
  """The benchmark runs end to end at a tiny size (a subprocess: it defines
  absl flags that other scripts' tests also define)."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, os.path.join(repo, 'benchmarks', 'deeperlab_speed.py'),
       '--sizes=65', '--depth_multiplier=0.25', '--num_classes=3'],
      cwd=repo, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads([l for l in proc.stdout.splitlines()
                       if l.startswith('{')][-1])
  text = json.dumps(record)
  assert '65' in text and 'fps' in text, text
  assert 'heads at [17, 17]' in proc.stdout, proc.stdout
