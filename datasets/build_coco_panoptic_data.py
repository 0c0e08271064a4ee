r"""Converts COCO panoptic (or any COCO-format panoptic dataset) to TFRecords.

Input layout (--coco_root), as the COCO 2017 downloads unpack (and as
deeplab2's build_coco_data.py reads them):

  train2017/*.jpg, val2017/*.jpg                       the images
  annotations/panoptic_{train,val}2017.json            segments and categories
  annotations/panoptic_{train,val}2017/*.png           RGB segment-id PNGs
                                                       (unzip the two zips
                                                       inside annotations/)

Output: ``<output_dir>/{train,val}-NNNNN-of-01000.tfrecord`` in deeplab2's
panoptic layout (raw int32 ``category * 256 + instance``; the 133 COCO
categories sorted by id become 1..133 with void 0, things 1..80; crowd
regions ignored unless --notreat_crowd_as_ignore), so records of either
project read in the other; and ``<output_dir>/dataset.json``, the dataset
description (class names and colours of the JSON, thing classes, label
divisor) for --dataset= of deeplab_tf.train / eval_deeperlab.
See deeplab_tf/data/convert/coco_panoptic.py for every rule.

  python datasets/build_coco_panoptic_data.py --coco_root=./coco \
    --output_dir=./coco/panoptic_tfrecord

Another dataset in the COCO panoptic format: give one --splits entry and
--panoptic_json, --image_dir, --png_dir (and --dataset_name, --first_class_id,
--ignore_label, --label_divisor for its class layout).
"""
from absl import app
from absl import flags

from deeplab_tf.data.convert import coco_panoptic
from deeplab_tf.data.convert import panoptic as panoptic_convert
from deeplab_tf.data import panoptic_records

FLAGS = flags.FLAGS
flags.DEFINE_string('coco_root', './coco', 'COCO root folder (train2017/, '
                    'val2017/, annotations/).')
flags.DEFINE_string('output_dir', './panoptic_tfrecord',
                    'Folder for the shards and dataset.json (created).')
flags.DEFINE_list('splits', ['train', 'val'], 'Splits to convert (record '
                  'names <split>-*): train and/or val for COCO 2017.')
flags.DEFINE_integer('num_shards', 1000, 'Shards per split (deeplab2: 1000).',
                     lower_bound=1)
flags.DEFINE_bool('treat_crowd_as_ignore', True, 'Crowd regions of thing '
                  'classes become the ignore label (deeplab2\'s default); '
                  'false keeps their class with instance 0.')
flags.DEFINE_enum('label_format', panoptic_records.RAW_FORMAT,
                  panoptic_records.LABEL_FORMATS, 'raw: int32 maps, deeplab2\'s '
                  'layout; panoptic_png: RGB-encoded maps, about 100x '
                  'smaller on street scenes, read by deeplab_tf only.')
flags.DEFINE_string('panoptic_json', None, 'Another dataset: its panoptic JSON '
                    '(default <coco_root>/annotations/panoptic_<split>2017.json).')
flags.DEFINE_string('image_dir', None, 'Another dataset: its image folder '
                    '(default <coco_root>/<split>2017).')
flags.DEFINE_string('png_dir', None, 'Another dataset: its segment-id PNG '
                    'folder (default <coco_root>/annotations/panoptic_<split>2017).')
flags.DEFINE_string('dataset_name', 'coco_panoptic', 'Name in dataset.json.')
flags.DEFINE_integer('first_class_id', 1, 'Class id of the first category '
                     '(COCO as deeplab2: 1, void 0).', lower_bound=0)
flags.DEFINE_integer('ignore_label', 0, 'Class id of void (unlabelled, and '
                     'crowd) pixels (COCO as deeplab2: 0).', lower_bound=0,
                     upper_bound=255)
flags.DEFINE_integer('label_divisor', 256, 'Panoptic id = class * this + '
                     'instance (COCO as deeplab2: 256).', lower_bound=2)
flags.DEFINE_bool('check_area', True, 'Fail on a segment whose pixel count '
                  'differs from its JSON area (as deeplab2).')
flags.DEFINE_bool('skip_bad', False, 'Skip bad images, count and list them, '
                  'instead of stopping at the first with exit status 1.')
flags.DEFINE_integer('log_every', 500, 'Log progress (images/s, ETA) every '
                     'this many images.', lower_bound=1)
flags.DEFINE_integer('max_images', 0, 'Convert only the first N images of each '
                     'split (sorted by file name); 0: all.', lower_bound=0)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('unexpected arguments: %s' % ' '.join(argv[1:]))
  overrides = (FLAGS.panoptic_json, FLAGS.image_dir, FLAGS.png_dir)
  if any(overrides) and len(FLAGS.splits) != 1:
    raise app.UsageError('--panoptic_json / --image_dir / --png_dir describe '
                         'one split: give exactly one --splits entry.')
  splits = [coco_panoptic.coco_split(FLAGS.coco_root, s, *overrides) for s in FLAGS.splits]
  dataset = coco_panoptic.JsonDatasetSettings(
      name=FLAGS.dataset_name, first_class_id=FLAGS.first_class_id,
      ignore_label=FLAGS.ignore_label,
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
