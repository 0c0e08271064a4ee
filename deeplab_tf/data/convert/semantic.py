"""Raw dataset -> TFRecord shards in the original DeepLab schema.

The writing logic shared by the converters in the top-level ``datasets/``
folder. ``write_split`` takes (image path, label path or None) pairs and
writes ``<output_dir>/<split>-<shard:05d>-of-<num_shards:05d>.tfrecord``,
spreading the pairs over the shards in order exactly as the original
``build_*_data.py`` scripts do (``ceil(N / num_shards)`` pairs per shard, the
last shards possibly shorter or empty).

Every pair is validated while it is written:

* the image is a JPEG or PNG that the readers' own decoder
  (``decode_image(..., channels=3)``) accepts; grey, grey+alpha, palette and
  RGBA files are stored unchanged and become RGB when read (grey replicated,
  alpha dropped), which is also what the original reader does; the summary
  counts them;
* the label is a lossless single-channel PNG (a palette PNG is refused: run
  ``datasets/remove_gt_colormap.py`` first), of the image's size;
* after the optional remap (e.g. ``{11: 255}``) every label value is in
  ``[0, num_classes)`` or is the ignore label.

The encoded bytes of the source files are written unchanged when they need no
change; a label is re-encoded (PNG) only when the remap changes a pixel or its
bit depth is not 8. The sorted classes present (the ignore label excluded) go
to the extra ``records.LABEL_CLASSES_PRESENT`` key.

A bad pair raises ``ConversionError`` naming the file and the reason, and no
shard is left behind looking complete: shards are written under hidden
temporary names (which the ``<split>-*`` reader pattern does not match) and
renamed only once the whole split succeeded. With ``skip_bad`` the pair is
skipped, counted, and listed in the summary.

Also here, so the scripts and the tests share them: the list-file reader and
the ``--label_remap`` parser. The shard protocol itself is ``shards.py``.
"""
import collections
import concurrent.futures
import dataclasses
import os
import re
import struct
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_tf.core import progress
from deeplab_tf.data import records
from deeplab_tf.data.convert import shards
from deeplab_tf.data.convert.shards import ConversionError
from deeplab_tf.data.convert.shards import tf_error_text

_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# PNG colour types (IHDR byte 9) -> (channels, name).
_PNG_COLOUR_TYPES = {0: (1, 'grey'), 2: (3, 'RGB'), 3: (3, 'palette'),
                     4: (2, 'grey+alpha'), 6: (4, 'RGBA')}


class Sample(collections.namedtuple('Sample',
                                    ['image_path', 'label_path', 'filename'])):
  """One image and its label (``None`` for unlabelled splits).

  ``filename`` is what goes to ``image/filename``; ``None`` means the image's
  base name without extension (the VOC script's choice).
  """
  __slots__ = ()

  def __new__(cls, image_path, label_path=None, filename=None):
    return super().__new__(cls, image_path, label_path, filename)


@dataclasses.dataclass
class ConvertSettings:
  """How ``write_split`` writes and checks one split."""
  output_dir: str
  split_name: str
  num_shards: int = 4
  # Label values must be in [0, num_classes) or equal ignore_label (after the
  # remap). None disables the range check (values must still fit uint8).
  num_classes: Optional[int] = None
  ignore_label: int = 255
  # Applied to label values before the checks, e.g. {11: 255} (CamVid void).
  label_remap: Dict[int, int] = dataclasses.field(default_factory=dict)
  # False: the first bad pair raises ConversionError. True: skip and list it.
  skip_bad: bool = False
  # Progress line (images/s, ETA) every this many images, and at the end.
  log_every: int = 100
  # Decoding/validation threads (TF decoders release the GIL); records are
  # still written in input order.
  num_threads: int = 2
  # Remove '<split>-NNNNN-of-MMMMM.tfrecord' files of an earlier run with a
  # different shard count after a successful run, so '<split>-*' matches only
  # the new shards.
  remove_stale_shards: bool = True
  # Optional label source hook: called with the label path; returns None to
  # read the file as a PNG, or a 2-D integer array to use instead (encoded as
  # PNG into the record), e.g. SBD .mat files or labels derived on the fly.
  label_loader: Optional[Callable[[str], Optional[np.ndarray]]] = None


@dataclasses.dataclass
class BadPair:
  index: int
  path: str
  reason: str

  def __str__(self):
    return '#%d %s: %s' % (self.index, self.path, self.reason)


