"""Hand-made panoptic scenes and oracle head outputs shared by the DeeperLab tests."""
import numpy as np


def scene():
  """41x41: stuff 0 and 2 (a road band), things 1 and 3, an ignored patch."""
  category = np.zeros((41, 41), np.int32)
  instance = np.zeros((41, 41), np.int32)
  category[34:, :] = 2
  category[4:13, 4:15] = 1
  instance[4:13, 4:15] = 1
  category[18:27, 22:35] = 3
  instance[18:27, 22:35] = 1
  category[24:31, 3:12] = 1
  instance[24:31, 3:12] = 2
  category[0:2, 30:40] = 255
  return category, instance


def perfect_outputs(targets, num_classes):
  """Head outputs that say exactly what the targets say (confident logits)."""
  semantic = np.where(targets['semantic'] == 255, 0, targets['semantic'])
  return {
      'semantic': np.eye(num_classes)[semantic] * 10.0,
      'keypoint_heatmap': (targets['keypoint_heatmap'] * 2.0 - 1.0) * 10.0,
      'long_range_offsets': targets['long_range_offsets'],
      'short_range_offsets': targets['short_range_offsets'],
      'middle_range_offsets': targets['middle_range_offsets']}
