"""Writes a split's predictions as pictures: the output of the original vis.py.

For each image of the split, numbered in record order from 0 as the original:

  <vis_logdir>/segmentation_results/%06d_image.png       the input image
  <vis_logdir>/segmentation_results/%06d_prediction.png  prediction, coloured
  <vis_logdir>/segmentation_results/%06d_overlay.png     image blended with
                                                         the coloured prediction
  <vis_logdir>/segmentation_results/%06d_label.png       ground truth, coloured
  <vis_logdir>/raw_segmentation_results/<filename>.png   prediction label ids

The overlay and the ground truth are additions (each can be switched off);
raw predictions are written only when asked, named after the record's
``image/filename`` as the original, and for Cityscapes with trainIds mapped to
labelIds (what the test server expects).

Every picture has the image's original size: the padding added for the crop
is cut away and, when the input was resized (``min_resize_value``), the
prediction goes back to the original size with nearest-neighbour resizing
(align_corners, as the original) and the image with bilinear resizing. The
original resizes back only when both resize values are set and saves the
resized image; we undo any resize, for every batch size.
"""
import dataclasses
import os
from typing import Callable, Iterator, Optional, Tuple

import cv2
import numpy as np
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.core import geometry
from deeplab_tf.core import progress
from deeplab_tf import visualization
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import preprocess

SEMANTIC_FOLDER = 'segmentation_results'
RAW_FOLDER = 'raw_segmentation_results'
IMAGE_FORMAT = '%06d_image.png'
PREDICTION_FORMAT = '%06d_prediction.png'
OVERLAY_FORMAT = '%06d_overlay.png'
LABEL_FORMAT = '%06d_label.png'


class VisError(DeeplabError, ValueError):
  """Visualisation settings or inputs that cannot work."""


def raw_id_table_for(dataset_name):
  """The label-id mapping the original applies to raw predictions, or None.

  Only Cityscapes: the model predicts trainIds, the evaluation server reads
  labelIds.
  """
  if dataset_name == 'cityscapes':
    return visualization.CITYSCAPES_TRAIN_ID_TO_LABEL_ID
  return None


def colormap_for(colormap_type, descriptor):
  """The colours for a ``--colormap_type``: a palette name, or ``dataset``
  (the description's ``label_colours``, the one rule every picture uses)."""
  if colormap_type != visualization.DATASET_COLORMAP:
    visualization.get_colormap(colormap_type)   # fails on an unknown name
    return colormap_type
  return datasets_info.get_descriptor(descriptor).label_colours


@dataclasses.dataclass(frozen=True)
class VisSettings:
  """What to write and how.

  Attributes:
    vis_logdir: output folder (the two result folders are made inside).
    colormap: a colormap name (``visualization.COLORMAP_NAMES``) or RGB
      colours, one per class id.
    also_save_raw_predictions: also write the label ids as 8-bit PNGs.
    raw_id_table: ids rewritten in raw predictions (``raw_id_table_for``).
    save_overlay: write ``%06d_overlay.png``.
    overlay_alpha: weight of the prediction colours in the overlay (0: the
      image only, 1: the colours only).
    save_labels: write ``%06d_label.png`` when the split has labels.
    min_resize_value, max_resize_value, resize_factor: the input resize,
      undone on the outputs (same values as the input pipeline's).
  """
  vis_logdir: str
  colormap: object = 'pascal'
  also_save_raw_predictions: bool = False
  raw_id_table: Optional[Tuple[int, ...]] = None
  save_overlay: bool = True
  overlay_alpha: float = 0.5
  save_labels: bool = True
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None

  def __post_init__(self):
    if not isinstance(self.vis_logdir, str) or not self.vis_logdir:
      raise VisError('vis_logdir must be a non-empty folder path; got %r.'
                     % (self.vis_logdir,))
    try:
      visualization.resolve_colormap(self.colormap)
    except ValueError as e:
      raise VisError(str(e)) from None
    if not isinstance(self.overlay_alpha, (int, float)) or not (
        0.0 <= self.overlay_alpha <= 1.0):
      raise VisError('overlay_alpha must be a number in [0, 1]; got %r.'
                     % (self.overlay_alpha,))
    if self.raw_id_table is not None:
      table = tuple(self.raw_id_table)
      if not all(isinstance(v, int) and 0 <= v <= 255 for v in table):
        raise VisError('raw_id_table must be ids in [0, 255]; got %r.'
                       % (self.raw_id_table,))
      object.__setattr__(self, 'raw_id_table', table)
    if self.max_resize_value and not self.min_resize_value:
      raise VisError('max_resize_value=%r needs min_resize_value (the short '
                     'side target of the resize).' % (self.max_resize_value,))

  @property
  def save_dir(self):
    return os.path.join(self.vis_logdir, SEMANTIC_FOLDER)

  @property
  def raw_save_dir(self):
    return os.path.join(self.vis_logdir, RAW_FOLDER)


