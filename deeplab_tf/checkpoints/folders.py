"""The checkpoint-folder protocol, written once.

A train_logdir holds the trainer's object-based checkpoints
``model.ckpt-<step>`` (the original train.py's names)
with TensorFlow's ``checkpoint`` state file, the options the model was built
from (``model_options.json``) and, once training reached its last step,
``training_done.json``. ``convert_checkpoint`` writes ``<prefix>_options.json``
beside a converted prefix. A model-zoo tarball is a folder with one
``model.ckpt(-N)`` and no state file. Every script finds a checkpoint with
``find_checkpoint`` and the options written beside it with ``options_file``.
"""
import json
import os
from typing import Any, Dict, Optional

import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError

OPTIONS_FILE = 'model_options.json'
CONVERTER_OPTIONS_SUFFIX = '_options.json'
TRAINING_DONE_FILE = 'training_done.json'
CHECKPOINT_PREFIX = 'model.ckpt'


class NoCheckpointError(DeeplabError, FileNotFoundError):
  """A folder (or prefix) that holds no checkpoint."""


def checkpoint_step(prefix: str) -> Optional[int]:
  """The global step in a checkpoint prefix name (``model.ckpt-1200`` -> 1200), or None."""
  tail = os.path.basename(prefix).rsplit('-', 1)
  if len(tail) == 2 and tail[1].isdigit():
    return int(tail[1])
  return None


def latest_checkpoint(checkpoint_dir_or_prefix: str) -> Optional[str]:
  """A checkpoint prefix from a folder (its latest, by the state file) or a
  prefix; None if there is none."""
  path = checkpoint_dir_or_prefix
  if tf.io.gfile.isdir(path):
    return tf.train.latest_checkpoint(path)
  if tf.io.gfile.exists(path + '.index'):
    return path
  return None


def find_checkpoint(path: str) -> str:
  """The checkpoint prefix for ``path``, or NoCheckpointError saying what is there.

  Args:
    path: a checkpoint prefix (``.../model.ckpt``, ``.../model.ckpt-300``), a folder
      with a ``checkpoint`` state file (a train_logdir: its latest), or a
      folder with a single checkpoint and no state file (an extracted
      model-zoo tarball).
  """
  prefix = latest_checkpoint(path)
  if prefix:
    return prefix
  if tf.io.gfile.isdir(path):
    listing = sorted(f.rstrip('/') for f in tf.io.gfile.listdir(path))
    indexes = [f[:-len('.index')] for f in listing if f.endswith('.index')]
    if len(indexes) == 1:
      # Model-zoo tarballs hold model.ckpt(-N).index but no "checkpoint"
      # state file: one checkpoint there is unambiguous.
      return os.path.join(path, indexes[0])
    hint = ''
    if indexes:
      hint = (' It holds several checkpoints and no "checkpoint" state file '
              'naming one; pass a prefix, e.g. %s'
              % os.path.join(path, indexes[-1]))
    raise NoCheckpointError(
        'No checkpoint in folder %s (no "checkpoint" state file naming an '
        'existing <prefix>.index; the folder holds: %s). Point at a '
        'train_logdir or give a checkpoint prefix.%s'
        % (path, ', '.join(listing[:12]) or 'nothing', hint))
  raise NoCheckpointError('%s is neither a folder nor a checkpoint prefix '
                          '(no %s.index).' % (path, path))


def write_options(train_logdir: str, options) -> None:
  """Writes ``options.to_dict()`` as the folder's ``model_options.json``."""
  with tf.io.gfile.GFile(os.path.join(train_logdir, OPTIONS_FILE), 'w') as f:
    json.dump(options.to_dict(), f, indent=1, sort_keys=True)


def options_file(prefix: str) -> Optional[str]:
  """The options JSON written beside a checkpoint prefix, or None:
  ``<prefix>_options.json`` (convert_checkpoint) first, then the folder's
  ``model_options.json`` (the trainer's)."""
  for path in (prefix + CONVERTER_OPTIONS_SUFFIX,
               os.path.join(os.path.dirname(prefix), OPTIONS_FILE)):
    if tf.io.gfile.exists(path):
      return path
  return None


def read_options_dict(prefix: str) -> Optional[Dict[str, Any]]:
  """The dict in ``options_file(prefix)``, or None (none, or being written)."""
  path = options_file(prefix)
  if path is None:
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except ValueError:
    return None


def write_training_done(train_dir: str, step: int, checkpoint: str) -> None:
  """Marks ``train_dir`` finished at ``step`` (written by the trainer's chief)."""
  path = os.path.join(train_dir, TRAINING_DONE_FILE)
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump({'step': int(step), 'checkpoint': checkpoint}, f)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def clear_training_done(train_dir: str) -> None:
  path = os.path.join(train_dir, TRAINING_DONE_FILE)
  if tf.io.gfile.exists(path):
    tf.io.gfile.remove(path)


def read_training_done(train_dir: str) -> Optional[Dict[str, Any]]:
  """{'step', 'checkpoint'} when the training in ``train_dir`` has finished, else None."""
  path = os.path.join(train_dir, TRAINING_DONE_FILE)
  if not tf.io.gfile.exists(path):
    return None
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except ValueError:  # being written
    return None
