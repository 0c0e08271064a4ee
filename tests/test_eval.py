"""Evaluation: whole-image padding, Evaluator, reports, continuous mode, the eval script."""
import csv
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.core import geometry
from deeplab_tf.data import datasets_info
from deeplab_tf.data import pipeline
from deeplab_tf.data import preprocess
from deeplab_tf.evaluation import report
from deeplab_tf.evaluation import watch
from deeplab_tf.evaluation.evaluate import EvalResult
from deeplab_tf.evaluation.evaluate import EvalSettings
from deeplab_tf.evaluation.evaluate import Evaluator
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import build_predictor
from record_helpers import write_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 3


def _options(**kwargs):
  base = dict(model_variant='mobilenet_v2', depth_multiplier=0.25,
              output_stride=16, crop_size=(65, 65),
              outputs_to_num_classes={'semantic': NUM_CLASSES})
  base.update(kwargs)
  return ModelOptions(**base)


def _labels(shapes, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for h, w in shapes:
    label = rng.integers(0, NUM_CLASSES, (h, w)).astype(np.uint8)
    label[:2, :3] = 255
    out.append(label)
  return out


def _descriptor(count):
  return datasets_info.DatasetDescriptor('tiny', {'val': count}, NUM_CLASSES,
                                         255, class_names=('a', 'b', 'c'))


def _random_checkpoint(options, prefix, seed=1):
  """A TF1 (model-zoo style) checkpoint with random, non-trivial weights."""
  model = build_predictor(options)
  rng = np.random.default_rng(seed)
  for v in model.weights:
    shape = tuple(v.shape)
    if len(shape) == 4:   # He-scaled kernels keep activations varied
      fan_in = (np.prod(shape[:2]) if 'depthwise' in v.path
                else np.prod(shape[:3]))
      value = rng.normal(0, np.sqrt(2.0 / fan_in), shape)
    elif 'moving_variance' in v.path:
      value = rng.uniform(0.5, 1.5, shape)
    elif 'gamma' in v.path:
      value = rng.uniform(0.8, 1.2, shape)
    else:
      value = rng.normal(0, 0.1, shape)
    v.assign(value.astype(np.float32))
  checkpoints.save_tf1_checkpoint(model, prefix)
  return model


def _numpy_confusion(labels, predictions, num_classes, ignore=255):
  matrix = np.zeros((num_classes, num_classes), np.int64)
  for label, pred in zip(labels, predictions):
    keep = label != ignore
    np.add.at(matrix, (label[keep].astype(np.int64),
                       pred[keep].astype(np.int64)), 1)
  return matrix


# --- padding -----------------------------------------------------------------

@pytest.mark.parametrize('size,multiple,expected', [
    (1, 16, 1), (17, 16, 17), (18, 16, 33), (360, 16, 369), (480, 8, 481),
    (513, 16, 513), (514, 16, 529), (37, 1, 37)])
def test_padded_size(size, multiple, expected):
  assert int(geometry.next_aligned_size(tf.constant(size), multiple)) == expected
  assert (expected - 1) % multiple == 0 and expected >= size


def test_whole_image_batches_pad_to_stride_with_mean_and_ignore(tmp_path):
  labels = _labels([(37, 53), (20, 70)])
  write_records(str(tmp_path), 'val', labels)
  settings = pipeline.InputSettings(crop_size=None, model_variant='xception_65',
                                    pad_multiple=16, keep_original_image=True)
  batch = next(iter(pipeline.build_dataset(
      _descriptor(2), 'val', str(tmp_path), settings, batch_size=2,
      is_training=False, deterministic=True)))
  assert 'valid' not in batch
  image = batch['image'].numpy()
  label = batch['label'].numpy()[..., 0]
  assert image.shape == (2, 49, 81, 3)       # 37 -> 49, 70 -> 81 at stride 16
  mean = np.array(preprocess.mean_pixel('xception_65'), np.float32)
  original = batch['original_image'].numpy()
  for i, (h, w) in enumerate([(37, 53), (20, 70)]):
    np.testing.assert_array_equal(image[i, :h, :w], original[i, :h, :w])
    np.testing.assert_array_equal(label[i, :h, :w], labels[i])
    pad = np.ones(image.shape[1:3], bool)
    pad[:h, :w] = False
    np.testing.assert_array_equal(image[i][pad], np.broadcast_to(
        mean, (pad.sum(), 3)))
    assert (label[i][pad] == 255).all()
  assert list(batch['height'].numpy()) == [37, 20]


def test_whole_image_padding_needs_eval():
  settings = pipeline.InputSettings(crop_size=None)
  with pytest.raises(pipeline.InputError, match='evaluation only'):
    pipeline.finish_pipeline(tf.data.Dataset.range(1), None, settings, 3, 255,
                             1, is_training=True)
  with pytest.raises(pipeline.InputError, match='pad_multiple'):
    pipeline.InputSettings(crop_size=None, pad_multiple=0)


# --- evaluator ------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp('eval')
  shapes = [(60, 60), (49, 33), (65, 41)]
  labels = _labels(shapes)
  write_records(str(root / 'records'), 'val', labels)
  options = _options()
  _random_checkpoint(options, str(root / 'zoo' / 'model.ckpt'))
  return {'root': root, 'labels': labels, 'options': options,
          'records': str(root / 'records'),
          'checkpoint': str(root / 'zoo' / 'model.ckpt')}


def _images(record_dir):
  out = []
  for record in tf.data.TFRecordDataset(
      pipeline.list_shards(record_dir, 'val')):
    out.append(pipeline.decode_record(record)['image'].numpy())
  return out


def test_evaluator_equals_predictor_and_numpy(tiny):
  settings = EvalSettings(batch_size=2, crop_size=(65, 65))
  evaluator = Evaluator(tiny['options'], settings, _descriptor(3),
                        tiny['records'])
  result = evaluator.evaluate(tiny['checkpoint'])
  assert result.num_images == 3 and evaluator.num_images == 3
  # Independent path: predictor on each image padded by hand to 65x65.
  predictor = build_predictor(tiny['options'])
  checkpoints.restore_model(predictor, tiny['checkpoint'])
  mean = np.array(preprocess.mean_pixel('mobilenet_v2'), np.float32)
  predictions = []
  for image in _images(tiny['records']):
    h, w = image.shape[:2]
    padded = np.tile(mean, (65, 65, 1))
    padded[:h, :w] = image
    semantic = predictor(padded[np.newaxis], training=False)['semantic']
    predictions.append(semantic.numpy()[0, :h, :w])
  expected = _numpy_confusion(tiny['labels'], predictions, NUM_CLASSES)
  np.testing.assert_array_equal(result.confusion_matrix, expected)
  assert len(set(np.concatenate([p.ravel() for p in predictions]))) > 1
  tp = np.diag(expected)
  union = expected.sum(0) + expected.sum(1) - tp
  assert result.miou == pytest.approx(np.mean(tp / union), abs=1e-12)
  assert result.pixel_accuracy == pytest.approx(tp.sum() / expected.sum())


def test_auto_crop_equals_fixed_crop_when_the_padding_agrees(tiny):
  """60x60 .. 65x41 pad to 65x65 at stride 16 both ways: identical results."""
  descriptor = _descriptor(3)
  fixed = Evaluator(tiny['options'], EvalSettings(crop_size=(65, 65)),
                    descriptor, tiny['records']).evaluate(tiny['checkpoint'])
  auto = Evaluator(tiny['options'], EvalSettings(crop_size=None, batch_size=3),
                   descriptor, tiny['records']).evaluate(tiny['checkpoint'])
  np.testing.assert_array_equal(auto.confusion_matrix, fixed.confusion_matrix)


def test_auto_crop_takes_odd_sizes_a_fixed_crop_refuses(tmp_path, tiny):
  labels = _labels([(97, 23), (31, 130)], seed=3)
  write_records(str(tmp_path), 'val', labels)
  descriptor = _descriptor(2)
  result = Evaluator(tiny['options'], EvalSettings(crop_size=None),
                     descriptor, str(tmp_path)).evaluate(tiny['checkpoint'])
  assert result.confusion_matrix.sum() == sum((l != 255).sum() for l in labels)
  with pytest.raises(tf.errors.InvalidArgumentError, match='eval_crop_size'):
    Evaluator(tiny['options'], EvalSettings(crop_size=(65, 65)), descriptor,
              str(tmp_path)).evaluate(tiny['checkpoint'])


def test_multi_scale_flip_evaluation_uses_the_multi_scale_predictor(tiny):
  settings = EvalSettings(crop_size=(65, 65), eval_scales=(0.5, 1.0),
                          add_flipped_images=True)
  assert settings.tag == 'miou_0.5_1.0_flipped'
  evaluator = Evaluator(tiny['options'], settings, _descriptor(3),
                        tiny['records'])
  result = evaluator.evaluate(tiny['checkpoint'])
  predictor = build_predictor(tiny['options'], eval_scales=(0.5, 1.0),
                              add_flipped_images=True)
  checkpoints.restore_model(predictor, tiny['checkpoint'])
  mean = np.array(preprocess.mean_pixel('mobilenet_v2'), np.float32)
  predictions = []
  for image in _images(tiny['records']):
    h, w = image.shape[:2]
    padded = np.tile(mean, (65, 65, 1))
    padded[:h, :w] = image
    predictions.append(predictor(padded[np.newaxis])['semantic'].numpy()[
        0, :h, :w])
  np.testing.assert_array_equal(
      result.confusion_matrix,
      _numpy_confusion(tiny['labels'], predictions, NUM_CLASSES))


def test_single_scale_with_flip_takes_the_original_single_scale_path(tiny):
  """Original eval.py: --eval_scales=1.0 runs predict_labels, which does not
  read --add_flipped_images; the metric is still named ..._flipped."""
  from deeplab_tf.export import PredictorSpec  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models.deeplab import original_inference_path  # pylint: disable=g-import-not-at-top
  assert original_inference_path([1.0], True) == ((1.0,), False)
  assert original_inference_path((0.5, 1.0), True) == ((0.5, 1.0), True)
  assert original_inference_path((1.25,), True) == ((1.25,), True)
  assert PredictorSpec(tiny['options'], (1.0,), True).add_flipped_images is False
  settings = EvalSettings(crop_size=(65, 65), add_flipped_images=True)
  assert settings.tag == 'miou_1.0_flipped'
  evaluator = Evaluator(tiny['options'], settings, _descriptor(3),
                        tiny['records'])
  assert 'merged_logits' in evaluator.predictor.output   # predict_labels
  assert 'averaged_prob' not in evaluator.predictor.output
  flipped = Evaluator(tiny['options'], EvalSettings(crop_size=(65, 65)),
                      _descriptor(3), tiny['records'])
  np.testing.assert_array_equal(
      evaluator.evaluate(tiny['checkpoint']).confusion_matrix,
      flipped.evaluate(tiny['checkpoint']).confusion_matrix)


def test_multi_scale_probabilities_are_soft_maxed_again_as_the_original(tiny):
  """predict_labels_multi_scale: argmax of the mean of the per-scale
  softmaxes; its probabilities output is softmax(that mean)."""
  predictor = build_predictor(tiny['options'], eval_scales=(0.5, 1.0),
                              add_flipped_images=True)
  checkpoints.restore_model(predictor, tiny['checkpoint'])
  image = np.random.default_rng(3).uniform(0, 255, (1, 65, 65, 3)).astype(
      np.float32)
  out = {k: v.numpy() for k, v in predictor(image).items()}
  # (The mean itself is pinned by the conformance fixtures' multi-scale
  # + flip format: tests/test_predictor.py.)
  mean = out['averaged_prob']
  np.testing.assert_allclose(mean.sum(-1), 1.0, atol=1e-5)
  e = np.exp(mean - mean.max(-1, keepdims=True))
  np.testing.assert_allclose(out['semantic_prob'],
                             e / e.sum(-1, keepdims=True), atol=1e-6)
  np.testing.assert_array_equal(out['semantic'], mean.argmax(-1))
  # Soft-maxed twice, the probabilities are much flatter than the mean.
  assert out['semantic_prob'].max() < mean.max()


def test_evaluator_refuses_a_model_of_another_class_count(tiny):
  with pytest.raises(ValueError, match='3 classes but dataset .* has 5'):
    Evaluator(tiny['options'], EvalSettings(),
              datasets_info.DatasetDescriptor('five', {'val': 3}, 5, 255),
              tiny['records'])


# --- metrics parity and reports ---------------------------------------------

def test_hand_made_confusion_parity():
  """mIoU as tf.metrics.mean_iou, computed independently by hand."""
  labels = np.array([[0, 0, 1, 1, 2, 255]])
  preds = np.array([[0, 1, 1, 1, 0, 2]])
  # class 0: tp 1, gt 2, pred 2 -> 1/3; class 1: tp 2, gt 2, pred 3 -> 2/3;
  # class 2: tp 0, gt 1, pred 0 -> 0; class 3: absent -> left out.
  matrix = _numpy_confusion(labels, preds, 4)
  result = EvalResult(matrix, ['a', 'b', 'c', 'd'], 'x/ckpt-7', 7, 'val', 1,
                      1.0)
  assert result.miou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
  assert result.pixel_accuracy == pytest.approx(3 / 5)
  original = result.original_class_iou()
  assert original[:3] == pytest.approx([1 / 3, 2 / 3, 0])
  assert np.isnan(original[3])
  # A class only predicted (no ground truth): 0 in mean_iou, NaN per class.
  only_predicted = EvalResult(np.array([[1, 1], [0, 0]]), ['a', 'b'], 'p', None,
                              'val', 1, 1.0)
  assert only_predicted.miou == pytest.approx(0.25)
  assert np.isnan(only_predicted.original_class_iou()[1])


def test_report_files_and_summaries(tmp_path):
  matrix = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
  result = EvalResult(matrix, ['road', 'car', 'sky'], '/t/ckpt-120', 120,
                      'val', 4, 2.0, tag='miou_1.0')
  paths = report.write_files(result, str(tmp_path))
  record = json.load(open(tmp_path / 'metrics-120.json'))
  assert record['miou'] == pytest.approx((5 / 8 + 7 / 10) / 2)
  assert record['confusion_matrix'] == matrix.tolist()
  assert record['classes'][2]['iou'] is None
  assert record['classes'][1] == {
      'id': 1, 'name': 'car', 'iou': pytest.approx(0.7),
      'true_positives': 7, 'ground_truth_pixels': 9, 'predicted_pixels': 8}
  assert json.load(open(tmp_path / 'metrics_latest.json')) == record
  rows = list(csv.reader(open(paths['confusion_matrix'])))
  assert rows[0][1:] == ['road', 'car', 'sky']
  assert rows[2] == ['car', '2', '7', '0']
  rows = list(csv.reader(open(paths['per_class_iou'])))
  assert rows[1][:3] == ['0', 'road', '0.625000'] and rows[3][2] == ''
  writer = tf.summary.create_file_writer(str(tmp_path / 'tb'))
  report.write_summaries(result, writer)
  tags = {}
  for path in glob.glob(str(tmp_path / 'tb' / 'events*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags[value.tag] = (event.step, value)
  assert tags['eval/miou_1.0_overall'][0] == 120
  assert float(tf.make_ndarray(tags['eval/miou_1.0_overall'][1].tensor)) == (
      pytest.approx(record['miou']))
  assert float(tf.make_ndarray(tags['eval/miou_1.0_class_1'][1].tensor)) == (
      pytest.approx(0.7))
  assert np.isnan(tf.make_ndarray(tags['eval/miou_1.0_class_2'][1].tensor))
  assert 'eval/confusion_matrix_row_normalised' in tags
  assert 'eval/per_class_iou' in tags
  assert 'lowest: road 0.625' in report.summary_line(result)


# --- continuous mode --------------------------------------------------------------

def _save(directory, step):
  v = tf.Variable(float(step))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), directory,
                                       max_to_keep=10, checkpoint_name='ckpt')
  return manager.save(checkpoint_number=step)


def test_watch_yields_new_checkpoints_and_stops_when_training_is_done(tmp_path):
  d = str(tmp_path)
  first = _save(d, 10)
  sleeps = []
  saved = {'n': 0}

  def fake_sleep(seconds):
    sleeps.append(seconds)
    saved['n'] += 1
    if saved['n'] == 1:
      _save(d, 20)
    elif saved['n'] == 3:
      last = _save(d, 30)
      checkpoints.folders.write_training_done(d, 30, last)

  seen = list(watch.checkpoints_to_evaluate(d, interval_secs=5, sleep=fake_sleep))
  assert [checkpoints.checkpoint_step(p) for p in seen] == [10, 20, 30]
  assert seen[0] == first
  assert checkpoints.folders.read_training_done(d)['step'] == 30


def test_watch_limits_and_timeout(tmp_path):
  d = str(tmp_path)
  _save(d, 1)
  assert len(list(watch.checkpoints_to_evaluate(
      d, 0, max_evaluations=1, sleep=lambda s: None))) == 1
  # No new checkpoint: the timeout ends the loop after the first.
  seen = list(watch.checkpoints_to_evaluate(d, 0, timeout_secs=0.0,
                                            sleep=lambda s: None))
  assert len(seen) == 1
  # A prefix is yielded once.
  prefix = tf.train.latest_checkpoint(d)
  assert list(watch.checkpoints_to_evaluate(prefix)) == [prefix]


def test_require_checkpoint_errors(tmp_path):
  (tmp_path / 'notes.txt').write_text('x')
  with pytest.raises(checkpoints.NoCheckpointError, match='notes.txt'):
    checkpoints.find_checkpoint(str(tmp_path))
  with pytest.raises(checkpoints.NoCheckpointError, match='neither a folder'):
    checkpoints.find_checkpoint(str(tmp_path / 'model.ckpt-5'))


# --- the script ---------------------------------------------------------------------

def _run_eval(*args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, '-m', 'deeplab_tf.eval'] + list(args),
                        cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=timeout)


