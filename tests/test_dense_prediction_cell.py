"""The Dense Prediction Cell head (Chen et al., NeurIPS 2018) against the original.

Reference case H (``shared/reference/variants``) is the model-zoo
xception71_dpc_cityscapes network run by the original code: its variable names,
logits, parameter and multiply-add counts. The rest checks the general cell
(any JSON, output stride 8 / 16, with and without decoder, pyramid pooling)
against a tf.nn restatement of the original ``build_cell`` and its options,
scopes, initialisers and training on a tiny MobileNet-v2.
"""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf import conformance
from deeplab_tf.checkpoints import model_options as checkpoint_model_options
from deeplab_tf.checkpoints import zoo
from deeplab_tf.models import ModelOptions, build_model, build_predictor
from deeplab_tf.models import initializers
from deeplab_tf.models import layers as dl_layers
from deeplab_tf.models import options as options_lib
from deeplab_tf.models.builder import LayerBuilder
from deeplab_tf.models.heads import dense_prediction_cell as dpc
from deeplab_tf.training import gradient_multipliers
from deeplab_tf.training import regularization
from conftest import REFERENCE_DIR
from test_trainer import synthetic_dataset_fn

CASE_H = os.path.join(REFERENCE_DIR or '', 'variants', 'case_H.json')
BRANCH5 = dpc.load_config(dpc.BRANCH5_CITYSCAPES_JSON)


def _case_h():
  with open(CASE_H) as f:
    return json.load(f)


def _tiny(**kw):
  values = dict(model_variant='mobilenet_v2', crop_size=(33, 33),
                output_stride=16, outputs_to_num_classes={'semantic': 3},
                dense_prediction_cell_config=BRANCH5)
  values.update(kw)
  return ModelOptions(**values)


# --- the cell as data -----------------------------------------------------------
def test_shipped_cell_is_the_one_of_case_h():
  assert BRANCH5 == _case_h()['model_options']['dense_prediction_cell_config']
  assert [op.rate for op in dpc.parse_operations(BRANCH5)] == [
      (1, 6), (18, 15), (6, 3), (1, 1), (6, 21)]
  assert [op.input for op in dpc.parse_operations(BRANCH5)] == [-1, 0, 1, 0, 0]


def test_flag_reads_the_json_and_the_original_path(tmp_path):
  base = {'num_classes': 19, 'model_variant': 'xception_71',
          'output_stride': 16, 'decoder_output_stride': ['4']}
  cell = [{'op': 'conv', 'input': -1, 'kernel': 1},
          {'op': 'pyramid_pooling', 'input': 0, 'grid_size': [2, 2]}]
  path = tmp_path / 'cell.json'
  path.write_text(json.dumps(cell))
  options = options_lib.options_from_flag_values(
      dict(base, dense_prediction_cell_json=str(path)), crop_size=(65, 65))
  assert options.dense_prediction_cell_config == cell
  # The original's documented path reads the copy shipped here.
  original = options_lib.options_from_flag_values(dict(
      base, dense_prediction_cell_json=(
          'deeplab/core/dense_prediction_cell_branch5_top1_cityscapes.json')))
  assert original.dense_prediction_cell_config == BRANCH5
  # Empty: ASPP, as the original.
  assert options_lib.options_from_flag_values(
      dict(base, dense_prediction_cell_json='')).dense_prediction_cell_config \
      is None


@pytest.mark.parametrize('text, message', [
    (None, 'no such file'),
    ('[{"op": "conv", "input": -1, "kernel": 3, "rate": [1, 6]', 'not valid JSON'),
    ('{"op": "conv"}', 'JSON list of operations'),
    ('[]', 'no operation'),
    ('[{"op": "conv", "input": 0, "kernel": 1}]', 'not built yet'),
    ('[{"op": "atrous", "input": -1}]', "unrecognised operation 'atrous'"),
    ('[{"op": "conv", "input": -1, "kernel": 3, "rate": 6}]',
     r'"rate" must be \[rate_height, rate_width\]'),
    ('[{"op": "conv", "input": -1, "kernel": 3}]', 'needs "rate"'),
    ('[{"op": "pyramid_pooling", "input": -1}]', 'needs "grid_size"'),
])
def test_bad_json_is_refused_naming_the_file(tmp_path, text, message):
  path = tmp_path / 'bad_cell.json'
  if text is not None:
    path.write_text(text)
  with pytest.raises(options_lib.OptionsError, match=message) as error:
    options_lib.options_from_flag_values(
        {'num_classes': 19, 'dense_prediction_cell_json': str(path)})
  assert 'bad_cell.json' in str(error.value)


