"""Label colormaps and colouring of label maps (what the original vis.py draws).

Tables by name (``get_colormap``): ``pascal`` (PASCAL VOC), ``cityscapes``
(trainIds), ``ade20k`` (SceneParse150), ``mapillary_vistas`` (the 66 classes
of Vistas v1.x) and ``camvid`` (the SegNet 11 classes). Every table is padded
to 256 entries with black, so any uint8 label value has a colour.

The PASCAL map is the VOC devkit's bit-interleaving rule (class c gets its
bits spread over R, G and B from the most significant bit down), which the
original ``get_dataset_colormap.create_pascal_label_colormap`` also follows.
"""
import numpy as np

# Cityscapes trainId colours (cityscapesScripts labels.py).
CITYSCAPES_COLORMAP = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156),
    (190, 153, 153), (153, 153, 153), (250, 170, 30), (220, 220, 0),
    (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100),
    (0, 0, 230), (119, 11, 32))
# CamVid 11 classes as in the SegNet tutorial (Sky .. Bicyclist).
CAMVID_COLORMAP = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
    (60, 40, 222), (128, 128, 0), (192, 128, 128), (64, 64, 128),
    (64, 0, 128), (64, 64, 0), (0, 128, 192))

# ADE20K / SceneParse150 palette: the benchmark's colour table (color150 of the
# CSAILVision sceneparsing toolkit), with entry 0 ("other objects", the ignore
# label) black in front, as in the original get_dataset_colormap (151 entries).
ADE20K_COLORMAP = (
    (0, 0, 0), (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50),
    (4, 200, 3), (120, 120, 80), (140, 140, 140), (204, 5, 255),
    (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61),
    (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51),
    (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220),
    (255, 9, 92), (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6),
    (10, 255, 71), (255, 41, 10), (7, 255, 255), (224, 255, 8), (102, 8, 255),
    (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20), (255, 8, 41),
    (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0),
    (255, 224, 0), (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255),
    (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245),
    (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0),
    (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82, 255),
    (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0),
    (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255),
    (255, 0, 204), (0, 255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255),
    (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163), (255, 153, 0),
    (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0),
    (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0),
    (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255),
    (153, 0, 255), (71, 255, 0), (255, 0, 163), (255, 204, 0), (255, 0, 143),
    (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255), (255, 0, 122),
    (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255),
    (41, 255, 0), (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255),
    (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0),
    (25, 194, 194), (102, 255, 0), (92, 0, 255))
assert len(ADE20K_COLORMAP) == 151

# Mapillary Vistas (v1.x, 66 classes in config.json order), as the original
# get_dataset_colormap tabulates it. That table is not config.json's own
# colours everywhere (e.g. 5 "other barrier" is (102, 102, 156) here and
# (90, 120, 150) in config.json; 21/22 riders are (255, 0, 0) here); we keep
# the original's so our pictures match the ones its vis.py writes.
MAPILLARY_VISTAS_COLORMAP = (
    (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153),
    (180, 165, 180), (102, 102, 156), (102, 102, 156), (128, 64, 255),
    (140, 140, 200), (170, 170, 170), (250, 170, 160), (96, 96, 96),
    (230, 150, 140), (128, 64, 128), (110, 110, 110), (244, 35, 232),
    (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60), (255, 0, 0),
    (255, 0, 0), (255, 0, 0), (200, 128, 128), (255, 255, 255), (64, 170, 64),
    (128, 64, 64), (70, 130, 180), (255, 255, 255), (152, 251, 152),
    (107, 142, 35), (0, 170, 30), (255, 255, 128), (250, 0, 30), (0, 0, 0),
    (220, 220, 220), (170, 170, 170), (222, 40, 40), (100, 170, 30),
    (40, 40, 40), (33, 33, 33), (170, 170, 170), (0, 0, 142), (170, 170, 170),
    (210, 170, 100), (153, 153, 153), (128, 128, 128), (0, 0, 142),
    (250, 170, 30), (192, 192, 192), (220, 220, 0), (180, 165, 180),
    (119, 11, 32), (0, 0, 142), (0, 60, 100), (0, 0, 142), (0, 0, 90),
    (0, 0, 230), (0, 80, 100), (128, 64, 64), (0, 0, 110), (0, 0, 70),
    (0, 0, 192), (32, 32, 32), (0, 0, 0), (0, 0, 0))