@dataclasses.dataclass
class ConvertSummary:
  """What ``write_split`` did."""
  split_name: str
  output_dir: str
  num_inputs: int
  num_written: int
  skipped: List[BadPair]
  shard_files: List[str]
  shard_counts: List[int]
  seconds: float
  # Pixels per label value after the remap (index = value, 256 entries, the
  # ignore label included) and number of images containing each value.
  class_pixels: np.ndarray
  class_images: np.ndarray
  # Images stored as-is whose decoder output is converted to RGB at read
  # time, by source kind ('grey', 'grey+alpha', 'palette', 'RGBA', ...).
  converted_at_read: Dict[str, int]
  labels_reencoded: int
  stale_shards_removed: List[str]

  @property
  def num_skipped(self):
    return len(self.skipped)

  @property
  def images_per_second(self):
    return self.num_written / self.seconds if self.seconds > 0 else 0.0

  def line(self):
    """One line: records written, skipped, shards, speed."""
    return ('summary: split=%s written=%d skipped=%d shards=%d counts=%s '
            'seconds=%.2f images_per_s=%.1f output=%s' % (
                self.split_name, self.num_written, self.num_skipped,
                len(self.shard_files),
                ','.join(str(c) for c in self.shard_counts), self.seconds,
                self.images_per_second, self.output_dir))


# ---------------------------------------------------------------------------
# Reading and checking one pair.
# ---------------------------------------------------------------------------

class _Bad(Exception):
  """Internal: a bad pair; converted to BadPair / ConversionError."""

  def __init__(self, path, reason):
    super().__init__(path, reason)
    self.path = path
    self.reason = reason


@dataclasses.dataclass
class _Done:
  serialized: bytes
  hist: Optional[np.ndarray]          # int64[256] after remap, None: no label
  classes: Optional[List[int]]
  converted_kind: Optional[str]       # source kind converted at read time
  label_reencoded: bool


def _read_bytes(path, what):
  try:
    return shards.read_file_bytes(path, what)
  except ConversionError as e:
    raise _Bad(e.path, e.reason) from None


def _sniff(data):
  if data.startswith(_JPEG_MAGIC):
    return 'jpeg'
  if data.startswith(_PNG_MAGIC):
    return 'png'
  if data[:6] in (b'GIF87a', b'GIF89a'):
    return 'gif'
  if data[:2] == b'BM':
    return 'bmp'
  return None


def png_header(data):
  """(width, height, bit_depth, colour_type) from a PNG's IHDR, or None."""
  if not data.startswith(_PNG_MAGIC) or len(data) < 33 or data[12:16] != b'IHDR':
    return None
  width, height, bit_depth, colour_type = struct.unpack('>IIBB', data[16:26])
  return width, height, bit_depth, colour_type


def _check_image(path, data):
  """Validates an image the way the readers decode it; returns (fmt, h, w, kind)."""
  fmt = _sniff(data)
  if fmt not in ('jpeg', 'png'):
    head = data[:8]
    raise _Bad(path, 'not a JPEG or PNG image (%s; first bytes %r)' % (
        '%s file' % fmt.upper() if fmt else 'unknown format', head))
  kind = None
  if fmt == 'png':
    header = png_header(data)
    if header is None:
      raise _Bad(path, 'corrupt PNG: no IHDR header')
    kind = _PNG_COLOUR_TYPES.get(header[3], (0, 'unknown'))[1]
  else:
    try:
      channels = int(tf.io.extract_jpeg_shape(data)[2])
    except tf.errors.OpError as e:
      raise _Bad(path, 'cannot decode JPEG image (corrupt or truncated?): '
                 'bad header: %s' % tf_error_text(e)) from None
    kind = {1: 'grey', 3: 'RGB', 4: 'CMYK'}.get(channels, '%d-channel' % channels)
  try:
    if fmt == 'jpeg':
      image = tf.io.decode_jpeg(data, channels=3)
    else:
      image = tf.io.decode_png(data, channels=3)
  except tf.errors.OpError as e:
    raise _Bad(path, 'cannot decode %s image (corrupt or truncated?): %s' % (
        fmt.upper(), tf_error_text(e))) from None
  height, width = int(image.shape[0]), int(image.shape[1])
  if height == 0 or width == 0:
    raise _Bad(path, 'image has zero size %dx%d' % (height, width))
  return fmt, height, width, (None if kind == 'RGB' else kind)


