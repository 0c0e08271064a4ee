"""Evaluation: streaming confusion matrix and mIoU (more in the evaluation issue)."""
from deeplab_tf.evaluation.metrics import StreamingConfusionMatrix
from deeplab_tf.evaluation.metrics import batch_confusion_matrix

__all__ = ['StreamingConfusionMatrix', 'batch_confusion_matrix']
