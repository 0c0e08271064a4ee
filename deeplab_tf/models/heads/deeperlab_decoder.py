"""DeeperLab's space-to-depth decoder and its five image-parsing heads.

Yang et al., "DeeperLab: Single-Shot Image Parser" (arXiv:1902.05093).

Decoder (Sec. 3.1, Fig. 3). Instead of upsampling the stride-16 encoder
output to stride 4 (DeepLabv3+), the stride-4 low-level features are folded
into depth with space-to-depth (block 4), so the fusion and its large kernels
run at stride 16, and depth-to-space unfolds the result back to stride 4:

  low-level (stride 4) -1x1 conv-> 32 -S2D(4)-> 512 (stride 16)
  ASPP output (stride 16, already 1x1-projected to 256)
  concat -> 768 -> two 7x7 depthwise separable convs -> 4096 -D2S(4)-> 256
  (stride 4).

Heads (Sec. 3.2): every head is a 7x7 (depthwise separable) conv with 256
filters and a 1x1 conv to its outputs, on the shared decoder output:
semantic logits (C), keypoint heatmap logits (K), long-range offsets (2K),
short-range offsets (2K) and middle-range offsets (2E, one (dy, dx) pair per
edge of the keypoint relation graph).

Layer names follow the original's scope style: ``decoder/feature_projection0``,
``decoder/decoder_conv0_depthwise`` ..., ``<head>/conv0_depthwise``,
``<head>/logits``.
"""
import dataclasses

import keras
import tensorflow as tf

DECODER_SCOPE = 'decoder'

# Output names, in the order the heads are built.
SEMANTIC = 'semantic'
KEYPOINT_HEATMAP = 'keypoint_heatmap'
LONG_RANGE_OFFSETS = 'long_range_offsets'
SHORT_RANGE_OFFSETS = 'short_range_offsets'
MIDDLE_RANGE_OFFSETS = 'middle_range_offsets'
HEAD_NAMES = (SEMANTIC, KEYPOINT_HEATMAP, LONG_RANGE_OFFSETS,
              SHORT_RANGE_OFFSETS, MIDDLE_RANGE_OFFSETS)


@dataclasses.dataclass(frozen=True)
class DecoderSettings:
  """Channel counts and kernels of the decoder and heads (paper Fig. 3, Sec. 3)."""
  # Sec. 3.1 / Fig. 3: low-level features reduced to 32 channels before S2D.
  low_level_filters: int = 32
  # Sec. 3.1: S2D / D2S by 4 (stride 4 <-> stride 16).
  block_size: int = 4
  # Sec. 3.1 / Fig. 3: two 7x7 depthwise separable convs giving 4096 channels,
  # which D2S(4) turns into 4096 / 16 = 256 channels at stride 4.
  decoder_filters: int = 4096
  decoder_kernel_size: int = 7
  num_decoder_convs: int = 2
  # Sec. 3.2 / Fig. 4: each head is a 7x7 conv with 256 filters, then 1x1.
  head_filters: int = 256
  head_kernel_size: int = 7
  # not in the paper: whether the head's 7x7 is depthwise separable. The
  # paper makes every large kernel depthwise separable for speed (Sec. 3.1);
  # we do the same in the heads.
  head_separable: bool = True

  def __post_init__(self):
    if self.decoder_filters % (self.block_size ** 2):
      raise ValueError(
          'decoder_filters (%d) must be divisible by block_size**2 (%d) for '
          'depth-to-space; got block_size=%d.'
          % (self.decoder_filters, self.block_size ** 2, self.block_size))