def _descriptor_file(path, count=3):
  path.write_text(json.dumps({'name': 'tiny', 'num_classes': NUM_CLASSES,
                              'ignore_label': 255,
                              'splits_to_sizes': {'val': count},
                              'class_names': ['a', 'b', 'c']}))
  return str(path)


@pytest.mark.slow
def test_eval_script_end_to_end(tmp_path, tiny):
  dataset = _descriptor_file(tmp_path / 'tiny.json')
  model_args = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.25']
  proc = _run_eval('--dataset', dataset, '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', tiny['checkpoint'],
                   '--eval_logdir', str(tmp_path / 'eval'),
                   '--eval_crop_size=auto', '--eval_batch_size=2',
                   '--max_number_of_evaluations=1', *model_args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'miou_1.0 = ' in proc.stdout
  record = json.load(open(tmp_path / 'eval' / 'metrics-final.json'))
  expected = Evaluator(tiny['options'], EvalSettings(crop_size=None,
                                                    batch_size=2),
                       _descriptor(3), tiny['records']).evaluate(
                           tiny['checkpoint'])
  assert record['confusion_matrix'] == expected.confusion_matrix.tolist()
  assert record['num_images'] == 3
  assert glob.glob(str(tmp_path / 'eval' / 'events.out.tfevents.*'))

  # Errors: a folder without checkpoint, a split the dataset lacks.
  empty = tmp_path / 'empty'
  empty.mkdir()
  proc = _run_eval('--dataset', dataset, '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', str(empty), '--eval_logdir',
                   str(tmp_path / 'e2'), '--max_number_of_evaluations=1',
                   *model_args)
  assert proc.returncode == 1 and 'No checkpoint in' in proc.stderr
  proc = _run_eval('--dataset', dataset, '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', tiny['checkpoint'], '--eval_logdir',
                   str(tmp_path / 'e3'), '--eval_split=test',
                   '--max_number_of_evaluations=1', *model_args)
  assert proc.returncode == 1 and "'test'" in proc.stderr
  proc = _run_eval('--dataset', dataset, '--dataset_dir', tiny['records'],
                   '--checkpoint_dir', tiny['checkpoint'], '--eval_logdir',
                   str(tmp_path / 'e4'), '--eval_crop_size=65',
                   *model_args)
  assert proc.returncode != 0 and 'auto' in proc.stderr


def test_evaluation_with_the_dense_crf(tiny):
  from deeplab_tf import crf
  params = crf.get_params('deeplab_v2_resnet101_voc', num_iterations=3)
  settings = EvalSettings(crop_size=(65, 65), crf=params)
  assert settings.tag == 'miou_1.0_crf'
  result = Evaluator(tiny['options'], settings, _descriptor(3),
                     tiny['records']).evaluate(tiny['checkpoint'])
  predictor = build_predictor(tiny['options'])
  checkpoints.restore_model(predictor, tiny['checkpoint'])
  mean = np.array(preprocess.mean_pixel('mobilenet_v2'), np.float32)
  predictions, plain = [], []
  for image in _images(tiny['records']):
    h, w = image.shape[:2]
    padded = np.tile(mean, (65, 65, 1))
    padded[:h, :w] = image
    out = predictor(padded[np.newaxis])
    refined = crf.dense_crf_tf(np.round(padded).astype(np.uint8),
                               out['semantic_prob'][0], params)
    predictions.append(np.argmax(refined.numpy(), -1)[:h, :w])
    plain.append(out['semantic'].numpy()[0, :h, :w])
  np.testing.assert_array_equal(
      result.confusion_matrix,
      _numpy_confusion(tiny['labels'], predictions, NUM_CLASSES))
  # The CRF changed something (else this test would not test it).
  assert any((p != q).any() for p, q in zip(predictions, plain))
