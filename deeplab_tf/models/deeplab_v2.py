"""DeepLab v2: atrous spatial pyramid pooling (DeepLab-ASPP) and multi-scale inputs.

Chen et al., "DeepLab: Semantic Image Segmentation with Deep Convolutional
Nets, Atrous Convolution, and Fully Connected CRFs" (TPAMI 2017,
arXiv:1606.00915).

ASPP (Sec. 3.2, Fig. 4): parallel branches on the same features, each with
its own atrous rate, each ending in class scores; the branch scores are
SUMMED (Fig. 7: "Sum-Fusion"). Sec. 4.1.2 / Table 3 names two rate sets:

  * ASPP-S: rates (2, 4, 8, 12);
  * ASPP-L: rates (6, 12, 18, 24).

``options.atrous_rates`` gives the rates (``meta_architecture=
'deeplab_v2_aspp'``). How a branch looks depends on the backbone:

  * VGG-16 (``model_variant='vgg_16'``, built here): each branch is a
    LargeFOV head, fc6 (3x3, rate r, 1024) - fc7 (1x1, 1024) - fc8 (1x1,
    classes), ReLU and dropout 0.5 after fc6 and fc7 (Fig. 7b), on pool5 of
    DeepLab's VGG-16 (v1's, ``backbones/vgg16.py``). Branch i is named
    fc6<s>, fc7<s>, logits/<output><s> with s = '' for the first branch and
    '_<i>' after (the suffixes of the original TF code's v2-style logits),
    so LargeFOV is the one-branch case with v1's names, and a v1 LargeFOV
    checkpoint loads into the first branch. (Caffe numbers its branches
    fc6_1 .. fc6_4.)
  * ResNet-101 (and any other backbone): each branch is one 3x3 atrous conv
    from the backbone features straight to the classes (Sec. 4.1.2 "Deeper
    Networks"; LargeFOV on ResNet is the one-branch case at rate 12). That
    is the v2-style logits the original TF code kept in ``model.py``, built
    by ``deeplab.get_branch_logits`` when ``aspp_with_batch_norm=False``: the
    options must say so (``aspp_with_batch_norm=False,
    logits_kernel_size=3``), and validation asks for them.

Multi-scale inputs "MSC" (Sec. 3.2, Sec. 4.1.2, Table 4): the image at scales
{1, 0.75, 0.5} through shared weights, the score maps interpolated to one
size and fused by the per-position maximum, "both during training and
testing". That is ``image_pyramid=(1.0, 0.75, 0.5)`` with
``merge_method='max'`` in ``deeplab.multi_scale_logits``, which returns every
scale's logits and the merged ones; the trainer puts a loss on each of them
and on the merged logits, as the released DeepLab v2 ResNet-101 MSC training
net does (the "extra supervision" of Chen et al., "Attention to Scale", CVPR
2016, the paper's [17]).

The ResNet-101 here is TF-slim's ``resnet_v1_101`` (``backbones/
resnet_v1_beta.py``), not the Caffe ResNet-101 of the released DeepLab v2,
so Caffe weights do not carry over as they are:

  * stride placement: the Caffe (MSRA) net strides in the first unit of a
    block (its 1x1 conv and the 1x1 shortcut); slim strides in the last unit
    of the previous block (its 3x3 conv). At output stride 8 both dilate the
    last two blocks by 2 and 4, but the sampling grids differ;
  * BatchNorm: Caffe's BatchNorm + Scale layers run with frozen statistics
    and frozen scale / offset; here that is training with
    ``fine_tune_batch_norm=False`` and ``trainable_scopes`` excluding every
    BatchNorm (inference mode, gamma and beta not trained:
    ``experiments/deeplab_v2_resnet101_aspp_l_msc_voc.flags``);
  * input: Caffe subtracts the BGR mean (104.008, 116.669, 122.675); slim's
    ``resnet_v1_101`` subtracts the RGB mean (123.15, 115.90, 103.06);
  * root: Caffe pads the max pool in ceil mode, slim uses SAME padding;
  * the per-scale losses of the released MSC net are taken at each scale's
    own resolution; ours resize every scale's logits to the full-scale
    logits size first (``multi_scale_logits``, as the original TF code).
"""
import keras

from deeplab_tf.models import deeplab_v1

ASPP_S_RATES = (2, 4, 8, 12)     # v2 Table 3
ASPP_L_RATES = (6, 12, 18, 24)   # v2 Table 3
# v2 Sec. 3.2 / 4.1.2: multi-scale inputs, fused by max.
MSC_IMAGE_PYRAMID = (1.0, 0.75, 0.5)
# The ResNet branch is one 3x3 atrous conv (Sec. 4.1.2).
RESNET_BRANCH_KERNEL = 3


def branch_suffix(index):
  """'' for the first branch, '_<i>' after (the original v2-style logits)."""
  return '_%d' % index if index else ''


def get_logits(b, images, options):
  """{output: sum of the branch logits} of DeepLab-ASPP on VGG-16.

  Every branch shares pool5; each has its own fc6 / fc7 / fc8 (Fig. 7b).
  """
  pool5, _ = deeplab_v1.backbone_features(b, images, options)
  branches = [deeplab_v1.fc_branch(b, pool5, rate, branch_suffix(i))
              for i, rate in enumerate(options.atrous_rates)]
  outputs = {}
  for output, num_classes in sorted(options.outputs_to_num_classes.items()):
    logits = [deeplab_v1.classifier(b, x, num_classes, output,
                                    branch_suffix(i))
              for i, x in enumerate(branches)]
    outputs[output] = (logits[0] if len(logits) == 1
                       else keras.layers.Add()(logits))
  return outputs
