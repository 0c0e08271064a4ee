"""COCO-format panoptic annotations -> (category, instance) maps.

The format of COCO panoptic (cocodataset.org/#format-data), which Mapillary
Vistas' panoptic release uses too:

  a JSON file   {"images": [{"id", "file_name", "height", "width"}, ...],
                 "annotations": [{"image_id", "file_name" (the PNG),
                                  "segments_info": [{"id", "category_id",
                                                     "area", "iscrowd",
                                                     ...}, ...]}, ...],
                 "categories": [{"id", "name", "isthing", "color"}, ...]}
  a PNG folder  one RGB PNG per image, segment id = R + 256 G + 256^2 B,
                0 = unlabelled (void).

Here each pixel becomes (category, instance) as deeplab2's COCO converter
does: the dataset's category ids, sorted, become contiguous class ids from
``first_class_id`` (COCO: 1..133 with void 0, deeplab2's layout; Mapillary:
0..N-1 with void 255); a stuff segment has instance 0; a thing segment gets
the next instance id of its class in this image, counted from 1 in the
order of ``segments_info``; a crowd thing segment is the ignore label
(``treat_crowd_as_ignore``, deeplab2's default) or keeps its class with
instance 0. A segment whose pixel count differs from its ``area`` fails, as
in deeplab2, so an annotation PNG that does not belong to its JSON entry is
caught.
"""
import dataclasses
import glob
import json
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import tensorflow as tf

from deeplab_tf.data import datasets_info
from deeplab_tf.data.convert import panoptic as panoptic_convert
from deeplab_tf.data.convert import shards
from deeplab_tf.data.convert.shards import ConversionError


@dataclasses.dataclass(frozen=True)
class CategoryMapping:
  """The dataset's category ids -> contiguous class ids (and their metadata)."""
  dataset_ids: Tuple[int, ...]          # sorted
  names: Tuple[str, ...]
  colors: Tuple[Tuple[int, int, int], ...]
  is_thing: Tuple[bool, ...]
  first_class_id: int
  ignore_label: int

  @property
  def num_classes(self):
    return self.first_class_id + len(self.dataset_ids)

  @property
  def thing_classes(self):
    return tuple(self.first_class_id + i
                 for i, thing in enumerate(self.is_thing) if thing)

  def lookup(self) -> Dict[int, int]:
    return {d: self.first_class_id + i for i, d in enumerate(self.dataset_ids)}

  def class_names(self):
    """One name per class id (``void`` for the ids below ``first_class_id``)."""
    return ('void',) * self.first_class_id + self.names

  def colormap(self):
    return ((0, 0, 0),) * self.first_class_id + self.colors


def category_mapping(categories: Sequence[Mapping], first_class_id: int,
                     ignore_label: int, source='categories') -> CategoryMapping:
  """CategoryMapping of a JSON ``categories`` list (checked)."""
  if not categories:
    raise ValueError('%s: no categories.' % source)
  by_id = {}
  for entry in categories:
    try:
      cid = int(entry['id'])
    except (KeyError, TypeError, ValueError):
      raise ValueError('%s: category without an integer "id": %r'
                       % (source, entry)) from None
    if cid in by_id:
      raise ValueError('%s: category id %d listed twice.' % (source, cid))
    by_id[cid] = entry
  ids = tuple(sorted(by_id))
  if first_class_id + len(ids) > 256:
    raise ValueError('%s: %d categories from class id %d do not fit 8-bit '
                     'class ids.' % (source, len(ids), first_class_id))
  if first_class_id <= ignore_label < first_class_id + len(ids):
    raise ValueError('%s: ignore label %d would be a class id (classes %d..%d).'
                     % (source, ignore_label, first_class_id,
                        first_class_id + len(ids) - 1))

  def colour(entry):
    value = entry.get('color') or (0, 0, 0)
    return tuple(int(c) for c in value)[:3]

  return CategoryMapping(
      dataset_ids=ids,
      names=tuple(str(by_id[i].get('name', i)) for i in ids),
      colors=tuple(colour(by_id[i]) for i in ids),
      is_thing=tuple(bool(by_id[i].get('isthing', 0)) for i in ids),
      first_class_id=first_class_id, ignore_label=ignore_label)


