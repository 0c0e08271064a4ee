"""Streaming Panoptic Quality and Parsing Covering in TensorFlow ops.

The original (``research/deeplab/evaluation/streaming_metrics.py``) wraps the
numpy metrics in ``tf.py_func`` and sums their accumulators in TF1 local
variables; ``streaming_panoptic_quality`` returns ``(qualities, update_ops)``
where ``qualities`` is a float64 ``[6, num_classes]`` tensor with rows

  0: PQ, 1: SQ, 2: RQ, 3: total TP, 4: total FN, 5: total FP,

and ``streaming_parsing_covering`` a float64 ``[3, num_classes]`` tensor with
rows

  0: covering per class, 1: sum of weighted IoUs, 2: sum of groundtruth areas.

Here the per-image statistics are computed with TensorFlow ops (no
``py_function``: they run inside ``tf.function``, on any device) and summed
in ``tf.Variable`` accumulators:

  metric = StreamingPanopticQuality(num_classes=19, max_instances_per_category=
                                    256, ignored_label=255, offset=256 * 256)
  for batch in dataset:
    metric.update(gt_categories, gt_instances, pred_categories,
                  pred_instances)                  # the original's update_ops
  qualities = metric.result()                      # the original's tensor
  metric.to_metric().print_detailed_results(is_thing)

The semantics are those of ``panoptic_quality.PanopticQuality`` and
``parsing_covering.ParsingCovering`` (tested equal), the original's included:
segments of the ignored category are matched (PQ), and instance ids >=
max_instances_per_category are combined as ``category * max_instances + id``
(a warning is printed once per metric; ``strict_instance_ids=True`` makes it
an error). A batch ``[B, H, W]`` counts as B images (segment ids are made
distinct per image).
"""
import sys

import tensorflow as tf

from deeplab_tf.evaluation import panoptic_quality
from deeplab_tf.evaluation import parsing_covering

_EPSILON = 1e-10


def realdiv_maybe_zero(x, y):
  """``x / y``, and 0 where ``y < 1e-10`` (the original's TF helper)."""
  small = tf.less(y, _EPSILON)
  # The inner where keeps the division itself finite (no inf / NaN rows that
  # would poison gradients or debugging checks).
  return tf.where(small, tf.zeros_like(x),
                  x / tf.where(small, tf.ones_like(y), y))


def _as_batch(array, name):
  """An integer label tensor as int64 [B, H, W] (a [H, W] one gets B = 1).

  Args:
    array: tensor or array of any integer dtype, rank 2 or 3.
    name: argument name for the error message.

  Returns:
    int64 tensor of rank 3.

  Raises:
    ValueError: for another rank or a non-integer dtype.
  """
  array = tf.convert_to_tensor(array)
  if not array.dtype.is_integer:
    raise ValueError('%s must be an integer tensor; received dtype %s'
                     % (name, array.dtype.name))
  if array.shape.rank == 2:
    array = array[tf.newaxis]
  elif array.shape.rank != 3:
    raise ValueError('%s must be [H, W] or [B, H, W]; received shape %s'
                     % (name, array.shape))
  # Widened before any arithmetic: uint8 * 256 must not wrap.
  return tf.cast(array, tf.int64)


