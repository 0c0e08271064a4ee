"""Panoptic Quality (PQ), as DeeperLab's evaluation code computes it.

Kirillov et al. 2019, "Panoptic Segmentation" (arXiv:1801.00868), Sec. 4:
a predicted and a groundtruth segment of the same category match when their
IoU exceeds 0.5 (such a match is unique); per category

  SQ = sum of matched IoUs / TP,    RQ = TP / (TP + FN / 2 + FP / 2),
  PQ = SQ * RQ,

and the reported PQ / SQ / RQ are means over categories. DeeperLab (Yang et
al. 2019, arXiv:1902.05093, Sec. 4) reports PQ next to Parsing Covering; this
module reproduces ``research/deeplab/evaluation/panoptic_quality.py``:

- the IoU union leaves out the predicted pixels on groundtruth void (the
  ignored category, instance 0), but not those on crowd regions (ignored
  category, instance > 0);
- an unmatched predicted segment is not a false positive when more than half
  of it (strictly) lies on void or crowd groundtruth;
- unmatched groundtruth segments of the ignored category are not false
  negatives;
- the means are over categories with TP + FN + FP > 0, the ignored category
  excluded; a category with only false positives counts with PQ = 0.

Segments of the ignored category are matched like any other, as in the
original: a predicted segment of the ignored category and groundtruth void
or crowd form a true positive when their IoU, with the same void-corrected
union, exceeds 0.5. Against void that union leaves the intersection out
twice, so the IoU can exceed 1 (the original's tests expect 2.06 on their
"team" image), and a prediction covering exactly the void region gives a
union of 0 and an infinite IoU, as there. Only the ignored category's entries
of the accumulators change; no mean uses them. ``skip_ignored_matches=True``
never matches the ignored category instead (its predictions then count as
its false positives unless mostly on void or crowd).
"""
import collections

import numpy as np

from deeplab_tf.evaluation import panoptic_base


def panoptic_statistics(pairs, max_instances_per_category, ignored_label,
                        skip_ignored_matches=False):
  """Matches the segments of one image and counts TP, FN, FP and IoU sums.

  Args:
    pairs: ``panoptic_base.SegmentPairs`` of the image.
    max_instances_per_category: the segment id layout (category = id // it).
    ignored_label: the void / crowd category.
    skip_ignored_matches: never match segments of the ignored category (the
      original matches them like the others).

  Returns:
    dict with, per segment or pair (not yet per category):
      'match': bool [K], pairs that are true positives;
      'iou': float64 [K], the void-corrected IoU of each pair (0 if not the
        same category; > 1 or inf possible for the ignored category);
      'gt_category', 'pred_category': int64 [G], [P] segment categories;
      'false_negative': bool [G], unmatched non-ignored groundtruth segments;
      'false_positive': bool [P], unmatched predicted segments not mostly on
        void or crowd.
  """
  gt_category = pairs.gt_ids // max_instances_per_category
  pred_category = pairs.pred_ids // max_instances_per_category
  num_pred = pairs.pred_ids.size
  pair_gt_category = gt_category[pairs.pair_gt]

  # Intersection of every predicted segment with groundtruth void (for the
  # union) and with void + crowd (for the false-positive rule).
  gt_is_ignored = gt_category == ignored_label
  gt_is_void = pairs.gt_ids == ignored_label * max_instances_per_category
  void_overlap = np.bincount(
      pairs.pair_pred, weights=np.where(gt_is_void[pairs.pair_gt],
                                        pairs.pair_areas, 0),
      minlength=num_pred)
  ignored_overlap = np.bincount(
      pairs.pair_pred, weights=np.where(gt_is_ignored[pairs.pair_gt],
                                        pairs.pair_areas, 0),
      minlength=num_pred)

  same_category = pair_gt_category == pred_category[pairs.pair_pred]
  if skip_ignored_matches:
    same_category &= pair_gt_category != ignored_label
  union = (pairs.gt_areas[pairs.pair_gt] + pairs.pred_areas[pairs.pair_pred] -
           pairs.pair_areas - void_overlap[pairs.pair_pred])
  # union >= gt area > 0 for a non-ignored groundtruth segment. Groundtruth
  # void against a prediction of the ignored category loses the intersection
  # twice: union = |void - pred| + |pred - void|, 0 when they coincide, where
  # the original's division gives inf (a match); so does this one, silently.
  with np.errstate(divide='ignore'):
    iou = np.where(same_category,
                   pairs.pair_areas / np.where(same_category, union, 1), 0.0)
  match = same_category & (iou > 0.5)

  gt_matched = np.zeros(pairs.gt_ids.size, bool)
  gt_matched[pairs.pair_gt[match]] = True
  pred_matched = np.zeros(num_pred, bool)
  pred_matched[pairs.pair_pred[match]] = True
  mostly_ignored = ignored_overlap / np.maximum(pairs.pred_areas, 1) > 0.5
  return {
      'match': match,
      'iou': iou,
      'gt_category': gt_category,
      'pred_category': pred_category,
      'false_negative': ~gt_matched & ~gt_is_ignored,
      'false_positive': ~pred_matched & ~mostly_ignored,
  }


