"""Whole-split evaluation of a checkpoint: the original eval.py, as a library.

The original pads every image of the split to ``eval_crop_size`` with the
mean pixel (labels with the ignore label), runs ``predict_labels`` (one
scale) or ``predict_labels_multi_scale`` (``eval_scales`` and the left-right
flip, probabilities averaged), and accumulates one confusion matrix over the
whole split (``tf.metrics.mean_iou`` with ignore pixels weighted 0). We do
the same through ``build_predictor`` (the path the conformance cases check)
and add:

- ``crop_size=None``: whole images of any size, each batch padded to the
  smallest ``k * output_stride + 1`` holding its images (the original fails on
  an image larger than the crop). The image-pooling branch then averages
  over the whole padded map, as the original does at a crop the image fills.
- results as an ``EvalResult`` (confusion matrix, per-class IoU, pixel
  accuracy) that ``evaluation.report`` writes as JSON, CSV and TensorBoard.
"""
import dataclasses
import time
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.evaluation.metrics import StreamingConfusionMatrix
from deeplab_tf.models import build_predictor
from deeplab_tf.models import quantize
from deeplab_tf.models.deeplab import crf_probabilities
from deeplab_tf.models.deeplab import original_inference_path


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """The original eval.py settings (flag names without the ``eval_`` prefix)."""
  split: str = 'val'
  batch_size: int = 1
  # None: whole images padded to k * output_stride + 1 (see module doc).
  crop_size: Optional[Tuple[int, int]] = (513, 513)
  eval_scales: Tuple[float, ...] = (1.0,)
  add_flipped_images: bool = False
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  # A deeplab_tf.crf.CRFParams: refine the probabilities with the dense CRF
  # (DeepLab v1/v2) before the argmax; None: no CRF.
  crf: Optional[object] = None
  # Evaluate the quantisation-aware graph (the original's create_eval_graph
  # for --quantize_delay_step >= 0; models/quantize.py): single scale only.
  quantize: bool = False

  def __post_init__(self):
    if self.crop_size is not None:
      object.__setattr__(self, 'crop_size', tuple(self.crop_size))
    scales = tuple(float(s) for s in self.eval_scales)
    if not scales or min(scales) <= 0:
      raise ValueError('eval_scales must be positive numbers; got %r.'
                       % (self.eval_scales,))
    object.__setattr__(self, 'eval_scales', scales)
    if not isinstance(self.batch_size, int) or self.batch_size < 1:
      raise ValueError('eval batch_size must be a positive int; got %r.'
                       % (self.batch_size,))
    if self.quantize and scales != (1.0,):
      # The original eval.py's words.
      raise quantize.QuantizationError(
          'Quantize mode is not supported with multi-scale test '
          '(eval_scales %s).' % list(scales))

  @property
  def tag(self):
    """The original summary tag: ``miou_<scale>..[_flipped]``."""
    tag = 'miou' + ''.join('_' + str(s) for s in self.eval_scales)
    tag += '_flipped' if self.add_flipped_images else ''
    return tag + ('_crf' if self.crf is not None else '')


@dataclasses.dataclass
class EvalResult:
  """Everything one evaluation measured."""
  confusion_matrix: np.ndarray      # [C, C] int64, rows = ground truth
  class_names: Sequence[str]
  checkpoint: str
  step: Optional[int]
  split: str
  num_images: int
  seconds: float
  tag: str = 'miou_1.0'

  def __post_init__(self):
    self._metric = StreamingConfusionMatrix(len(self.class_names))
    self._metric.matrix = np.asarray(self.confusion_matrix, np.int64)

  @property
  def miou(self):
    return self._metric.mean_iou()

  @property
  def pixel_accuracy(self):
    return self._metric.pixel_accuracy()

  def iou_per_class(self):
    """IoU per class (NaN when the class is neither in labels nor predictions)."""
    return self._metric.iou_per_class()

  def original_class_iou(self):
    """The original per-class summary: tp / (tp + fp + fn), NaN without ground truth."""
    m = self._metric.matrix
    tp = np.diag(m).astype(np.float64)
    gt = m.sum(1).astype(np.float64)
    pred = m.sum(0).astype(np.float64)
    with np.errstate(invalid='ignore', divide='ignore'):
      return np.where(gt > 0, tp / (gt + pred - tp), np.nan)

  def to_dict(self):
    m = self._metric.matrix
    iou = self.iou_per_class()
    classes = []
    for c, name in enumerate(self.class_names):
      classes.append({
          'id': c, 'name': name,
          'iou': None if np.isnan(iou[c]) else float(iou[c]),
          'true_positives': int(m[c, c]),
          'ground_truth_pixels': int(m[c].sum()),
          'predicted_pixels': int(m[:, c].sum())})
    return {'checkpoint': self.checkpoint, 'step': self.step,
            'split': self.split, 'tag': self.tag,
            'miou': self.miou, 'pixel_accuracy': self.pixel_accuracy,
            'num_images': self.num_images, 'num_pixels': int(m.sum()),
            'seconds': round(self.seconds, 3),
            'images_per_sec': (self.num_images / self.seconds
                               if self.seconds > 0 else None),
            'classes': classes,
            'confusion_matrix': m.tolist()}


def predict_labels_fn(predictor, crf_params=None):
  """images -> labels: the predictor's argmax, or the argmax after the dense CRF."""
  if crf_params is None:
    return lambda images: predictor(images, training=False)['semantic']
  from deeplab_tf import crf  # pylint: disable=g-import-not-at-top

  def predict(images):
    probabilities = crf_probabilities(predictor(images, training=False))
    refined = crf.refine_batch(images, probabilities, crf_params)
    return tf.argmax(refined, axis=-1)
  return predict


