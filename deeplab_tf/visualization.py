"""Label colormaps (PASCAL, Cityscapes, ADE20K, CamVid) and colouring of label maps.

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
  """A [256, 3] uint8 colormap by dataset name."""
  if name in ('pascal', 'pascal_voc_seg', 'quickstart'):
    return pascal_colormap()
  if name == 'cityscapes':
    return _padded(CITYSCAPES_COLORMAP)
  if name == 'camvid':
    return _padded(CAMVID_COLORMAP)
  if name in ('ade20k', 'mapillary_vistas'):
    # Distinct, deterministic colours (a fixed random palette; 0 black).
    colormap = np.random.default_rng(20180301).integers(
        0, 256, (256, 3)).astype(np.uint8)
    colormap[0] = 0
    return colormap
  raise ValueError('Unknown colormap %r; accepted: pascal, cityscapes, camvid, '
                   'ade20k, mapillary_vistas.' % (name,))


def colorize(labels, colormap='pascal'):
  """uint8 [..., 3] colour image of an integer label map (values 0..255).

  ``colormap`` is a name (``get_colormap``) or a sequence of RGB colours, one
  per class id (ids past its end are black).
  """
  labels = np.asarray(labels)
  if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
    raise ValueError('Label values must be in [0, 255], got [%d, %d].'
                     % (labels.min(), labels.max()))
  table = (get_colormap(colormap) if isinstance(colormap, str)
           else _padded(np.asarray(colormap, np.uint8)))
  return table[labels.astype(np.int64)]
