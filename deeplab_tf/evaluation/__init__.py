"""Evaluation: mIoU as the original (streaming confusion matrix, ``evaluate``),
reports and continuous mode, and the panoptic metrics (PQ, Parsing Covering,
their streaming forms and DeeperLab inference)."""
from deeplab_tf.evaluation.metrics import StreamingConfusionMatrix
from deeplab_tf.evaluation.metrics import batch_confusion_matrix

__all__ = ['StreamingConfusionMatrix', 'batch_confusion_matrix']