def _decode_label_png(path, data):
  """The label as a uint8/uint16 2-D array; raises _Bad for non-index PNGs."""
  fmt = _sniff(data)
  if fmt == 'jpeg':
    raise _Bad(path, 'label is a JPEG: labels must be lossless single-channel '
               'PNGs (JPEG changes the class values)')
  if fmt != 'png':
    raise _Bad(path, 'label is not a PNG (%s; first bytes %r)' % (
        '%s file' % fmt.upper() if fmt else 'unknown format', data[:8]))
  header = png_header(data)
  if header is None:
    raise _Bad(path, 'corrupt PNG label: no IHDR header')
  _, _, bit_depth, colour_type = header
  if colour_type == 3:
    raise _Bad(path, 'label is a palette (colour-mapped) PNG: convert it to '
               'raw class indices first (datasets/remove_gt_colormap.py)')
  if colour_type != 0:
    channels, name = _PNG_COLOUR_TYPES.get(colour_type, (0, 'unknown'))
    raise _Bad(path, 'label must have a single channel, this PNG is %s '
               '(%d channels)' % (name, channels))
  try:
    label = tf.io.decode_png(
        data, channels=1,
        dtype=tf.uint16 if bit_depth == 16 else tf.uint8).numpy()[..., 0]
  except tf.errors.OpError as e:
    raise _Bad(path, 'cannot decode PNG label (corrupt or truncated?): %s' %
               tf_error_text(e)) from None
  if bit_depth < 8:
    # libpng scales 1/2/4-bit grey to 0..255; undo it to get the indices.
    label = label // (255 // ((1 << bit_depth) - 1))
  return label, bit_depth


def _as_label_array(path, array):
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim != 2:
    raise _Bad(path, 'label must be a 2-D array, got shape %s' % (array.shape,))
  if array.size and (array.min() < 0 or array.max() > 255):
    raise _Bad(path, 'label values must be in 0..255, got %d..%d' % (
        array.min(), array.max()))
  return array.astype(np.uint8)


def _describe_values(values, limit=8):
  values = [int(v) for v in values]
  text = ', '.join(str(v) for v in values[:limit])
  return text + (', ... (%d values)' % len(values) if len(values) > limit else '')


def _process(sample, settings, lut, remap_sources):
  """Reads, checks and serialises one pair; raises _Bad."""
  image_path, label_path, filename = sample
  image_data = _read_bytes(image_path, 'image')
  fmt, height, width, kind = _check_image(image_path, image_data)
  if filename is None:
    filename = os.path.splitext(os.path.basename(image_path))[0]

  if label_path is None:
    example = records.image_seg_to_example(
        image_data, filename, height, width, b'', image_format=fmt)
    return _Done(example.SerializeToString(), None, None, kind, False)

  label = None
  label_data = None
  needs_encode = False
  if settings.label_loader is not None:
    try:
      loaded = settings.label_loader(label_path)
    except _Bad:
      raise
    except ConversionError as e:
      raise _Bad(e.path or label_path, e.reason) from None
    except Exception as e:  # pylint: disable=broad-except
      raise _Bad(label_path, 'cannot load label: %s: %s' % (
          type(e).__name__, e)) from None
    if loaded is not None:
      label = _as_label_array(label_path, loaded)
      needs_encode = True
  if label is None:
    label_data = _read_bytes(label_path, 'label')
    label, bit_depth = _decode_label_png(label_path, label_data)
    if bit_depth == 16:
      if label.size and label.max() > 255:
        raise _Bad(label_path, '16-bit label with values up to %d: label '
                   'values must fit in 0..255' % label.max())
      label = label.astype(np.uint8)
    needs_encode = bit_depth != 8

  if label.shape != (height, width):
    raise _Bad(label_path, 'label size %dx%d (HxW) differs from image size '
               '%dx%d of %s' % (label.shape[0], label.shape[1], height, width,
                                image_path))

  hist = np.bincount(label.ravel(), minlength=256).astype(np.int64)
  if remap_sources and hist[remap_sources].any():
    label = lut[label]
    new_hist = np.zeros(256, np.int64)
    np.add.at(new_hist, lut, hist)
    hist = new_hist
    needs_encode = True
  present = np.flatnonzero(hist)
  if settings.num_classes is not None:
    bad = [v for v in present
           if v >= settings.num_classes and v != settings.ignore_label]
    if bad:
      remap_text = ''
      if settings.label_remap:
        remap_text = ' (after remap %s)' % ','.join(
            '%d->%d' % kv for kv in sorted(settings.label_remap.items()))
      raise _Bad(label_path, 'label values [%s] are outside [0, %d) and are '
                 'not the ignore label %d%s: %d pixels' % (
                     _describe_values(bad), settings.num_classes,
                     settings.ignore_label, remap_text,
                     int(hist[bad].sum())))
  classes = [int(v) for v in present if v != settings.ignore_label]
  if needs_encode:
    label_data = tf.io.encode_png(label[..., None]).numpy()
  example = records.image_seg_to_example(
      image_data, filename, height, width, label_data, image_format=fmt,
      label_format='png', classes_present=classes)
  return _Done(example.SerializeToString(), hist, classes, kind, needs_encode)


