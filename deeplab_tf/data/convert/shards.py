"""The one shard writer of every converter: names, order, temp files, renames.

Both the semantic converters (``semantic.write_split``) and the panoptic ones
(``panoptic.write_panoptic_split``) write a split as the original
``build_*_data.py`` scripts do: ``<output_dir>/<split>-<shard:05d>-of-
<num_shards:05d>.tfrecord``, ``ceil(N / num_shards)`` records per shard in
input order, the last shards possibly shorter or empty (empty shards exist as
files). What they add, here once: shards are written under hidden temporary
names that the ``<split>-*`` reader pattern does not match and renamed only
when the whole split succeeded, so a failed or interrupted run never leaves a
shard that looks complete.
"""
import bisect
import math
import os
import re
from typing import List

from absl import logging
import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import records


class ConversionError(DeeplabError):
  """A bad input: ``path`` is the offending file (or list), ``reason`` says why."""

  def __init__(self, path, reason):
    self.path = path
    self.reason = reason
    super().__init__('%s: %s' % (path, reason) if path else reason)


def tf_error_text(err):
  text = getattr(err, 'message', None) or str(err)
  text = re.sub(r'\{\{function_node [^}]*\}\}\s*', '', text)
  text = re.sub(r'\s*\[Op:\w+\]\s*$', '', text)
  return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def read_file_bytes(path, what):
  """A file's bytes; ConversionError naming it if absent, a folder, unreadable or empty."""
  try:
    if not tf.io.gfile.exists(path):
      raise ConversionError(path, '%s file not found' % what)
    if tf.io.gfile.isdir(path):
      raise ConversionError(path, '%s path is a directory, not a file' % what)
    with tf.io.gfile.GFile(path, 'rb') as f:
      data = f.read()
  except ConversionError:
    raise
  except (OSError, tf.errors.OpError) as e:
    raise ConversionError(path, 'cannot read %s file: %s' % (
        what, getattr(e, 'strerror', None) or tf_error_text(e))) from None
  if not data:
    raise ConversionError(path, '%s file is empty (0 bytes)' % what)
  return data


def shard_assignment(num_images, num_shards):
  """Per-shard [start, end) ranges as the original scripts compute them."""
  if num_shards < 1:
    raise ValueError('num_shards must be >= 1, got %d' % num_shards)
  per_shard = int(math.ceil(num_images / float(num_shards)))
  return [(min(s * per_shard, num_images), min((s + 1) * per_shard, num_images))
          for s in range(num_shards)]


def temp_name(final_path):
  """A hidden name beside ``final_path``: not matched by '<split>-*' globs."""
  head, tail = os.path.split(final_path)
  return os.path.join(head, '.%s.tmp-%d' % (tail, os.getpid()))


class ShardWriter:
  """Writes one split's records, item by item in input order.

  ``write(index, serialized)`` puts item ``index`` into its shard (shards are
  opened in order, so empty ones exist too); ``skip(index)`` moves past a bad
  item. ``commit()`` renames every shard to its final name; leaving the
  ``with`` block without a commit removes the temporary files.
  """

  def __init__(self, output_dir: str, split_name: str, num_shards: int,
               num_items: int):
    self.num_shards = num_shards
    self.ranges = shard_assignment(num_items, num_shards)
    tf.io.gfile.makedirs(output_dir)
    self.shard_files = [records.shard_filename(output_dir, split_name, s,
                                               num_shards)
                        for s in range(num_shards)]
    self._temps = [temp_name(p) for p in self.shard_files]
    self.shard_counts = [0] * num_shards
    self._ends = [end for _, end in self.ranges]
    self._writer = None
    self._shard = -1
    self._opened = []

  def shard_of(self, index: int) -> int:
    # The first shard whose end is past the item (ends never decrease; a
    # bisection, since COCO writes 118k items into 1000 shards).
    shard = bisect.bisect_right(self._ends, index)
    if shard >= self.num_shards:
      raise IndexError('item %d is past the last shard' % index)
    return shard

  def _open_through(self, shard):
    while self._shard < shard:
      if self._writer is not None:
        self._writer.close()
      self._shard += 1
      self._writer = tf.io.TFRecordWriter(self._temps[self._shard])
      self._opened.append(self._temps[self._shard])

  def skip(self, index: int) -> int:
    """Moves to item ``index``'s shard without writing; returns the shard."""
    shard = self.shard_of(index)
    self._open_through(shard)
    return shard

  def write(self, index: int, serialized: bytes) -> int:
    """Writes item ``index``; returns its shard."""
    shard = self.skip(index)
    self._writer.write(serialized)
    self.shard_counts[shard] += 1
    return shard

  def commit(self) -> List[str]:
    """Closes the last shards and gives every shard its final name."""
    self._open_through(self.num_shards - 1)
    self._writer.close()
    self._writer = None
    for temp, final in zip(self._temps, self.shard_files):
      tf.io.gfile.rename(temp, final, overwrite=True)
    self._opened = []
    return self.shard_files

  def close(self):
    """Closes the open shard and removes temporary files left uncommitted."""
    if self._writer is not None:
      self._writer.close()
      self._writer = None
    for temp in self._opened:
      try:
        tf.io.gfile.remove(temp)
      except (OSError, tf.errors.OpError):
        pass
    self._opened = []

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False


def remove_stale_shards(output_dir, split_name, keep) -> List[str]:
  """Removes ``<split>-NNNNN-of-MMMMM.tfrecord`` files not in ``keep``.

  After a successful run with a new shard count, so that '<split>-*' matches
  only the new shards. Returns the removed paths.
  """
  own = set(os.path.basename(p) for p in keep)
  pattern = re.compile(r'^%s-\d{5}-of-\d{5}\.tfrecord$' % re.escape(split_name))
  stale = []
  for name in sorted(tf.io.gfile.listdir(output_dir)):
    if pattern.match(name) and name not in own:
      path = os.path.join(output_dir, name)
      logging.warning('%s: removing stale shard of an earlier run: %s',
                      split_name, path)
      tf.io.gfile.remove(path)
      stale.append(path)
  return stale
