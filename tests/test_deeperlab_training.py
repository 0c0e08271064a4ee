"""DeeperLab on the shared Trainer; trainable_scopes; the train.py DeeperLab flags."""
import dataclasses
import glob
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl import app

from deeplab_tf import checkpoints
from deeplab_tf.config import model_flags
from deeplab_tf import train as train_script
from deeplab_tf.data import panoptic_records
from deeplab_tf.data import panoptic_targets as pt
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import options_from_dict
from deeplab_tf.models import deeperlab
from deeplab_tf.models.heads import deeperlab_decoder as dec
from deeplab_tf.training import tasks
from deeplab_tf.training.tasks import deeperlab as deeperlab_task
from deeplab_tf.training.gradient_multipliers import GradientMultiplierSettings
from deeplab_tf.training.losses import LossSettings
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings

HERE = os.path.dirname(os.path.abspath(__file__))

# Wider MobileNetV2 at multiplier 0.25 with a thin decoder and thin heads
# (the paper's 4096 / 256 channels only cost time here).
OPTIONS = deeperlab.DeeperLabOptions(
    model_variant=deeperlab.WIDER_MOBILENET_V2, num_classes=3,
    crop_size=(65, 65), depth_multiplier=0.25, aspp_convs_filters=32,
    decoder=dec.DecoderSettings(decoder_filters=256, head_filters=32))
TARGETS = pt.PanopticTargetSettings(thing_classes=(2,), radius=8.0)
PART_TAGS = {'%s_loss' % name for name in dec.HEAD_NAMES}


def panoptic_maps(num_images=4):
  """Class 1 (stuff) on the right, thing class 2: two boxes that move per image."""
  category = np.zeros((num_images, 65, 65), np.int32)
  instance = np.zeros((num_images, 65, 65), np.int32)
  category[:, :, 56:] = 1
  for i in range(num_images):
    category[i, 4 + 3 * i:24 + 3 * i, 6:26] = 2
    instance[i, 4 + 3 * i:24 + 3 * i, 6:26] = 1
    category[i, 36:58, 24 + 4 * i:44 + 4 * i] = 2
    instance[i, 36:58, 24 + 4 * i:44 + 4 * i] = 2
  category[:, :2] = 255  # some ignore pixels
  return category, instance


def panoptic_dataset_fn(global_batch=None):
  """dataset_fn of panoptic batches: image + targets (panoptic_targets_tf) + maps."""
  category, instance = panoptic_maps()
  palette = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.float32)
  rng = np.random.default_rng(0)
  images = palette[np.minimum(category, 2)] + rng.normal(0, 20, category.shape
                                                        + (3,))
  images = np.clip(images, 0, 255).astype(np.float32)

  def add_targets(example):
    return dict(example, **pt.panoptic_targets_tf(
        example['category'], example['instance'], TARGETS))

  def dataset_fn(ctx):
    per_replica = ctx.get_per_replica_batch_size(global_batch or 2)
    ds = tf.data.Dataset.from_tensor_slices(
        {'image': images, 'category': category, 'instance': instance})
    ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return ds.map(add_targets).cache().repeat().batch(per_replica,
                                                      drop_remainder=True)
  return dataset_fn


def settings(logdir, steps, **kw):
  lr = LearningRateSettings(base_learning_rate=kw.pop('lr', 0.01),
                            training_number_of_steps=steps)
  return TrainSettings(train_logdir=str(logdir),
                       train_batch_size=kw.pop('train_batch_size', 2),
                       learning_rate=lr, log_steps=kw.pop('log_steps', 1), **kw)


def _weights(model):
  return {n: v.numpy().copy()
          for n, v in checkpoints.model_variables(model).items()}


