"""NAS backbones (PNASNet, Auto-DeepLab): names, strides, options, drop path, conformance."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf import conformance
from deeplab_tf.checkpoints import model_options
from deeplab_tf.core import geometry
from deeplab_tf.models import ModelOptions, OptionsError, build_model
from deeplab_tf.models import backbones
from deeplab_tf.models import initializers
from deeplab_tf.models import options as options_lib
from deeplab_tf.models import variable_names
from deeplab_tf.models.backbones import nas_cell
from deeplab_tf.models.backbones import nas_network
from deeplab_tf.training import regularization
from deeplab_tf.training import trainer as trainer_lib
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings

from test_trainer import synthetic_dataset_fn


def _case(reference_dir, name):
  path = os.path.join(reference_dir, 'variants', 'case_%s.json' % name)
  with open(path) as f:
    return path, json.load(f)


def _manifest(reference_dir, name):
  with open(os.path.join(reference_dir, 'variants',
                         'manifest_%s.json' % name)) as f:
    return {v['name']: tuple(v['shape']) for v in json.load(f)
            if v['name'] != 'global_step'}


def _nas(variant, output_stride, crop=65, classes=3, **nas):
  return ModelOptions(model_variant=variant, crop_size=(crop, crop),
                      output_stride=output_stride,
                      outputs_to_num_classes={'semantic': classes},
                      nas_architecture_options=nas)


# --- Names and shapes --------------------------------------------------------
@pytest.mark.parametrize('name', ['I', 'J'])
def test_variable_names_and_shapes_are_the_manifests(reference_dir, name):
  _, case = _case(reference_dir, name)
  model = build_model(ModelOptions.from_dict(case['model_options']))
  ours = {n: tuple(v.shape) for n, v in
          checkpoints.model_variables(model).items()}
  assert ours == _manifest(reference_dir, name)


def test_separable_kernels_leaves_and_initializers():
  model = build_model(_nas('nas_pnasnet', 16, nas_stem_output_num_conv_filters=4))
  names = checkpoints.model_variables(model)
  scope = 'pnasnet/cell_0/comb_iter_0/left/separable_5x5_1'
  assert names[scope + '/depthwise_weights'].shape == (5, 5, 8, 1)
  assert names[scope + '/pointwise_weights'].shape == (1, 1, 8, 8)
  assert 'pnasnet/cell_0/comb_iter_0/left/bn_sep_5x5_1/moving_variance' in names
  assert not any(n.endswith('/biases') and n.startswith('pnasnet/')
                 for n in names)
  # nas_arg_scope: variance_scaling_initializer(1/3, FAN_IN, uniform) for
  # every kernel, both of a separable conv included.
  original = initializers.describe_original(
      'tf_slim.layers.initializers.variance_scaling_initializer.<locals>.'
      '_initializer', {'factor': 1 / 3.0, 'mode': 'FAN_IN', 'uniform': True})
  inits = initializers.variable_initializers(model)
  for name in ('pnasnet/conv0/weights', scope + '/depthwise_weights',
               scope + '/pointwise_weights', 'pnasnet/cell_5/1x1/weights'):
    assert initializers.same_description(
        initializers.describe(inits[name]), original), name
  # --kernel_initializer redraws both kernels of the separable convs.
  trainer_lib.reinitialize_kernels(model, 'zeros')
  layer = model.get_layer(variable_names.layer_name(scope))
  assert not np.any(layer.depthwise_kernel) and not np.any(
      layer.pointwise_kernel)


@pytest.mark.parametrize('variant,output_stride,nas', [
    # (PNASNet at 16 and Auto-DeepLab at 8: the conformance cases J and I.)
    ('nas_pnasnet', 8, {}),
    ('nas_pnasnet', 32, {}),
    ('nas_pnasnet', 16, {'nas_use_classification_head': True}),
    ('nas_hnasnet', 8, {'nas_remove_os32_stride': True}),
    ('nas_hnasnet', 16, {'nas_use_classification_head': True}),
    ('nas_hnasnet', 32, {'nas_use_classification_head': True}),
])
def test_logits_at_the_output_stride(variant, output_stride, nas):
  options = _nas(variant, output_stride, nas_stem_output_num_conv_filters=4,
                 **nas)
  model = build_model(options)
  size = geometry.scale_dimension(65, 1.0 / output_stride)
  assert model.output['merged_logits'].shape == (None, size, size, 3)
  names = checkpoints.model_variables(model)
  scope = backbones.get_backbone(variant).scope
  has_head = nas.get('nas_use_classification_head', False)
  assert (scope + '/classification_head_conv/weights' in names) == has_head
  if has_head:
    assert names['image_pooling/weights'].shape[2] == nas_network.HEAD_FILTERS


def test_filters_follow_the_stem_option_and_the_level():
  names = checkpoints.model_variables(build_model(_nas(
      'nas_hnasnet', 8, nas_stem_output_num_conv_filters=8)))
  # Levels along the path 0,0,0,1,2,1,2,2,3,3,2,1: filters 8 * 2 ** level.
  for cell, level in enumerate((0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)):
    kernel = names['hnasnet/cell_%d/1x1/weights' % cell]
    assert kernel.shape[-1] == 8 * 2 ** level, cell
  # The cell output concatenates 5 states: ASPP sees 5 * 16 channels.
  assert names['aspp0/weights'].shape[2] == 5 * 16


def test_decoder_end_points():
  for variant, os_ in (('nas_pnasnet', 16), ('nas_hnasnet', 8)):
    options = _nas(variant, os_, nas_stem_output_num_conv_filters=4).replace(
        decoder_output_stride=(4,))
    assert build_model(options).output['merged_logits'].shape == (
        None, 17, 17, 3)


def test_any_input_size_without_crop():
  options = _nas('nas_hnasnet', 8, nas_stem_output_num_conv_filters=4).replace(
      crop_size=None)
  out = build_model(options)(np.zeros((1, 70, 50, 3), np.float32))
  assert out['merged_logits'].shape == (1, 9, 7, 3)


# --- Strides the original cannot build ---------------------------------------
def test_feature_stride_and_size():
  assert nas_network.feature_stride('nas_hnasnet', 16) == 8
  assert nas_network.feature_stride(
      'nas_hnasnet', 16, {'nas_use_classification_head': True}) == 16
  assert nas_network.feature_stride(
      'nas_pnasnet', 32, {'nas_remove_os32_stride': True}) == 16
  for os_ in (8, 16, 32):
    assert nas_network.feature_stride('nas_pnasnet', os_) == os_
  # Auto-DeepLab goes down to 32 and back up with 2 d - 1.
  assert nas_network.feature_size('nas_hnasnet', 8, (129, 129)) == (17, 17)
  assert nas_network.feature_size('nas_hnasnet', 8, (64, 48)) == (5, 5)
  assert nas_network.feature_size('nas_pnasnet', 16, (64, 48)) == (4, 3)


@pytest.mark.parametrize('variant,output_stride,nas,crop,message', [
    ('nas_hnasnet', 16, {}, 65,
     "'nas_hnasnet' \\(Auto-DeepLab\\) exists at output_stride 8 only.*"
     'got output_stride=16'),
    ('nas_hnasnet', 32, {}, 65, 'exists at output_stride 8 only'),
    ('nas_pnasnet', 32, {'nas_remove_os32_stride': True}, 65,
     'ends its features at stride 16, not at output_stride 32'),
    ('nas_hnasnet', 8, {}, 64,
     'features come out 5x5.*expects 8x8 at output_stride 8'),
    ('nas_pnasnet', 16, {'nas_stem_output_num_conv_filters': 0}, 65,
     'nas_stem_output_num_conv_filters must be >= 1, got 0'),
])
def test_refused_with_the_reason(variant, output_stride, nas, crop, message):
  with pytest.raises(OptionsError, match=message):
    build_model(_nas(variant, output_stride, crop=crop, **nas))


# --- Options -------------------------------------------------------------------
def test_nas_architecture_options_defaults_and_case_json(reference_dir):
  assert ModelOptions().nas_architecture_options == (
      options_lib.NAS_ARCHITECTURE_DEFAULTS)
  partial = ModelOptions(nas_architecture_options={
      'nas_stem_output_num_conv_filters': '10'})
  assert partial.nas_architecture_options == {
      'nas_stem_output_num_conv_filters': 10,
      'nas_use_classification_head': False, 'nas_remove_os32_stride': False}
  with pytest.raises(OptionsError, match='Unknown nas_architecture_options'):
    ModelOptions(nas_architecture_options={'nas_cells': 3})
  _, case = _case(reference_dir, 'I')
  options = ModelOptions.from_dict(case['model_options'], strict=False)
  assert options.nas_architecture_options == (
      case['model_options']['nas_architecture_options'])
  assert ModelOptions.from_dict(json.loads(options.to_json())) == options


def test_flags_set_nas_architecture_options():
  values = {'model_variant': 'nas_pnasnet', 'num_classes': 5,
            'meta_architecture': 'deeplab_v3',
            'nas_stem_output_num_conv_filters': 12,
            'nas_use_classification_head': True,
            'nas_remove_os32_stride': False}
  options = options_lib.options_from_flag_values(values, crop_size='33,33')
  assert options.nas_architecture_options == {
      'nas_stem_output_num_conv_filters': 12,
      'nas_use_classification_head': True, 'nas_remove_os32_stride': False}


def test_given_nas_flag_overrides_one_key_of_the_json(tmp_path):
  trained = _nas('nas_pnasnet', 16, nas_stem_output_num_conv_filters=10,
                 nas_use_classification_head=True)
  path = tmp_path / 'model_options.json'
  path.write_text(trained.to_json())
  flags = ModelOptions(nas_architecture_options={'nas_remove_os32_stride': True})
  options, source = model_options.resolve(
      None, flags, ['nas_remove_os32_stride'], json_path=str(path))
  assert options.nas_architecture_options == {
      'nas_stem_output_num_conv_filters': 10,
      'nas_use_classification_head': True, 'nas_remove_os32_stride': True}
  assert source.endswith('with --nas_remove_os32_stride')


def test_both_separable_kernels_get_weight_decay():
  assert regularization.is_regularized(
      'hnasnet/cell_0/comb_iter_0/right/separable_3x3_1/depthwise_weights')
  assert regularization.is_regularized(
      'pnasnet/cell_0/comb_iter_0/left/separable_5x5_1/pointwise_weights')
  assert regularization.is_regularized('pnasnet/cell_3/prev_1x1/weights')
  assert not regularization.is_regularized('pnasnet/cell_0/beginning_bn/gamma')
  assert not regularization.is_regularized(
      'xception_65/entry_flow/block1/unit_1/xception_module/'
      'separable_conv1_depthwise/depthwise_weights')


# --- Drop path -------------------------------------------------------------------
def test_drop_path_schedule():
  layer = nas_cell.DropPath(cell_num=5, total_num_cells=12, keep_prob=0.4,
                            total_training_steps=100)
  # Cell 5 of 12: keep 1 - 6/12 * 0.6 = 0.7 at the end of the ramp.
  assert layer.cell_keep_prob == pytest.approx(0.7)
  x = tf.ones((256, 2, 2, 1))
  np.testing.assert_array_equal(layer(x, training=False), x)
  step = tf.Variable(0, dtype=tf.int64)
  layer.training_step = lambda: step
  np.testing.assert_array_equal(layer(x, training=True), x)  # step 0: keep 1
  step.assign(50)  # half way: keep 1 - 0.5 * 0.3 = 0.85
  values = np.unique(layer(x, training=True).numpy())
  assert set(values) <= {0.0, np.float32(1 / np.float32(0.85))}
  step.assign(1000)  # past the end: the cell's 0.7
  out = layer(x, training=True).numpy()[:, 0, 0, 0]
  assert set(np.unique(out)) == {0.0, np.float32(1 / np.float32(0.7))}
  # One draw per example, shared by every position and channel.
  assert 0.55 < np.mean(out > 0) < 0.85


def _options_for_training():
  # No concat-projection dropout: drop path is the only randomness.
  return _nas('nas_pnasnet', 16, crop=33,
              nas_stem_output_num_conv_filters=4).replace(
                  aspp_with_concat_projection=False)


def _nas_trainer(logdir, keep, fine_tune_batch_norm=True):
  settings = TrainSettings(
      train_logdir=str(logdir), train_batch_size=4,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=10),
      drop_path_keep_prob=keep, fine_tune_batch_norm=fine_tune_batch_norm)
  return Trainer(_options_for_training(), settings, synthetic_dataset_fn(4))


def _images():
  return tf.constant(np.random.default_rng(0).uniform(0, 255, (4, 33, 33, 3)),
                     tf.float32)


def test_drop_path_changes_training_outputs_not_evaluation():
  # BatchNorm on its moving statistics: training=True differs by drop path only.
  model = build_model(_options_for_training())
  images = _images()
  step = tf.Variable(10, dtype=tf.int64)

  def logits(training):
    return model(images, training=training)['merged_logits'].numpy()

  evaluated = logits(False)
  assert nas_cell.configure_drop_path(model, 1.0, 10, step) == 12 * 9
  np.testing.assert_array_equal(logits(True), evaluated)
  nas_cell.configure_drop_path(model, 0.3, 10, step)
  assert not np.allclose(logits(True), evaluated, rtol=1e-3, atol=0)
  np.testing.assert_array_equal(logits(False), evaluated)
  # Step 0 of the schedule: nothing dropped yet.
  step.assign(0)
  np.testing.assert_array_equal(logits(True), evaluated)


def test_trainer_sets_drop_path(tmp_path):
  trainer = _nas_trainer(tmp_path / 'on', 0.3)
  layers = nas_cell.drop_path_layers(trainer.model)
  assert len(layers) == 12 * 9  # PNASNet: 9 operations per cell but 'none'
  assert {l.keep_prob for l in layers} == {0.3}
  assert {l.total_training_steps for l in layers} == {10}
  trainer.optimizer.iterations.assign(7)
  assert int(layers[0].training_step()) == 7
  # As the original: no drop path when BatchNorm is frozen.
  frozen = _nas_trainer(tmp_path / 'off', 0.3, fine_tune_batch_norm=False)
  assert {l.keep_prob for l in nas_cell.drop_path_layers(frozen.model)} == {
      1.0}


@pytest.mark.slow
def test_drop_path_changes_the_training_step(tmp_path):
  plain = _nas_trainer(tmp_path / 'plain', 1.0)
  dropped = _nas_trainer(tmp_path / 'dropped', 0.3)
  dropped.model.set_weights(plain.model.get_weights())
  # Late in training the schedule drops paths; at the same weights and batch
  # the step's loss then differs (no other randomness: no dropout).
  for trainer in (plain, dropped):
    trainer.optimizer.iterations.assign(9)
  loss_plain = plain.train(max_steps=1)['total_loss']
  loss_dropped = dropped.train(max_steps=1)['total_loss']
  assert plain.step == dropped.step == 10
  assert loss_plain != pytest.approx(loss_dropped, rel=1e-4)


def test_drop_path_keep_prob_flag_and_check(tmp_path):
  settings = trainer_lib.train_settings_from_flag_values(
      {'drop_path_keep_prob': 0.7}, str(tmp_path))
  assert settings.drop_path_keep_prob == 0.7
  with pytest.raises(ValueError, match='drop_path_keep_prob must be in'):
    TrainSettings(train_logdir=str(tmp_path), drop_path_keep_prob=0.0)


# --- Against the original -----------------------------------------------------------
@pytest.mark.parametrize('name', ['I', 'J'])
def test_conformance_case(reference_dir, name):
  path, _ = _case(reference_dir, name)
  result = conformance.check_case(path)
  print(result.report())
  assert result.passed, result.report()


@pytest.mark.parametrize('name', ['I', 'J'])
def test_params_and_multiply_adds_at_513(reference_dir, name):
  _, case = _case(reference_dir, name)
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.model_stats'] + case['cmdline'] +
      ['--crop_size=513,513', '--num_classes=21'],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr
  stats = json.loads(proc.stdout.strip().splitlines()[-1])
  assert stats['trainable_params'] == case['num_params_excluding_bn_moving_stats']
  assert stats['total_params'] == case['num_params_all_float_vars']
  # variants/README.md: 12.58 G (I), 6.31 G (J) at 513x513.
  expected = {'I': 12.58e9, 'J': 6.31e9}[name]
  assert stats['multiply_adds'] == pytest.approx(expected, rel=0.005)
