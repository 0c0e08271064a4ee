"""DeeperLab's keypoints (Sec. 3.2) and their relation graph: the layout of
the keypoint heatmap and offset channels, shared by the targets (data), the
model's head sizes (models) and the grouping (evaluation)."""

# Sec. 3.2: the four bounding-box corners and the centre of mass (K = 5).
KEYPOINT_NAMES = ('top_left', 'top_right', 'bottom_left', 'bottom_right',
                  'center')
TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT, CENTER = range(5)


def _both_ways(pairs):
  return tuple(e for a, b in pairs for e in ((a, b), (b, a)))


# The keypoint relation graph of the middle-range offsets. not in the paper:
# the exact edge list (the paper draws a directed keypoint relation graph but
# we could not read its edges); we link the centre with every corner and each
# corner with its two neighbours on the box, both directions: 16 edges.
DEFAULT_EDGES = _both_ways(
    [(CENTER, TOP_LEFT), (CENTER, TOP_RIGHT), (CENTER, BOTTOM_LEFT),
     (CENTER, BOTTOM_RIGHT), (TOP_LEFT, TOP_RIGHT), (TOP_RIGHT, BOTTOM_RIGHT),
     (BOTTOM_RIGHT, BOTTOM_LEFT), (BOTTOM_LEFT, TOP_LEFT)])
