"""The meta-architecture and task registries, and where a checkpoint's options come from."""
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.checkpoints import folders
from deeplab_tf.checkpoints import model_options
from deeplab_tf.models import deeperlab
from deeplab_tf.models import meta_architectures
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import options_from_dict
from deeplab_tf.models.options import OptionsError
from deeplab_tf.training import tasks
from deeplab_tf.training.tasks import registry as task_registry
from deeplab_tf.training.schedules import LearningRateSettings
from deeplab_tf.training.trainer import Trainer, TrainSettings


# --- meta-architectures -----------------------------------------------------------
def test_registered_families_and_names():
  assert [e.family for e in meta_architectures.entries()] == ['deeplab',
                                                             'deeperlab']
  assert meta_architectures.names() == [
      'deeplab_v3', 'deeplab_v1_largefov', 'deeplab_v1_msc_largefov',
      'deeplab_v2_aspp', 'deeperlab']
  assert meta_architectures.for_name('deeplab_v2_aspp').options_class is (
      ModelOptions)
  assert meta_architectures.for_options(deeperlab.DeeperLabOptions(
      model_variant='wider_mobilenet_v2')).family == 'deeperlab'
  with pytest.raises(OptionsError, match=r"Unknown meta_architecture 'v9'; "
                     r"expected one of \['deeplab_v3'"):
    meta_architectures.for_name('v9')
  with pytest.raises(ValueError, match='already registered'):
    meta_architectures.register(meta_architectures.entries()[1])


def test_options_from_dict_dispatches_on_meta_architecture():
  semantic = ModelOptions(model_variant='xception_65', output_stride=16,
                          meta_architecture='deeplab_v2_aspp')
  parser = deeperlab.DeeperLabOptions(model_variant='wider_mobilenet_v2',
                                      num_classes=7)
  assert options_from_dict(json.loads(json.dumps(semantic.to_dict()))) == (
      semantic)
  assert options_from_dict(json.loads(json.dumps(parser.to_dict()))) == parser
  # Dicts without the key (older JSONs, conformance cases) are semantic.
  assert options_from_dict({'num_classes': 5}).num_classes == 5


def test_options_from_flag_values_and_allowed_families():
  values = {name: getattr(ModelOptions(), name)
            for name in ('model_variant', 'output_stride', 'atrous_rates',
                         'depth_multiplier', 'batch_norm_decay',
                         'aspp_convs_filters')}
  values.update(meta_architecture='deeperlab', num_classes=21,
                model_variant='wider_mobilenet_v2', output_stride=16,
                atrous_rates=None)
  options = meta_architectures.options_from_flag_values(
      values, crop_size=['65', '65'], num_classes=3)
  assert options == deeperlab.DeeperLabOptions(
      model_variant='wider_mobilenet_v2', num_classes=3, crop_size=(65, 65))
  with pytest.raises(OptionsError, match=r'deeperlab family '
                     r'\(DeeperLabOptions\), which this script does not '
                     r'build; it builds deeplab'):
    meta_architectures.options_from_flag_values(values, allowed=('deeplab',))


# --- a new family touches no shared file -------------------------------------------
@dataclasses.dataclass
class ToyOptions:
  """A one-layer 'model family', registered only inside the test."""
  num_classes: int = 3
  crop_size: tuple = (9, 9)

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self):
    return dict(dataclasses.asdict(self), meta_architecture='toy')

  @classmethod
  def from_dict(cls, values):
    values = {k: v for k, v in values.items() if k != 'meta_architecture'}
    return cls(values['num_classes'], tuple(values['crop_size']))


def _toy_model(options, fine_tune_batch_norm=False, sync_batch_norm=False):
  del fine_tune_batch_norm, sync_batch_norm
  images = keras.Input(options.crop_size + (3,))
  logits = keras.layers.Conv2D(options.num_classes, 1, name='logits')(
      images / 255.0)
  return keras.Model(images, {'semantic': logits})


