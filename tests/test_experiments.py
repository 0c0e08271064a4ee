"""Every flagfile in experiments/ parses with its script's flags and builds its model.

The naming convention (README, "Reproduction recipes"):
  <name>.flags       deeplab_tf.train flags; a two-phase recipe is a pair
                     <prefix>phase1<rest>.flags / <prefix>phase2<rest>.flags;
  <name>.eval.flags  deeplab_tf.eval flags, with a header line
                     "# Evaluates: experiments/<train flagfile>".
An evaluation must build the model its train flagfile trains (same variables,
same options except those the original lets differ between training and
evaluation: output stride, atrous rates, crop size), so the checkpoint loads.
No training, no data: the flags are parsed, the settings objects made and the
Keras model built.
"""
import gc
import glob
import json
import os
import re
import subprocess
import sys

import pytest
from absl import flags

from deeplab_tf import checkpoints
from deeplab_tf import eval as eval_script
from deeplab_tf.config import model_flags
from deeplab_tf import recipe
from deeplab_tf import train as train_script
from deeplab_tf.data import datasets_info
from deeplab_tf.models import build_model
from deeplab_tf.models import deeperlab

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO, 'experiments')
ALL_FLAGFILES = sorted(glob.glob(os.path.join(EXPERIMENTS, '**', '*.flags'),
                                 recursive=True))
EVAL_FLAGFILES = [p for p in ALL_FLAGFILES if p.endswith('.eval.flags')]
TRAIN_FLAGFILES = [p for p in ALL_FLAGFILES if p not in EVAL_FLAGFILES]
EVALUATES = re.compile(r'^#\s*Evaluates:\s*(\S+)\s*$')
# Options an evaluation may set differently from its training (the original
# train.py: "one could use different atrous_rates/output_stride during
# training/evaluation"); batch_norm_decay only acts while training.
MAY_DIFFER = {'output_stride', 'atrous_rates', 'crop_size', 'batch_norm_decay'}
DATASET_FOLDERS = ('pascal_voc', 'cityscapes', 'ade20k', 'camvid', 'quickstart')


def _rel(path):
  return os.path.relpath(path, REPO)


def _header(path):
  with open(path) as f:
    return [line.rstrip('\n') for line in f if line.startswith('#')]


def _flag_names(path):
  names = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line or line.startswith('#'):
        continue
      assert line.startswith('--'), '%s:%d: not a flag: %r' % (path, number,
                                                               line)
      names.append(line[2:].split('=', 1)[0])
  return names


_SCRIPT_FLAGS = {}


def _script_flags(module):
  """Names of the flags ``module`` defines when it runs alone.

  In this process train and eval are imported together, so the flag registry
  holds both scripts' flags; a fresh interpreter tells which ones a script
  really accepts (e.g. --crf is eval's, not train's).
  """
  if module not in _SCRIPT_FLAGS:
    code = ('import json\nfrom absl import flags\nimport %s\n'
            'print("FLAGS=" + json.dumps(sorted(flags.FLAGS)))\n' % module)
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith('FLAGS=')][-1]
    _SCRIPT_FLAGS[module] = frozenset(json.loads(line[len('FLAGS='):]))
  return _SCRIPT_FLAGS[module]


def _unknown_flags(path, accepted):
  return [name for name in _flag_names(path)
          if name not in accepted
          and not (name.startswith('no') and name[2:] in accepted)]


def _parse(argv):
  fv = flags.FLAGS
  fv.unparse_flags()
  fv(argv)
  # Flagfiles may name the dataset.json that a converter (or the quickstart)
  # writes beside its records; before that exists, the registered descriptor
  # of the records' folder (mapillary_vistas) or the quickstart stands in.
  if fv.dataset.endswith('.json') and not os.path.exists(fv.dataset):
    folder = os.path.basename(os.path.dirname(fv.dataset))
    fv.dataset = (folder if folder in datasets_info.DATASETS
                  else 'quickstart')


def _variables(model):
  return {name: tuple(v.shape)
          for name, v in checkpoints.model_variables(model).items()}


_BUILT = {}


def _train_build(path):
  """(options, variable shapes, TrainSettings, descriptor) of a train flagfile."""
  if path not in _BUILT:
    try:
      _parse(['train', '--flagfile=%s' % path, '--train_logdir=/tmp/unused',
              '--dataset_dir=/tmp/unused'])
      options, settings, _, descriptor = train_script.settings_from_flags()
      descriptor.check_split(flags.FLAGS.train_split)
      if isinstance(options, deeperlab.DeeperLabOptions):
        model = deeperlab.build_deeperlab(options)
        assert model.output['semantic'].shape[-1] == descriptor.num_classes
      else:
        model = build_model(options)
        assert model.output['merged_logits'].shape[-1] == descriptor.num_classes
      _BUILT[path] = (options, _variables(model), settings, descriptor)
    finally:
      flags.FLAGS.unparse_flags()
    del model
    gc.collect()
  return _BUILT[path]


