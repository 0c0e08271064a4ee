"""The original deeplab unit tests of evaluation/ and utils/ as specification.

Ported cases (same inputs, same expected numbers, our own code) of
``panoptic_quality_test``, ``parsing_covering_test``,
``streaming_metrics_test`` and ``get_dataset_colormap_test``, and hand-made
scenes for the three behaviours ours once changed on purpose and now follows:

- PQ matches segments of the ignored category (its per-category entries
  hold that category's IoU / TP, IoU > 1 possible against void);
- instance ids >= max_instances_per_category are combined as
  ``category * max_instances + instance`` (a warning, not an error);
- colormaps have the original's sizes and refuse labels past them.

The original tests on the "team" / "bird" / "cat" PNGs run when
``DEEPLAB_ORIGINAL_TESTDATA`` names a folder holding them (the original's
``research/deeplab/evaluation/testdata``; they are not copied here).
"""
import os
import warnings

import cv2
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import visualization as V
from deeplab_tf.evaluation import panoptic_base
from deeplab_tf.evaluation import streaming_panoptic
from deeplab_tf.evaluation.panoptic_quality import PanopticQuality
from deeplab_tf.evaluation.parsing_covering import ParsingCovering


def _pq_state(metric):
  return np.stack([metric.iou_per_class, metric.tp_per_class,
                   metric.fn_per_class, metric.fp_per_class])


# ----------------------------------------------------------------------------
# panoptic_quality_test.py (the cases without PNGs).

_GT = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 2, 2, 2, 1],
    [1, 2, 2, 2, 2, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1]], np.uint16)
_GOOD = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 2, 2, 2, 2, 1],
    [1, 2, 2, 2, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1]], np.uint16)
_BAD = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 2, 2, 1],
    [1, 1, 1, 1, 1, 1]], np.uint16)
_ZEROS = np.zeros([6, 6], np.uint16)
# Categories of test_wrong_instances / test_instance_order_is_arbitrary.
_TWO_SQUARES = np.array([
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1],
    [1, 2, 2, 1, 2, 2],
    [1, 2, 2, 1, 2, 2],
    [1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 1, 1]], np.uint16)
_RIGHT_SQUARE = np.zeros([6, 6], np.uint16)
_RIGHT_SQUARE[2:4, 4:6] = 1
_LEFT_SQUARE = np.zeros([6, 6], np.uint16)
_LEFT_SQUARE[2:4, 1:3] = 1


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
  pq.compare_and_accumulate(_ZEROS, instances, _ZEROS, instances)
  np.testing.assert_array_equal(_pq_state(pq), [[2.0], [2], [0], [0]])
  np.testing.assert_array_equal(pq.result_per_category(), [1.0])
  assert pq.result() == 1.0


def test_pq_totally_wrong():
  det = np.array([
      [0, 0, 0, 0, 0, 0],
      [0, 1, 0, 0, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0]], np.uint16)
  pq = PanopticQuality(num_categories=2, ignored_label=2,
                       max_instances_per_category=1, offset=16)
  pq.compare_and_accumulate(1 - det, _ZEROS, det, _ZEROS)
  np.testing.assert_array_equal(_pq_state(pq),
                                [[0, 0], [0, 0], [1, 1], [1, 1]])
  np.testing.assert_array_equal(pq.result_per_category(), [0.0, 0.0])
  assert pq.result() == 0.0


def test_pq_matches_by_iou():
  pq = PanopticQuality(num_categories=1, ignored_label=2,
                       max_instances_per_category=16, offset=16)
  pq.compare_and_accumulate(_ZEROS, _GT, _ZEROS, _GOOD)
  np.testing.assert_allclose(pq.iou_per_class, [28 / 30 + 6 / 8])
  np.testing.assert_array_equal(_pq_state(pq)[1:], [[2], [0], [0]])
  assert pq.result() == pytest.approx((28 / 30 + 6 / 8) / 2)
  pq.reset()
  pq.compare_and_accumulate(_ZEROS, _GT, _ZEROS, _BAD)
  np.testing.assert_allclose(pq.iou_per_class, [27 / 32])
  np.testing.assert_array_equal(_pq_state(pq)[1:], [[1], [1], [1]])
  assert pq.result() == pytest.approx(27 / 32 / 2)


