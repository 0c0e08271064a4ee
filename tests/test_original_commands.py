r"""The original DeepLab's documented command lines, run as written.

Every train.py / eval.py / vis.py / export_model.py command line of the
original research/deeplab documentation (tensorflow/models) is held below as
data, flags as they are written there:

  local_test.sh              (stored text: commit 21ac7b8b; list-form crops)
  local_test_mobilenetv2.sh  (stored text: commit 02c04f49, the only one in
                              the index; repeated --*_crop_size=513 form)
  g3doc/pascal.md            (newest text: list-form crops, --dataset)
  g3doc/cityscapes.md        (newest text: train_fine / val_fine splits)
  g3doc/ade20k.md            (only the repeated --train_crop_size=513 form
                              is in the index)
  g3doc/quantize.md          (quantisation-aware training; while it is not
                              built, a clean refusal is an expected failure)
  g3doc/export_model.md

``python deeplab/train.py`` (or ``python "${WORK_DIR}"/train.py``) becomes
``python -m deeplab_tf.train`` and so on; the ``${...}`` placeholders become
folders of a temporary workspace laid out as the original's
``deeplab/datasets/<dataset>/{tfrecord,init_models,exp/...}``, holding a few
small generated records in the format and split names of the dataset the
command names (pascal_voc_seg, cityscapes, ade20k) and model-zoo style (TF1,
original variable names) initial checkpoints with random weights. The only
flags appended are those that make a command short: one training step
(``NUM_ITERATIONS=1`` in the shell scripts, else
``--training_number_of_steps=1``), one evaluation / visualisation.

The commands of a document run as a chain, as the document does: eval, vis
and export read the train_logdir its train command wrote.

Where the stored text uses the repeated ``--train_crop_size=513
--train_crop_size=513`` form of the original's older flag definition, the same
command in the list form (``--train_crop_size="513,513"``, that of the newest
original flags and of the newer versions of these documents) is run as well.

Heavy commands (Xception at 513x513 and above on the CPU) are slow tests
(``python -m pytest -m slow tests/test_original_commands.py``).
"""
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import time
from typing import Dict, Optional, Tuple

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_ITERATIONS = 1
IMAGE_SHAPE = (100, 150)   # height, width of the generated images
NUM_IMAGES = 2             # records per split

SCRIPTS = {'train.py': 'deeplab_tf.train', 'eval.py': 'deeplab_tf.eval',
           'vis.py': 'deeplab_tf.vis',
           'export_model.py': 'deeplab_tf.export_model'}

# The short-run overrides appended to a command.
ONE_STEP = ('--training_number_of_steps=%d' % NUM_ITERATIONS,)
ONE_EVAL = ('--max_number_of_evaluations=1',)
ONE_VIS = ('--max_number_of_iterations=1',)


QUANTISATION_PENDING = (
    'quantisation-aware training is not built yet (another issue): the '
    'script refuses --quantize_delay_step=0 in one line, no traceback')


class PrerequisiteFailed(AssertionError):
  """The earlier command of the document (its train) failed."""

  def __init__(self, key, result):
    super().__init__('its document\'s earlier command %s failed:\n%s'
                     % (key, _tail(result)))
    self.result = result


class KnownGap(AssertionError):
  """A command failed with the message its xfail reason names (any other
  failure of an xfail-marked command is reported as a failure)."""


# ---------------------------------------------------------------------------
# The command lines, as written in the original documents.
# ---------------------------------------------------------------------------

LOCAL_TEST_TRAIN = r'''
python "${WORK_DIR}"/train.py \
  --logtostderr \
  --train_split="trainval" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --train_crop_size="513,513" \
  --train_batch_size=4 \
  --training_number_of_steps="${NUM_ITERATIONS}" \
  --fine_tune_batch_norm=true \
  --tf_initial_checkpoint="${INIT_FOLDER}/deeplabv3_pascal_train_aug/model.ckpt" \
  --train_logdir="${TRAIN_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}"
'''

LOCAL_TEST_EVAL = r'''
python "${WORK_DIR}"/eval.py \
  --logtostderr \
  --eval_split="val" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --eval_crop_size="513,513" \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --eval_logdir="${EVAL_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_evaluations=1
'''

LOCAL_TEST_VIS = r'''
python "${WORK_DIR}"/vis.py \
  --logtostderr \
  --vis_split="val" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --vis_crop_size="513,513" \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --vis_logdir="${VIS_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_iterations=1
'''