def _event_tags(logdir):
  tags = set()
  for event_file in glob.glob(os.path.join(str(logdir), 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  return tags


@pytest.fixture(scope='module')
def phase1(tmp_path_factory):
  """20 steps of phase 1 (BatchNorm trained): first and last metrics."""
  logdir = tmp_path_factory.mktemp('deeperlab_phase1')
  trainer = Trainer(OPTIONS, settings(logdir, 20), panoptic_dataset_fn())
  first = trainer.train(max_steps=1)
  last = trainer.train()
  return types.SimpleNamespace(logdir=logdir, trainer=trainer, first=first,
                               last=last, weights=_weights(trainer.model))


# --- DeeperLab on the Trainer ---------------------------------------------------
def test_deeperlab_trains_and_logs_each_head(phase1):
  assert isinstance(phase1.trainer.task, tasks.DeeperLabTask)
  assert phase1.trainer.step == 20
  first, last = phase1.first, phase1.last
  print('first %s\nlast %s' % (first, last))
  assert PART_TAGS <= set(last)
  assert last['total_loss'] < 0.85 * first['total_loss'], (first, last)
  assert last['semantic_loss'] < first['semantic_loss']
  assert last['keypoint_heatmap_loss'] < first['keypoint_heatmap_loss']
  # The task loss is the weighted (all 1) sum of the parts.
  assert last['task_loss'] == pytest.approx(
      sum(last[t] for t in PART_TAGS), rel=1e-5)
  assert 0.0 <= last['pixel_accuracy'] <= 1.0
  tags = _event_tags(phase1.logdir)
  assert PART_TAGS | {'total_loss', 'task_loss', 'regularization_loss',
                      'learning_rate', 'pixel_accuracy'} <= tags
  with open(os.path.join(str(phase1.logdir), 'model_options.json')) as f:
    assert options_from_dict(json.load(f)) == OPTIONS
  done = checkpoints.folders.read_training_done(str(phase1.logdir))
  assert done['step'] == 20 and done['checkpoint'].endswith('ckpt-20')


# Resume is covered in the default set by test_trainer; this DeeperLab one is slow.
@pytest.mark.slow
def test_deeperlab_resume_keeps_step_and_weights(phase1, tmp_path):
  again = Trainer(OPTIONS, settings(phase1.logdir, 22), panoptic_dataset_fn())
  assert again.initialize().startswith('resumed from')
  assert again.step == 20
  for name, value in _weights(again.model).items():
    np.testing.assert_array_equal(value, phase1.weights[name], err_msg=name)
  again.train()
  assert again.step == 22
  assert checkpoints.find_checkpoint(str(phase1.logdir)).endswith('ckpt-22')


def test_frozen_batch_norm_phase2_starts_from_phase1(phase1, tmp_path):
  trainer = Trainer(
      OPTIONS, settings(tmp_path, 2, tf_initial_checkpoint=str(phase1.logdir),
                        fine_tune_batch_norm=False), panoptic_dataset_fn())
  message = trainer.initialize()
  assert message.startswith('initialised: restored from checkpoint'), message
  # Every variable as phase 1's newest checkpoint has it (the resume test may
  # have moved phase 1 on to step 22).
  restored = _weights(trainer.model)
  reference = deeperlab.build_deeperlab(OPTIONS)
  checkpoints.restore_model(reference, str(phase1.logdir))
  for name, value in _weights(reference).items():
    np.testing.assert_array_equal(restored[name], value, err_msg=name)
  statistics = [n for n in restored if n.endswith(('/moving_mean',
                                                    '/moving_variance'))]
  affine = [n for n in restored if '/BatchNorm/' in n and n not in statistics]
  assert statistics and affine
  trainer.train()
  assert trainer.step == 2
  after = _weights(trainer.model)
  # Phase 2 as the original: statistics kept, gamma and beta trained.
  for name in statistics:
    np.testing.assert_array_equal(after[name], restored[name], err_msg=name)
  assert any(not np.array_equal(after[n], restored[n]) for n in affine)
  assert not np.array_equal(after['semantic/logits/weights'],
                            restored['semantic/logits/weights'])


def test_last_layers_are_the_heads_logits(tmp_path):
  source = deeperlab.build_deeperlab(OPTIONS.replace(num_classes=5))
  prefix = checkpoints.save_tf1_checkpoint(source, str(tmp_path / 'init' /
                                                       'model.ckpt'))
  trainer = Trainer(OPTIONS, settings(
      tmp_path / 'train', 1, tf_initial_checkpoint=prefix,
      initialize_last_layer=False,
      gradient_multipliers=GradientMultiplierSettings(
          last_layers_contain_logits_only=True,
          last_layer_gradient_multiplier=10.0)), panoptic_dataset_fn())
  assert trainer.last_layers == ['%s/logits' % n for n in dec.HEAD_NAMES]
  mult = trainer.multiplier.multipliers
  for head in dec.HEAD_NAMES:
    assert mult['%s/logits/weights' % head] == 10.0
    assert mult['%s/logits/biases' % head] == 20.0
  assert 'decoder/decoder_conv0_pointwise/weights' not in mult
  assert 'semantic/conv0_pointwise/weights' not in mult
  assert 'initialised from TF1 checkpoint' in trainer.initialize()
  loaded = _weights(trainer.model)
  for name in ('MobilenetV2/Conv/weights', 'semantic/conv0_pointwise/weights',
               'decoder/decoder_conv0_pointwise/weights'):
    np.testing.assert_array_equal(
        loaded[name], checkpoints.model_variables(source)[name].numpy())
  # Without logits_only: everything after the encoder, as the original.
  scopes = deeperlab.get_extra_layer_scopes(False)
  assert {'aspp', 'concat_projection', 'decoder'} <= set(scopes)
  assert set(dec.HEAD_NAMES) <= set(scopes)


@pytest.mark.slow
def test_mirrored_two_cpus_with_sync_batch_norm(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(HERE, '_deeperlab_mirrored_worker.py'),
       str(tmp_path), '2'], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, PYTHONPATH=HERE + os.pathsep +
               os.environ.get('PYTHONPATH', '')))
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.split('RESULT ', 1)[1])
  assert result['replicas'] == 2 and result['step'] == 2
  assert result['sync_batch_norm']
  assert np.isfinite(result['metrics']['total_loss'])
  assert PART_TAGS <= set(result['metrics'])


