r"""ImageNet VGG-16 weights for DeepLab's VGG-16 (``model_variant='vgg_16'``).

DeepLab v1/v2 fine-tune an ImageNet VGG-16 (v1 Sec. 3.1). This module reads
weights you already have (nothing is downloaded) and turns them into the
layers of ``backbones/vgg16.py`` and the fc6 / fc7 of the LargeFOV and ASPP
heads:

  * a Keras ``keras.applications`` VGG16 weights file (legacy HDF5 layout:
    one group per layer, ``block1_conv1`` ... ``block5_conv3``, and
    optionally ``fc1`` / ``fc2``, e.g. ``vgg16_weights_tf_dim_ordering_tf_
    kernels[_notop].h5``); kernels HWIO, ``fc1`` as Dense (25088, 4096) over
    the HWC-flattened 7x7x512 pool5;
  * a dict of Caffe-converted weights keyed by Caffe layer names (conv1_1 ...
    conv5_3, fc6, fc7): an ``.npz`` with arrays ``<name>/weights`` and
    ``<name>/biases``, or an ``.npy`` holding ``{name: {'weights': w,
    'biases': b}}``. Kernels may be Caffe's layout (convolutions
    [out, in, kh, kw]; InnerProduct [out, in] over the CHW-flattened input)
    or already HWIO; the layout is told from the shapes.

fc6 / fc7 are accepted in either form:

  * already DeepLab's (fc6 3x3x512x1024, fc7 1x1x1024x1024, e.g. from the
    released DeepLab init model), used as they are;
  * the full VGG ones (fc6 7x7x512x4096, fc7 4096x4096), subsampled by the
    papers' rule: the 7x7 kernel decimated to 3x3 (v1 Sec. 3.2 "spatially
    subsampling (by simple decimation) the first FC layer"), taking every
    third tap (0, 3, 6) so that 3x3 at rate 12 covers the same 25 pixels as
    the 7x7 at rate 4 it replaces (v1 Sec. 5 "Field of View"); and "a random
    subset of 1,024 out of the 4,096 filters in layers fc6 and fc7" (v2
    Sec. 4.1.1), fc7's inputs being fc6's kept filters. The subset of the
    released init model is not published: ours is drawn with ``seed``.

Colour order: Caffe and Keras' ImageNet VGG-16 take BGR input, our models RGB
(``backbones/vgg16.py`` subtracts the Caffe mean in RGB order), so conv1_1's
input channels are reversed on load (``input_channels='bgr'``, the default;
pass 'rgb' for weights trained on RGB).

DeepLab-ASPP on VGG-16 has one fc6 / fc7 per branch; every branch starts from
the same ImageNet fc6 / fc7 (the papers do not say; it is the only ImageNet
initialisation of a 3x3 fc6). Nothing initialises fc8 (``logits/...``) or the
MSc MLPs: they start from scratch, as in the papers.

Usage (a TF1 checkpoint for ``--tf_initial_checkpoint``):
  python -m deeplab_tf.checkpoints.vgg16_imagenet --weights=vgg16_weights.h5 \
      --output=workspace/checkpoints/vgg16_imagenet_deeplab/model.ckpt \
      --branches=4
"""
import argparse
import dataclasses
import os
import sys
from typing import Dict, List, Tuple

import h5py
import numpy as np
import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.models.backbones import vgg16
from deeplab_tf.models.deeplab_v2 import branch_suffix

FC_FILTERS = 1024                       # v1 Sec. 5, v2 Sec. 4.1.1
FC6_TAPS = (0, 3, 6)                    # 7x7 decimated to 3x3 (v1 Sec. 3.2)
FULL_FC6_SHAPE = (7, 7, 512, 4096)      # VGG-16 fc6 as a convolution
FULL_FC7_SHAPE = (1, 1, 4096, 4096)
DEEPLAB_FC6_SHAPE = (3, 3, 512, FC_FILTERS)
DEEPLAB_FC7_SHAPE = (1, 1, FC_FILTERS, FC_FILTERS)


def _conv_shapes():
  """{Caffe name: HWIO shape} of the 13 VGG-16 convolutions."""
  shapes, depth_in = {}, 3
  for block, filters in vgg16.BLOCKS:
    for i, depth in enumerate(filters, 1):
      shapes['conv%d_%d' % (block, i)] = (3, 3, depth_in, depth)
      depth_in = depth
  return shapes


CONV_SHAPES = _conv_shapes()
CONV_LAYERS = tuple(CONV_SHAPES)
# Caffe name -> keras.applications VGG16 layer name.
KERAS_NAMES = dict({name: 'block%s_conv%s' % tuple(name[4:].split('_'))
                    for name in CONV_LAYERS}, fc6='fc1', fc7='fc2')

