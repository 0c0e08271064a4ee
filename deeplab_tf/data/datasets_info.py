"""Dataset descriptors: split sizes, number of classes, ignore label.

The counterpart of the original ``research/deeplab/datasets/data_generator.py``
``DatasetDescriptor`` table (``pascal_voc_seg``, ``cityscapes``, ``ade20k``),
plus CamVid, the project's quickstart dataset, and custom datasets described
by a small JSON file instead of an edit of this module::

    {
      "name": "my_dataset",
      "num_classes": 5,
      "ignore_label": 255,
      "splits_to_sizes": {"train": 800, "val": 200},
      "class_names": ["background", "a", "b", "c", "d"],      (optional)
      "colormap": [[0, 0, 0], [128, 0, 0], ...],               (optional)
      "unlabeled_splits": ["test"],                            (optional)
      "thing_classes": [1, 2],                                 (optional)
      "panoptic_label_divisor": 1000                           (optional)
    }

The last two describe panoptic records (``panoptic_records``): which classes
have instances, and the ``category * divisor + instance`` layout. The
panoptic converters write such a file beside their records.

``get_descriptor('pascal_voc_seg')`` or ``get_descriptor('path/to/x.json')``
returns a ``DatasetDescriptor``.

Hard-class presets: DeepLabv3 (Chen et al. 2017, "Rethinking Atrous
Convolution for Semantic Image Segmentation", arXiv:1706.05587) duplicates
the training images that contain hard classes: on PASCAL VOC 2012 bicycle,
chair, dining table, potted plant and sofa (section 4, the test-set
experiments after COCO pre-training), and on Cityscapes bicycle, train and
bus (appendix, the Cityscapes experiments). See ``deeplab_tf.data.hard_classes``.
"""
import dataclasses
import json
import numbers
from typing import Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import colormaps

# Splits the original data_generator reads without a label (common.TEST_SET).
DEFAULT_UNLABELED_SPLITS = ('test',)


