"""Original TF1 (model-zoo) checkpoints -> our Keras models, by variable name.

Our layers are named after the original variable scopes (``/`` written as
``.``), so the mapping is a name rewrite: Keras ``kernel`` -> ``weights``,
``depthwise_kernel`` -> ``depthwise_weights``, ``bias`` -> ``biases``; the
BatchNorm names are the same. Shapes are the same as well (slim stores conv
kernels HWIO and depthwise kernels [kh, kw, in, multiplier], as Keras).

Every load returns a ``LoadReport``; a strict load (the default) refuses a
checkpoint that leaves model variables unset or has mis-shaped ones, listing
them. Partial loads (an ImageNet backbone, or everything but the logits) are
asked for explicitly with ``exclude_scopes``.
"""
import dataclasses
import os
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.checkpoints import folders
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.models.variable_names import model_variables
from deeplab_tf.models.variable_names import original_name  # pylint: disable=unused-import

class CheckpointMismatchError(DeeplabError, ValueError):
  """A checkpoint that does not fit the model (missing or mis-shaped variables)."""


@dataclasses.dataclass
class LoadReport:
  checkpoint: str
  loaded: List[str]
  excluded: List[str]
  missing: List[str]          # model variables absent from the checkpoint
  unused: List[str]           # checkpoint variables the model has no use for
  mismatched: List[Tuple[str, tuple, tuple]]  # (name, model shape, ckpt shape)

  @property
  def ok(self):
    return not self.missing and not self.mismatched

  def summary(self, limit=20):
    lines = ['%s: loaded %d variables, excluded %d, missing %d, mis-shaped %d, '
             'unused in checkpoint %d' % (self.checkpoint, len(self.loaded),
                                          len(self.excluded), len(self.missing),
                                          len(self.mismatched), len(self.unused))]
    for title, items in (('missing from checkpoint', self.missing),
                         ('shape mismatch (model vs checkpoint)',
                          ['%s %s vs %s' % m for m in self.mismatched]),
                         ('unused checkpoint variables', self.unused)):
      if items:
        lines.append('  %s:' % title)
        lines.extend('    ' + s for s in items[:limit])
        if len(items) > limit:
          lines.append('    ... and %d more' % (len(items) - limit))
    return '\n'.join(lines)


def is_tf1_checkpoint(path):
  """True for a name-based (TF1 / slim / model-zoo) checkpoint.

  TF2 object-based checkpoints store their variables under keys ending in
  ``.ATTRIBUTES/VARIABLE_VALUE``; name-based ones use the plain scope names.
  """
  reader = tf.train.load_checkpoint(folders.find_checkpoint(path))
  keys = reader.get_variable_to_shape_map()
  return not any(k.endswith('.ATTRIBUTES/VARIABLE_VALUE') for k in keys)


def _excluded(name, exclude_scopes):
  # Plain prefix match, as slim.get_variables_to_restore(exclude=...): the
  # scope 'aspp' also excludes 'aspp0/...' and 'aspp1_depthwise/...'.
  return any(name.startswith(s) for s in exclude_scopes)


def load_tf1_checkpoint(model, path, exclude_scopes: Sequence[str] = (),
                        strict=True, ignore_missing=False) -> LoadReport:
  """Assigns the variables of a TF1 name-based checkpoint to ``model``.

  Args:
    model: a model built by ``deeplab_tf.models`` (any of its builders).
    path: checkpoint prefix (``.../model.ckpt``) or a directory.
    exclude_scopes: original scopes not to load (e.g. ``['logits']`` to
      fine-tune on another number of classes, as the original
      ``initialize_last_layer=False``); their variables keep their values.
    strict: raise ``CheckpointMismatchError`` when a variable is missing or
      mis-shaped. With ``strict=False`` the report lists them and the rest is
      loaded.
    ignore_missing: with ``strict``, tolerate missing variables (an ImageNet
      checkpoint has no ASPP/decoder/logits) but still refuse mis-shaped ones.

  Returns:
    A ``LoadReport``.
  """
  prefix = folders.find_checkpoint(path)
  reader = tf.train.load_checkpoint(prefix)
  shapes = reader.get_variable_to_shape_map()
  variables = model_variables(model)
  report = LoadReport(prefix, [], [], [], [], [])
  assignments = []
  for name, var in sorted(variables.items()):
    if _excluded(name, exclude_scopes):
      report.excluded.append(name)
      continue
    if name not in shapes:
      report.missing.append(name)
      continue
    ckpt_shape = tuple(shapes[name])
    if ckpt_shape != tuple(var.shape):
      report.mismatched.append((name, tuple(var.shape), ckpt_shape))
      continue
    assignments.append((var, name))
  used = set(variables)
  report.unused = sorted(k for k in shapes if k not in used and k != 'global_step'
                         and not _excluded(k, exclude_scopes))
  if strict and (report.mismatched or (report.missing and not ignore_missing)):
    raise CheckpointMismatchError(
        'Checkpoint does not fit model %r:\n%s' % (model.name, report.summary()))
  for var, name in assignments:
    value = reader.get_tensor(name)
    var.assign(np.asarray(value, dtype=var.dtype))
    report.loaded.append(name)
  return report