def _safe_process(sample, settings, lut, remap_sources):
  try:
    return _process(sample, settings, lut, remap_sources)
  except _Bad as e:
    return e


# ---------------------------------------------------------------------------
# Writing a split.
# ---------------------------------------------------------------------------

def _normalize_samples(samples):
  out = []
  for item in samples:
    if isinstance(item, Sample):
      out.append(item)
    elif isinstance(item, (tuple, list)) and 1 <= len(item) <= 3:
      out.append(Sample(*item))
    elif isinstance(item, (str, os.PathLike)):
      out.append(Sample(item))
    else:
      raise TypeError('expected (image_path, label_path) pairs, got %r' % (item,))
  return [Sample(os.fspath(s.image_path),
                 None if s.label_path is None else os.fspath(s.label_path),
                 s.filename) for s in out]


def _build_lut(label_remap):
  lut = np.arange(256, dtype=np.uint8)
  for src, dst in label_remap.items():
    if not (0 <= int(src) <= 255 and 0 <= int(dst) <= 255):
      raise ValueError('label remap %s->%s: values must be in 0..255' % (src, dst))
    lut[int(src)] = int(dst)
  sources = sorted(int(s) for s, d in label_remap.items() if int(s) != int(d))
  return lut, sources


def write_split(samples: Iterable, settings: ConvertSettings) -> ConvertSummary:
  """Converts (image path, label path or None) pairs into TFRecord shards.

  Raises:
    ConversionError: on the first bad pair (``skip_bad`` off), naming the file
      and the reason; when there is nothing to convert; or when every pair
      was bad. No complete-looking shard is left behind in these cases.
  """
  samples = _normalize_samples(samples)
  split = settings.split_name
  if not samples:
    raise ConversionError(None, 'split %r: nothing to convert (empty list of '
                          'image/label pairs)' % split)
  labelled = [s.label_path is not None for s in samples]
  if any(labelled) and not all(labelled):
    odd = samples[labelled.index(False)]
    raise ConversionError(odd.image_path, 'has no label while other images of '
                          'split %r have one' % split)
  if settings.num_classes is not None and settings.num_classes < 1:
    raise ValueError('num_classes must be >= 1')
  lut, remap_sources = _build_lut(settings.label_remap)

  total = len(samples)
  skipped = []
  class_pixels = np.zeros(256, np.int64)
  class_images = np.zeros(256, np.int64)
  converted = collections.Counter()
  reencoded = 0
  written = 0
  start_time = time.time()
  log_every = max(1, int(settings.log_every))

  def report(done, shard_id, final=False):
    logging.info('%s: %s, shard %d/%d%s', split, progress.progress_line(
        done, total, time.time() - start_time, final=final), shard_id + 1,
                 settings.num_shards,
                 ', %d skipped' % len(skipped) if skipped else '')

  # ShardWriter checks num_shards before it creates the output folder.
  with shards.ShardWriter(settings.output_dir, split, settings.num_shards,
                          total) as out:
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, int(settings.num_threads)))
    try:
      pending = collections.deque()
      next_submit = 0
      window = 2 * max(1, int(settings.num_threads))
      for index in range(total):
        while next_submit < total and len(pending) < window:
          pending.append(executor.submit(_safe_process, samples[next_submit],
                                         settings, lut, remap_sources))
          next_submit += 1
        result = pending.popleft().result()
        if isinstance(result, _Bad):
          shard_id = out.skip(index)
          bad = BadPair(index, result.path, result.reason)
          if not settings.skip_bad:
            raise ConversionError(result.path, result.reason)
          logging.warning('%s: skipping %s', split, bad)
          skipped.append(bad)
        else:
          shard_id = out.write(index, result.serialized)
          written += 1
          if result.hist is not None:
            class_pixels += result.hist
            class_images[np.flatnonzero(result.hist)] += 1
          if result.converted_kind:
            converted[result.converted_kind] += 1
          reencoded += int(result.label_reencoded)
        done = index + 1
        if done % log_every == 0 and done < total:
          report(done, shard_id)
      if written == 0:
        raise ConversionError(None, 'split %r: all %d pairs were bad, nothing '
                              'written:\n  %s' % (split, total, '\n  '.join(
                                  str(b) for b in skipped)))
      finals = out.commit()
    finally:
      executor.shutdown(wait=True, cancel_futures=True)

  seconds = time.time() - start_time
  report(total, settings.num_shards - 1, final=True)
  stale = []
  if settings.remove_stale_shards:
    stale = shards.remove_stale_shards(settings.output_dir, split, finals)
  if skipped:
    logging.warning('%s: skipped %d bad pair(s):\n  %s', split, len(skipped),
                    '\n  '.join(str(b) for b in skipped))
  if converted:
    logging.info('%s: images stored as-is and converted to RGB when read: %s',
                 split, dict(converted))
  return ConvertSummary(
      split_name=split, output_dir=settings.output_dir, num_inputs=total,
      num_written=written, skipped=skipped, shard_files=finals,
      shard_counts=list(out.shard_counts), seconds=seconds, class_pixels=class_pixels,
      class_images=class_images, converted_at_read=dict(converted),
      labels_reencoded=reencoded, stale_shards_removed=stale)


