"""Evaluation of a DeeperLab parser: PQ, Parsing Covering and semantic mIoU.

DeeperLab (Yang et al. 2019, Sec. 4) reports Panoptic Quality (Kirillov et
al. 2019) and its own Parsing Covering on Mapillary Vistas val; we also
report the semantic head's mIoU. One pass over the split:

1. the network runs on a batch (a tf.function, once per input shape);
2. every head output is resized to the batch's image size
   (``deeperlab_inference.upsample_outputs``, align-corners bilinear);
3. each image is parsed on the host (keypoint detection, grouping, fusion:
   ``deeperlab_inference.parse``) into (category, instance) maps;
4. the maps go to the original-API accumulators ``PanopticQuality`` and
   ``ParsingCovering`` (numpy, exact), the semantic argmax to a confusion
   matrix.

Pixels of the ignore label in the groundtruth are void for PQ/PC (as the
original metrics treat ``ignored_label``) and are not scored for mIoU; the
padding of a fixed eval crop carries the ignore label, so it is not scored
either.
"""
import dataclasses
import time
from typing import Callable, Dict, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_tf.evaluation import deeperlab_inference as inference_lib
from deeplab_tf.evaluation import metrics as metrics_lib
from deeplab_tf.evaluation.panoptic_quality import PanopticQuality
from deeplab_tf.evaluation.parsing_covering import ParsingCovering
from deeplab_tf.core import progress


@dataclasses.dataclass(frozen=True)
class PanopticEvalSettings:
  """What the metrics need to know about the dataset, and the parser's settings.

  ``max_instances_per_category`` and ``offset`` keep the original metrics'
  meaning (segment id = category * max_instances_per_category + instance;
  offset > every segment id); the defaults are the original eval's
  (research/deeplab/evaluation: 256 instances, offset 256 * 256).
  """
  num_classes: int
  thing_classes: Tuple[int, ...]
  ignore_label: int = 255
  max_instances_per_category: int = 256
  offset: int = 256 * 256
  # Parsing Covering divides every image's areas by its size (the original
  # metric's default), so each image weighs the same.
  normalize_by_image_size: bool = True
  inference: Optional[inference_lib.InferenceSettings] = None

  def __post_init__(self):
    object.__setattr__(self, 'thing_classes',
                       tuple(int(c) for c in self.thing_classes))
    if self.num_classes < 1:
      raise ValueError('num_classes must be >= 1; got %r.' % (self.num_classes,))
    bad = [c for c in self.thing_classes if not 0 <= c < self.num_classes]
    if bad:
      raise ValueError('thing_classes must be class ids in [0, %d); got %r.'
                       % (self.num_classes, bad))
    largest = self.num_classes * self.max_instances_per_category
    if self.offset <= largest:
      raise ValueError(
          'offset must exceed num_classes * max_instances_per_category = %d '
          '(the largest segment id); got %d.' % (largest, self.offset))
    if self.inference is None:
      object.__setattr__(self, 'inference', inference_lib.InferenceSettings(
          thing_classes=self.thing_classes))
    elif tuple(self.inference.thing_classes) != self.thing_classes:
      raise ValueError('inference.thing_classes %r differ from thing_classes '
                       '%r.' % (self.inference.thing_classes,
                                self.thing_classes))

  def is_thing(self):
    """bool [num_classes], the ``is_thing`` of the metrics' detailed results."""
    mask = np.zeros(self.num_classes, bool)
    mask[list(self.thing_classes)] = True
    return mask


@dataclasses.dataclass
class PanopticEvalResult:
  """The split's metrics (fractions, not percent)."""
  num_images: int
  seconds: float
  panoptic_quality: Dict[str, Dict[str, float]]  # PQ/SQ/RQ/n per All/Things/Stuff
  parsing_covering: Dict[str, Dict[str, float]]  # PC/n per All/Things/Stuff
  pq_per_class: list
  pc_per_class: list
  semantic: Dict[str, object]  # miou, pixel_accuracy, iou_per_class

  @property
  def pq(self):
    return self.panoptic_quality['All']['pq']

  @property
  def pc(self):
    return self.parsing_covering['All']['pc']

  def to_dict(self):
    return dataclasses.asdict(self)

  def summary(self):
    parts = ['PQ %.4f' % self.pq]
    for group in ('Things', 'Stuff'):
      if group in self.panoptic_quality:
        parts.append('PQ_%s %.4f' % (group.lower(),
                                     self.panoptic_quality[group]['pq']))
    parts.append('PC %.4f' % self.pc)
    parts.append('mIoU %.4f' % self.semantic['miou'])
    return '%s on %d images (%.1f s)' % (', '.join(parts), self.num_images,
                                         self.seconds)


def compact_instance_ids(category, instance):
  """Each category's instance ids renumbered 1..n in order (0 stays 0).

  The parser numbers instances image-wide (1..J); the metrics read segment
  ``category * max_instances_per_category + instance`` and need every
  instance id below ``max_instances_per_category``. Renumbering within each
  category keeps every segment (distinct pairs stay distinct), so only a
  category with that many predicted instances in one image is refused.
  """
  category = np.asarray(category, np.int64)
  instance = np.asarray(instance, np.int64)
  out = np.zeros(instance.shape, np.int64)
  things = instance > 0
  if not things.any():
    return out
  pairs, inverse = np.unique(
      np.stack([category[things], instance[things]], axis=1), axis=0,
      return_inverse=True)
  first_of_category = np.searchsorted(pairs[:, 0], pairs[:, 0], side='left')
  rank = np.arange(len(pairs)) - first_of_category + 1
  out[things] = rank[inverse.reshape(-1)]
  return out


