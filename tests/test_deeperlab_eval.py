"""DeeperLab evaluation: parse + PQ / PC / mIoU over batches."""
import numpy as np
import pytest
import tensorflow as tf

import panoptic_helpers

from deeplab_tf.data import panoptic_targets as pt
from deeplab_tf.evaluation import deeperlab_eval
from deeplab_tf.evaluation import deeperlab_inference as inference
from deeplab_tf.models import deeperlab


def _perfect_outputs(category, instance, num_classes, settings):
  return panoptic_helpers.perfect_outputs(
      pt.panoptic_targets(category, instance, settings), num_classes)


class _OracleModel:
  """Returns fixed per-image head outputs, whatever the images (batch of 2)."""

  def __init__(self, outputs_per_image):
    self.outputs = {k: tf.constant(np.stack([o[k] for o in outputs_per_image]),
                                   tf.float32)
                    for k in outputs_per_image[0]}

  def __call__(self, images, training=False):
    del images, training
    return self.outputs


def _settings(**kwargs):
  return deeperlab_eval.PanopticEvalSettings(
      num_classes=4, thing_classes=(1, 3),
      inference=inference.InferenceSettings(thing_classes=(1, 3), radius=3.0),
      **kwargs)


def test_perfect_outputs_give_pq_pc_miou_of_one():
  category, instance = panoptic_helpers.scene()
  target_settings = pt.PanopticTargetSettings(thing_classes=(1, 3), radius=3.0)
  flipped = (category[:, ::-1].copy(), instance[:, ::-1].copy())
  outputs = [_perfect_outputs(c, i, 4, target_settings)
             for c, i in ((category, instance), flipped)]
  evaluator = deeperlab_eval.DeeperLabEvaluator(_OracleModel(outputs),
                                                _settings())
  batch = {'image': np.zeros((2, 41, 41, 3), np.float32),
           'category': np.stack([category, flipped[0]]),
           'instance': np.stack([instance, flipped[1]])}
  seen = []
  result = evaluator.evaluate([batch], on_image=lambda *a: seen.append(a[0]))
  assert seen == [0, 1]
  assert result.num_images == 2
  assert result.pq == pytest.approx(1.0)
  assert result.pc == pytest.approx(1.0)
  assert result.panoptic_quality['Things']['n'] == 2
  assert result.panoptic_quality['Stuff']['n'] == 2
  assert result.semantic['miou'] == pytest.approx(1.0)
  assert 'PQ 1.0000' in result.summary()


def test_a_merged_instance_lowers_things_pq_only():
  category, instance = panoptic_helpers.scene()
  target_settings = pt.PanopticTargetSettings(thing_classes=(1, 3), radius=3.0)
  outputs = _perfect_outputs(category, instance, 4, target_settings)
  evaluator = deeperlab_eval.DeeperLabEvaluator(_OracleModel([outputs]),
                                                _settings())
  # Groundtruth where the two class-1 instances are one: the prediction has
  # two segments, so class 1 gets at most one TP (the larger) + 1 FP.
  merged = np.where(instance == 2, 1, instance)
  result = evaluator.evaluate([{'image': np.zeros((1, 41, 41, 3), np.float32),
                                'category': category[None],
                                'instance': merged[None]}])
  assert result.panoptic_quality['Stuff']['pq'] == pytest.approx(1.0)
  assert result.panoptic_quality['Things']['pq'] < 1.0
  assert result.pq_per_class[3] == pytest.approx(1.0)
  # The merged segment (99 + 63 px) matches the 99-px prediction (IoU 0.61):
  # TP 1, FP 1, FN 0 -> SQ 0.61, RQ 1 / 1.5.
  assert result.pq_per_class[1] == pytest.approx(99 / 162 / 1.5, rel=1e-6)
  assert result.semantic['miou'] == pytest.approx(1.0)


def test_max_images_and_settings_checks():
  category, instance = panoptic_helpers.scene()
  target_settings = pt.PanopticTargetSettings(thing_classes=(1, 3), radius=3.0)
  outputs = _perfect_outputs(category, instance, 4, target_settings)
  evaluator = deeperlab_eval.DeeperLabEvaluator(
      _OracleModel([outputs, outputs]), _settings())
  batch = {'image': np.zeros((2, 41, 41, 3), np.float32),
           'category': np.stack([category] * 2),
           'instance': np.stack([instance] * 2)}
  assert evaluator.evaluate([batch, batch], max_images=3).num_images == 3
  with pytest.raises(ValueError, match='offset'):
    deeperlab_eval.PanopticEvalSettings(num_classes=300, thing_classes=(1,))
  with pytest.raises(ValueError, match='thing_classes'):
    deeperlab_eval.PanopticEvalSettings(num_classes=4, thing_classes=(4,))


def test_real_model_runs_end_to_end():
  model = deeperlab.build_deeperlab(deeperlab.DeeperLabOptions(
      num_classes=3, model_variant='wider_mobilenet_v2', crop_size=(65, 65),
      depth_multiplier=0.25))
  evaluator = deeperlab_eval.DeeperLabEvaluator(
      model, deeperlab_eval.PanopticEvalSettings(num_classes=3,
                                                 thing_classes=(1,)))
  category = np.zeros((1, 65, 65), np.int32)
  category[0, 10:30, 10:30] = 1
  instance = (category == 1).astype(np.int32)
  result = evaluator.evaluate([{'image': np.full((1, 65, 65, 3), 128.0,
                                                 np.float32),
                                'category': category, 'instance': instance}])
  assert result.num_images == 1
  assert 0.0 <= result.pq <= 1.0 and 0.0 <= result.pc <= 1.0
  assert len(result.pq_per_class) == 3


