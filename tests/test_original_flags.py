"""Every flag the original scripts define is accepted, with the original default.

The lists below are facts read once from the original research/deeplab
common.py, train.py, eval.py, vis.py and export_model.py (flag name ->
default); our scripts define more (extensions), never fewer.
"""
import json
import os
import subprocess
import sys

import pytest

from deeplab_tf.training import deployment

_S = ['513', '513']   # DEFINE_list('...', '513,513') parses to strings

COMMON = {
    'min_resize_value': None, 'max_resize_value': None, 'resize_factor': None,
    'keep_aspect_ratio': True, 'logits_kernel_size': 1,
    'model_variant': 'mobilenet_v2', 'image_pyramid': None,
    'add_image_level_feature': True, 'image_pooling_crop_size': None,
    'image_pooling_stride': ['1', '1'], 'aspp_with_batch_norm': True,
    'aspp_with_separable_conv': True, 'multi_grid': None,
    'depth_multiplier': 1.0, 'divisible_by': None,
    'decoder_output_stride': None, 'decoder_use_separable_conv': True,
    'merge_method': 'max', 'prediction_with_upsampled_logits': True,
    'dense_prediction_cell_json': '', 'nas_stem_output_num_conv_filters': 20,
    'nas_use_classification_head': False, 'nas_remove_os32_stride': False,
    'use_bounded_activation': False, 'aspp_with_concat_projection': True,
    'aspp_with_squeeze_and_excitation': False, 'aspp_convs_filters': 256,
    'decoder_use_sum_merge': False, 'decoder_filters': 256,
    'decoder_output_is_logits': False, 'image_se_uses_qsigmoid': False,
    'label_weights': None, 'batch_norm_decay': 0.9997,
}

TRAIN = {
    'num_clones': 1, 'clone_on_cpu': False, 'num_replicas': 1,
    'startup_delay_steps': 15, 'num_ps_tasks': 0, 'master': '', 'task': 0,
    'train_logdir': None, 'log_steps': 10, 'save_interval_secs': 1200,
    'save_summaries_secs': 600, 'save_summaries_images': False,
    'profile_logdir': None, 'learning_policy': 'poly',
    'base_learning_rate': 0.0001, 'decay_steps': 0.0,
    'end_learning_rate': 0.0, 'learning_rate_decay_factor': 0.1,
    'learning_rate_decay_step': 2000, 'learning_power': 0.9,
    'training_number_of_steps': 30000, 'momentum': 0.9,
    'optimizer': 'momentum', 'adam_learning_rate': 0.001,
    'adam_epsilon': 1e-08, 'train_batch_size': 8, 'weight_decay': 0.00004,
    'train_crop_size': _S, 'last_layer_gradient_multiplier': 1.0,
    'upsample_logits': True, 'drop_path_keep_prob': 1.0,
    'tf_initial_checkpoint': None, 'initialize_last_layer': True,
    'last_layers_contain_logits_only': False, 'slow_start_step': 0,
    'slow_start_learning_rate': 0.0001, 'fine_tune_batch_norm': True,
    'min_scale_factor': 0.5, 'max_scale_factor': 2.0,
    'scale_factor_step_size': 0.25, 'atrous_rates': None, 'output_stride': 16,
    'hard_example_mining_step': 0, 'top_k_percent_pixels': 1.0,
    'quantize_delay_step': -1, 'dataset': 'pascal_voc_seg',
    'train_split': 'train', 'dataset_dir': None,
}

EVAL = {
    'master': '', 'eval_logdir': None, 'checkpoint_dir': None,
    'eval_batch_size': 1, 'eval_crop_size': _S, 'eval_interval_secs': 300,
    'atrous_rates': None, 'output_stride': 16, 'eval_scales': [1.0],
    'add_flipped_images': False, 'quantize_delay_step': -1,
    'dataset': 'pascal_voc_seg', 'eval_split': 'val', 'dataset_dir': None,
    'max_number_of_evaluations': 0,
}

VIS = {
    'master': '', 'vis_logdir': None, 'checkpoint_dir': None,
    'vis_batch_size': 1, 'vis_crop_size': _S, 'eval_interval_secs': 300,
    'atrous_rates': None, 'output_stride': 16, 'eval_scales': [1.0],
    'add_flipped_images': False, 'quantize_delay_step': -1,
    'dataset': 'pascal_voc_seg', 'vis_split': 'val', 'dataset_dir': None,
    'colormap_type': 'pascal', 'also_save_raw_predictions': False,
    'max_number_of_iterations': 0,
}

EXPORT = {
    'checkpoint_path': None, 'export_path': None, 'num_classes': 21,
    'crop_size': [513, 513], 'atrous_rates': None, 'output_stride': 8,
    'inference_scales': [1.0], 'add_flipped_images': False,
    'quantize_delay_step': -1, 'save_inference_graph': False,
}

SCRIPTS = {
    'deeplab_tf.train': dict(COMMON, **TRAIN),
    'deeplab_tf.eval': dict(COMMON, **EVAL),
    'deeplab_tf.vis': dict(COMMON, **VIS),
    'deeplab_tf.export_model': dict(COMMON, **EXPORT),
}