assert len(MAPILLARY_VISTAS_COLORMAP) == 66

# Cityscapes trainId -> labelId (cityscapesScripts labels.py: road 7, sidewalk
# 8, building 11, ... bicycle 33). The evaluation server expects labelIds; the
# original vis.py maps its raw Cityscapes predictions with this table.
CITYSCAPES_TRAIN_ID_TO_LABEL_ID = (
    7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

# Names accepted by get_colormap (the original's four plus CamVid).
COLORMAP_NAMES = ('pascal', 'cityscapes', 'ade20k', 'mapillary_vistas',
                  'camvid')
# The colormap "name" that stands for a dataset description's own colours
# (evaluation.vis_lib.colormap_for).
DATASET_COLORMAP = 'dataset'
# Dataset names that pick a table (registered datasets without their own).
_ALIASES = {'pascal_voc_seg': 'pascal', 'quickstart': 'pascal'}


def pascal_colormap(num_entries=256):
  """[num_entries, 3] uint8: VOC devkit colours (class 0 black, 255 cream)."""
  colormap = np.zeros((num_entries, 3), dtype=np.int64)
  indices = np.arange(num_entries)
  for shift in reversed(range(8)):
    for channel in range(3):
      colormap[:, channel] |= ((indices >> channel) & 1) << shift
    indices >>= 3
  return colormap.astype(np.uint8)


def _padded(colours, num_entries=256):
  colormap = np.zeros((num_entries, 3), np.uint8)
  colormap[:len(colours)] = colours
  return colormap


def get_colormap(name):
  """A [256, 3] uint8 colormap by name (``COLORMAP_NAMES`` or a dataset name).

  Entries past a dataset's table are black, as unused ids should never show.
  """
  name = _ALIASES.get(name, name)
  if name == 'pascal':
    return pascal_colormap()
  tables = {'cityscapes': CITYSCAPES_COLORMAP, 'camvid': CAMVID_COLORMAP,
            'ade20k': ADE20K_COLORMAP,
            'mapillary_vistas': MAPILLARY_VISTAS_COLORMAP}
  if name not in tables:
    raise ValueError('Unknown colormap %r; accepted: %s (or the dataset names '
                     '%s).' % (name, ', '.join(COLORMAP_NAMES),
                               ', '.join(sorted(_ALIASES))))
  return _padded(tables[name])


def resolve_colormap(colormap):
  """[256, 3] uint8 from a name or a sequence of RGB colours (one per id)."""
  if isinstance(colormap, str):
    return get_colormap(colormap)
  colours = np.asarray(colormap)
  if (colours.ndim != 2 or colours.shape[1] != 3 or not 0 < len(colours) <= 256
      or colours.min() < 0 or colours.max() > 255):
    raise ValueError('A colormap must be a name or 1..256 [r, g, b] colours '
                     'with values in [0, 255]; got an array of shape %s.'
                     % (colours.shape,))
  return _padded(colours.astype(np.uint8))


def colorize(labels, colormap='pascal'):
  """uint8 [..., 3] colour image of an integer label map (values 0..255).

  ``colormap`` is a name (``get_colormap``) or a sequence of RGB colours, one
  per class id (ids past its end are black).
  """
  labels = np.asarray(labels)
  if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
    raise ValueError('Label values must be in [0, 255], got [%d, %d].'
                     % (labels.min(), labels.max()))
  return resolve_colormap(colormap)[labels.astype(np.int64)]


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
    colormap: name or RGB list, as ``colorize``.
    ignore_label: drawn black.
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
  colours = colorize(category, colormap).astype(np.int64)
  things = instance > 0
  if jitter and things.any():
    pairs = np.unique(np.stack([category[things], instance[things]], 1),
                      axis=0)
    for cat, ins in pairs:
      where = (category == cat) & (instance == ins)
      colours[where] += _instance_offset(cat, ins, jitter)
  colours = np.clip(colours, 0, 255).astype(np.uint8)
  colours[category == ignore_label] = 0
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