class DescriptorError(DeeplabError, ValueError):
  """A dataset description (name, JSON file or field) is not valid."""


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class DatasetDescriptor:
  """What the input pipeline needs to know about a dataset.

  Attributes:
    name: dataset name (e.g. ``pascal_voc_seg``).
    splits_to_sizes: split name -> number of records (as the original).
    num_classes: number of classes including background (VOC: 21).
    ignore_label: the label value excluded from loss and metrics.
    class_names: optional names, one per class id.
    colormap: optional RGB colours, one per class id (visualisation);
      ``label_colours`` is what every picture of this dataset uses.
    unlabeled_splits: splits whose records are read without a label (the
      original skips the label of the ``test`` split).
    thing_classes: panoptic datasets: the class ids with instances.
    panoptic_label_divisor: panoptic datasets: records hold
      ``category * panoptic_label_divisor + instance``.
  """
  name: str
  splits_to_sizes: Mapping[str, int]
  num_classes: int
  ignore_label: int
  class_names: Optional[Tuple[str, ...]] = None
  colormap: Optional[Tuple[Tuple[int, int, int], ...]] = None
  unlabeled_splits: Tuple[str, ...] = DEFAULT_UNLABELED_SPLITS
  thing_classes: Optional[Tuple[int, ...]] = None
  panoptic_label_divisor: Optional[int] = None

  def __post_init__(self):
    where = 'dataset %r' % (self.name,)
    if not isinstance(self.name, str) or not self.name:
      raise DescriptorError('name must be a non-empty string; got %r.'
                            % (self.name,))
    if not isinstance(self.splits_to_sizes, Mapping) or not self.splits_to_sizes:
      raise DescriptorError('%s: splits_to_sizes must be a non-empty mapping '
                            'split name -> size; got %r.'
                            % (where, self.splits_to_sizes))
    for split, size in self.splits_to_sizes.items():
      if not isinstance(split, str) or not split:
        raise DescriptorError('%s: split names must be non-empty strings; got '
                              '%r.' % (where, split))
      if not _is_int(size) or size <= 0:
        raise DescriptorError('%s: size of split %r must be a positive int; '
                              'got %r.' % (where, split, size))
    object.__setattr__(self, 'splits_to_sizes', dict(self.splits_to_sizes))
    if not _is_int(self.num_classes) or not 1 <= self.num_classes <= 256:
      raise DescriptorError('%s: num_classes must be an int in [1, 256] (labels '
                            'are stored as 8-bit PNGs); got %r.'
                            % (where, self.num_classes))
    if not _is_int(self.ignore_label) or not 0 <= self.ignore_label <= 255:
      raise DescriptorError('%s: ignore_label must be an int in [0, 255]; got '
                            '%r.' % (where, self.ignore_label))
    if self.class_names is not None:
      names = tuple(self.class_names)
      if (len(names) != self.num_classes
          or not all(isinstance(n, str) for n in names)):
        raise DescriptorError('%s: class_names must be %d strings (one per '
                              'class); got %r.'
                              % (where, self.num_classes, self.class_names))
      object.__setattr__(self, 'class_names', names)
    if self.colormap is not None:
      colours = []
      for colour in self.colormap:
        colour = tuple(colour) if isinstance(colour, Sequence) else colour
        if (not isinstance(colour, tuple) or len(colour) != 3
            or not all(_is_int(c) and 0 <= c <= 255 for c in colour)):
          raise DescriptorError('%s: colormap entries must be [r, g, b] with '
                                'ints in [0, 255]; got %r.' % (where, colour))
        colours.append(colour)
      if len(colours) < self.num_classes:
        raise DescriptorError('%s: colormap needs at least num_classes=%d '
                              'colours; got %d.'
                              % (where, self.num_classes, len(colours)))
      object.__setattr__(self, 'colormap', tuple(colours))
    unlabeled = tuple(self.unlabeled_splits)
    if not all(isinstance(s, str) for s in unlabeled):
      raise DescriptorError('%s: unlabeled_splits must be split names; got %r.'
                            % (where, self.unlabeled_splits))
    object.__setattr__(self, 'unlabeled_splits', unlabeled)
    self._check_panoptic(where)

  @property
  def label_colours(self):
    """The colours this dataset's labels are drawn in everywhere (training
    summaries, vis ``--colormap_type=dataset``, demo, panoptic pictures): its
    own colormap, else PASCAL's, as the original draws a dataset it has no
    table for."""
    return self.colormap if self.colormap is not None else 'pascal'

  def _check_panoptic(self, where):
    if self.thing_classes is not None:
      things = self.thing_classes
      if (not isinstance(things, Sequence) or isinstance(things, str)
          or not all(_is_int(c) for c in things)):
        raise DescriptorError('%s: thing_classes must be a list of class ids; '
                              'got %r.' % (where, things))
      bad = [c for c in things
             if not 0 <= c < self.num_classes or c == self.ignore_label]
      if bad:
        raise DescriptorError('%s: thing_classes %s are not class ids (0..%d, '
                              'ignore label %d).' % (
                                  where, bad, self.num_classes - 1,
                                  self.ignore_label))
      object.__setattr__(self, 'thing_classes',
                         tuple(sorted(set(int(c) for c in things))))
    divisor = self.panoptic_label_divisor
    if divisor is not None and (not _is_int(divisor) or divisor < 1):
      raise DescriptorError('%s: panoptic_label_divisor must be a positive '
                            'int; got %r.' % (where, divisor))

  def split_size(self, split_name):
    """Records in ``split_name``; a split the dataset lacks raises, listing them."""
    self.check_split(split_name)
    return self.splits_to_sizes[split_name]

  def check_split(self, split_name):
    if split_name not in self.splits_to_sizes:
      raise DescriptorError(
          'Split %r is not a split of dataset %r; accepted: %s.'
          % (split_name, self.name, ', '.join(sorted(self.splits_to_sizes))))

  def has_labels(self, split_name):
    return split_name not in self.unlabeled_splits

  def to_dict(self):
    """The JSON form read by ``load_descriptor``."""
    out = {'name': self.name, 'num_classes': self.num_classes,
           'ignore_label': self.ignore_label,
           'splits_to_sizes': dict(self.splits_to_sizes)}
    if self.class_names is not None:
      out['class_names'] = list(self.class_names)
    if self.colormap is not None:
      out['colormap'] = [list(c) for c in self.colormap]
    if self.unlabeled_splits != DEFAULT_UNLABELED_SPLITS:
      out['unlabeled_splits'] = list(self.unlabeled_splits)
    if self.thing_classes is not None:
      out['thing_classes'] = list(self.thing_classes)
    if self.panoptic_label_divisor is not None:
      out['panoptic_label_divisor'] = self.panoptic_label_divisor
    return out