# --- trainable_scopes -------------------------------------------------------------
SEMANTIC = ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                        output_stride=16, outputs_to_num_classes={'semantic': 3})


def semantic_dataset_fn(global_batch=2):
  rng = np.random.default_rng(0)
  labels = np.zeros((4, 33, 33, 1), np.int32)
  labels[:, :, 16:] = 1
  labels[:, 20:, :10] = 2
  images = rng.uniform(0, 255, (4, 33, 33, 3)).astype(np.float32)
  images[..., 0] += 40.0 * labels[..., 0]

  def dataset_fn(ctx):
    ds = tf.data.Dataset.from_tensor_slices({'image': images, 'label': labels})
    return ds.repeat().batch(ctx.get_per_replica_batch_size(global_batch))
  return dataset_fn


def test_trainable_scopes_leave_everything_else_bit_identical(tmp_path):
  trainer = Trainer(SEMANTIC, settings(tmp_path, 3, trainable_scopes=(
      'logits', r'aspp0/(weights|BatchNorm/beta)$')), semantic_dataset_fn())
  before = _weights(trainer.model)
  assert sorted(trainer.regularized) == ['aspp0/weights',
                                         'logits/semantic/weights']
  trainer.train()
  after = _weights(trainer.model)
  changed = sorted(n for n in before
                   if not np.array_equal(before[n], after[n]))
  # BatchNorm aspp0 has a selected variable: it trains (batch statistics,
  # moving averages updated, gamma kept); every other BatchNorm is frozen.
  assert changed == ['aspp0/BatchNorm/beta', 'aspp0/BatchNorm/moving_mean',
                     'aspp0/BatchNorm/moving_variance', 'aspp0/weights',
                     'logits/semantic/biases', 'logits/semantic/weights']