def _run_eval_script(*args):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'deeplab_tf.eval_deeperlab'] +
                        list(args), capture_output=True, text=True, env=env,
                        timeout=300)


@pytest.mark.slow
def test_eval_script_on_a_checkpoint_and_records(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import cv2  # pylint: disable=g-import-not-at-top
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import panoptic_records  # pylint: disable=g-import-not-at-top
  from deeplab_tf.data import records  # pylint: disable=g-import-not-at-top
  descriptor = tmp_path / 'toy.json'
  descriptor.write_text(json.dumps({
      'name': 'toy_panoptic', 'num_classes': 3, 'ignore_label': 255,
      'splits_to_sizes': {'val': 2}, 'thing_classes': [2],
      'panoptic_label_divisor': 1000}))
  record_dir = tmp_path / 'records'
  record_dir.mkdir()
  rng = np.random.default_rng(0)
  with tf.io.TFRecordWriter(records.shard_filename(str(record_dir), 'val', 0,
                                                   1)) as writer:
    for index, (height, width) in enumerate(((40, 50), (33, 61))):
      category = np.zeros((height, width), np.int32)
      instance = np.zeros((height, width), np.int32)
      category[20:, :] = 1
      category[5:15, 5:20] = 2
      instance[5:15, 5:20] = 1
      ok, png = cv2.imencode('.png', rng.integers(0, 255, (height, width, 3),
                                                  dtype=np.uint8))
      assert ok
      writer.write(panoptic_records.panoptic_to_example(
          png.tobytes(), 'toy%d' % index, height, width,
          panoptic_records.encode_panoptic(category, instance, 1000))
                   .SerializeToString())
  options = deeperlab.DeeperLabOptions(
      num_classes=3, model_variant='wider_mobilenet_v2', crop_size=(65, 65),
      depth_multiplier=0.25, aspp_convs_filters=32)
  model = deeperlab.build_deeperlab(options)
  logdir = tmp_path / 'train'
  logdir.mkdir()
  (logdir / 'model_options.json').write_text(json.dumps(options.to_dict()))
  tf.train.Checkpoint(model=checkpoints.NamedVariables(model)).save(
      str(logdir / 'ckpt'))
  vis = tmp_path / 'vis'
  run = _run_eval_script(
      '--checkpoint_dir=%s' % logdir, '--dataset=%s' % descriptor,
      '--dataset_dir=%s' % record_dir, '--eval_split=val',
      '--vis_dir=%s' % vis)   # thing classes and divisor from the JSON
  assert run.returncode == 0, run.stderr[-3000:]
  assert 'on 2 images' in run.stdout and 'PQ' in run.stdout
  metrics = json.loads((logdir / 'eval_panoptic' /
                        'panoptic_metrics-1.json').read_text())
  assert metrics['num_images'] == 2 and metrics['step'] == 1
  assert 0.0 <= metrics['panoptic_quality']['All']['pq'] <= 1.0
  assert len(metrics['pq_per_class']) == 3
  picture = cv2.imread(str(vis / '000001_panoptic_gt.png'))
  assert picture.shape == (33, 61, 3)
  assert (vis / '000000_panoptic.png').exists()
  # A folder without a checkpoint: one ERROR line, exit 1.
  run = _run_eval_script('--checkpoint_dir=%s' % tmp_path,
                         '--dataset=%s' % descriptor,
                         '--dataset_dir=%s' % record_dir, '--eval_split=val',
                         '--thing_classes=2', '--panoptic_label_divisor=1000')
  assert run.returncode == 1 and 'ERROR:' in run.stderr


def test_predicted_instances_are_renumbered_per_category():
  """Image-wide parser ids (here up to 300) fit the metric's per-category ids."""
  from deeplab_tf.evaluation import deeperlab_eval as de  # pylint: disable=g-import-not-at-top
  category = np.array([[1, 1, 2, 2, 0], [1, 2, 2, 1, 0]])
  instance = np.array([[300, 300, 7, 9, 0], [5, 7, 299, 5, 0]])
  np.testing.assert_array_equal(
      de.compact_instance_ids(category, instance),
      [[2, 2, 1, 2, 0], [1, 1, 3, 1, 0]])
  # The same segments: pairs equal exactly where the original pairs are equal.
  before = category * 1000 + instance
  after = category * 1000 + de.compact_instance_ids(category, instance)
  assert (np.equal.outer(before.ravel(), before.ravel())
          == np.equal.outer(after.ravel(), after.ravel())).all()
  assert de.default_id_layout(19, 1000) == (1000, 65536)
  assert de.default_id_layout(134, 256) == (256, 65536)
  assert de.default_id_layout(134, 1000) == (1000, 262144)
  assert de.default_id_layout(19, 1000, max_instances=64) == (64, 65536)