class ToyTask:
  part_names = ()
  label_key = 'label'

  def __init__(self, options, ignore_label):
    self.options = options
    self.num_classes = options.num_classes
    self.ignore_label = ignore_label

  @classmethod
  def create(cls, options, loss, task_settings, ignore_label):
    del loss, task_settings
    return cls(options, 255 if ignore_label is None else ignore_label)

  def build_model(self, fine_tune_batch_norm, sync_batch_norm):
    return _toy_model(self.options, fine_tune_batch_norm, sync_batch_norm)

  @staticmethod
  def last_layer_scopes(last_layers_contain_logits_only):
    del last_layers_contain_logits_only
    return ['logits']

  def loss(self, outputs, batch, step):
    del step
    labels = tf.cast(batch['label'][..., 0], tf.int32)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, outputs['semantic'], from_logits=True)), {}

  def pixel_counts(self, outputs, batch):
    labels = tf.cast(batch['label'][..., 0], tf.int32)
    correct = tf.equal(tf.argmax(outputs['semantic'], -1, output_type=tf.int32),
                       labels)
    return (tf.reduce_sum(tf.cast(correct, tf.float32)),
            tf.cast(tf.size(labels), tf.float32))

  def summary_samples(self, outputs, batch):
    return {'image': batch['image'][:1], 'label': batch['label'][:1],
            'semantic': tf.argmax(outputs['semantic'], -1,
                                  output_type=tf.int32)[:1, ..., None]}


@pytest.fixture
def toy_family(monkeypatch):
  monkeypatch.setattr(meta_architectures, '_REGISTRY',
                      list(meta_architectures.entries()))
  monkeypatch.setattr(task_registry, '_TASKS', list(task_registry.entries()))
  meta_architectures.register(meta_architectures.MetaArchitecture(
      family='toy', names=('toy',), options_class=ToyOptions,
      build_model=_toy_model, last_layer_scopes=lambda _: ['logits'],
      options_from_values=lambda values, crop_size=None, num_classes=None:
      ToyOptions(num_classes or values['num_classes'])))
  task_registry.register(task_registry.TaskEntry(family='toy',
                                                 task_class=ToyTask))


def test_a_new_family_registers_and_trains(toy_family, tmp_path):
  """A family and its task, registered from outside the package, train on
  the shared Trainer and round-trip through model_options.json."""
  del toy_family
  assert 'toy' in meta_architectures.names()
  options = ToyOptions()
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 255, (4, 9, 9, 3)).astype(np.float32)
  labels = (images[..., :1] > 127).astype(np.int32)

  def dataset_fn(input_context):
    del input_context
    return tf.data.Dataset.from_tensor_slices(
        {'image': images, 'label': labels}).repeat().batch(2)

  settings = TrainSettings(
      train_logdir=str(tmp_path), train_batch_size=2, save_interval_secs=0,
      save_summaries_secs=0, learning_rate=LearningRateSettings(
          base_learning_rate=0.1, training_number_of_steps=3))
  trainer = Trainer(options, settings, dataset_fn)
  assert isinstance(trainer.task, ToyTask)
  metrics = trainer.train()
  assert trainer.step == 3 and np.isfinite(metrics['total_loss'])
  with open(os.path.join(str(tmp_path), folders.OPTIONS_FILE)) as f:
    assert options_from_dict(json.load(f)) == options
  resolved, source = model_options.resolve(str(tmp_path), None)
  assert resolved == options and source.endswith(folders.OPTIONS_FILE)


def test_task_registry():
  assert [e.family for e in task_registry.entries()] == ['deeplab',
                                                        'deeperlab']
  assert isinstance(tasks.task_for(ModelOptions()), tasks.SemanticTask)
  deeperlab_entry = tasks.for_family('deeperlab')
  assert 'thing_classes' in deeperlab_entry.all_own_flags()
  assert 'deeperlab_keypoint_radius' in deeperlab_entry.all_own_flags()
  assert 'top_k_percent_pixels' in tasks.for_family('deeplab').own_flags
  with pytest.raises(ValueError, match='already registered'):
    task_registry.register(deeperlab_entry)
  with pytest.raises(ValueError, match="No training task for model family "
                     "'nope'"):
    tasks.for_family('nope')


