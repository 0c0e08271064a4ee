"""DeeperLab training losses: semantic, keypoint heatmap and the three offset maps.

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093),
Sec. 3.2:

* semantic: weighted bootstrapped cross-entropy. Pixels are ranked by their
  (unweighted) cross-entropy, only the K = 15% hardest are kept, and each kept
  pixel counts with its weight (3 inside instances smaller than 64 x 64, see
  ``deeplab_tf.data.panoptic_targets``):
      L = (1 / K) * sum_{i in top-K} w_i * CE_i.
* keypoint heatmap: sigmoid (binary) cross-entropy per keypoint map, as
  PersonLab (arXiv:1803.08225, Sec. 3.1), averaged over valid pixels.
* offsets: L1 on (dy, dx), only where the target is defined (disk pixels for
  short- and middle-range, instance pixels for long-range), divided by the
  disk radius R as PersonLab (Sec. 3.1) to keep it commensurate with the
  classification losses, averaged over the defined (pixel, keypoint) entries.

Outputs at stride 4 are resized (bilinear, align_corners, as DeepLab's
``upsample_logits``) to the target size before the losses; offsets are in
input pixels, so they need no rescaling.

``deeperlab_loss(outputs, targets, settings) -> (total, parts)`` is the entry
point a trainer calls: ``outputs`` is the model's output dict, ``targets``
the batched dict of ``panoptic_targets``.
"""
import dataclasses
from typing import Dict, Tuple

import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.models.heads import deeperlab_decoder as heads


@dataclasses.dataclass(frozen=True)
class DeeperLabLossSettings:
  """Loss options (paper values where the paper gives them)."""
  # Sec. 3.2: bootstrapped CE keeps the top 15% pixels.
  top_k_percent_pixels: float = 0.15
  # Offsets are divided by this (pixels). not in the DeeperLab paper: PersonLab
  # (Sec. 3.1) normalises by the disk radius R = 32.
  offset_normalizer: float = 32.0
  # not in the paper (we could not find DeeperLab's loss weights): all 1.
  semantic_weight: float = 1.0
  heatmap_weight: float = 1.0
  long_range_weight: float = 1.0
  short_range_weight: float = 1.0
  middle_range_weight: float = 1.0
  ignore_label: int = 255

  def __post_init__(self):
    if not 0.0 < self.top_k_percent_pixels <= 1.0:
      raise ValueError('top_k_percent_pixels must lie in (0, 1]; got %r.'
                       % (self.top_k_percent_pixels,))
    if self.offset_normalizer <= 0:
      raise ValueError('offset_normalizer must be > 0 pixels; got %r.'
                       % (self.offset_normalizer,))

  def weights(self):
    return {heads.SEMANTIC: self.semantic_weight,
            heads.KEYPOINT_HEATMAP: self.heatmap_weight,
            heads.LONG_RANGE_OFFSETS: self.long_range_weight,
            heads.SHORT_RANGE_OFFSETS: self.short_range_weight,
            heads.MIDDLE_RANGE_OFFSETS: self.middle_range_weight}


def _to_size(prediction, reference):
  """Align-corners bilinear resize of a [B, h, w, C] prediction to the reference's [H, W]."""
  prediction = tf.cast(prediction, tf.float32)
  size = tf.shape(reference)[1:3]
  if prediction.shape[1:3] == reference.shape[1:3] and (
      prediction.shape[1] is not None):
    return prediction
  return geometry.resize_bilinear(prediction, size)


def _safe_mean(total, count):
  return tf.math.divide_no_nan(total, tf.cast(count, tf.float32))


