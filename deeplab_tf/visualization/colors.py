"""Label colormaps and colouring of label maps (what the original vis.py draws).

Tables by name (``get_colormap``): ``pascal`` (PASCAL VOC), ``cityscapes``
(trainIds), ``ade20k`` (SceneParse150), ``mapillary_vistas`` (the 66 classes
of Vistas v1.x) and ``camvid`` (the SegNet 11 classes). Each named table has
the size of the original ``get_dataset_colormap``'s (``COLORMAP_MAX_ENTRIES``:
PASCAL 512, Cityscapes 256 with black past the 19 trainIds, ADE20K 151,
Mapillary Vistas 66; CamVid, ours, 256 like Cityscapes), and a label value
past the table is refused with the original's "label value too large" error
(``label_to_color_image``, ``colorize``). A table given as a list of colours
(a dataset description's) is padded to 256 entries with black.

The PASCAL map is the VOC devkit's bit-interleaving rule (class c gets its
bits spread over R, G and B from the most significant bit down), which the
original ``get_dataset_colormap.create_pascal_label_colormap`` also follows.
"""
import numpy as np

from deeplab_tf.data import datasets_info
# The tables are dataset facts and live with the datasets; re-exported here
# for the drawing functions and existing callers.
from deeplab_tf.data.colormaps import ADE20K_COLORMAP  # pylint: disable=unused-import
from deeplab_tf.data.colormaps import CAMVID_COLORMAP
from deeplab_tf.data.colormaps import CITYSCAPES_COLORMAP
from deeplab_tf.data.colormaps import CITYSCAPES_TRAIN_ID_TO_LABEL_ID
from deeplab_tf.data.colormaps import MAPILLARY_VISTAS_COLORMAP
from deeplab_tf.data.colormaps import pascal_colormap

# Names accepted by get_colormap (the original's four plus CamVid).
COLORMAP_NAMES = ('pascal', 'cityscapes', 'ade20k', 'mapillary_vistas',
                  'camvid')
# The colormap "name" that stands for a dataset description's own colours
# (visualization.vis_lib.colormap_for).
DATASET_COLORMAP = 'dataset'

# Entries of each named table: the original get_dataset_colormap's
# _DATASET_MAX_ENTRIES (its PASCAL map has 512, so ids up to 511 have a
# colour; its Cityscapes map 256, black past the 19 trainIds), and CamVid
# (ours) padded like Cityscapes. Label values must be below them.
COLORMAP_MAX_ENTRIES = {'pascal': 512, 'cityscapes': 256, 'ade20k': 151,
                        'mapillary_vistas': 66, 'camvid': 256}
assert set(COLORMAP_MAX_ENTRIES) == set(COLORMAP_NAMES)


def _padded(colours, num_entries=256):
  colormap = np.zeros((max(num_entries, len(colours)), 3), np.uint8)
  colormap[:len(colours)] = colours
  return colormap


