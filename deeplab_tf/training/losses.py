"""Per-pixel softmax cross-entropy for every scale of logits (DeepLab's training loss).

Restates ``train_utils.add_softmax_cross_entropy_loss_for_each_scale`` and
``utils.get_label_weight_mask`` of the original research/deeplab code
(DeepLabv3, arXiv:1706.05587, Sec. 4.1 "upsample logits"; hard-pixel mining
with a linear ramp as in the original's ``top_k_percent_pixels`` /
``hard_example_mining_step``), number for number:

* ``upsample_logits=True`` resizes the logits to the label size (bilinear,
  ``align_corners=True``); ``False`` resizes the labels to the logits size
  (nearest, ``align_corners=True``).
* An ignored pixel has an all-zero one-hot row (cross-entropy 0) and weight 0.
  Pixel weight = ``loss_weight`` (a python float) or ``loss_weight[label]``
  (a list of ``num_classes`` floats).
* All pixels: ``sum(w * ce) / n`` with ``n`` = number of NON-ignored pixels,
  unweighted (a class of weight 0 still counts in ``n``); 0 when ``n == 0``.
* Hard-pixel mining (``top_k_percent_pixels < 1``): the ``k`` largest
  *weighted* pixel losses over all ``N`` pixels (ignored ones included) are
  summed and divided by how many of them are non-zero. ``k`` is computed in
  float32 and truncated, ramping linearly from ``N`` to ``top_k * N`` over
  ``hard_example_mining_step`` steps when that is non-zero.
* Each scale gets its own, separately normalised loss; the losses are summed.

Everything is plain TF ops on tensors, so it runs eagerly, inside
``tf.function`` and per replica under ``tf.distribute`` (each replica then
normalises by its own pixel count, as each clone of the original did; see
``total_loss.total_training_loss`` for combining replicas).
"""
import dataclasses
from typing import Dict, List, NamedTuple, Tuple, Union

import tensorflow as tf

from deeplab_tf.core import geometry

# Original train.py / common.py values.
DEFAULT_IGNORE_LABEL = 255
# Denominator floor of the original's "divide unless nothing is present".
_MIN_NORMALISER = 1e-5

LossWeight = Union[float, List[float]]


def validate_loss_weight(loss_weight, num_classes):
  """Raises ValueError unless ``loss_weight`` is a float or a list of num_classes.

  The original accepts exactly a python ``float`` or a ``list``: an int such
  as ``1`` (or a tuple, or a numpy float32) raises there too.
  """
  if isinstance(loss_weight, bool) or not isinstance(loss_weight, (float, list)):
    raise ValueError(
        'loss_weight must be a python float (one weight for every class) or a '
        'list of %s floats (one per class), as the original '
        'get_label_weight_mask requires; got %r of type %s%s.'
        % (num_classes, loss_weight, type(loss_weight).__name__,
           ' (write %r)' % float(loss_weight)
           if isinstance(loss_weight, int) and not isinstance(loss_weight, bool)
           else ''))
  if isinstance(loss_weight, list):
    if num_classes is not None and len(loss_weight) != num_classes:
      raise ValueError(
          'loss_weight is a list of %d weights but num_classes is %d: a list '
          'needs exactly one weight per class (got %r).'
          % (len(loss_weight), num_classes, loss_weight))
    bad = [w for w in loss_weight
           if isinstance(w, bool) or not isinstance(w, (int, float))]
    if bad:
      raise ValueError('loss_weight list entries must be numbers; got %r in %r.'
                       % (bad, loss_weight))


def validate_mining(top_k_percent_pixels, hard_example_mining_step):
  if not 0.0 <= float(top_k_percent_pixels) <= 1.0:
    raise ValueError('top_k_percent_pixels must lie in [0, 1] (1.0 = no hard '
                     'pixel mining); got %r.' % (top_k_percent_pixels,))
  if int(hard_example_mining_step) != hard_example_mining_step or (
      hard_example_mining_step < 0):
    raise ValueError('hard_example_mining_step must be an integer >= 0 (0 = '
                     'mine top_k_percent_pixels from the first step); got %r.'
                     % (hard_example_mining_step,))


@dataclasses.dataclass(frozen=True)
class LossSettings:
  """Loss options with the original train.py defaults.

  ``loss_weight`` is what train.py passes as ``model_options.label_weights``
  (default 1.0). ``ignore_label`` is the dataset's (255 for PASCAL VOC,
  Cityscapes and ADE20K's DeepLab records).
  """
  loss_weight: LossWeight = 1.0
  upsample_logits: bool = True
  hard_example_mining_step: int = 0
  top_k_percent_pixels: float = 1.0
  ignore_label: int = DEFAULT_IGNORE_LABEL

  def __post_init__(self):
    if isinstance(self.loss_weight, list):
      # Frozen dataclass: keep our own copy of the list.
      object.__setattr__(self, 'loss_weight', list(self.loss_weight))
    validate_loss_weight(self.loss_weight, None)
    validate_mining(self.top_k_percent_pixels, self.hard_example_mining_step)

  def loss_kwargs(self):
    """Keyword arguments for ``softmax_cross_entropy_loss_for_each_scale``."""
    return dict(loss_weight=self.loss_weight,
                upsample_logits=self.upsample_logits,
                hard_example_mining_step=self.hard_example_mining_step,
                top_k_percent_pixels=self.top_k_percent_pixels)