def _segment_keys(categories, instances, num_classes,
                  max_instances_per_category, ignored_label, offset, name,
                  strict_instance_ids=False):
  """Per-pixel keys ``image * stride + category * max_instances + instance``.

  The stride keeps the images of a batch apart: it exceeds every valid
  segment id (whose category, ``id // max_instances``, is below num_classes
  or the ignored label).

  Args:
    categories: int64 [B, H, W].
    instances: int64 [B, H, W].
    num_classes: segment categories must be below it, or the ignored label.
    max_instances_per_category: the multiplier. Larger instance ids are
      combined the same way, as the original (into later categories' ids).
    ignored_label: the void / crowd category.
    offset: None, or a bound on the segment ids (the predictions: the
      original decodes ``pair % offset`` as the predicted id).
    name: 'groundtruth' or 'predicted', for the messages.
    strict_instance_ids: fail for instance ids >= max_instances_per_category.

  Returns:
    (int64 [B * H * W] keys, the stride).
  """
  # Scalar reductions only: the checks cost a few passes over the pixels,
  # not a gather of the offending ones.
  checks = [
      tf.debugging.Assert(
          tf.reduce_min(categories) >= 0,
          ['%s categories must be >= 0; received' % name,
           tf.reduce_min(categories)]),
      tf.debugging.Assert(
          tf.reduce_min(instances) >= 0,
          ['%s instance ids must be >= 0; received' % name,
           tf.reduce_min(instances)]),
  ]
  if strict_instance_ids:
    checks.append(tf.debugging.Assert(
        tf.reduce_max(instances) < max_instances_per_category,
        ['%s instance ids must be < max_instances_per_category=%d '
         '(strict_instance_ids); received' % (name,
                                              max_instances_per_category),
         tf.reduce_max(instances)]))
  with tf.control_dependencies(checks):
    segments = categories * max_instances_per_category + instances
  # The category of the combined id is what the original indexes with.
  segment_category = segments // max_instances_per_category
  invalid = tf.logical_and(segment_category >= num_classes,
                           tf.not_equal(segment_category, ignored_label))
  worst_category = tf.reduce_max(tf.where(invalid, segment_category,
                                          tf.zeros_like(segment_category)))
  bound_checks = [tf.debugging.Assert(
      tf.logical_not(tf.reduce_any(invalid)),
      ['%s categories (of category * %d + instance) must be in [0, %d) or '
       'the ignored label %d; received' % (
           name, max_instances_per_category, num_classes, ignored_label),
       worst_category, 'largest instance id', tf.reduce_max(instances)])]
  if offset is not None:
    bound_checks.append(tf.debugging.Assert(
        tf.reduce_max(segments) < offset,
        ['%s segment ids (category * %d + instance) must be < offset=%d; '
         'received' % (name, max_instances_per_category, offset),
         tf.reduce_max(segments)]))
  stride = max(num_classes, ignored_label + 1) * max_instances_per_category
  with tf.control_dependencies(bound_checks):
    image = tf.range(tf.shape(segments, out_type=tf.int64)[0])
    return tf.reshape(image[:, tf.newaxis, tf.newaxis] * stride + segments,
                      [-1]), stride


def _segment_pairs(gt_categories, gt_instances, pred_categories,
                   pred_instances, num_classes, max_instances_per_category,
                   ignored_label, offset, strict_instance_ids=False):
  """The overlap table of a batch (see ``panoptic_base.SegmentPairs``).

  Returns:
    dict of tensors: 'gt_category' [G], 'gt_instance' [G], 'gt_area' [G],
    'pred_category' [P], 'pred_area' [P], 'pair_gt' [K], 'pair_pred' [K],
    'pair_area' [K]; areas float64, G / P count each image's segments apart.
  """
  shape = tf.shape(gt_categories)
  checks = [tf.debugging.assert_equal(
      tf.shape(other), shape, message='groundtruth categories, instances and '
      'predicted categories, instances must have one shape')
            for other in (gt_instances, pred_categories, pred_instances)]
  with tf.control_dependencies(checks):
    gt_categories = tf.identity(gt_categories)
  gt_keys, stride = _segment_keys(gt_categories, gt_instances, num_classes,
                                  max_instances_per_category, ignored_label,
                                  None, 'groundtruth', strict_instance_ids)
  pred_keys, _ = _segment_keys(pred_categories, pred_instances, num_classes,
                               max_instances_per_category, ignored_label,
                               offset, 'predicted', strict_instance_ids)
  gt_ids, gt_index, gt_area = tf.unique_with_counts(gt_keys, tf.int64)
  pred_ids, pred_index, pred_area = tf.unique_with_counts(pred_keys, tf.int64)
  num_pred = tf.maximum(tf.size(pred_ids, out_type=tf.int64), 1)
  pair_ids, _, pair_area = tf.unique_with_counts(gt_index * num_pred +
                                                 pred_index, tf.int64)
  gt_segment = gt_ids % stride
  return {
      'gt_category': gt_segment // max_instances_per_category,
      'gt_instance': gt_segment % max_instances_per_category,
      'gt_area': tf.cast(gt_area, tf.float64),
      'pred_category': (pred_ids % stride) // max_instances_per_category,
      'pred_area': tf.cast(pred_area, tf.float64),
      'pair_gt': pair_ids // num_pred,
      'pair_pred': pair_ids % num_pred,
      'pair_area': tf.cast(pair_area, tf.float64),
  }