def check_inputs(descriptor, split_name, record_dir, checkpoint_dir,
                 wait_for_checkpoint=False):
  """Fails before a model is built: unknown split, no records, no checkpoint.

  Args:
    descriptor: a ``DatasetDescriptor``, dataset name or JSON path.
    split_name / record_dir: the split and the folder of its shards.
    checkpoint_dir: a train_logdir or a checkpoint prefix.
    wait_for_checkpoint: accept an existing folder without a checkpoint yet
      (a continuous run started beside its trainer waits for the first one).

  Returns:
    The ``DatasetDescriptor``.
  """
  descriptor = datasets_info.get_descriptor(descriptor)
  descriptor.check_split(split_name)
  pipeline.list_shards(record_dir, split_name)
  if not (wait_for_checkpoint and tf.io.gfile.isdir(checkpoint_dir)):
    checkpoints.find_checkpoint(checkpoint_dir)
  return descriptor


# ---------------------------------------------------------------------------
# Undoing the input geometry.
# ---------------------------------------------------------------------------

def resized_size(height, width, min_resize_value=None, max_resize_value=None,
                 resize_factor=None):
  """(h, w) of an image of ``height x width`` after the input pipeline's resize.

  The same rule as the pipeline (``preprocess.resize_to_range_size``), so the
  valid region of a padded prediction is known for every image of a batch.
  """
  if not (min_resize_value or max_resize_value):
    return int(height), int(width)
  size = preprocess.resize_to_range_size(int(height), int(width),
                                         min_resize_value, max_resize_value,
                                         resize_factor)
  return int(size[0]), int(size[1])


def restore_labels(labels, resized_hw, original_hw):
  """Cuts a padded [H', W'] label map to ``resized_hw`` and resizes it back.

  Nearest neighbour with align_corners, as the original vis.py, so every
  output value is one of the input's.
  """
  labels = np.asarray(labels)
  rh, rw = resized_hw
  if labels.ndim != 2 or labels.shape[0] < rh or labels.shape[1] < rw:
    raise VisError('Expected a [H, W] label map of at least %d x %d; got shape '
                   '%s.' % (rh, rw, labels.shape))
  labels = labels[:rh, :rw]
  if (rh, rw) == tuple(original_hw):
    return labels
  resized = geometry.resize_nearest(labels[:, :, np.newaxis],
                                    list(original_hw))
  return resized.numpy()[:, :, 0].astype(labels.dtype)


def restore_image(image, resized_hw, original_hw):
  """Cuts a padded [H', W', 3] image to ``resized_hw``; bilinear back; uint8."""
  image = np.asarray(image)
  rh, rw = resized_hw
  if image.ndim != 3 or image.shape[0] < rh or image.shape[1] < rw:
    raise VisError('Expected a [H, W, 3] image of at least %d x %d; got shape '
                   '%s.' % (rh, rw, image.shape))
  image = image[:rh, :rw]
  if (rh, rw) != tuple(original_hw):
    # align_corners as the forward resize (resize_to_range), so this is its
    # geometric inverse.
    image = geometry.resize_bilinear(image.astype(np.float32),
                                     list(original_hw)).numpy()
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Files.
# ---------------------------------------------------------------------------

def encode_png(array):
  """PNG bytes of a uint8 [H, W] (grey / label ids) or RGB [H, W, 3] array."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    if array.min(initial=0) < 0 or array.max(initial=0) > 255:
      raise VisError('Only values in [0, 255] fit an 8-bit PNG; got [%d, %d].'
                     % (array.min(), array.max()))
    array = array.astype(np.uint8)
  if array.ndim == 3 and array.shape[2] == 3:
    array = array[:, :, ::-1]   # OpenCV writes BGR.
  elif array.ndim != 2:
    raise VisError('Expected a [H, W] or [H, W, 3] array; got shape %s.'
                   % (array.shape,))
  ok, data = cv2.imencode('.png', np.ascontiguousarray(array))
  if not ok:
    raise VisError('PNG encoding failed for an array of shape %s.'
                   % (array.shape,))
  return data.tobytes()


def write_png(path, array):
  """Writes ``array`` (see ``encode_png``) to a local or gfile ``path``."""
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(encode_png(array))
  return path


def raw_prediction_filename(filename):
  """``<basename of image/filename>.png``, the original's raw output name."""
  if isinstance(filename, bytes):
    filename = filename.decode('utf-8')
  name = os.path.basename(filename)
  if not name:
    raise VisError('Record image/filename %r has no base name to name the raw '
                   'prediction after.' % (filename,))
  return name + '.png'


