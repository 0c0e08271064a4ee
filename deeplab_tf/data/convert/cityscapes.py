"""Cityscapes: labelIds -> trainIds, and polygon annotations -> label maps."""
import json

import numpy as np
import tensorflow as tf

from deeplab_tf.data.convert.semantic import _describe_values

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
