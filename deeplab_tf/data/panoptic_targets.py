"""DeeperLab training targets from a panoptic groundtruth (category + instance maps).

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093),
Sec. 3.2: a 'thing' instance is represented by K = 5 keypoints, the four
corners of its bounding box and its centre of mass, and the instance head
predicts, as PersonLab (Papandreou et al., arXiv:1803.08225, Sec. 3) does for
body joints:

* keypoint heatmaps: 1 on the pixels within a disk of radius R of a keypoint
  (one binary map per keypoint type);
* short-range offsets, inside those disks: the vector from the pixel to the
  keypoint;
* middle-range offsets, inside the disk of keypoint a, for every edge a -> b of
  the keypoint relation graph: the vector from the pixel to keypoint b of the
  same instance (PersonLab's mid-range definition);
* long-range offsets, on every pixel of the instance: the vectors from the
  pixel to each of the instance's K keypoints.

Where disks of several instances overlap, a pixel belongs to the nearest
keypoint (as PersonLab). Offsets are (dy, dx) in pixels of the given maps:
channels ``2k, 2k + 1`` belong to keypoint (or edge) ``k``.

The semantic loss weights pixels of small instances more (Sec. 3.2): weight 3
for the pixels of instances whose area is below 64 x 64, 1 elsewhere, 0 on the
ignore label.

``panoptic_targets`` is numpy; ``panoptic_targets_tf`` wraps it for tf.data.
"""
import dataclasses
from typing import Dict, Tuple

import numpy as np
import tensorflow as tf

# The keypoint layout is shared with the model and the grouping (core);
# re-exported here beside the targets built from it.
from deeplab_tf.core.keypoints import BOTTOM_LEFT
from deeplab_tf.core.keypoints import BOTTOM_RIGHT
from deeplab_tf.core.keypoints import CENTER
from deeplab_tf.core.keypoints import DEFAULT_EDGES
from deeplab_tf.core.keypoints import KEYPOINT_NAMES
from deeplab_tf.core.keypoints import TOP_LEFT
from deeplab_tf.core.keypoints import TOP_RIGHT


def all_pairs_edges(num_keypoints=len(KEYPOINT_NAMES)):
  """Every ordered pair of distinct keypoints: K (K - 1) edges (an alternative graph)."""
  return tuple((a, b) for a in range(num_keypoints)
               for b in range(num_keypoints) if a != b)


@dataclasses.dataclass(frozen=True)
class PanopticTargetSettings:
  """What counts as an instance and the sizes of the targets."""
  thing_classes: Tuple[int, ...] = ()
  # not in the DeeperLab paper: the disk radius; PersonLab (Sec. 3.1) uses
  # R = 32 pixels, which we keep.
  radius: float = 32.0
  # Sec. 3.2: instances smaller than 64 x 64 pixels get pixel weight 3.
  small_instance_area: int = 64 * 64
  small_instance_weight: float = 3.0
  edges: Tuple[Tuple[int, int], ...] = DEFAULT_EDGES
  ignore_label: int = 255

  def __post_init__(self):
    object.__setattr__(self, 'thing_classes',
                       tuple(int(c) for c in self.thing_classes))
    object.__setattr__(self, 'edges',
                       tuple((int(a), int(b)) for a, b in self.edges))
    if self.radius <= 0:
      raise ValueError('radius must be > 0 pixels; got %r.' % (self.radius,))
    k = len(KEYPOINT_NAMES)
    bad = [e for e in self.edges if not (0 <= e[0] < k and 0 <= e[1] < k)
           or e[0] == e[1]]
    if bad:
      raise ValueError('edges must be pairs of distinct keypoint indices in '
                       '0..%d; got %r.' % (k - 1, bad))

  @property
  def num_keypoints(self):
    return len(KEYPOINT_NAMES)

  @property
  def num_edges(self):
    return len(self.edges)


@dataclasses.dataclass(frozen=True)
class Instance:
  category: int
  instance_id: int
  mask: np.ndarray          # bool [H, W]
  keypoints: np.ndarray     # float64 [K, 2] (y, x)

  @property
  def area(self):
    return int(self.mask.sum())


def instance_keypoints(mask):
  """The K = 5 keypoints (y, x) of a mask: box corners (pixel centres) and centre of mass."""
  ys, xs = np.nonzero(mask)
  if ys.size == 0:
    raise ValueError('instance_keypoints needs a non-empty mask; got an empty '
                     'one of shape %s.' % (mask.shape,))
  y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
  return np.array([[y0, x0], [y0, x1], [y1, x0], [y1, x1],
                   [ys.mean(), xs.mean()]], np.float64)


def _check_maps(category, instance):
  category = np.asarray(category)
  instance = np.asarray(instance)
  if category.ndim != 2 or category.shape != instance.shape:
    raise ValueError('category and instance maps must be two [H, W] arrays of '
                     'the same shape; got %s and %s.'
                     % (category.shape, instance.shape))
  for name, array in (('category', category), ('instance', instance)):
    if not np.issubdtype(array.dtype, np.integer):
      raise ValueError('the %s map must be integer; got dtype %s.'
                       % (name, array.dtype))
  return category.astype(np.int64), instance.astype(np.int64)


def find_instances(category, instance, settings):
  """Every (thing category, instance id) segment of the maps, in id order."""
  category, instance = _check_maps(category, instance)
  # Instance 0 is "no instance" (e.g. a Cityscapes crowd of cars): such
  # regions keep their semantic label but give no keypoints or offsets.
  is_thing = np.isin(category, settings.thing_classes) & (instance > 0)
  pairs = np.unique(np.stack([category[is_thing], instance[is_thing]], 1),
                    axis=0) if is_thing.any() else np.zeros((0, 2), np.int64)
  found = []
  for cat, inst in pairs:
    mask = (category == cat) & (instance == inst)
    found.append(Instance(int(cat), int(inst), mask, instance_keypoints(mask)))
  return found