# --- where options come from ---------------------------------------------------------
TRAINED = ModelOptions(model_variant='xception_65', output_stride=16,
                       atrous_rates=(6, 12, 18), decoder_output_stride=(4,),
                       outputs_to_num_classes={'semantic': 12},
                       crop_size=(321, 321))
FLAG_DEFAULTS = ModelOptions(model_variant='mobilenet_v2', output_stride=16,
                             outputs_to_num_classes={'semantic': 12})


def _train_folder(tmp_path):
  folder = tmp_path / 'train'
  folder.mkdir()
  folders.write_options(str(folder), TRAINED)
  return str(folder)


def test_no_json_means_the_model_flags(tmp_path):
  options, source = model_options.resolve(str(tmp_path), FLAG_DEFAULTS,
                                          ['output_stride'])
  assert options is FLAG_DEFAULTS and source == 'the model flags'
  with pytest.raises(model_options.OptionsSourceError,
                     match='No model options beside'):
    model_options.resolve(str(tmp_path), None)


def test_json_then_given_flags_then_script_fields(tmp_path):
  folder = _train_folder(tmp_path)
  # Nothing given: the training's options (a folder with no checkpoint yet
  # still has its model_options.json: an eval started before training).
  options, source = model_options.resolve(folder, FLAG_DEFAULTS)
  assert options == TRAINED and source == os.path.join(folder,
                                                       'model_options.json')
  # A given flag wins; the script's crop wins whatever the JSON says.
  given = FLAG_DEFAULTS.replace(output_stride=8, atrous_rates=(12, 24, 36),
                                crop_size=None)
  options, source = model_options.resolve(
      folder, given, ['output_stride', 'atrous_rates'],
      script_fields=('crop_size',))
  assert options == TRAINED.replace(output_stride=8, atrous_rates=(12, 24, 36),
                                    crop_size=None)
  assert source.endswith('model_options.json with --atrous_rates, '
                         '--output_stride')
  # --num_classes is outputs_to_num_classes of a ModelOptions.
  options, _ = model_options.resolve(
      folder, FLAG_DEFAULTS.replace(outputs_to_num_classes={'semantic': 3}),
      ['num_classes'])
  assert options.num_classes == 3 and options.model_variant == 'xception_65'


def test_converter_json_first_and_explicit_json(tmp_path):
  prefix = str(tmp_path / 'converted' / 'x65')
  os.makedirs(os.path.dirname(prefix))
  with open(prefix + folders.CONVERTER_OPTIONS_SUFFIX, 'w') as f:
    json.dump(TRAINED.to_dict(), f)
  assert model_options.options_json_for(prefix) == (
      prefix + folders.CONVERTER_OPTIONS_SUFFIX)
  other = tmp_path / 'other.json'
  other.write_text(json.dumps(FLAG_DEFAULTS.to_dict()))
  options, source = model_options.resolve(prefix, TRAINED,
                                          json_path=str(other))
  assert options == FLAG_DEFAULTS and source == str(other)


def test_json_errors_name_the_file(tmp_path):
  folder = _train_folder(tmp_path)
  with pytest.raises(model_options.OptionsSourceError,
                     match=r'model_options.json describes a deeplab model '
                     r'\(ModelOptions\); this script builds deeperlab'):
    model_options.resolve(folder, None, families=('deeperlab',))
  parser = deeperlab.DeeperLabOptions(model_variant='wider_mobilenet_v2')
  with pytest.raises(model_options.OptionsSourceError,
                     match='describes ModelOptions, but the model flags '
                     'select DeeperLabOptions'):
    model_options.resolve(folder, parser)
  bad = tmp_path / 'bad.json'
  bad.write_text('{"model_variant": ')
  with pytest.raises(model_options.OptionsSourceError,
                     match='cannot read the model options .*bad.json'):
    model_options.resolve(None, FLAG_DEFAULTS, json_path=str(bad))
  bad.write_text(json.dumps({'meta_architecture': 'v9'}))
  with pytest.raises(model_options.OptionsSourceError,
                     match=r"bad.json: Unknown meta_architecture 'v9'"):
    model_options.resolve(None, FLAG_DEFAULTS, json_path=str(bad))


