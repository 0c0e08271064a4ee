"""Where a checkpoint's model options come from: one rule for every script.

The original scripts rebuild the model from their model flags only. A model
trained or converted here also leaves its options beside the checkpoint
(``model_options.json`` in a train_logdir, ``<prefix>_options.json`` beside a
converted prefix). Every script that loads a checkpoint (eval, vis,
export_model, the demo, eval_deeperlab) resolves the options the same way:

1. The options JSON beside the checkpoint (or the one a script names, e.g.
   the demo's ``--options_json``) is the base.
2. Every model flag given on the command line (or in a flagfile) overrides
   the JSON's value: an explicit flag always means what it says.
3. What the script itself decides (its crop size; the evaluated dataset's
   class count) overrides both.
4. Without a JSON (an original model-zoo checkpoint), the model flags alone
   build the model, defaults included: the original's behaviour.

So an original command line gives the original model, and one of our
checkpoints evaluates without repeating its training flags. The source is
returned as words for the script's log line.
"""
import dataclasses
import json
import os
from typing import Iterable, Optional, Tuple

import tensorflow as tf

from deeplab_tf.checkpoints import folders
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.models import meta_architectures
from deeplab_tf.models import options as options_lib


class OptionsSourceError(DeeplabError, ValueError):
  """An options JSON that cannot be read or describes another kind of model."""


def options_json_for(checkpoint_path: str) -> Optional[str]:
  """The options JSON written beside a checkpoint (prefix or folder), or None.

  A folder without any checkpoint yet (an evaluation started before its
  training) still has the trainer's ``model_options.json``.
  """
  if tf.io.gfile.isdir(checkpoint_path):
    path = os.path.join(checkpoint_path, folders.OPTIONS_FILE)
    if tf.io.gfile.exists(path):
      return path
    try:
      prefix = folders.find_checkpoint(checkpoint_path)
    except folders.NoCheckpointError:
      return None
    return folders.options_file(prefix)
  return folders.options_file(checkpoint_path)


def _read(path):
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except (ValueError, OSError, tf.errors.OpError) as e:
    raise OptionsSourceError('cannot read the model options %s: %s'
                             % (path, e)) from None


# ModelOptions.nas_architecture_options holds the values of these flags.
NAS_FIELD = 'nas_architecture_options'
NAS_FLAG_FIELDS = options_lib.NAS_FLAG_FIELDS


def _field_of(flag_name, fields):
  # ModelOptions keeps the class count in outputs_to_num_classes.
  if (flag_name == 'num_classes' and 'num_classes' not in fields and
      'outputs_to_num_classes' in fields):
    return 'outputs_to_num_classes'
  # --dense_prediction_cell_json (a file) sets the parsed cell it holds.
  if (flag_name == 'dense_prediction_cell_json' and
      'dense_prediction_cell_config' in fields):
    return 'dense_prediction_cell_config'
  return flag_name if flag_name in fields else None


def resolve(checkpoint_path: Optional[str], flag_options,
            given_flags: Iterable[str] = (),
            script_fields: Iterable[str] = (),
            json_path: Optional[str] = None,
            families: Optional[Tuple[str, ...]] = None):
  """(options, source in words) by the rule of the module docstring.

  Args:
    checkpoint_path: a checkpoint prefix or folder (None: only ``json_path``).
    flag_options: the options the script built from its model flags (None for
      a script without model flags: then a JSON is required).
    given_flags: names of the model flags given on the command line.
    script_fields: option fields the script decides (taken from
      ``flag_options`` whatever the JSON says), e.g. ``crop_size``.
    json_path: an options JSON to use instead of the one beside the
      checkpoint.
    families: model families the script builds (None: any).
  """
  path = json_path or (options_json_for(checkpoint_path)
                       if checkpoint_path else None)
  if path is None:
    if flag_options is None:
      raise OptionsSourceError(
          'No model options beside %s (%s, written by deeplab_tf.train; or '
          '<prefix>%s, written by convert_checkpoint): cannot rebuild the '
          'model.' % (checkpoint_path, folders.OPTIONS_FILE,
                      folders.CONVERTER_OPTIONS_SUFFIX))
    return flag_options, 'the model flags'
  values = _read(path)
  try:
    entry = meta_architectures.for_dict(values)
    if families is not None and entry.family not in families:
      raise OptionsSourceError(
          '%s describes a %s model (%s); this script builds %s models.'
          % (path, entry.family, entry.options_class.__name__,
             ' / '.join(families)))
    options = entry.options_class.from_dict(values)
  except OptionsSourceError:
    raise
  except (ValueError, TypeError) as e:
    raise OptionsSourceError('%s: %s' % (path, e)) from None
  if flag_options is None:
    return options, path
  if type(flag_options) is not type(options):
    raise OptionsSourceError(
        '%s describes %s, but the model flags select %s (--meta_architecture)'
        '.' % (path, type(options).__name__, type(flag_options).__name__))
  fields = {f.name for f in dataclasses.fields(options)}
  overridden, overrides = [], {}
  for name in given_flags:
    if name in NAS_FLAG_FIELDS and NAS_FIELD in fields:
      # One key of the JSON's nas_architecture_options, the others kept.
      nas = dict(overrides.get(NAS_FIELD, getattr(options, NAS_FIELD)))
      nas[name] = getattr(flag_options, NAS_FIELD)[name]
      overrides[NAS_FIELD] = nas
      overridden.append(name)
      continue
    field = _field_of(name, fields)
    if field is not None:
      overrides[field] = getattr(flag_options, field)
      overridden.append(name)
  for field in script_fields:
    overrides[field] = getattr(flag_options, field)
  source = path
  if overridden:
    source += ' with --' + ', --'.join(sorted(overridden))
  return options.replace(**overrides), source