Weights = Dict[str, Tuple[np.ndarray, np.ndarray]]


class VggWeightsError(DeeplabError, ValueError):
  """A weights file that does not hold VGG-16 weights in a known layout."""


# --- reading -------------------------------------------------------------------
def read_keras_h5(path) -> Weights:
  """{Caffe name: (kernel, bias)} from a keras.applications VGG16 .h5 file.

  fc1 / fc2 (if present) come back as convolutions: (7, 7, 512, 4096) and
  (1, 1, 4096, 4096).
  """
  result = {}
  with h5py.File(path, 'r') as f:
    root = f['model_weights'] if 'model_weights' in f else f
    for name, keras_name in KERAS_NAMES.items():
      if keras_name not in root:
        if name in CONV_SHAPES:
          raise VggWeightsError(
              '%s has no layer group %r (expected the keras.applications '
              'VGG16 HDF5 layout: groups block1_conv1 ... block5_conv3, '
              'optionally fc1 / fc2); it has: %s'
              % (path, keras_name, sorted(root.keys())[:20]))
        continue
      kernel, bias = _kernel_and_bias(root[keras_name], path)
      if name == 'fc6':
        kernel = _dense_to_conv(kernel, FULL_FC6_SHAPE, path, keras_name)
      elif name == 'fc7':
        kernel = _dense_to_conv(kernel, FULL_FC7_SHAPE, path, keras_name)
      result[name] = (kernel, bias)
  return result


def _kernel_and_bias(group, path):
  """The (kernel, bias) datasets of one Keras layer group."""
  arrays = []
  names = group.attrs.get('weight_names')
  if names is not None and len(names):
    arrays = [np.asarray(group[n.decode() if isinstance(n, bytes) else n])
              for n in names]
  else:
    group.visititems(lambda _, item: arrays.append(np.asarray(item))
                     if hasattr(item, 'shape') else None)
  kernels = [a for a in arrays if a.ndim >= 2]
  biases = [a for a in arrays if a.ndim == 1]
  if len(kernels) != 1 or len(biases) != 1:
    raise VggWeightsError('%s: layer %r should hold one kernel and one bias, '
                          'found arrays of shapes %s.'
                          % (path, group.name, [a.shape for a in arrays]))
  return kernels[0], biases[0]


def _dense_to_conv(kernel, conv_shape, path, name):
  """Keras Dense kernel [h*w*in, out] (HWC-flattened input) -> HWIO."""
  if kernel.shape != (int(np.prod(conv_shape[:3])), conv_shape[3]):
    raise VggWeightsError('%s: %s has shape %s, expected (%d, %d).'
                          % (path, name, kernel.shape,
                             int(np.prod(conv_shape[:3])), conv_shape[3]))
  return kernel.reshape(conv_shape)


def read_caffe_dict(path) -> Weights:
  """{Caffe name: (kernel HWIO, bias)} from an .npz / .npy of Caffe-named weights."""
  if path.endswith('.npz'):
    with np.load(path) as data:
      arrays = {k: np.asarray(data[k]) for k in data.files}
    raw = {}
    for key, value in arrays.items():
      layer, _, leaf = key.rpartition('/')
      if leaf not in ('weights', 'biases'):
        raise VggWeightsError('%s: key %r is not <layer>/weights or '
                              '<layer>/biases.' % (path, key))
      raw.setdefault(layer, {})[leaf] = value
  else:
    loaded = np.load(path, allow_pickle=True)
    raw = loaded.item() if loaded.dtype == object else None
    if not isinstance(raw, dict):
      raise VggWeightsError('%s: expected a pickled dict {layer: {"weights", '
                            '"biases"}}, got an array of shape %s.'
                            % (path, loaded.shape))
  result = {}
  for name in CONV_LAYERS + ('fc6', 'fc7'):
    if name not in raw:
      if name in CONV_SHAPES:
        raise VggWeightsError('%s has no %r; it has: %s'
                              % (path, name, sorted(raw)))
      continue
    entry = raw[name]
    if isinstance(entry, dict):
      kernel, bias = entry.get('weights'), entry.get('biases')
    else:
      kernel, bias = entry
    if kernel is None or bias is None:
      raise VggWeightsError('%s: %r needs both weights and biases.'
                            % (path, name))
    kernel = np.asarray(kernel)
    candidates = ([CONV_SHAPES[name]] if name in CONV_SHAPES else
                  [DEEPLAB_FC6_SHAPE, FULL_FC6_SHAPE] if name == 'fc6' else
                  [DEEPLAB_FC7_SHAPE, FULL_FC7_SHAPE])
    result[name] = (caffe_kernel_to_hwio(kernel, candidates, path, name),
                    np.asarray(bias).reshape(-1))
  return result


