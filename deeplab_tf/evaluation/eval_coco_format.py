r"""Panoptic Quality or Parsing Covering of COCO-format panoptic results.

The COCO panoptic format (http://cocodataset.org/#format-results) stores one
JSON file (``annotations``: per image a ``file_name`` and ``segments_info``
of ``{id, category_id, iscrowd}``; ``categories``: ``{id, isthing}``) and a
folder of RGB PNGs whose pixels hold segment ids, ``id = R + 256 * G +
256**2 * B``. This is the original DeeperLab script
(``research/deeplab/evaluation/eval_coco_format.py``), same flags:

  python -m deeplab_tf.evaluation.eval_coco_format \
      --gt_json_file=panoptic_val2017.json --gt_folder=panoptic_val2017 \
      --pred_json_file=pred.json --pred_folder=pred --metric=pq \
      --num_categories=201 --ignored_label=0 --max_instances_per_category=256 \
      --num_workers=4

Conversion of each image to category / instance maps, as the original:

- instance ids are given per category in ``segments_info`` order from 0; for
  the ignored category they start at 1 (0 is void);
- groundtruth ``iscrowd`` segments become the ignored category (crowd
  regions); ``iscrowd`` is not looked at in predictions;
- pixels not covered by ``segments_info`` (id 0) are void: ignored category,
  instance 0. (The original fills them with category 0, which is the void
  only when ``ignored_label`` is 0, COCO's setting; with another ignored
  label it would count unlabeled pixels as category 0.)

Images are paired by ``image_id``; a groundtruth image without prediction is
an error. With ``--num_workers`` > 0, images are split between processes,
each returning one accumulator per image, merged in image order: the result
does not depend on the number of workers, bit for bit. Prints the table of
``print_detailed_results`` (All / Things / Stuff from the groundtruth
``isthing``) and returns ``detailed_results``.
"""
import functools
import json
import multiprocessing
import os
import sys

from absl import app
from absl import flags
from absl import logging
import cv2
import numpy as np

from deeplab_tf.evaluation import panoptic_quality
from deeplab_tf.evaluation import parsing_covering

FLAGS = flags.FLAGS

flags.DEFINE_string('gt_json_file', None, 'Path to a JSON file giving '
                    'groundtruth annotations in COCO panoptic format.')
flags.DEFINE_string('pred_json_file', None, 'Path to a JSON file for the '
                    'predictions to evaluate.')
flags.DEFINE_string('gt_folder', None, 'Folder of the groundtruth panoptic '
                    'ID images (default: gt_json_file without ".json").')
flags.DEFINE_string('pred_folder', None, 'Folder of the predicted panoptic '
                    'ID images (default: pred_json_file without ".json").')
flags.DEFINE_enum('metric', 'pq', ['pq', 'pc'], 'Metric to compute: Panoptic '
                  'Quality (pq) or Parsing Covering (pc).')
flags.DEFINE_integer('num_categories', 201, 'The number of segmentation '
                     'categories in the dataset (COCO: 201).')
flags.DEFINE_integer('ignored_label', 0, 'Category id ignored in evaluation, '
                     'e.g. the void label of COCO panoptic (0).')
flags.DEFINE_integer('max_instances_per_category', 256, 'The maximum number '
                     'of instances of one category in an image.')
flags.DEFINE_integer('intersection_offset', None, 'Bound on predicted '
                     'segment ids (category * max_instances_per_category + '
                     'instance); default (num_categories + 1) * '
                     'max_instances_per_category.')
flags.DEFINE_bool('normalize_by_image_size', True, 'Parsing Covering only: '
                  'divide each image\'s region areas by its size before '
                  'summing over the dataset.')
flags.DEFINE_integer('num_workers', 0, 'Processes computing the metric in '
                     'parallel over the images; 0: in this process; -1: one '
                     'per CPU.')
flags.DEFINE_integer('print_digits', 3, 'Digits kept when printing the '
                     'metrics (round(value, digits) * 100).')