def test_msc_trains_only_the_mlps_and_the_classifier(tmp_path):
  options = ModelOptions(model_variant='vgg_16', crop_size=(33, 33),
                         output_stride=8, outputs_to_num_classes={'semantic': 3},
                         meta_architecture='deeplab_v1_msc_largefov')
  trainer = Trainer(options, settings(
      tmp_path, 1, lr=1e-3, trainable_scopes=('msc', 'logits'),
      fine_tune_batch_norm=False, loss=LossSettings(upsample_logits=False),
      gradient_multipliers=GradientMultiplierSettings(True, 10.0)),
                    semantic_dataset_fn())
  before = _weights(trainer.model)
  trainer.train()
  after = _weights(trainer.model)
  for name in before:
    same = np.array_equal(before[name], after[name])
    assert same != name.startswith(('msc/', 'logits/')), name


def test_trainable_scopes_errors_say_what_was_received(tmp_path):
  with pytest.raises(ValueError, match=r"\['mcs'\] match no variable"):
    Trainer(SEMANTIC, settings(tmp_path, 1, trainable_scopes=('mcs',)),
            semantic_dataset_fn())
  with pytest.raises(ValueError, match='single string'):
    settings(tmp_path, 1, trainable_scopes='logits')
  with pytest.raises(ValueError, match='not a valid regular expression'):
    settings(tmp_path, 1, trainable_scopes=('logits(',))


# --- tasks and options ---------------------------------------------------------------
def test_options_round_trip_and_task_choice():
  values = json.loads(json.dumps(OPTIONS.to_dict()))
  assert values['meta_architecture'] == 'deeperlab'
  assert deeperlab.DeeperLabOptions.from_dict(values) == OPTIONS
  assert options_from_dict(SEMANTIC.to_dict()) == SEMANTIC
  assert isinstance(tasks.task_for(SEMANTIC), tasks.SemanticTask)
  task = tasks.task_for(OPTIONS, ignore_label=7)
  assert isinstance(task, tasks.DeeperLabTask) and task.ignore_label == 7
  with pytest.raises(ValueError, match="got meta_architecture 'deeplab_v3'"):
    deeperlab.DeeperLabOptions.from_dict(SEMANTIC.to_dict())
  with pytest.raises(TypeError, match='got dict'):
    tasks.task_for({'num_classes': 3})


# --- train.py flags -------------------------------------------------------------------
@pytest.fixture
def toy_dataset(tmp_path):
  """A 3-class custom descriptor and a (dummy) shard the pre-checks accept."""
  path = tmp_path / 'toy.json'
  path.write_text(json.dumps({'name': 'toy_panoptic', 'num_classes': 3,
                              'ignore_label': 255,
                              'splits_to_sizes': {'train': 4}}))
  records = tmp_path / 'records'
  records.mkdir()
  (records / 'train-00000-of-00001.tfrecord').write_bytes(b'not read')
  return str(path), str(records)


def _parse(argv):
  fv = flags.FLAGS
  fv.unparse_flags()
  fv(['train'] + argv)


@pytest.fixture
def restore_flags():
  yield
  flags.FLAGS.unparse_flags()


def _deeperlab_argv(toy_dataset, logdir, *extra):
  descriptor, records = toy_dataset
  return ['--meta_architecture=deeperlab', '--model_variant=wider_mobilenet_v2',
          '--depth_multiplier=0.25', '--aspp_convs_filters=32',
          '--dataset=' + descriptor, '--dataset_dir=' + records,
          '--train_logdir=' + str(logdir), '--train_crop_size=65,65',
          '--train_batch_size=2', '--training_number_of_steps=2',
          '--base_learning_rate=0.01', '--thing_classes=2',
          '--deeperlab_keypoint_radius=8', '--panoptic_label_divisor=1000'
         ] + list(extra)


