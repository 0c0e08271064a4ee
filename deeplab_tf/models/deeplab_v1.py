"""DeepLab v1: DeepLab-LargeFOV and DeepLab-MSc-LargeFOV on VGG-16.

Chen et al., "Semantic Image Segmentation with Deep Convolutional Nets and
Fully Connected CRFs" (ICLR 2015, arXiv:1412.7062). The fully connected CRF
of that paper is post-processing and lives in ``deeplab_tf.crf``.

DeepLab-LargeFOV (v1 Sec. 5 "Field of View", Table 2): VGG-16's fully
connected layers as convolutions on pool5 (``backbones/vgg16.py``, output
stride 8), with

  * fc6: 3x3 kernel at input stride (atrous rate) 12, 1024 filters (the 7x7
    kernel spatially subsampled, Sec. 3.2, and 4096 -> 1024 filters, Sec. 5);
  * fc7: 1x1, 1024 filters;
  * ReLU and dropout 0.5 after fc6 and fc7 (VGG's own fc regularisation,
    Simonyan & Zisserman Sec. 3.1; kept by DeepLab), active only in training;
  * fc8: 1x1 to the classes, no ReLU (the "final classifier layer" that v1
    Sec. 5 trains at 10x the learning rate).

That is 20.5M parameters for 21 classes (Table 2).

DeepLab-MSc-LargeFOV (v1 Sec. 4.3 "Multi-scale prediction"): a two-layer MLP
(128 3x3 filters, then 128 1x1 filters, both with ReLU) on the input image
and on each of pool1..pool4, "whose feature map is concatenated to the main
network's last layer feature map"; the classifier then sees fc7's 1024
channels plus 5 * 128 = 640. The paper gives only the filter sizes; as in
the released DeepLab-MSc-LargeFOV net (as public ports of its prototxt
reproduce it), the first MLP layer strides by 8, 4, 2, 1, 1 so every map is
at the output stride, and each MLP layer is followed by dropout 0.5. That
net gives each MLP its own fc8 and sums their scores, the same function as
one fc8 on the concatenation (a 1x1 conv is linear in its input channels)
but for one bias per MLP; we build the paper's concatenation.

Layer names: the Caffe names conv1_1 ... conv5_3, fc6, fc7, and
``msc/<source>/mlp_1|mlp_2`` for the MSc MLPs (source: data, pool1..pool4).
The classifier (Caffe fc8) is ``logits/<output>``, the original TF code's
logits scope, so everything that treats the last layer specially works
unchanged: ``initialize_last_layer=False`` skips it and
``last_layers_contain_logits_only`` with ``last_layer_gradient_multiplier=10``
gives it the papers' 10x learning rate (20x on its bias, as Caffe's
lr_mult 10 / 20).
"""
import keras

from deeplab_tf.models import backbones
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models.options import META_ARCHITECTURE_V1_MSC_LARGEFOV

# The original model.py's logits scope (deeplab.LOGITS_SCOPE_NAME): fc8.
LOGITS_SCOPE_NAME = 'logits'

LARGEFOV_RATE = 12        # v1 Sec. 5 / Table 2: kernel 3x3, input stride 12
FC_FILTERS = 1024         # v1 Sec. 5: fc6 and fc7 thinned from 4096 to 1024
FC6_KERNEL = 3            # v1 Sec. 3.2: fc6 subsampled from 7x7 to 3x3
DROPOUT_RATE = 0.5        # VGG's dropout after fc6 / fc7 (and the MSc MLPs)

# v1 Sec. 4.3: an MLP on the input image and on pool1..pool4 ...
MSC_SOURCES = ('data', 'pool1', 'pool2', 'pool3', 'pool4')
MSC_FILTERS = 128         # ... 128 3x3 filters, then 128 1x1 filters.
# Stride of each source relative to the input, to bring it to stride 8.
MSC_SOURCE_STRIDES = {'data': 1, 'pool1': 2, 'pool2': 4, 'pool3': 8,
                      'pool4': 8}