def _per_category(categories, weights, num_classes):
  """Sums float64 ``weights`` per category; out-of-range ones are dropped.

  Only the ignored label can be out of range (checked before); as in the
  numpy metrics its entries are dropped.
  """
  bucket = tf.where(categories < num_classes, categories,
                    tf.constant(num_classes, tf.int64))
  return tf.math.unsorted_segment_sum(weights, bucket, num_classes + 1)[:-1]


def panoptic_quality_statistics(gt_categories, gt_instances, pred_categories,
                                pred_instances, num_classes,
                                max_instances_per_category, ignored_label,
                                offset, strict_instance_ids=False,
                                skip_ignored_matches=False):
  """PQ accumulators of a batch of images (Kirillov et al. 2019, Sec. 4).

  The same matching as ``panoptic_quality.PanopticQuality``: same category
  (the ignored one included, as the original), IoU > 0.5 with the predicted
  pixels on groundtruth void left out of the union; unmatched predictions
  more than half on void / crowd are not false positives; ignored
  groundtruth is never a false negative.

  Args:
    gt_categories: integer [H, W] or [B, H, W] groundtruth categories.
    gt_instances: integer groundtruth instance ids, same shape.
    pred_categories: integer predicted categories, same shape.
    pred_instances: integer predicted instance ids, same shape.
    num_classes: number of categories (Python int).
    max_instances_per_category: segment id = category * it + instance
      (Python int).
    ignored_label: void / crowd category (Python int).
    offset: predicted segment ids must be smaller (Python int).
    strict_instance_ids: fail for instance ids >= max_instances_per_category
      (by default they are combined as the original combines them).
    skip_ignored_matches: never match the ignored category (by default it
      is matched, as the original).

  Returns:
    (iou_sum, tp, fn, fp): float64 [num_classes] tensors, the batch's
    additions to the original's iou_per_class, tp/fn/fp_per_class.
  """
  gt_categories = _as_batch(gt_categories, 'gt_categories')
  t = _segment_pairs(gt_categories, _as_batch(gt_instances, 'gt_instances'),
                     _as_batch(pred_categories, 'pred_categories'),
                     _as_batch(pred_instances, 'pred_instances'), num_classes,
                     max_instances_per_category, ignored_label, offset,
                     strict_instance_ids)
  num_gt = tf.size(t['gt_category'], out_type=tf.int64)
  num_pred = tf.size(t['pred_category'], out_type=tf.int64)
  gt_ignored = tf.equal(t['gt_category'], ignored_label)
  gt_void = tf.logical_and(gt_ignored, tf.equal(t['gt_instance'], 0))
  pair_gt_category = tf.gather(t['gt_category'], t['pair_gt'])
  zeros = tf.zeros_like(t['pair_area'])
  void_overlap = tf.math.unsorted_segment_sum(
      tf.where(tf.gather(gt_void, t['pair_gt']), t['pair_area'], zeros),
      t['pair_pred'], num_pred)
  ignored_overlap = tf.math.unsorted_segment_sum(
      tf.where(tf.gather(gt_ignored, t['pair_gt']), t['pair_area'], zeros),
      t['pair_pred'], num_pred)

  same_category = tf.equal(pair_gt_category,
                           tf.gather(t['pred_category'], t['pair_pred']))
  if skip_ignored_matches:
    same_category = tf.logical_and(
        same_category, tf.not_equal(pair_gt_category, ignored_label))
  union = (tf.gather(t['gt_area'], t['pair_gt']) +
           tf.gather(t['pred_area'], t['pair_pred']) - t['pair_area'] -
           tf.gather(void_overlap, t['pair_pred']))
  # A plain division as the original's: union is 0 only for groundtruth void
  # and a prediction of the ignored category covering exactly it, an
  # infinite IoU (a match) there and in the numpy metric.
  iou = tf.where(same_category,
                 t['pair_area'] / tf.where(same_category, union,
                                           tf.ones_like(union)), zeros)
  match = tf.logical_and(same_category, iou > 0.5)
  matched = tf.cast(match, tf.int32)
  gt_matched = tf.math.unsorted_segment_max(matched, t['pair_gt'], num_gt) > 0
  pred_matched = tf.math.unsorted_segment_max(matched, t['pair_pred'],
                                              num_pred) > 0

  false_negative = tf.logical_not(tf.logical_or(gt_matched, gt_ignored))
  mostly_ignored = ignored_overlap / t['pred_area'] > 0.5
  false_positive = tf.logical_not(tf.logical_or(pred_matched, mostly_ignored))
  as_float = lambda mask: tf.cast(mask, tf.float64)
  return (_per_category(pair_gt_category, iou * as_float(match), num_classes),
          _per_category(pair_gt_category, as_float(match), num_classes),
          _per_category(t['gt_category'], as_float(false_negative),
                        num_classes),
          _per_category(t['pred_category'], as_float(false_positive),
                        num_classes))


