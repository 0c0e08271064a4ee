"""Pictures: label colours, overlays, panoptic colouring, and vis.py's writer.

- ``colors``: label map -> RGB with a dataset's table, overlays, the panoptic
  colouring (used by training summaries, eval_deeperlab, the demo and vis).
- ``vis_lib``: writes a split's predictions as the original vis.py does.

The colour functions are re-exported here (``visualization.colorize``); the
writer is imported as ``deeplab_tf.visualization.vis_lib`` because it needs
TensorFlow and checkpoints, which the colour functions do not.
"""
from deeplab_tf.visualization.colors import ADE20K_COLORMAP
from deeplab_tf.visualization.colors import BOUNDARY_COLOUR
from deeplab_tf.visualization.colors import CAMVID_COLORMAP
from deeplab_tf.visualization.colors import cityscapes_train_id_to_label_id
from deeplab_tf.visualization.colors import CITYSCAPES_COLORMAP
from deeplab_tf.visualization.colors import CITYSCAPES_TRAIN_ID_TO_LABEL_ID
from deeplab_tf.visualization.colors import colorize
from deeplab_tf.visualization.colors import colorize_panoptic
from deeplab_tf.visualization.colors import COLORMAP_MAX_ENTRIES
from deeplab_tf.visualization.colors import COLORMAP_NAMES
from deeplab_tf.visualization.colors import DATASET_COLORMAP
from deeplab_tf.visualization.colors import get_colormap
from deeplab_tf.visualization.colors import label_to_color_image
from deeplab_tf.visualization.colors import map_label_ids
from deeplab_tf.visualization.colors import MAPILLARY_VISTAS_COLORMAP
from deeplab_tf.visualization.colors import overlay
from deeplab_tf.visualization.colors import PANOPTIC_JITTER
from deeplab_tf.visualization.colors import pascal_colormap
from deeplab_tf.visualization.colors import resolve_colormap
from deeplab_tf.visualization.colors import segment_boundaries
from deeplab_tf.visualization.colors import split_panoptic

__all__ = [
    'ADE20K_COLORMAP', 'BOUNDARY_COLOUR', 'CAMVID_COLORMAP',
    'cityscapes_train_id_to_label_id', 'CITYSCAPES_COLORMAP',
    'CITYSCAPES_TRAIN_ID_TO_LABEL_ID', 'colorize', 'colorize_panoptic',
    'COLORMAP_MAX_ENTRIES', 'COLORMAP_NAMES', 'DATASET_COLORMAP',
    'get_colormap', 'label_to_color_image', 'map_label_ids',
    'MAPILLARY_VISTAS_COLORMAP', 'overlay', 'PANOPTIC_JITTER',
    'pascal_colormap', 'resolve_colormap', 'segment_boundaries',
    'split_panoptic',
]