class ScaleLoss(NamedTuple):
  """The loss of one scale and the quantities it is made of (all tensors).

  ``loss`` is what the original adds to the loss collection. ``pixel_losses``
  are unweighted (one per pixel, flattened in b, y, x order); ``k`` is the
  number of pixels kept (``num_pixels`` without mining); ``num_present`` the
  normaliser; ``weighted_loss_sum`` the numerator.
  """
  loss: tf.Tensor
  weighted_loss_sum: tf.Tensor
  num_present: tf.Tensor
  num_pixels: tf.Tensor
  k: tf.Tensor
  pixel_losses: tf.Tensor
  weights: tf.Tensor
  labels: tf.Tensor


def label_weight_mask(labels, ignore_label, num_classes, label_weights=1.0):
  """Per-pixel weights: ``label_weights`` (float or per-class list), 0 if ignored.

  Labels outside ``0..num_classes-1`` that are not ``ignore_label`` get weight
  0 with a list (their one-hot row is empty) and the scalar weight otherwise,
  as in the original.
  """
  validate_loss_weight(label_weights, num_classes)
  labels = tf.convert_to_tensor(labels)
  keep = tf.cast(tf.not_equal(labels, ignore_label), tf.float32)
  if isinstance(label_weights, float):
    return keep * label_weights
  per_class = tf.constant(label_weights, tf.float32)
  one_hot = tf.one_hot(labels, num_classes, dtype=tf.float32)
  return keep * tf.reduce_sum(one_hot * per_class, axis=-1)


def top_k_pixel_count(num_pixels, top_k_percent_pixels,
                      hard_example_mining_step=0, step=0):
  """Number of hardest pixels kept: ``k`` of the original, as an int32 tensor.

  ``int(float32(top_k * N))`` without a ramp; with ``hard_example_mining_step``
  the kept fraction goes linearly from 1 to ``top_k`` over that many steps:
  ``r = min(1, step / hem_step)``, ``k = int(float32((r * top_k + 1 - r) * N))``.
  The float32 arithmetic (and its order, with ``step / hem_step`` taken as
  ``step * (1 / hem_step)`` as the original's graph optimiser rewrites it) is
  the original's: it decides ``k`` exactly (e.g. 33282 pixels, top_k 0.25,
  ramp 100: k = 33282, 20801, 8320 at steps 0, 50, 200).
  """
  n = tf.cast(num_pixels, tf.float32)
  top_k = tf.constant(top_k_percent_pixels, tf.float32)
  if hard_example_mining_step == 0:
    return tf.cast(top_k * n, tf.int32)
  step = tf.cast(step, tf.float32)
  # step / hem_step as the original's session evaluates a division by a
  # constant (grappler rewrites it to a product with the float32 reciprocal).
  inverse = 1.0 / tf.constant(hard_example_mining_step, tf.float32)
  ratio = tf.minimum(tf.constant(1.0, tf.float32), step * inverse)
  fraction = ratio * top_k + (tf.constant(1.0, tf.float32) - ratio)
  return tf.cast(fraction * n, tf.int32)


def _safe_divide(total, count):
  """``total / max(1e-5, count)``, and exactly 0 when ``count`` is 0."""
  present = tf.cast(count > 0, tf.float32)
  return present * tf.math.divide(total, tf.maximum(_MIN_NORMALISER, count))


def _as_label_tensor(labels):
  labels = tf.convert_to_tensor(labels)
  if labels.shape.rank == 3:
    labels = labels[..., tf.newaxis]
  if labels.shape.rank is not None and labels.shape.rank != 4:
    raise ValueError('labels must be [batch, height, width, 1] (or [batch, '
                     'height, width]); got shape %s.' % (labels.shape,))
  if labels.dtype.is_floating:
    raise ValueError('labels must be an integer class map (the original casts '
                     'them to int32); got dtype %s.' % labels.dtype.name)
  return tf.cast(labels, tf.int32)


