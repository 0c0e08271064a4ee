"""CamVid (../shared/camvid) -> TFRecords, shared by the CamVid benchmarks.

11 classes (Sky .. Bicyclist) and void = 11, which becomes the ignore label
255, as ``datasets/build_camvid_data.py`` converts it. No flags here: the
benchmark scripts import it.
"""
import os

NUM_CLASSES = 11
VOID = 11
IGNORE_LABEL = 255


def convert_camvid(camvid_dir, record_dir, max_images=0, num_shards=4,
                   splits=('train', 'val')):
  """CamVid train/val lists -> TFRecord shards; returns {split: count}."""
  from deeplab_tf.data import convert  # pylint: disable=g-import-not-at-top
  counts = {}
  for split in splits:
    samples = convert.read_pair_list(os.path.join(camvid_dir, split + '.txt'),
                                     camvid_dir)
    if max_images:
      samples = samples[:max_images]
    settings = convert.ConvertSettings(
        output_dir=record_dir, split_name=split,
        num_shards=min(num_shards, len(samples)), num_classes=NUM_CLASSES,
        ignore_label=IGNORE_LABEL, label_remap={VOID: IGNORE_LABEL},
        log_every=10 ** 6, num_threads=2)
    summary = convert.write_split(samples, settings)
    print('  ' + summary.line(), flush=True)
    counts[split] = summary.num_written
  return counts