def test_options_round_trip_and_case_dict():
  options = ModelOptions.from_dict(_case_h()['model_options'])
  assert options.dense_prediction_cell_config == BRANCH5
  again = ModelOptions.from_dict(json.loads(options.to_json()))
  assert again == options
  # Tuples (a Python-written cell) compare equal to the JSON form.
  written = _tiny(dense_prediction_cell_config=[
      {'op': 'conv', 'input': -1, 'kernel': (3, 3), 'rate': (1, 6)}])
  assert written.dense_prediction_cell_config == [
      {'op': 'conv', 'input': -1, 'kernel': [3, 3], 'rate': [1, 6]}]


def test_a_given_flag_overrides_the_checkpoint_json(tmp_path):
  """--dense_prediction_cell_json maps to the field it sets (checkpoint rule 2)."""
  saved = _tiny()
  path = tmp_path / 'model_options.json'
  path.write_text(saved.to_json())
  flags = _tiny(dense_prediction_cell_config=None)
  kept, _ = checkpoint_model_options.resolve(None, flags, json_path=str(path))
  assert kept.dense_prediction_cell_config == BRANCH5
  overridden, source = checkpoint_model_options.resolve(
      None, flags, given_flags=['dense_prediction_cell_json'],
      json_path=str(path))
  assert overridden.dense_prediction_cell_config is None
  assert '--dense_prediction_cell_json' in source


def test_refusals():
  with pytest.raises(options_lib.OptionsError, match='output_stride 8 or 16'):
    build_model(_tiny(output_stride=32))
  pooling = [{'op': 'pyramid_pooling', 'input': -1, 'grid_size': [1, 1]}]
  with pytest.raises(options_lib.OptionsError, match='give crop_size'):
    build_model(_tiny(crop_size=None, dense_prediction_cell_config=pooling))
  with pytest.raises(options_lib.OptionsError, match='larger than'):
    build_model(_tiny(image_pooling_crop_size=(65, 65),
                      dense_prediction_cell_config=pooling))


# --- the model ----------------------------------------------------------------
@pytest.mark.parametrize('output_stride, decoder, size', [
    (16, None, 3), (8, None, 5), (16, (4,), 9), (8, (4,), 9)])
def test_shapes_and_rates(output_stride, decoder, size):
  model = build_model(_tiny(output_stride=output_stride,
                            decoder_output_stride=decoder))
  assert tuple(model.output['merged_logits'].shape) == (None, size, size, 3)
  multiplier = 16 // output_stride
  for i, rate in enumerate([(1, 6), (18, 15), (6, 3), (1, 1), (6, 21)]):
    layer = model.get_layer('meta_architecture.branch%d_depthwise' % i)
    assert tuple(layer.dilation_rate) == tuple(r * multiplier for r in rate)
  out = model(np.zeros((1, 33, 33, 3), np.float32))
  assert out['merged_logits'].shape == (1, size, size, 3)


def test_no_aspp_layer_and_dropout_before_projection():
  model = build_model(_tiny())
  names = [layer.name for layer in model.layers]
  assert not any(n.startswith(('image_pooling', 'aspp', 'concat_projection'))
                 for n in names)
  projection = model.get_layer('meta_architecture.concat_projection')
  feeding = projection._inbound_nodes[0].parent_nodes[0].operation  # pylint: disable=protected-access
  assert isinstance(feeding, dl_layers.Dropout) and feeding.keep_prob == 0.9
  assert projection.filters == 256 and projection.kernel.shape[2] == 5 * 256


def _bn(x, variables, scope):
  get = lambda leaf: variables['%s/BatchNorm/%s' % (scope, leaf)]
  return (get('gamma') * (x - get('moving_mean')) /
          tf.sqrt(get('moving_variance') + 1e-5) + get('beta'))


def _reference_cell(features, config, variables, crop, output_stride,
                    scope='meta_architecture'):
  """The original build_cell, inference, restated with tf.nn ops."""
  multiplier = 16 // output_stride
  branches = []
  for i, op in enumerate(config):
    x = features if op['input'] < 0 else branches[op['input']]
    s = '%s/branch%d' % (scope, i)
    if op['op'] == 'conv' and op['kernel'] in (1, [1, 1]):
      y = tf.nn.relu(_bn(tf.nn.conv2d(x, variables[s + '/weights'], 1, 'SAME'),
                         variables, s))
    elif op['op'] == 'conv':
      rate = [r * multiplier for r in op['rate']]
      y = tf.nn.depthwise_conv2d(x, variables[s + '_depthwise/depthwise_weights'],
                                 [1, 1, 1, 1], 'SAME', dilations=rate)
      y = tf.nn.relu(_bn(y, variables, s + '_depthwise'))
      y = tf.nn.conv2d(y, variables[s + '_pointwise/weights'], 1, 'SAME')
      y = tf.nn.relu(_bn(y, variables, s + '_pointwise'))
    else:
      target = [int((d - 1) / output_stride + 1) for d in crop]
      window = [int((d - 1) / (output_stride * g) + 1)
                for d, g in zip(crop, op['grid_size'])]
      y = tf.nn.avg_pool2d(x, window, 1, 'VALID')
      y = tf.nn.relu(_bn(tf.nn.conv2d(y, variables[s + '/weights'], 1, 'SAME'),
                         variables, s))
      y = tf.compat.v1.image.resize_bilinear(y, target, align_corners=True)
    branches.append(y)
  x = tf.concat(branches, 3)
  p = scope + '/concat_projection'
  return tf.nn.relu(_bn(tf.nn.conv2d(x, variables[p + '/weights'], 1, 'SAME'),
                        variables, p))


