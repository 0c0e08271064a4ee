r"""Parsing Covering (PC), DeeperLab's region-based panoptic metric.

Yang et al. 2019, "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093),
Sec. 4, extends the segmentation covering of Arbelaez et al. 2011 (Eq. 8) to
categories: for category i with groundtruth regions S_i and predicted regions
S'_i,

  Cov_i = 1 / N_i * sum_{R in S_i} |R| * max_{R' in S'_i} IoU(R, R'),
  N_i = sum_{R in S_i} |R|,          PC = mean_i Cov_i.

Unlike PQ there is no IoU threshold, and large regions weigh more. This
module reproduces ``research/deeplab/evaluation/parsing_covering.py``:

- groundtruth regions of the ignored category (void and crowd) are skipped;
- the predicted area in the IoU counts only the predicted pixels on
  non-ignored groundtruth (void and crowd pixels are cut out of every
  prediction);
- with ``normalize_by_image_size`` each image's areas are divided by its
  pixel count before being summed over the dataset (every image weighs the
  same, whatever its size);
- the mean is over categories with groundtruth area > 0, the ignored one
  excluded; predictions of a category absent from the groundtruth do not
  lower PC (they only shrink other regions' IoU when they overlap them).
"""
import collections

import numpy as np

from deeplab_tf.evaluation import panoptic_base


def covering_statistics(pairs, max_instances_per_category, ignored_label):
  """Best IoU of every groundtruth segment of one image.

  Args:
    pairs: ``panoptic_base.SegmentPairs`` of the image.
    max_instances_per_category: the segment id layout (category = id // it).
    ignored_label: the void / crowd category.

  Returns:
    (gt_category int64 [G], counted bool [G] (not of the ignored category),
     max_iou float64 [G]: the largest IoU with a predicted segment of the
     same category, 0 if none overlaps).
  """
  gt_category = pairs.gt_ids // max_instances_per_category
  pred_category = pairs.pred_ids // max_instances_per_category
  counted = gt_category != ignored_label
  pair_counted = counted[pairs.pair_gt]
  # Predicted areas without the pixels on void / crowd groundtruth.
  pred_area = np.bincount(pairs.pair_pred,
                          weights=np.where(pair_counted, pairs.pair_areas, 0),
                          minlength=pairs.pred_ids.size)
  same_category = pair_counted & (gt_category[pairs.pair_gt] ==
                                  pred_category[pairs.pair_pred])
  union = (pairs.gt_areas[pairs.pair_gt] + pred_area[pairs.pair_pred] -
           pairs.pair_areas)
  iou = np.where(same_category,
                 pairs.pair_areas / np.where(same_category, union, 1), 0.0)
  max_iou = np.zeros(pairs.gt_ids.size, np.float64)
  np.maximum.at(max_iou, pairs.pair_gt, iou)
  return gt_category, counted, max_iou