def make_predict_fn(predictor, crf_params=None):
  """images [B, H, W, 3] float32 -> int labels [B, H, W] (a tf.function).

  With ``crf_params`` the probabilities go through the dense CRF first.
  """
  return tf.function(predict_labels_fn(predictor, crf_params),
                     reduce_retracing=True)


def count_records(record_dir, split):
  """Number of records of a split (reads the shards once; no decoding)."""
  files = pipeline.list_shards(record_dir, split)
  return int(tf.data.TFRecordDataset(files).reduce(
      tf.constant(0, tf.int64), lambda n, _: n + 1))


class Evaluator:
  """One predictor and one input pipeline, evaluated on checkpoint after checkpoint.

  Args:
    options: ModelOptions of the model (its crop_size is replaced by
      ``settings.crop_size``).
    settings: EvalSettings.
    descriptor: dataset descriptor, registered name or JSON path.
    record_dir: folder of the ``<split>-*`` shards.
  """

  def __init__(self, options, settings: EvalSettings, descriptor, record_dir):
    self.settings = settings
    self.descriptor = datasets_info.get_descriptor(descriptor)
    self.descriptor.check_split(settings.split)
    if not self.descriptor.has_labels(settings.split):
      raise pipeline.InputError(
          'Split %r of dataset %r has no labels: nothing to evaluate (use '
          'vis for unlabeled splits).' % (settings.split,
                                          self.descriptor.name))
    if options.num_classes != self.descriptor.num_classes:
      raise ValueError('The model has %d classes but dataset %r has %d '
                       '(--num_classes or the dataset is wrong).'
                       % (options.num_classes, self.descriptor.name,
                          self.descriptor.num_classes))
    self.record_dir = record_dir
    self.options = dataclasses.replace(options, crop_size=settings.crop_size)
    self.inputs = pipeline.InputSettings(
        crop_size=settings.crop_size, model_variant=options.model_variant,
        min_resize_value=settings.min_resize_value,
        max_resize_value=settings.max_resize_value,
        resize_factor=settings.resize_factor,
        pad_multiple=options.output_stride)
    # Fails early (list_shards' clear message) on missing / empty shards.
    self.num_images = count_records(record_dir, settings.split)
    # As the original eval.py: scales (1.0,) take the single-scale path,
    # which ignores add_flipped_images (the metric tag still says _flipped).
    eval_scales, flip = original_inference_path(settings.eval_scales,
                                                settings.add_flipped_images)
    if settings.quantize:
      self.predictor = quantize.build_quantized_predictor(self.options)
    else:
      self.predictor = build_predictor(self.options, eval_scales=eval_scales,
                                       add_flipped_images=flip)
    signature = [tf.TensorSpec(
        [None] + (list(settings.crop_size) if settings.crop_size
                  else [None, None]) + [3], tf.float32)]
    self._predict = tf.function(
        predict_labels_fn(self.predictor, settings.crf),
        input_signature=signature)

  def dataset(self):
    return pipeline.build_dataset(self.descriptor, self.settings.split,
                                  self.record_dir, self.inputs,
                                  batch_size=self.settings.batch_size,
                                  is_training=False)

  def evaluate(self, checkpoint, progress: Optional[Callable] = None
               ) -> EvalResult:
    """Loads ``checkpoint`` (ours or TF1; a folder means its latest) and evaluates.

    ``progress(images_done, num_images, seconds)`` is called after each batch.
    """
    prefix = checkpoints.find_checkpoint(checkpoint)
    checkpoints.restore_model(self.predictor, prefix)
    metric = StreamingConfusionMatrix(self.descriptor.num_classes,
                                      self.descriptor.ignore_label)
    start = time.time()
    images = 0
    for batch in self.dataset():
      metric.update(batch['label'][..., 0], self._predict(batch['image']))
      images += int(batch['image'].shape[0])
      if progress:
        progress(images, self.num_images, time.time() - start)
    names = list(self.descriptor.class_names or
                 ['class_%d' % c for c in range(self.descriptor.num_classes)])
    return EvalResult(confusion_matrix=metric.matrix, class_names=names,
                      checkpoint=prefix, step=checkpoints.checkpoint_step(prefix),
                      split=self.settings.split, num_images=images,
                      seconds=time.time() - start, tag=self.settings.tag)


def evaluate_checkpoint(options, checkpoint, descriptor, record_dir,
                        split='val', batch_size=8, eval_scales=(1.0,),
                        add_flipped_images=False):
  """mIoU, per-class IoU and pixel accuracy of ``checkpoint`` on ``split`` (a dict).

  ``options.crop_size`` is the eval crop (it must hold every image; None:
  whole images). A shortcut of ``Evaluator`` for the quickstart and the
  benchmarks.
  """
  settings = EvalSettings(split=split, batch_size=batch_size,
                          crop_size=options.crop_size, eval_scales=eval_scales,
                          add_flipped_images=add_flipped_images)
  result = Evaluator(options, settings, descriptor, record_dir).evaluate(
      checkpoint)
  iou = result.iou_per_class()
  return {'miou': result.miou, 'pixel_accuracy': result.pixel_accuracy,
          'iou_per_class': [None if np.isnan(v) else float(v) for v in iou],
          'num_pixels': int(result.confusion_matrix.sum()),
          'checkpoint': result.checkpoint, 'split': split,
          'num_images': result.num_images}
