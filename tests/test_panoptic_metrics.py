"""Panoptic Quality and Parsing Covering: hand-computed values, the original
tests' scenarios, dtype independence, the TF streaming version and the
COCO-format evaluation (JSON + PNG files, 0 / 1 / 2 workers)."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.evaluation import eval_coco_format
from deeplab_tf.evaluation import panoptic_base
from deeplab_tf.evaluation import streaming_panoptic
from deeplab_tf.evaluation.panoptic_quality import PanopticQuality
from deeplab_tf.evaluation.parsing_covering import ParsingCovering

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pq_state(metric):
  return np.stack([metric.iou_per_class, metric.tp_per_class,
                   metric.fn_per_class, metric.fp_per_class])


def _pc_state(metric):
  return np.stack([metric.weighted_iou_per_class, metric.gt_area_per_class])


# ----------------------------------------------------------------------------
# Panoptic Quality: the original test scenarios, re-derived by hand.

# One category, instance 2 in the middle of instance 1 (ignored label 2 never
# occurs as a category here).
_GT_LABELS = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 2, 2, 2, 1],
    [1, 2, 2, 2, 2, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1]])
_GOOD_DET = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 2, 2, 2, 2, 1],
    [1, 2, 2, 2, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1]])
_BAD_DET = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 1, 1, 1]])
_ZEROS = np.zeros([6, 6], np.uint16)


def test_pq_perfect_match():
  instances = np.array([
      [1, 1, 1, 1, 1, 1],
      [1, 2, 2, 2, 2, 1],
      [1, 2, 2, 2, 2, 1],
      [1, 2, 2, 2, 2, 1],
      [1, 2, 2, 1, 1, 1],
      [1, 2, 1, 1, 1, 1]], np.uint16)
  pq = PanopticQuality(num_categories=1, ignored_label=2,
                       max_instances_per_category=16, offset=16)
  assert pq.compare_and_accumulate(_ZEROS, instances, _ZEROS, instances) == 1.0
  np.testing.assert_array_equal(_pq_state(pq), [[2.0], [2], [0], [0]])
  np.testing.assert_array_equal(pq.result_per_category(), [1.0])
  assert pq.result() == 1.0


def test_pq_totally_wrong():
  det = np.zeros([6, 6], np.uint16)
  det[1:4, 1:5] = 1
  det[1, 2:4] = 0
  pq = PanopticQuality(num_categories=2, ignored_label=2,
                       max_instances_per_category=1, offset=16)
  pq.compare_and_accumulate(1 - det, _ZEROS, det, _ZEROS)
  np.testing.assert_array_equal(_pq_state(pq),
                                [[0, 0], [0, 0], [1, 1], [1, 1]])
  assert pq.result() == 0.0


def test_pq_matches_by_iou_above_half():
  pq = PanopticQuality(1, 2, 16, 16)
  pq.compare_and_accumulate(_ZEROS, _GT_LABELS, _ZEROS, _GOOD_DET)
  # iou(1, 1) = 28 / 30, iou(2, 2) = 6 / 8: both match.
  np.testing.assert_allclose(pq.iou_per_class, [28 / 30 + 6 / 8])
  np.testing.assert_array_equal(_pq_state(pq)[1:], [[2], [0], [0]])
  assert pq.result() == pytest.approx((28 / 30 + 6 / 8) / 2)

  pq.reset()
  np.testing.assert_array_equal(_pq_state(pq), np.zeros([4, 1]))
  pq.compare_and_accumulate(_ZEROS, _GT_LABELS, _ZEROS, _BAD_DET)
  # iou(1, 1) = 27 / 32 matches; iou(2, 2) = 3 / 9 does not: 1 FN, 1 FP.
  np.testing.assert_allclose(pq.iou_per_class, [27 / 32])
  np.testing.assert_array_equal(_pq_state(pq)[1:], [[1], [1], [1]])
  assert pq.result() == pytest.approx(27 / 32 * (1 / (1 + 0.5 + 0.5)))


def test_pq_wrong_instances_and_arbitrary_instance_order():
  categories = np.ones([6, 6], np.uint8)
  categories[2:4, 1:3] = 2
  categories[2:4, 4:6] = 2
  pred_instances = np.zeros([6, 6], np.uint8)
  pred_instances[2:4, 4:6] = 1
  pq = PanopticQuality(num_categories=3, ignored_label=0,
                       max_instances_per_category=10, offset=100)
  # Groundtruth: the two category-2 squares are one segment (instance 0);
  # predicted as two segments of 4 pixels, IoU 0.5 each: no match.
  pq.compare_and_accumulate(categories, np.zeros_like(categories), categories,
                            pred_instances)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 2]])
  np.testing.assert_array_equal(pq.result_per_category(), [0, 1, 0])
  assert pq.result() == pytest.approx(0.5)

  # Groundtruth with the squares as instances 1 and 0: predicted instances
  # 0 and 1 match them crosswise; numbers do not need to agree.
  gt_instances = np.zeros([6, 6], np.uint8)
  gt_instances[2:4, 1:3] = 1
  pq.reset()
  pq.compare_and_accumulate(categories, gt_instances, categories,
                            pred_instances)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 1, 2], [0, 1, 2], [0, 0, 0], [0, 0, 0]])
  assert pq.result() == 1.0


def test_pq_merge_equals_accumulating_all():
  good, bad, together = (PanopticQuality(1, 2, 16, 16) for _ in range(3))
  for _ in range(2):
    good.compare_and_accumulate(_ZEROS, _GT_LABELS, _ZEROS, _GOOD_DET)
    bad.compare_and_accumulate(_ZEROS, _GT_LABELS, _ZEROS, _BAD_DET)
  for det in (_GOOD_DET, _GOOD_DET, _BAD_DET, _BAD_DET):
    together.compare_and_accumulate(_ZEROS, _GT_LABELS, _ZEROS, det)
  good.merge(bad)
  np.testing.assert_array_equal(_pq_state(good), _pq_state(together))
  np.testing.assert_allclose(good.iou_per_class,
                             [2 * (28 / 30 + 6 / 8) + 2 * 27 / 32])
  np.testing.assert_array_equal(_pq_state(good)[1:], [[6], [2], [2]])
  # SQ = 5.0541667 / 6, RQ = 6 / (6 + 1 + 1).
  assert good.result() == pytest.approx(0.63177083, abs=1e-8)


def test_pq_union_leaves_out_void_but_not_crowd():
  # Category 1 (4 px) next to 4 px of the ignored category 0; the prediction
  # of category 1 covers both. Void (instance 0) is cut out of the union:
  # IoU 4 / (4 + 8 - 4 - 4) = 1. Crowd (instance 1) is not: IoU 4 / 8 = 0.5,
  # no match; and the prediction, exactly half on crowd, is a false positive.
  categories = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [2, 2, 2, 2],
                         [2, 2, 2, 2]])
  pred = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
  zeros = np.zeros_like(categories)
  pq = PanopticQuality(3, 0, 4, 16)
  pq.compare_and_accumulate(categories, zeros, pred, zeros)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 1, 1], [0, 1, 1], [0, 0, 0], [0, 0, 0]])

  crowd = (categories == 0).astype(np.int32)
  pq.reset()
  pq.compare_and_accumulate(categories, crowd, pred, zeros)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0]])
  assert pq.result() == pytest.approx(0.5)


def test_pq_false_positive_rule_on_void_and_crowd():
  # Row 0 void, row 1 crowd, rows 2-3 category 2.
  gt_cat = np.array([[0] * 4, [0] * 4, [2] * 4, [2] * 4])
  gt_inst = np.array([[0] * 4, [1] * 4, [0] * 4, [0] * 4])
  # A: category 1, 3 px all on void -> not a false positive.
  # B: category 3, 2 px all on crowd -> not a false positive.
  # C: category 2, 11 px: 8 on the gt segment, 1 on void, 2 on crowd:
  #    IoU 8 / (8 + 11 - 8 - 1) = 0.8 (crowd stays in the union).
  pred_cat = np.array([[1, 1, 1, 2], [3, 3, 2, 2], [2] * 4, [2] * 4])
  pq = PanopticQuality(4, 0, 4, 32)
  pq.compare_and_accumulate(gt_cat, gt_inst, pred_cat, np.zeros_like(pred_cat))
  np.testing.assert_allclose(
      _pq_state(pq), [[0, 0, 0.8, 0], [0, 0, 1, 0], [0] * 4, [0] * 4])
  results = pq.detailed_results()
  assert results['All'] == {'pq': pytest.approx(0.8),
                            'sq': pytest.approx(0.8), 'rq': 1.0, 'n': 1}

  # A prediction exactly half on void is a false positive (the rule is
  # "more than half"), and the missed groundtruth a false negative.
  gt = np.array([[0, 0], [1, 1]])
  pq = PanopticQuality(3, 0, 4, 16)
  pq.compare_and_accumulate(gt, np.zeros_like(gt), np.full([2, 2], 2),
                            np.zeros_like(gt))
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]])
  # Two valid categories, both PQ 0.
  assert pq.detailed_results()['All']['n'] == 2 and pq.result() == 0.0


def test_pq_mean_skips_absent_categories_and_the_ignored_one():
  cat = np.array([[1, 1], [1, 1]])
  inst = np.zeros_like(cat)
  pq = PanopticQuality(num_categories=6, ignored_label=0,
                       max_instances_per_category=2, offset=16)
  pq.compare_and_accumulate(cat, inst, cat, inst)
  assert pq.result() == 1.0          # categories 2..5 never occur
  # A category with only a false positive counts, with PQ 0.
  pred = np.array([[1, 1], [1, 4]])
  pq.compare_and_accumulate(cat, inst, pred, inst)
  np.testing.assert_array_equal(pq.fp_per_class, [0, 0, 0, 0, 1, 0])
  per_category = pq.result_per_category()
  # Category 1: TP 2 (IoU 1 and 3 / 4), so SQ 7 / 8, RQ 1.
  np.testing.assert_allclose(per_category, [0, 7 / 8, 0, 0, 0, 0])
  assert pq.result() == pytest.approx((7 / 8 + 0) / 2)
  # The ignored category never enters the mean, even with counts.
  pq.fp_per_class[0] = 5
  assert pq.result() == pytest.approx(7 / 16)
  assert PanopticQuality(3, 0, 4, 16).result() == 0.0


def test_pq_detailed_results_things_and_stuff(capsys):
  categories = np.ones([6, 6], np.uint8)
  categories[2:4, 1:3] = 2
  categories[2:4, 4:6] = 2
  pred_instances = np.zeros([6, 6], np.uint8)
  pred_instances[2:4, 4:6] = 1
  pq = PanopticQuality(3, 0, 10, 100)
  pq.compare_and_accumulate(categories, np.zeros_like(categories), categories,
                            pred_instances)
  results = pq.detailed_results(is_thing=[False, False, True])
  assert results['All'] == {'pq': 0.5, 'sq': 0.5, 'rq': 0.5, 'n': 2}
  assert results['Things'] == {'pq': 0.0, 'sq': 0.0, 'rq': 0.0, 'n': 1}
  assert results['Stuff'] == {'pq': 1.0, 'sq': 1.0, 'rq': 1.0, 'n': 1}
  assert list(results) == ['All', 'Things', 'Stuff']
  assert pq.detailed_results(is_thing=[True, True, True])['Stuff'] == {
      'pq': 0, 'sq': 0, 'rq': 0, 'n': 0}
  assert list(pq.detailed_results()) == ['All']
  with pytest.raises(ValueError, match='one entry per category'):
    pq.detailed_results(is_thing=[True, False])

  pq.print_detailed_results(is_thing=[False, False, True], print_digits=3)
  assert capsys.readouterr().out.splitlines() == [
      '+--------+-------+-------+-------+---+',
      '|        |    PQ |    SQ |    RQ | N |',
      '+--------+-------+-------+-------+---+',
      '| All    |  50.0 |  50.0 |  50.0 | 2 |',
      '| Things |   0.0 |   0.0 |   0.0 | 1 |',
      '| Stuff  | 100.0 | 100.0 | 100.0 | 1 |',
      '+--------+-------+-------+-------+---+']


def test_format_percent_rounds_before_scaling_as_the_original():
  assert panoptic_base.format_percent(0.62156287, 3) == '62.2'
  assert panoptic_base.format_percent(0.62156287, 5) == '62.156'
  assert panoptic_base.format_percent(2 / 3, 2) == '67'


# ----------------------------------------------------------------------------
# Parsing Covering.


def test_pc_perfect_match():
  categories = np.array([
      [2, 2, 2, 2, 2, 2],
      [2, 1, 1, 1, 1, 2],
      [2, 1, 1, 1, 1, 2],
      [2, 1, 1, 1, 1, 2],
      [2, 1, 1, 2, 2, 2],
      [2, 1, 2, 2, 2, 2]], np.uint16)
  pc = ParsingCovering(num_categories=3, ignored_label=2,
                       max_instances_per_category=2, offset=16,
                       normalize_by_image_size=False)
  assert pc.compare_and_accumulate(categories, _ZEROS, categories,
                                   _ZEROS) == 1.0
  np.testing.assert_array_equal(_pc_state(pc), [[0, 15, 0], [0, 15, 0]])
  np.testing.assert_array_equal(pc.result_per_category(), [0, 1, 0])


def test_pc_totally_wrong():
  gt = np.zeros([6, 6], np.uint16)
  gt[1:4, 1:5] = 1
  gt[1, 2:4] = 0
  pc = ParsingCovering(num_categories=2, ignored_label=0,
                       max_instances_per_category=1, offset=16,
                       normalize_by_image_size=False)
  pc.compare_and_accumulate(gt, _ZEROS, 1 - gt, _ZEROS)
  np.testing.assert_array_equal(_pc_state(pc), [[0, 0], [0, 10]])
  assert pc.result() == 0.0


def _void_crowd_scene():
  """4x4: row 0 crowd (cols 0-1) and void (cols 2-3); two gt instances."""
  gt_cat = np.array([[0] * 4, [1] * 4, [1] * 4, [1] * 4])
  gt_inst = np.array([[1, 1, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2],
                      [1, 1, 2, 2]])
  # Instance 1 covers rows 1-3 cols 0-1 and row 0 cols 0-2 (2 crowd + 1 void
  # px); instance 2 rows 1-2 cols 2-3; instance 3 row 3 cols 2-3; one
  # category-2 pixel on void.
  pred_cat = np.array([[1, 1, 1, 2], [1] * 4, [1] * 4, [1] * 4])
  pred_inst = np.array([[1, 1, 1, 0], [1, 1, 2, 2], [1, 1, 2, 2],
                        [1, 1, 3, 3]])
  return gt_cat, gt_inst, pred_cat, pred_inst


def test_pc_cuts_void_and_crowd_out_of_predictions():
  pc = ParsingCovering(3, 0, 4, 32, normalize_by_image_size=False)
  pc.compare_and_accumulate(*_void_crowd_scene())
  # gt 1 (6 px): prediction 1 has 9 px, 6 of them off void/crowd -> IoU 1.
  # gt 2 (6 px): best of 4 / 6 (prediction 2) and 2 / 6 (prediction 3).
  np.testing.assert_allclose(_pc_state(pc), [[0, 6 + 6 * 4 / 6, 0],
                                             [0, 12, 0]])
  # Category 2 has predictions but no groundtruth: not in the mean.
  assert pc.result() == pytest.approx(10 / 12)
  assert pc.detailed_results(is_thing=[False, True, True]) == {
      'All': {'pc': pytest.approx(10 / 12), 'n': 1},
      'Things': {'pc': pytest.approx(10 / 12), 'n': 1},
      'Stuff': {'pc': 0, 'n': 0}}


def test_pq_on_the_same_scene_cuts_only_void():
  pq = PanopticQuality(3, 0, 4, 32)
  pq.compare_and_accumulate(*_void_crowd_scene())
  # gt 1 vs prediction 1: union 6 + 9 - 6 - 1 (void only) = 8 -> IoU 0.75;
  # gt 2 vs prediction 2: 4 / 6; prediction 3 is a false positive; the
  # category-2 pixel lies on void, so it is not one.
  np.testing.assert_allclose(
      _pq_state(pq), [[0, 0.75 + 4 / 6, 0], [0, 2, 0], [0, 0, 0], [0, 1, 0]])
  assert pq.result() == pytest.approx((0.75 + 4 / 6) / 2 * (2 / 2.5))


def test_pc_normalize_by_image_size():
  # Image A (2x2): perfect. Image B (2x4): half of the category-1 region
  # predicted as category 2 -> IoU 1/2.
  a = np.ones([2, 2], np.int32)
  b_gt = np.ones([2, 4], np.int32)
  b_pred = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
  images = [(a, a), (b_gt, b_pred)]
  normalized = ParsingCovering(3, 0, 4, 16, normalize_by_image_size=True)
  plain = ParsingCovering(3, 0, 4, 16, normalize_by_image_size=False)
  for gt, pred in images:
    for metric in (normalized, plain):
      metric.compare_and_accumulate(gt, np.zeros_like(gt), pred,
                                    np.zeros_like(pred))
  # Normalised: (1 * 1 + 1 * 0.5) / 2; plain: (4 * 1 + 8 * 0.5) / 12.
  np.testing.assert_allclose(_pc_state(normalized), [[0, 1.5, 0], [0, 2, 0]])
  assert normalized.result() == pytest.approx(0.75)
  assert plain.result() == pytest.approx(8 / 12)
  with pytest.raises(ValueError, match='normalize_by_image_size'):
    normalized.merge(plain)


def test_pc_merge_equals_accumulating_all():
  scenes = [_void_crowd_scene(),
            (_ZEROS + 1, _GT_LABELS, _ZEROS + 1, _GOOD_DET),
            (_ZEROS + 1, _GT_LABELS, _ZEROS + 1, _BAD_DET)]
  first, second, together = (ParsingCovering(3, 0, 4, 32) for _ in range(3))
  first.compare_and_accumulate(*scenes[0])
  for scene in scenes[1:]:
    second.compare_and_accumulate(*scene)
  for scene in scenes:
    together.compare_and_accumulate(*scene)
  first.merge(second)
  np.testing.assert_allclose(_pc_state(first), _pc_state(together),
                             rtol=1e-15)
  first.reset()
  assert first.result() == 0.0 and not _pc_state(first).any()


# ----------------------------------------------------------------------------
# Integer dtypes, layout checks.


def _random_panoptic(rng, shape, categories, max_instance, rectangles=12):
  """Random rectangles of random (category, instance) on a random background."""
  cat = np.full(shape, rng.choice(categories), np.int64)
  inst = np.zeros(shape, np.int64)
  for _ in range(rectangles):
    y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])
    y1 = rng.integers(y0 + 1, shape[0] + 1)
    x1 = rng.integers(x0 + 1, shape[1] + 1)
    cat[y0:y1, x0:x1] = rng.choice(categories)
    inst[y0:y1, x0:x1] = rng.integers(0, max_instance)
  return cat, inst


def _perturbed(rng, cat, inst, categories, max_instance):
  """A prediction: the groundtruth with a few rectangles repainted."""
  pred_cat, pred_inst = cat.copy(), inst.copy()
  for _ in range(3):
    y0, x0 = rng.integers(0, cat.shape[0]), rng.integers(0, cat.shape[1])
    y1, x1 = y0 + rng.integers(1, 6), x0 + rng.integers(1, 6)
    pred_cat[y0:y1, x0:x1] = rng.choice(categories)
    pred_inst[y0:y1, x0:x1] = rng.integers(0, max_instance)
  return pred_cat, pred_inst


def _random_scenes(seed, count, shape=(24, 20), categories=(0, 1, 2, 3, 4),
                   max_instance=5):
  rng = np.random.default_rng(seed)
  scenes = []
  for _ in range(count):
    cat, inst = _random_panoptic(rng, shape, categories, max_instance)
    scenes.append((cat, inst) + _perturbed(rng, cat, inst, categories,
                                           max_instance))
  return scenes


@pytest.mark.parametrize('metric_class', [PanopticQuality, ParsingCovering])
def test_results_do_not_depend_on_the_integer_dtype(metric_class):
  scenes = _random_scenes(1, 3, categories=(250, 251, 252, 253, 254, 255),
                          max_instance=256)
  states = {}
  for dtype in (np.uint8, np.uint16, np.int32, np.int64, np.uint64):
    metric = metric_class(255, 255, 256, 256 * 256)
    for scene in scenes:
      metric.compare_and_accumulate(*[a.astype(dtype) for a in scene])
    states[dtype] = (metric.result(), metric.result_per_category())
  reference = states[np.int64]
  assert 0 < reference[0] < 1
  for result in states.values():
    assert result[0] == reference[0]
    np.testing.assert_array_equal(result[1], reference[1])


def test_uint8_labels_are_widened_before_combining():
  # 250 * 256 wraps to 0 in uint8: computed in uint8, categories 250 and 251
  # would be one segment and the swapped prediction a perfect match.
  gt = np.array([[250, 250, 251, 251]] * 2, np.uint8)
  pred = np.array([[251, 251, 250, 250]] * 2, np.uint8)
  zeros = np.zeros_like(gt)
  pq = PanopticQuality(num_categories=252, ignored_label=0,
                       max_instances_per_category=256, offset=253 * 256)
  pq.compare_and_accumulate(gt, zeros, pred, zeros)
  assert pq.tp_per_class.sum() == 0
  assert pq.fn_per_class[250] == pq.fn_per_class[251] == 1
  assert pq.fp_per_class[250] == pq.fp_per_class[251] == 1
  assert pq.result() == 0.0
  # Large layouts do not overflow either (the original computes
  # gt_id * offset + pred_id in uint32: 2**32 is exceeded here).
  big = PanopticQuality(num_categories=300, ignored_label=0,
                        max_instances_per_category=1 << 16,
                        offset=301 << 16)
  gt16 = np.array([[299, 299, 1, 1]], np.uint16)
  inst16 = np.array([[65535, 65535, 7, 7]], np.uint16)
  big.compare_and_accumulate(gt16, inst16, gt16, inst16)
  assert big.result() == 1.0 and big.tp_per_class[[1, 299]].tolist() == [1, 1]


def test_layout_errors_are_explicit():
  pq = PanopticQuality(num_categories=3, ignored_label=255,
                       max_instances_per_category=4, offset=256 * 4)
  ok = np.ones([2, 2], np.int32)
  zeros = np.zeros([2, 2], np.int32)
  # Instance 4 of category 1 is combined as the original does: 1 * 4 + 4 is
  # category 2, instance 0 (a false negative of category 2 here), with a
  # warning; strict_instance_ids makes it an error.
  aliased = PanopticQuality(3, 255, 4, 256 * 4)
  with pytest.warns(panoptic_base.InstanceIdWarning,
                    match='max_instances_per_category=4'):
    aliased.compare_and_accumulate(ok, zeros + 4, ok, zeros)
  np.testing.assert_array_equal(_pq_state(aliased)[2:],
                                [[0, 0, 1], [0, 1, 0]])
  with pytest.raises(ValueError, match='max_instances_per_category=4'):
    PanopticQuality(3, 255, 4, 256 * 4, strict_instance_ids=True
                   ).compare_and_accumulate(ok, zeros + 4, ok, zeros)
  with pytest.raises(ValueError, match=r'in \[0, 3\) or the ignored_label'):
    pq.compare_and_accumulate(ok, zeros, ok + 3, zeros)
  with pytest.raises(ValueError, match='predicted segment id 1020'):
    PanopticQuality(3, 255, 4, 255 * 4).compare_and_accumulate(
        ok, zeros, ok + 254, zeros)
  with pytest.raises(TypeError, match='float'):
    pq.compare_and_accumulate(ok.astype(np.float32), zeros, ok, zeros)
  with pytest.raises(ValueError, match='non-negative'):
    pq.compare_and_accumulate(ok, zeros - 1, ok, zeros)
  with pytest.raises(ValueError, match='one shape'):
    pq.compare_and_accumulate(ok, zeros, ok[:1], zeros)
  with pytest.raises(ValueError, match='offset must be a positive integer'):
    PanopticQuality(3, 0, 4, 0)
  with pytest.raises(ValueError, match='different layouts'):
    pq.merge(PanopticQuality(4, 255, 4, 1024))
  with pytest.raises(ValueError, match='can only merge a PanopticQuality'):
    pq.merge(ParsingCovering(3, 255, 4, 1024))
  # An ignored label outside [0, num_categories) is fine: predictions of it
  # are dropped where the original would fail with an IndexError; and
  # groundtruth ids may exceed the offset (void 255 * 4 >= 4 * 4), as in the
  # original, where only predicted ids are decoded with it.
  gt = np.array([[255, 255], [1, 1]])
  pred = np.array([[255, 1], [1, 1]])
  pq.compare_and_accumulate(gt, zeros, pred, zeros)
  cityscapes_like = PanopticQuality(3, 255, 4, 4 * 4)
  cityscapes_like.compare_and_accumulate(gt, zeros, np.where(pred == 255, 1,
                                                           pred), zeros)
  for metric in (pq, cityscapes_like):
    assert metric.result() == 1.0
    np.testing.assert_array_equal(_pq_state(metric), [[0, 1, 0], [0, 1, 0],
                                                      [0, 0, 0], [0, 0, 0]])


def _segments(category, instance):
  """{(category, instance): boolean mask}, by a plain loop over pixels."""
  masks = {}
  for key in set(zip(category.ravel().tolist(), instance.ravel().tolist())):
    masks[key] = (category == key[0]) & (instance == key[1])
  return masks


def _reference_pq(gt_cat, gt_inst, pred_cat, pred_inst, num_categories,
                  ignored):
  """PQ counts by the definitions, one segment pair at a time."""
  gt, pred = _segments(gt_cat, gt_inst), _segments(pred_cat, pred_inst)
  void = (gt_cat == ignored) & (gt_inst == 0)
  on_ignored = gt_cat == ignored
  state = np.zeros([4, num_categories])
  gt_hit, pred_hit = set(), set()
  for g, g_mask in gt.items():
    for p, p_mask in pred.items():
      inter = np.sum(g_mask & p_mask)
      if p[0] != g[0] or not inter:
        continue
      # The ignored category is matched too, as the original: against void
      # the union can be 0 (an infinite IoU there).
      union = g_mask.sum() + np.sum(p_mask & ~void) - inter
      iou = inter / union if union else np.inf
      if iou > 0.5:
        if g[0] < num_categories:
          state[0, g[0]] += iou
          state[1, g[0]] += 1
        gt_hit.add(g)
        pred_hit.add(p)
  for g in gt:
    if g not in gt_hit and g[0] != ignored:
      state[2, g[0]] += 1
  for p, p_mask in pred.items():
    mostly_ignored = np.sum(p_mask & on_ignored) / p_mask.sum() > 0.5
    if p not in pred_hit and not mostly_ignored and p[0] < num_categories:
      state[3, p[0]] += 1
  return state


def _reference_pc(gt_cat, gt_inst, pred_cat, pred_inst, num_categories,
                  ignored):
  """PC sums (normalised by image size) by the definition, region by region."""
  gt, pred = _segments(gt_cat, gt_inst), _segments(pred_cat, pred_inst)
  kept = gt_cat != ignored
  state = np.zeros([2, num_categories])
  for g, g_mask in gt.items():
    if g[0] == ignored:
      continue
    best = 0.0
    for p, p_mask in pred.items():
      inter = np.sum(g_mask & p_mask)
      if p[0] == g[0] and inter:
        best = max(best, inter / (g_mask.sum() + np.sum(p_mask & kept) -
                                  inter))
    area = g_mask.sum() / gt_cat.size
    state[:, g[0]] += [area * best, area]
  return state


@pytest.mark.parametrize('ignored,categories', [
    (0, (0, 1, 2, 3)), (255, (1, 2, 3, 255))])
def test_vectorized_metrics_equal_segment_by_segment_definitions(
    ignored, categories):
  # Random scenes with void, crowd (ignored category, instance > 0) and
  # predictions of the ignored category, ignored label in and out of range.
  scenes = _random_scenes(5, 8, categories=categories, max_instance=4)
  for scene in scenes:
    pq = PanopticQuality(4, ignored, 4, 256 * 4)
    pc = ParsingCovering(4, ignored, 4, 256 * 4)
    pq.compare_and_accumulate(*scene)
    pc.compare_and_accumulate(*scene)
    np.testing.assert_allclose(_pq_state(pq),
                               _reference_pq(*scene, 4, ignored), rtol=1e-12)
    np.testing.assert_allclose(_pc_state(pc),
                               _reference_pc(*scene, 4, ignored), rtol=1e-12)
  # The scenes exercise every branch.
  everything = PanopticQuality(4, ignored, 4, 256 * 4)
  for scene in scenes:
    everything.compare_and_accumulate(*scene)
  assert np.all(_pq_state(everything)[1:].sum(1) > 0)   # some TP, FN, FP


def test_overlap_table_matches_np_unique_pairing():
  rng = np.random.default_rng(3)
  gt = rng.integers(0, 40, [30, 30])
  pred = rng.integers(0, 40, [30, 30])
  pairs = panoptic_base.pair_segments(gt, pred)
  offset = 64
  ids, counts = np.unique(gt * offset + pred, return_counts=True)
  np.testing.assert_array_equal(
      pairs.gt_ids[pairs.pair_gt] * offset + pairs.pred_ids[pairs.pair_pred],
      ids)
  np.testing.assert_array_equal(pairs.pair_areas, counts)
  # The sort-based path for sparse, large ids gives the same table.
  big = panoptic_base.pair_segments(gt * (1 << 30), pred * (1 << 30))
  np.testing.assert_array_equal(big.pair_areas, counts)
  np.testing.assert_array_equal(big.gt_ids, pairs.gt_ids * (1 << 30))


# ----------------------------------------------------------------------------
# TF streaming versions.


def test_streaming_equals_numpy_over_batches():
  scenes = _random_scenes(7, 6)
  kwargs = dict(num_classes=4, max_instances_per_category=5,
                ignored_label=0, offset=32)
  streaming_pq = streaming_panoptic.StreamingPanopticQuality(**kwargs)
  streaming_pc = streaming_panoptic.StreamingParsingCovering(**kwargs)
  pq = PanopticQuality(4, 0, 5, 32)
  pc = ParsingCovering(4, 0, 5, 32)
  # Replace category 4 by 0 (ignored) in half of the scenes, keep 1..3.
  scenes = [tuple(np.where(a == 4, 0, a) if i % 2 == 0 else a
                  for i, a in enumerate(scene)) for scene in scenes]
  for start in (0, 2, 4):   # batches of 2 images, uint8 and int32 inputs
    batch = [np.stack([s[k] for s in scenes[start:start + 2]])
             for k in range(4)]
    batch = [b.astype(np.uint8 if start == 2 else np.int32) for b in batch]
    streaming_pq.update(*batch)
    streaming_pc.update(*batch)
    for scene in scenes[start:start + 2]:
      pq.compare_and_accumulate(*scene)
      pc.compare_and_accumulate(*scene)
  qualities = streaming_pq.result().numpy()
  assert qualities.shape == (6, 4)
  np.testing.assert_allclose(qualities[3:], _pq_state(pq)[1:], rtol=0)
  np.testing.assert_allclose(qualities[0], pq.result_per_category(),
                             rtol=1e-12)
  assert 0 < pq.result() < 1 and pq.fp_per_class.sum() > 0
  np.testing.assert_allclose(qualities[1] * qualities[2], qualities[0])
  assert streaming_pq.to_metric().result() == pytest.approx(pq.result(),
                                                            rel=1e-12)
  coverings = streaming_pc.result().numpy()
  assert coverings.shape == (3, 4)
  np.testing.assert_allclose(coverings[1:], _pc_state(pc), rtol=1e-12)
  np.testing.assert_allclose(coverings[0], pc.result_per_category(),
                             rtol=1e-12)
  assert streaming_pc.to_metric().result() == pytest.approx(pc.result(),
                                                            rel=1e-12)
  streaming_pq.reset()
  assert not streaming_pq.result().numpy().any()


def test_streaming_hand_scene_and_checks():
  gt_cat, gt_inst, pred_cat, pred_inst = _void_crowd_scene()
  metric = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=4, ignored_label=0,
      offset=32)
  metric.update(gt_cat, gt_inst, pred_cat, pred_inst)   # [H, W] input
  np.testing.assert_allclose(
      metric.result().numpy()[3:], [[0, 2, 0], [0, 0, 0], [0, 1, 0]])
  sq = (0.75 + 4 / 6) / 2
  np.testing.assert_allclose(metric.result().numpy()[:3, 1],
                             [sq * 0.8, sq, 0.8])
  covering = streaming_panoptic.StreamingParsingCovering(
      num_classes=3, max_instances_per_category=4, ignored_label=0,
      offset=32, normalize_by_image_size=False)
  covering.update(gt_cat, gt_inst, pred_cat, pred_inst)
  np.testing.assert_allclose(covering.result().numpy()[:, 1],
                             [10 / 12, 10, 12])
  strict = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=4, ignored_label=0,
      offset=32, strict_instance_ids=True)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='max_instances_per_category=4'):
    strict.update(gt_cat, gt_inst + 4, pred_cat, pred_inst)
  # Without it, combined as the original (and the numpy metric) combine them.
  aliased = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=4, ignored_label=0, offset=32)
  aliased.update(gt_cat, gt_inst + 4, pred_cat, pred_inst)
  reference = PanopticQuality(3, 0, 4, 32)
  with pytest.warns(panoptic_base.InstanceIdWarning):
    reference.compare_and_accumulate(gt_cat, gt_inst + 4, pred_cat,
                                     pred_inst)
  np.testing.assert_array_equal(aliased.totals.numpy(), _pq_state(reference))
  with pytest.raises(tf.errors.InvalidArgumentError, match='categories'):
    aliased.update(gt_cat, gt_inst + 8, pred_cat, pred_inst)  # category 3
  with pytest.raises(tf.errors.InvalidArgumentError, match='categories'):
    metric.update(gt_cat, gt_inst, pred_cat + 3, pred_inst)
  small_offset = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=4, ignored_label=0, offset=8)
  with pytest.raises(tf.errors.InvalidArgumentError, match='offset=8'):
    small_offset.update(gt_cat, gt_inst, pred_cat, pred_inst)   # 2 * 4 + 0
  with pytest.raises((tf.errors.InvalidArgumentError, ValueError),
                     match='one shape'):
    metric.update(gt_cat, gt_inst, pred_cat[:3], pred_inst[:3])
  # Void 255 beyond the offset in the groundtruth is fine (Cityscapes).
  cityscapes_like = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=4, ignored_label=255,
      offset=16)
  cityscapes_like.update(np.where(gt_cat == 0, 255, gt_cat), gt_inst,
                         np.where(pred_cat == 2, 1, pred_cat), pred_inst)
  assert cityscapes_like.result().numpy()[3:, 1].tolist() == [2, 0, 1]
  with pytest.raises(ValueError, match=r'\[H, W\] or \[B, H, W\]'):
    metric.update(gt_cat[0], gt_inst[0], pred_cat[0], pred_inst[0])


# ----------------------------------------------------------------------------
# COCO-format evaluation from JSON + PNG files.

# Three small images; each pixel (category, instance) as the evaluation will
# read it back: instance ids in segments_info order per category, crowd
# regions as (0, 1...), unlabeled pixels (0, 0).
_CATEGORIES = [{'id': 1, 'name': 'person', 'isthing': 1},
               {'id': 2, 'name': 'car', 'isthing': 1},
               {'id': 3, 'name': 'road', 'isthing': 0}]


def _coco_scenes():
  rng = np.random.default_rng(11)
  scenes = []
  for shape in ((6, 8), (5, 7), (7, 9)):
    gt_cat, gt_inst = _random_panoptic(rng, shape, (1, 2, 3), 3, 5)
    gt_inst[gt_cat == 3] = 0
    crowd_and_void = np.zeros(shape, bool)
    crowd_and_void[0, :3] = True
    gt_cat[crowd_and_void] = 0
    gt_inst[0, :2] = 1      # crowd
    gt_inst[0, 2] = 0       # void
    pred_cat, pred_inst = _perturbed(rng, gt_cat, gt_inst, (1, 2, 3), 3)
    pred_cat[pred_cat == 0] = 3
    pred_inst[pred_cat == 3] = 0
    scenes.append((gt_cat, gt_inst, pred_cat, pred_inst))
  return scenes


def _write_panoptic(folder, name, image_id, category, instance, crowd_ok):
  """Writes a COCO panoptic PNG and returns its annotation."""
  os.makedirs(folder, exist_ok=True)
  ids = np.zeros(category.shape, np.int64)
  segments = []
  keys = sorted(set(zip(category.ravel().tolist(),
                        instance.ravel().tolist())))
  # Instances listed in increasing order per category, so that the reader
  # numbers them as the test maps do; ids spread over the three channels.
  for number, (c, i) in enumerate(keys):
    if c == 0 and i == 0:
      continue          # void: left out of segments_info (id 0)
    segment_id = 1 + number * 40503 + 2 * 65536
    ids[(category == c) & (instance == i)] = segment_id
    if c == 0:
      assert crowd_ok
      segments.append({'id': segment_id, 'category_id': 1, 'iscrowd': 1})
    else:
      segments.append({'id': segment_id, 'category_id': c, 'iscrowd': 0})
  # Crowd segments first would change nothing; put them last to check that
  # instance numbering of the ignored category starts at 1 anyway.
  segments.sort(key=lambda s: s['iscrowd'])
  rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1)
  assert cv2.imwrite(os.path.join(folder, name), rgb[..., ::-1].astype(
      np.uint8))
  return {'image_id': image_id, 'file_name': name, 'segments_info': segments}


def _write_coco(tmp_path, scenes):
  gt_json = {'annotations': [], 'categories': _CATEGORIES}
  pred_json = {'annotations': [], 'categories': _CATEGORIES}
  for n, (gt_cat, gt_inst, pred_cat, pred_inst) in enumerate(scenes):
    name = 'image_%d.png' % n
    gt_json['annotations'].append(_write_panoptic(
        str(tmp_path / 'gt'), name, 100 + n, gt_cat, gt_inst, True))
    pred_json['annotations'].append(_write_panoptic(
        str(tmp_path / 'pred'), name, 100 + n, pred_cat, pred_inst, False))
  pred_json['annotations'].reverse()   # pairing is by image_id, not order
  for name, content in (('gt.json', gt_json), ('pred.json', pred_json)):
    with open(tmp_path / name, 'w') as f:
      json.dump(content, f)
  return str(tmp_path / 'gt.json'), str(tmp_path / 'pred.json')


def test_split_panoptic_conventions():
  ids = np.array([[0, 5, 5], [9, 7, 700000]])
  annotation = {'segments_info': [
      {'id': 5, 'category_id': 2, 'iscrowd': 0},
      {'id': 9, 'category_id': 2, 'iscrowd': 1},
      {'id': 7, 'category_id': 2, 'iscrowd': 1},
      {'id': 700000, 'category_id': 3, 'iscrowd': 0}]}
  cat, inst = eval_coco_format.split_panoptic(annotation, ids, 0, True)
  np.testing.assert_array_equal(cat, [[0, 2, 2], [0, 0, 3]])
  np.testing.assert_array_equal(inst, [[0, 0, 0], [1, 2, 0]])
  cat, inst = eval_coco_format.split_panoptic(annotation, ids, 255, False)
  np.testing.assert_array_equal(cat, [[255, 2, 2], [2, 2, 3]])
  np.testing.assert_array_equal(inst, [[0, 0, 0], [1, 2, 0]])


def test_coco_format_workers_and_in_memory_agree(tmp_path, capsys):
  scenes = _coco_scenes()
  gt_json, pred_json = _write_coco(tmp_path, scenes)
  args = dict(gt_folder=str(tmp_path / 'gt'), num_categories=4,
              ignored_label=0, max_instances_per_category=8)
  for metric_name, metric in (('pq', PanopticQuality(4, 0, 8, 40)),
                              ('pc', ParsingCovering(4, 0, 8, 40))):
    for scene in scenes:
      metric.compare_and_accumulate(*scene)
    expected = metric.detailed_results(is_thing=[False, True, True, False])
    assert 0 < expected['All'][metric_name] < 1
    for workers in (0, 1, 2):
      results = eval_coco_format.eval_coco_format(
          gt_json, pred_json, metric=metric_name, num_workers=workers,
          **args)
      assert results == expected, (metric_name, workers)
    assert 'Things' in capsys.readouterr().out


def test_coco_format_main_flags_and_errors(tmp_path, capsys):
  gt_json, pred_json = _write_coco(tmp_path, _coco_scenes()[:2])
  flags = eval_coco_format.FLAGS
  argv = ['eval_coco_format', '--gt_json_file=' + gt_json,
          '--pred_json_file=' + pred_json, '--num_categories=4',
          '--max_instances_per_category=8', '--metric=pc',
          '--print_digits=5']
  try:
    flags(argv)
    assert eval_coco_format.main(['eval_coco_format']) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[1].split('|')[2].strip() == 'PC'
    assert [l.split('|')[1].strip() for l in table.splitlines()[3:6]] == [
        'All', 'Things', 'Stuff']
    # Crowd instance 1 with one instance per category: combined as the
    # original does (into category 1's ids), with a warning, no error.
    flags(argv[:-1] + ['--max_instances_per_category=1'])
    with pytest.warns(panoptic_base.InstanceIdWarning,
                      match='max_instances_per_category=1'):
      assert eval_coco_format.main(['eval_coco_format']) == 0
  finally:
    flags.unparse_flags()
  with open(pred_json) as f:
    pred = json.load(f)
  pred['annotations'] = pred['annotations'][:1]
  with open(pred_json, 'w') as f:
    json.dump(pred, f)
  with pytest.raises(ValueError, match='no prediction'):
    eval_coco_format.eval_coco_format(gt_json, pred_json, num_categories=4)
  with pytest.raises(FileNotFoundError, match='cannot read'):
    eval_coco_format.read_panoptic_id_image(str(tmp_path / 'missing.png'))


# ----------------------------------------------------------------------------
# Benchmark smoke test.


@pytest.mark.slow
def test_benchmark_smoke():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks',
                                    'panoptic_metrics_speed.py'),
       '--height=64', '--width=128', '--num_images=2', '--repeats=1',
       '--segments=12'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
  records = [json.loads(line) for line in proc.stdout.splitlines()
             if line.startswith('{')]
  assert len(records) == 1
  record = records[0]
  assert record['height'] == 64 and record['width'] == 128
  for key in ('pq_images_per_sec', 'pc_images_per_sec',
              'tf_pq_images_per_sec', 'tf_pc_images_per_sec'):
    assert record[key] > 0, key
  assert 0 < record['pq'] <= 1 and 0 < record['pc'] <= 1
  assert record['tf_pq'] == pytest.approx(record['pq'], rel=1e-9)
