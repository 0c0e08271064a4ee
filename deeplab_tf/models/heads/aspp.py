"""Atrous Spatial Pyramid Pooling with image-level features (DeepLabv3).

Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation"
(2017), Sec. 3.3: ASPP = one 1x1 conv, three 3x3 atrous convs (rates 6/12/18
at output stride 16) and image pooling, all with BatchNorm, concatenated and
projected by a 1x1 conv. DeepLabv3+ (2018) makes the atrous convs separable.
Mirrors the ``aspp_with_batch_norm`` branch of the original
``model.extract_features``, including:

  * image pooling is ``avg_pool(kernel=scale_dimension(crop, 1/OS), stride=
    image_pooling_stride, VALID)`` computed from the *crop size* (a global
    mean only when the input equals the crop), then 1x1 conv + BN + ReLU and an
    align_corners bilinear resize to ``scale_dimension(crop, 1/OS)``;
  * concat order ``[image_pooling, aspp0, aspp1, ...]``;
  * dropout (keep 0.9) after the concat projection, active only in training;
  * LR-ASPP of MobileNetV3 (``aspp_with_squeeze_and_excitation``): the pooled
    branch becomes a sigmoid (or q-sigmoid) gate multiplied into the output.
"""
import keras

from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.builder import BatchNormParams

IMAGE_POOLING_SCOPE = 'image_pooling'
ASPP_SCOPE = 'aspp'
CONCAT_PROJECTION_SCOPE = 'concat_projection'
DROPOUT_KEEP_PROB = 0.9


# model.py hard-codes the BatchNorm of ASPP, image pooling, concat projection
# and decoder: decay 0.9997, epsilon 1e-5. The original --batch_norm_decay
# flag (ModelOptions.batch_norm_decay) is read by nothing.
HEAD_BATCH_NORM = BatchNormParams(epsilon=1e-5, decay=0.9997)


def head_batch_norm(options):
  """ASPP / decoder BatchNorm (fixed, as the original; ``options`` unused)."""
  del options
  return HEAD_BATCH_NORM


def image_pooling(b, features, options):
  """The image-level branch; returns the feature at the ASPP resolution.

  Its activation is always ReLU: the original ``extract_features`` sets
  ``image_feature_activation_fn = tf.nn.relu`` for this conv explicitly, so
  ``use_bounded_activation`` (ReLU6 everywhere else in ASPP) leaves it alone.
  """
  bn = head_batch_norm(options)
  if options.crop_size is not None:
    pool_crop = options.image_pooling_crop_size or options.crop_size
    pool_size = [dl_layers.scale_dimension(d, 1.0 / options.output_stride)
                 for d in pool_crop]
    pooled = keras.layers.AveragePooling2D(
        pool_size, strides=options.image_pooling_stride, padding='valid')(
            features)
    resize = dl_layers.ResizeBilinear(
        [dl_layers.scale_dimension(d, 1.0 / options.output_stride)
         for d in options.crop_size])
    reference = None
  else:
    # No crop size: a global mean, resized back to the feature size.
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True)(features)
    resize = dl_layers.ResizeBilinear()
    reference = features
  if options.aspp_with_squeeze_and_excitation:
    # No BatchNorm here, so slim adds biases.
    gate = 'q_sigmoid' if options.image_se_uses_qsigmoid else 'sigmoid'
    x = b.conv2d(pooled, IMAGE_POOLING_SCOPE, options.aspp_convs_filters, 1,
                 bn=None, activation=gate)
  else:
    x = b.conv2d(pooled, IMAGE_POOLING_SCOPE, options.aspp_convs_filters, 1,
                 bn=bn, activation='relu')
  return resize(x) if reference is None else resize(x, reference)


def aspp(b, features, options):
  """ASPP on backbone features; returns the (projected) concatenation."""
  bn = head_batch_norm(options)
  activation = 'relu6' if options.use_bounded_activation else 'relu'
  depth = options.aspp_convs_filters
  branches = []
  image_feature = None
  if options.add_image_level_feature:
    image_feature = image_pooling(b, features, options)
    if not options.aspp_with_squeeze_and_excitation:
      branches.append(image_feature)
  branches.append(b.conv2d(features, ASPP_SCOPE + '0', depth, 1, bn=bn,
                           activation=activation))
  for i, rate in enumerate(options.atrous_rates or (), 1):
    scope = ASPP_SCOPE + str(i)
    if options.aspp_with_separable_conv:
      branches.append(b.split_separable_conv2d(features, scope, depth,
                                               rate=rate, bn=bn,
                                               activation=activation))
    else:
      branches.append(b.conv2d(features, scope, depth, 3, rate=rate, bn=bn,
                               activation=activation))
  x = (keras.layers.Concatenate(axis=3)(branches) if len(branches) > 1
       else branches[0])
  if options.aspp_with_concat_projection:
    x = b.conv2d(x, CONCAT_PROJECTION_SCOPE, depth, 1, bn=bn,
                 activation=activation)
    # slim.dropout(keep_prob=0.9): active only when the model is called with
    # training=True.
    x = dl_layers.Dropout(keep_prob=DROPOUT_KEEP_PROB)(x)
  if image_feature is not None and options.aspp_with_squeeze_and_excitation:
    x = x * image_feature
  return x