# ---------------------------------------------------------------------------
# Helpers for the scripts.
# ---------------------------------------------------------------------------

def read_pair_list(list_path, root=''):
  """Reads an ``IMAGE [LABEL]`` list (one pair per line, paths relative to root).

  Blank lines and lines starting with '#' are ignored; a line with one path
  is an unlabelled image. Raises ConversionError naming the list for a
  missing or empty list or a malformed line.
  """
  if not tf.io.gfile.exists(list_path):
    raise ConversionError(list_path, 'list file not found')
  with tf.io.gfile.GFile(list_path, 'r') as f:
    lines = f.read().splitlines()
  samples = []
  for number, line in enumerate(lines, 1):
    fields = line.split()
    if not fields or fields[0].startswith('#'):
      continue
    if len(fields) > 2:
      raise ConversionError(list_path, 'line %d: expected "IMAGE LABEL" (2 '
                            'paths), got %d fields: %r' % (number, len(fields),
                                                           line))
    paths = [f if os.path.isabs(f) else os.path.join(root, f) for f in fields]
    samples.append(Sample(paths[0], paths[1] if len(paths) > 1 else None))
  if not samples:
    raise ConversionError(list_path, 'list is empty: no "IMAGE LABEL" lines')
  return samples


def parse_label_remap(values: Sequence[str]) -> Dict[int, int]:
  """``['11:255', '3:1']`` -> ``{11: 255, 3: 1}``; raises ValueError."""
  remap = {}
  for value in values or ():
    for item in str(value).split(','):
      item = item.strip()
      if not item:
        continue
      match = re.fullmatch(r'(\d+)\s*[:=]\s*(\d+)', item)
      if not match:
        raise ValueError('bad --label_remap %r: expected SRC:DST, e.g. 11:255'
                         % item)
      src, dst = int(match.group(1)), int(match.group(2))
      if src > 255 or dst > 255:
        raise ValueError('bad --label_remap %r: values must be in 0..255' % item)
      if src in remap and remap[src] != dst:
        raise ValueError('--label_remap maps %d twice' % src)
      remap[src] = dst
  return remap


def run_split(samples, settings, out=None):
  """Script helper: writes a split, prints the summary; returns an exit code.

  Any ConversionError is printed to stderr as ``ERROR: <file>: <reason>`` and
  gives exit code 1.
  """
  out = out or sys.stdout
  try:
    summary = write_split(samples, settings)
  except ConversionError as e:
    sys.stderr.write('ERROR: %s\n' % e)
    sys.stderr.flush()
    return 1, None
  if summary.skipped:
    sys.stderr.write('skipped %d bad pair(s):\n' % len(summary.skipped))
    for bad in summary.skipped:
      sys.stderr.write('  %s\n' % bad)
    sys.stderr.flush()
  out.write(summary.line() + '\n')
  out.flush()
  return 0, summary


def encode_label_png(label):
  """A 2-D uint8 array as PNG bytes (the encoder used for re-encoded labels)."""
  return tf.io.encode_png(np.asarray(label, np.uint8)[..., None]).numpy()


def write_label_png(label, path):
  """Writes a label PNG through a temp name, so a crash leaves no partial file."""
  temp = shards.temp_name(path)
  with tf.io.gfile.GFile(temp, 'wb') as f:
    f.write(encode_label_png(label))
  tf.io.gfile.rename(temp, path, overwrite=True)
