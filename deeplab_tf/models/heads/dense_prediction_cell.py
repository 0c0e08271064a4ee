"""Dense Prediction Cell (DPC): a searched multi-branch head in place of ASPP.

Chen et al., "Searching for Efficient Multi-Scale Architectures for Dense
Image Prediction" (NeurIPS 2018, arXiv:1809.04184). The paper searches a cell
of B branches (Sec. 3.1-3.2): each branch applies one operation to the
backbone features or to an earlier branch's output, every branch has 256
filters, and their concatenation is projected by a 1x1 conv. The best cell
found on Cityscapes (Fig. 3 of the paper; five 3x3 atrous separable convs in a
tree rooted at the first one) is shipped beside this file as
``dense_prediction_cell_branch5_top1_cityscapes.json``; it is the head of the
model-zoo checkpoints ``xception71_dpc_cityscapes_trainfine`` / ``_trainval``.

The cell is data: a list of operations, one per branch, each a dict
(``--dense_prediction_cell_json`` names a JSON file holding that list; the
original common.py reads it with ``json.load`` into
``ModelOptions.dense_prediction_cell_config``):

* ``input``: the branch index it reads (negative: the backbone features);
* ``op``: ``conv`` or ``pyramid_pooling``;
* ``conv``: ``kernel`` 1 (or [1, 1]) is a 1x1 conv + BN + ReLU; any other
  ``kernel`` (an int or [height, width]) is the original
  ``split_separable_conv2d`` (atrous depthwise + BN + ReLU, 1x1 + BN + ReLU)
  with the per-axis atrous ``rate`` [rate_height, rate_width];
* ``pyramid_pooling``: ``grid_size`` [rows, cols]: average pooling with the
  window ``scale_dimension(image_pooling_crop_size or crop_size, 1 / (OS *
  grid))`` (stride 1, VALID), 1x1 conv + BN + ReLU, and an align_corners
  resize to ``scale_dimension(crop_size, 1 / OS)``.

How the original ``model.extract_features`` builds it (mirrored here):

* it replaces ASPP only when ``aspp_with_batch_norm`` (otherwise the
  backbone features go straight to the logits, as without ASPP); image
  pooling, ``atrous_rates``, ``aspp_convs_filters``, ``aspp_with_*``,
  ``image_pooling_stride`` and ``use_bounded_activation`` (always ReLU here)
  are not read;
* the searched rates are for output stride 16: they are multiplied by
  ``16 // output_stride`` (2 at output stride 8; output stride 32 gives 0,
  which the original refuses);
* BatchNorm: decay 0.9997, epsilon 1e-5 (the ASPP values); L2 on the
  ``weights`` leaves only (1x1 convs, pointwise and projection kernels), the
  depthwise kernels have none (the one name rule of
  ``training.regularization``);
* dropout (keep 0.9) on the *concatenation*, before ``concat_projection``,
  active in training only (ASPP drops after its projection instead);
* initialisers: slim's xavier for the 1x1 convs and the projection, truncated
  normal 0.33 / 0.06 for the separable convs' depthwise / pointwise halves;
* variables live under ``meta_architecture/branch<i>[_depthwise |
  _pointwise]`` and ``meta_architecture/concat_projection``
  (``model.get_extra_layer_scopes`` lists ``meta_architecture``: the last
  layers for ``initialize_last_layer`` and the gradient multiplier).

One scoping quirk is kept: the original opens its scope with a default name,
which TF1 makes unique per graph, so the scales of an image pyramid (several
``multi_scale_logits`` scales in one graph) each get their own cell,
``meta_architecture``, ``meta_architecture_1``, ... while the scales of
multi-scale evaluation (each built in a re-entered root scope) share
``meta_architecture``. ``deeplab.multi_scale_logits`` passes that scope.
"""
import dataclasses
import glob
import json
import os
from typing import List, Optional, Sequence, Tuple

from absl import logging
import keras
import tensorflow as tf

from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.heads.aspp import HEAD_BATCH_NORM
from deeplab_tf.models.options import OptionsError