def caffe_kernel_to_hwio(kernel, hwio_shapes, path='<array>', name='kernel'):
  """A Caffe kernel (or an HWIO one) as HWIO, by matching the expected shapes.

  ``hwio_shapes`` are the HWIO shapes the layer may have; ``kernel`` may be
  one of them, Caffe's convolution layout [out, in, kh, kw] of one, or
  Caffe's InnerProduct [out, in * kh * kw] (input flattened C, H, W).
  """
  for kh, kw, cin, cout in hwio_shapes:
    if kernel.shape == (kh, kw, cin, cout):
      return kernel
    if kernel.shape == (cout, cin, kh, kw):
      return kernel.transpose(2, 3, 1, 0)
    if kernel.shape == (cout, cin * kh * kw):
      # InnerProduct over a CHW-flattened input.
      return kernel.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)
  raise VggWeightsError(
      '%s: %r has shape %s; expected HWIO %s, Caffe [out, in, kh, kw] or '
      'InnerProduct [out, in * kh * kw] of one of them.'
      % (path, name, kernel.shape, ' or '.join(str(s) for s in hwio_shapes)))


def read_weights(path) -> Weights:
  """Reads either format (told apart by the file extension)."""
  if path.endswith(('.h5', '.hdf5')):
    return read_keras_h5(path)
  if path.endswith(('.npz', '.npy')):
    return read_caffe_dict(path)
  raise VggWeightsError('%s: expected a keras .h5 file or a Caffe-named '
                        '.npz / .npy dict.' % path)


# --- DeepLab's form ------------------------------------------------------------
def subsample_fc(fc6, fc7, filters=FC_FILTERS, seed=0):
  """Full VGG fc6 / fc7 -> DeepLab-LargeFOV's (v1 Sec. 3.2, v2 Sec. 4.1.1).

  Args:
    fc6: (kernel [7, 7, in, n6], bias [n6]).
    fc7: (kernel [1, 1, n6, n7], bias [n7]).
    filters: filters kept in each layer (1024).
    seed: draws the random filter subsets.

  Returns:
    ``(fc6, fc7, kept6, kept7)``: fc6 [3, 3, in, filters] (taps 0, 3, 6 of
    each spatial axis, the kept filters), fc7 [1, 1, filters, filters] (rows
    = fc6's kept filters), and the kept filter indices (sorted).
  """
  (k6, b6), (k7, b7) = fc6, fc7
  if k6.shape[:2] != (7, 7) or k7.shape[:3] != (1, 1, k6.shape[3]):
    raise VggWeightsError('subsample_fc needs fc6 [7, 7, in, n] and fc7 '
                          '[1, 1, n, m]; got %s and %s.' % (k6.shape, k7.shape))
  rng = np.random.default_rng(seed)
  kept6 = np.sort(rng.choice(k6.shape[3], filters, replace=False))
  kept7 = np.sort(rng.choice(k7.shape[3], filters, replace=False))
  taps = np.asarray(FC6_TAPS)
  k6 = k6[taps][:, taps][..., kept6]
  k7 = k7[:, :, kept6][..., kept7]
  return (k6, b6[kept6]), (k7, b7[kept7]), kept6, kept7


def deeplab_weights(raw: Weights, input_channels='bgr', seed=0) -> Weights:
  """Raw VGG-16 weights -> {conv1_1 ... conv5_3[, fc6, fc7]} in our form.

  conv1_1's input channels become RGB; full fc6 / fc7 are subsampled.
  """
  if input_channels not in ('bgr', 'rgb'):
    raise VggWeightsError("input_channels must be 'bgr' or 'rgb', got %r."
                          % (input_channels,))
  result = {name: raw[name] for name in CONV_LAYERS}
  if input_channels == 'bgr':
    kernel, bias = result['conv1_1']
    result['conv1_1'] = (kernel[:, :, ::-1, :], bias)
  has6, has7 = 'fc6' in raw, 'fc7' in raw
  if has6 != has7:
    raise VggWeightsError('Got %s without %s: give both fc6 and fc7 or '
                          'neither.' % (('fc6', 'fc7') if has6 else
                                        ('fc7', 'fc6')))
  if has6:
    fc6, fc7 = raw['fc6'], raw['fc7']
    full = (fc6[0].shape == FULL_FC6_SHAPE, fc7[0].shape == FULL_FC7_SHAPE)
    if all(full):
      fc6, fc7, _, _ = subsample_fc(fc6, fc7, seed=seed)
    elif any(full):
      raise VggWeightsError('fc6 %s and fc7 %s: give both full (7x7x512x4096, '
                            '4096x4096) or both subsampled (3x3x512x1024, '
                            '1024x1024).' % (fc6[0].shape, fc7[0].shape))
    result['fc6'], result['fc7'] = fc6, fc7
  return result


