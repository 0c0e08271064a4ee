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

Also here, so the scripts and the tests share them: the list-file reader, the
``--label_remap`` parser, palette PNG -> index array (``remove_gt_colormap``),
the Cityscapes id -> trainId table and polygon rasteriser, and the SBD
``.mat`` reader.
"""
import collections
import concurrent.futures
import dataclasses
import json
import math
import os
import re
import struct
import sys
import time
import zlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import records
from deeplab_tf.core.progress import format_duration

_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
# PNG colour types (IHDR byte 9) -> (channels, name).
_PNG_COLOUR_TYPES = {0: (1, 'grey'), 2: (3, 'RGB'), 3: (3, 'palette'),
                     4: (2, 'grey+alpha'), 6: (4, 'RGBA')}


class ConversionError(DeeplabError):
  """A bad input: ``path`` is the offending file (or list), ``reason`` says why."""

  def __init__(self, path, reason):
    self.path = path
    self.reason = reason
    super().__init__('%s: %s' % (path, reason) if path else reason)


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


def _tf_error_text(err):
  text = getattr(err, 'message', None) or str(err)
  text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', text)
  text = re.sub(r'\s*\[Op:\w+\]\s*$', '', text)
  return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _read_bytes(path, what):
  try:
    if not tf.io.gfile.exists(path):
      raise _Bad(path, '%s file not found' % what)
    if tf.io.gfile.isdir(path):
      raise _Bad(path, '%s path is a directory, not a file' % what)
    with tf.io.gfile.GFile(path, 'rb') as f:
      data = f.read()
  except _Bad:
    raise
  except (OSError, tf.errors.OpError) as e:
    raise _Bad(path, 'cannot read %s file: %s' % (
        what, getattr(e, 'strerror', None) or _tf_error_text(e))) from None
  if not data:
    raise _Bad(path, '%s file is empty (0 bytes)' % what)
  return data


def read_file_bytes(path, what):
  """A file's bytes; ConversionError naming it if absent, a folder, unreadable or empty."""
  try:
    return _read_bytes(path, what)
  except _Bad as e:
    raise ConversionError(e.path, e.reason) from None


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
                 'bad header: %s' % _tf_error_text(e)) from None
    kind = {1: 'grey', 3: 'RGB', 4: 'CMYK'}.get(channels, '%d-channel' % channels)
  try:
    if fmt == 'jpeg':
      image = tf.io.decode_jpeg(data, channels=3)
    else:
      image = tf.io.decode_png(data, channels=3)
  except tf.errors.OpError as e:
    raise _Bad(path, 'cannot decode %s image (corrupt or truncated?): %s' % (
        fmt.upper(), _tf_error_text(e))) from None
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
               _tf_error_text(e)) from None
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

def shard_assignment(num_images, num_shards):
  """Per-shard [start, end) ranges as the original scripts compute them."""
  if num_shards < 1:
    raise ValueError('num_shards must be >= 1, got %d' % num_shards)
  per_shard = int(math.ceil(num_images / float(num_shards)))
  return [(min(s * per_shard, num_images), min((s + 1) * per_shard, num_images))
          for s in range(num_shards)]