def parsing_covering_statistics(gt_categories, gt_instances, pred_categories,
                                pred_instances, num_classes,
                                max_instances_per_category, ignored_label,
                                offset, normalize_by_image_size=True,
                                strict_instance_ids=False):
  """PC accumulators of a batch of images (DeeperLab, Sec. 4).

  The same computation as ``parsing_covering.ParsingCovering``: each
  non-ignored groundtruth region weighs its area times its best IoU with a
  predicted region of its category, predicted areas counted without the
  pixels on void / crowd groundtruth.

  Args:
    gt_categories: integer [H, W] or [B, H, W] groundtruth categories.
    gt_instances: integer groundtruth instance ids, same shape.
    pred_categories: integer predicted categories, same shape.
    pred_instances: integer predicted instance ids, same shape.
    num_classes: number of categories (Python int).
    max_instances_per_category: segment id = category * it + instance
      (Python int).
    ignored_label: void / crowd category (Python int).
    offset: predicted segment ids must be smaller (Python int).
    normalize_by_image_size: divide areas by H * W (each image weighs 1).
    strict_instance_ids: fail for instance ids >= max_instances_per_category
      (by default they are combined as the original combines them).

  Returns:
    (weighted_iou, gt_area): float64 [num_classes] tensors, the batch's
    additions to the original's weighted_iou_per_class, gt_area_per_class.
  """
  gt_categories = _as_batch(gt_categories, 'gt_categories')
  t = _segment_pairs(gt_categories, _as_batch(gt_instances, 'gt_instances'),
                     _as_batch(pred_categories, 'pred_categories'),
                     _as_batch(pred_instances, 'pred_instances'), num_classes,
                     max_instances_per_category, ignored_label, offset,
                     strict_instance_ids)
  num_gt = tf.size(t['gt_category'], out_type=tf.int64)
  num_pred = tf.size(t['pred_category'], out_type=tf.int64)
  counted = tf.not_equal(t['gt_category'], ignored_label)
  pair_counted = tf.gather(counted, t['pair_gt'])
  zeros = tf.zeros_like(t['pair_area'])
  pred_area = tf.math.unsorted_segment_sum(
      tf.where(pair_counted, t['pair_area'], zeros), t['pair_pred'], num_pred)
  pair_gt_category = tf.gather(t['gt_category'], t['pair_gt'])
  same_category = tf.logical_and(
      pair_counted,
      tf.equal(pair_gt_category, tf.gather(t['pred_category'],
                                           t['pair_pred'])))
  union = (tf.gather(t['gt_area'], t['pair_gt']) +
           tf.gather(pred_area, t['pair_pred']) - t['pair_area'])
  iou = tf.where(same_category, realdiv_maybe_zero(t['pair_area'], union),
                 zeros)
  # Every groundtruth segment has at least one pair, and IoUs are >= 0.
  max_iou = tf.math.unsorted_segment_max(iou, t['pair_gt'], num_gt)
  gt_area = t['gt_area']
  if normalize_by_image_size:
    shape = tf.shape(gt_categories, out_type=tf.int64)
    gt_area = gt_area / tf.cast(shape[1] * shape[2], tf.float64)
  gt_area = tf.where(counted, gt_area, tf.zeros_like(gt_area))
  return (_per_category(t['gt_category'], max_iou * gt_area, num_classes),
          _per_category(t['gt_category'], gt_area, num_classes))