def build_metric(metric, num_categories, ignored_label,
                 max_instances_per_category, intersection_offset=None,
                 normalize_by_image_size=True):
  """Creates an empty accumulator of the named metric.

  Args:
    metric: 'pq' (Panoptic Quality) or 'pc' (Parsing Covering).
    num_categories: number of categories.
    ignored_label: void / crowd category.
    max_instances_per_category: instance ids must be smaller.
    intersection_offset: bound on predicted segment ids; None:
      (num_categories + 1) * max_instances_per_category, the original's
      default.
    normalize_by_image_size: PC only, see ``ParsingCovering``.

  Returns:
    A ``PanopticQuality`` or a ``ParsingCovering``.

  Raises:
    ValueError: for another metric name.
  """
  if intersection_offset is None:
    intersection_offset = (num_categories + 1) * max_instances_per_category
  if metric == 'pq':
    return panoptic_quality.PanopticQuality(
        num_categories, ignored_label, max_instances_per_category,
        intersection_offset)
  if metric == 'pc':
    return parsing_covering.ParsingCovering(
        num_categories, ignored_label, max_instances_per_category,
        intersection_offset, normalize_by_image_size)
  raise ValueError('metric must be "pq" or "pc"; received %r' % (metric,))


def matched_annotations(gt_json, pred_json):
  """Pairs groundtruth and predicted image annotations by image_id.

  Args:
    gt_json: the parsed groundtruth JSON.
    pred_json: the parsed prediction JSON.

  Returns:
    List of (groundtruth annotation, predicted annotation), groundtruth order.

  Raises:
    ValueError: if a groundtruth image has no predicted annotation.
  """
  predictions = {ann['image_id']: ann for ann in pred_json['annotations']}
  missing = [ann['image_id'] for ann in gt_json['annotations']
             if ann['image_id'] not in predictions]
  if missing:
    raise ValueError('%d groundtruth image(s) have no prediction in the '
                     'prediction JSON, e.g. image_id %r'
                     % (len(missing), missing[0]))
  return [(ann, predictions[ann['image_id']]) for ann in gt_json['annotations']]


def read_panoptic_id_image(path):
  """Reads a COCO panoptic PNG as segment ids R + 256 G + 256^2 B.

  Args:
    path: the PNG file.

  Returns:
    int64 [H, W] segment ids.

  Raises:
    FileNotFoundError: if the file cannot be read as an image.
    ValueError: if it is not an 8-bit colour image.
  """
  image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  if image is None:
    raise FileNotFoundError('cannot read the panoptic PNG %s' % path)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3,
                                                                          4):
    raise ValueError('%s: expected an 8-bit RGB(A) panoptic PNG; received '
                     'dtype %s, shape %s' % (path, image.dtype, image.shape))
  # cv2 returns channels as B, G, R (, A).
  image = image[..., :3].astype(np.int64)
  return image[..., 2] + 256 * image[..., 1] + 256 * 256 * image[..., 0]


def split_panoptic(annotation, id_image, ignored_label, allow_crowds):
  """Turns one image's segment-id map into category and instance maps.

  Args:
    annotation: the image's annotation (``segments_info``).
    id_image: int [H, W] segment ids, as ``read_panoptic_id_image``.
    ignored_label: void / crowd category.
    allow_crowds: map ``iscrowd`` segments to the ignored category
      (groundtruth only, as the original).

  Returns:
    (category int32 [H, W], instance int32 [H, W]); pixels of no segment are
    (ignored_label, 0).

  Raises:
    ValueError: if segments_info repeats a segment id.
  """
  segments = annotation['segments_info']
  ids = np.array([s['id'] for s in segments], np.int64)
  if np.unique(ids).size != ids.size:
    raise ValueError('%s: segments_info repeats segment ids'
                     % annotation.get('file_name'))
  categories = np.zeros(len(segments) + 1, np.int32)
  instances = np.zeros(len(segments) + 1, np.int32)
  next_instance = {ignored_label: 1}   # instance 0 of it is void
  for i, segment in enumerate(segments):
    if allow_crowds and segment.get('iscrowd', 0):
      category = ignored_label
    else:
      category = segment['category_id']
    categories[i] = category
    instances[i] = next_instance.get(category, 0)
    next_instance[category] = instances[i] + 1
  categories[-1] = ignored_label   # the entry of unlisted pixels: void
  # Look each pixel's id up among the listed ids (sorted search, no loop
  # over segments); misses get the last entry.
  order = np.argsort(ids)
  position = np.searchsorted(ids[order], id_image)
  position = np.minimum(position, max(ids.size - 1, 0))
  if ids.size:
    found = ids[order][position] == id_image
    entry = np.where(found, order[position], len(segments))
  else:
    entry = np.full(id_image.shape, len(segments))
  return categories[entry], instances[entry]