def _temp_name(final_path):
  # Hidden name: does not match the '<split>-*' pattern readers glob.
  head, tail = os.path.split(final_path)
  return os.path.join(head, '.%s.tmp-%d' % (tail, os.getpid()))


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
  ranges = shard_assignment(len(samples), settings.num_shards)
  shard_of = np.zeros(len(samples), np.int64)
  for shard_id, (start, end) in enumerate(ranges):
    shard_of[start:end] = shard_id

  tf.io.gfile.makedirs(settings.output_dir)
  finals = [records.shard_filename(settings.output_dir, split, s,
                                   settings.num_shards)
            for s in range(settings.num_shards)]
  temps = [_temp_name(p) for p in finals]

  total = len(samples)
  skipped = []
  shard_counts = [0] * settings.num_shards
  class_pixels = np.zeros(256, np.int64)
  class_images = np.zeros(256, np.int64)
  converted = collections.Counter()
  reencoded = 0
  written = 0
  start_time = time.time()
  log_every = max(1, int(settings.log_every))

  def progress(done, shard_id, final=False):
    elapsed = time.time() - start_time
    rate = done / elapsed if elapsed > 0 else float('inf')
    eta = (total - done) / rate if rate > 0 and math.isfinite(rate) else None
    logging.info('%s: %s%d/%d images (%.1f%%), %.1f images/s, %s, shard %d/%d'
                 '%s', split, 'done ' if final else '', done, total,
                 100.0 * done / total, rate if math.isfinite(rate) else 0.0,
                 'elapsed %s' % format_duration(elapsed) if final
                 else 'ETA %s' % format_duration(eta), shard_id + 1,
                 settings.num_shards,
                 ', %d skipped' % len(skipped) if skipped else '')

  writer = None
  writer_shard = -1
  opened = []
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
      shard_id = int(shard_of[index])
      while writer_shard < shard_id:
        # Open every shard in order, so empty shards exist as in the original.
        if writer is not None:
          writer.close()
        writer_shard += 1
        writer = tf.io.TFRecordWriter(temps[writer_shard])
        opened.append(temps[writer_shard])
      if isinstance(result, _Bad):
        bad = BadPair(index, result.path, result.reason)
        if not settings.skip_bad:
          raise ConversionError(result.path, result.reason)
        logging.warning('%s: skipping %s', split, bad)
        skipped.append(bad)
      else:
        writer.write(result.serialized)
        written += 1
        shard_counts[shard_id] += 1
        if result.hist is not None:
          class_pixels += result.hist
          class_images[np.flatnonzero(result.hist)] += 1
        if result.converted_kind:
          converted[result.converted_kind] += 1
        reencoded += int(result.label_reencoded)
      done = index + 1
      if done % log_every == 0 and done < total:
        progress(done, shard_id)
    while writer_shard < settings.num_shards - 1:
      if writer is not None:
        writer.close()
      writer_shard += 1
      writer = tf.io.TFRecordWriter(temps[writer_shard])
      opened.append(temps[writer_shard])
    writer.close()
    writer = None
    if written == 0:
      raise ConversionError(None, 'split %r: all %d pairs were bad, nothing '
                            'written:\n  %s' % (split, total, '\n  '.join(
                                str(b) for b in skipped)))
    for temp, final in zip(temps, finals):
      tf.io.gfile.rename(temp, final, overwrite=True)
    opened = []
  finally:
    executor.shutdown(wait=True, cancel_futures=True)
    if writer is not None:
      writer.close()
    for temp in opened:  # only left on failure
      try:
        tf.io.gfile.remove(temp)
      except (OSError, tf.errors.OpError):
        pass

  seconds = time.time() - start_time
  progress(total, settings.num_shards - 1, final=True)
  stale = []
  if settings.remove_stale_shards:
    own = set(os.path.basename(p) for p in finals)
    pattern = re.compile(r'^%s-\d{5}-of-\d{5}\.tfrecord$' % re.escape(split))
    for name in sorted(tf.io.gfile.listdir(settings.output_dir)):
      if pattern.match(name) and name not in own:
        path = os.path.join(settings.output_dir, name)
        logging.warning('%s: removing stale shard of an earlier run: %s',
                        split, path)
        tf.io.gfile.remove(path)
        stale.append(path)
  if skipped:
    logging.warning('%s: skipped %d bad pair(s):\n  %s', split, len(skipped),
                    '\n  '.join(str(b) for b in skipped))
  if converted:
    logging.info('%s: images stored as-is and converted to RGB when read: %s',
                 split, dict(converted))
  return ConvertSummary(
      split_name=split, output_dir=settings.output_dir, num_inputs=total,
      num_written=written, skipped=skipped, shard_files=finals,
      shard_counts=shard_counts, seconds=seconds, class_pixels=class_pixels,
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
  temp = _temp_name(path)
  with tf.io.gfile.GFile(temp, 'wb') as f:
    f.write(encode_label_png(label))
  tf.io.gfile.rename(temp, path, overwrite=True)


# ---------------------------------------------------------------------------
# Palette PNG -> index array (remove_gt_colormap).
# ---------------------------------------------------------------------------

def _png_chunks(data):
  pos = len(_PNG_MAGIC)
  while pos + 8 <= len(data):
    length, ctype = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if len(body) != length:
      raise ValueError('truncated PNG chunk %r' % ctype)
    yield ctype, body
    pos += 12 + length
    if ctype == b'IEND':
      return
  raise ValueError('PNG has no IEND chunk (truncated?)')


def palette_png_to_indices(data):
  """The palette indices of a colour-mapped PNG as a uint8 [H, W] array.

  Decoders expand palette PNGs to colours; the indices are what the original
  ``remove_gt_colormap.py`` keeps. Without PIL: the PNG is re-labelled as a
  grey image of the same bit depth (IHDR colour type 3 -> 0, PLTE/tRNS
  dropped), whose samples are exactly the indices, then decoded. A grey PNG is
  returned as is (already raw). Raises ValueError for other PNGs.
  """
  if not data.startswith(_PNG_MAGIC):
    raise ValueError('not a PNG file')
  header = png_header(data)
  if header is None:
    raise ValueError('corrupt PNG: no IHDR header')
  _, _, bit_depth, colour_type = header
  if colour_type == 0:
    try:
      values, _ = _decode_label_png('<png>', data)
    except _Bad as e:
      raise ValueError(e.reason) from None
    if values.size and values.max() > 255:
      raise ValueError('16-bit grey PNG with values above 255')
    return values.astype(np.uint8)
  if colour_type != 3:
    raise ValueError('PNG is %s, not palette or grey: no colour map to remove'
                     % _PNG_COLOUR_TYPES.get(colour_type, (0, 'unknown'))[1])
  parts = [_PNG_MAGIC]
  for ctype, body in _png_chunks(data):
    if ctype in (b'PLTE', b'tRNS'):
      continue
    if ctype == b'IHDR':
      body = body[:9] + b'\x00' + body[10:]
    parts.append(struct.pack('>I', len(body)) + ctype + body +
                 struct.pack('>I', zlib.crc32(ctype + body) & 0xffffffff))
  grey = b''.join(parts)
  try:
    indices = tf.io.decode_png(grey, channels=1).numpy()[..., 0]
  except tf.errors.OpError as e:
    raise ValueError('cannot decode PNG: %s' % _tf_error_text(e)) from None
  if bit_depth < 8:
    indices = indices // (255 // ((1 << bit_depth) - 1))
  return indices.astype(np.uint8)


# ---------------------------------------------------------------------------
# Cityscapes: labelIds -> trainIds, polygons -> trainIds.
# ---------------------------------------------------------------------------

# (name, id, trainId) of the Cityscapes label definitions (cityscapesScripts
# helpers/labels.py); 255 = ignored in training. 'license plate' has id -1:
# never drawn.
CITYSCAPES_LABELS = (
    ('unlabeled', 0, 255), ('ego vehicle', 1, 255),
    ('rectification border', 2, 255), ('out of roi', 3, 255),
    ('static', 4, 255), ('dynamic', 5, 255), ('ground', 6, 255),
    ('road', 7, 0), ('sidewalk', 8, 1), ('parking', 9, 255),
    ('rail track', 10, 255), ('building', 11, 2), ('wall', 12, 3),
    ('fence', 13, 4), ('guard rail', 14, 255), ('bridge', 15, 255),
    ('tunnel', 16, 255), ('pole', 17, 5), ('polegroup', 18, 255),
    ('traffic light', 19, 6), ('traffic sign', 20, 7), ('vegetation', 21, 8),
    ('terrain', 22, 9), ('sky', 23, 10), ('person', 24, 11),
    ('rider', 25, 12), ('car', 26, 13), ('truck', 27, 14), ('bus', 28, 15),
    ('caravan', 29, 255), ('trailer', 30, 255), ('train', 31, 16),
    ('motorcycle', 32, 17), ('bicycle', 33, 18), ('license plate', -1, -1),
)
CITYSCAPES_NUM_CLASSES = 19
_CITYSCAPES_BY_NAME = {name: (lid, tid) for name, lid, tid in CITYSCAPES_LABELS}


def cityscapes_id_to_train_id_lut():
  """uint8[256]: labelId -> trainId; ids outside the table map to 255."""
  lut = np.full(256, 255, np.uint8)
  for _, label_id, train_id in CITYSCAPES_LABELS:
    if label_id >= 0:
      lut[label_id] = train_id
  return lut


def cityscapes_label_ids_to_train_ids(label_ids):
  """A labelIds array -> trainIds (uint8); raises ValueError for unknown ids."""
  label_ids = np.asarray(label_ids)
  known = np.zeros(256, bool)
  known[[lid for _, lid, _ in CITYSCAPES_LABELS if lid >= 0]] = True
  values = np.unique(label_ids)
  unknown = [int(v) for v in values if v < 0 or v > 255 or not known[int(v)]]
  if unknown:
    raise ValueError('values [%s] are not Cityscapes label ids (0..33)' %
                     _describe_values(unknown))
  return cityscapes_id_to_train_id_lut()[label_ids.astype(np.uint8)]


def _cityscapes_label_name(name):
  if name not in _CITYSCAPES_BY_NAME and name.endswith('group'):
    name = name[:-len('group')]
  if name not in _CITYSCAPES_BY_NAME:
    raise ValueError('label %r is not a Cityscapes label' % name)
  return name


def rasterize_cityscapes_polygons(annotation, encoding='trainIds'):
  """A ``*_gtFine_polygons.json`` dict -> uint8 [imgHeight, imgWidth] array.

  Objects are drawn in file order, later ones over earlier ones (as
  cityscapesScripts' json2labelImg), on an 'unlabeled' background; deleted
  objects and labels with id -1 are skipped; 'xxxgroup' counts as 'xxx'.
  Polygons are filled with cv2.fillPoly (outline included), which can differ
  from PIL's ImageDraw.polygon by a pixel along some edges.
  """
  import cv2  # pylint: disable=g-import-not-at-top
  if encoding not in ('trainIds', 'ids'):
    raise ValueError('encoding must be trainIds or ids')
  column = 1 if encoding == 'trainIds' else 0
  height, width = int(annotation['imgHeight']), int(annotation['imgWidth'])
  background = _CITYSCAPES_BY_NAME['unlabeled'][column]
  canvas = np.full((height, width), background, np.uint8)
  for obj in annotation.get('objects', []):
    if obj.get('deleted', 0):
      continue
    name = _cityscapes_label_name(str(obj['label']))
    label_id, train_id = _CITYSCAPES_BY_NAME[name]
    if label_id < 0:
      continue
    value = (label_id, train_id)[column]
    points = np.round(np.asarray(obj['polygon'], np.float64)).astype(np.int32)
    if points.ndim != 2 or points.shape[0] == 0:
      continue
    cv2.fillPoly(canvas, [points.reshape(-1, 1, 2)], int(value))
  return canvas


def load_cityscapes_polygons(path):
  with tf.io.gfile.GFile(path, 'r') as f:
    return json.load(f)


# ---------------------------------------------------------------------------
# SBD (Hariharan et al.) cls/*.mat.
# ---------------------------------------------------------------------------

def load_sbd_mat(path):
  """``GTcls.Segmentation`` of an SBD ``cls/*.mat`` file as uint8 [H, W].

  Needs scipy (``pip install deeplab_tf[sbd]`` or ``pip install scipy``).
  """
  try:
    import scipy.io  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError('reading SBD .mat files needs scipy: pip install scipy '
                      '(or pip install -e .[sbd])') from None
  with tf.io.gfile.GFile(path, 'rb') as f:
    mat = scipy.io.loadmat(f, squeeze_me=True, struct_as_record=False)
  if 'GTcls' not in mat:
    raise ValueError('no GTcls struct in the .mat file (keys: %s)' % sorted(
        k for k in mat if not k.startswith('__')))
  segmentation = np.asarray(getattr(mat['GTcls'], 'Segmentation'))
  if segmentation.ndim != 2:
    raise ValueError('GTcls.Segmentation has shape %s, expected 2-D' % (
        segmentation.shape,))
  return segmentation