MSC_SCOPE = 'msc'


def backbone_features(b, images, options):
  """VGG-16 pool5 (output stride 8) and its end points, on 0..255 images."""
  backbone = backbones.get_backbone(options.model_variant)
  x = dl_layers.NormalizeImage(backbone.preprocess)(images)
  return backbone.build(b, x, options.output_stride, scope=backbone.scope)


def fc_branch(b, features, rate, suffix=''):
  """fc6 (3x3, ``rate``, 1024) -> ReLU -> dropout -> fc7 (1x1, 1024) -> ReLU -> dropout.

  LargeFOV is one such branch at rate 12; DeepLab-ASPP (v2) runs one per
  rate. ``suffix`` names the layers fc6<suffix>, fc7<suffix>.
  """
  x = b.conv2d(features, 'fc6' + suffix, FC_FILTERS, FC6_KERNEL, rate=rate,
               activation='relu', use_bias=True)
  # keras Dropout is active only when the model is called with training=True.
  x = keras.layers.Dropout(DROPOUT_RATE)(x)
  x = b.conv2d(x, 'fc7' + suffix, FC_FILTERS, 1, activation='relu',
               use_bias=True)
  return keras.layers.Dropout(DROPOUT_RATE)(x)


def classifier(b, features, num_classes, output, suffix=''):
  """fc8: 1x1 conv to the classes, under the original logits scope."""
  scope = '%s/%s%s' % (LOGITS_SCOPE_NAME, output, suffix)
  return b.conv2d(features, scope, num_classes, 1, activation=None,
                  use_bias=True)


def _msc_mlp(b, x, source, stride):
  """One MSc MLP: 3x3 / ``stride`` (Caffe pad 1) then 1x1, ReLU + dropout each.

  Padding ``1`` before and ``stride`` after makes the output size
  ``ceil((n - 1) / stride) + 1``: the same windows as Caffe's pad 1 on the
  crops the released nets use (n = 8k + 1), and, for any n, the size of the
  main path after its ceil-mode pools, so the concatenation always fits.
  """
  scope = '%s/%s/' % (MSC_SCOPE, source)
  if stride > 1:
    x = keras.layers.ZeroPadding2D(((1, stride), (1, stride)))(x)
    layer = b.get(scope + 'mlp_1', lambda name: keras.layers.Conv2D(
        MSC_FILTERS, 3, strides=stride, padding='valid', name=name))
    x = keras.layers.ReLU()(layer(x))
  else:
    x = b.conv2d(x, scope + 'mlp_1', MSC_FILTERS, 3, activation='relu',
                 use_bias=True)
  x = keras.layers.Dropout(DROPOUT_RATE)(x)
  x = b.conv2d(x, scope + 'mlp_2', MSC_FILTERS, 1, activation='relu',
               use_bias=True)
  return keras.layers.Dropout(DROPOUT_RATE)(x)


def msc_features(b, end_points, output_stride):
  """The five MSc MLP outputs (5 x 128 channels) at ``output_stride``."""
  return [_msc_mlp(b, end_points[source], source,
                   output_stride // MSC_SOURCE_STRIDES[source])
          for source in MSC_SOURCES]


def get_logits(b, images, options):
  """{output: logits} of DeepLab-LargeFOV or DeepLab-MSc-LargeFOV.

  ``options.meta_architecture`` is 'deeplab_v1_largefov' or
  'deeplab_v1_msc_largefov' (validated before).
  """
  pool5, end_points = backbone_features(b, images, options)
  features = fc_branch(b, pool5, LARGEFOV_RATE)
  if options.meta_architecture == META_ARCHITECTURE_V1_MSC_LARGEFOV:
    # v1 Sec. 4.3: the MLP maps are concatenated to fc7's before fc8.
    features = keras.layers.Concatenate(axis=3)(
        [features] + msc_features(b, end_points, options.output_stride))
  return {output: classifier(b, features, num_classes, output)
          for output, num_classes in sorted(
              options.outputs_to_num_classes.items())}
