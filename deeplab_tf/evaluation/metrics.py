"""Streaming confusion matrix and mean IoU, as the original eval.py's metric.

The original accumulates ``tf.metrics.mean_iou`` over the whole split with
ignore-label pixels given weight 0: a confusion matrix summed over every
batch, never a mean of per-batch IoUs. Classes that never occur (no ground
truth and no prediction) are left out of the mean, as ``mean_iou`` does.
"""
import numpy as np
import tensorflow as tf


def batch_confusion_matrix(labels, predictions, num_classes, ignore_label):
  """[num_classes, num_classes] int64 counts (rows: ground truth) for one batch."""
  labels = tf.reshape(tf.cast(labels, tf.int64), [-1])
  predictions = tf.reshape(tf.cast(predictions, tf.int64), [-1])
  valid = tf.logical_and(tf.not_equal(labels, ignore_label),
                         tf.logical_and(labels >= 0, labels < num_classes))
  labels = tf.boolean_mask(labels, valid)
  predictions = tf.clip_by_value(tf.boolean_mask(predictions, valid), 0,
                                 num_classes - 1)
  return tf.math.confusion_matrix(labels, predictions, num_classes=num_classes,
                                  dtype=tf.int64)


class StreamingConfusionMatrix:
  """Accumulates confusion counts over a split; reports IoU and accuracy."""

  def __init__(self, num_classes, ignore_label=255):
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.matrix = np.zeros((num_classes, num_classes), np.int64)

  def update(self, labels, predictions):
    self.matrix += batch_confusion_matrix(labels, predictions, self.num_classes,
                                          self.ignore_label).numpy()

  def iou_per_class(self):
    """IoU per class; NaN for a class with no ground truth and no prediction."""
    tp = np.diag(self.matrix).astype(np.float64)
    union = self.matrix.sum(0) + self.matrix.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
      return np.where(union > 0, tp / union, np.nan)

  def mean_iou(self):
    iou = self.iou_per_class()
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else 0.0

  def pixel_accuracy(self):
    total = self.matrix.sum()
    return float(np.trace(self.matrix) / total) if total else 0.0

  def results(self):
    return {'miou': self.mean_iou(), 'pixel_accuracy': self.pixel_accuracy(),
            'iou_per_class': [None if np.isnan(v) else float(v)
                              for v in self.iou_per_class()],
            'num_pixels': int(self.matrix.sum())}
