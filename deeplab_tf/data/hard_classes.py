"""Hard-class duplication: records with a hard class appear more often per epoch.

DeepLabv3 (Chen et al. 2017, arXiv:1706.05587) "duplicates the images that
contain hard classes" in the training set (PASCAL VOC: bicycle, chair, dining
table, potted plant, sofa; Cityscapes: bicycle, train, bus; presets in
``datasets_info``). Here a training record whose label contains any of
``hard_classes`` is emitted ``hard_class_repeat`` times per epoch, before
shuffling, so the copies are spread by the shuffle buffer.

Which classes a record contains is known before any step runs:

* records written by our converters carry the sorted class ids in
  ``records.LABEL_CLASSES_PRESENT``: the pipeline parses that key only (no
  decoding);
* other records (e.g. written by the original scripts) get a class-presence
  index, computed once per split by decoding every label and cached as
  ``<record_dir>/<split>.class_presence.json`` with a fingerprint of the
  shards (names, sizes, modification times): a changed shard rebuilds it.

The index is named ``<split>.class_presence.json`` (a dot, not a dash) so that
the original shard pattern ``<split>-*`` never matches it.
"""
import json
import os
from typing import Dict, List, Optional, Sequence

from absl import logging
import tensorflow as tf

from deeplab_tf.data import records

INDEX_SUFFIX = '.class_presence.json'
_INDEX_VERSION = 1


def index_path(record_dir, split_name, index_dir=None):
  """Where the class-presence index of a split is cached."""
  return os.path.join(index_dir or record_dir, split_name + INDEX_SUFFIX)


def shard_fingerprint(files):
  """[name, size, mtime_ns] per shard: changes whenever a shard is rewritten."""
  out = []
  for path in files:
    stat = tf.io.gfile.stat(path)
    out.append([os.path.basename(path), int(stat.length), int(stat.mtime_nsec)])
  return out


def has_presence_key(files):
  """Whether the split's records carry ``LABEL_CLASSES_PRESENT``.

  Looks at the first record of the first non-empty shard: a split is written
  by one converter, so its records either all carry the key or none does.
  """
  for path in files:
    for serialized in tf.data.TFRecordDataset(path).take(1):
      example = tf.train.Example.FromString(serialized.numpy())
      return records.LABEL_CLASSES_PRESENT in example.features.feature
  return False


def _label_classes(serialized):
  """Sorted class values present in one record's label (decodes the label only)."""
  parsed = tf.io.parse_single_example(
      serialized, {records.LABEL_ENCODED: records.FEATURES[records.LABEL_ENCODED],
                   records.IMAGE_FILENAME: records.FEATURES[records.IMAGE_FILENAME]})
  label = tf.io.decode_image(parsed[records.LABEL_ENCODED], channels=1,
                             expand_animations=False)
  counts = tf.math.bincount(tf.cast(tf.reshape(label, [-1]), tf.int32),
                            minlength=256, maxlength=256)
  return tf.reshape(tf.where(counts > 0), [-1])


def compute_class_presence(files) -> List[List[List[int]]]:
  """Per shard, per record (in file order): the sorted label values present."""
  out = []
  for i, path in enumerate(files):
    dataset = tf.data.TFRecordDataset(path).map(
        _label_classes, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    out.append([[int(c) for c in classes.numpy()] for classes in dataset])
    logging.info('class presence: shard %d/%d (%s): %d records', i + 1,
                 len(files), os.path.basename(path), len(out[-1]))
  return out


def load_or_build_index(files, record_dir, split_name, index_dir=None
                        ) -> List[List[List[int]]]:
  """The class presence of every record of ``files``, from the cache if fresh.

  Builds (decoding every label once) and writes the index when it is missing
  or its fingerprint differs from the shards'. When the index cannot be
  written (a read-only folder) it is used from memory and a warning says so.
  """
  path = index_path(record_dir, split_name, index_dir)
  fingerprint = shard_fingerprint(files)
  if tf.io.gfile.exists(path):
    try:
      with tf.io.gfile.GFile(path, 'r') as f:
        cached = json.load(f)
      if (cached.get('version') == _INDEX_VERSION
          and cached.get('fingerprint') == fingerprint):
        return cached['presence']
      logging.info('class-presence index %s is stale (shards changed): '
                   'rebuilding it.', path)
    except (ValueError, KeyError, tf.errors.OpError) as e:
      logging.warning('class-presence index %s is unreadable (%s): rebuilding '
                      'it.', path, e)
  logging.info('Computing the class presence of split %r (%d shards) once; '
               'cached at %s.', split_name, len(files), path)
  presence = compute_class_presence(files)
  payload = {'version': _INDEX_VERSION, 'split': split_name,
             'fingerprint': fingerprint, 'presence': presence}
  try:
    tmp = path + '.tmp-%d' % os.getpid()
    with tf.io.gfile.GFile(tmp, 'w') as f:
      json.dump(payload, f, separators=(',', ':'))
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except tf.errors.OpError as e:
    logging.warning('Could not write the class-presence index %s (%s); using '
                    'it from memory (it will be recomputed next time). Pass '
                    'an index folder you can write to.', path, e)
  return presence


def repeat_counts(presence: Sequence[Sequence[int]], hard_classes,
                  hard_class_repeat) -> List[int]:
  """``hard_class_repeat`` for each record containing a hard class, else 1."""
  hard = set(int(c) for c in hard_classes)
  return [hard_class_repeat if hard.intersection(classes) else 1
          for classes in presence]


def repeat_count_from_key(serialized, hard_classes, hard_class_repeat):
  """In-graph repeat count of one record from its class-presence key."""
  parsed = tf.io.parse_single_example(
      serialized, {records.LABEL_CLASSES_PRESENT:
                   records.FEATURES[records.LABEL_CLASSES_PRESENT]})
  present = parsed[records.LABEL_CLASSES_PRESENT].values
  hard = tf.constant(sorted(set(int(c) for c in hard_classes)), tf.int64)
  matches = tf.equal(present[:, tf.newaxis], hard[tf.newaxis, :])
  return tf.where(tf.reduce_any(matches), tf.constant(hard_class_repeat, tf.int64),
                  tf.constant(1, tf.int64))


def repeat_table(files, presence_by_file: Dict[str, List[List[int]]],
                 hard_classes, hard_class_repeat):
  """(flat int64 repeat counts, int64 offset of each file in it) for tf.data."""
  counts, offsets = [], []
  for path in files:
    offsets.append(len(counts))
    counts.extend(repeat_counts(presence_by_file[path], hard_classes,
                                hard_class_repeat))
  return (tf.constant(counts, tf.int64), tf.constant(offsets, tf.int64))


def duplicate(dataset):
  """(record, count) elements -> each record ``count`` times, in place."""
  return dataset.flat_map(
      lambda record, count: tf.data.Dataset.from_tensors(record).repeat(count))


def presence_by_file(files, record_dir, split_name, index_dir=None
                     ) -> Optional[Dict[str, List[List[int]]]]:
  """The index as {shard path: per-record classes}, or None if keys are written."""
  if has_presence_key(files):
    return None
  presence = load_or_build_index(files, record_dir, split_name, index_dir)
  return dict(zip(files, presence))