META_ARCHITECTURE_SCOPE = 'meta_architecture'
CONCAT_PROJECTION_SCOPE = 'concat_projection'
CONV = 'conv'
PYRAMID_POOLING = 'pyramid_pooling'
OPERATIONS = (CONV, PYRAMID_POOLING)
# The output stride the searched rates are written for (the original's
# conv_rate_multiplier = 16 // output_stride).
SEARCH_OUTPUT_STRIDE = 16

_HERE = os.path.dirname(os.path.abspath(__file__))
BRANCH5_CITYSCAPES_JSON = os.path.join(
    _HERE, 'dense_prediction_cell_branch5_top1_cityscapes.json')


def shipped_cells():
  """{file name: path} of the cell JSON files shipped in this folder."""
  return {os.path.basename(p): p for p in sorted(
      glob.glob(os.path.join(_HERE, 'dense_prediction_cell_*.json')))}


@dataclasses.dataclass(frozen=True)
class CellHParams:
  """The original ``dense_prediction_cell_hparams`` (its defaults).

  ``model.extract_features`` overrides only ``conv_rate_multiplier``.
  """
  reduction_size: int = 256
  dropout_on_concat_features: bool = True
  dropout_on_projection_features: bool = False
  dropout_keep_prob: float = 0.9
  concat_channels: int = 256
  conv_rate_multiplier: int = 1


@dataclasses.dataclass(frozen=True)
class Operation:
  """One branch of the cell, checked and normalised."""
  op: str
  input: int
  kernel: Optional[Tuple[int, int]] = None      # conv
  rate: Optional[Tuple[int, int]] = None        # separable conv
  grid_size: Optional[Tuple[int, int]] = None   # pyramid_pooling

  @property
  def is_1x1(self):
    return self.op == CONV and self.kernel == (1, 1)


def _pair(value, what, where):
  """(a, b) of positive ints from an int or a list of two ints."""
  if isinstance(value, bool):
    value = None
  if isinstance(value, int):
    value = [value, value]
  if (not isinstance(value, (list, tuple)) or len(value) != 2 or
      not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
              for v in value)):
    raise OptionsError('%s: %s must be a positive int or [height, width] of '
                       'positive ints, got %r.' % (where, what, value))
  return tuple(int(v) for v in value)


def parse_operations(config, source='dense_prediction_cell_config'
                     ) -> Tuple[Operation, ...]:
  """Checks a cell config (the list of operation dicts) and normalises it.

  ``source`` names where the config came from (a JSON file) in the errors.
  Keys the original does not read are ignored, as there.
  """
  if isinstance(config, dict) or not isinstance(config, (list, tuple)):
    raise OptionsError('%s: a dense prediction cell is a JSON list of '
                       'operations (one dict per branch), got %s.'
                       % (source, type(config).__name__))
  if not config:
    raise OptionsError('%s: the dense prediction cell has no operation; '
                       'give at least one branch (or no cell for ASPP).'
                       % source)
  operations = []
  for i, entry in enumerate(config):
    where = '%s, operation %d (branch%d)' % (source, i, i)
    if not isinstance(entry, dict):
      raise OptionsError('%s: expected a dict such as {"op": "conv", '
                         '"input": -1, "kernel": 3, "rate": [1, 6]}, got %r.'
                         % (where, entry))
    for key in ('op', 'input'):
      if key not in entry:
        raise OptionsError('%s: missing "%s" in %r.' % (where, key, entry))
    op, source_index = entry['op'], entry['input']
    if op not in OPERATIONS:
      raise OptionsError('%s: unrecognised operation %r; accepted: %s.'
                         % (where, op, ', '.join(OPERATIONS)))
    if isinstance(source_index, bool) or not isinstance(source_index, int):
      raise OptionsError('%s: "input" must be an int (negative: the backbone '
                         'features; else an earlier branch), got %r.'
                         % (where, source_index))
    if source_index >= i:
      raise OptionsError(
          '%s: "input" %d names branch%d, which is not built yet; a branch '
          'reads the backbone features (-1)%s.'
          % (where, source_index, source_index,
             ' or an earlier branch (0..%d)' % (i - 1) if i else ''))
    if op == CONV:
      if 'kernel' not in entry:
        raise OptionsError('%s: a conv needs "kernel".' % where)
      kernel = _pair(entry['kernel'], '"kernel"', where)
      rate = None
      if kernel != (1, 1):
        if 'rate' not in entry:
          raise OptionsError('%s: a %dx%d conv needs "rate" [rate_height, '
                             'rate_width].' % ((where,) + kernel))
        rate = entry['rate']
        if not isinstance(rate, (list, tuple)):
          raise OptionsError('%s: "rate" must be [rate_height, rate_width] '
                             '(the original multiplies each entry), got %r.'
                             % (where, rate))
        rate = _pair(rate, '"rate"', where)
      operations.append(Operation(CONV, source_index, kernel=kernel,
                                  rate=rate))
    else:
      if 'grid_size' not in entry:
        raise OptionsError('%s: pyramid_pooling needs "grid_size" [rows, '
                           'cols].' % where)
      operations.append(Operation(
          PYRAMID_POOLING, source_index,
          grid_size=_pair(entry['grid_size'], '"grid_size"', where)))
  return tuple(operations)