class ParsingCovering(panoptic_base.SegmentationMetric):
  """Accumulates Parsing Covering (DeeperLab, Sec. 4) over images.

  Accumulators (float64 [num_categories], the original's names):
  ``weighted_iou_per_class`` (sum of |R| * best IoU) and
  ``gt_area_per_class`` (sum of |R|), areas divided by the image size when
  ``normalize_by_image_size``.
  """

  def __init__(self, num_categories, ignored_label, max_instances_per_category,
               offset, normalize_by_image_size=True, strict_instance_ids=False):
    """Stores the label layout and the area normalisation.

    Args:
      num_categories: number of categories.
      ignored_label: category id of void / crowd pixels.
      max_instances_per_category: segment id = category * it + instance
        (larger instance ids are combined the same way, as the original).
      offset: bound on predicted segment ids (see ``SegmentationMetric``).
      normalize_by_image_size: divide each image's areas by its number of
        pixels before accumulating (the original's default, True).
      strict_instance_ids: raise for instance ids >=
        max_instances_per_category (off by default; see
        ``SegmentationMetric``).
    """
    super().__init__(num_categories, ignored_label, max_instances_per_category,
                     offset, strict_instance_ids)
    self.normalize_by_image_size = bool(normalize_by_image_size)

  def compare_and_accumulate(self, groundtruth_category_array,
                             groundtruth_instance_array,
                             predicted_category_array,
                             predicted_instance_array):
    """Adds one image's weighted best IoUs and groundtruth areas.

    Args:
      groundtruth_category_array: integer [H, W] groundtruth categories.
      groundtruth_instance_array: integer [H, W] groundtruth instance ids.
      predicted_category_array: integer [H, W] predicted categories.
      predicted_instance_array: integer [H, W] predicted instance ids.

    Returns:
      PC over all images accumulated so far (float).
    """
    pairs = self._segment_pairs(groundtruth_category_array,
                                groundtruth_instance_array,
                                predicted_category_array,
                                predicted_instance_array)
    gt_category, counted, max_iou = covering_statistics(
        pairs, self.max_instances_per_category, self.ignored_label)
    gt_area = pairs.gt_areas.astype(np.float64)
    if self.normalize_by_image_size:
      gt_area /= np.size(groundtruth_category_array)
    self.weighted_iou_per_class += self._category_counts(
        gt_category[counted], (max_iou * gt_area)[counted])
    self.gt_area_per_class += self._category_counts(gt_category[counted],
                                                    gt_area[counted])
    return self.result()

  def _valid_categories(self):
    """bool [num_categories]: groundtruth area > 0, the ignored one not."""
    return self._valid_ignoring_label(np.not_equal(self.gt_area_per_class, 0))

  def result_per_category(self):
    """float64 [num_categories]: covering of each category (0 if no area)."""
    return panoptic_base.realdiv_maybe_zero(self.weighted_iou_per_class,
                                            self.gt_area_per_class)

  def result(self):
    """Mean covering over the valid categories; 0 if there is none."""
    valid = self._valid_categories()
    if not np.any(valid):
      return 0.0
    return float(np.mean(self.result_per_category()[valid]))

  def detailed_results(self, is_thing=None):
    """PC means and category counts, overall and per thing/stuff.

    Args:
      is_thing: None, or bool [num_categories], True for thing categories.

    Returns:
      {'All': {'pc', 'n'}} and, with ``is_thing``, 'Things' and 'Stuff';
      a set without valid categories has pc = n = 0.
    """
    covering = self.result_per_category()
    results = collections.OrderedDict()
    for name, members in panoptic_base.category_sets(
        self._valid_categories(), is_thing).items():
      if np.any(members):
        results[name] = {'pc': float(np.mean(covering[members])),
                         'n': int(np.sum(members))}
      else:
        results[name] = {'pc': 0, 'n': 0}
    return results

  def format_detailed_results(self, is_thing=None, print_digits=3):
    """The table ``print_detailed_results`` prints (columns PC, N).

    Args:
      is_thing: see ``detailed_results``.
      print_digits: values are printed as round(value, print_digits) * 100.

    Returns:
      The table as a string.
    """
    rows = [[name, panoptic_base.format_percent(values['pc'], print_digits),
             str(values['n'])]
            for name, values in self.detailed_results(is_thing).items()]
    return panoptic_base.format_table(['', 'PC', 'N'], rows)

  def print_detailed_results(self, is_thing=None, print_digits=3):
    """Prints ``format_detailed_results`` (the original's table)."""
    print(self.format_detailed_results(is_thing, print_digits))

  def merge(self, other_instance):
    """Adds another ParsingCovering's accumulators to this one's.

    Raises:
      ValueError: if the layouts or the area normalisations differ (the
        sums would mix fractions of images with pixel counts).
    """
    self._check_mergeable(other_instance)
    if other_instance.normalize_by_image_size != self.normalize_by_image_size:
      raise ValueError('cannot merge a ParsingCovering with '
                       'normalize_by_image_size=%s into one with %s' % (
                           other_instance.normalize_by_image_size,
                           self.normalize_by_image_size))
    self.weighted_iou_per_class += other_instance.weighted_iou_per_class
    self.gt_area_per_class += other_instance.gt_area_per_class

  def reset(self):
    """Zeros the two accumulators."""
    self.weighted_iou_per_class = np.zeros(self.num_categories, np.float64)
    self.gt_area_per_class = np.zeros(self.num_categories, np.float64)
