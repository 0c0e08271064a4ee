"""DeepLab's VGG-16: the ImageNet VGG-16 conv body made dense (output stride 8).

Simonyan & Zisserman, "Very Deep Convolutional Networks" (2015), configuration
D: thirteen 3x3 convs (64, 64 | 128, 128 | 256 x3 | 512 x3 | 512 x3) with
ReLU and no normalisation, a max pool after each block. DeepLab v1
(arXiv:1412.7062) changes it as follows:

  * Sec. 3.1: no subsampling in the last two max pools (pool4, pool5 at
    stride 1) and the convs after pool4 (conv5_1..conv5_3) dilated by 2 (the
    "hole algorithm"), so the features are at output stride 8;
  * the pools are 3x3 / stride 2 with padding 1 instead of VGG's 2x2 / 2
    (VGG Sec. 2.1), as in the released DeepLab prototxts, whose notes give
    the reason: a 3x3 window keeps the responses of different layers exactly
    aligned on crops of size 8k + 1; pool4 and pool5 are 3x3 / 1, padding 1.

Pooling follows Caffe exactly (``caffe_max_pool``): output size
``ceil((n + 2 - 3) / stride) + 1``, so a 321 crop gives 161, 81, 41, 41, 41.

Input: the model takes RGB pixels 0..255, as every model here. The Caffe net
takes BGR with the mean (104.008, 116.669, 122.675) subtracted (``mean_value``
of the released DeepLab prototxts); the first layer here subtracts the same
mean in RGB order, and ``deeplab_tf.checkpoints.vgg16_imagenet`` flips the input
channels of conv1_1 from BGR to RGB when it loads Caffe or Keras ImageNet
weights, so the two compute the same function.

Layer names are the Caffe layer names (conv1_1 ... conv5_3; pools have no
weights), with no network scope, so weights converted from Caffe keep their
names.
"""
import keras
import tensorflow as tf

from deeplab_tf.core import pixels

# Caffe mean_value of the released DeepLab prototxts (BGR 104.008, 116.669,
# 122.675), here in RGB order because our images are RGB.
CAFFE_MEAN_RGB = pixels.CAFFE_MEAN_RGB

# (Caffe block number, filters of each conv) of VGG-16 configuration D.
BLOCKS = ((1, (64, 64)), (2, (128, 128)), (3, (256, 256, 256)),
          (4, (512, 512, 512)), (5, (512, 512, 512)))
# DeepLab v1 Sec. 3.1: pool4 and pool5 keep the resolution ...
POOL_STRIDES = {1: 2, 2: 2, 3: 2, 4: 1, 5: 1}
# ... and the convs after pool4 are dilated by the stride removed there.
CONV_RATES = {1: 1, 2: 1, 3: 1, 4: 1, 5: 2}
OUTPUT_STRIDE = 8
POOL_KERNEL = 3
POOL_PAD = 1


def caffe_max_pool(x, stride):
  """Caffe's 3x3 max pool with padding 1 and its ceil-mode output size.

  Caffe outputs ``ceil((n + 2 * pad - k) / s) + 1`` positions and ignores the
  padding. Padding ``pad`` before and ``pad + s - 1`` after, then a VALID
  pool, gives that count; zeros in place of Caffe's ignored padding change
  nothing because every pooled map here follows a ReLU (values >= 0) and
  every window holds at least one real value.
  """
  after = POOL_PAD + stride - 1
  x = keras.layers.ZeroPadding2D(((POOL_PAD, after), (POOL_PAD, after)))(x)
  return keras.layers.MaxPooling2D(POOL_KERNEL, strides=stride,
                                   padding='valid')(x)


def vgg_16(b, images, output_stride=OUTPUT_STRIDE, **unused):
  """Builds DeepLab's VGG-16 on 0..255 RGB images.

  Args:
    b: the LayerBuilder.
    images: [batch, H, W, 3] float RGB 0..255 (``Backbone.preprocess`` is
      'none': the mean is subtracted here, as the Caffe data layer does).
    output_stride: must be 8 (validation refuses others first).

  Returns:
    ``(pool5, end_points)``: pool5 at output stride 8 with 512 channels, and
    ``{'data', 'pool1', ..., 'pool5', 'conv1_1', ...}`` (Caffe blob names;
    'data' is the mean-subtracted input).
  """
  if output_stride != OUTPUT_STRIDE:
    raise ValueError('DeepLab VGG-16 has output stride 8 only; got %r.'
                     % (output_stride,))
  # Through the builder, so an image pyramid reuses the one layer.
  x = b.get('data', lambda name: SubtractMean(CAFFE_MEAN_RGB, name=name))(
      images)
  end_points = {'data': x}
  for block, filters in BLOCKS:
    for i, depth in enumerate(filters, 1):
      scope = 'conv%d_%d' % (block, i)
      x = b.conv2d(x, scope, depth, 3, rate=CONV_RATES[block],
                   activation='relu', use_bias=True)
      end_points[scope] = x
    x = caffe_max_pool(x, POOL_STRIDES[block])
    end_points['pool%d' % block] = x
  return x, end_points


@keras.saving.register_keras_serializable(package='deeplab_tf')
class SubtractMean(keras.layers.Layer):
  """``x - mean`` per channel (the Caffe data layer's ``mean_value``)."""

  def __init__(self, mean, **kwargs):
    super().__init__(**kwargs)
    self.mean = tuple(float(m) for m in mean)

  def call(self, inputs):
    x = tf.cast(inputs, tf.float32) - tf.constant(self.mean, tf.float32)
    return tf.cast(x, self.compute_dtype)

  def get_config(self):
    return dict(super().get_config(), mean=self.mean)