def _evaluated_flagfile(path):
  named = [EVALUATES.match(line) for line in _header(path)]
  named = [m.group(1) for m in named if m]
  assert len(named) == 1, ('%s must name its train flagfile once: '
                           '"# Evaluates: experiments/<file>.flags"' % path)
  return os.path.join(REPO, named[0])


def test_layout():
  folders = {os.path.relpath(os.path.dirname(p), EXPERIMENTS)
             for p in ALL_FLAGFILES}
  assert set(DATASET_FOLDERS) <= folders, folders
  assert len(TRAIN_FLAGFILES) >= 12 and len(EVAL_FLAGFILES) >= 12
  for path in EVAL_FLAGFILES:
    train_path = _evaluated_flagfile(path)
    assert train_path in TRAIN_FLAGFILES, '%s evaluates %s, which is not a ' \
        'train flagfile of experiments/' % (path, train_path)


@pytest.mark.parametrize('path', TRAIN_FLAGFILES, ids=_rel)
def test_train_flagfile_parses_and_builds(path):
  header = _header(path)
  assert header, '%s has no comment saying what it reproduces' % path
  if '/quickstart/' not in path:
    assert 'miou' in ' '.join(header).lower(), (
        '%s: the header must state the mIoU it should reach' % path)
  assert not _unknown_flags(path, _script_flags('deeplab_tf.train')), (
      'not deeplab_tf.train flags in %s: %s'
      % (path, _unknown_flags(path, _script_flags('deeplab_tf.train'))))
  _train_build(path)


# Rebuilds every trained model a second time: run by the slow set.
@pytest.mark.slow
@pytest.mark.parametrize('path', EVAL_FLAGFILES, ids=_rel)
def test_eval_flagfile_parses_and_builds_the_trained_model(path):
  header = _header(path)
  assert 'miou' in ' '.join(header).lower(), (
      '%s: the header must state the mIoU it should reach' % path)
  assert not _unknown_flags(path, _script_flags('deeplab_tf.eval')), (
      'not deeplab_tf.eval flags in %s: %s'
      % (path, _unknown_flags(path, _script_flags('deeplab_tf.eval'))))
  train_options, train_variables, _, train_descriptor = _train_build(
      _evaluated_flagfile(path))
  try:
    _parse(['eval', '--flagfile=%s' % path, '--checkpoint_dir=/tmp/unused',
            '--eval_logdir=/tmp/unused', '--dataset_dir=/tmp/unused'])
    settings = eval_script.eval_settings_from_flags()
    descriptor = datasets_info.get_descriptor(flags.FLAGS.dataset)
    descriptor.check_split(settings.split)
    assert descriptor.has_labels(settings.split)
    options = model_flags.model_options_from_flags(
        crop_size=settings.crop_size, num_classes=descriptor.num_classes)
  finally:
    flags.FLAGS.unparse_flags()
  assert descriptor.name == train_descriptor.name
  ours, theirs = options.to_dict(), train_options.to_dict()
  differ = sorted(k for k in ours if ours[k] != theirs[k] and k not in MAY_DIFFER)
  assert not differ, '%s builds another model than its train flagfile: %s' % (
      path, ', '.join('%s=%s (train: %s)' % (k, ours[k], theirs[k])
                      for k in differ))
  model = build_model(options)
  assert _variables(model) == train_variables
  del model
  gc.collect()


def _phase_pairs():
  pairs = []
  for path in TRAIN_FLAGFILES:
    name = os.path.basename(path)
    if 'phase1' in name:
      prefix = name[:name.index('phase1')]
      partners = glob.glob(os.path.join(os.path.dirname(path),
                                        prefix + 'phase2*.flags'))
      assert len(partners) == 1, 'phase 1 %s has no single phase 2' % path
      pairs.append((path, partners[0]))
  return pairs


PHASE_PAIRS = _phase_pairs()


@pytest.mark.parametrize('pair', PHASE_PAIRS, ids=lambda p: _rel(p[0]))
def test_two_phase_recipe_pairs(pair, tmp_path):
  """Phase 2 (BatchNorm frozen) restores phase 1's checkpoint (same dataset,
  same variables); deeplab_tf.recipe chains them."""
  phase1, phase2 = pair
  options1, variables1, settings1, descriptor1 = _train_build(phase1)
  options2, variables2, settings2, descriptor2 = _train_build(phase2)
  assert settings1.fine_tune_batch_norm and not settings2.fine_tune_batch_norm
  assert descriptor1.name == descriptor2.name
  assert variables1 == variables2
  assert options1.model_variant == options2.model_variant
  command1, command2 = recipe.phase_commands(phase1, phase2, str(tmp_path))
  assert '--flagfile=%s' % phase1 in command1
  assert '--flagfile=%s' % phase2 in command2
  assert command2[-1] == '--tf_initial_checkpoint=%s' % (tmp_path / 'phase1')


def test_pairs_exist():
  assert [tuple(_rel(p) for p in pair) for pair in PHASE_PAIRS] == [
      ('experiments/pascal_voc/xception65_phase1_train_aug_os16.flags',
       'experiments/pascal_voc/xception65_phase2_trainval_os8.flags'),
      ('experiments/quickstart/phase1.flags',
       'experiments/quickstart/phase2.flags')]