# ---------------------------------------------------------------------------
# Class names and colour maps.
# ---------------------------------------------------------------------------

PASCAL_VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
    'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
    'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')

CITYSCAPES_CLASSES = (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
    'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
    'truck', 'bus', 'train', 'motorcycle', 'bicycle')

# ../shared/camvid/README.md (void, value 11, is mapped to the ignore label).
CAMVID_CLASSES = (
    'sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign_symbol',
    'fence', 'car', 'pedestrian', 'bicyclist')

QUICKSTART_CLASSES = ('sky', 'grass', 'road', 'box', 'ball', 'cone')
QUICKSTART_COLORMAP = (
    (70, 130, 180), (60, 160, 60), (110, 110, 110), (200, 40, 30),
    (240, 210, 40), (150, 50, 190))


# ---------------------------------------------------------------------------
# The descriptors.
# ---------------------------------------------------------------------------

PASCAL_VOC_SEG = DatasetDescriptor(
    name='pascal_voc_seg',
    splits_to_sizes={'train': 1464, 'train_aug': 10582, 'trainval': 2913,
                     'val': 1449},
    num_classes=21,
    ignore_label=255,
    class_names=PASCAL_VOC_CLASSES,
    # All 256 devkit colours, so the ignore value 255 is drawn cream as in VOC.
    colormap=colormaps.pascal_colours())

CITYSCAPES = DatasetDescriptor(
    name='cityscapes',
    splits_to_sizes={'train_fine': 2975, 'train_coarse': 22973,
                     'trainval_fine': 3475, 'trainval_coarse': 23473,
                     'val_fine': 500, 'test_fine': 1525},
    num_classes=19,
    ignore_label=255,
    class_names=CITYSCAPES_CLASSES,
    colormap=colormaps.CITYSCAPES_COLORMAP,
    # Panoptic records (build_cityscapes_panoptic_data.py): things are
    # person .. bicycle, the trainIds with instance annotations in gtFine
    # (cityscapesScripts labels.py, hasInstances); divisor 1000 as deeplab2.
    thing_classes=tuple(range(11, 19)),
    panoptic_label_divisor=1000)

# ADE20K (SceneParse150): class 0 is "other objects" and is ignored, so the
# 150 classes are ids 1..150 (num_classes counts the ignored 0, as the original).
ADE20K = DatasetDescriptor(
    name='ade20k',
    splits_to_sizes={'train': 20210, 'val': 2000},
    num_classes=151,
    ignore_label=0,
    colormap=colormaps.ADE20K_COLORMAP)

CAMVID = DatasetDescriptor(
    name='camvid',
    splits_to_sizes={'train': 367, 'val': 101, 'test': 233},
    num_classes=11,
    ignore_label=255,
    class_names=CAMVID_CLASSES,
    colormap=colormaps.CAMVID_COLORMAP,
    unlabeled_splits=())   # the CamVid test split has labels