def test_deeperlab_flags_to_settings(toy_dataset, tmp_path, restore_flags):
  _parse(_deeperlab_argv(toy_dataset, tmp_path,
                         '--deeperlab_top_k_percent_pixels=0.2',
                         '--deeperlab_heatmap_loss_weight=2',
                         '--deeperlab_small_instance_weight=4',
                         '--trainable_scopes=decoder,semantic/'))
  options, train, inputs, descriptor = train_script.settings_from_flags()
  assert options == deeperlab.DeeperLabOptions(
      model_variant='wider_mobilenet_v2', num_classes=3, crop_size=(65, 65),
      depth_multiplier=0.25, aspp_convs_filters=32)
  assert options.atrous_rates == (6, 12, 18)
  assert train.task_settings.loss.top_k_percent_pixels == 0.2
  assert train.task_settings.loss.heatmap_weight == 2.0
  assert train.task_settings.loss.offset_normalizer == 32.0
  assert train.trainable_scopes == ('decoder', 'semantic/')
  assert inputs.crop_size == (65, 65)
  assert isinstance(train.task_settings, tasks.DeeperLabTaskSettings)
  targets = train.task_settings.target_settings(descriptor)
  assert targets.thing_classes == (2,) and targets.radius == 8.0
  assert targets.small_instance_weight == 4.0
  assert targets.small_instance_area == 4096
  with pytest.raises(ValueError, match='DeeperLabOptions'):
    model_flags.model_options_from_flags()


@pytest.mark.parametrize('extra,message', [
    (['--top_k_percent_pixels=0.5'], 'top_k_percent_pixels: only for the '
     'semantic DeepLab models'),
    (['--model_variant=mobilenet_v2'], "got model_variant 'mobilenet_v2'"),
    (['--output_stride=8'], 'output_stride must be 16'),
])
def test_deeperlab_flag_errors(toy_dataset, tmp_path, restore_flags, extra,
                               message):
  _parse(_deeperlab_argv(toy_dataset, tmp_path, *extra))
  with pytest.raises((app.UsageError, ValueError), match=message):
    train_script.settings_from_flags()


def test_flag_errors_thing_classes_and_deeperlab_flags_on_deeplab(
    toy_dataset, tmp_path, restore_flags):
  argv = [a for a in _deeperlab_argv(toy_dataset, tmp_path)
          if not a.startswith('--thing_classes')]
  # The layout is resolved with the records: a recipe's dataset JSON may
  # bring the thing classes.
  def dataset_fn_from_flags(extra):
    _parse(argv + extra)
    _, train, inputs, descriptor = train_script.settings_from_flags()
    return train_script.make_dataset_fn(train, inputs, descriptor)
  with pytest.raises(app.UsageError, match=r'\(thing_classes missing\)'):
    dataset_fn_from_flags([])
  with pytest.raises(app.UsageError, match=r'\[3\] are not class ids of '
                     'dataset .toy_panoptic. \\(0..2'):
    dataset_fn_from_flags(['--thing_classes=3'])
  with pytest.raises(app.UsageError, match=r'must be class ids \(ints\); '
                     'got car'):
    dataset_fn_from_flags(['--thing_classes=car'])
  assert callable(dataset_fn_from_flags(['--thing_classes=2']))
  # A dataset JSON with panoptic fields (as the converters write) needs no
  # flags; the flags still override it.
  _parse(argv + ['--thing_classes=2'])
  _, _, _, descriptor = train_script.settings_from_flags()
  described = dataclasses.replace(descriptor, thing_classes=(1, 2),
                                  panoptic_label_divisor=256)
  values = {'thing_classes': None, 'panoptic_label_divisor': 1000}
  assert deeperlab_task.layout_from_flag_values(values, described) == \
      panoptic_records.PanopticLayout(label_divisor=1000,
                                      thing_classes=(1, 2))
  values = {'thing_classes': ['2'], 'panoptic_label_divisor': None}
  assert deeperlab_task.layout_from_flag_values(values, described) == \
      panoptic_records.PanopticLayout(label_divisor=256, thing_classes=(2,))
  _parse(['--dataset=' + toy_dataset[0], '--train_logdir=' + str(tmp_path),
          '--deeperlab_heatmap_loss_weight=2'])
  with pytest.raises(app.UsageError, match='only for DeeperLab'):
    train_script.settings_from_flags()


