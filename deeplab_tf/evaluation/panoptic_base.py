"""Shared machinery of the panoptic metrics (PQ and Parsing Covering).

The original (``research/deeplab/evaluation/base_metric.py``) defines an
abstract ``SegmentationMetric``: a per-category accumulator fed one image at a
time by ``compare_and_accumulate`` and summarised by ``result``,
``result_per_category`` and ``detailed_results``; ``merge`` adds another
accumulator's state (parallel evaluation) and ``reset`` empties it. This
module keeps that interface and adds what both metrics need:

- input checks and widening: every integer dtype (uint8 ... int64) is widened
  to int64 before any arithmetic, so ``category * max_instances + instance``
  can neither wrap (the original computes it in uint32) nor depend on dtype;
- the (groundtruth segment, predicted segment) overlap table of one image.
  The original pairs segments with ``gt_id * offset + pred_id`` and one
  ``np.unique`` over all pixels; we compact the segment ids first (two
  ``bincount`` passes, no sort of the pixels) and pair the compact indices,
  which gives the same table exactly. ``offset`` keeps its meaning as the
  bound on predicted segment ids (the original decodes a pair as
  ``pair // offset, pair % offset``): a predicted id at or above it, which
  the original would silently pair with the wrong segment, raises an error;
- the plain-text table printed by ``print_detailed_results`` (the original
  uses prettytable, which this project does not depend on).

Segment ids and the meaning of the ignored label follow the original:
``segment_id = category * max_instances_per_category + instance``; pixels of
the ignored category with instance 0 are "void", with instance > 0 they are
crowd regions (COCO ``iscrowd``). As there, an instance id at or above
``max_instances_per_category`` is not refused: the sum puts it among the ids
of a later category (the original's tests rely on it, e.g. instance 4 of
category 0 with two instances per category is category 2, instance 0). A
warning (``InstanceIdWarning``) says so; ``strict_instance_ids=True`` makes it
an error instead.
"""
import abc
import collections
import warnings

import numpy as np

# Denominators smaller than this give 0 instead of a division (the original's
# realdiv_maybe_zero), e.g. SQ of a category without true positives.
_EPSILON = 1e-10

# Dense bincount is used to compact ids up to this bound (or 4x the number of
# pixels, if larger); above it, ids are compacted with a sort (np.unique).
_DENSE_ID_LIMIT = 1 << 22


class InstanceIdWarning(UserWarning):
  """An instance id >= max_instances_per_category was combined as the original
  combines it (into the ids of a later category)."""


def combine_labels(categories, instances, max_instances_per_category):
  """``category * max_instances_per_category + instance`` in int64.

  The original's ``_naively_combine_labels``, widened: every integer dtype is
  converted to int64 before the arithmetic (the original computes in uint32,
  and uint8 250 * 256 must not wrap either).

  Args:
    categories: non-negative integer array (checked by ``check_labels``).
    instances: non-negative integer array of the same shape.
    max_instances_per_category: the multiplier.

  Returns:
    int64 array of segment ids.
  """
  segment_ids = categories.astype(np.int64)
  segment_ids *= max_instances_per_category
  if instances.dtype == np.uint64:
    # uint64 + int64 would be computed in float64 by numpy.
    instances = instances.astype(np.int64)
  segment_ids += instances
  return segment_ids


SegmentPairs = collections.namedtuple('SegmentPairs', [
    'gt_ids', 'gt_areas', 'pred_ids', 'pred_areas', 'pair_gt', 'pair_pred',
    'pair_areas'])
SegmentPairs.__doc__ = """The overlap table of one image's two segmentations.

Fields:
  gt_ids: int64 [G], the sorted distinct groundtruth segment ids.
  gt_areas: int64 [G], pixels of each groundtruth segment.
  pred_ids: int64 [P], the sorted distinct predicted segment ids.
  pred_areas: int64 [P], pixels of each predicted segment.
  pair_gt: int64 [K], index into gt_ids of each overlapping pair, the pairs
    sorted by (groundtruth id, predicted id) as the original's np.unique.
  pair_pred: int64 [K], index into pred_ids of each pair.
  pair_areas: int64 [K] (> 0), pixels of each pair's intersection.
"""