def get_colormap(name):
  """A uint8 [N, 3] colormap by name.

  Args:
    name: one of ``COLORMAP_NAMES`` (N is ``COLORMAP_MAX_ENTRIES[name]``, the
      original's table size), or the name of a registered dataset, meaning
      its ``label_colours`` (``resolve_colormap``).

  Returns:
    uint8 [N, 3]; entries past a dataset's own colours are black, as unused
    ids should never show.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in COLORMAP_NAMES and name in datasets_info.DATASETS:
    return resolve_colormap(datasets_info.DATASETS[name].label_colours)
  if name == 'pascal':
    return pascal_colormap(COLORMAP_MAX_ENTRIES['pascal'])
  tables = {'cityscapes': CITYSCAPES_COLORMAP, 'camvid': CAMVID_COLORMAP,
            'ade20k': ADE20K_COLORMAP,
            'mapillary_vistas': MAPILLARY_VISTAS_COLORMAP}
  if name not in tables:
    raise ValueError('Unknown colormap %r; accepted: %s (or the dataset names '
                     '%s).' % (name, ', '.join(COLORMAP_NAMES),
                               ', '.join(sorted(datasets_info.DATASETS))))
  return _padded(tables[name], COLORMAP_MAX_ENTRIES[name])


def resolve_colormap(colormap):
  """uint8 [N, 3] from a name (``get_colormap``) or RGB colours (one per id;
  padded with black to N = 256 entries)."""
  if isinstance(colormap, str):
    return get_colormap(colormap)
  colours = np.asarray(colormap)
  if (colours.ndim != 2 or colours.shape[1] != 3 or not 0 < len(colours) <= 256
      or colours.min() < 0 or colours.max() > 255):
    raise ValueError('A colormap must be a name or 1..256 [r, g, b] colours '
                     'with values in [0, 255]; got an array of shape %s.'
                     % (colours.shape,))
  return _padded(colours.astype(np.uint8))


def colorize(labels, colormap='pascal', beyond_table='raise'):
  """uint8 [..., 3] colour image of an integer label map of any shape.

  Args:
    labels: integer label ids, >= 0.
    colormap: a name (``get_colormap``: the original's table sizes) or a
      sequence of RGB colours, one per class id (padded with black to 256).
    beyond_table: 'raise' for a label at or past the table's end, as the
      original ``label_to_color_image`` ("label value too large", e.g. 151
      with ADE20K's table); 'black' draws such labels black instead (for
      pictures of groundtruth, whose ignore label, e.g. Mapillary's 255, may
      lie past a table).

  Returns:
    uint8 [..., 3].

  Raises:
    ValueError: for a negative label, or one too large with 'raise'.
  """
  if beyond_table not in ('raise', 'black'):
    raise ValueError("beyond_table must be 'raise' or 'black'; got %r."
                     % (beyond_table,))
  labels = np.asarray(labels)
  table = resolve_colormap(colormap)
  if labels.min(initial=0) < 0:
    raise ValueError('Label values must be >= 0, got %d.' % labels.min())
  labels = labels.astype(np.int64)
  largest = labels.max(initial=0)
  if largest >= len(table):
    if beyond_table == 'raise':
      raise ValueError('label value too large: %d >= %d, the entries of the '
                       '%s colormap.' % (largest, len(table), (
                           repr(colormap) if isinstance(colormap, str)
                           else 'given')))
    table = _padded(table, largest + 1)
  return table[labels]


def label_to_color_image(label, dataset='pascal'):
  """The original ``get_dataset_colormap.label_to_color_image``.

  Args:
    label: integer [H, W] label map.
    dataset: a colormap name of ``COLORMAP_NAMES`` (or anything
      ``get_colormap`` accepts).

  Returns:
    uint8 [H, W, 3] colours.

  Raises:
    ValueError: if ``label`` is not 2-D, or holds a value at or past the
      table's end (``COLORMAP_MAX_ENTRIES``: e.g. 151 for ADE20K, 66 for
      Mapillary Vistas, 512 for PASCAL), as the original; or a negative
      value (the original would wrap it to the table's last entries).
  """
  label = np.asarray(label)
  if label.ndim != 2:
    raise ValueError('Expect 2-D input label. Got %s' % (label.shape,))
  return colorize(label, dataset)


def map_label_ids(labels, table):
  """``table[id]`` for ids inside the table; other ids (e.g. 255) unchanged.

  As the original vis.py's train-id -> eval-id conversion: only the listed ids
  are rewritten, so an ignore value passes through as it is.
  """
  labels = np.asarray(labels)
  if labels.min(initial=0) < 0:
    raise ValueError('Label ids must be >= 0; got %d.' % labels.min())
  lookup = np.arange(max(256, int(labels.max(initial=0)) + 1), dtype=np.int64)
  lookup[:len(table)] = table
  return lookup[labels.astype(np.int64)].astype(labels.dtype)


def cityscapes_train_id_to_label_id(labels):
  """Cityscapes trainIds (0..18) -> labelIds (7..33) for the test server."""
  return map_label_ids(labels, CITYSCAPES_TRAIN_ID_TO_LABEL_ID)


def overlay(image, colours, alpha=0.5):
  """uint8 blend ``(1 - alpha) * image + alpha * colours`` (both [H, W, 3]).

  ``alpha`` is the weight of the label colours: 0 gives the image, 1 the
  coloured labels.
  """
  if not 0.0 <= alpha <= 1.0:
    raise ValueError('overlay alpha must be in [0, 1]; got %r.' % (alpha,))
  image = np.asarray(image, np.float32)
  colours = np.asarray(colours, np.float32)
  if image.shape != colours.shape or image.shape[-1:] != (3,):
    raise ValueError('overlay needs an image and colours of the same [H, W, 3] '
                     'shape; got %s and %s.' % (image.shape, colours.shape))
  blended = (1.0 - alpha) * image + alpha * colours
  return np.clip(np.round(blended), 0, 255).astype(np.uint8)


# --- Panoptic maps ------------------------------------------------------------
# A thing instance is drawn in its class colour shifted by a per-instance
# offset, so instances of one class are told apart while the class stays
# recognisable (the DeeperLab figures' convention: instance colours over the
# semantic colormap). The offset is a function of (class, instance id) only,
# so an instance keeps its colour across frames and runs.
PANOPTIC_JITTER = 48
BOUNDARY_COLOUR = (255, 255, 255)


def _instance_offset(category, instance, jitter):
  """Deterministic [3] int offset in [-jitter, jitter] for one instance."""
  # A small integer hash (no global RNG state): Knuth's multiplicative
  # constant mixes the pair; each channel reads different bits.
  key = (int(category) * 1000003 + int(instance) * 2654435761) % (2 ** 32)
  channels = [(key >> shift) & 0xff for shift in (0, 8, 16)]
  return np.array([c * (2 * jitter) // 255 - jitter for c in channels],
                  np.int64)


def segment_boundaries(segment_ids):
  """bool [H, W]: pixels whose right or lower neighbour is another segment."""
  segment_ids = np.asarray(segment_ids)
  edges = np.zeros(segment_ids.shape, bool)
  horizontal = segment_ids[:, 1:] != segment_ids[:, :-1]
  vertical = segment_ids[1:, :] != segment_ids[:-1, :]
  edges[:, :-1] |= horizontal
  edges[:, 1:] |= horizontal
  edges[:-1, :] |= vertical
  edges[1:, :] |= vertical
  return edges


def colorize_panoptic(category, instance, colormap='pascal', ignore_label=255,
                      jitter=PANOPTIC_JITTER, boundaries=True):
  """uint8 [H, W, 3] picture of a panoptic map.

  Args:
    category: int [H, W] class ids (0..255).
    instance: int [H, W] instance ids, 0 for stuff / no instance.
    colormap: name or RGB list, as ``colorize`` (every category but the
      ignore label must lie in the table).
    ignore_label: drawn black (it may lie past the table, e.g. 255 with
      ADE20K's 151 entries).
    jitter: largest per-channel shift of an instance's colour from its
      class colour (0 draws every instance in the class colour).
    boundaries: draw segment boundaries (class or instance changes) white.

  Returns:
    uint8 [H, W, 3].
  """
  category = np.asarray(category)
  instance = np.asarray(instance)
  if category.shape != instance.shape or category.ndim != 2:
    raise ValueError('colorize_panoptic needs category and instance maps of '
                     'the same [H, W] shape; got %s and %s.'
                     % (category.shape, instance.shape))
  if instance.min(initial=0) < 0:
    raise ValueError('instance ids must be >= 0; got %d.' % instance.min())
  if not 0 <= jitter <= 127:
    raise ValueError('jitter must be in [0, 127]; got %r.' % (jitter,))
  ignored = category == ignore_label
  colours = colorize(np.where(ignored, 0, category),
                     colormap).astype(np.int64)
  things = instance > 0
  if jitter and things.any():
    pairs = np.unique(np.stack([category[things], instance[things]], 1),
                      axis=0)
    for cat, ins in pairs:
      where = (category == cat) & (instance == ins)
      colours[where] += _instance_offset(cat, ins, jitter)
  colours = np.clip(colours, 0, 255).astype(np.uint8)
  colours[ignored] = 0
  if boundaries:
    ids = category.astype(np.int64) * (int(instance.max(initial=0)) + 1) + (
        instance.astype(np.int64))
    colours[segment_boundaries(ids)] = BOUNDARY_COLOUR
  return colours


def split_panoptic(panoptic, label_divisor):
  """(category, instance) int32 maps of ``category * label_divisor + instance``."""
  panoptic = np.asarray(panoptic).astype(np.int64)
  if label_divisor < 1:
    raise ValueError('label_divisor must be >= 1; got %r.' % (label_divisor,))
  return ((panoptic // label_divisor).astype(np.int32),
          (panoptic % label_divisor).astype(np.int32))