def _target_layer(name, available):
  """The weights entry for a model layer: conv*, fc6 / fc7 and branch fc6_<i>."""
  if name in available:
    return name
  base, _, index = name.rpartition('_')
  if base in ('fc6', 'fc7') and index.isdigit() and base in available:
    return base
  return None


@dataclasses.dataclass
class VggLoadReport:
  path: str
  loaded: List[str]       # model layers that received weights
  not_loaded: List[str]   # model layers with weights that the file lacks


def load_vgg16_weights(model, path, input_channels='bgr', seed=0):
  """Assigns ImageNet VGG-16 weights to a model built on ``vgg_16``.

  conv1_1 ... conv5_3 must be in the file; fc6 / fc7 go to every fc branch
  (fc6, fc6_1, ...) when the file has them. Returns a ``VggLoadReport``.
  """
  weights = deeplab_weights(read_weights(path), input_channels, seed)
  report = VggLoadReport(path, [], [])
  for layer in model.layers:
    if not layer.weights:
      continue
    source = _target_layer(layer.name, weights)
    if source is None:
      report.not_loaded.append(layer.name)
      continue
    kernel, bias = weights[source]
    want = tuple(layer.kernel.shape)
    if kernel.shape != want:
      raise VggWeightsError('%s: %s is %s, the model layer %s is %s.'
                            % (path, source, kernel.shape, layer.name, want))
    layer.set_weights([kernel, bias])
    report.loaded.append(layer.name)
  if not any(n.startswith('conv') for n in report.loaded):
    raise VggWeightsError('Model %r has no VGG-16 layers (conv1_1 ...); '
                          "build it with model_variant='vgg_16'." % model.name)
  return report


def write_initial_checkpoint(path, prefix, branches=1, input_channels='bgr',
                             seed=0):
  """Writes the converted weights as a TF1 checkpoint with our variable names.

  ``<layer>/weights`` and ``<layer>/biases`` for conv1_1 ... conv5_3 and, if
  the file has them, fc6 / fc7 for ``branches`` fc branches (fc6, fc6_1,
  ...): the ``--tf_initial_checkpoint`` of the v1 / v2 VGG-16 recipes.
  Returns the prefix.
  """
  weights = deeplab_weights(read_weights(path), input_channels, seed)
  tensors = {}
  for name, (kernel, bias) in weights.items():
    scopes = ([name + branch_suffix(i) for i in range(branches)]
              if name in ('fc6', 'fc7') else [name])
    for scope in scopes:
      tensors[scope + '/weights'] = kernel
      tensors[scope + '/biases'] = bias
  names = sorted(tensors)
  directory = os.path.dirname(os.path.abspath(prefix))
  os.makedirs(directory, exist_ok=True)
  tf.raw_ops.SaveV2(
      prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
      tensors=[tf.constant(np.ascontiguousarray(tensors[n], np.float32))
               for n in names])
  base = os.path.basename(prefix)
  with open(os.path.join(directory, 'checkpoint'), 'w') as f:
    f.write('model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n'
            % (base, base))
  return prefix


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='ImageNet VGG-16 weights -> TF1 checkpoint for DeepLab '
      'v1/v2 (model_variant=vgg_16).')
  parser.add_argument('--weights', required=True,
                      help='keras.applications VGG16 .h5, or Caffe-named '
                      '.npz / .npy.')
  parser.add_argument('--output', required=True, help='Checkpoint prefix.')
  parser.add_argument('--branches', type=int, default=1,
                      help='fc6 / fc7 copies: 1 (LargeFOV) or the number of '
                      'ASPP rates (4).')
  parser.add_argument('--input_channels', choices=('bgr', 'rgb'),
                      default='bgr', help='Colour order conv1_1 was trained '
                      'on (Caffe and Keras VGG16: bgr).')
  parser.add_argument('--seed', type=int, default=0,
                      help='Seed of the fc6 / fc7 filter subsets.')
  args = parser.parse_args(argv)
  prefix = write_initial_checkpoint(args.weights, args.output, args.branches,
                                    args.input_channels, args.seed)
  print('wrote %s' % prefix)
  return 0


if __name__ == '__main__':
  sys.exit(main())