def test_scripts_resolve_with_the_flags_given(tmp_path):
  """model_flags.checkpoint_options: what eval, vis, export and the demo call."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from deeplab_tf.config import model_flags  # pylint: disable=g-import-not-at-top
  from deeplab_tf import train  # pylint: disable=g-import-not-at-top,unused-import
  folder = _train_folder(tmp_path)
  fv = flags.FLAGS
  try:
    fv.unparse_flags()
    fv(['eval', '--output_stride=8', '--flagfile=' + str(
        _flagfile(tmp_path, ['--atrous_rates=12', '--atrous_rates=24',
                             '--atrous_rates=36']))])
    assert set(model_flags.given_model_flags()) == {'output_stride',
                                                    'atrous_rates'}
    options, source = model_flags.checkpoint_options(
        folder, model_flags.model_options_from_flags(num_classes=12),
        script_fields=('crop_size', 'outputs_to_num_classes'))
    assert options == TRAINED.replace(output_stride=8,
                                      atrous_rates=(12, 24, 36),
                                      crop_size=None)
    assert 'with --atrous_rates, --output_stride' in source
    # No JSON (an original model-zoo folder): the flags, defaults included.
    options, source = model_flags.checkpoint_options(
        str(tmp_path), model_flags.model_options_from_flags(num_classes=12))
    assert source == 'the model flags'
    assert options.model_variant == 'mobilenet_v2' and options.output_stride == 8
  finally:
    fv.unparse_flags()


def _flagfile(tmp_path, lines):
  path = tmp_path / 'eval.flags'
  path.write_text('\n'.join(lines) + '\n')
  return path


# --- one mapping from train.py's flags to TrainSettings --------------------------
def test_train_settings_from_flag_values_defaults_and_names():
  from absl import flags  # pylint: disable=g-import-not-at-top
  from deeplab_tf import train  # pylint: disable=g-import-not-at-top,unused-import
  from deeplab_tf.training.trainer import train_settings_from_flag_values  # pylint: disable=g-import-not-at-top
  # Absent names keep the original defaults ...
  assert train_settings_from_flag_values({}, 'logs') == TrainSettings('logs')
  # ... which are train.py's flag defaults: the dataclasses and the flags agree.
  fv = flags.FLAGS
  try:
    fv.unparse_flags()
    fv(['train'])
    assert train_settings_from_flag_values(
        fv.flag_values_dict(), 'logs') == TrainSettings('logs')
    fv.unparse_flags()
    fv(['train', '--label_weights=1', '--label_weights=3',
        '--last_layer_gradient_multiplier=10', '--all_batch_norm_decay=0.95',
        '--trainable_scopes=msc,logits', '--learning_policy=step',
        '--top_k_percent_pixels=0.25'])
    settings = train_settings_from_flag_values(fv.flag_values_dict(), 'logs',
                                               ignore_label=11)
  finally:
    fv.unparse_flags()
  assert settings.loss.loss_weight == [1.0, 3.0]
  assert settings.loss.ignore_label == 11
  assert settings.loss.top_k_percent_pixels == 0.25
  assert settings.gradient_multipliers.last_layer_gradient_multiplier == 10
  assert settings.batch_norm_decay == 0.95
  assert settings.trainable_scopes == ('msc', 'logits')
  assert settings.learning_rate.learning_policy == 'step'