# The embedded dataset of deeplab_tf.data.quickstart (generated, not downloaded).
QUICKSTART = DatasetDescriptor(
    name='quickstart',
    splits_to_sizes={'train': 300, 'val': 60},
    num_classes=len(QUICKSTART_CLASSES),
    ignore_label=255,
    class_names=QUICKSTART_CLASSES,
    colormap=QUICKSTART_COLORMAP,
    unlabeled_splits=())

# COCO panoptic (datasets/build_coco_panoptic_data.py), in deeplab2's
# layout so that records of either project read in the other: the 133
# categories of panoptic_coco_categories.json sorted by id become 1..133
# (the 80 things, whose COCO ids are all below the stuff ids, are 1..80),
# 0 is void and ignored, panoptic ids are category * 256 + instance.
# The converter also writes the exact descriptor of the annotations it
# read (names and colours) beside the records.
COCO_PANOPTIC = DatasetDescriptor(
    name='coco_panoptic',
    splits_to_sizes={'train': 118287, 'val': 5000},
    num_classes=134,
    ignore_label=0,
    unlabeled_splits=(),
    thing_classes=tuple(range(1, 81)),
    panoptic_label_divisor=256)

# Mapillary Vistas v1.2 panoptic (datasets/build_mapillary_panoptic_data.py),
# DeeperLab's dataset: 65 classes 0..64 (the panoptic JSON's categories
# sorted by id), void 255, panoptic ids category * 1000 + instance. Which
# classes are things is read from the JSON you convert (its isthing flags)
# into the dataset.json written beside the records: train and evaluate with
# --dataset=<records>/dataset.json (this entry alone has no thing classes).
MAPILLARY_VISTAS = DatasetDescriptor(
    name='mapillary_vistas',
    splits_to_sizes={'train': 18000, 'val': 2000},
    num_classes=65,
    ignore_label=255,
    # The original's 66-entry table (Vistas' semantic labels end with
    # "unlabeled", 65, which the panoptic categories leave out).
    colormap=colormaps.MAPILLARY_VISTAS_COLORMAP,
    unlabeled_splits=(),
    panoptic_label_divisor=1000)

DATASETS: Dict[str, DatasetDescriptor] = {
    d.name: d for d in (PASCAL_VOC_SEG, CITYSCAPES, ADE20K, CAMVID, QUICKSTART,
                        COCO_PANOPTIC, MAPILLARY_VISTAS)
}

# ---------------------------------------------------------------------------
# Hard-class presets (DeepLabv3, see the module docstring).
# ---------------------------------------------------------------------------

# PASCAL VOC ids: bicycle 2, chair 9, diningtable 11, pottedplant 16, sofa 18.
VOC_HARD_CLASSES = (2, 9, 11, 16, 18)
# Cityscapes train ids: bus 15, train 16, bicycle 18.
CITYSCAPES_HARD_CLASSES = (15, 16, 18)
# The paper "duplicates" those images: each appears twice per epoch.
PAPER_HARD_CLASS_REPEAT = 2
HARD_CLASS_PRESETS: Dict[str, Tuple[int, ...]] = {
    'pascal_voc_seg': VOC_HARD_CLASSES,
    'cityscapes': CITYSCAPES_HARD_CLASSES,
}