def _disk_window(keypoint, radius, shape):
  """Pixel grid (ys, xs) of the window that holds the disk, and its slices."""
  y, x = keypoint
  r = int(np.ceil(radius))
  y0, y1 = max(0, int(np.floor(y)) - r), min(shape[0], int(np.ceil(y)) + r + 1)
  x0, x1 = max(0, int(np.floor(x)) - r), min(shape[1], int(np.ceil(x)) + r + 1)
  ys, xs = np.mgrid[y0:y1, x0:x1]
  return (slice(y0, y1), slice(x0, x1)), ys, xs


def panoptic_targets(category, instance, settings) -> Dict[str, np.ndarray]:
  """All DeeperLab targets of one image.

  Args:
    category: int [H, W] semantic labels (``settings.ignore_label`` = void).
    instance: int [H, W] instance ids; a thing instance is a (category, id)
      pair with the category in ``settings.thing_classes``.
    settings: PanopticTargetSettings.

  Returns:
    dict of float32 arrays (int32 for 'semantic'), K keypoints, E edges:
      'semantic' [H, W], 'semantic_weights' [H, W], 'valid_mask' [H, W],
      'keypoint_heatmap' [H, W, K],
      'short_range_offsets' [H, W, 2K], 'short_range_mask' [H, W, K],
      'middle_range_offsets' [H, W, 2E], 'middle_range_mask' [H, W, E],
      'long_range_offsets' [H, W, 2K], 'long_range_mask' [H, W, K].
  """
  category, instance = _check_maps(category, instance)
  shape = category.shape
  k, e = settings.num_keypoints, settings.num_edges
  valid = category != settings.ignore_label
  heatmap = np.zeros(shape + (k,), np.float32)
  short = np.zeros(shape + (k, 2), np.float32)
  middle = np.zeros(shape + (e, 2), np.float32)
  middle_mask = np.zeros(shape + (e,), np.float32)
  long_range = np.zeros(shape + (k, 2), np.float32)
  long_mask = np.zeros(shape + (k,), np.float32)
  weights = valid.astype(np.float32)
  nearest = np.full(shape + (k,), np.inf)
  edges_from = [[i for i, (a, _) in enumerate(settings.edges) if a == kp]
                for kp in range(k)]
  grid = np.stack(np.mgrid[0:shape[0], 0:shape[1]], -1).astype(np.float64)
  for inst in find_instances(category, instance, settings):
    if inst.area < settings.small_instance_area:
      weights[inst.mask] = settings.small_instance_weight
    long_range[inst.mask] = (inst.keypoints[np.newaxis]
                             - grid[inst.mask][:, np.newaxis])
    long_mask[inst.mask] = 1.0
    for kp in range(k):
      window, ys, xs = _disk_window(inst.keypoints[kp], settings.radius, shape)
      dy = inst.keypoints[kp, 0] - ys
      dx = inst.keypoints[kp, 1] - xs
      dist = dy * dy + dx * dx
      closer = (dist <= settings.radius ** 2) & (dist < nearest[window + (kp,)])
      nearest[window + (kp,)] = np.where(closer, dist,
                                         nearest[window + (kp,)])
      heatmap[window + (kp,)] = np.where(closer, 1.0, heatmap[window + (kp,)])
      short[window + (kp,)] = np.where(closer[..., None],
                                       np.stack([dy, dx], -1),
                                       short[window + (kp,)])
      for edge in edges_from[kp]:
        target = inst.keypoints[settings.edges[edge][1]]
        vector = np.stack([target[0] - ys, target[1] - xs], -1)
        middle[window + (edge,)] = np.where(closer[..., None], vector,
                                            middle[window + (edge,)])
        middle_mask[window + (edge,)] = np.where(
            closer, 1.0, middle_mask[window + (edge,)])
  return {
      'semantic': category.astype(np.int32),
      'semantic_weights': weights,
      'valid_mask': valid.astype(np.float32),
      'keypoint_heatmap': heatmap,
      'short_range_offsets': short.reshape(shape + (2 * k,)),
      'short_range_mask': heatmap.copy(),
      'middle_range_offsets': middle.reshape(shape + (2 * e,)),
      'middle_range_mask': middle_mask,
      'long_range_offsets': long_range.reshape(shape + (2 * k,)),
      'long_range_mask': long_mask,
  }


def target_channels(settings):
  """Channel count of every target (None: no channel axis), for shapes and specs."""
  k, e = settings.num_keypoints, settings.num_edges
  return {'semantic': None, 'semantic_weights': None, 'valid_mask': None,
          'keypoint_heatmap': k, 'short_range_offsets': 2 * k,
          'short_range_mask': k, 'middle_range_offsets': 2 * e,
          'middle_range_mask': e, 'long_range_offsets': 2 * k,
          'long_range_mask': k}


def panoptic_targets_tf(category, instance, settings):
  """``panoptic_targets`` as a TF op for tf.data: [H, W] int tensors -> dict of tensors."""
  channels = target_channels(settings)
  names = sorted(channels)

  def compute(cat, inst):
    targets = panoptic_targets(cat, inst, settings)
    return [targets[n] for n in names]

  dtypes = [tf.int32 if n == 'semantic' else tf.float32 for n in names]
  outputs = tf.numpy_function(compute, [category, instance], dtypes,
                              stateful=False)
  height, width = category.shape[0], category.shape[1]
  result = {}
  for name, tensor in zip(names, outputs):
    extra = () if channels[name] is None else (channels[name],)
    tensor.set_shape((height, width) + extra)
    result[name] = tensor
  return result