def test_docs_name_existing_flagfiles_and_every_flagfile():
  """README / WORKSPACE.md cite only flagfiles that exist, and the README
  lists every one (a reader finds each setting there)."""
  cited = {}
  for doc in ('README.md', 'WORKSPACE.md'):
    with open(os.path.join(REPO, doc)) as f:
      text = f.read()
    cited[doc] = set(re.findall(r'experiments/[\w/.]+?\.flags', text))
    missing = [p for p in cited[doc] if not os.path.exists(os.path.join(REPO, p))]
    assert not missing, '%s cites missing flagfiles: %s' % (doc, missing)
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  unlisted = [_rel(p) for p in ALL_FLAGFILES
              if _rel(p) not in cited['README.md']
              and os.path.basename(p) not in readme]
  assert not unlisted, 'README does not list %s' % unlisted


def test_readme_starts_with_the_two_commands():
  """The first two commands of the README: the main job, then exactly the
  test command .ci/run runs."""
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  blocks = re.findall(r'```bash\n(.*?)```', readme, re.S)
  assert 'python -m deeplab_tf.quickstart' in blocks[0]
  assert blocks[1].strip() == 'python -m pytest'
  before = readme[:readme.index('```bash')]
  assert before.count('\n## ') == 1 and '## Two commands' in before
  with open(os.path.join(REPO, '.ci', 'run')) as f:
    ci = f.read().splitlines()
  assert 'python -m pytest' in ci
  assert 'bash scripts/install.sh || exit 1' in ci
  assert 'bash scripts/install.sh' in blocks[0]


# Every checkpoint of research/deeplab/g3doc/model_zoo.md, and those
# deeplab_tf cannot build (none now; the Dense Prediction Cell rows are built).
MODEL_ZOO = (
    'mobilenetv2_dm05_coco_voc_trainaug', 'mobilenetv2_dm05_coco_voc_trainval',
    'mobilenetv2_coco_voc_trainaug', 'mobilenetv2_coco_voc_trainval',
    'xception65_coco_voc_trainaug', 'xception65_coco_voc_trainval',
    'mobilenetv2_coco_cityscapes_trainfine',
    'mobilenetv3_large_cityscapes_trainfine',
    'mobilenetv3_small_cityscapes_trainfine', 'xception65_cityscapes_trainfine',
    'xception71_dpc_cityscapes_trainfine', 'xception71_dpc_cityscapes_trainval',
    'EdgeTPU-DeepLab', 'EdgeTPU-DeepLab-slim', 'mobilenetv2_ade20k_train',
    'xception65_ade20k_train', 'xception_41_imagenet', 'xception_65_imagenet',
    'xception_65_imagenet_coco', 'xception_71_imagenet',
    'resnet_v1_50_beta_imagenet', 'resnet_v1_101_beta_imagenet')
NOT_SUPPORTED = ()


def test_readme_model_zoo_table_is_the_zoo_data():
  """README's table and flag-set lines are rendered from checkpoints.zoo."""
  from deeplab_tf.checkpoints import zoo  # pylint: disable=g-import-not-at-top
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  section = readme[readme.index('## Model zoo'):readme.index('## Using a model')]
  assert zoo.markdown_table() in section, (
      'README\'s model-zoo table differs from deeplab_tf/checkpoints/zoo.py; '
      'paste zoo.markdown_table() into README.')
  for name, flags_ in zoo.FLAG_SETS.items():
    assert '%s="%s"' % (name, flags_) in section, name
  assert [e.name for e in zoo.entries() if e.name in MODEL_ZOO] == list(
      MODEL_ZOO)
  assert zoo.get('xception65_coco_voc_trainaug').convert_args()[:2] == [
      '--model_variant=xception_65', '--atrous_rates=6']
  assert [s[:2] for s in zoo.get(
      'mobilenetv2_coco_cityscapes_trainfine').eval_flag_sets()] == [
          ['--dataset=cityscapes', '--eval_split=val_fine']]


@pytest.mark.slow
def test_model_zoo_rows_build_every_checkpoint():
  """Each row's convert flags build its model; its eval flags build the
  same model (number of classes included); every zoo checkpoint has a row.
  Slow (about 30 s: 14 models, 6 of them Xception or ResNet)."""
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'tests', '_model_zoo_worker.py')],
      cwd=REPO, capture_output=True,
      text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  rows = dict(line.split(' ', 2)[1:] for line in proc.stdout.splitlines()
              if line.startswith('ROW '))
  failed = {k: v for k, v in rows.items() if 'FAILED' in v}
  assert proc.returncode == 0 and not failed, (failed or proc.stderr[-3000:])
  assert set(MODEL_ZOO) <= set(rows), sorted(set(MODEL_ZOO) - set(rows))
  for name in MODEL_ZOO:
    expected = 'no-convert not_supported' if name in NOT_SUPPORTED else 'ok'
    assert rows[name].startswith(expected), (name, rows[name])
