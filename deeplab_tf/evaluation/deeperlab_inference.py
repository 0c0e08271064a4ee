"""DeeperLab inference: keypoints -> class-agnostic instances -> panoptic map.

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093),
Sec. 3.2-3.3, with PersonLab's grouping (Papandreou et al., arXiv:1803.08225,
Sec. 3.1-3.3):

1. Keypoint detection: every pixel votes with its heatmap probability at the
   position its short-range offset points to (Hough voting); the vote maps are
   normalised by pi R^2 and their local maxima above a threshold are the
   detected keypoints.
2. Grouping: each detected centre of mass seeds an instance; the other
   keypoints are reached along the relation graph with the middle-range
   offsets (position + offset at the current keypoint) and snapped to the
   nearest detection of that type within R.
3. Instance masks: every pixel predicted as a 'thing' class goes to the
   instance whose keypoints are closest to where its long-range offsets point
   (mean distance over the K keypoints).
4. Fusion: an instance takes the majority semantic class of its pixels; stuff
   pixels keep their semantic class with instance id 0.

Everything here is numpy on one image whose head outputs are at the image
resolution (``upsample_outputs`` resizes model outputs).
"""
import dataclasses
from typing import Dict, List, Tuple

import numpy as np

from deeplab_tf.core import geometry
from deeplab_tf.data import panoptic_targets
from deeplab_tf.models.heads import deeperlab_decoder as heads

CENTER = panoptic_targets.CENTER


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
  """Grouping and fusion thresholds."""
  thing_classes: Tuple[int, ...] = ()
  # The disk radius of the targets (PersonLab's R = 32); it normalises the
  # Hough votes and bounds how far a grouped keypoint may be snapped.
  radius: float = 32.0
  # not in the paper: pixels with a heatmap probability below this do not vote.
  vote_threshold: float = 0.01
  # not in the paper: minimum normalised Hough score of a keypoint.
  peak_threshold: float = 0.1
  # not in the paper: detections of one type closer than this are merged (NMS).
  nms_radius: int = 3
  edges: Tuple[Tuple[int, int], ...] = panoptic_targets.DEFAULT_EDGES

  def __post_init__(self):
    object.__setattr__(self, 'thing_classes',
                       tuple(int(c) for c in self.thing_classes))


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def hough_scores(probability, offsets, radius, vote_threshold):
  """Votes of probability [H, W] at round(pixel + offset), divided by pi R^2."""
  h, w = probability.shape
  ys, xs = np.nonzero(probability >= vote_threshold)
  ty = np.rint(ys + offsets[ys, xs, 0]).astype(np.int64)
  tx = np.rint(xs + offsets[ys, xs, 1]).astype(np.int64)
  inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
  scores = np.zeros((h, w), np.float64)
  np.add.at(scores, (ty[inside], tx[inside]), probability[ys, xs][inside])
  return scores / (np.pi * radius ** 2)


def find_peaks(scores, threshold, nms_radius):
  """Local maxima >= threshold, greedily suppressed within nms_radius: [(y, x, score)]."""
  r = int(nms_radius)
  padded = np.pad(scores, r, constant_values=-np.inf)
  local_max = np.full(scores.shape, -np.inf)
  h, w = scores.shape
  for dy in range(2 * r + 1):
    for dx in range(2 * r + 1):
      local_max = np.maximum(local_max, padded[dy:dy + h, dx:dx + w])
  ys, xs = np.nonzero((scores >= local_max) & (scores >= threshold))
  order = np.argsort(-scores[ys, xs], kind='stable')
  kept = []
  for i in order:
    y, x = ys[i], xs[i]
    if all((y - ky) ** 2 + (x - kx) ** 2 > r * r for ky, kx, _ in kept):
      kept.append((int(y), int(x), float(scores[y, x])))
  return kept


def detect_keypoints(heatmap_logits, short_range, settings) -> List[list]:
  """Per keypoint type, the detected peaks [(y, x, score)] (step 1)."""
  probability = sigmoid(heatmap_logits)
  peaks = []
  for k in range(probability.shape[-1]):
    scores = hough_scores(probability[..., k], short_range[..., 2 * k:2 * k + 2],
                          settings.radius, settings.vote_threshold)
    peaks.append(find_peaks(scores, settings.peak_threshold,
                            settings.nms_radius))
  return peaks