class PanopticQuality(panoptic_base.SegmentationMetric):
  """Accumulates Panoptic Quality (Kirillov et al. 2019) over images.

  Accumulators (float64 [num_categories], the original's names):
  ``iou_per_class`` (sum of matched IoUs), ``tp_per_class``,
  ``fn_per_class``, ``fp_per_class``.
  """

  def __init__(self, num_categories, ignored_label, max_instances_per_category,
               offset, strict_instance_ids=False, skip_ignored_matches=False):
    """Stores the label layout and the matching rule.

    Args:
      num_categories: number of categories.
      ignored_label: category id of void / crowd pixels.
      max_instances_per_category: segment id = category * it + instance
        (larger instance ids are combined the same way, as the original).
      offset: bound on predicted segment ids (see ``SegmentationMetric``).
      strict_instance_ids: raise for instance ids >=
        max_instances_per_category (off by default; see
        ``SegmentationMetric``).
      skip_ignored_matches: never match segments of the ignored category
        (off by default: the original matches them, which only fills the
        ignored category's entries of the accumulators).
    """
    super().__init__(num_categories, ignored_label, max_instances_per_category,
                     offset, strict_instance_ids)
    self.skip_ignored_matches = bool(skip_ignored_matches)

  def compare_and_accumulate(self, groundtruth_category_array,
                             groundtruth_instance_array,
                             predicted_category_array,
                             predicted_instance_array):
    """Matches one image's segments and adds to the accumulators.

    Args:
      groundtruth_category_array: integer [H, W] groundtruth categories.
      groundtruth_instance_array: integer [H, W] groundtruth instance ids.
      predicted_category_array: integer [H, W] predicted categories.
      predicted_instance_array: integer [H, W] predicted instance ids.

    Returns:
      PQ over all images accumulated so far (float).
    """
    pairs = self._segment_pairs(groundtruth_category_array,
                                groundtruth_instance_array,
                                predicted_category_array,
                                predicted_instance_array)
    stats = panoptic_statistics(pairs, self.max_instances_per_category,
                                self.ignored_label, self.skip_ignored_matches)
    matched_category = stats['gt_category'][pairs.pair_gt[stats['match']]]
    self.iou_per_class += self._category_counts(
        matched_category, stats['iou'][stats['match']])
    self.tp_per_class += self._category_counts(matched_category)
    self.fn_per_class += self._category_counts(
        stats['gt_category'][stats['false_negative']])
    self.fp_per_class += self._category_counts(
        stats['pred_category'][stats['false_positive']])
    return self.result()

  def _valid_categories(self):
    """bool [num_categories]: TP + FN + FP > 0, the ignored category not."""
    valid = np.not_equal(
        self.tp_per_class + self.fn_per_class + self.fp_per_class, 0)
    return self._valid_ignoring_label(valid)

  def _factors(self):
    """(pq, sq, rq), each float64 [num_categories] (0 where undefined)."""
    sq = panoptic_base.realdiv_maybe_zero(self.iou_per_class,
                                          self.tp_per_class)
    rq = panoptic_base.realdiv_maybe_zero(
        self.tp_per_class,
        self.tp_per_class + 0.5 * self.fn_per_class + 0.5 * self.fp_per_class)
    return sq * rq, sq, rq

  def result_per_category(self):
    """float64 [num_categories]: PQ of each category (0 if it never occurs)."""
    return self._factors()[0]

  def result(self):
    """Mean PQ over the valid categories; 0 if there is none."""
    valid = self._valid_categories()
    if not np.any(valid):
      return 0.0
    return float(np.mean(self.result_per_category()[valid]))

  def detailed_results(self, is_thing=None):
    """PQ, SQ, RQ means and category counts, overall and per thing/stuff.

    Args:
      is_thing: None, or bool [num_categories], True for thing categories.

    Returns:
      {'All': {'pq', 'sq', 'rq', 'n'}} and, with ``is_thing``, 'Things' and
      'Stuff' entries; 'n' is the number of valid categories in the set, and
      a set without any has pq = sq = rq = n = 0.
    """
    pq, sq, rq = self._factors()
    results = collections.OrderedDict()
    for name, members in panoptic_base.category_sets(
        self._valid_categories(), is_thing).items():
      if np.any(members):
        results[name] = {'pq': float(np.mean(pq[members])),
                         'sq': float(np.mean(sq[members])),
                         'rq': float(np.mean(rq[members])),
                         'n': int(np.sum(members))}
      else:
        results[name] = {'pq': 0, 'sq': 0, 'rq': 0, 'n': 0}
    return results

  def format_detailed_results(self, is_thing=None, print_digits=3):
    """The table ``print_detailed_results`` prints (columns PQ, SQ, RQ, N).

    Args:
      is_thing: see ``detailed_results``.
      print_digits: values are printed as round(value, print_digits) * 100.

    Returns:
      The table as a string.
    """
    rows = [[name] + [panoptic_base.format_percent(values[key], print_digits)
                      for key in ('pq', 'sq', 'rq')] + [str(values['n'])]
            for name, values in self.detailed_results(is_thing).items()]
    return panoptic_base.format_table(['', 'PQ', 'SQ', 'RQ', 'N'], rows)

  def print_detailed_results(self, is_thing=None, print_digits=3):
    """Prints ``format_detailed_results`` (the original's table)."""
    print(self.format_detailed_results(is_thing, print_digits))

  def merge(self, other_instance):
    """Adds another PanopticQuality's accumulators to this one's.

    Raises:
      ValueError: if the layouts or the matching rules (skip_ignored_matches)
        differ.
    """
    self._check_mergeable(other_instance)
    if other_instance.skip_ignored_matches != self.skip_ignored_matches:
      raise ValueError('cannot merge a PanopticQuality with '
                       'skip_ignored_matches=%s into one with %s' % (
                           other_instance.skip_ignored_matches,
                           self.skip_ignored_matches))
    self.iou_per_class += other_instance.iou_per_class
    self.tp_per_class += other_instance.tp_per_class
    self.fn_per_class += other_instance.fn_per_class
    self.fp_per_class += other_instance.fp_per_class

  def reset(self):
    """Zeros the four accumulators."""
    self.iou_per_class = np.zeros(self.num_categories, np.float64)
    self.tp_per_class = np.zeros(self.num_categories, np.float64)
    self.fn_per_class = np.zeros(self.num_categories, np.float64)
    self.fp_per_class = np.zeros(self.num_categories, np.float64)
