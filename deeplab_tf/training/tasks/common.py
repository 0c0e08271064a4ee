"""What the tasks share: the training pixel accuracy and the image summaries."""
import tensorflow as tf

from deeplab_tf.core import geometry


def pixel_counts(logits, labels, ignore_label):
  """(correct, valid) pixel counts of argmax(logits) resized to the labels."""
  labels = tf.cast(labels, tf.int32)
  if labels.shape.rank == 4:
    labels = labels[..., 0]
  logits = geometry.resize_bilinear(logits, tf.shape(labels)[1:3])
  predictions = tf.argmax(logits, axis=3, output_type=tf.int32)
  valid = tf.not_equal(labels, ignore_label)
  correct = tf.logical_and(valid, tf.equal(predictions, labels))
  return (tf.reduce_sum(tf.cast(correct, tf.float32)),
          tf.reduce_sum(tf.cast(valid, tf.float32)))


# tf.summary.image's default max_outputs, which the original train.py keeps.
SUMMARY_IMAGES = 3


def summary_samples(images, labels, logits):
  """The first images of a replica's batch as the original summarises them.

  ``image`` as fed, ``label`` and ``semantic`` (argmax of the training
  forward pass's logits, at the logits resolution), int32 [n, h, w, 1].
  """
  labels = tf.cast(labels, tf.int32)
  if labels.shape.rank == 3:
    labels = labels[..., tf.newaxis]
  semantic = tf.argmax(logits, axis=3, output_type=tf.int32)[..., tf.newaxis]
  return {'image': images[:SUMMARY_IMAGES], 'label': labels[:SUMMARY_IMAGES],
          'semantic': semantic[:SUMMARY_IMAGES]}