def rgb_to_segment_ids(rgb):
  """[H, W, 3] uint8 RGB -> int64 [H, W] ids ``R + 256 G + 256^2 B``."""
  rgb = np.asarray(rgb, np.int64)
  if rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError('expected an RGB panoptic PNG; got shape %s' % (rgb.shape,))
  return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def segments_to_maps(segment_ids, segments_info, mapping: CategoryMapping,
                     label_divisor, treat_crowd_as_ignore=True,
                     check_area=True):
  """Segment-id map + ``segments_info`` -> (category, instance) int32 maps.

  See the module docstring for the rules. Raises ValueError for a segment id
  in the map without an entry, an entry of an unknown category, an area that
  does not match, a crowd stuff segment, or more instances of one class
  than ``label_divisor - 1``.
  """
  segment_ids = np.asarray(segment_ids)
  lookup = mapping.lookup()
  things = set(mapping.thing_classes)
  # One pass over the pixels: per distinct id its pixel count, then a
  # class and an instance per id, gathered back.
  ids, inverse = np.unique(segment_ids, return_inverse=True)
  areas = np.bincount(inverse.ravel(), minlength=len(ids))
  position = {int(sid): i for i, sid in enumerate(ids)}
  class_of = np.full(len(ids), mapping.ignore_label, np.int32)
  instance_of = np.zeros(len(ids), np.int32)
  counts = {}
  listed = set()
  for segment in segments_info:
    sid = int(segment['id'])
    if sid in listed:
      raise ValueError('segment id %d listed twice in segments_info' % sid)
    listed.add(sid)
    dataset_id = int(segment['category_id'])
    if dataset_id not in lookup:
      raise ValueError('segment %d has category_id %d, not in the JSON\'s '
                       'categories' % (sid, dataset_id))
    class_id = lookup[dataset_id]
    index = position.get(sid)
    area = int(areas[index]) if index is not None else 0
    if check_area and 'area' in segment and area != int(segment['area']):
      raise ValueError('segment %d: the PNG has %d pixels, segments_info says '
                       'area %d' % (sid, area, int(segment['area'])))
    crowd = bool(segment.get('iscrowd', 0))
    if crowd and class_id not in things:
      raise ValueError('segment %d: stuff category %d marked iscrowd'
                       % (sid, dataset_id))
    if index is None:
      continue
    if class_id in things and not crowd:
      counts[class_id] = counts.get(class_id, 0) + 1
      if counts[class_id] >= label_divisor:
        raise ValueError('more than %d instances of class %d in one image '
                         '(the label divisor is %d)'
                         % (label_divisor - 1, class_id, label_divisor))
      instance_of[index] = counts[class_id]
    class_of[index] = (mapping.ignore_label
                       if crowd and treat_crowd_as_ignore else class_id)
  unknown = sorted(set(position) - listed - {0})
  if unknown:
    raise ValueError('segment ids %s of the PNG have no segments_info entry'
                     % unknown[:8])
  inverse = inverse.reshape(segment_ids.shape)
  return class_of[inverse], instance_of[inverse]


def load_panoptic_json(path):
  """The parsed panoptic JSON; ConversionError naming the file if unusable."""
  try:
    with tf.io.gfile.GFile(path, 'r') as f:
      data = json.load(f)
  except (tf.errors.NotFoundError, OSError):
    raise ConversionError(path, 'panoptic JSON not found') from None
  except json.JSONDecodeError as e:
    raise ConversionError(path, 'not valid JSON: %s' % e) from None
  missing = [k for k in ('images', 'annotations', 'categories')
             if k not in data]
  if missing:
    raise ConversionError(path, 'not a COCO-format panoptic JSON: '
                                  'missing %s' % ', '.join(missing))
  return data


def _read_segment_png(path):
  data = shards.read_file_bytes(path, 'panoptic PNG')
  try:
    rgb = tf.io.decode_png(data, channels=3).numpy()
  except tf.errors.OpError:
    raise ConversionError(path, 'cannot decode the panoptic PNG '
                                  '(RGB PNG expected)') from None
  return rgb_to_segment_ids(rgb)


@dataclasses.dataclass(frozen=True)
class PanopticJsonSettings:
  label_divisor: int
  treat_crowd_as_ignore: bool = True
  check_area: bool = True