# test_train_from_flags_on_real_panoptic_records covers the real path by default.
@pytest.mark.slow
def test_train_from_flags_reads_the_panoptic_pipeline(
    toy_dataset, tmp_path, restore_flags, monkeypatch):
  """train.py hands build_panoptic_dataset its documented arguments."""
  calls = []
  fake_dataset_fn = panoptic_dataset_fn()

  def build_panoptic_dataset(info, split_name, record_dir, settings_,
                             target_settings, is_training, input_context=None,
                             batch_size=None, layout=None):
    calls.append(dict(info=info, split_name=split_name, record_dir=record_dir,
                      settings=settings_, target_settings=target_settings,
                      is_training=is_training, batch_size=batch_size,
                      layout=layout))
    return fake_dataset_fn(input_context)

  fake = types.ModuleType('deeplab_tf.data.panoptic_pipeline')
  fake.build_panoptic_dataset = build_panoptic_dataset
  import deeplab_tf.data  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(sys.modules, 'deeplab_tf.data.panoptic_pipeline', fake)
  monkeypatch.setattr(deeplab_tf.data, 'panoptic_pipeline', fake,
                      raising=False)
  _parse(_deeperlab_argv(toy_dataset, tmp_path / 'train',
                         '--save_summaries_images'))
  metrics = train_script.train_from_flags()
  assert PART_TAGS <= set(metrics)
  call = calls[0]
  assert call['info'].name == 'toy_panoptic' and call['split_name'] == 'train'
  assert call['record_dir'] == toy_dataset[1] and call['is_training']
  assert call['target_settings'].thing_classes == (2,)
  assert call['settings'].crop_size == (65, 65) and call['batch_size'] == 2
  assert call['layout'].label_divisor == 1000
  assert {'samples/image', 'samples/label', 'samples/semantic',
          'samples/label_colored', 'samples/semantic_colored'} <= _event_tags(
              tmp_path / 'train')


def test_train_from_flags_on_real_panoptic_records(tmp_path, restore_flags):
  """train.py -> panoptic_pipeline -> Trainer on records written here."""
  import cv2  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import records as records_lib  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'toy.json'
  path.write_text(json.dumps({'name': 'toy_panoptic', 'num_classes': 3,
                              'ignore_label': 255,
                              'splits_to_sizes': {'train': 4}}))
  record_dir = tmp_path / 'records'
  record_dir.mkdir()
  rng = np.random.default_rng(0)
  shard = records_lib.shard_filename(str(record_dir), 'train', 0, 1)
  with tf.io.TFRecordWriter(shard) as writer:
    for index in range(4):
      category = np.zeros((50, 60), np.int32)
      instance = np.zeros((50, 60), np.int32)
      category[30:, :] = 1
      category[5:20, 10 + index:30 + index] = 2
      instance[5:20, 10 + index:30 + index] = 1
      category[8:25, 40:55] = 2
      instance[8:25, 40:55] = 2
      image = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
      ok, png = cv2.imencode('.png', image)
      assert ok
      writer.write(panoptic_records.panoptic_to_example(
          png.tobytes(), 'toy%d' % index, 50, 60,
          panoptic_records.encode_panoptic(category, instance, 1000))
                   .SerializeToString())
  _parse(_deeperlab_argv((str(path), str(record_dir)), tmp_path / 'train'))
  metrics = train_script.train_from_flags()
  assert PART_TAGS <= set(metrics)
  assert all(np.isfinite(metrics[t]) for t in PART_TAGS)
  assert metrics['keypoint_heatmap_loss'] > 0
  assert tf.train.latest_checkpoint(str(tmp_path / 'train')).endswith('-2')