def normalize_config(config) -> Optional[List[dict]]:
  """The config as plain JSON values (lists, dicts), or None for ASPP."""
  if config is None:
    return None
  try:
    return json.loads(json.dumps(config))
  except (TypeError, ValueError) as e:
    raise OptionsError('dense_prediction_cell_config must hold JSON values '
                       '(a list of dicts of ints, strings and lists): %s' % e
                       ) from None


def resolve_json_path(path: str) -> str:
  """The file to read for ``--dense_prediction_cell_json``.

  An existing path is read as given. The original documents its own repo's
  path (``deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json``);
  a path that does not exist but whose file name is a cell shipped here
  reads the shipped copy (logged).
  """
  if tf.io.gfile.exists(path):
    return path
  shipped = shipped_cells().get(os.path.basename(path))
  if shipped is not None:
    logging.info('--dense_prediction_cell_json=%s does not exist; using the '
                 'copy shipped with deeplab_tf: %s', path, shipped)
    return shipped
  raise OptionsError(
      '--dense_prediction_cell_json=%s: no such file (cells shipped with '
      'deeplab_tf, usable by file name: %s).'
      % (path, ', '.join(shipped_cells()) or 'none'))


def load_config(path: str) -> List[dict]:
  """Reads and checks a cell JSON file (original common.py: ``json.load``)."""
  resolved = resolve_json_path(path)
  try:
    with tf.io.gfile.GFile(resolved, 'r') as f:
      config = json.load(f)
  except ValueError as e:
    raise OptionsError('--dense_prediction_cell_json=%s: %s is not valid '
                       'JSON: %s' % (path, resolved, e)) from None
  except (OSError, tf.errors.OpError) as e:
    raise OptionsError('--dense_prediction_cell_json=%s: cannot read %s: %s'
                       % (path, resolved, e)) from None
  parse_operations(config, source=resolved)
  return normalize_config(config)


def conv_rate_multiplier(output_stride: int) -> int:
  """``16 // output_stride``: the searched rates are for output stride 16."""
  multiplier = SEARCH_OUTPUT_STRIDE // int(output_stride)
  if multiplier < 1:
    raise OptionsError(
        'The dense prediction cell needs output_stride 8 or 16 (its rates, '
        'searched at output stride 16, are multiplied by 16 // '
        'output_stride, which is 0 at %d; the original refuses it too).'
        % output_stride)
  return multiplier


def pyramid_pooling_sizes(crop_size: Sequence[int], output_stride: int,
                          grid_size: Sequence[int],
                          image_pooling_crop_size=None):
  """(resize size, pooling window) of a pyramid_pooling branch."""
  pool_crop = image_pooling_crop_size or crop_size
  target = [dl_layers.scale_dimension(d, 1.0 / output_stride)
            for d in crop_size]
  window = [dl_layers.scale_dimension(d, 1.0 / (output_stride * g))
            for d, g in zip(pool_crop, grid_size)]
  return target, window