def realdiv_maybe_zero(x, y):
  """Element-wise ``x / y``, 0 where ``|y| < 1e-10`` (the original's helper).

  Args:
    x: numerator array.
    y: denominator array, broadcastable with ``x``.

  Returns:
    float64 array: ``x / y``, and 0 where the denominator is (nearly) zero,
    without a division-by-zero warning.
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  small = np.less(np.abs(y), _EPSILON)
  return np.where(small, np.zeros_like(x), x / np.where(small, 1.0, y))


def check_labels(array, name):
  """Checks that an array holds non-negative integers that fit in int64.

  Args:
    array: array-like of any integer dtype (uint8, uint16, int32, int64, ...).
    name: the argument's name, for the error messages.

  Returns:
    The array as a numpy array, not converted.

  Raises:
    TypeError: if the dtype is not an integer dtype (floats would be cast
      silently by the original).
    ValueError: if a value is negative or does not fit in int64 (the original
      casts to uint32, so a -1 would become 4294967295).
  """
  array = np.asarray(array)
  if not np.issubdtype(array.dtype, np.integer):
    raise TypeError('%s must be an integer array (uint8, uint16, int32, '
                    'int64, ...); received dtype %s' % (name, array.dtype))
  if array.size:
    if np.issubdtype(array.dtype, np.signedinteger):
      lowest = array.min()
      if lowest < 0:
        raise ValueError('%s must be non-negative; received a minimum of %d'
                         % (name, lowest))
    elif array.dtype.itemsize >= 8:
      highest = array.max()
      if highest > np.iinfo(np.int64).max:
        raise ValueError('%s holds %d, more than int64 can hold'
                         % (name, highest))
  return array


def _compact_ids(ids):
  """Distinct values of a non-negative int64 array, their counts and indices.

  Equivalent to ``np.unique(ids, return_inverse=True, return_counts=True)``,
  but without sorting the pixels when the id range is moderate.

  Args:
    ids: non-negative int64 array (flattened by the caller).

  Returns:
    (unique_ids int64 [N] sorted, inverse (int32 or int64) like ids, counts
    int64 [N]).
  """
  if ids.size == 0:
    empty = np.zeros([0], np.int64)
    return empty, np.zeros(ids.shape, np.int64), empty
  highest = int(ids.max())
  if highest < max(_DENSE_ID_LIMIT, 4 * ids.size):
    counts = np.bincount(ids, minlength=highest + 1)
    unique_ids = np.flatnonzero(counts).astype(np.int64)
    # int32 indices halve the memory traffic of the gather; callers widen
    # them before multiplying.
    lookup = np.zeros(highest + 1, np.int32)
    lookup[unique_ids] = np.arange(unique_ids.size, dtype=np.int32)
    return unique_ids, lookup[ids], counts[unique_ids].astype(np.int64)
  unique_ids, inverse, counts = np.unique(ids, return_inverse=True,
                                          return_counts=True)
  return (unique_ids.astype(np.int64), inverse.reshape(-1).astype(np.int64),
          counts.astype(np.int64))


def pair_segments(gt_segment_ids, pred_segment_ids):
  """Builds the overlap table of two segment-id maps of one image.

  The same (groundtruth, prediction) intersections as the original's
  ``np.unique(gt_id * offset + pred_id, return_counts=True)``, in the same
  order (sorted by groundtruth id, then predicted id).

  Args:
    gt_segment_ids: non-negative int64 array of groundtruth segment ids.
    pred_segment_ids: non-negative int64 array of the same shape.

  Returns:
    A ``SegmentPairs``.
  """
  gt_ids, gt_index, gt_areas = _compact_ids(gt_segment_ids.reshape(-1))
  pred_ids, pred_index, pred_areas = _compact_ids(pred_segment_ids.reshape(-1))
  num_pred = max(pred_ids.size, 1)
  pair_index = gt_index.astype(np.int64)
  pair_index *= num_pred
  pair_index += pred_index
  pair_ids, _, pair_areas = _compact_ids(pair_index)
  return SegmentPairs(gt_ids, gt_areas, pred_ids, pred_areas,
                      pair_ids // num_pred, pair_ids % num_pred, pair_areas)


def category_sets(valid_categories, is_thing):
  """The category subsets reported by ``detailed_results``.

  Args:
    valid_categories: bool [num_categories], categories entering the means.
    is_thing: None, or bool-like [num_categories]: True for "thing"
      categories (countable objects), False for "stuff" (Kirillov et al.
      2019, Sec. 3).

  Returns:
    OrderedDict name -> bool mask: 'All', then 'Things' and 'Stuff' if
    ``is_thing`` is given (each restricted to the valid categories).

  Raises:
    ValueError: if ``is_thing`` does not have one entry per category.
  """
  sets = collections.OrderedDict()
  sets['All'] = valid_categories
  if is_thing is not None:
    is_thing = np.asarray(is_thing).astype(bool)
    if is_thing.shape != valid_categories.shape:
      raise ValueError('is_thing must have one entry per category, shape %s; '
                       'received shape %s' % (valid_categories.shape,
                                              is_thing.shape))
    sets['Things'] = np.logical_and(valid_categories, is_thing)
    sets['Stuff'] = np.logical_and(valid_categories, np.logical_not(is_thing))
  return sets


def format_percent(value, print_digits):
  """A metric in [0, 1] as the original prints it: round(value, digits) * 100.

  Args:
    value: the metric value.
    print_digits: digits kept by the rounding (3 -> "62.2").

  Returns:
    The string, with ``print_digits - 2`` decimals so that float noise of
    the multiplication (62.199999) does not show.
  """
  return '%.*f' % (max(print_digits - 2, 0), round(value, print_digits) * 100)


def format_table(header, rows):
  """A plain-text table in the look of the original's prettytable output.

  Args:
    header: list of column titles; the first column is left-aligned, the
      others right-aligned.
    rows: list of lists of strings, one entry per column.

  Returns:
    The table as one string (no trailing newline).
  """
  widths = [max(len(str(cell)) for cell in column)
            for column in zip(header, *rows)]
  rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

  def line(cells):
    parts = [' %s ' % (str(c).ljust(w) if i == 0 else str(c).rjust(w))
             for i, (c, w) in enumerate(zip(cells, widths))]
    return '|' + '|'.join(parts) + '|'

  return '\n'.join([rule, line(header), rule] + [line(r) for r in rows] +
                   [rule])


class SegmentationMetric(abc.ABC):
  """Per-category accumulator of a segmentation metric over a dataset.

  As the original base class: ``compare_and_accumulate`` compares one image's
  prediction with its groundtruth and adds to per-category sums; the metric
  is computed from the sums over the whole dataset (not averaged over
  images). Typical use::

    metric = PanopticQuality(num_categories, ignored_label, 256, 256 * 256)
    for gt_cat, gt_inst, pred_cat, pred_inst in dataset:
      metric.compare_and_accumulate(gt_cat, gt_inst, pred_cat, pred_inst)
    metric.print_detailed_results(is_thing)
  """

  def __init__(self, num_categories, ignored_label, max_instances_per_category,
               offset, strict_instance_ids=False):
    """Stores the label layout and resets the accumulators.

    Args:
      num_categories: number of categories; accumulators have this length.
      ignored_label: category id of void / crowd pixels (COCO: 0,
        Cityscapes: 255). It may lie outside ``[0, num_categories)``.
      max_instances_per_category: a segment id is ``category *
        max_instances_per_category + instance``. Larger instance ids are
        combined the same way (the original's behaviour: they fall among the
        ids of later categories), with an ``InstanceIdWarning``.
      offset: bound on predicted segment ids (the original pairs segments
        as ``gt_id * offset + pred_id``); every predicted segment id must be
        below it.
      strict_instance_ids: raise a ValueError for an instance id >=
        max_instances_per_category instead of combining it as the original
        (off by default).

    Raises:
      ValueError: if a count is not positive or ignored_label is negative.
    """
    for name, value in (('num_categories', num_categories),
                        ('max_instances_per_category',
                         max_instances_per_category), ('offset', offset)):
      if int(value) != value or value < 1:
        raise ValueError('%s must be a positive integer; received %r'
                         % (name, value))
    if int(ignored_label) != ignored_label or ignored_label < 0:
      raise ValueError('ignored_label must be a non-negative integer; '
                       'received %r' % (ignored_label,))
    self.num_categories = int(num_categories)
    self.ignored_label = int(ignored_label)
    self.max_instances_per_category = int(max_instances_per_category)
    self.offset = int(offset)
    self.strict_instance_ids = bool(strict_instance_ids)
    self.reset()

  def _naively_combine_labels(self, category_array, instance_array):
    """``category * max_instances_per_category + instance`` in int64.

    Args:
      category_array: integer array of per-pixel categories (any int dtype).
      instance_array: integer array of per-pixel instance ids, same shape.

    Returns:
      int64 array of segment ids.

    Raises:
      ValueError: for a negative or non-integer label, or, with
        ``strict_instance_ids``, an instance id not below
        max_instances_per_category.
    """
    categories = check_labels(category_array, 'category array')
    instances = check_labels(instance_array, 'instance array')
    if instances.size:
      highest = int(instances.max())
      if highest >= self.max_instances_per_category:
        if self.strict_instance_ids:
          raise ValueError(
              'instance ids must be < max_instances_per_category=%d '
              '(strict_instance_ids); received an instance id %d (it would '
              'fall among the segment ids of a later category)'
              % (self.max_instances_per_category, highest))
        # The text does not hold the id, so that Python's warning filter
        # shows it once per metric layout rather than once per image.
        warnings.warn(
            'instance ids >= max_instances_per_category=%d are combined as '
            'the original combines them, category * %d + instance: they fall '
            'among the segment ids of later categories. Raise '
            'max_instances_per_category, or pass strict_instance_ids=True to '
            'make this an error.' % (self.max_instances_per_category,
                                     self.max_instances_per_category),
            InstanceIdWarning, stacklevel=4)
    return combine_labels(categories, instances,
                          self.max_instances_per_category)

  def _check_segment_ids(self, segment_ids, name, below_offset):
    """Checks the distinct segment ids of one map against the label layout.

    Args:
      segment_ids: int64 array of distinct segment ids, sorted.
      name: 'groundtruth' or 'predicted', for the message.
      below_offset: whether ids must be below ``offset``. True for the
        predictions: the original decodes ``pair % offset`` as the predicted
        id, so a larger one would silently be mixed with another segment.
        Groundtruth ids may exceed it there (e.g. the void 255 * 256 with
        offset 20 * 256 for Cityscapes), so they may here.

    Raises:
      ValueError: for a predicted id at or above ``offset``, or a category
        outside ``[0, num_categories)`` that is not the ignored label (the
        original fails with an IndexError).
    """
    if segment_ids.size == 0:
      return
    if below_offset and segment_ids[-1] >= self.offset:
      raise ValueError(
          '%s segment id %d (category %d, instance %d) is not below '
          'offset=%d; offset must exceed every predicted category * '
          'max_instances_per_category + instance, e.g. (num_categories + 1) '
          '* max_instances_per_category' % (
              name, segment_ids[-1],
              segment_ids[-1] // self.max_instances_per_category,
              segment_ids[-1] % self.max_instances_per_category, self.offset))
    categories = segment_ids // self.max_instances_per_category
    bad = categories[(categories >= self.num_categories) &
                      (categories != self.ignored_label)]
    if bad.size:
      raise ValueError('%s categories must be in [0, %d) or the '
                       'ignored_label %d; received %s' % (
                           name, self.num_categories, self.ignored_label,
                           sorted(set(bad.tolist()))))

  def _segment_pairs(self, groundtruth_category_array,
                     groundtruth_instance_array, predicted_category_array,
                     predicted_instance_array):
    """Checks one image's four maps and returns their overlap table.

    Args:
      groundtruth_category_array: integer [H, W] groundtruth categories.
      groundtruth_instance_array: integer [H, W] groundtruth instance ids.
      predicted_category_array: integer [H, W] predicted categories.
      predicted_instance_array: integer [H, W] predicted instance ids.

    Returns:
      A ``SegmentPairs`` of the image.

    Raises:
      ValueError: if the shapes differ or a label breaks the layout.
      TypeError: for a non-integer array.
    """
    shapes = [np.shape(a) for a in (groundtruth_category_array,
                                    groundtruth_instance_array,
                                    predicted_category_array,
                                    predicted_instance_array)]
    if len(set(shapes)) != 1:
      raise ValueError('groundtruth category/instance and predicted category/'
                       'instance arrays must have one shape; received %s'
                       % shapes)
    gt_ids = self._naively_combine_labels(groundtruth_category_array,
                                          groundtruth_instance_array)
    pred_ids = self._naively_combine_labels(predicted_category_array,
                                            predicted_instance_array)
    pairs = pair_segments(gt_ids, pred_ids)
    try:
      self._check_segment_ids(pairs.gt_ids, 'groundtruth', below_offset=False)
      self._check_segment_ids(pairs.pred_ids, 'predicted', below_offset=True)
    except ValueError as e:
      # A category out of range may come from large instance ids; say so.
      largest = max(int(np.max(a, initial=0)) for a in (
          groundtruth_instance_array, predicted_instance_array))
      if largest < self.max_instances_per_category:
        raise
      raise ValueError(
          '%s (instance ids up to %d are not below max_instances_per_category'
          '=%d: as in the original, they were combined into the ids of later '
          'categories)' % (e, largest, self.max_instances_per_category)
      ) from None
    return pairs

  def _category_counts(self, categories, weights=None):
    """Sums ``weights`` (or counts) per category, dropping out-of-range ones.

    Only the ignored label can lie outside ``[0, num_categories)`` (checked
    before); its entries are dropped, where the original would fail with an
    IndexError. The ignored category never enters a mean anyway.

    Args:
      categories: int64 [N] category of each item.
      weights: None, or float [N] values to sum.

    Returns:
      float64 [num_categories].
    """
    keep = categories < self.num_categories
    if weights is not None:
      weights = np.asarray(weights, np.float64)[keep]
    return np.bincount(categories[keep], weights=weights,
                       minlength=self.num_categories).astype(np.float64)

  def _valid_ignoring_label(self, valid_categories):
    """Removes the ignored category (if in range) from a validity mask."""
    if 0 <= self.ignored_label < self.num_categories:
      valid_categories[self.ignored_label] = False
    return valid_categories

  @abc.abstractmethod
  def compare_and_accumulate(self, groundtruth_category_array,
                             groundtruth_instance_array,
                             predicted_category_array,
                             predicted_instance_array):
    """Compares one image's prediction with its groundtruth and accumulates.

    Instance ids need not be unique across categories. Instance 0 of the
    ignored category is void; its other instances are crowd regions.

    Args:
      groundtruth_category_array: integer [H, W] groundtruth categories.
      groundtruth_instance_array: integer [H, W] groundtruth instance ids.
      predicted_category_array: integer [H, W] predicted categories.
      predicted_instance_array: integer [H, W] predicted instance ids.

    Returns:
      The metric over all images accumulated so far (float).
    """

  @abc.abstractmethod
  def result(self):
    """The metric over all comparisons so far (float)."""

  @abc.abstractmethod
  def result_per_category(self):
    """float64 [num_categories]: the metric of each category alone."""

  @abc.abstractmethod
  def detailed_results(self, is_thing=None):
    """Dictionary of results for 'All' (and 'Things'/'Stuff') categories."""

  @abc.abstractmethod
  def print_detailed_results(self, is_thing=None, print_digits=3):
    """Prints ``detailed_results`` as a table."""

  @abc.abstractmethod
  def merge(self, other_instance):
    """Adds another accumulator's state (as if its images were fed here)."""

  @abc.abstractmethod
  def reset(self):
    """Zeros the accumulators (called by ``__init__``)."""

  def _check_mergeable(self, other_instance):
    """Raises ValueError unless ``other_instance`` accumulates the same way."""
    if type(other_instance) is not type(self):
      raise ValueError('can only merge a %s; received a %s' % (
          type(self).__name__, type(other_instance).__name__))
    mine = (self.num_categories, self.ignored_label,
            self.max_instances_per_category)
    theirs = (other_instance.num_categories, other_instance.ignored_label,
              other_instance.max_instances_per_category)
    if mine != theirs:
      raise ValueError('cannot merge accumulators of different layouts: '
                       '(num_categories, ignored_label, '
                       'max_instances_per_category) %s here, %s received'
                       % (mine, theirs))