LOCAL_TEST_EXPORT = r'''
python "${WORK_DIR}"/export_model.py \
  --logtostderr \
  --checkpoint_path="${CKPT_PATH}" \
  --export_path="${EXPORT_PATH}" \
  --model_variant="xception_65" \
  --atrous_rates=6 \
  --atrous_rates=12 \
  --atrous_rates=18 \
  --output_stride=16 \
  --decoder_output_stride=4 \
  --num_classes=21 \
  --crop_size=513 \
  --crop_size=513 \
  --inference_scales=1.0
'''

MNV2_TRAIN = r'''
python "${WORK_DIR}"/train.py \
  --logtostderr \
  --train_split="trainval" \
  --model_variant="mobilenet_v2" \
  --output_stride=16 \
  --train_crop_size=513 \
  --train_crop_size=513 \
  --train_batch_size=4 \
  --training_number_of_steps="${NUM_ITERATIONS}" \
  --fine_tune_batch_norm=true \
  --tf_initial_checkpoint="${INIT_FOLDER}/${CKPT_NAME}/model.ckpt-30000" \
  --train_logdir="${TRAIN_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}"
'''

MNV2_EVAL = r'''
python "${WORK_DIR}"/eval.py \
  --logtostderr \
  --eval_split="val" \
  --model_variant="mobilenet_v2" \
  --eval_crop_size=513 \
  --eval_crop_size=513 \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --eval_logdir="${EVAL_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_evaluations=1
'''

MNV2_VIS = r'''
python "${WORK_DIR}"/vis.py \
  --logtostderr \
  --vis_split="val" \
  --model_variant="mobilenet_v2" \
  --vis_crop_size=513 \
  --vis_crop_size=513 \
  --checkpoint_dir="${TRAIN_LOGDIR}" \
  --vis_logdir="${VIS_LOGDIR}" \
  --dataset_dir="${PASCAL_DATASET}" \
  --max_number_of_iterations=1
'''

MNV2_EXPORT = r'''
python "${WORK_DIR}"/export_model.py \
  --logtostderr \
  --checkpoint_path="${CKPT_PATH}" \
  --export_path="${EXPORT_PATH}" \
  --model_variant="mobilenet_v2" \
  --num_classes=21 \
  --crop_size=513 \
  --crop_size=513 \
  --inference_scales=1.0
'''


def list_form(text, flag):
  """The same command with ``--flag=513 --flag=513`` as ``--flag="513,513"``."""
  pattern = r'--%s=513 \\\n(\s*)--%s=513' % (flag, flag)
  out, count = re.subn(pattern, '--%s="513,513"' % flag, text)
  assert count == 1, (flag, text)
  return out