GENERAL_CELL = [
    {'op': 'conv', 'input': -1, 'kernel': 1},
    {'op': 'conv', 'input': 0, 'kernel': [3, 5], 'rate': [2, 1]},
    {'op': 'pyramid_pooling', 'input': -1, 'grid_size': [1, 1]},
    {'op': 'pyramid_pooling', 'input': 1, 'grid_size': [2, 3]},
    {'op': 'conv', 'input': -1, 'kernel': 3, 'rate': [6, 3]},
]


@pytest.mark.parametrize('output_stride, crop', [(16, (129, 113)),
                                                 (8, (65, 57))])
def test_any_cell_matches_the_original_semantics(output_stride, crop):
  options = _tiny(crop_size=crop, output_stride=output_stride,
                  dense_prediction_cell_config=GENERAL_CELL)
  size = [dl_layers.scale_dimension(d, 1.0 / output_stride) for d in crop]
  inputs = keras.Input(tuple(size) + (16,))
  model = keras.Model(inputs, dpc.build_cell(LayerBuilder(), inputs, options))
  rng = np.random.default_rng(0)
  variables = checkpoints.model_variables(model)
  for name, v in sorted(variables.items()):
    shape = tuple(v.shape)
    if name.endswith('moving_variance'):
      v.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
    elif name.endswith('gamma'):
      v.assign(rng.uniform(0.9, 1.1, shape).astype(np.float32))
    else:
      v.assign((0.3 * rng.standard_normal(shape)).astype(np.float32))
  assert model.get_layer('meta_architecture.branch1_depthwise').kernel.shape \
      == (3, 5, 256, 1)
  features = rng.standard_normal((2,) + tuple(size) + (16,)).astype(np.float32)
  ours = model(features, training=False).numpy()
  ref = _reference_cell(tf.constant(features), GENERAL_CELL,
                        {n: v.numpy() for n, v in variables.items()}, crop,
                        output_stride).numpy()
  assert ours.shape == tuple([2] + size + [256])
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_image_pyramid_gets_a_cell_per_scale_eval_scales_share_one():
  """TF1 uniquifies the cell's default scope name within one graph."""
  pyramid = build_model(_tiny(image_pyramid=(1.0, 0.5)))
  names = checkpoints.model_variables(pyramid)
  assert 'meta_architecture/concat_projection/weights' in names
  assert 'meta_architecture_1/concat_projection/weights' in names
  assert not any(n.startswith('meta_architecture_2') for n in names)
  predictor = build_predictor(_tiny(), eval_scales=(0.75, 1.0),
                              add_flipped_images=True)
  assert not any(n.startswith('meta_architecture_')
                 for n in checkpoints.model_variables(predictor))


def test_last_layers_multipliers_l2_and_initialisers():
  model = build_model(_tiny())
  named = checkpoints.model_variables(model)
  cell = sorted(n for n in named if n.startswith('meta_architecture/'))
  assert len(cell) == 11 * 5  # 5 branches x (dw + BN, pw + BN) + projection
  multipliers = gradient_multipliers.get_gradient_multipliers(
      named, gradient_multipliers.get_extra_layer_scopes(), 10.0)
  assert all(multipliers[n] == 10.0 for n in cell)
  assert not any(n.startswith('MobilenetV2') and 'biases' not in n
                 for n in multipliers)
  regularized = regularization.regularized_variables(named)
  assert 'meta_architecture/branch0_pointwise/weights' in regularized
  assert 'meta_architecture/concat_projection/weights' in regularized
  assert 'meta_architecture/branch0_depthwise/depthwise_weights' not in regularized
  inits = {n: initializers.describe(i)
           for n, i in initializers.variable_initializers(model).items()}
  assert inits['meta_architecture/branch2_depthwise/depthwise_weights'] == (
      'truncated_normal', {'mean': 0.0, 'stddev': 0.33})
  assert inits['meta_architecture/branch2_pointwise/weights'] == (
      'truncated_normal', {'mean': 0.0, 'stddev': 0.06})
  xavier = initializers.describe(initializers.xavier())
  assert inits['meta_architecture/concat_projection/weights'] == xavier
  one_by_one = build_model(_tiny(dense_prediction_cell_config=[
      {'op': 'conv', 'input': -1, 'kernel': 1}]))
  assert initializers.describe(initializers.variable_initializers(one_by_one)[
      'meta_architecture/branch0/weights']) == xavier


