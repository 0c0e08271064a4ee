"""Raw datasets -> TFRecord shards in the original schema (the converters' library).

- ``shards``: the one shard writer (original names and order, hidden temporary
  files renamed on success), ``ConversionError`` and the file reader.
- ``semantic``: image + label PNG pairs, validated (``write_split``); the
  list-file reader and ``--label_remap`` parser of the scripts.
- ``panoptic``: (category, instance) maps -> panoptic records
  (``write_panoptic_split``).
- Dataset readers: ``cityscapes`` (labelIds -> trainIds, polygons), ``sbd``
  (``cls/*.mat``), ``palette`` (palette PNG -> ids, ``remove_gt_colormap``),
  ``coco_panoptic`` (the COCO panoptic format, also Mapillary Vistas').

The scripts in the top-level ``datasets/`` folder are thin: flags -> one of
these. The semantic names are re-exported here (``convert.write_split``).
"""
from deeplab_tf.data.convert.cityscapes import CITYSCAPES_LABELS
from deeplab_tf.data.convert.cityscapes import CITYSCAPES_NUM_CLASSES
from deeplab_tf.data.convert.cityscapes import cityscapes_id_to_train_id_lut
from deeplab_tf.data.convert.cityscapes import cityscapes_label_ids_to_train_ids
from deeplab_tf.data.convert.cityscapes import load_cityscapes_polygons
from deeplab_tf.data.convert.cityscapes import rasterize_cityscapes_polygons
from deeplab_tf.data.convert.palette import palette_png_to_indices
from deeplab_tf.data.convert.sbd import load_sbd_mat
from deeplab_tf.data.convert.semantic import BadPair
from deeplab_tf.data.convert.semantic import ConvertSettings
from deeplab_tf.data.convert.semantic import ConvertSummary
from deeplab_tf.data.convert.semantic import encode_label_png
from deeplab_tf.data.convert.semantic import parse_label_remap
from deeplab_tf.data.convert.semantic import png_header
from deeplab_tf.data.convert.semantic import read_pair_list
from deeplab_tf.data.convert.semantic import run_split
from deeplab_tf.data.convert.semantic import Sample
from deeplab_tf.data.convert.semantic import write_label_png
from deeplab_tf.data.convert.semantic import write_split
from deeplab_tf.data.convert.shards import ConversionError
from deeplab_tf.data.convert.shards import read_file_bytes
from deeplab_tf.data.convert.shards import shard_assignment
from deeplab_tf.data.convert.shards import ShardWriter

__all__ = [
    'BadPair', 'CITYSCAPES_LABELS', 'CITYSCAPES_NUM_CLASSES',
    'cityscapes_id_to_train_id_lut', 'cityscapes_label_ids_to_train_ids',
    'ConversionError', 'ConvertSettings', 'ConvertSummary',
    'encode_label_png', 'load_cityscapes_polygons', 'load_sbd_mat',
    'palette_png_to_indices', 'parse_label_remap', 'png_header',
    'rasterize_cityscapes_polygons', 'read_file_bytes', 'read_pair_list',
    'run_split', 'Sample', 'shard_assignment', 'ShardWriter',
    'write_label_png', 'write_split',
]