def prepare_output_dirs(settings: VisSettings):
  tf.io.gfile.makedirs(settings.save_dir)
  if settings.also_save_raw_predictions:
    tf.io.gfile.makedirs(settings.raw_save_dir)


@dataclasses.dataclass
class Sample:
  """One image's outputs at its original size."""
  image: np.ndarray                 # uint8 [H, W, 3]
  prediction: np.ndarray            # int [H, W]
  filename: str
  label: Optional[np.ndarray] = None   # int [H, W] with the ignore label


def save_sample(index, sample: Sample, settings: VisSettings):
  """Writes the files of image ``index``; returns their paths."""
  colours = visualization.colorize(sample.prediction, settings.colormap)
  out = settings.save_dir
  paths = [write_png(os.path.join(out, IMAGE_FORMAT % index), sample.image),
           write_png(os.path.join(out, PREDICTION_FORMAT % index), colours)]
  if settings.save_overlay:
    paths.append(write_png(
        os.path.join(out, OVERLAY_FORMAT % index),
        visualization.overlay(sample.image, colours, settings.overlay_alpha)))
  if settings.save_labels and sample.label is not None:
    # Ours (the original draws no groundtruth): its ignore label may lie past
    # a named table (Mapillary's 255, 66 entries), so such ids are black.
    paths.append(write_png(
        os.path.join(out, LABEL_FORMAT % index),
        visualization.colorize(sample.label, settings.colormap,
                               beyond_table='black')))
  if settings.also_save_raw_predictions:
    raw = sample.prediction
    if settings.raw_id_table is not None:
      raw = visualization.map_label_ids(raw, settings.raw_id_table)
    paths.append(write_png(
        os.path.join(settings.raw_save_dir,
                     raw_prediction_filename(sample.filename)), raw))
  return paths


def batch_samples(batch, predictions,
                  settings: VisSettings) -> Iterator[Sample]:
  """The ``Sample``s of one pipeline batch and its [B, H', W'] predictions.

  ``batch`` is a numpy dict of the eval pipeline (``keep_original_image``):
  ``original_image``, ``height``, ``width``, ``filename``, ``label`` (if any).
  """
  predictions = np.asarray(predictions)
  for i in range(predictions.shape[0]):
    original_hw = (int(batch['height'][i]), int(batch['width'][i]))
    resized_hw = resized_size(*original_hw, settings.min_resize_value,
                              settings.max_resize_value,
                              settings.resize_factor)
    label = None
    if 'label' in batch:
      label = restore_labels(np.asarray(batch['label'][i])[..., 0],
                             resized_hw, original_hw)
    yield Sample(
        image=restore_image(batch['original_image'][i], resized_hw,
                            original_hw),
        prediction=restore_labels(predictions[i], resized_hw, original_hw),
        filename=batch['filename'][i],
        label=label)


# ---------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------

def visualize_dataset(predict_fn: Callable, dataset, settings: VisSettings,
                      total: Optional[int] = None,
                      log: Optional[Callable[[str], None]] = None,
                      progress_secs: float = 10.0) -> int:
  """Writes the files of every image of ``dataset``; returns the image count.

  Args:
    predict_fn: images -> labels (``make_predict_fn``).
    dataset: the eval pipeline (``keep_original_image=True``), in a fixed
      order so numbers name the same image for every checkpoint.
    settings: ``VisSettings``.
    total: images expected (for the ETA), or None.
    log: receives a progress line at most every ``progress_secs`` and a final
      one.
  """
  prepare_output_dirs(settings)
  line = progress.ProgressLog(log or (lambda text: None), total,
                              every_secs=progress_secs, prefix='visualised ')
  index = 0
  for batch in dataset:
    if 'original_image' not in batch:
      raise VisError('The dataset must keep the original image '
                     '(InputSettings(keep_original_image=True)).')
    predictions = np.asarray(predict_fn(batch['image']))
    batch = {k: np.asarray(v) for k, v in batch.items()}
    for sample in batch_samples(batch, predictions, settings):
      save_sample(index, sample, settings)
      index += 1
    line.update(index)
  line.finish(index, ' into %s' % settings.vis_logdir)
  return index


def visualize_checkpoint(predictor, checkpoint, dataset, settings: VisSettings,
                         predict_fn: Callable,
                         total: Optional[int] = None,
                         log: Optional[Callable[[str], None]] = None,
                         progress_secs: float = 10.0) -> int:
  """Restores ``checkpoint`` into ``predictor`` and visualises ``dataset``.

  ``predict_fn`` (images -> labels, ``evaluation.evaluate.make_predict_fn``)
  is traced once and reused across checkpoints: the variables change, the
  graph does not.
  """
  message = checkpoints.restore_model(predictor, checkpoint)
  if log:
    log(message)
  return visualize_dataset(predict_fn, dataset,
                           settings, total=total, log=log,
                           progress_secs=progress_secs)