def _warn_once_on_large_instance_ids(warned, max_instances_per_category,
                                     *instance_maps):
  """Prints one warning per metric when an instance id reaches the bound.

  The original combines such ids into later categories' segment ids without
  a word; the numpy metrics say so with an ``InstanceIdWarning``, this graph
  version prints the same advice once (``warned`` remembers it).

  Args:
    warned: bool tf.Variable of the metric.
    max_instances_per_category: the bound (Python int).
    *instance_maps: integer tensors of any int dtype.
  """
  # Reduced in the input dtype, then widened (an empty map gives the dtype's
  # minimum, no warning).
  largest = tf.reduce_max(tf.stack([
      tf.cast(tf.reduce_max(tf.convert_to_tensor(m)), tf.int64)
      for m in instance_maps]))

  def warn():
    tf.print('WARNING: instance ids >= max_instances_per_category=%d (the '
             'largest is ' % max_instances_per_category, largest,
             ') are combined as the original combines them, category * %d + '
             'instance: they fall among the segment ids of later categories. '
             'Raise max_instances_per_category, or pass '
             'strict_instance_ids=True to make this an error.'
             % max_instances_per_category, sep='', output_stream=sys.stderr)
    warned.assign(True)
    return tf.constant(True)

  tf.cond(tf.logical_and(largest >= max_instances_per_category,
                         tf.logical_not(warned)),
          warn, lambda: tf.constant(False))


class StreamingPanopticQuality(tf.Module):
  """PQ accumulated over batches in float64 variables (TF ops only).

  The arguments follow the original ``streaming_panoptic_quality``;
  ``update`` plays its ``update_ops`` and ``result`` its ``qualities``.
  """

  def __init__(self, num_classes, max_instances_per_category, ignored_label,
               offset, name=None, strict_instance_ids=False,
               skip_ignored_matches=False):
    """Creates the zeroed accumulators.

    Args:
      num_classes: number of categories.
      max_instances_per_category: segment id = category * it + instance
        (larger instance ids are combined the same way, as the original).
      ignored_label: void / crowd category.
      offset: predicted segment ids (category * max_instances + instance)
        must be smaller.
      name: optional module name.
      strict_instance_ids: fail for instance ids >= max_instances_per_category
        (off by default).
      skip_ignored_matches: never match the ignored category (off by
        default; see ``panoptic_quality``).
    """
    super().__init__(name=name or 'streaming_panoptic_quality')
    # The numpy metric checks the layout and serves to_metric().
    self._layout = panoptic_quality.PanopticQuality(
        num_classes, ignored_label, max_instances_per_category, offset,
        strict_instance_ids=strict_instance_ids,
        skip_ignored_matches=skip_ignored_matches)
    with self.name_scope:
      self.totals = tf.Variable(tf.zeros([4, num_classes], tf.float64),
                                trainable=False, name='iou_tp_fn_fp_totals')
      self._warned = tf.Variable(False, trainable=False,
                                 name='warned_large_instance_ids')

  @tf.function(reduce_retracing=True)
  def update(self, gt_categories, gt_instances, pred_categories,
             pred_instances):
    """Adds a batch ([H, W] or [B, H, W] integer maps of any int dtype).

    Returns:
      The updated float64 [4, num_classes] totals (iou, tp, fn, fp).
    """
    layout = self._layout
    if not layout.strict_instance_ids:
      _warn_once_on_large_instance_ids(
          self._warned, layout.max_instances_per_category, gt_instances,
          pred_instances)
    stats = panoptic_quality_statistics(
        gt_categories, gt_instances, pred_categories, pred_instances,
        layout.num_categories, layout.max_instances_per_category,
        layout.ignored_label, layout.offset, layout.strict_instance_ids,
        layout.skip_ignored_matches)
    return self.totals.assign_add(tf.stack(stats))

  def result(self):
    """float64 [6, num_classes]: rows PQ, SQ, RQ, TP, FN, FP (original)."""
    iou, tp, fn, fp = tf.unstack(self.totals)
    sq = realdiv_maybe_zero(iou, tp)
    rq = realdiv_maybe_zero(tp, tp + 0.5 * fn + 0.5 * fp)
    return tf.stack([sq * rq, sq, rq, tp, fn, fp])

  def reset(self):
    """Zeros the totals."""
    self.totals.assign(tf.zeros_like(self.totals))

  def to_metric(self):
    """A ``PanopticQuality`` holding these totals (for detailed results)."""
    layout = self._layout
    metric = panoptic_quality.PanopticQuality(
        layout.num_categories, layout.ignored_label,
        layout.max_instances_per_category, layout.offset,
        strict_instance_ids=layout.strict_instance_ids,
        skip_ignored_matches=layout.skip_ignored_matches)
    totals = self.totals.numpy()
    (metric.iou_per_class, metric.tp_per_class, metric.fn_per_class,
     metric.fp_per_class) = (row.copy() for row in totals)
    return metric


