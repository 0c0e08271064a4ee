"""The original model zoo (research/deeplab/g3doc/model_zoo.md) as data.

Every checkpoint of the original model zoo, with the flags that build its
model here: the model flags of ``convert_checkpoint`` (``model_flags``; None
where deeplab_tf cannot build it yet, with the reason in ``not_supported``),
the eval flags or recipe flagfiles (``eval``, markdown) and the published
mIoU (model_zoo.md's numbers). README's model-zoo table is
``markdown_table()`` of these rows (a test checks it), and the slow test that
builds every row reads them from here.

Each tarball extracts into ``<zoo folder>/<name>/`` holding
``checkpoint_file``.
"""
import dataclasses
import re
import shlex
from typing import Dict, List, Optional, Tuple

# Flag sets the rows share ($X65, $MNV3 in README's shell lines).
FLAG_SETS: Dict[str, str] = {
    'X65': ('--model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 '
            '--atrous_rates=18 --output_stride=16 --decoder_output_stride=4'),
    'X71DPC': ('--model_variant=xception_71 --dense_prediction_cell_json='
               'deeplab_tf/models/heads/'
               'dense_prediction_cell_branch5_top1_cityscapes.json '
               '--output_stride=16 --decoder_output_stride=4'),
    'MNV3': ('--image_pooling_crop_size=769,769 --image_pooling_stride=4,5 '
             '--add_image_level_feature=1 --aspp_convs_filters=128 '
             '--aspp_with_concat_projection=0 '
             '--aspp_with_squeeze_and_excitation=1 --decoder_use_sum_merge=1 '
             '--decoder_filters=19 --decoder_output_is_logits=1 '
             '--image_se_uses_qsigmoid=1 --decoder_output_stride=8 '
             '--output_stride=32'),
}


@dataclasses.dataclass(frozen=True)
class ZooEntry:
  """One checkpoint of the original model zoo."""
  name: str
  backbone: str
  # The file prefix inside the extracted folder; None: not buildable here.
  checkpoint_file: Optional[str]
  # convert_checkpoint's model flags ($X65 / $MNV3 allowed); None: not
  # buildable here, ``not_supported`` says why.
  model_flags: Optional[str]
  not_supported: Optional[str]
  # Eval flags (code spans starting with --dataset=) or recipe flagfiles, as
  # README shows them.
  eval: str
  published: str

  @property
  def supported(self) -> bool:
    return self.model_flags is not None

  def convert_command(self) -> str:
    """README's convert cell: ``$CONVERT --checkpoint=... --output=... flags``."""
    text = '$CONVERT --checkpoint=$ZOO/%s/%s --output=$OUT/%s' % (
        self.name, self.checkpoint_file, self.name)
    return text + (' ' + self.model_flags if self.model_flags else '')

  def convert_args(self) -> List[str]:
    """The model flags of convert_checkpoint, flag sets expanded."""
    return shlex.split(expand(self.model_flags or ''))

  def eval_flag_sets(self) -> List[List[str]]:
    """Each eval flag set of the row (code spans starting with --dataset=)."""
    return [shlex.split(expand(span))
            for span in re.findall(r'`(--dataset=[^`]*)`', self.eval)]


def expand(text: str) -> str:
  """$X65 / $MNV3 -> their flags."""
  return re.sub(r'\$(\w+)', lambda m: FLAG_SETS[m.group(1)], text)


def _row(name, backbone, checkpoint_file, model_flags, eval, published,
         not_supported=None):
  return ZooEntry(name, backbone, checkpoint_file, model_flags, not_supported,
                  eval, published)


