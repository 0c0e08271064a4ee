"""The searched cells and cell paths of DeepLab's NAS backbones, as data.

A cell (``nas_cell.py``) is described by its genotype: pairs of operations,
the hidden state each one reads and which hidden states the cell output
leaves out (the original ``core/nas_genotypes.py`` and ``nas_network.py``).
A network is a cell repeated along a *path*: one level per cell, level ``l``
being output stride ``2 ** (l + 2)`` (0: stride 4 ... 3: stride 32).

* PNASNet-5 cell (Liu et al., "Progressive Neural Architecture Search",
  ECCV 2018), with the original's three fixed paths, one per output stride;
* the Auto-DeepLab cell and its searched path (Liu et al., "Auto-DeepLab:
  Hierarchical Neural Architecture Search for Semantic Image Segmentation",
  CVPR 2019, Fig. 3; ``hnasnet`` in the original), which ends at stride 8.

Operation names read ``<op>_<k>x<k>[_<layers>]``: ``separable_5x5_2`` is two
ReLU-separable-conv-BN layers with 5x5 kernels, ``atrous_3x3`` a 3x3 conv at
rate 2, ``max_pool_3x3`` a 3x3 max pool, ``none`` the identity.
"""
import dataclasses
from typing import Dict, Tuple


@dataclasses.dataclass(frozen=True)
class CellGenotype:
  """One NAS cell: ``operations[2i]`` / ``[2i + 1]`` read hidden states
  ``hiddenstate_indices[2i]`` / ``[2i + 1]`` and their sum is a new state.

  Hidden states 0 and 1 are the cell's inputs (this input after a 1x1 conv,
  the input of the cell before); the cell output concatenates every state
  whose ``used_hiddenstates`` entry is 0, in order.
  """
  name: str
  operations: Tuple[str, ...]
  used_hiddenstates: Tuple[int, ...]
  hiddenstate_indices: Tuple[int, ...]

  def __post_init__(self):
    # The original NASBaseCell's two checks.
    if len(self.hiddenstate_indices) != len(self.operations):
      raise ValueError('%s: %d hiddenstate_indices for %d operations; they '
                       'must be as many.' % (self.name,
                                             len(self.hiddenstate_indices),
                                             len(self.operations)))
    if len(self.operations) % 2:
      raise ValueError('%s: the number of operations must be even (pairs), '
                       'got %d.' % (self.name, len(self.operations)))

  @property
  def num_combinations(self):
    return len(self.operations) // 2


PNASNET_CELL = CellGenotype(
    name='PNASNet-5',
    operations=('separable_5x5_2', 'max_pool_3x3', 'separable_7x7_2',
                'max_pool_3x3', 'separable_5x5_2', 'separable_3x3_2',
                'separable_3x3_2', 'max_pool_3x3', 'separable_3x3_2', 'none'),
    used_hiddenstates=(1, 1, 0, 0, 0, 0, 0),
    hiddenstate_indices=(1, 1, 0, 0, 0, 0, 4, 0, 1, 0))

AUTO_DEEPLAB_CELL = CellGenotype(
    name='Auto-DeepLab',
    operations=('atrous_5x5', 'separable_3x3_2', 'separable_3x3_2',
                'atrous_3x3', 'separable_3x3_2', 'separable_3x3_2',
                'separable_5x5_2', 'separable_5x5_2', 'separable_5x5_2',
                'atrous_5x5'),
    used_hiddenstates=(1, 1, 0, 0, 0, 0, 0),
    hiddenstate_indices=(1, 0, 1, 0, 3, 1, 4, 2, 3, 5))

# PNASNet: 12 cells, the first four at stride 8; the output stride decides
# where the remaining ones step down.
PNASNET_PATHS: Dict[int, Tuple[int, ...]] = {
    8: (1,) * 12,
    16: (1,) * 4 + (2,) * 8,
    32: (1,) * 4 + (2,) * 4 + (3,) * 4,
}

# Auto-DeepLab's searched path: down to stride 32 and back up to 8, whatever
# the output stride.
AUTO_DEEPLAB_PATH: Tuple[int, ...] = (0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)


def level_stride(level):
  """The output stride of a path level (0 -> 4, 1 -> 8, 2 -> 16, 3 -> 32)."""
  return 2 ** (level + 2)