def _image_maps(annotation, folder, ignored_label, allow_crowds):
  """Reads one annotation's PNG and splits it (see ``split_panoptic``)."""
  id_image = read_panoptic_id_image(os.path.join(folder,
                                                 annotation['file_name']))
  return split_panoptic(annotation, id_image, ignored_label, allow_crowds)


def evaluate_image(empty_metric, gt_folder, pred_folder, annotation_pair):
  """The accumulator of one image pair (a fresh copy of ``empty_metric``).

  Args:
    empty_metric: an accumulator giving the metric and its settings.
    gt_folder: folder of the groundtruth PNGs.
    pred_folder: folder of the predicted PNGs.
    annotation_pair: (groundtruth annotation, predicted annotation).

  Returns:
    A metric of the same kind holding only this image.
  """
  gt_annotation, pred_annotation = annotation_pair
  metric = _fresh_copy(empty_metric)
  gt_category, gt_instance = _image_maps(gt_annotation, gt_folder,
                                         metric.ignored_label, True)
  pred_category, pred_instance = _image_maps(pred_annotation, pred_folder,
                                             metric.ignored_label, False)
  if gt_category.shape != pred_category.shape:
    raise ValueError('image_id %r: groundtruth %s is %s, prediction %s is %s'
                     % (gt_annotation['image_id'], gt_annotation['file_name'],
                        gt_category.shape, pred_annotation['file_name'],
                        pred_category.shape))
  metric.compare_and_accumulate(gt_category, gt_instance, pred_category,
                                pred_instance)
  return metric


def _fresh_copy(metric):
  """An empty accumulator with the settings of ``metric``."""
  if isinstance(metric, parsing_covering.ParsingCovering):
    return parsing_covering.ParsingCovering(
        metric.num_categories, metric.ignored_label,
        metric.max_instances_per_category, metric.offset,
        metric.normalize_by_image_size)
  return type(metric)(metric.num_categories, metric.ignored_label,
                      metric.max_instances_per_category, metric.offset)


def _process_pool(num_workers):
  """A pool of ``num_workers`` processes (fork where the OS has it).

  Fork is the original's default on Linux and avoids re-importing
  TensorFlow in every worker; the workers only run numpy and cv2.
  """
  methods = multiprocessing.get_all_start_methods()
  context = multiprocessing.get_context('fork' if 'fork' in methods else None)
  return context.Pool(num_workers)


