"""The TF1 checkpoint converter: names, strictness, partial loads, the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_model, build_predictor

OPTIONS = ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                       output_stride=16, atrous_rates=None)


def _random_weights(model, seed=0):
  rng = np.random.default_rng(seed)
  model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32)
                     for w in model.get_weights()])


def test_original_names():
  names = checkpoints.model_variables(build_model(OPTIONS))
  assert 'MobilenetV2/Conv/weights' in names
  assert 'MobilenetV2/Conv/BatchNorm/moving_variance' in names
  assert 'MobilenetV2/expanded_conv/depthwise/depthwise_weights' in names
  assert 'MobilenetV2/expanded_conv_1/expand/weights' in names
  assert 'MobilenetV2/expanded_conv/expand/weights' not in names  # expansion 1
  assert 'logits/semantic/biases' in names
  assert 'aspp0/BatchNorm/beta' in names and 'image_pooling/weights' in names
  assert not any(n.endswith('/kernel') or n.endswith('/bias') for n in names)


def test_round_trip_and_is_tf1(tmp_path):
  src = build_predictor(OPTIONS)
  _random_weights(src)
  prefix = checkpoints.save_tf1_checkpoint(src, str(tmp_path / 'model.ckpt'), 7)
  assert checkpoints.is_tf1_checkpoint(str(tmp_path))
  reader = tf.train.load_checkpoint(prefix)
  assert reader.get_tensor('global_step') == 7
  dst = build_model(OPTIONS)
  report = checkpoints.load_tf1_checkpoint(dst, str(tmp_path))  # a directory works
  assert report.ok and not report.unused and len(report.loaded) == len(dst.weights)
  x = np.random.default_rng(1).uniform(0, 255, (1, 33, 33, 3)).astype(np.float32)
  np.testing.assert_allclose(src(x)['merged_logits'], dst(x)['merged_logits'],
                             rtol=1e-6)
  # A TF2 object-based checkpoint is told apart.
  tf2 = tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(tmp_path / 'obj' / 'ckpt'))
  assert not checkpoints.is_tf1_checkpoint(tf2)


def test_mismatch_is_refused_with_the_names(tmp_path):
  src = build_model(OPTIONS)
  checkpoints.save_tf1_checkpoint(src, str(tmp_path / 'model.ckpt'))
  other = build_model(OPTIONS.replace(outputs_to_num_classes={'semantic': 5}))
  with pytest.raises(checkpoints.CheckpointMismatchError) as err:
    checkpoints.load_tf1_checkpoint(other, str(tmp_path / 'model.ckpt'))
  assert 'logits/semantic/weights (1, 1, 256, 5) vs (1, 1, 256, 21)' in str(err.value)
  # Excluding the logits (initialize_last_layer=False) loads everything else.
  before = other.get_layer('logits.semantic').get_weights()[0].copy()
  report = checkpoints.load_tf1_checkpoint(other, str(tmp_path / 'model.ckpt'),
                                           exclude_scopes=['logits'])
  assert report.excluded == ['logits/semantic/biases', 'logits/semantic/weights']
  np.testing.assert_array_equal(other.get_layer('logits.semantic').get_weights()[0],
                                before)


def test_missing_variables_strict_and_partial(tmp_path):
  # A backbone-only checkpoint (as an ImageNet one): no ASPP, no logits.
  src = build_model(OPTIONS)
  variables = checkpoints.model_variables(src)
  backbone = {n: v for n, v in variables.items() if n.startswith('MobilenetV2/')}
  tf.raw_ops.SaveV2(prefix=str(tmp_path / 'imagenet.ckpt'),
                    tensor_names=sorted(backbone),
                    shape_and_slices=[''] * len(backbone),
                    tensors=[backbone[n] for n in sorted(backbone)])
  dst = build_model(OPTIONS)
  with pytest.raises(checkpoints.CheckpointMismatchError, match='missing 17'):
    checkpoints.load_tf1_checkpoint(dst, str(tmp_path / 'imagenet.ckpt'))
  report = checkpoints.load_tf1_checkpoint(dst, str(tmp_path / 'imagenet.ckpt'),
                                           ignore_missing=True)
  assert len(report.loaded) == len(backbone) and len(report.missing) == 17  # image_pooling, aspp0, concat_projection: 5 each; logits 2
  assert 'aspp0/weights' in report.missing


def test_missing_checkpoint_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='No checkpoint in folder'):
    checkpoints.load_tf1_checkpoint(build_model(OPTIONS), str(tmp_path))


def test_extra_layer_scopes_prefix_match():
  from deeplab_tf.models.deeplab import get_extra_layer_scopes
  scopes = get_extra_layer_scopes(False)
  assert scopes[:5] == ['logits', 'image_pooling', 'aspp', 'concat_projection', 'decoder']
  assert checkpoints.tf1._excluded('aspp1_depthwise/depthwise_weights', scopes)  # pylint: disable=protected-access
  assert not checkpoints.tf1._excluded('MobilenetV2/Conv/weights', scopes)  # pylint: disable=protected-access
  assert get_extra_layer_scopes(True) == ['logits']


def test_convert_checkpoint_cli(tmp_path):
  src = build_model(OPTIONS)
  _random_weights(src, seed=3)
  checkpoints.save_tf1_checkpoint(src, str(tmp_path / 'zoo' / 'model.ckpt'))
  flags = ['--model_variant=mobilenet_v2', '--output_stride=16']
  cmd = [sys.executable, '-m', 'deeplab_tf.convert_checkpoint',
         '--checkpoint=%s' % (tmp_path / 'zoo'), '--crop_size=33,33']
  out = tmp_path / 'ours' / 'mnv2.weights.h5'
  proc = subprocess.run(cmd + flags + ['--output=%s' % out], capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert 'loaded 272 variables' in proc.stdout
  saved = json.loads((tmp_path / 'ours' / 'mnv2_options.json').read_text())
  assert saved['model_variant'] == 'mobilenet_v2' and saved['output_stride'] == 16
  model = build_model(ModelOptions.from_dict(saved))
  model.load_weights(str(out))
  x = np.random.default_rng(2).uniform(0, 255, (1, 33, 33, 3)).astype(np.float32)
  np.testing.assert_allclose(model(x)['merged_logits'], src(x)['merged_logits'],
                             rtol=1e-6)
  # The wrong number of classes fails, naming the variable; exit status 1.
  proc = subprocess.run(cmd + flags + ['--num_classes=19', '--output=%s' % (tmp_path / 'x')],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1
  assert 'logits/semantic/weights (1, 1, 256, 19) vs (1, 1, 256, 21)' in proc.stderr