def test_pq_wrong_instances():
  pq = PanopticQuality(num_categories=3, ignored_label=0,
                       max_instances_per_category=10, offset=100)
  pq.compare_and_accumulate(_TWO_SQUARES, _ZEROS, _TWO_SQUARES, _RIGHT_SQUARE)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 2]])
  np.testing.assert_array_equal(pq.result_per_category(), [0, 1, 0])
  assert pq.result() == pytest.approx(0.5)


def test_pq_instance_order_is_arbitrary():
  pq = PanopticQuality(num_categories=3, ignored_label=0,
                       max_instances_per_category=10, offset=100)
  pq.compare_and_accumulate(_TWO_SQUARES, _LEFT_SQUARE, _TWO_SQUARES,
                            _RIGHT_SQUARE)
  np.testing.assert_array_equal(
      _pq_state(pq), [[0, 1, 2], [0, 1, 2], [0, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(pq.result_per_category(), [0, 1, 1])
  assert pq.result() == pytest.approx(1.0)


def test_pq_merge_accumulates_all_across_instances():
  good, bad = (PanopticQuality(num_categories=1, ignored_label=2,
                               max_instances_per_category=16, offset=16)
               for _ in range(2))
  for _ in range(2):
    good.compare_and_accumulate(_ZEROS, _GT, _ZEROS, _GOOD)
    bad.compare_and_accumulate(_ZEROS, _GT, _ZEROS, _BAD)
  good.merge(bad)
  np.testing.assert_allclose(good.iou_per_class,
                             [2 * (28 / 30 + 6 / 8) + 2 * (27 / 32)])
  np.testing.assert_array_equal(_pq_state(good)[1:], [[6], [2], [2]])
  assert good.result() == pytest.approx(0.63177083, abs=1e-8)


# ----------------------------------------------------------------------------
# The ignored category is matched (its per-category entries as the original).

def _void_row_scene():
  """4x4, 3 categories, ignored 0: row 0 void, rows 1-3 category 1.

  The prediction has category 0 on row 0 columns 0-2 (3 px, all on void)
  and category 1 elsewhere (13 px, one of them on void).
  """
  gt_cat = np.array([[0] * 4, [1] * 4, [1] * 4, [1] * 4])
  pred_cat = gt_cat.copy()
  pred_cat[0, 3] = 1
  return gt_cat, np.zeros_like(gt_cat), pred_cat, np.zeros_like(gt_cat)


def test_pq_matches_the_ignored_category_as_the_original():
  pq = PanopticQuality(num_categories=3, ignored_label=0,
                       max_instances_per_category=4, offset=16)
  pq.compare_and_accumulate(*_void_row_scene())
  # Void (4 px) vs predicted void (3 px): the union leaves the prediction's
  # void pixels out, 4 + 3 - 3 - 3 = 1, so IoU = 3 / 1 = 3 > 0.5: a match.
  # Category 1: 12 / (12 + 13 - 12 - 1) = 1.
  np.testing.assert_array_equal(
      _pq_state(pq), [[3, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(pq.result_per_category(), [3, 1, 0])
  assert pq.result() == 1.0           # the ignored category is no mean's
  assert pq.detailed_results()['All'] == {'pq': 1.0, 'sq': 1.0, 'rq': 1.0,
                                          'n': 1}

  # Our former rule, kept as an option: never matched. The prediction lies
  # all on void, so it is no false positive either.
  tidy = PanopticQuality(3, 0, 4, 16, skip_ignored_matches=True)
  tidy.compare_and_accumulate(*_void_row_scene())
  np.testing.assert_array_equal(
      _pq_state(tidy), [[0, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
  assert tidy.result() == pq.result()
  with pytest.raises(ValueError, match='skip_ignored_matches'):
    pq.merge(tidy)


def test_pq_ignored_category_exact_void_and_crowd():
  gt_cat, gt_inst, pred_cat, pred_inst = _void_row_scene()
  pred_cat[0, 3] = 0       # the prediction covers exactly the void row
  pq = PanopticQuality(3, 0, 4, 16)
  pq.compare_and_accumulate(gt_cat, gt_inst, pred_cat, pred_inst)
  # Union 4 + 4 - 4 - 4 = 0: the original's division gives inf, a match.
  np.testing.assert_array_equal(
      _pq_state(pq), [[np.inf, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
  assert pq.result() == 1.0
  # Crowd (instance 1) stays in the union: 4 / (4 + 4 - 4 - 0) = 1.
  crowd = gt_inst.copy()
  crowd[0] = 1
  pq.reset()
  pq.compare_and_accumulate(gt_cat, crowd, pred_cat, pred_inst)
  np.testing.assert_array_equal(
      _pq_state(pq), [[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_streaming_pq_matches_the_ignored_category_too():
  scene = _void_row_scene()
  exact = list(_void_row_scene())
  exact[2] = exact[2].copy()
  exact[2][0, 3] = 0
  for skip in (False, True):
    numpy_metric = PanopticQuality(3, 0, 4, 16, skip_ignored_matches=skip)
    streaming = streaming_panoptic.StreamingPanopticQuality(
        num_classes=3, max_instances_per_category=4, ignored_label=0,
        offset=16, skip_ignored_matches=skip)
    for image in (scene, exact):
      numpy_metric.compare_and_accumulate(*image)
    streaming.update(*[np.stack([a, b]) for a, b in zip(scene, exact)])
    np.testing.assert_array_equal(streaming.result().numpy()[3:],
                                  _pq_state(numpy_metric)[1:])
    np.testing.assert_array_equal(streaming.totals.numpy()[0],
                                  numpy_metric.iou_per_class)
    assert streaming.to_metric().skip_ignored_matches is skip
  # The last one (skip=True): never matched.
  assert numpy_metric.tp_per_class[0] == 0


# ----------------------------------------------------------------------------
# parsing_covering_test.py: instance ids >= max_instances_per_category.

def test_pc_perfect_match():
  categories = np.zeros([6, 6], np.uint16)
  instances = np.array([
      [2, 2, 2, 2, 2, 2],
      [2, 4, 4, 4, 4, 2],
      [2, 4, 4, 4, 4, 2],
      [2, 4, 4, 4, 4, 2],
      [2, 4, 4, 2, 2, 2],
      [2, 4, 2, 2, 2, 2]], np.uint16)
  pc = ParsingCovering(num_categories=3, ignored_label=2,
                       max_instances_per_category=2, offset=16,
                       normalize_by_image_size=False)
  # 0 * 2 + 2 is category 1, instance 0 (21 px); 0 * 2 + 4 is category 2,
  # the ignored one (15 px).
  with pytest.warns(panoptic_base.InstanceIdWarning,
                    match='max_instances_per_category=2'):
    pc.compare_and_accumulate(categories, instances, categories, instances)
  np.testing.assert_array_equal(pc.weighted_iou_per_class, [0.0, 21.0, 0.0])
  np.testing.assert_array_equal(pc.gt_area_per_class, [0.0, 21.0, 0.0])
  np.testing.assert_array_equal(pc.result_per_category(), [0.0, 1.0, 0.0])
  assert pc.result() == 1.0


def test_pc_totally_wrong():
  categories = np.zeros([6, 6], np.uint16)
  gt_instances = np.array([
      [0, 0, 0, 0, 0, 0],
      [0, 1, 0, 0, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 1, 1, 1, 1, 0],
      [0, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0]], np.uint16)
  pc = ParsingCovering(num_categories=2, ignored_label=0,
                       max_instances_per_category=1, offset=16,
                       normalize_by_image_size=False)
  # With one instance per category, instance 1 of category 0 is category 1.
  with pytest.warns(panoptic_base.InstanceIdWarning):
    pc.compare_and_accumulate(categories, gt_instances, categories,
                              1 - gt_instances)
  np.testing.assert_array_equal(pc.weighted_iou_per_class, [0.0, 0.0])
  np.testing.assert_array_equal(pc.gt_area_per_class, [0.0, 10.0])
  np.testing.assert_array_equal(pc.result_per_category(), [0.0, 0.0])
  assert pc.result() == 0.0


def test_large_instance_ids_strict_option_and_streaming():
  categories = np.zeros([6, 6], np.uint16)
  instances = np.full([6, 6], 2, np.uint16)
  instances[1:4, 1:5] = 4
  strict = ParsingCovering(3, 2, 2, 16, normalize_by_image_size=False,
                           strict_instance_ids=True)
  with pytest.raises(ValueError, match='max_instances_per_category=2'):
    strict.compare_and_accumulate(categories, instances, categories,
                                  instances)
  with pytest.raises(ValueError, match='max_instances_per_category=2'):
    PanopticQuality(3, 2, 2, 16, strict_instance_ids=True
                   ).compare_and_accumulate(categories, instances, categories,
                                            instances)
  # Into a category past the range: the original's IndexError, an error
  # here too, which names the instance ids.
  with pytest.raises(ValueError, match=r'instance ids up to 6 .* combined'), \
      pytest.warns(panoptic_base.InstanceIdWarning):
    ParsingCovering(3, 2, 2, 16).compare_and_accumulate(
        categories, instances + 2, categories, instances)

  plain = ParsingCovering(3, 2, 2, 16, normalize_by_image_size=False)
  streaming = streaming_panoptic.StreamingParsingCovering(
      num_classes=3, max_instances_per_category=2, ignored_label=2,
      offset=16, normalize_by_image_size=False)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', panoptic_base.InstanceIdWarning)
    plain.compare_and_accumulate(categories, instances, categories,
                                 instances)
  streaming.update(categories, instances, categories, instances)
  np.testing.assert_array_equal(streaming.result().numpy(),
                                [[0, 1, 0], [0, 24, 0], [0, 24, 0]])
  np.testing.assert_array_equal(streaming.result().numpy()[1:],
                                [plain.weighted_iou_per_class,
                                 plain.gt_area_per_class])
  streaming_strict = streaming_panoptic.StreamingPanopticQuality(
      num_classes=3, max_instances_per_category=2, ignored_label=2,
      offset=16, strict_instance_ids=True)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='max_instances_per_category=2'):
    streaming_strict.update(categories, instances, categories, instances)


# ----------------------------------------------------------------------------
# get_dataset_colormap_test.py, and the original's table sizes.

def test_pascal_label_colormap_values():
  colormap = V.get_colormap('pascal')
  np.testing.assert_array_equal(colormap[5], [128, 0, 128])
  np.testing.assert_array_equal(colormap[23], [128, 192, 128])
  np.testing.assert_array_equal(colormap[37], [128, 0, 192])
  np.testing.assert_array_equal(colormap[127], [224, 192, 192])
  np.testing.assert_array_equal(colormap[175], [192, 160, 192])


def test_label_to_pascal_color_image():
  label = np.array([[0, 16, 16], [52, 7, 52]])
  np.testing.assert_array_equal(
      V.label_to_color_image(label, 'pascal'),
      [[[0, 0, 0], [0, 64, 0], [0, 64, 0]],
       [[0, 64, 192], [128, 128, 128], [0, 64, 192]]])


def test_unexpected_label_value_and_dimension():
  with pytest.raises(ValueError, match='label value too large: 600 >= 512'):
    V.label_to_color_image(np.array([[120], [600]]), 'pascal')
  with pytest.raises(ValueError, match='Expect 2-D input label'):
    V.label_to_color_image(np.array([120]), 'pascal')
  with pytest.raises(ValueError, match='Expect 2-D input label'):
    V.label_to_color_image(np.array([250]), 'ade20k')
  with pytest.raises(ValueError, match='Unknown colormap'):
    V.get_colormap('unsupported_dataset')


def test_first_colors_in_ade20k_and_mapillary_colormaps():
  np.testing.assert_array_equal(
      V.label_to_color_image(np.array([[1, 3], [10, 20]]), 'ade20k'),
      [[[120, 120, 120], [6, 230, 230]], [[4, 250, 7], [204, 70, 3]]])
  vistas = V.get_colormap('mapillary_vistas')
  np.testing.assert_array_equal(vistas[3], [190, 153, 153])
  np.testing.assert_array_equal(vistas[6], [102, 102, 156])


@pytest.mark.parametrize('name,entries', [
    ('pascal', 512), ('cityscapes', 256), ('ade20k', 151),
    ('mapillary_vistas', 66)])
def test_colormap_sizes_and_largest_label(name, entries):
  assert V.COLORMAP_MAX_ENTRIES[name] == entries
  assert V.get_colormap(name).shape == (entries, 3)
  V.label_to_color_image(np.array([[0, entries - 1]]), name)
  with pytest.raises(ValueError, match='label value too large: %d >= %d'
                     % (entries, entries)):
    V.label_to_color_image(np.array([[0, entries]]), name)
  with pytest.raises(ValueError, match='label value too large'):
    V.colorize(np.full([2, 1, 3], entries), name)   # any rank for colorize


def test_colormap_tables_past_the_classes():
  pascal = V.get_colormap('pascal')
  # The devkit rule past 255: 256 has only bit 8 set (blue, 1 << 5), 511
  # all nine bits.
  np.testing.assert_array_equal(pascal[256], [0, 0, 32])
  np.testing.assert_array_equal(pascal[511], [224, 224, 224])
  np.testing.assert_array_equal(V.label_to_color_image([[300]], 'pascal'),
                                pascal[[[300]]])
  cityscapes = V.get_colormap('cityscapes')
  assert not cityscapes[19:].any()       # zeros past the 19 trainIds
  np.testing.assert_array_equal(V.label_to_color_image([[255]],
                                                       'cityscapes'),
                                [[[0, 0, 0]]])


# ----------------------------------------------------------------------------
# The original tests on its PNG fixtures (when a folder of them is given).

_TESTDATA = os.environ.get('DEEPLAB_ORIGINAL_TESTDATA')
needs_testdata = pytest.mark.skipif(
    not _TESTDATA, reason='DEEPLAB_ORIGINAL_TESTDATA names no folder of the '
    "original's evaluation/testdata PNGs")
_CLASS_COLOURS = {(0, 0, 0): 0, (0, 0, 255): 1, (255, 0, 0): 2,
                  (0, 255, 0): 3, (255, 0, 255): 4, (0, 255, 255): 5,
                  (255, 255, 0): 6}
_TEAM = {0: 0, 47: 1, 97: 1, 133: 1, 150: 1, 174: 1, 198: 2, 215: 1,
         244: 1, 255: 1}
_BIRD = {92: 5, 176: 3, 255: 4}
_CAT = {0: 0, 255: 6}


def _fixture(name, grey):
  image = cv2.imread(os.path.join(_TESTDATA, name),
                     cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
  assert image is not None, name
  return image if grey else image[..., ::-1]


def _fixture_scene(prefix, instance_to_class, gt_name=None):
  gt_instance = _fixture(gt_name or prefix + '_gt.png', True)
  assert set(np.unique(gt_instance).tolist()) == set(instance_to_class)
  gt_class = np.zeros_like(gt_instance)
  for instance, category in instance_to_class.items():
    gt_class[gt_instance == instance] = category
  rgb = _fixture(prefix + '_pred_class.png', False)
  pred_class = np.full(rgb.shape[:2], 255, np.uint8)
  for colour, category in _CLASS_COLOURS.items():
    pred_class[(rgb == colour).all(-1)] = category
  assert (pred_class != 255).all()
  return (gt_class, gt_instance, pred_class,
          _fixture(prefix + '_pred_instance.png', True))


def _fixture_scenes():
  return [_fixture_scene('bird', _BIRD), _fixture_scene('cat', _CAT),
          _fixture_scene('team', _TEAM, 'team_gt_instance.png')]


@needs_testdata
def test_original_fixtures_pq_and_pc_on_team():
  team = _fixture_scenes()[2]
  pq = PanopticQuality(3, 0, 256, 256 * 256)
  pq.compare_and_accumulate(*team)
  np.testing.assert_array_almost_equal(pq.iou_per_class,
                                       [2.06104, 5.26827, 0.54069], decimal=4)
  np.testing.assert_array_equal(_pq_state(pq)[1:],
                                [[1, 7, 1], [0, 1, 0], [0, 0, 0]])
  np.testing.assert_array_almost_equal(pq.result_per_category(),
                                       [2.061038, 0.702436, 0.54069])
  assert pq.result() == pytest.approx(0.62156287, abs=1e-7)
  for normalize, weighted, area in (
      (False, [0.0, 39864.14634, 3136], [0.0, 56870, 5800]),
      (True, [0.0, 0.5002088756, 0.03935002196],
       [0.0, 0.7135955832, 0.07277746408])):
    pc = ParsingCovering(3, 0, 256, 256 * 256,
                         normalize_by_image_size=normalize)
    pc.compare_and_accumulate(*team)
    np.testing.assert_array_almost_equal(pc.weighted_iou_per_class, weighted,
                                         decimal=4)
    np.testing.assert_array_almost_equal(pc.gt_area_per_class, area,
                                         decimal=4)
    np.testing.assert_array_almost_equal(pc.result_per_category(),
                                         [0.0, 0.70097, 0.54069], decimal=4)
    assert pc.result() == pytest.approx(0.6208296732, abs=1e-7)


@needs_testdata
def test_original_fixtures_streaming_on_three_images():
  scenes = _fixture_scenes()
  pq = streaming_panoptic.StreamingPanopticQuality(7, 256, 0, 256 * 256)
  pc = streaming_panoptic.StreamingParsingCovering(
      7, 256, 0, 256 * 256, normalize_by_image_size=False)
  pc_normalized = streaming_panoptic.StreamingParsingCovering(
      7, 256, 0, 256 * 256, normalize_by_image_size=True)
  for scene in scenes:     # three sizes: one image per update
    for metric in (pq, pc, pc_normalized):
      metric.update(*scene)
  qualities = pq.result().numpy()
  np.testing.assert_array_almost_equal(
      qualities[0], [4.3107, 0.7024, 0.54069, 0.745353, 0.85768, 0.99107,
                     0.77410], decimal=4)
  np.testing.assert_array_almost_equal(
      qualities[1], [5.3883, 0.7526, 0.5407, 0.7454, 0.8577, 0.9911, 0.7741],
      decimal=4)
  np.testing.assert_array_almost_equal(
      qualities[2], [0.8, 0.9333, 1., 1., 1., 1., 1.], decimal=4)
  np.testing.assert_array_equal(qualities[3:], [[2, 7, 1, 1, 1, 1, 1],
                                                [0, 1, 0, 0, 0, 0, 0],
                                                [1, 0, 0, 0, 0, 0, 0]])
  coverings = [0.0, 0.7009696912, 0.5406896552, 0.7453531599, 0.8576779026,
               0.9910687881, 0.7741046032]
  np.testing.assert_array_almost_equal(pc.result().numpy()[0], coverings,
                                       decimal=4)
  np.testing.assert_array_almost_equal(
      pc.result().numpy()[1], [0.0, 39864.14634, 3136, 1177.657993,
                               2498.41573, 33366.31289, 26671], decimal=4)
  np.testing.assert_array_equal(pc.result().numpy()[2],
                                [0, 56870, 5800, 1580, 2913, 33667, 34454])
  np.testing.assert_array_almost_equal(pc_normalized.result().numpy()[0],
                                       coverings, decimal=4)
  np.testing.assert_array_almost_equal(
      pc_normalized.result().numpy()[1:],
      [[0.0, 0.5002088756, 0.03935002196, 0.03086105851, 0.06547211033,
        0.8743792686, 0.2549565051],
       [0.0, 0.7135955832, 0.07277746408, 0.04140461216, 0.07633647799,
        0.8822589099, 0.3293566581]], decimal=4)