PASCAL_TRAIN = r'''
python deeplab/train.py \
    --logtostderr \
    --training_number_of_steps=30000 \
    --train_split="train" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size="513,513" \
    --train_batch_size=1 \
    --dataset="pascal_voc_seg" \
    --tf_initial_checkpoint=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

PASCAL_EVAL = r'''
python deeplab/eval.py \
    --logtostderr \
    --eval_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --eval_crop_size="513,513" \
    --dataset="pascal_voc_seg" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --eval_logdir=${PATH_TO_EVAL_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

PASCAL_VIS = r'''
python deeplab/vis.py \
    --logtostderr \
    --vis_split="val" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --vis_crop_size="513,513" \
    --dataset="pascal_voc_seg" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --vis_logdir=${PATH_TO_VIS_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

CITYSCAPES_TRAIN = r'''
python deeplab/train.py \
    --logtostderr \
    --training_number_of_steps=90000 \
    --train_split="train_fine" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size="769,769" \
    --train_batch_size=1 \
    --dataset="cityscapes" \
    --tf_initial_checkpoint=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

# cityscapes.md, note 4 to the train command: the flags to change and add for
# the provided dense prediction cell (its JSON path is the original's, relative
# to tensorflow/models/research; deeplab_tf reads its shipped copy).
CITYSCAPES_DPC_FLAGS = r'''
--model_variant="xception_71"
--dense_prediction_cell_json="deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json"
--decoder_output_stride=4
'''

CITYSCAPES_EVAL = r'''
python deeplab/eval.py \
    --logtostderr \
    --eval_split="val_fine" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --eval_crop_size="1025,2049" \
    --dataset="cityscapes" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --eval_logdir=${PATH_TO_EVAL_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

CITYSCAPES_VIS = r'''
python deeplab/vis.py \
    --logtostderr \
    --vis_split="val_fine" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --vis_crop_size="1025,2049" \
    --dataset="cityscapes" \
    --colormap_type="cityscapes" \
    --checkpoint_dir=${PATH_TO_CHECKPOINT} \
    --vis_logdir=${PATH_TO_VIS_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

ADE20K_TRAIN = r'''
python deeplab/train.py \
    --logtostderr \
    --training_number_of_steps=150000 \
    --train_split="train" \
    --model_variant="xception_65" \
    --atrous_rates=6 \
    --atrous_rates=12 \
    --atrous_rates=18 \
    --output_stride=16 \
    --decoder_output_stride=4 \
    --train_crop_size=513 \
    --train_crop_size=513 \
    --train_batch_size=4 \
    --min_resize_value=513 \
    --max_resize_value=513 \
    --resize_factor=16 \
    --dataset="ade20k" \
    --tf_initial_checkpoint=${PATH_TO_INITIAL_CHECKPOINT} \
    --train_logdir=${PATH_TO_TRAIN_DIR}\
    --dataset_dir=${PATH_TO_DATASET}
'''

QUANTIZE_TRAIN = r'''
python deeplab/train.py \
    --logtostderr \
    --training_number_of_steps=3000 \
    --train_split="train" \
    --model_variant="mobilenet_v2" \
    --output_stride=16 \
    --train_crop_size="513,513" \
    --train_batch_size=8 \
    --base_learning_rate=3e-5 \
    --dataset="pascal_voc_seg" \
    --quantize_delay_step=0 \
    --tf_initial_checkpoint=${PATH_TO_TRAINED_FLOAT_MODEL} \
    --train_logdir=${PATH_TO_TRAIN_DIR} \
    --dataset_dir=${PATH_TO_DATASET}
'''

QUANTIZE_EXPORT = r'''
python deeplab/export_model.py \
    --checkpoint_path=${CHECKPOINT_PATH} \
    --quantize_delay_step=0 \
    --export_path=${OUTPUT_DIR}/frozen_inference_graph.pb
'''

EXPORT_MODEL_MD = r'''
python deeplab/export_model.py \
    --checkpoint_path=${CHECKPOINT_PATH} \
    --export_path=${OUTPUT_DIR}/frozen_inference_graph.pb
'''


# ---------------------------------------------------------------------------
# The workspace: the ${...} variables of each document.
# ---------------------------------------------------------------------------

def _variables(root) -> Dict[str, Dict[str, str]]:
  """{namespace: {variable: value}}; a namespace is one document (variant)."""
  work = os.path.join(root, 'deeplab')
  datasets = os.path.join(work, 'datasets')
  pascal = os.path.join(datasets, 'pascal_voc_seg')
  cityscapes = os.path.join(datasets, 'cityscapes')
  ade20k = os.path.join(datasets, 'ADE20K')
  imagenet = os.path.join(root, 'imagenet')

  def local_test(exp_folder, **extra):
    exp = os.path.join(pascal, 'exp', exp_folder)
    out = {'WORK_DIR': work, 'INIT_FOLDER': os.path.join(pascal, 'init_models'),
           'PASCAL_DATASET': os.path.join(pascal, 'tfrecord'),
           'NUM_ITERATIONS': str(NUM_ITERATIONS),
           'CKPT_NAME': 'deeplabv3_mnv2_pascal_train_aug'}
    for name in ('train', 'eval', 'vis', 'export'):
      out['%s_%s' % (name.upper(), 'DIR' if name == 'export' else 'LOGDIR')] = (
          os.path.join(exp, name))
    out['CKPT_PATH'] = os.path.join(out['TRAIN_LOGDIR'],
                                    'model.ckpt-%d' % NUM_ITERATIONS)
    out['EXPORT_PATH'] = os.path.join(out['EXPORT_DIR'],
                                      'frozen_inference_graph.pb')
    out.update(extra)
    return out

  def doc(base, exp_folder, init):
    exp = os.path.join(base, 'exp', exp_folder)
    return {'PATH_TO_INITIAL_CHECKPOINT': init,
            'PATH_TO_TRAIN_DIR': os.path.join(exp, 'train'),
            'PATH_TO_CHECKPOINT': os.path.join(exp, 'train'),
            'PATH_TO_EVAL_DIR': os.path.join(exp, 'eval'),
            'PATH_TO_VIS_DIR': os.path.join(exp, 'vis'),
            'PATH_TO_DATASET': os.path.join(base, 'tfrecord')}

  xception_65 = os.path.join(imagenet, 'xception_65', 'model.ckpt')
  xception_71 = os.path.join(imagenet, 'xception_71', 'model.ckpt')
  mnv2_zoo = os.path.join(pascal, 'init_models',
                          'deeplabv3_mnv2_pascal_train_aug', 'model.ckpt-30000')
  ours = 'model.ckpt-%d' % NUM_ITERATIONS
  spaces = {
      'local_test': local_test('train_on_trainval_set'),
      'local_test_mnv2': local_test('train_on_trainval_set_mobilenetv2'),
      'local_test_mnv2_list': local_test(
          'train_on_trainval_set_mobilenetv2_list'),
      'pascal': doc(pascal, 'train_on_train_set', xception_65),
      'cityscapes': doc(cityscapes, 'train_on_train_set', xception_65),
      'cityscapes_dpc': doc(cityscapes, 'train_on_train_set_dpc', xception_71),
      'ade20k': doc(ade20k, 'train_on_train_set', xception_65),
      'ade20k_list': doc(ade20k, 'train_on_train_set_list', xception_65),
      'quantize': {'PATH_TO_TRAINED_FLOAT_MODEL': mnv2_zoo,
                   'PATH_TO_TRAIN_DIR': os.path.join(pascal, 'exp', 'quantize',
                                                     'train'),
                   'PATH_TO_DATASET': os.path.join(pascal, 'tfrecord'),
                   # The checkpoint its quantisation-aware train wrote.
                   'CHECKPOINT_PATH': os.path.join(pascal, 'exp', 'quantize',
                                                   'train', ours),
                   'OUTPUT_DIR': os.path.join(pascal, 'exp', 'quantize',
                                              'export')},
      'export_model': {'CHECKPOINT_PATH': mnv2_zoo,
                       'OUTPUT_DIR': os.path.join(root, 'export_model_md')},
  }
  # The stored local_test_mobilenetv2.sh eval / vis / export: the train_logdir
  # of its list-form train, folders of their own for what they write.
  spaces['local_test_mnv2_after_list'] = dict(
      spaces['local_test_mnv2'],
      TRAIN_LOGDIR=spaces['local_test_mnv2_list']['TRAIN_LOGDIR'],
      CKPT_PATH=spaces['local_test_mnv2_list']['CKPT_PATH'])
  # The local tests' export with our checkpoint name (adapted, see below).
  for name in ('local_test', 'local_test_mnv2_list'):
    spaces[name + '_ours'] = dict(
        spaces[name], CKPT_PATH=os.path.join(spaces[name]['TRAIN_LOGDIR'], ours),
        EXPORT_PATH=os.path.join(spaces[name]['EXPORT_DIR'] + '_ours',
                                 'frozen_inference_graph.pb'))
  return spaces


# The generated inputs a command needs (see Workspace.need).
RECORDS = 'records'
MNV2_ZOO = 'mnv2_zoo'              # deeplabv3_mnv2_pascal_train_aug/model.ckpt-30000
XCEPTION65_ZOO = 'xception65_zoo'  # deeplabv3_pascal_train_aug/model.ckpt
XCEPTION65_IMAGENET = 'xception65_imagenet'
XCEPTION71_IMAGENET = 'xception71_imagenet'


@dataclasses.dataclass(frozen=True)
class Command:
  """One documented command line and how this test runs it."""
  key: str                      # test id
  source: str                   # the original document
  text: str                     # the command as written there
  space: str                    # its ${...} variables (_variables)
  overrides: Tuple[str, ...] = ()   # appended to make it short
  after: Optional[str] = None   # the command whose train_logdir it reads
  needs: Tuple[str, ...] = (RECORDS,)
  # 'ok', or 'quantisation': runs as 'ok' once quantisation-aware training
  # is built; until then a clean refusal naming it is an expected failure.
  expect: str = 'ok'
  slow: bool = True
  xfail: Optional[Tuple[str, str]] = None   # (reason, output regex)
  timeout: int = 1800

  @property
  def script(self):
    return _script_module(self.text)


def _script_module(text):
  words = shlex.split(text.replace('\\\n', ' '))
  assert words[0] == 'python', words[:2]
  return SCRIPTS[os.path.basename(words[1]).replace('"', '')]


COMMANDS = [
    # local_test_mobilenetv2.sh, list-form crops: the fast representative.
    Command('local_test_mobilenetv2.sh-train-list_form',
            'local_test_mobilenetv2.sh',
            list_form(MNV2_TRAIN, 'train_crop_size'), 'local_test_mnv2_list',
            needs=(RECORDS, MNV2_ZOO), slow=False),
    Command('local_test_mobilenetv2.sh-eval-list_form',
            'local_test_mobilenetv2.sh',
            list_form(MNV2_EVAL, 'eval_crop_size'), 'local_test_mnv2_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    Command('local_test_mobilenetv2.sh-vis-list_form',
            'local_test_mobilenetv2.sh',
            list_form(MNV2_VIS, 'vis_crop_size'), 'local_test_mnv2_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    Command('local_test_mobilenetv2.sh-export-list_form',
            'local_test_mobilenetv2.sh', MNV2_EXPORT, 'local_test_mnv2_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    # local_test_mobilenetv2.sh as stored (repeated crop flags). Its eval,
    # vis and export read the train_logdir of the list-form train above, so
    # that each fails (or passes) on its own flags.
    Command('local_test_mobilenetv2.sh-train', 'local_test_mobilenetv2.sh',
            MNV2_TRAIN, 'local_test_mnv2', needs=(RECORDS, MNV2_ZOO)),
    Command('local_test_mobilenetv2.sh-eval', 'local_test_mobilenetv2.sh',
            MNV2_EVAL, 'local_test_mnv2_after_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    Command('local_test_mobilenetv2.sh-vis', 'local_test_mobilenetv2.sh',
            MNV2_VIS, 'local_test_mnv2_after_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    Command('local_test_mobilenetv2.sh-export', 'local_test_mobilenetv2.sh',
            MNV2_EXPORT, 'local_test_mnv2_after_list',
            after='local_test_mobilenetv2.sh-train-list_form'),
    # local_test.sh.
    Command('local_test.sh-train', 'local_test.sh', LOCAL_TEST_TRAIN,
            'local_test', needs=(RECORDS, XCEPTION65_ZOO)),
    Command('local_test.sh-eval', 'local_test.sh', LOCAL_TEST_EVAL,
            'local_test', after='local_test.sh-train'),
    Command('local_test.sh-vis', 'local_test.sh', LOCAL_TEST_VIS,
            'local_test', after='local_test.sh-train'),
    Command('local_test.sh-export', 'local_test.sh', LOCAL_TEST_EXPORT,
            'local_test', after='local_test.sh-train'),
    # g3doc/pascal.md.
    Command('pascal.md-train', 'g3doc/pascal.md', PASCAL_TRAIN, 'pascal',
            overrides=ONE_STEP, needs=(RECORDS, XCEPTION65_IMAGENET)),
    Command('pascal.md-eval', 'g3doc/pascal.md', PASCAL_EVAL, 'pascal',
            overrides=ONE_EVAL, after='pascal.md-train'),
    Command('pascal.md-vis', 'g3doc/pascal.md', PASCAL_VIS, 'pascal',
            overrides=ONE_VIS, after='pascal.md-train'),
    # g3doc/cityscapes.md.
    Command('cityscapes.md-train', 'g3doc/cityscapes.md', CITYSCAPES_TRAIN,
            'cityscapes', overrides=ONE_STEP,
            needs=(RECORDS, XCEPTION65_IMAGENET)),
    Command('cityscapes.md-eval', 'g3doc/cityscapes.md', CITYSCAPES_EVAL,
            'cityscapes', overrides=ONE_EVAL, after='cityscapes.md-train'),
    Command('cityscapes.md-vis', 'g3doc/cityscapes.md', CITYSCAPES_VIS,
            'cityscapes', overrides=ONE_VIS, after='cityscapes.md-train'),
    Command('cityscapes.md-train-dense_prediction_cell', 'g3doc/cityscapes.md',
            CITYSCAPES_TRAIN.rstrip().rstrip('\\').rstrip() + ' \\\n' +
            ' \\\n'.join(CITYSCAPES_DPC_FLAGS.split()),
            'cityscapes_dpc', overrides=ONE_STEP,
            needs=(RECORDS, XCEPTION71_IMAGENET)),
    # g3doc/ade20k.md (train only).
    Command('ade20k.md-train', 'g3doc/ade20k.md', ADE20K_TRAIN, 'ade20k',
            overrides=ONE_STEP, needs=(RECORDS, XCEPTION65_IMAGENET)),
    Command('ade20k.md-train-list_form', 'g3doc/ade20k.md',
            list_form(ADE20K_TRAIN, 'train_crop_size'), 'ade20k_list',
            overrides=ONE_STEP, needs=(RECORDS, XCEPTION65_IMAGENET)),
    # g3doc/quantize.md: fine-tune the float model with quantisation, then
    # export the quantised checkpoint.
    Command('quantize.md-train', 'g3doc/quantize.md', QUANTIZE_TRAIN,
            'quantize', overrides=ONE_STEP, needs=(RECORDS, MNV2_ZOO),
            expect='quantisation'),
    Command('quantize.md-export', 'g3doc/quantize.md', QUANTIZE_EXPORT,
            'quantize', after='quantize.md-train', expect='quantisation'),
    # g3doc/export_model.md, on a model-zoo style model.ckpt-N prefix.
    Command('export_model.md-export', 'g3doc/export_model.md', EXPORT_MODEL_MD,
            'export_model', needs=(MNV2_ZOO,), slow=False),
]
BY_KEY = {c.key: c for c in COMMANDS}


def command_argv(command, variables):
  """The argv of a documented command: ${...} substituted, script mapped."""
  text = command.text.replace('\\\n', ' ')

  def substitute(match):
    name = match.group(1)
    assert name in variables, (command.key, name)
    value = variables[name]
    assert not re.search(r'\s', value), value
    return value
  words = shlex.split(re.sub(r'\$\{(\w+)\}', substitute, text))
  assert words[0] == 'python', words[:2]
  module = SCRIPTS[os.path.basename(words[1])]
  return [sys.executable, '-m', module] + words[2:] + list(command.overrides)


def flag_value(argv, name):
  """The last --name=value of argv (absl: the last occurrence wins)."""
  values = [a.split('=', 1)[1] for a in argv if a.startswith('--%s=' % name)]
  assert values, (name, argv)
  return values[-1]


# ---------------------------------------------------------------------------
# Generated inputs.
# ---------------------------------------------------------------------------

# Dataset name -> (folder under deeplab/datasets, splits, classes, ignore).
DATASETS = {
    'pascal_voc_seg': ('pascal_voc_seg', ('train', 'trainval', 'val'), 21, 255),
    'cityscapes': ('cityscapes', ('train_fine', 'val_fine'), 19, 255),
    'ade20k': ('ADE20K', ('train', 'val'), 151, 0),
}


def _labels(num_classes, ignore_label, seed):
  """NUM_IMAGES labels: a background class, three boxes of other classes and
  an ignored border band."""
  rng = np.random.default_rng(seed)
  height, width = IMAGE_SHAPE
  first = 1 if ignore_label == 0 else 0
  out = []
  for _ in range(NUM_IMAGES):
    label = np.full((height, width), first, np.uint8)
    for _ in range(3):
      y, x = int(rng.integers(0, height - 30)), int(rng.integers(0, width - 40))
      label[y:y + 30, x:x + 40] = int(rng.integers(first + 1, num_classes))
    label[:, :3] = ignore_label
    out.append(label)
  return out


def _write_dataset_records(root):
  from record_helpers import write_records  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  for seed, (name, (folder, splits, num_classes, ignore)) in enumerate(
      sorted(DATASETS.items())):
    descriptor = datasets_info.get_descriptor(name)
    assert (descriptor.num_classes, descriptor.ignore_label) == (num_classes,
                                                                 ignore)
    record_dir = os.path.join(root, 'deeplab', 'datasets', folder, 'tfrecord')
    for i, split in enumerate(splits):
      descriptor.check_split(split)
      write_records(record_dir, split,
                    _labels(num_classes, ignore, seed * 10 + i),
                    ignore_label=ignore, seed=seed * 10 + i)


def _zoo_checkpoint(prefix, backbone_only=False, **options):
  """A TF1 checkpoint with the original variable names and freshly
  initialised weights (the whole DeepLab model as a model-zoo tarball, or only
  the backbone as an ImageNet checkpoint)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import ModelOptions, build_model  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models.deeplab import get_extra_layer_scopes  # pylint: disable=g-import-not-at-top
  model = build_model(ModelOptions(crop_size=(65, 65), **options))
  if backbone_only:
    head = tuple(get_extra_layer_scopes(False))
    variables = {n: v for n, v in checkpoints.model_variables(model).items()
                 if not n.startswith(head)}
    names = sorted(variables)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                      shape_and_slices=[''] * len(names),
                      tensors=[tf.convert_to_tensor(variables[n])
                               for n in names])
  else:
    checkpoints.save_tf1_checkpoint(model, prefix, global_step=30000)
  del model
  tf.keras.backend.clear_session()


XCEPTION_HEAD = dict(atrous_rates=(6, 12, 18), output_stride=16,
                     decoder_output_stride=(4,))


@dataclasses.dataclass
class Result:
  argv: list
  returncode: int
  stdout: str
  stderr: str
  seconds: float


class Workspace:
  """The temporary root, its generated inputs and the results of the commands
  run so far (each command runs once; later commands of a document read what
  its train command wrote)."""

  def __init__(self, root):
    self.root = root
    self.variables = _variables(root)
    self.results: Dict[str, Result] = {}
    self._made = set()

  def need(self, what):
    if what in self._made:
      return
    v = self.variables
    if what == RECORDS:
      _write_dataset_records(self.root)
    elif what == MNV2_ZOO:
      _zoo_checkpoint(v['quantize']['PATH_TO_TRAINED_FLOAT_MODEL'],
                      model_variant='mobilenet_v2', output_stride=16)
    elif what == XCEPTION65_ZOO:
      _zoo_checkpoint(os.path.join(v['local_test']['INIT_FOLDER'],
                                   'deeplabv3_pascal_train_aug', 'model.ckpt'),
                      model_variant='xception_65', **XCEPTION_HEAD)
    elif what == XCEPTION65_IMAGENET:
      _zoo_checkpoint(v['pascal']['PATH_TO_INITIAL_CHECKPOINT'],
                      backbone_only=True, model_variant='xception_65',
                      **XCEPTION_HEAD)
    elif what == XCEPTION71_IMAGENET:
      _zoo_checkpoint(v['cityscapes_dpc']['PATH_TO_INITIAL_CHECKPOINT'],
                      backbone_only=True, model_variant='xception_71',
                      **XCEPTION_HEAD)
    else:
      raise ValueError(what)
    self._made.add(what)

  def run(self, command) -> Result:
    if command.key in self.results:
      return self.results[command.key]
    if command.after:
      before = self.run(BY_KEY[command.after])
      if before.returncode != 0:
        raise PrerequisiteFailed(command.after, before)
    for what in command.needs:
      self.need(what)
    argv = command_argv(command, self.variables[command.space])
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', TF_CPP_MIN_LOG_LEVEL='2',
               PYTHONPATH=os.pathsep.join(
                   [REPO] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    start = time.time()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=command.timeout)
    result = Result(argv, proc.returncode, proc.stdout, proc.stderr,
                    time.time() - start)
    self.results[command.key] = result
    print('%s: %.1f s, exit %d' % (command.key, result.seconds,
                                   result.returncode))
    return result


_NOISE = re.compile(r'^(I0000|W0000|WARNING: All log messages|To enable the '
                    r'following|oneDNN)')


def _lines(text):
  return [l for l in text.splitlines() if l.strip() and not _NOISE.match(l)]


def _tail(result, count=40):
  return '$ %s\n%s\n%s' % (' '.join(result.argv),
                           '\n'.join(_lines(result.stdout)[-10:]),
                           '\n'.join(_lines(result.stderr)[-count:]))


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('original_commands'))
  assert not re.search(r'\s', root), root
  return Workspace(root)


# ---------------------------------------------------------------------------
# What a finished command must have written.
# ---------------------------------------------------------------------------

def _check_train(result):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert 'final: step loss' in result.stdout, _tail(result)
  logdir = flag_value(result.argv, 'train_logdir')
  latest = tf.train.latest_checkpoint(logdir)
  assert latest and latest.endswith('ckpt-%d' % NUM_ITERATIONS), (
      latest, os.listdir(logdir))


def _check_eval(result):
  logdir = flag_value(result.argv, 'eval_logdir')
  with open(os.path.join(logdir, 'metrics_latest.json')) as f:
    metrics = json.load(f)
  assert metrics['num_images'] == NUM_IMAGES, metrics
  split = flag_value(result.argv, 'eval_split')
  assert 'on %s (%d images): miou_1.0' % (split, NUM_IMAGES) in result.stdout, (
      _tail(result))


def _check_vis(result):
  out = os.path.join(flag_value(result.argv, 'vis_logdir'),
                     'segmentation_results')
  names = sorted(os.listdir(out))
  for i in range(NUM_IMAGES):
    assert '%06d_prediction.png' % i in names, names


def _check_export(result):
  """The frozen graph runs: ImageTensor -> SemanticPredictions at the input size."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = flag_value(result.argv, 'export_path')
  graph_def = tf.compat.v1.GraphDef()
  with open(path, 'rb') as f:
    graph_def.ParseFromString(f.read())
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name='')
    with tf.compat.v1.Session(graph=graph) as sess:
      image = np.random.default_rng(0).integers(
          0, 256, (1,) + IMAGE_SHAPE + (3,), dtype=np.uint8)
      labels = sess.run('SemanticPredictions:0', {'ImageTensor:0': image})
  assert labels.shape == (1,) + IMAGE_SHAPE, labels.shape
  num_classes = int(flag_value(result.argv, 'num_classes')
                    if any(a.startswith('--num_classes=') for a in result.argv)
                    else 21)
  assert 0 <= labels.min() and labels.max() < num_classes


CHECKS = {'deeplab_tf.train': _check_train, 'deeplab_tf.eval': _check_eval,
          'deeplab_tf.vis': _check_vis,
          'deeplab_tf.export_model': _check_export}


def _refused_quantisation(result):
  """A clean refusal of --quantize_delay_step: non-zero exit, no traceback,
  the last line names the flag and quantisation."""
  lines = _lines(result.stderr)
  return (result.returncode != 0 and
          'Traceback' not in result.stdout + result.stderr and lines and
          re.search(r'--quantize_delay_step=0: quanti[sz]ation', lines[-1])
          is not None)


def _param(command):
  marks = []
  if command.slow:
    marks.append(pytest.mark.slow)
  if command.xfail:
    marks.append(pytest.mark.xfail(strict=True, reason=command.xfail[0],
                                   raises=KnownGap))
  return pytest.param(command, id=command.key, marks=marks)


def test_every_documented_command_is_held():
  """Each script of each document, with the flags the documents give."""
  sources = {}
  for command in COMMANDS:
    sources.setdefault(command.source.split(' ')[0], set()).add(command.script)
  assert sources['local_test.sh'] == set(CHECKS)
  assert sources['local_test_mobilenetv2.sh'] == set(CHECKS)
  for doc in ('g3doc/pascal.md', 'g3doc/cityscapes.md'):
    assert sources[doc] == {'deeplab_tf.train', 'deeplab_tf.eval',
                            'deeplab_tf.vis'}
  assert sources['g3doc/ade20k.md'] == {'deeplab_tf.train'}
  assert sources['g3doc/quantize.md'] == {'deeplab_tf.train',
                                          'deeplab_tf.export_model'}
  assert sources['g3doc/export_model.md'] == {'deeplab_tf.export_model'}
  # The list-form variants differ from the stored text in the crop flags only.
  stored = command_argv(BY_KEY['local_test_mobilenetv2.sh-train'],
                        {k: 'X' for k in _variables('/r')['local_test_mnv2']})
  listed = command_argv(BY_KEY['local_test_mobilenetv2.sh-train-list_form'],
                        {k: 'X' for k in _variables('/r')['local_test_mnv2']})
  assert [a for a in stored if 'crop_size' not in a] == [
      a for a in listed if 'crop_size' not in a]
  assert stored.count('--train_crop_size=513') == 2
  assert listed.count('--train_crop_size=513,513') == 1
  # Only the short-run flags are appended.
  for command in COMMANDS:
    for flag in command.overrides:
      assert flag in ONE_STEP + ONE_EVAL + ONE_VIS, (command.key, flag)


@pytest.mark.parametrize('command', [_param(c) for c in COMMANDS])
def test_original_command(workspace, command):
  try:
    result = workspace.run(command)
  except PrerequisiteFailed as e:
    if command.expect == 'quantisation' and _refused_quantisation(e.result):
      pytest.xfail(QUANTISATION_PENDING)
    raise
  if command.xfail and result.returncode != 0:
    if re.search(command.xfail[1], result.stdout + result.stderr):
      raise KnownGap(command.xfail[0])
  if command.expect == 'quantisation' and _refused_quantisation(result):
    pytest.xfail(QUANTISATION_PENDING)
  assert result.returncode == 0, _tail(result)
  assert 'Traceback' not in result.stderr, _tail(result)
  CHECKS[command.script](result)
