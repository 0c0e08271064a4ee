"""Evaluation results as files and TensorBoard summaries.

Per evaluated checkpoint, in the eval logdir:

- ``metrics-<step>.json``: mIoU, pixel accuracy, a per-class table (IoU,
  true positives, ground-truth and predicted pixels) and the confusion matrix;
- ``confusion_matrix-<step>.csv``: rows = ground truth, columns = prediction,
  headed by the class names;
- ``per_class_iou-<step>.csv``: the per-class table;
- ``metrics_latest.json``: a copy of the newest, for scripts;
- TensorBoard: the original eval.py scalars ``eval/<tag>_overall`` (mIoU) and
  ``eval/<tag>_class_<c>`` (the original per-class IoU: NaN for a class absent
  from the ground truth), plus ``eval/pixel_accuracy``, the row-normalised
  confusion matrix as an image and the per-class table as text.

``<step>`` is the checkpoint's global step (``model.ckpt-1200`` -> 1200), or
``final`` for a checkpoint name without one.
"""
import csv
import json
import os

import numpy as np
import tensorflow as tf


def _suffix(result):
  return str(result.step) if result.step is not None else 'final'


def per_class_rows(result):
  """[id, name, IoU (or ''), TP, GT pixels, predicted pixels] per class."""
  rows = []
  for entry in result.to_dict()['classes']:
    rows.append([entry['id'], entry['name'],
                 '' if entry['iou'] is None else '%.6f' % entry['iou'],
                 entry['true_positives'], entry['ground_truth_pixels'],
                 entry['predicted_pixels']])
  return rows


def write_files(result, logdir):
  """Writes the JSON and CSV files of ``result``; returns their paths."""
  tf.io.gfile.makedirs(logdir)
  suffix = _suffix(result)
  paths = {}
  record = result.to_dict()
  for name in ('metrics-%s.json' % suffix, 'metrics_latest.json'):
    path = os.path.join(logdir, name)
    with tf.io.gfile.GFile(path, 'w') as f:
      json.dump(record, f, indent=1)
    paths[name] = path
  path = os.path.join(logdir, 'confusion_matrix-%s.csv' % suffix)
  with tf.io.gfile.GFile(path, 'w') as f:
    writer = csv.writer(f)
    writer.writerow(['ground_truth \\ prediction'] + list(result.class_names))
    for name, row in zip(result.class_names, result.confusion_matrix):
      writer.writerow([name] + [int(v) for v in row])
  paths['confusion_matrix'] = path
  path = os.path.join(logdir, 'per_class_iou-%s.csv' % suffix)
  with tf.io.gfile.GFile(path, 'w') as f:
    writer = csv.writer(f)
    writer.writerow(['class_id', 'class_name', 'iou', 'true_positives',
                     'ground_truth_pixels', 'predicted_pixels'])
    writer.writerows(per_class_rows(result))
  paths['per_class_iou'] = path
  return paths


def confusion_image(matrix):
  """[1, C, C, 1] float image: each ground-truth row normalised to sum 1."""
  matrix = np.asarray(matrix, np.float64)
  totals = matrix.sum(1, keepdims=True)
  normalised = np.divide(matrix, totals, out=np.zeros_like(matrix),
                         where=totals > 0)
  return normalised[np.newaxis, :, :, np.newaxis].astype(np.float32)


def table_text(result):
  """The per-class table as markdown (TensorBoard text)."""
  lines = ['| id | class | IoU | GT pixels | predicted |', '|---|---|---|---|---|']
  for row in per_class_rows(result):
    lines.append('| %d | %s | %s | %d | %d |' % (row[0], row[1], row[2] or '-',
                                                 row[4], row[5]))
  lines.append('')
  lines.append('mIoU %.4f, pixel accuracy %.4f, %d images (%s)'
               % (result.miou, result.pixel_accuracy, result.num_images,
                  result.checkpoint))
  return '\n'.join(lines)


def write_summaries(result, writer):
  """TensorBoard summaries of ``result`` at its step (0 if unknown)."""
  step = result.step or 0
  with writer.as_default(step=step):
    tf.summary.scalar('eval/%s_overall' % result.tag, result.miou)
    for c, iou in enumerate(result.original_class_iou()):
      tf.summary.scalar('eval/%s_class_%d' % (result.tag, c), iou)
    tf.summary.scalar('eval/pixel_accuracy', result.pixel_accuracy)
    tf.summary.scalar('eval/images_per_sec',
                      result.num_images / max(result.seconds, 1e-9))
    tf.summary.image('eval/confusion_matrix_row_normalised',
                     confusion_image(result.confusion_matrix))
    tf.summary.text('eval/per_class_iou', table_text(result))
  writer.flush()


def summary_line(result):
  """One human line: mIoU, accuracy, worst classes."""
  iou = result.iou_per_class()
  order = [c for c in np.argsort(np.nan_to_num(iou, nan=2.0))
           if not np.isnan(iou[c])][:3]
  worst = ', '.join('%s %.3f' % (result.class_names[c], iou[c]) for c in order)
  return ('%s on %s (%d images): %s = %.4f, pixel accuracy %.4f; lowest: %s'
          % (os.path.basename(result.checkpoint), result.split,
             result.num_images, result.tag, result.miou,
             result.pixel_accuracy, worst))