def test_training_steps_and_last_layer_restore(tmp_path):
  from deeplab_tf.training.schedules import LearningRateSettings  # pylint: disable=g-import-not-at-top
  from deeplab_tf.training.trainer import Trainer, TrainSettings  # pylint: disable=g-import-not-at-top
  options = _tiny()
  source = build_model(options.replace(outputs_to_num_classes={'semantic': 5}))
  checkpoints.save_tf1_checkpoint(source, str(tmp_path / 'init' / 'model.ckpt'))
  settings = TrainSettings(
      train_logdir=str(tmp_path / 'train'), train_batch_size=2,
      learning_rate=LearningRateSettings(base_learning_rate=0.01,
                                         training_number_of_steps=2),
      log_steps=1, tf_initial_checkpoint=str(tmp_path / 'init' / 'model.ckpt'),
      initialize_last_layer=False)
  trainer = Trainer(options, settings, synthetic_dataset_fn(2))
  assert 'initialised from TF1 checkpoint' in trainer.initialize()
  named = checkpoints.model_variables(trainer.model)
  source_named = checkpoints.model_variables(source)
  backbone = 'MobilenetV2/Conv/weights'
  cell = 'meta_architecture/branch1_pointwise/weights'
  np.testing.assert_array_equal(named[backbone].numpy(),
                                source_named[backbone].numpy())
  # meta_architecture is a last layer: not restored.
  assert not np.array_equal(named[cell].numpy(), source_named[cell].numpy())
  before = named[cell].numpy().copy()
  metrics = trainer.train()
  assert trainer.step == 2 and np.isfinite(metrics['total_loss'])
  assert not np.array_equal(named[cell].numpy(), before)
  # The train_logdir's options JSON carries the cell (eval rebuilds from it).
  with open(tmp_path / 'train' / 'model_options.json') as f:
    assert ModelOptions.from_dict(json.load(f)) == options


# --- the zoo rows and reference case H ----------------------------------------
def test_zoo_rows_build_the_dpc_model():
  for name in ('xception71_dpc_cityscapes_trainfine',
               'xception71_dpc_cityscapes_trainval'):
    entry = zoo.get(name)
    assert entry.supported
    args = dict(a[2:].split('=', 1) for a in entry.convert_args())
    options = options_lib.options_from_flag_values(
        dict(args, decoder_output_stride=[args['decoder_output_stride']]))
    assert options.dense_prediction_cell_config == BRANCH5
    assert options.model_variant == 'xception_71' and options.num_classes == 19


@pytest.fixture(scope='module')
def case_h_model():
  return build_model(ModelOptions.from_dict(dict(
      _case_h()['model_options'], crop_size=(513, 513))),
                     fine_tune_batch_norm=True)


def test_variable_names_and_shapes_are_manifest_h(case_h_model):
  with open(os.path.join(os.path.dirname(CASE_H), 'manifest_H.json')) as f:
    manifest = {v['name']: tuple(v['shape']) for v in json.load(f)
                if v['name'] != 'global_step'}
  ours = {n: tuple(v.shape)
          for n, v in checkpoints.model_variables(case_h_model).items()}
  assert ours == manifest


def test_params_and_multiply_adds_of_case_h(case_h_model):
  from deeplab_tf import model_stats  # pylint: disable=g-import-not-at-top
  case = _case_h()
  stats, _ = model_stats.model_stats(case_h_model)
  assert stats['trainable_params'] == case['num_params_excluding_bn_moving_stats']
  assert stats['total_params'] == case['num_params_all_float_vars']
  # The TF1 profiler counts atrous convs on space-to-batch padded tensors.
  assert stats['multiply_adds'] == pytest.approx(
      case['perf_513x513']['multiply_adds_conv_depthwise'], rel=0.005)


def test_case_h_conformance():
  result = conformance.check_case(CASE_H)
  print(result.report())
  assert result.passed, result.report()
  assert {'checkpoint', 'logits', 'merged_logits', 'labels'} <= {
      c.name for c in result.checks}
