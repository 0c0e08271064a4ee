"""Single-scale whole-image evaluation of a checkpoint over a record split.

The original eval.py path at one scale: records padded to the eval crop with
the mean pixel, ``predict_labels``, a streaming confusion matrix over the
whole split, mIoU. (The evaluation issue adds multi-scale + flip, continuous
mode and the script; this is the shared core the quickstart and benchmarks use.)
"""
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.data import pipeline
from deeplab_tf.evaluation.metrics import StreamingConfusionMatrix
from deeplab_tf.models import build_predictor


def evaluate_checkpoint(options, checkpoint, descriptor, record_dir,
                        split='val', batch_size=8):
  """Returns mIoU, per-class IoU and pixel accuracy of ``checkpoint`` on ``split``.

  Args:
    options: ModelOptions; ``crop_size`` is the eval crop (must hold every image).
    checkpoint: a checkpoint prefix or folder (ours or a TF1 one).
    descriptor: the dataset descriptor (num_classes, ignore_label).
    record_dir: folder of the ``<split>-*`` shards.
  """
  predictor = build_predictor(options)
  prefix = checkpoints.resolve_checkpoint(checkpoint)
  checkpoints.restore_model(predictor, prefix)
  inputs = pipeline.InputSettings(crop_size=options.crop_size,
                                  model_variant=options.model_variant)
  dataset = pipeline.build_dataset(descriptor, split, record_dir, inputs,
                                   batch_size=batch_size, is_training=False)
  metric = StreamingConfusionMatrix(descriptor.num_classes,
                                    descriptor.ignore_label)
  predict = tf.function(lambda x: predictor(x, training=False)['semantic'])
  images = 0
  for batch in dataset:
    metric.update(batch['label'][..., 0], predict(batch['image']))
    images += int(batch['image'].shape[0])
  results = metric.results()
  results.update(checkpoint=prefix, split=split, num_images=images)
  return results
