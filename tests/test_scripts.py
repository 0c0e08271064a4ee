"""Every script: importable together (absl flags defined once), console scripts resolve, --help works."""
import ast
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _console_scripts():
  tree = ast.parse(open(os.path.join(REPO, 'setup.py')).read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Dict):
      for key, value in zip(node.keys, node.values):
        if isinstance(key, ast.Constant) and key.value == 'console_scripts':
          return [ast.literal_eval(e) for e in value.elts]
  raise AssertionError('setup.py has no console_scripts')


SCRIPTS = _console_scripts()


def test_console_scripts_are_declared():
  names = {s.split('=')[0] for s in SCRIPTS}
  assert {'deeplab-train', 'deeplab-recipe', 'deeplab-eval', 'deeplab-vis',
          'deeplab-export', 'deeplab-convert-checkpoint',
          'deeplab-conformance', 'deeplab-model-stats',
          'deeplab-demo'} <= names


def _import_in_subprocess(specs):
  code = ('import importlib\n'
          'for spec in %r:\n'
          '  module, func = spec.split("=")[1].split(":")\n'
          '  assert callable(getattr(importlib.import_module(module), func)), '
          'spec\n'
          'print("ok")\n' % (specs,))
  return subprocess.run([sys.executable, '-c', code], cwd=REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))


# A subprocess per script (~4 s each): run by the slow set.
@pytest.mark.slow
@pytest.mark.parametrize('spec', SCRIPTS)
def test_console_script_entry_point_resolves(spec):
  proc = _import_in_subprocess([spec])
  assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-3000:]


def test_train_eval_vis_convert_share_their_common_flags():
  """Scripts sharing flags (dataset, checkpoint loop, initialisation) define
  them once: importing them together raises no DuplicateFlagError."""
  together = [s for s in SCRIPTS if s.split('=')[0] in (
      'deeplab-train', 'deeplab-eval', 'deeplab-vis',
      'deeplab-convert-checkpoint')]
  assert len(together) == 4
  proc = _import_in_subprocess(together)
  assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize('module', ['deeplab_tf.eval', 'deeplab_tf.vis',
                                    'deeplab_tf.export_model',
                                    'deeplab_tf.demo'])
def test_help_lists_the_original_flags(module):
  proc = subprocess.run([sys.executable, '-m', module, '--helpfull'],
                        cwd=REPO, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  # absl exits with status 1 after printing the help.
  text = proc.stdout + proc.stderr
  assert proc.returncode in (0, 1) and 'Traceback' not in text, text[-2000:]
  expected = {'deeplab_tf.eval': ['--eval_logdir', '--checkpoint_dir',
                                  '--eval_crop_size', '--eval_scales',
                                  '--max_number_of_evaluations', '--crf',
                                  '--crf_preset'],
              'deeplab_tf.vis': ['--vis_logdir', '--vis_crop_size',
                                 '--colormap_type',
                                 '--also_save_raw_predictions', '--crf'],
              'deeplab_tf.export_model': ['--checkpoint_path',
                                          '--export_path',
                                          '--inference_scales', '--crf'],
              'deeplab_tf.demo': ['--checkpoint_path', '--image',
                                  '--output_dir', '--options_json',
                                  '--model_variant', '--crop_size',
                                  '--colormap_type', '--crf']}[module]
  for flag in expected:
    assert flag in text, (module, flag)