@keras.saving.register_keras_serializable(package='deeplab_tf')
class SpaceToDepth(keras.layers.Layer):
  """``tf.nn.space_to_depth`` after zero-padding bottom/right to a block multiple.

  Stride-4 features of a ``16k + 1`` input are ``4k + 1`` wide while the
  stride-16 ones are ``k + 1``: padding to ``4(k + 1)`` makes the folded map
  exactly the encoder's size. (not in the paper: the padding; the paper's
  1441x1441 inputs need it too.)
  """

  def __init__(self, block_size, **kwargs):
    super().__init__(**kwargs)
    self.block_size = int(block_size)

  def call(self, inputs):
    size = tf.shape(inputs)[1:3]
    pad = (-size) % self.block_size
    x = tf.pad(inputs, [[0, 0], [0, pad[0]], [0, pad[1]], [0, 0]])
    return tf.nn.space_to_depth(x, self.block_size)

  def compute_output_shape(self, input_shape):
    def fold(d):
      return None if d is None else -(-d // self.block_size)
    return (input_shape[0], fold(input_shape[1]), fold(input_shape[2]),
            None if input_shape[3] is None
            else input_shape[3] * self.block_size ** 2)

  def get_config(self):
    return dict(super().get_config(), block_size=self.block_size)


@keras.saving.register_keras_serializable(package='deeplab_tf')
class DepthToSpace(keras.layers.Layer):
  """``tf.nn.depth_to_space``, cropped to a reference's size (undoes SpaceToDepth's pad)."""

  def __init__(self, block_size, **kwargs):
    super().__init__(**kwargs)
    self.block_size = int(block_size)

  def call(self, inputs, reference):
    x = tf.nn.depth_to_space(inputs, self.block_size)
    size = tf.shape(reference)[1:3]
    return x[:, :size[0], :size[1], :]

  def compute_output_shape(self, inputs_shape, reference_shape):
    return (inputs_shape[0], reference_shape[1], reference_shape[2],
            None if inputs_shape[3] is None
            else inputs_shape[3] // self.block_size ** 2)

  def get_config(self):
    return dict(super().get_config(), block_size=self.block_size)


def deeperlab_decoder(b, encoder_features, low_level_features, settings, bn):
  """Fuses stride-16 ASPP output with stride-4 features via S2D; returns stride 4.

  Args:
    b: LayerBuilder.
    encoder_features: [B, h16, w16, C] ASPP output (1x1-projected already).
    low_level_features: [B, h4, w4, C'] stride-4 backbone end point, with
      ``ceil(h4 / block) == h16``.
    settings: DecoderSettings.
    bn: BatchNormParams of the decoder (DeepLab's head BN).
  """
  low = b.conv2d(low_level_features, DECODER_SCOPE + '/feature_projection0',
                 settings.low_level_filters, 1, bn=bn, activation='relu')
  folded = SpaceToDepth(settings.block_size,
                        name=DECODER_SCOPE + '.space_to_depth')(low)
  x = keras.layers.Concatenate(axis=3, name=DECODER_SCOPE + '.concat')(
      [encoder_features, folded])
  for i in range(settings.num_decoder_convs):
    x = b.split_separable_conv2d(
        x, '%s/decoder_conv%d' % (DECODER_SCOPE, i), settings.decoder_filters,
        bn=bn, activation='relu', kernel_size=settings.decoder_kernel_size)
  return DepthToSpace(settings.block_size,
                      name=DECODER_SCOPE + '.depth_to_space')(x, low)


def prediction_head(b, features, scope, num_outputs, settings, bn):
  """One head: 7x7 (separable) conv + BN + ReLU, then a 1x1 conv with bias."""
  if settings.head_separable:
    x = b.split_separable_conv2d(features, scope + '/conv0',
                                 settings.head_filters, bn=bn,
                                 activation='relu',
                                 kernel_size=settings.head_kernel_size)
  else:
    x = b.conv2d(features, scope + '/conv0', settings.head_filters,
                 settings.head_kernel_size, bn=bn, activation='relu')
  return b.conv2d(x, scope + '/logits', num_outputs, 1, bn=None,
                  activation=None, use_bias=True)


def head_channels(num_classes, num_keypoints, num_edges):
  """Output channels of each head: C, K, 2K, 2K, 2E."""
  return {SEMANTIC: num_classes, KEYPOINT_HEATMAP: num_keypoints,
          LONG_RANGE_OFFSETS: 2 * num_keypoints,
          SHORT_RANGE_OFFSETS: 2 * num_keypoints,
          MIDDLE_RANGE_OFFSETS: 2 * num_edges}


def prediction_heads(b, features, channels, settings, bn):
  """The five heads on the shared decoder output: {name: tensor at stride 4}."""
  return {name: prediction_head(b, features, name, channels[name], settings,
                                bn)
          for name in HEAD_NAMES}