def json_samples(data, image_dir, png_dir, mapping: CategoryMapping,
                 settings: PanopticJsonSettings
                 ) -> List[panoptic_convert.PanopticSample]:
  """PanopticSamples of the JSON's images, sorted by image file name.

  ``image/filename`` is the image file name without extension. An image
  without an annotation entry fails when converted (skip_bad can skip it).
  """
  by_image = {}
  for annotation in data['annotations']:
    by_image[annotation['image_id']] = annotation
  images = sorted(data['images'], key=lambda im: im['file_name'])
  samples = []
  for image in images:
    image_path = os.path.join(image_dir, image['file_name'])
    annotation = by_image.get(image['id'])
    samples.append(panoptic_convert.PanopticSample(
        image_path, os.path.splitext(os.path.basename(image['file_name']))[0],
        _loader(image_path, annotation, png_dir, mapping, settings)))
  return samples


def _loader(image_path, annotation, png_dir, mapping, settings):
  def load():
    if annotation is None:
      raise ConversionError(image_path, 'no entry in the panoptic '
                                    'JSON\'s annotations')
    png = os.path.join(png_dir, annotation['file_name'])
    ids = _read_segment_png(png)
    try:
      return segments_to_maps(ids, annotation['segments_info'], mapping,
                              settings.label_divisor,
                              settings.treat_crowd_as_ignore,
                              settings.check_area)
    except (ValueError, KeyError) as e:
      raise ConversionError(png, str(e)) from None
  return load


DESCRIPTOR_NAME = 'dataset.json'


def _check_descriptor(path, mapping, label_divisor):
  """The descriptor at ``path`` (None if absent); raises if it describes other classes."""
  if not tf.io.gfile.exists(path):
    return None
  old = datasets_info.load_descriptor(path)
  if (old.num_classes, old.thing_classes, old.panoptic_label_divisor,
      old.ignore_label) != (mapping.num_classes, mapping.thing_classes,
                            label_divisor, mapping.ignore_label):
    raise ConversionError(
        path, 'describes other classes (%d, things %s, divisor %s, ignore %d) '
        'than these annotations (%d, things %s, divisor %d, ignore %d); remove '
        'it or use another output_dir'
        % (old.num_classes, old.thing_classes, old.panoptic_label_divisor,
           old.ignore_label, mapping.num_classes, mapping.thing_classes,
           label_divisor, mapping.ignore_label))
  return old


def write_descriptor(path, name, mapping: CategoryMapping, splits_to_sizes,
                     label_divisor):
  """Writes (or extends with new splits) the dataset JSON of the records.

  A descriptor already at ``path`` keeps its other splits; it must describe
  the same classes (converting train and val in two runs).
  """
  old = _check_descriptor(path, mapping, label_divisor)
  sizes = {**(old.splits_to_sizes if old else {}), **dict(splits_to_sizes)}
  descriptor = datasets_info.DatasetDescriptor(
      name=name, splits_to_sizes=sizes, num_classes=mapping.num_classes,
      ignore_label=mapping.ignore_label, class_names=mapping.class_names(),
      colormap=mapping.colormap(), unlabeled_splits=(),
      thing_classes=mapping.thing_classes, panoptic_label_divisor=label_divisor)
  datasets_info.save_descriptor(descriptor, path)
  return descriptor


@dataclasses.dataclass(frozen=True)
class JsonSplit:
  """Where one split of a COCO-format panoptic dataset lies."""
  split_name: str
  json_path: str
  image_dir: str
  png_dir: str


@dataclasses.dataclass(frozen=True)
class JsonDatasetSettings:
  """How a COCO-format panoptic dataset becomes class ids (module docstring)."""
  name: str
  first_class_id: int
  ignore_label: int
  json: PanopticJsonSettings


