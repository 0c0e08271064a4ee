"""Streaming mIoU: parity with an independent numpy computation."""
import numpy as np

from deeplab_tf.evaluation import StreamingConfusionMatrix


def test_hand_made_confusion():
  metric = StreamingConfusionMatrix(num_classes=3, ignore_label=255)
  labels = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
  preds = np.array([[0, 1, 1, 1], [2, 0, 0, 1]])
  metric.update(labels[:1], preds[:1])  # two batches accumulate
  metric.update(labels[1:], preds[1:])
  # class 0: tp 1, fp 1 (a 2 predicted 0; the ignore pixel does not count), fn 1
  # class 1: tp 3, fp 1, fn 0; class 2: tp 1, fp 0, fn 1
  np.testing.assert_allclose(metric.iou_per_class(), [1 / 3, 3 / 4, 1 / 2])
  assert metric.mean_iou() == np.mean([1 / 3, 3 / 4, 1 / 2])
  assert metric.pixel_accuracy() == 5 / 7
  assert metric.results()['num_pixels'] == 7


def test_streaming_equals_numpy_over_random_batches():
  rng = np.random.default_rng(0)
  metric = StreamingConfusionMatrix(num_classes=5, ignore_label=255)
  all_labels, all_preds = [], []
  for _ in range(4):
    labels = rng.integers(0, 5, (2, 9, 7))
    labels[rng.random(labels.shape) < 0.1] = 255
    preds = rng.integers(0, 4, (2, 9, 7))  # class 4 never predicted
    metric.update(labels, preds)
    all_labels.append(labels.ravel())
    all_preds.append(preds.ravel())
  labels, preds = np.concatenate(all_labels), np.concatenate(all_preds)
  keep = labels != 255
  ious = []
  for c in range(5):
    inter = np.sum((labels[keep] == c) & (preds[keep] == c))
    union = np.sum((labels[keep] == c) | (preds[keep] == c))
    ious.append(inter / union)
  assert abs(metric.mean_iou() - np.mean(ious)) < 1e-12


def test_absent_class_left_out_of_the_mean():
  metric = StreamingConfusionMatrix(num_classes=4, ignore_label=255)
  metric.update(np.array([0, 1]), np.array([0, 1]))
  assert np.isnan(metric.iou_per_class()[2])
  assert metric.mean_iou() == 1.0