def softmax_cross_entropy_for_scale(logits, labels, num_classes, ignore_label,
                                    loss_weight=1.0, upsample_logits=True,
                                    hard_example_mining_step=0,
                                    top_k_percent_pixels=1.0, step=0
                                    ) -> ScaleLoss:
  """The loss of one logits tensor against the labels; returns a ``ScaleLoss``.

  Args:
    logits: [batch, h, w, num_classes] (any float dtype; computed in float32).
    labels: [batch, H, W, 1] integer labels (uint8/int32/int64).
    num_classes: number of classes (must equal the logits' last dimension).
    ignore_label: label value that contributes nothing.
    loss_weight: python float, or list of ``num_classes`` floats.
    upsample_logits: resize logits to the labels (True) or labels to the
      logits (False).
    hard_example_mining_step: length of the mining ramp in steps (0: none).
    top_k_percent_pixels: fraction of pixels kept (1.0: all, plain loss).
    step: training step (python int or tensor); only read by the ramp.
  """
  validate_loss_weight(loss_weight, num_classes)
  validate_mining(top_k_percent_pixels, hard_example_mining_step)
  logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
  if logits.shape.rank is not None and logits.shape.rank != 4:
    raise ValueError('logits must be [batch, height, width, num_classes]; got '
                     'shape %s.' % (logits.shape,))
  if logits.shape[-1] is not None and logits.shape[-1] != num_classes:
    raise ValueError('logits have %d channels but num_classes is %d.'
                     % (logits.shape[-1], num_classes))
  labels = _as_label_tensor(labels)
  if upsample_logits:
    logits = geometry.resize_bilinear(logits, tf.shape(labels)[1:3])
    scaled_labels = labels
  else:
    scaled_labels = geometry.resize_nearest(labels, tf.shape(logits)[1:3])
  flat_labels = tf.reshape(scaled_labels, [-1])
  flat_logits = tf.reshape(logits, [-1, num_classes])
  weights = label_weight_mask(flat_labels, ignore_label, num_classes,
                              loss_weight)
  keep = tf.cast(tf.not_equal(flat_labels, ignore_label), tf.float32)
  # The one-hot targets are constants of the loss (the original stops their
  # gradient); an ignored (or out-of-range) label has an all-zero row.
  targets = tf.stop_gradient(
      tf.one_hot(flat_labels, num_classes, on_value=1.0, off_value=0.0))
  pixel_losses = tf.nn.softmax_cross_entropy_with_logits(labels=targets,
                                                         logits=flat_logits)
  weighted = pixel_losses * weights
  num_pixels = tf.shape(flat_logits)[0]
  if top_k_percent_pixels == 1.0:
    total = tf.reduce_sum(weighted)
    num_present = tf.reduce_sum(keep)
    k = num_pixels
  else:
    k = top_k_pixel_count(num_pixels, top_k_percent_pixels,
                          hard_example_mining_step, step)
    hardest, _ = tf.math.top_k(weighted, k=k, sorted=True)
    total = tf.reduce_sum(hardest)
    # Zero losses (ignored pixels, classes of weight 0) leave the normaliser.
    num_present = tf.reduce_sum(tf.cast(tf.not_equal(hardest, 0.0), tf.float32))
  loss = _safe_divide(total, num_present)
  return ScaleLoss(loss=loss, weighted_loss_sum=total, num_present=num_present,
                   num_pixels=num_pixels, k=k, pixel_losses=pixel_losses,
                   weights=weights, labels=flat_labels)


def softmax_cross_entropy_loss_for_each_scale(
    scales_to_logits: Dict[str, tf.Tensor], labels, num_classes, ignore_label,
    loss_weight=1.0, upsample_logits=True, hard_example_mining_step=0,
    top_k_percent_pixels=1.0, step=0
) -> Tuple[Dict[str, tf.Tensor], tf.Tensor]:
  """One loss per entry of ``scales_to_logits`` and their sum.

  ``scales_to_logits`` is the model's output dict (``merged_logits`` and, for
  an image pyramid, ``logits_%.2f`` per scale); every entry gets its own full
  loss (multi-scale training) and the total is their plain sum, which train.py
  adds to the regularisation terms.

  Returns:
    ``(losses, total)``: ``{scale name: scalar loss}`` in the dict's order, and
    their sum (float32 scalars).

  Raises:
    ValueError: no logits, ``loss_weight`` not a float or a list of
      ``num_classes`` floats, ``top_k_percent_pixels`` outside [0, 1], or a
      negative ``hard_example_mining_step``.
  """
  if labels is None:
    raise ValueError('No labels given for the softmax cross-entropy loss.')
  if not scales_to_logits:
    raise ValueError('scales_to_logits is empty: nothing to compute a loss on.')
  losses = {}
  for scale, logits in scales_to_logits.items():
    losses[scale] = softmax_cross_entropy_for_scale(
        logits, labels, num_classes, ignore_label, loss_weight=loss_weight,
        upsample_logits=upsample_logits,
        hard_example_mining_step=hard_example_mining_step,
        top_k_percent_pixels=top_k_percent_pixels, step=step).loss
  total = tf.add_n(list(losses.values()))
  return losses, total
