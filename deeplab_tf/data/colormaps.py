"""Every built-in dataset's label colours (data: what each class id looks like).

The dataset descriptors (``datasets_info``) carry these tables, so training
summaries, vis, demo and panoptic pictures all draw a dataset in the same
colours; ``visualization`` turns a table into pictures. Tables: PASCAL VOC
(the devkit's bit-interleaving rule, as the original
``get_dataset_colormap.create_pascal_label_colormap``), Cityscapes trainIds,
ADE20K (SceneParse150), Mapillary Vistas (the original's 66-entry table) and
CamVid (the SegNet 11 classes).
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


# Entries of the original create_pascal_label_colormap (ids up to 511 have a
# colour there, so a label map of 256 classes plus ids past it can be drawn).
PASCAL_COLORMAP_ENTRIES = 512


def pascal_colormap(num_entries=PASCAL_COLORMAP_ENTRIES):
  """[num_entries, 3] uint8: VOC devkit colours (class 0 black, 255 cream).

  The default size is the original's, 512; the devkit rule gives every id
  its colour, so any ``num_entries`` is a prefix of the same sequence.
  """
  colormap = np.zeros((num_entries, 3), dtype=np.int64)
  indices = np.arange(num_entries)
  for shift in reversed(range(8)):
    for channel in range(3):
      colormap[:, channel] |= ((indices >> channel) & 1) << shift
    indices >>= 3
  return colormap.astype(np.uint8)


def pascal_colours(num_colors=256):
  """The PASCAL VOC colours as a tuple of RGB tuples (a descriptor colormap:
  256, one per 8-bit label value)."""
  return tuple(tuple(c) for c in pascal_colormap(num_colors).tolist())