def accumulate(metric, annotation_pairs, gt_folder, pred_folder,
               num_workers=0):
  """Adds every image pair to ``metric``, in order, possibly in parallel.

  Args:
    metric: the (empty or not) accumulator, updated in place.
    annotation_pairs: list of (groundtruth, predicted) annotations.
    gt_folder: folder of the groundtruth PNGs.
    pred_folder: folder of the predicted PNGs.
    num_workers: 0 evaluates here; n > 0 in n processes; -1 one per CPU.

  Returns:
    ``metric``.
  """
  if num_workers == -1:
    num_workers = multiprocessing.cpu_count()
  work = functools.partial(evaluate_image, _fresh_copy(metric), gt_folder,
                           pred_folder)
  if num_workers > 0 and annotation_pairs:
    logging.info('Computing the metric with %d worker processes.',
                 num_workers)
    chunk = max(1, len(annotation_pairs) // (4 * num_workers))
    with _process_pool(num_workers) as pool:
      # imap keeps the image order: merging per-image accumulators in that
      # order gives the single-process sums exactly.
      for image_metric in pool.imap(work, annotation_pairs, chunk):
        metric.merge(image_metric)
  else:
    for pair in annotation_pairs:
      metric.merge(work(pair))
  return metric


def is_thing_array(categories_json, ignored_label, num_categories):
  """is_thing[category_id] from the groundtruth ``categories`` list.

  Args:
    categories_json: list of {'id', 'isthing'} (COCO ``categories``).
    ignored_label: the void category (may be missing from the list).
    num_categories: length of the returned array.

  Returns:
    bool [num_categories]; categories not listed are stuff (False).
  """
  is_thing = np.zeros(num_categories, bool)
  listed = set()
  for category in categories_json:
    if 0 <= category['id'] < num_categories:
      is_thing[category['id']] = bool(category['isthing'])
    else:
      logging.warning('category id %d is outside [0, num_categories=%d)',
                      category['id'], num_categories)
    listed.add(category['id'])
  if listed:
    unlisted = set(range(max(listed) + 1)) - listed - {ignored_label}
    if unlisted:
      # As the original: metrics cope, but this is often a mistake.
      logging.warning('Nonconsecutive category ids or no category JSON for '
                      'ids: %s', sorted(unlisted))
  return is_thing


def eval_coco_format(gt_json_file, pred_json_file, gt_folder=None,
                     pred_folder=None, metric='pq', num_categories=201,
                     ignored_label=0, max_instances_per_category=256,
                     intersection_offset=None, normalize_by_image_size=True,
                     num_workers=0, print_digits=3):
  """Evaluates a COCO-format panoptic prediction (the original's function).

  Defaults are COCO panoptic's (201 categories, void 0).

  Args:
    gt_json_file: groundtruth JSON in COCO panoptic format.
    pred_json_file: prediction JSON in the same format.
    gt_folder: groundtruth PNG folder; None: gt_json_file without '.json'.
    pred_folder: prediction PNG folder; None: pred_json_file without '.json'.
    metric: 'pq' or 'pc'.
    num_categories: number of categories.
    ignored_label: void / crowd category.
    max_instances_per_category: instance ids of one category must be
      smaller (an error is raised otherwise).
    intersection_offset: bound on predicted segment ids; None:
      (num_categories + 1) * max_instances_per_category.
    normalize_by_image_size: PC only: each image weighs the same.
    num_workers: 0 in this process, n > 0 worker processes, -1 one per CPU.
    print_digits: digits of the printed table.

  Returns:
    The metric's ``detailed_results(is_thing)`` dictionary.
  """
  with open(gt_json_file) as f:
    gt_json = json.load(f)
  with open(pred_json_file) as f:
    pred_json = json.load(f)
  if gt_folder is None:
    gt_folder = gt_json_file.replace('.json', '')
  if pred_folder is None:
    pred_folder = pred_json_file.replace('.json', '')
  if metric == 'pq':
    logging.warning('One should check Panoptic Quality results against the '
                    'official COCO panopticapi: small numerical differences '
                    '(< 0.1%%) can be magnified by rounding.')
  aggregator = build_metric(metric, num_categories, ignored_label,
                            max_instances_per_category, intersection_offset,
                            normalize_by_image_size)
  accumulate(aggregator, matched_annotations(gt_json, pred_json), gt_folder,
             pred_folder, num_workers)
  is_thing = is_thing_array(gt_json.get('categories', []), ignored_label,
                            num_categories)
  aggregator.print_detailed_results(is_thing=is_thing,
                                    print_digits=print_digits)
  return aggregator.detailed_results(is_thing=is_thing)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  try:
    eval_coco_format(FLAGS.gt_json_file, FLAGS.pred_json_file,
                     FLAGS.gt_folder, FLAGS.pred_folder, FLAGS.metric,
                     FLAGS.num_categories, FLAGS.ignored_label,
                     FLAGS.max_instances_per_category,
                     FLAGS.intersection_offset, FLAGS.normalize_by_image_size,
                     FLAGS.num_workers, FLAGS.print_digits)
  except (OSError, ValueError, KeyError) as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  return 0


def run():
  flags.mark_flags_as_required(['gt_json_file', 'pred_json_file'])
  app.run(main)


if __name__ == '__main__':
  run()
