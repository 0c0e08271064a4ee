"""Raw panoptic annotations -> panoptic TFRecord shards (``panoptic_records``).

The panoptic counterpart of ``semantic.write_split``, through the same
``shards.ShardWriter`` (the original's shard names and order, hidden temporary
names renamed only when the whole split succeeded), every sample validated with an
error naming the file (``ConversionError``), ``skip_bad`` to skip and
list bad samples instead, and a progress line with images/s and ETA.

A converter gives ``PanopticSample(image_path, filename, load_maps)``:
``load_maps()`` returns the (category, instance) int maps of the image, read
from whatever the dataset ships (Cityscapes instanceIds PNGs, COCO panoptic
PNG + JSON, ...).
"""
import dataclasses
import sys
import time
from typing import Callable, List, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_tf.core import progress
from deeplab_tf.data import panoptic_records
from deeplab_tf.data.convert import shards
from deeplab_tf.data.convert.shards import ConversionError


@dataclasses.dataclass(frozen=True)
class PanopticSample:
  image_path: str
  filename: str
  load_maps: Callable[[], Tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass
class PanopticConvertSettings:
  output_dir: str
  split_name: str
  label_divisor: int
  num_classes: int
  num_shards: int = 10
  ignore_label: int = 255
  skip_bad: bool = False
  log_every: int = 100
  # 'raw' int32 (deeplab2's layout) or 'panoptic_png' (ours, compact; panoptic_records).
  label_format: str = panoptic_records.RAW_FORMAT
  # Stop after this many samples (a quick look at a big dataset); 0: all.
  max_images: int = 0


@dataclasses.dataclass
class PanopticConvertSummary:
  split_name: str
  num_written: int
  skipped: List[str]
  shard_files: List[str]
  seconds: float
  num_segments: int

  def line(self):
    return ('%s: %d images, %d segments, %d shards, %d skipped, %.1f s'
            % (self.split_name, self.num_written, self.num_segments,
               len(self.shard_files), len(self.skipped), self.seconds))

  def report(self, out=None, err=None):
    """Script output: each skipped sample on stderr, then the summary line."""
    for bad in self.skipped:
      (err or sys.stderr).write('skipped %s\n' % bad)
    (out or sys.stdout).write(self.line() + '\n')


def _image_bytes(path):
  data = shards.read_file_bytes(path, 'image')
  try:
    shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
  except tf.errors.OpError:
    raise ConversionError(path, 'cannot decode the image (not a '
                                  'JPEG/PNG, or truncated)') from None
  image_format = 'png' if data.startswith(b'\x89PNG') else 'jpeg'
  return data, int(shape[0]), int(shape[1]), image_format


def _example(sample, settings):
  """(serialized example, number of segments) of one sample; raises ConversionError."""
  data, height, width, image_format = _image_bytes(sample.image_path)
  try:
    category, instance = sample.load_maps()
  except ConversionError:
    raise
  except (ValueError, OSError, KeyError) as e:
    raise ConversionError(sample.image_path,
                                  'cannot read its annotation: %s' % e) from None
  category = np.asarray(category)
  if category.shape != (height, width):
    raise ConversionError(
        sample.image_path, 'annotation is %s, the image %dx%d'
        % ('x'.join(map(str, category.shape)), height, width))
  bad = np.unique(category[(category >= settings.num_classes) &
                           (category != settings.ignore_label)])
  if bad.size:
    raise ConversionError(
        sample.image_path, 'category ids %s outside 0..%d and not the ignore '
        'label %d' % (bad.tolist()[:8], settings.num_classes - 1,
                      settings.ignore_label))
  try:
    panoptic = panoptic_records.encode_panoptic(category, instance,
                                                settings.label_divisor)
  except ValueError as e:
    raise ConversionError(sample.image_path, str(e)) from None
  try:
    example = panoptic_records.panoptic_to_example(
        data, sample.filename, height, width, panoptic,
        image_format=image_format, label_format=settings.label_format)
  except ValueError as e:
    raise ConversionError(sample.image_path, str(e)) from None
  return example.SerializeToString(), int(np.unique(panoptic).size)


def write_panoptic_split(samples: Sequence[PanopticSample],
                         settings: PanopticConvertSettings
                         ) -> PanopticConvertSummary:
  """Writes the split's shards; see the module docstring."""
  if not samples:
    raise ConversionError(None, 'split %r has no samples'
                                  % settings.split_name)
  if settings.label_format not in panoptic_records.LABEL_FORMATS:
    raise ConversionError(None, 'label_format must be one of %s; got '
                                  '%r' % (', '.join(
                                      panoptic_records.LABEL_FORMATS),
                                          settings.label_format))
  if settings.max_images:
    samples = samples[:settings.max_images]
  start = time.time()
  skipped = []
  written = segments = 0
  with shards.ShardWriter(settings.output_dir, settings.split_name,
                          settings.num_shards, len(samples)) as out:
    for index, sample in enumerate(samples):
      try:
        serialized, count = _example(sample, settings)
      except ConversionError as e:
        if not settings.skip_bad:
          raise
        out.skip(index)
        skipped.append('#%d %s' % (index, e))
        continue
      out.write(index, serialized)
      written += 1
      segments += count
      done = index + 1
      if done % settings.log_every == 0 or done == len(samples):
        logging.info('%s: %s', settings.split_name, progress.progress_line(
            done, len(samples), time.time() - start,
            final=done == len(samples)))
    finals = out.commit()
  return PanopticConvertSummary(settings.split_name, written, skipped, finals,
                                time.time() - start, segments)