def bootstrapped_cross_entropy(logits, labels, weights, top_k_percent_pixels,
                               ignore_label=255):
  """Weighted bootstrapped CE (Sec. 3.2): top-K pixels by CE, weighted, / K.

  Args:
    logits: [B, H, W, C] (already at the label size).
    labels: int [B, H, W].
    weights: [B, H, W] pixel weights.
    top_k_percent_pixels: fraction of the non-ignored pixels kept.

  Returns:
    (loss, k): scalar loss and the number of kept pixels.
  """
  labels = tf.cast(labels, tf.int32)
  valid = tf.not_equal(labels, ignore_label)
  safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=safe_labels, logits=tf.cast(logits, tf.float32))
  flat_valid = tf.reshape(valid, [-1])
  # Ignored pixels rank last (CE >= 0 everywhere else).
  flat_ce = tf.where(flat_valid, tf.reshape(ce, [-1]), -1.0)
  flat_w = tf.reshape(tf.cast(weights, tf.float32), [-1])
  num_valid = tf.reduce_sum(tf.cast(flat_valid, tf.float32))
  k = tf.maximum(tf.cast(top_k_percent_pixels * num_valid, tf.int32), 1)
  k = tf.minimum(k, tf.size(flat_ce))
  _, index = tf.math.top_k(flat_ce, k=k, sorted=False)
  kept = tf.gather(flat_ce, index) * tf.gather(flat_w, index)
  kept = tf.where(tf.gather(flat_valid, index), kept, 0.0)
  return _safe_mean(tf.reduce_sum(kept), tf.where(num_valid > 0, k, 0)), k


def heatmap_loss(logits, targets, valid_mask):
  """Mean sigmoid CE over valid pixels and keypoint maps."""
  ce = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(targets, tf.float32), logits=tf.cast(logits, tf.float32))
  mask = tf.cast(valid_mask, tf.float32)[..., tf.newaxis] * tf.ones_like(ce)
  return _safe_mean(tf.reduce_sum(ce * mask), tf.reduce_sum(mask))


def offset_loss(predicted, targets, mask, normalizer):
  """Masked L1 of (dy, dx) pairs / normalizer, averaged over defined entries.

  Args:
    predicted, targets: [B, H, W, 2N] offsets (pixels), pairs (dy, dx).
    mask: [B, H, W, N], 1 where entry n's target is defined.
  """
  predicted = tf.cast(predicted, tf.float32)
  shape = tf.concat([tf.shape(predicted)[:3], [-1, 2]], 0)
  error = tf.reduce_sum(tf.abs(tf.reshape(predicted, shape)
                               - tf.reshape(tf.cast(targets, tf.float32),
                                            shape)), -1)
  mask = tf.cast(mask, tf.float32)
  return _safe_mean(tf.reduce_sum(error * mask) / normalizer,
                    tf.reduce_sum(mask))


def deeperlab_loss(outputs: Dict[str, tf.Tensor], targets: Dict[str, tf.Tensor],
                   settings: DeeperLabLossSettings = DeeperLabLossSettings()
                   ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
  """The weighted sum of the five losses.

  Args:
    outputs: the model's dict (``build_deeperlab``), any resolution.
    targets: batched ``panoptic_targets`` dict ([B, H, W, ...]).
    settings: DeeperLabLossSettings.

  Returns:
    ``(total, parts)``: the weighted sum and the unweighted loss of each head,
    keyed by head name (float32 scalars).
  """
  missing = [n for n in heads.HEAD_NAMES if n not in outputs]
  if missing:
    raise ValueError('outputs lack %s; expected the keys %s, got %s.'
                     % (missing, list(heads.HEAD_NAMES), sorted(outputs)))
  labels = tf.convert_to_tensor(targets['semantic'])
  if labels.shape.rank == 4:
    labels = tf.squeeze(labels, -1)
  reference = labels[..., tf.newaxis]
  valid = targets['valid_mask']
  parts = {}
  parts[heads.SEMANTIC], _ = bootstrapped_cross_entropy(
      _to_size(outputs[heads.SEMANTIC], reference), labels,
      targets['semantic_weights'], settings.top_k_percent_pixels,
      settings.ignore_label)
  parts[heads.KEYPOINT_HEATMAP] = heatmap_loss(
      _to_size(outputs[heads.KEYPOINT_HEATMAP], reference),
      targets['keypoint_heatmap'], valid)
  for name, mask in ((heads.LONG_RANGE_OFFSETS, 'long_range_mask'),
                     (heads.SHORT_RANGE_OFFSETS, 'short_range_mask'),
                     (heads.MIDDLE_RANGE_OFFSETS, 'middle_range_mask')):
    parts[name] = offset_loss(_to_size(outputs[name], reference),
                              targets[name], targets[mask],
                              settings.offset_normalizer)
  weights = settings.weights()
  total = tf.add_n([weights[n] * parts[n] for n in heads.HEAD_NAMES])
  return total, parts