def convert_json_split(split: JsonSplit, dataset: JsonDatasetSettings,
                       settings: panoptic_convert.PanopticConvertSettings):
  """Converts one split and records it in ``<output_dir>/dataset.json``.

  ``settings.split_name`` and ``num_classes`` are taken from ``split`` and
  the JSON's categories. Returns (PanopticConvertSummary, DatasetDescriptor).
  Raises ConversionError naming the file at fault.
  """
  data = load_panoptic_json(split.json_path)
  try:
    mapping = category_mapping(data['categories'], dataset.first_class_id,
                               dataset.ignore_label)
  except ValueError as e:
    raise ConversionError(split.json_path, str(e)) from None
  for folder in (split.image_dir, split.png_dir):
    if not tf.io.gfile.isdir(folder):
      raise ConversionError(folder, 'folder not found (split %r)'
                                    % split.split_name)
  descriptor_path = os.path.join(settings.output_dir, DESCRIPTOR_NAME)
  _check_descriptor(descriptor_path, mapping, dataset.json.label_divisor)
  samples = json_samples(data, split.image_dir, split.png_dir, mapping,
                         dataset.json)
  summary = panoptic_convert.write_panoptic_split(
      samples, dataclasses.replace(
          settings, split_name=split.split_name,
          num_classes=mapping.num_classes,
          label_divisor=dataset.json.label_divisor,
          ignore_label=dataset.ignore_label))
  if not summary.num_written:
    raise ConversionError(split.json_path, 'no image of split %r '
                                  'could be converted' % split.split_name)
  descriptor = write_descriptor(descriptor_path, dataset.name, mapping,
                                {split.split_name: summary.num_written},
                                dataset.json.label_divisor)
  return summary, descriptor


# Where the datasets' downloads put each split.


def coco_split(root, split, panoptic_json=None, image_dir=None, png_dir=None):
  """Where split ``split`` of COCO 2017 panoptic lies (overrides win)."""
  year = split + '2017'
  return JsonSplit(
      split_name=split,
      json_path=panoptic_json or os.path.join(root, 'annotations',
                                              'panoptic_%s.json' % year),
      image_dir=image_dir or os.path.join(root, year),
      png_dir=png_dir or os.path.join(root, 'annotations', 'panoptic_' + year))


MAPILLARY_SPLIT_FOLDERS = {'train': 'training', 'val': 'validation'}
MAPILLARY_VERSION_FOLDERS = {'v1.2': 'panoptic',
                             'v2.0': os.path.join('v2.0', 'panoptic')}
# Mapillary class ids start at 0; void is 255 (the semantic datasets' ignore).
MAPILLARY_FIRST_CLASS_ID = 0
MAPILLARY_IGNORE_LABEL = 255


def mapillary_split(root, split, version='auto'):
  """JsonSplit of a Mapillary split: ``<root>/<folder>/[v2.0/]panoptic/*.json``."""
  if split not in MAPILLARY_SPLIT_FOLDERS:
    raise ConversionError(
        None, 'unsupported split %r: expected %s'
        % (split, ' or '.join(MAPILLARY_SPLIT_FOLDERS)))
  folder = os.path.join(root, MAPILLARY_SPLIT_FOLDERS[split])
  versions = (['v1.2', 'v2.0'] if version == 'auto' else [version])
  tried = []
  for name in versions:
    panoptic_dir = os.path.join(folder, MAPILLARY_VERSION_FOLDERS[name])
    pattern = os.path.join(panoptic_dir, '*.json')
    found = sorted(glob.glob(pattern))
    tried.append(pattern)
    if len(found) > 1:
      raise ConversionError(panoptic_dir, 'several panoptic JSONs (%s)'
                                    % ', '.join(map(os.path.basename, found)))
    if found:
      return JsonSplit(
          split_name=split, json_path=found[0],
          image_dir=os.path.join(folder, 'images'), png_dir=panoptic_dir)
  raise ConversionError(' or '.join(tried), 'no panoptic JSON found')


def run_splits(splits: Sequence[JsonSplit], dataset: JsonDatasetSettings,
               settings: panoptic_convert.PanopticConvertSettings,
               out=None, err=None):
  """Script body shared by the COCO-format converters: 0 on success, 1 on error."""
  import sys  # pylint: disable=g-import-not-at-top
  out = out or sys.stdout
  err = err or sys.stderr
  for split in splits:
    try:
      summary, descriptor = convert_json_split(split, dataset, settings)
    except ConversionError as e:
      err.write('ERROR: %s\n' % e)
      return 1
    summary.report(out, err)
  out.write('dataset description (--dataset=): %s (%d classes, %d things, '
            'ignore label %d, label divisor %d)\n'
            % (os.path.join(settings.output_dir, DESCRIPTOR_NAME),
               descriptor.num_classes, len(descriptor.thing_classes),
               descriptor.ignore_label, descriptor.panoptic_label_divisor))
  return 0