class NamedVariables(tf.Module):
  """The model's variables keyed by their ORIGINAL names, for tf.train.Checkpoint.

  Keras' own object graph keys variables by layer position, which moves when
  an option adds or removes a weightless layer (e.g. explicit padding at
  another output stride). Our training checkpoints key the model by original
  variable name instead, so phase 2 (another output stride, frozen BN) or a
  predictor restores phase 1's weights whatever its layer order.
  """

  def __init__(self, model):
    super().__init__(name='deeplab_variables')
    self.by_name = dict(model_variables(model))


def restore_model(model, path, allow_missing: Sequence[str] = ()):
  """Loads weights into ``model`` from a TF1 checkpoint or one of our training ones.

  TF1 (name-based, model zoo) checkpoints go through ``load_tf1_checkpoint``
  (strict). Our object-based checkpoints must provide every model variable.
  ``allow_missing``: original names the checkpoint may lack (they keep their
  values; e.g. a quantisation-aware model's ranges, from a float checkpoint).
  Returns a short description.
  """
  prefix = folders.find_checkpoint(path)
  allow_missing = set(allow_missing)
  _check_quantization_ranges(model, prefix, allow_missing)
  if is_tf1_checkpoint(prefix):
    report = load_tf1_checkpoint(model, prefix, strict=not allow_missing,
                                 ignore_missing=False)
    missing = [n for n in report.missing if n not in allow_missing]
    if missing or report.mismatched:
      raise CheckpointMismatchError(
          'Checkpoint does not fit model %r:\n%s' % (model.name,
                                                     report.summary()))
    return 'loaded %d variables from TF1 checkpoint %s' % (len(report.loaded),
                                                            prefix)
  variables = NamedVariables(model)
  if allow_missing:
    # Whatever the checkpoint has, then the check without the optional ones.
    tf.train.Checkpoint(model=variables).read(prefix).expect_partial()
    variables = NamedVariables(model)
    variables.by_name = {n: v for n, v in variables.by_name.items()
                         if n not in allow_missing}
  status = tf.train.Checkpoint(model=variables).read(prefix)
  try:
    status.expect_partial().assert_existing_objects_matched()
  except AssertionError as e:
    raise CheckpointMismatchError(
        'Checkpoint %s does not provide every variable of model %r: %s'
        % (prefix, model.name, str(e)[:2000])) from e
  return 'restored from checkpoint %s' % prefix


def _check_quantization_ranges(model, prefix, allow_missing):
  """A quantised model (models/quantize.py) and a checkpoint without ranges:
  says so, rather than listing every missing min / max."""
  ranges = set(getattr(model, 'quantization_variables', ())) - allow_missing
  if not ranges:
    return
  if is_tf1_checkpoint(prefix):
    keys = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    found = any(name in keys for name in ranges)
  else:
    variables = NamedVariables(model)
    variables.by_name = {n: v for n, v in variables.by_name.items()
                         if n in ranges}
    status = tf.train.Checkpoint(model=variables).read(prefix).expect_partial()
    try:
      status.assert_existing_objects_matched()
      found = True
    except AssertionError:
      found = False
  if not found:
    raise CheckpointMismatchError(
        'Checkpoint %s has no quantisation ranges (weights_quant / act_quant '
        'min and max): it holds a float model. The quantised graph '
        '(--quantize_delay_step >= 0) needs a checkpoint of quantisation-aware '
        'training (train.py --quantize_delay_step, from this one).' % prefix)


def save_tf1_checkpoint(model, prefix, global_step=0):
  """Writes ``model`` as a name-based TF1 checkpoint with the original names.

  The result loads with the original ``tf.compat.v1.train.Saver`` graphs and
  with ``load_tf1_checkpoint``.
  """
  variables = model_variables(model)
  names = sorted(variables)
  tensors = [tf.convert_to_tensor(variables[n]) for n in names]
  names.append('global_step')
  tensors.append(tf.constant(global_step, tf.int64))
  directory = os.path.dirname(os.path.abspath(prefix))
  os.makedirs(directory, exist_ok=True)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names), tensors=tensors)
  base = os.path.basename(prefix)
  with open(os.path.join(directory, 'checkpoint'), 'w') as f:
    f.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n'
            % (base, base))
  return prefix