def group_instances(peaks, middle_range, settings):
  """Keypoint sets [J, K, 2] (y, x), one per detected centre (step 2)."""
  h, w = middle_range.shape[:2]
  num_keypoints = len(peaks)
  instances = []
  for cy, cx, _ in peaks[CENTER]:
    position = {CENTER: np.array([cy, cx], np.float64)}
    frontier = [CENTER]
    while frontier:
      a = frontier.pop(0)
      ay = int(np.clip(np.rint(position[a][0]), 0, h - 1))
      ax = int(np.clip(np.rint(position[a][1]), 0, w - 1))
      for e, (source, b) in enumerate(settings.edges):
        if source != a or b in position:
          continue
        expected = np.array([ay, ax]) + middle_range[ay, ax, 2 * e:2 * e + 2]
        position[b] = _snap(expected, peaks[b], settings.radius)
        frontier.append(b)
    missing = [k for k in range(num_keypoints) if k not in position]
    if missing:
      raise ValueError('keypoints %s cannot be reached from the centre along '
                       'the relation graph %s.' % (missing, settings.edges))
    instances.append(np.stack([position[k] for k in range(num_keypoints)]))
  return np.array(instances, np.float64).reshape(-1, num_keypoints, 2)


def _snap(expected, candidates, radius):
  """The nearest detection within radius of the expected position, else it."""
  best, best_d = expected, radius ** 2
  for y, x, _ in candidates:
    d = (y - expected[0]) ** 2 + (x - expected[1]) ** 2
    if d <= best_d:
      best, best_d = np.array([y, x], np.float64), d
  return best


def assign_pixels(long_range, thing_mask, instance_keypoints):
  """Instance index (1..J, 0 = none) of every thing pixel by long-range offsets (step 3)."""
  h, w = thing_mask.shape
  assignment = np.zeros((h, w), np.int32)
  if instance_keypoints.shape[0] == 0:
    return assignment
  ys, xs = np.nonzero(thing_mask)
  k = instance_keypoints.shape[1]
  pointed = (np.stack([ys, xs], -1)[:, np.newaxis, :].astype(np.float64)
             + long_range[ys, xs].reshape(-1, k, 2))
  best = np.full(ys.shape, np.inf)
  for j, keypoints in enumerate(instance_keypoints):
    distance = np.linalg.norm(pointed - keypoints[np.newaxis], axis=-1).mean(-1)
    closer = distance < best
    best[closer] = distance[closer]
    assignment[ys[closer], xs[closer]] = j + 1
  return assignment


def fuse(semantic, assignment, thing_classes):
  """(category, instance) maps: majority class per instance, stuff instance 0 (step 4)."""
  category = np.array(semantic, np.int64)
  instance = np.zeros_like(category)
  for j in np.unique(assignment[assignment > 0]):
    mask = assignment == j
    votes = np.bincount(category[mask], minlength=max(thing_classes) + 1)
    # Ties go to the smaller class id.
    majority = max(thing_classes, key=lambda c: (votes[c], -c))
    category[mask] = majority
    instance[mask] = j
  return category, instance


def parse(outputs: Dict[str, np.ndarray], settings: InferenceSettings):
  """One image's head outputs (at image size, no batch) -> (category, instance)."""
  if not settings.thing_classes:
    raise ValueError('InferenceSettings.thing_classes is empty: nothing can be '
                     'an instance; pass the dataset thing classes.')
  semantic = np.argmax(outputs[heads.SEMANTIC], axis=-1)
  peaks = detect_keypoints(outputs[heads.KEYPOINT_HEATMAP],
                           outputs[heads.SHORT_RANGE_OFFSETS], settings)
  instances = group_instances(peaks, outputs[heads.MIDDLE_RANGE_OFFSETS],
                              settings)
  thing_mask = np.isin(semantic, settings.thing_classes)
  assignment = assign_pixels(outputs[heads.LONG_RANGE_OFFSETS], thing_mask,
                             instances)
  return fuse(semantic, assignment, settings.thing_classes)


def upsample_outputs(outputs, size):
  """Model outputs [B, h, w, C] -> numpy at ``size`` (align-corners bilinear)."""
  return {name: geometry.resize_bilinear(value, size).numpy()
          for name, value in outputs.items()}