def resolve_hard_classes(values, descriptor):
  """Class ids from ints, class names, or ``'paper'`` (the dataset's preset).

  For scripts: ``--hard_classes=paper`` or ``--hard_classes=bicycle,chair``
  or ``--hard_classes=2,9``. Returns a sorted tuple of unique ids.
  """
  ids = set()
  for value in values:
    if _is_int(value):
      ids.add(int(value))
      continue
    text = str(value).strip()
    if text.lstrip('-').isdigit():
      ids.add(int(text))
    elif text == 'paper':
      if descriptor.name not in HARD_CLASS_PRESETS:
        raise DescriptorError(
            'No hard-class preset for dataset %r; presets exist for %s.'
            % (descriptor.name, ', '.join(sorted(HARD_CLASS_PRESETS))))
      ids.update(HARD_CLASS_PRESETS[descriptor.name])
    elif descriptor.class_names and text in descriptor.class_names:
      ids.add(descriptor.class_names.index(text))
    else:
      raise DescriptorError(
          'Hard class %r is neither a class id, "paper", nor a class name of '
          'dataset %r%s.' % (value, descriptor.name,
                             ' (%s)' % ', '.join(descriptor.class_names)
                             if descriptor.class_names else ''))
  for i in ids:
    if not 0 <= i < descriptor.num_classes or i == descriptor.ignore_label:
      raise DescriptorError(
          'Hard class id %d is not a class of dataset %r (ids 0..%d, ignore '
          'label %d).' % (i, descriptor.name, descriptor.num_classes - 1,
                          descriptor.ignore_label))
  return tuple(sorted(ids))


# ---------------------------------------------------------------------------
# Custom datasets: JSON files.
# ---------------------------------------------------------------------------

_REQUIRED_KEYS = ('name', 'num_classes', 'ignore_label', 'splits_to_sizes')
_OPTIONAL_KEYS = ('class_names', 'colormap', 'unlabeled_splits',
                  'thing_classes', 'panoptic_label_divisor')


def descriptor_from_dict(config, source='<dict>'):
  """Validates a JSON-like dict (see the module docstring) into a descriptor."""
  if not isinstance(config, Mapping):
    raise DescriptorError('%s: a dataset description must be a JSON object; '
                          'got %s.' % (source, type(config).__name__))
  missing = [k for k in _REQUIRED_KEYS if k not in config]
  if missing:
    raise DescriptorError('%s: missing key(s) %s; required: %s.'
                          % (source, ', '.join(missing),
                             ', '.join(_REQUIRED_KEYS)))
  unknown = sorted(set(config) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
  if unknown:
    raise DescriptorError('%s: unknown key(s) %s; accepted: %s.'
                          % (source, ', '.join(unknown),
                             ', '.join(_REQUIRED_KEYS + _OPTIONAL_KEYS)))
  kwargs = {k: config[k] for k in _REQUIRED_KEYS + _OPTIONAL_KEYS
            if k in config}
  for key in ('class_names', 'colormap', 'unlabeled_splits', 'thing_classes'):
    if key in kwargs and not isinstance(kwargs[key], (list, tuple)):
      raise DescriptorError('%s: %s must be a list; got %r.'
                            % (source, key, kwargs[key]))
  try:
    return DatasetDescriptor(**kwargs)
  except DescriptorError as e:
    raise DescriptorError('%s: %s' % (source, e)) from None


def load_descriptor(path):
  """Reads and validates a custom dataset description (JSON file)."""
  if not tf.io.gfile.exists(path):
    raise DescriptorError('Dataset description file %s does not exist.' % path)
  with tf.io.gfile.GFile(path, 'r') as f:
    text = f.read()
  try:
    config = json.loads(text)
  except json.JSONDecodeError as e:
    raise DescriptorError('%s is not valid JSON: %s' % (path, e)) from None
  return descriptor_from_dict(config, source=path)


def save_descriptor(descriptor, path):
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(descriptor.to_dict(), indent=2) + '\n')


def get_descriptor(name_or_path):
  """A registered dataset by name, a JSON description by path, or a descriptor."""
  if isinstance(name_or_path, DatasetDescriptor):
    return name_or_path
  if not isinstance(name_or_path, str):
    raise DescriptorError('Expected a dataset name, a JSON path or a '
                          'DatasetDescriptor; got %r.' % (name_or_path,))
  if name_or_path in DATASETS:
    return DATASETS[name_or_path]
  if name_or_path.endswith('.json'):
    return load_descriptor(name_or_path)
  raise DescriptorError('Unknown dataset %r; accepted: %s, or the path of a '
                        'JSON description (*.json).'
                        % (name_or_path, ', '.join(sorted(DATASETS))))
