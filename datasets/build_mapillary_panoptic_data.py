r"""Converts Mapillary Vistas panoptic annotations to TFRecords (DeeperLab's dataset).

Input layout (--mapillary_root), as the Mapillary Vistas download unpacks:

  training/images/*.jpg            validation/images/*.jpg
  training/panoptic/*.json         (v1.2: panoptic_2018.json) and the
  training/panoptic/*.png          RGB segment-id PNGs beside it
  (v2.0 keeps them in training/v2.0/panoptic/; --version picks, default the
  one found)

The panoptic release is in the COCO panoptic format; it is read by the same
rules as COCO (deeplab_tf/data/convert/coco_panoptic.py) with these class ids: the
JSON's categories sorted by id become 0..N-1 (v1.2: 65 classes; v2.0 more),
void is the ignore label 255, things are the categories with isthing = 1,
panoptic ids are ``category * 1000 + instance``.

Output: ``<output_dir>/{train,val}-NNNNN-of-00100.tfrecord`` and
``<output_dir>/dataset.json`` (class names, colours, thing classes, label
divisor of the JSON you converted): give that file as --dataset= to
deeplab_tf.train / eval_deeperlab. Labels are stored as RGB PNGs
(--label_format=panoptic_png) by default: Mapillary photos are large and a
raw int32 map of a 12 MP one is 48 MB. Images are kept as shipped (full size);
experiments/mapillary_vistas/ resizes at input time as DeeperLab does.

  python datasets/build_mapillary_panoptic_data.py \
    --mapillary_root=./mapillary_vistas --output_dir=./mapillary_vistas/panoptic_tfrecord
"""
from absl import app
from absl import flags

from deeplab_tf.data.convert import coco_panoptic
from deeplab_tf.data import convert
from deeplab_tf.data.convert import panoptic as panoptic_convert
from deeplab_tf.data import panoptic_records

FLAGS = flags.FLAGS
flags.DEFINE_string('mapillary_root', './mapillary_vistas', 'Mapillary Vistas '
                    'root folder (training/, validation/).')
flags.DEFINE_string('output_dir', './panoptic_tfrecord',
                    'Folder for the shards and dataset.json (created).')
flags.DEFINE_list('splits', ['train', 'val'], 'Splits to convert: train '
                  '(training/, 18000 images) and/or val (validation/, 2000).')
flags.DEFINE_enum('version', 'auto', ['auto'] + sorted(
    coco_panoptic.MAPILLARY_VERSION_FOLDERS), 'Annotation '
                  'release: v1.2 (<split>/panoptic/), v2.0 '
                  '(<split>/v2.0/panoptic/); auto: the one present, v1.2 if '
                  'both (DeeperLab used the 65-class release).')
flags.DEFINE_integer('num_shards', 100, 'Shards per split.', lower_bound=1)
flags.DEFINE_enum('label_format', panoptic_records.PNG_FORMAT,
                  panoptic_records.LABEL_FORMATS, 'panoptic_png: RGB-encoded maps '
                  '(compact); raw: int32 maps as deeplab2 (48 MB per 12 MP '
                  'image).')
flags.DEFINE_bool('treat_crowd_as_ignore', True, 'Crowd regions of thing '
                  'classes become the ignore label (as COCO in deeplab2); '
                  'false keeps their class with instance 0.')
flags.DEFINE_integer('label_divisor', 1000, 'Panoptic id = class * this + '
                     'instance.', lower_bound=2)
flags.DEFINE_bool('check_area', True, 'Fail on a segment whose pixel count '
                  'differs from its JSON area.')
flags.DEFINE_bool('skip_bad', False, 'Skip bad images, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 200, 'Log progress (images/s, ETA) every '
                     'this many images.', lower_bound=1)
flags.DEFINE_integer('max_images', 0, 'Convert only the first N images of each '
                     'split (sorted by file name); 0: all.', lower_bound=0)

def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  import sys  # pylint: disable=g-import-not-at-top
  try:
    splits = [coco_panoptic.mapillary_split(FLAGS.mapillary_root, s, FLAGS.version)
              for s in FLAGS.splits]
  except convert.ConversionError as e:
    sys.stderr.write('ERROR: %s\n' % e)
    return 1
  dataset = coco_panoptic.JsonDatasetSettings(
      name='mapillary_vistas',
      first_class_id=coco_panoptic.MAPILLARY_FIRST_CLASS_ID,
      ignore_label=coco_panoptic.MAPILLARY_IGNORE_LABEL,
      json=coco_panoptic.PanopticJsonSettings(
          label_divisor=FLAGS.label_divisor,
          treat_crowd_as_ignore=FLAGS.treat_crowd_as_ignore,
          check_area=FLAGS.check_area))
  settings = panoptic_convert.PanopticConvertSettings(
      output_dir=FLAGS.output_dir, split_name='', label_divisor=0,
      num_classes=0, num_shards=FLAGS.num_shards, skip_bad=FLAGS.skip_bad,
      log_every=FLAGS.log_every, label_format=FLAGS.label_format,
      max_images=FLAGS.max_images)
  return coco_panoptic.run_splits(splits, dataset, settings)


if __name__ == '__main__':
  app.run(main)