def check_options(options) -> Tuple[Operation, ...]:
  """Everything about a cell that can be refused before building."""
  operations = parse_operations(options.dense_prediction_cell_config)
  conv_rate_multiplier(options.output_stride)
  for i, op in enumerate(operations):
    if op.op != PYRAMID_POOLING:
      continue
    if options.crop_size is None:
      raise OptionsError(
          'dense prediction cell branch%d (pyramid_pooling) sizes its '
          'pooling window from the crop size; give crop_size.' % i)
    target, window = pyramid_pooling_sizes(
        options.crop_size, options.output_stride, op.grid_size,
        options.image_pooling_crop_size)
    if any(w > t for w, t in zip(window, target)):
      raise OptionsError(
          'dense prediction cell branch%d (pyramid_pooling, grid %s): the '
          'pooling window %s is larger than the %s features of crop_size %s '
          'at output_stride %d.' % (i, list(op.grid_size), window, target,
                                    list(options.crop_size),
                                    options.output_stride))
  return operations


def cell_scope(scale_index: int = 0) -> str:
  """``meta_architecture`` for the first cell of a graph, then ``_1``, ..."""
  if scale_index:
    return '%s_%d' % (META_ARCHITECTURE_SCOPE, scale_index)
  return META_ARCHITECTURE_SCOPE


def build_cell(b, features, options, scope=META_ARCHITECTURE_SCOPE,
               hparams: Optional[CellHParams] = None):
  """The cell on backbone features; returns the projected concatenation.

  Args:
    b: the ``LayerBuilder``.
    features: backbone features [batch, h, w, c].
    options: ``ModelOptions`` with ``dense_prediction_cell_config`` set.
    scope: the variable scope (``cell_scope``).
    hparams: the cell's hyper-parameters; default: the original's, with
      ``conv_rate_multiplier = 16 // output_stride`` as ``model.py`` sets it.
  """
  operations = check_options(options)
  if hparams is None:
    hparams = CellHParams(
        conv_rate_multiplier=conv_rate_multiplier(options.output_stride))
  bn = HEAD_BATCH_NORM
  depth = hparams.reduction_size
  branches = []
  for i, op in enumerate(operations):
    branch_scope = '%s/branch%d' % (scope, i)
    x = features if op.input < 0 else branches[op.input]
    if op.is_1x1:
      branches.append(b.conv2d(x, branch_scope, depth, 1, bn=bn,
                               activation='relu'))
    elif op.op == CONV:
      rate = tuple(r * hparams.conv_rate_multiplier for r in op.rate)
      branches.append(b.split_separable_conv2d(
          x, branch_scope, depth, rate=rate, bn=bn, activation='relu',
          kernel_size=op.kernel))
    else:
      target, window = pyramid_pooling_sizes(
          options.crop_size, options.output_stride, op.grid_size,
          options.image_pooling_crop_size)
      pooled = keras.layers.AveragePooling2D(window, strides=1,
                                             padding='valid')(x)
      pooled = b.conv2d(pooled, branch_scope, depth, 1, bn=bn,
                        activation='relu')
      branches.append(dl_layers.ResizeBilinear(target)(pooled))
  x = (keras.layers.Concatenate(axis=3)(branches) if len(branches) > 1
       else branches[0])
  if hparams.dropout_on_concat_features:
    x = dl_layers.Dropout(keep_prob=hparams.dropout_keep_prob)(x)
  x = b.conv2d(x, '%s/%s' % (scope, CONCAT_PROJECTION_SCOPE),
               hparams.concat_channels, 1, bn=bn, activation='relu')
  if hparams.dropout_on_projection_features:
    x = dl_layers.Dropout(keep_prob=hparams.dropout_keep_prob)(x)
  return x