_DUMP = """
import json, sys
import importlib
from absl import flags
importlib.import_module(sys.argv[1])
names = json.loads(sys.argv[2])
out = {}
for name in names:
  out[name] = flags.FLAGS[name].default if name in flags.FLAGS else '<missing>'
print(json.dumps(out, default=repr))
"""


def _normal(value):
  """Compares list defaults by value: ['513', '513'] == [513, 513]."""
  if isinstance(value, (list, tuple)):
    return [float(v) if isinstance(v, (int, float, str)) and
            str(v).replace('.', '', 1).lstrip('-').isdigit() else v
            for v in value]
  return value


@pytest.mark.parametrize('module', sorted(SCRIPTS))
def test_every_original_flag_is_accepted_with_its_default(module):
  expected = SCRIPTS[module]
  env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
  proc = subprocess.run(
      [sys.executable, '-c', _DUMP, module, json.dumps(sorted(expected))],
      capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  ours = json.loads(proc.stdout.strip().splitlines()[-1])
  missing = sorted(n for n, v in ours.items() if v == '<missing>')
  assert not missing, '%s lacks original flags %s' % (module, missing)
  wrong = {n: (ours[n], v) for n, v in expected.items()
           if _normal(ours[n]) != _normal(v)}
  assert not wrong, '%s: (ours, original) defaults differ: %s' % (module, wrong)


# --- deployment flags: mapped where they have a meaning, refused otherwise ---

def _check(num_gpus=0, tf_config=None, **kwargs):
  deployment.check(deployment.DeploymentSettings(**kwargs), num_gpus, tf_config)


def test_deployment_defaults_and_clones_are_accepted():
  _check()
  _check(num_clones=2, clone_on_cpu=True)
  _check(num_clones=4, num_gpus=4)
  _check(startup_delay_steps=100)   # no effect: synchronous workers
  assert deployment.clone_devices(deployment.DeploymentSettings(
      num_clones=3, clone_on_cpu=True)) == ['/cpu:0', '/cpu:1', '/cpu:2']
  assert deployment.clone_devices(deployment.DeploymentSettings(
      num_clones=2)) == ['/gpu:0', '/gpu:1']


def test_replicas_map_to_multi_worker_and_agree_with_tf_config():
  config = {'cluster': {'worker': ['a:1', 'b:2']},
            'task': {'type': 'worker', 'index': 1}}
  _check(num_replicas=2, task=1, strategy='multi_worker_mirrored',
         tf_config=config)
  with pytest.raises(deployment.DeploymentError, match='names 2 workers'):
    _check(num_replicas=3, strategy='multi_worker_mirrored', tf_config=config)
  with pytest.raises(deployment.DeploymentError, match='worker 1'):
    _check(num_replicas=2, task=2, strategy='multi_worker_mirrored',
           tf_config=config)


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_ps_tasks=2), 'parameter-server training.*multi_worker_mirrored'),
    (dict(master='grpc://x:1'), 'no TF1 session target.*--tpu'),
    (dict(num_replicas=2), 'one process per worker.*multi_worker_mirrored'),
    (dict(task=1), '--task=1 needs several worker replicas'),
    (dict(num_clones=2), 'needs 2 GPUs; this process sees 0.*--clone_on_cpu'),
    (dict(num_clones=2, clone_on_cpu=True, strategy='mirrored'),
     'drop --strategy=mirrored'),
    (dict(num_clones=0), 'must be >= 1'),
])
def test_deployment_without_a_meaning_here_is_refused_with_what_to_use(
    kwargs, message):
  with pytest.raises(deployment.DeploymentError, match=message):
    _check(**kwargs)


@pytest.mark.parametrize('extra, message', [
    (['--master=grpc://host:2222'], 'no TF1 session target here'),
    (['--num_classes=7'], '--num_classes=7, but dataset pascal_voc_seg has 21'),
])
def test_eval_refuses_flags_it_cannot_honour(tmp_path, extra, message):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.eval', '--dataset=pascal_voc_seg',
       '--checkpoint_dir', str(tmp_path / 'none'), '--eval_logdir',
       str(tmp_path / 'eval'), '--dataset_dir', str(tmp_path),
       '--max_number_of_evaluations=1'] + extra,
      capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr


def test_crop_flags_take_the_list_and_the_older_repeated_form():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from deeplab_tf.config import model_flags  # pylint: disable=g-import-not-at-top
  values = flags.FlagValues()
  values[('x_crop_size')] = model_flags._CropSizeFlag(  # pylint: disable=protected-access
      'x_crop_size', '513,513', 'test')
  def parse(*args):
    values.unparse_flags()
    values(['prog'] + list(args))
    return values.x_crop_size
  assert parse() == ['513', '513']
  assert parse('--x_crop_size=321,481') == ['321', '481']
  assert parse('--x_crop_size=513', '--x_crop_size=769') == ['513', '769']
  # A flagfile's pair, then the command line's: the last one wins.
  assert parse('--x_crop_size=513,513', '--x_crop_size=65,97') == ['65', '97']
  assert parse('--x_crop_size=9', '--x_crop_size=9', '--x_crop_size=5',
               '--x_crop_size=7') == ['5', '7']