class StreamingParsingCovering(tf.Module):
  """PC accumulated over batches in float64 variables (TF ops only).

  The arguments follow the original ``streaming_parsing_covering``;
  ``update`` plays its ``update_ops`` and ``result`` its ``coverings``.
  """

  def __init__(self, num_classes, max_instances_per_category, ignored_label,
               offset, normalize_by_image_size=True, name=None,
               strict_instance_ids=False):
    """Creates the zeroed accumulators.

    Args:
      num_classes: number of categories.
      max_instances_per_category: segment id = category * it + instance
        (larger instance ids are combined the same way, as the original).
      ignored_label: void / crowd category.
      offset: predicted segment ids must be smaller.
      normalize_by_image_size: divide each image's areas by H * W.
      name: optional module name.
      strict_instance_ids: fail for instance ids >= max_instances_per_category
        (off by default).
    """
    super().__init__(name=name or 'streaming_parsing_covering')
    self._layout = parsing_covering.ParsingCovering(
        num_classes, ignored_label, max_instances_per_category, offset,
        normalize_by_image_size, strict_instance_ids=strict_instance_ids)
    with self.name_scope:
      self.totals = tf.Variable(tf.zeros([2, num_classes], tf.float64),
                                trainable=False,
                                name='weighted_iou_gt_area_totals')
      self._warned = tf.Variable(False, trainable=False,
                                 name='warned_large_instance_ids')

  @tf.function(reduce_retracing=True)
  def update(self, gt_categories, gt_instances, pred_categories,
             pred_instances):
    """Adds a batch ([H, W] or [B, H, W] integer maps of any int dtype).

    Returns:
      The updated float64 [2, num_classes] totals (weighted IoU, area).
    """
    layout = self._layout
    if not layout.strict_instance_ids:
      _warn_once_on_large_instance_ids(
          self._warned, layout.max_instances_per_category, gt_instances,
          pred_instances)
    stats = parsing_covering_statistics(
        gt_categories, gt_instances, pred_categories, pred_instances,
        layout.num_categories, layout.max_instances_per_category,
        layout.ignored_label, layout.offset, layout.normalize_by_image_size,
        layout.strict_instance_ids)
    return self.totals.assign_add(tf.stack(stats))

  def result(self):
    """float64 [3, num_classes]: rows covering, weighted IoU sum, area sum."""
    weighted_iou, gt_area = tf.unstack(self.totals)
    return tf.stack([realdiv_maybe_zero(weighted_iou, gt_area), weighted_iou,
                     gt_area])

  def reset(self):
    """Zeros the totals."""
    self.totals.assign(tf.zeros_like(self.totals))

  def to_metric(self):
    """A ``ParsingCovering`` holding these totals (for detailed results)."""
    layout = self._layout
    metric = parsing_covering.ParsingCovering(
        layout.num_categories, layout.ignored_label,
        layout.max_instances_per_category, layout.offset,
        layout.normalize_by_image_size,
        strict_instance_ids=layout.strict_instance_ids)
    weighted_iou, gt_area = self.totals.numpy()
    metric.weighted_iou_per_class = weighted_iou.copy()
    metric.gt_area_per_class = gt_area.copy()
    return metric