def default_id_layout(num_classes, label_divisor, max_instances=None):
  """(max_instances_per_category, offset): the original's 256 and 256 * 256,
  raised where the records' instance ids (below ``label_divisor``) or the
  class count need more (Cityscapes / Mapillary: 1000 instances). A given
  ``max_instances`` is kept and only the offset derived."""
  max_instances = int(max_instances or max(256, int(label_divisor)))
  offset = 256 * 256
  while offset <= num_classes * max_instances:
    offset *= 2
  return max_instances, offset


class DeeperLabEvaluator:
  """Runs a DeeperLab model over batches and accumulates PQ, PC and mIoU.

  Args:
    model: a callable images float32 [B, H, W, 3] -> dict of head outputs
      (``build_deeperlab``'s model); called in inference mode.
    settings: PanopticEvalSettings.
  """

  def __init__(self, model: Callable, settings: PanopticEvalSettings):
    self.settings = settings
    self._predict = tf.function(
        lambda images: model(images, training=False), autograph=False,
        reduce_retracing=True)
    self.reset()

  def reset(self):
    s = self.settings
    self.pq = PanopticQuality(s.num_classes, s.ignore_label,
                              s.max_instances_per_category, s.offset)
    self.pc = ParsingCovering(s.num_classes, s.ignore_label,
                              s.max_instances_per_category, s.offset,
                              s.normalize_by_image_size)
    self.confusion = metrics_lib.StreamingConfusionMatrix(s.num_classes,
                                                          s.ignore_label)
    self.num_images = 0

  def parse_batch(self, images):
    """[B, H, W, 3] images -> (category, instance) int64 [B, H, W] numpy maps."""
    outputs = self._predict(tf.convert_to_tensor(images, tf.float32))
    outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    resized = inference_lib.upsample_outputs(outputs, tf.shape(images)[1:3])
    categories, instances = [], []
    for index in range(int(tf.shape(images)[0])):
      category, instance = inference_lib.parse(
          {name: value[index] for name, value in resized.items()},
          self.settings.inference)
      categories.append(category)
      instances.append(instance)
    return np.stack(categories), np.stack(instances)

  def update(self, gt_category, gt_instance, pred_category, pred_instance):
    """Adds one batch of groundtruth / predicted maps ([B, H, W])."""
    gt_category = np.asarray(gt_category)
    gt_instance = np.asarray(gt_instance)
    if gt_category.shape != np.shape(pred_category):
      raise ValueError('groundtruth %s and prediction %s maps differ in shape.'
                       % (gt_category.shape, np.shape(pred_category)))
    for index in range(gt_category.shape[0]):
      pred = compact_instance_ids(pred_category[index], pred_instance[index])
      self.pq.compare_and_accumulate(gt_category[index], gt_instance[index],
                                     pred_category[index], pred)
      self.pc.compare_and_accumulate(gt_category[index], gt_instance[index],
                                     pred_category[index], pred)
    self.confusion.update(gt_category, pred_category)
    self.num_images += gt_category.shape[0]

  def evaluate(self, batches, max_images=None, on_image=None,
               log_every_secs=30.0, total_images=None) -> PanopticEvalResult:
    """One pass over ``batches`` of {'image', 'category', 'instance'}.

    Args:
      batches: iterable of dicts: 'image' float [B, H, W, 3], 'category' and
        'instance' int [B, H, W] (the panoptic pipeline's eval batches).
      max_images: stop after this many images (None: all).
      on_image: optional ``fn(index, batch, position, category, instance)``
        called for every image (e.g. to write visualisations).
      log_every_secs: progress line (images/s, ETA) interval.
      total_images: images expected, for the ETA (None: no ETA).

    Returns:
      PanopticEvalResult.
    """
    self.reset()
    start = last_log = time.time()
    for batch in batches:
      category, instance = self.parse_batch(batch['image'])
      gt_category = np.asarray(batch['category'])
      gt_instance = np.asarray(batch['instance'])
      if gt_category.ndim == 4:
        gt_category, gt_instance = gt_category[..., 0], gt_instance[..., 0]
      keep = category.shape[0]
      if max_images is not None:
        keep = min(keep, max_images - self.num_images)
      first = self.num_images
      self.update(gt_category[:keep], gt_instance[:keep], category[:keep],
                  instance[:keep])
      if on_image is not None:
        for position in range(keep):
          on_image(first + position, batch, position, category[position],
                   instance[position])
      now = time.time()
      if now - last_log >= log_every_secs:
        logging.info('panoptic eval: %s', progress.progress_line(
            self.num_images, total_images, now - start))
        last_log = now
      if max_images is not None and self.num_images >= max_images:
        break
    return self.result(time.time() - start)

  def result(self, seconds=0.0) -> PanopticEvalResult:
    is_thing = self.settings.is_thing()
    semantic = self.confusion.results()
    return PanopticEvalResult(
        num_images=self.num_images, seconds=float(seconds),
        panoptic_quality=_plain(self.pq.detailed_results(is_thing)),
        parsing_covering=_plain(self.pc.detailed_results(is_thing)),
        pq_per_class=[float(v) for v in self.pq.result_per_category()],
        pc_per_class=[float(v) for v in self.pc.result_per_category()],
        semantic={k: semantic[k] for k in ('miou', 'pixel_accuracy',
                                           'iou_per_class')})


def _plain(results):
  """OrderedDict of dicts -> plain dict (JSON friendly)."""
  return {group: dict(values) for group, values in results.items()}