# (group heading, rows), in model_zoo.md's order.
GROUPS: Tuple[Tuple[str, Tuple[ZooEntry, ...]], ...] = (
    ('**PASCAL VOC 2012** (21 classes)', (
        _row('mobilenetv2_dm05_coco_voc_trainaug',
             'MobileNet-v2, depth multiplier 0.5',
             'model.ckpt',
             '--model_variant=mobilenet_v2 --depth_multiplier=0.5',
             ('`--dataset=pascal_voc_seg --eval_split=val '
              '--model_variant=mobilenet_v2 --depth_multiplier=0.5 '
              '--output_stride=16 --eval_crop_size=513,513`'),
             '70.19% (val; OS 16, scale 1.0)'),
        _row('mobilenetv2_dm05_coco_voc_trainval',
             'MobileNet-v2, depth multiplier 0.5',
             'model.ckpt',
             '--model_variant=mobilenet_v2 --depth_multiplier=0.5',
             'test server; OS 8, scale 1.0, no flip',
             '71.83% (test)'),
        _row('mobilenetv2_coco_voc_trainaug',
             'MobileNet-v2',
             'model.ckpt-30000',
             '--model_variant=mobilenet_v2',
             ('`--flagfile=experiments/pascal_voc/mobilenetv2_val_os16.eval.flags`; '
              '`--flagfile=experiments/pascal_voc/mobilenetv2_val_os8_ms_flip.eval.flags`'),
             '75.32% (val; OS 16); 77.33% (val; OS 8, 0.5:0.25:1.75, flip)'),
        _row('mobilenetv2_coco_voc_trainval',
             'MobileNet-v2',
             'model.ckpt',
             '--model_variant=mobilenet_v2',
             ('test server; settings of '
              '`mobilenetv2_val_os8_ms_flip.eval.flags`'),
             '80.25% (test)'),
        _row('xception65_coco_voc_trainaug',
             'Xception-65',
             'model.ckpt',
             '$X65',
             ('`--flagfile=experiments/pascal_voc/xception65_val_os16.eval.flags`; '
              '`--flagfile=experiments/pascal_voc/xception65_val_os8_ms_flip.eval.flags`'),
             '82.20% (val; OS 16); 83.58% (val; OS 8, 0.5:0.25:1.75, flip)'),
        _row('xception65_coco_voc_trainval',
             'Xception-65',
             'model.ckpt',
             '$X65',
             'test server; settings of `xception65_val_os8_ms_flip.eval.flags`',
             '87.80% (test)'),
    )),
    ('**Cityscapes** (19 classes, eval crop 1025x2049)', (
        _row('mobilenetv2_coco_cityscapes_trainfine',
             'MobileNet-v2',
             'model.ckpt',
             '--model_variant=mobilenet_v2 --num_classes=19',
             ('`--dataset=cityscapes --eval_split=val_fine '
              '--model_variant=mobilenet_v2 --output_stride=16 '
              '--eval_crop_size=1025,2049`; for the second number '
              '`--output_stride=8 --eval_scales=0.75 --eval_scales=1.0 '
              '--eval_scales=1.25 --add_flipped_images`'),
             '70.71% (val; OS 16); 73.57% (val; OS 8, 0.75:0.25:1.25, flip)'),
        _row('mobilenetv3_large_cityscapes_trainfine',
             'MobileNet-v3 Large',
             'model.ckpt',
             ('--model_variant=mobilenet_v3_large_seg $MNV3 --num_classes=19 '
              '--crop_size=769,769'),
             ('`--dataset=cityscapes --eval_split=val_fine '
              '--model_variant=mobilenet_v3_large_seg $MNV3 '
              '--eval_crop_size=1025,2049`'),
             '72.41% (val; OS 32, scale 1.0)'),
        _row('mobilenetv3_small_cityscapes_trainfine',
             'MobileNet-v3 Small',
             'model.ckpt',
             ('--model_variant=mobilenet_v3_small_seg $MNV3 --num_classes=19 '
              '--crop_size=769,769'),
             ('`--dataset=cityscapes --eval_split=val_fine '
              '--model_variant=mobilenet_v3_small_seg $MNV3 '
              '--eval_crop_size=1025,2049`'),
             '68.99% (val; OS 32, scale 1.0)'),
        _row('xception65_cityscapes_trainfine',
             'Xception-65',
             'model.ckpt',
             '$X65 --num_classes=19',
             ('`--flagfile=experiments/cityscapes/xception65_val_os16.eval.flags`; '
              '`--flagfile=experiments/cityscapes/xception65_val_os8_ms_flip.eval.flags`'),
             '78.79% (val; OS 16); 80.42% (val; OS 8, 0.75:0.25:1.25, flip)'),
        _row('xception71_dpc_cityscapes_trainfine',
             'Xception-71 + Dense Prediction Cell',
             'model.ckpt',
             '$X71DPC --num_classes=19',
             '`--flagfile=experiments/cityscapes/xception71_dpc_val_os16.eval.flags`',
             '80.31% (val; OS 16)'),
        _row('xception71_dpc_cityscapes_trainval',
             'Xception-71 + Dense Prediction Cell',
             'model.ckpt',
             '$X71DPC --num_classes=19',
             ('test server; settings of '
              '`xception71_dpc_val_os16.eval.flags` with `--output_stride=8 '
              '--eval_scales=0.75 --eval_scales=1.0 --eval_scales=1.25 '
              '--eval_scales=1.5 --eval_scales=1.75 --eval_scales=2.0 '
              '--add_flipped_images`'),
             '82.66% (test; OS 8, 0.75:0.25:2, flip)'),
        _row('EdgeTPU-DeepLab',
             'EdgeMobilenet-1.0',
             'model.ckpt',
             ('--model_variant=mobilenet_edgetpu --aspp_convs_filters=256 '
              '--num_classes=19'),
             ('`--flagfile=experiments/cityscapes/edgetpu_deeplab_val_os32.eval.flags`; '
              '`--flagfile=experiments/cityscapes/edgetpu_deeplab_val_os16.eval.flags`'),
             '70.6% (val; OS 32); 74.1% (val; OS 16)'),
        _row('EdgeTPU-DeepLab-slim',
             'EdgeMobilenet-0.75',
             'model.ckpt',
             ('--model_variant=mobilenet_edgetpu --depth_multiplier=0.75 '
              '--aspp_convs_filters=128 --num_classes=19'),
             ('`--flagfile=experiments/cityscapes/edgetpu_deeplab_slim_val_os32.eval.flags`; '
              '`--flagfile=experiments/cityscapes/edgetpu_deeplab_slim_val_os16.eval.flags`'),
             '70.0% (val; OS 32); 73.2% (val; OS 16)'),
    )),
    ('**ADE20K** (151 labels, 0 ignored)', (
        _row('mobilenetv2_ade20k_train',
             'MobileNet-v2 + decoder',
             'model.ckpt',
             ('--model_variant=mobilenet_v2 --decoder_output_stride=4 '
              '--num_classes=151'),
             ('`--dataset=ade20k --eval_split=val --model_variant=mobilenet_v2 '
              '--decoder_output_stride=4 --output_stride=16 '
              '--min_resize_value=257 --max_resize_value=257 '
              '--resize_factor=16 --eval_crop_size=257,257`'),
             '32.04% (val; OS 16, scale 1.0; pixel accuracy 75.41%)'),
        _row('xception65_ade20k_train',
             'Xception-65',
             'model.ckpt',
             '$X65 --num_classes=151',
             '`--flagfile=experiments/ade20k/xception65_val_os8_ms_flip.eval.flags`',
             '45.65% (val; OS 8, 0.5:0.25:1.75, flip; pixel accuracy 82.52%)'),
    )),
    ('**ImageNet-pretrained backbones** (initial checkpoints)', (
        _row('xception_41_imagenet',
             'Xception-41',
             'model.ckpt',
             '--model_variant=xception_41 --allow_missing',
             '- (`--tf_initial_checkpoint` of a training)',
             '-'),
        _row('xception_65_imagenet',
             'Xception-65',
             'model.ckpt',
             '--model_variant=xception_65 --allow_missing',
             '-',
             '-'),
        _row('xception_65_imagenet_coco',
             'Xception-65 (ImageNet + COCO)',
             'model.ckpt',
             '--model_variant=xception_65 --allow_missing',
             '-',
             '-'),
        _row('xception_71_imagenet',
             'Xception-71',
             'model.ckpt',
             '--model_variant=xception_71 --allow_missing',
             '-',
             '-'),
        _row('resnet_v1_50_beta_imagenet',
             'ResNet-50 beta (3x3 stem)',
             'model.ckpt',
             '--model_variant=resnet_v1_50_beta --allow_missing',
             '-',
             '-'),
        _row('resnet_v1_101_beta_imagenet',
             'ResNet-101 beta (3x3 stem)',
             'model.ckpt',
             '--model_variant=resnet_v1_101_beta --allow_missing',
             '-',
             '-'),
    )),
    ('**DeeperLab**', (
        _row("none released in research/deeplab's model zoo",
             'Xception-71 / Wider MobileNetV2',
             None, None,
             '-',
             '-',
             not_supported=('train with the flagfiles above; the accurate one '
                            'can start from `xception_71_imagenet` '
                            '(`--tf_initial_checkpoint`); the Wider '
                            "MobileNetV2's 5x5 depthwise kernels have no "
                            'released ImageNet weights')),
    )),
)

def entries() -> Tuple[ZooEntry, ...]:
  return tuple(e for _, rows in GROUPS for e in rows)


def get(name: str) -> ZooEntry:
  for entry in entries():
    if entry.name == name:
      return entry
  raise KeyError('No model-zoo checkpoint %r; known: %s'
                 % (name, ', '.join(e.name for e in entries())))


def markdown_table() -> str:
  """README's model-zoo table."""
  lines = ['| checkpoint | backbone | convert | eval flags | published mIoU |',
           '|---|---|---|---|---|']
  for title, rows in GROUPS:
    lines.append('| %s | | | | |' % title)
    for e in rows:
      convert = ('`%s`' % e.convert_command() if e.supported
                 else e.not_supported)
      lines.append('| %s | %s | %s | %s | %s |' % (
          e.name, e.backbone, convert, e.eval, e.published))
  return '\n'.join(lines) + '\n'
