"""Export: SavedModel, frozen graph, TFLite, the .keras file, script errors, benchmark.

One tiny model (MobileNetV2 x0.25, output stride 16, 4 classes, crop 65x65)
with calibrated BatchNorm statistics, so labels vary over the image, is
written as a TF1 "model-zoo" checkpoint and as one of our training
checkpoints. The script exports it once (SavedModel + float/int8 TFLite +
.keras) and to the original's frozen graph (.pb); the results are compared
with an independent reference: the original eval preprocessing
(``preprocess_image_and_label``) and a predictor built for the padded size,
as the original export graph computes it. Reference case A (xception_65)
goes through the frozen graph too.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf import checkpoints
from deeplab_tf.core import geometry
from deeplab_tf.data import preprocess
from deeplab_tf.export import PredictorSpec
from deeplab_tf.export import ServingModule
from deeplab_tf.export import ServingSettings
from deeplab_tf.export import build_and_restore
from deeplab_tf.export import serving_model_options
from deeplab_tf.export import tflite as tflite_lib
from deeplab_tf.models import ModelOptions
from deeplab_tf.models import build_model
from deeplab_tf.models import build_predictor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CROP = (65, 65)
NUM_CLASSES = 4
OPTIONS = ModelOptions(model_variant='mobilenet_v2', depth_multiplier=0.25,
                       output_stride=16,
                       outputs_to_num_classes={'semantic': NUM_CLASSES})
MODEL_FLAGS = ['--model_variant=mobilenet_v2', '--depth_multiplier=0.25',
               '--output_stride=16', '--crop_size=65', '--crop_size=65']
# Probabilities of the reference and the export agree to float rounding.
PROB_ATOL = 2e-5
# int8 TFLite labels vs the float predictor on this tiny random-weight model
# (8-channel layers, no training): measured 0.80-0.86 of the pixels agree,
# where the most frequent class covers 0.34-0.44. A trained model quantises
# better; this bound catches a broken conversion (wrong input range,
# padding, outputs), not a small accuracy loss.
INT8_MIN_AGREEMENT = 0.65


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=REPO)


def _blocks(rng, height, width, channels=3):
  """uint8 image of coloured blocks with noise (labels vary between blocks)."""
  colours = rng.uniform(0, 255, (4, 4, channels))
  rows = np.arange(height) * 4 // height
  cols = np.arange(width) * 4 // width
  image = colours[rows][:, cols] + rng.normal(0, 10, (height, width, channels))
  return np.clip(image, 0, 255).astype(np.uint8)


def _calibrated_model(options=OPTIONS):
  """The tiny model with BatchNorm statistics of real activations.

  With initial statistics every pixel gets the same class. Here each BN's
  moving mean/variance are those of its input on four block images (one
  training-mode pass with momentum 0); variances are floored at their
  layer's median, so near-constant channels are not blown up (which makes
  the model fragile, int8 above all); the image-pooling branch, constant over
  an image, is damped; and the logits biases are shifted so that the classes
  are about equally frequent on block images.
  """
  rng = np.random.default_rng(0)
  model = build_model(options.replace(crop_size=CROP), fine_tune_batch_norm=True)
  batch_norms = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
  for layer in batch_norms:
    layer.momentum = 0.0
    n = layer.gamma.shape[0]
    layer.gamma.assign(rng.uniform(0.5, 1.5, n))
    layer.beta.assign(rng.normal(0, 0.3, n))
  images = np.stack([_blocks(rng, *CROP) for _ in range(4)]).astype(np.float32)
  model(images, training=True)
  for layer in batch_norms:
    variance = layer.moving_variance.numpy()
    layer.moving_variance.assign(np.maximum(variance, np.median(variance)))
  pooling_bn = model.get_layer('image_pooling.BatchNorm')
  pooling_bn.gamma.assign(pooling_bn.gamma * 0.2)
  pooling_bn.beta.assign(pooling_bn.beta * 0.2)
  images = np.stack([_blocks(rng, *CROP) for _ in range(8)]).astype(np.float32)
  logits = model(images, training=False)['merged_logits'].numpy()
  logits_layer = model.get_layer('logits.semantic')
  logits_layer.bias.assign(logits_layer.bias - logits.mean(axis=(0, 1, 2)))
  return model


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return tmp_path_factory.mktemp('export')


@pytest.fixture(scope='module')
def zoo_checkpoint(workdir):
  """A TF1 name-based checkpoint folder, as an extracted model-zoo tarball.

  Like the tarballs it has model.ckpt.{index,data-*} and no "checkpoint"
  state file; the export finds the single checkpoint in it.
  """
  model = _calibrated_model()
  checkpoints.save_tf1_checkpoint(model, str(workdir / 'zoo' / 'model.ckpt'))
  os.remove(workdir / 'zoo' / 'checkpoint')
  return str(workdir / 'zoo')


def _prefix(folder):
  return os.path.join(folder, 'model.ckpt')


@pytest.fixture(scope='module')
def our_checkpoint(workdir, zoo_checkpoint):
  """The same weights as one of our training checkpoints (+ model_options.json)."""
  model = build_model(OPTIONS)
  checkpoints.restore_model(model, _prefix(zoo_checkpoint))
  folder = workdir / 'train_logdir'
  tf.train.Checkpoint(model=checkpoints.NamedVariables(model)).save(
      str(folder / 'ckpt'))
  (folder / 'model_options.json').write_text(json.dumps(OPTIONS.to_dict()))
  return str(folder)


@pytest.fixture(scope='module')
def calibration_files(workdir):
  folder = workdir / 'calibration'
  folder.mkdir()
  rng = np.random.default_rng(7)
  for i in range(6):
    # Some larger than the crop: they are cropped for calibration.
    image = _blocks(rng, 50 + 10 * i, 90 - 5 * i)
    tf.io.write_file(str(folder / ('%d.png' % i)), tf.io.encode_png(image))
  return str(folder / '*.png')


def _export(*args, timeout=300):
  proc = subprocess.run(
      [sys.executable, '-m', 'deeplab_tf.export_model'] + list(args),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
  return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def export_dir(workdir, zoo_checkpoint, calibration_files):
  path = str(workdir / 'exported')
  rc, out = _export('--checkpoint_path=' + zoo_checkpoint,
                    '--export_path=' + path, '--num_classes=4',
                    '--export_formats=saved_model,tflite,keras',
                    '--tflite_quantization=float,int8',
                    '--tflite_representative_images=' + calibration_files,
                    '--tflite_num_calibration_images=6',
                    '--save_inference_graph', *MODEL_FLAGS)
  assert rc == 0, out[-4000:]
  assert 'loaded' in out and 'TF1 checkpoint' in out, out[-2000:]
  return path


_PREDICTORS = {}


def _predictor(zoo_checkpoint, crop_size):
  """A predictor built for ``crop_size`` (the original's model), cached."""
  key = (zoo_checkpoint, crop_size)
  if key not in _PREDICTORS:
    model = build_predictor(OPTIONS.replace(crop_size=crop_size))
    checkpoints.restore_model(model, _prefix(zoo_checkpoint))
    _PREDICTORS[key] = model
  return _PREDICTORS[key]


def _reference(zoo_checkpoint, image, settings=ServingSettings(CROP),
               padded_to=None):
  """The original export graph on one image, from the original eval steps.

  ``preprocess_image_and_label`` (resize_to_range, mean padding to the crop),
  a predictor built for the padded size, crop, nearest (labels) and
  bilinear (probabilities) align_corners resize back to the input size.
  ``padded_to`` pads further, for images larger than the crop.
  """
  resized, padded, _ = preprocess.preprocess_image_and_label(
      image, None, settings.crop_size[0], settings.crop_size[1],
      min_resize_value=settings.min_resize_value,
      max_resize_value=settings.max_resize_value,
      resize_factor=settings.resize_factor, is_training=False,
      model_variant=OPTIONS.model_variant)
  if padded_to is not None:
    padded = preprocess.pad_to_bounding_box(
        padded, 0, 0, padded_to[0], padded_to[1],
        tf.constant([[[127.5, 127.5, 127.5]]]))
  model = _predictor(zoo_checkpoint, tuple(padded.shape[:2]))
  out = model(padded[tf.newaxis], training=False)
  h, w = resized.shape[:2]
  labels = tf.cast(out['semantic'][:, :h, :w, tf.newaxis], tf.int32)
  probs = out['semantic_prob'][:, :h, :w]
  size = image.shape[:2]
  labels = tf.raw_ops.ResizeNearestNeighbor(images=labels, size=size,
                                            align_corners=True)
  probs = tf.raw_ops.ResizeBilinear(images=probs, size=size,
                                    align_corners=True)
  return labels.numpy()[0, ..., 0], probs.numpy()[0]


def _assert_same_labels(labels, ref_labels, ref_probs, max_gap=1e-4):
  """Labels equal, except where the reference's top two classes tie."""
  assert labels.shape == ref_labels.shape
  differ = labels != ref_labels
  top2 = np.sort(ref_probs, axis=-1)[..., -2:]
  near_tie = (top2[..., 1] - top2[..., 0]) < max_gap
  assert not np.any(differ & ~near_tie), (
      '%d labels differ away from ties' % np.sum(differ & ~near_tie))
  assert differ.mean() < 0.001


_PLAIN_TF_RUNNER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_path, inputs_path, outputs_path = sys.argv[1:4]
    loaded = tf.saved_model.load(export_path)
    serve = loaded.signatures['serving_default']
    any_channels = loaded.signatures['serving_any_channels']
    inputs = np.load(inputs_path)
    results, info = {}, {}
    for name in inputs.files:
      fn = serve if inputs[name].shape[-1] == 3 else any_channels
      out = fn(image=tf.constant(inputs[name]))
      for key, value in out.items():
        results[name + '/' + key] = value.numpy()
        info[name + '/' + key] = value.dtype.name
    try:
      serve(image=tf.constant(inputs['grey']))
      info['grey_error'] = None
    except Exception as e:  # the signature only takes 3 channels
      info['grey_error'] = type(e).__name__ + ': ' + str(e)[:500]
    info['signature_inputs'] = {
        k: [str(v.dtype.name), v.shape.as_list()]
        for k, v in serve.structured_input_signature[1].items()}
    info['deeplab_tf_imported'] = any(m.startswith('deeplab_tf')
                                      for m in sys.modules)
    np.savez(outputs_path, **results)
    with open(outputs_path + '.json', 'w') as f:
      json.dump(info, f)
    ''')


def test_saved_model_in_plain_tensorflow_matches_the_original_graph(
    export_dir, zoo_checkpoint, workdir):
  rng = np.random.default_rng(1)
  odd = np.stack([_blocks(rng, 37, 53), _blocks(rng, 37, 53)])
  inputs = {'odd_batch2': odd,
            'crop_size': _blocks(rng, 65, 65)[np.newaxis],
            'larger_than_crop': _blocks(rng, 70, 90)[np.newaxis],
            'grey': _blocks(rng, 37, 53, 1)[np.newaxis],
            'rgba': _blocks(rng, 37, 53, 4)[np.newaxis]}
  np.savez(workdir / 'inputs.npz', **inputs)
  runner = workdir / 'plain_tf_runner.py'
  runner.write_text(_PLAIN_TF_RUNNER)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  proc = subprocess.run(
      [sys.executable, str(runner), export_dir, str(workdir / 'inputs.npz'),
       str(workdir / 'outputs.npz')], cwd=str(workdir), env=env,
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  out = np.load(workdir / 'outputs.npz')
  info = json.loads((workdir / 'outputs.npz.json').read_text())
  assert info['deeplab_tf_imported'] is False
  assert info['signature_inputs'] == {'image': ['uint8', [None, None, None, 3]]}
  assert info['odd_batch2/semantic'] == 'int32'
  assert info['odd_batch2/semantic_probabilities'] == 'float32'
  assert out['odd_batch2/semantic'].shape == (2, 37, 53)
  assert out['odd_batch2/semantic_probabilities'].shape == (2, 37, 53, 4)
  # A grey image is refused by serving_default, saying what to do instead.
  assert info['grey_error'].startswith('InvalidArgumentError')
  assert 'use the serving_any_channels signature' in info['grey_error']

  cases = [('odd_batch2', 0, None), ('odd_batch2', 1, None),
           ('crop_size', 0, None),
           # 70x90 > 65x65: padded to the next k * 16 + 1, i.e. 81x97.
           ('larger_than_crop', 0, (81, 97))]
  all_labels = []
  for name, index, padded_to in cases:
    ref_labels, ref_probs = _reference(zoo_checkpoint, inputs[name][index],
                                       padded_to=padded_to)
    labels = out[name + '/semantic'][index]
    probs = out[name + '/semantic_probabilities'][index]
    np.testing.assert_allclose(probs, ref_probs, atol=PROB_ATOL)
    _assert_same_labels(labels, ref_labels, ref_probs)
    all_labels.append(labels)
  # The model is not trivial: several classes appear.
  assert len(np.unique(np.concatenate([l.ravel() for l in all_labels]))) >= 3

  # serving_any_channels: grey is repeated to RGB, alpha is dropped.
  grey_rgb = np.repeat(inputs['grey'][0], 3, axis=-1)
  ref_labels, ref_probs = _reference(zoo_checkpoint, grey_rgb)
  np.testing.assert_allclose(out['grey/semantic_probabilities'][0], ref_probs,
                             atol=PROB_ATOL)
  ref_labels, ref_probs = _reference(zoo_checkpoint, inputs['rgba'][0, ..., :3])
  _assert_same_labels(out['rgba/semantic'][0], ref_labels, ref_probs)


def test_resize_to_range_and_fixed_crop_serving(zoo_checkpoint):
  """In-graph resize_to_range as the original; a non-global pooling refuses big images."""
  settings = ServingSettings(CROP, min_resize_value=50, max_resize_value=60)
  spec = PredictorSpec(OPTIONS)
  crop = serving_model_options(OPTIONS, CROP).crop_size
  assert crop is None  # global image pooling: any size
  predictor, _ = build_and_restore(spec, zoo_checkpoint, crop)
  module = ServingModule(predictor, settings)
  image = _blocks(np.random.default_rng(3), 37, 53)
  out = module.serve(tf.constant(image[np.newaxis]))
  # 37x53 -> short side 50 makes the long side 71 > 60: scale 60/53 instead,
  # floored in float32 as the original (53 * (60/53) = 59.99998 -> 59).
  resized = preprocess.resize_to_range_size(37, 53, 50, 60).numpy()
  assert list(resized) == [41, 59]
  ref_labels, ref_probs = _reference(zoo_checkpoint, image, settings)
  assert out['semantic'].shape == (1, 37, 53)
  np.testing.assert_allclose(out['semantic_probabilities'][0], ref_probs,
                             atol=PROB_ATOL)
  _assert_same_labels(out['semantic'].numpy()[0], ref_labels, ref_probs)

  # image_pooling_crop_size smaller than the crop: a strided window, so the
  # model keeps the crop size, and an image larger than it is refused.
  pooled = OPTIONS.replace(image_pooling_crop_size=(33, 33))
  crop = serving_model_options(pooled, CROP).crop_size
  assert crop == CROP
  predictor, _ = build_and_restore(PredictorSpec(pooled), zoo_checkpoint, crop)
  module = ServingModule(predictor, ServingSettings(CROP))
  small = module.serve(tf.constant(image[np.newaxis]))
  assert small['semantic'].shape == (1, 37, 53)
  with pytest.raises(tf.errors.InvalidArgumentError, match='must fit in the crop'):
    module.serve(tf.constant(_blocks(np.random.default_rng(4), 70, 90)[None]))


def test_multi_scale_flip_decoder_folded_serving(workdir):
  """--inference_scales, --add_flipped_images and the decoder on any-size
  inputs equal the original crop-size model; BN folding changes only rounding."""
  options = OPTIONS.replace(decoder_output_stride=(8,), decoder_filters=16)
  ckpt = checkpoints.save_tf1_checkpoint(_calibrated_model(options),
                                         str(workdir / 'decoder' / 'model.ckpt'))
  spec = PredictorSpec(options, eval_scales=(0.75, 1.25),
                       add_flipped_images=True, fold_batch_norm=True)
  predictor, _ = build_and_restore(spec, ckpt, None)
  module = ServingModule(predictor, ServingSettings(CROP))
  image = _blocks(np.random.default_rng(9), 37, 53)
  out = module.segment(tf.constant(image[np.newaxis]))  # eager: no trace
  reference = build_predictor(options.replace(crop_size=CROP),
                              eval_scales=(0.75, 1.25), add_flipped_images=True)
  checkpoints.restore_model(reference, ckpt)
  padded = tflite_lib.pad_image(image, CROP, 'mobilenet_v2')
  ref = reference(padded)
  ref_labels = ref['semantic'].numpy()[0, :37, :53]
  ref_probs = ref['semantic_prob'].numpy()[0, :37, :53]
  np.testing.assert_allclose(out['semantic_probabilities'][0], ref_probs,
                             atol=1e-4)
  _assert_same_labels(out['semantic'].numpy()[0], ref_labels, ref_probs,
                      max_gap=1e-3)
  assert len(np.unique(ref_labels)) >= 2


def test_padded_size():
  size = geometry.padded_size([37, 70], (65, 65), 16).numpy()
  assert list(size) == [65, 81]
  assert list(geometry.padded_size([65, 66], (65, 65), 8).numpy()) == [65, 73]
  assert list(geometry.padded_size([97, 98], (65, 65), 16).numpy()) == [97, 113]


def test_keras_file_round_trip(export_dir, zoo_checkpoint):
  loaded = keras.models.load_model(
      os.path.join(export_dir, 'deeplab_predictor.keras'))
  original, _ = build_and_restore(PredictorSpec(OPTIONS), zoo_checkpoint)
  image = _blocks(np.random.default_rng(5), 45, 61)[np.newaxis].astype(np.float32)
  a, b = original(image), loaded(image)
  np.testing.assert_array_equal(a['semantic'], b['semantic'])
  np.testing.assert_allclose(a['semantic_prob'], b['semantic_prob'], atol=1e-6)
  assert len(np.unique(a['semantic'])) >= 2


def test_tflite_float_and_int8(export_dir, zoo_checkpoint):
  reference = _predictor(zoo_checkpoint, CROP)
  rng = np.random.default_rng(6)
  images = [_blocks(rng, 65, 65), _blocks(rng, 37, 53), _blocks(rng, 60, 64)]
  float_model = tflite_lib.interpreter(
      os.path.join(export_dir, 'deeplab_float.tflite'))
  int8_model = tflite_lib.interpreter(
      os.path.join(export_dir, 'deeplab_int8.tflite'))
  details = float_model.get_signature_runner().get_input_details()['image']
  assert details['dtype'] == np.float32 and list(details['shape']) == [1, 65, 65, 3]
  agreement, majority = [], []
  for image in images:
    padded = tflite_lib.pad_image(image, CROP, 'mobilenet_v2')
    out = reference(padded)
    h, w = image.shape[:2]
    ref_labels = out['semantic'].numpy()[0, :h, :w]
    ref_probs = out['semantic_prob'].numpy()[0, :h, :w]
    labels, probs = tflite_lib.run_tflite(float_model, image, 'mobilenet_v2')
    assert labels.dtype == np.int32 and labels.shape == (h, w)
    np.testing.assert_allclose(probs, ref_probs, atol=1e-4)
    assert np.mean(labels == ref_labels) >= 0.999
    labels8, probs8 = tflite_lib.run_tflite(int8_model, image, 'mobilenet_v2')
    agreement.append(np.mean(labels8 == ref_labels))
    # The best constant answer, to show int8 tracks the image.
    majority.append(np.bincount(ref_labels.ravel()).max() / ref_labels.size)
    print('int8 agreement %.3f (majority class %.3f)'
          % (agreement[-1], majority[-1]))
    assert np.abs(probs8 - ref_probs).mean() < 0.1
  assert np.mean(agreement) >= INT8_MIN_AGREEMENT, agreement
  assert np.mean(agreement) >= np.mean(majority) + 0.2, (agreement, majority)
  # Quantised weights make the file smaller.
  assert (os.path.getsize(os.path.join(export_dir, 'deeplab_int8.tflite'))
          < 0.6 * os.path.getsize(os.path.join(export_dir, 'deeplab_float.tflite')))


def test_manifest(export_dir):
  with open(os.path.join(export_dir, 'deeplab_export.json')) as f:
    info = json.load(f)
  assert info['crop_size'] == [65, 65]
  assert info['serving_model_crop_size'] is None
  assert info['mean_pixel'] == [127.5, 127.5, 127.5]
  assert info['model_options']['outputs_to_num_classes'] == {'semantic': 4}
  assert info['model_options']['output_stride'] == 16
  assert info['inference_scales'] == [1.0] and info['add_flipped_images'] is False
  signatures = info['saved_model']['signatures']
  assert set(signatures) == {'serving_default', 'serving_any_channels'}
  assert set(signatures['serving_default']['outputs']) == {
      'semantic', 'semantic_probabilities'}
  assert info['tflite']['int8']['calibration'] == '6 image files'
  assert info['tflite']['float']['file'] == 'deeplab_float.tflite'
  assert info['keras']['round_trip_max_abs_diff'] == 0.0
  assert os.path.exists(os.path.join(export_dir, 'inference_graph.pbtxt'))


def test_our_checkpoint_and_overwrite(our_checkpoint, zoo_checkpoint, workdir):
  """--overwrite replaces an earlier export (refused without it, see below)."""
  path = workdir / 'earlier'
  path.mkdir()
  (path / 'saved_model.pb').write_bytes(b'old')
  (path / 'notes.txt').write_text('kept')
  # --crop_size in the "h,w" form of our other scripts, this time.
  model_flags = [f for f in MODEL_FLAGS if not f.startswith('--crop_size')]
  args = ['--checkpoint_path=' + our_checkpoint, '--export_path=' + str(path),
          '--num_classes=4', '--export_formats=keras',
          '--crop_size=65,65'] + model_flags
  rc, out = _export(*(args + ['--overwrite']))
  assert rc == 0, out[-3000:]
  assert 'restored from checkpoint' in out
  assert not (path / 'saved_model.pb').exists()
  assert (path / 'notes.txt').read_text() == 'kept'
  info = json.loads((path / 'deeplab_export.json').read_text())
  assert info['crop_size'] == [65, 65] and 'saved_model' not in info
  # Our checkpoint gives the weights of the model-zoo one.
  loaded = keras.models.load_model(str(path / 'deeplab_predictor.keras'))
  reference, _ = build_and_restore(PredictorSpec(OPTIONS), zoo_checkpoint)
  image = _blocks(np.random.default_rng(8), 33, 41)[None].astype(np.float32)
  np.testing.assert_allclose(loaded(image)['semantic_prob'],
                             reference(image)['semantic_prob'], atol=1e-6)


_FLAG_CASES = textwrap.dedent('''
    import sys
    from absl import app, flags
    from deeplab_tf import export_model
    FLAGS = flags.FLAGS
    results = []
    for line in sys.stdin.read().strip().splitlines():
      argv = ['export_model'] + line.split()
      FLAGS.unparse_flags()
      try:
        FLAGS(argv)
        rc = export_model.main(argv[:1])
      except (app.UsageError, flags.Error) as e:
        print('USAGE: %s' % e, file=sys.stderr)
        rc = 2
      print('CASE %d rc=%s' % (len(results), rc), file=sys.stderr)
      results.append(rc)
    ''')


def test_bad_input_has_messages(workdir, zoo_checkpoint, our_checkpoint):
  """Each bad input ends with a message and a non-zero status, no traceback.

  The cases run through ``export_model.main`` in one process (one TensorFlow
  import), after absl parses their flags as on the command line.
  """
  empty = workdir / 'empty_dir'
  empty.mkdir()
  (empty / 'readme.txt').write_text('x')
  a_file = workdir / 'a_file'
  a_file.write_text('x')
  # The original's artefact, an earlier frozen graph and its text graph.
  old_pb = workdir / 'old' / 'frozen_inference_graph.pb'
  old_pb.parent.mkdir()
  old_pb.write_bytes(b'old')
  (old_pb.parent / 'inference_graph.pbtxt').write_text('old')
  folder_pb = workdir / 'folder.pb'
  folder_pb.mkdir()
  new_pb = workdir / 'new' / 'frozen_inference_graph.pb'
  holds_export = workdir / 'holds_export'
  holds_export.mkdir()
  (holds_export / 'saved_model.pb').write_bytes(b'old')
  never = workdir / 'never'
  ok = '--checkpoint_path=%s --export_path=%s' % (zoo_checkpoint, never)
  tiny = ' '.join(MODEL_FLAGS)
  cases = [
      # The checkpoint does not fit the flags: both are named.
      (ok + ' --num_classes=5 ' + tiny,
       'zoo/model.ckpt does not fit the model built from the flags '
       '(model_variant=mobilenet_v2, num_classes=5, depth_multiplier=0.25'),
      (ok + ' --num_classes=5 ' + tiny,
       'logits/semantic/weights (1, 1, 256, 5) vs (1, 1, 256, 4)'),
      # Ours: the trainer's model_options.json says what it was trained with.
      ('--checkpoint_path=%s --export_path=%s --num_classes=5 %s'
       % (our_checkpoint, never, tiny),
       "model_options.json says the checkpoint was trained with: "
       "outputs_to_num_classes={'semantic': 4} (flags: {'semantic': 5})"),
      ('--checkpoint_path=%s --export_path=%s --num_classes=4 %s'
       % (zoo_checkpoint, holds_export, tiny),
       'already holds a SavedModel (saved_model.pb). Pass --overwrite'),
      ('--checkpoint_path=%s --export_path=%s' % (empty, workdir / 'x'),
       'No checkpoint in folder %s' % empty),
      ('--checkpoint_path=%s/nope --export_path=%s' % (workdir, workdir / 'x'),
       'neither a folder nor a checkpoint prefix'),
      ('--checkpoint_path=%s --export_path=%s' % (zoo_checkpoint, a_file),
       'is a file; expected a folder'),
      ('--checkpoint_path=%s --export_path=%s' % (zoo_checkpoint, old_pb),
       '%s already exists. Pass --overwrite' % old_pb),
      ('--checkpoint_path=%s --export_path=%s --save_inference_graph '
       '--overwrite --num_classes=5 %s' % (zoo_checkpoint, old_pb, tiny),
       'does not fit the model built from the flags'),
      ('--checkpoint_path=%s --export_path=%s' % (zoo_checkpoint, folder_pb),
       'is a folder. An export_path ending in .pb names the frozen graph'),
      ('--checkpoint_path=%s --export_path=%s --export_formats=tflite'
       % (zoo_checkpoint, new_pb),
       'ends in .pb: only the frozen graph of the original export_model.py'),
      (ok + ' --crop_size=65', 'crop_size must be [height, width]'),
      (ok + ' --crop_size=65,65,65', 'crop_size must be [height, width]'),
      # A float checkpoint has no quantisation ranges (tests/test_quantize.py
      # exports a quantised one).
      (ok + ' --quantize_delay_step=0', 'has no quantisation ranges'),
      (ok + ' --export_formats=onnx', "--export_formats: ['onnx'] not accepted"),
      (ok + ' --max_resize_value=60', 'needs min_resize_value'),
      (ok + ' --inference_scales=0', 'inference_scales must be positive'),
      (ok + ' --export_formats=tflite --tflite_quantization=int8 '
       '--tflite_representative_images=%s/none*.png' % workdir,
       "none*.png' matches no file"),
  ]
  proc = subprocess.run(
      [sys.executable, '-c', _FLAG_CASES], input='\n'.join(c for c, _ in cases),
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  out = proc.stderr
  assert proc.returncode == 0, out[-3000:]
  chunks = out.split('CASE ')
  for i, (_, message) in enumerate(cases):
    chunk = chunks[i]
    assert chunks[i + 1].startswith('%d rc=' % i), out[-3000:]
    assert not chunks[i + 1].startswith('%d rc=0' % i), chunk
    assert message in chunk, (message, chunk[-1500:])
  assert 'Traceback' not in out
  assert not os.path.exists(never)
  assert (holds_export / 'saved_model.pb').read_bytes() == b'old'
  # A failed export leaves the earlier frozen graph in place.
  assert old_pb.read_bytes() == b'old'
  assert not os.path.exists(new_pb.parent)


def test_help_documents_every_flag():
  proc = subprocess.run([sys.executable, '-m', 'deeplab_tf.export_model',
                         '--help'], cwd=REPO, env=_env(),
                        capture_output=True, text=True, timeout=120)
  text = proc.stdout + proc.stderr
  for flag in ('checkpoint_path', 'export_path', 'crop_size',
               'inference_scales', 'add_flipped_images', 'export_formats',
               'tflite_quantization', 'tflite_representative_images',
               'tflite_num_calibration_images', 'fold_batch_norm',
               'overwrite', 'quantize_delay_step', 'save_inference_graph',
               'model_variant', 'num_classes', 'atrous_rates',
               'min_resize_value', 'max_resize_value', 'resize_factor'):
    assert re.search(r'--(\[no\])?%s: \S' % flag, text), flag
  # The original export's defaults.
  def default_of(flag):
    block = text.split('\n  --%s: ' % flag)[1].split('\n  --')[0]
    return re.search(r"\(default: '(.*)'\)", block).group(1)
  assert default_of('output_stride') == '8'
  assert default_of('crop_size') == '[513, 513]'
  assert default_of('num_classes') == '21'
  assert default_of('inference_scales') == '[1.0]'


@pytest.mark.slow
def test_export_latency_benchmark_smoke():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks', 'export_latency.py'),
       '--variants=mobilenet_v2', '--size=33', '--repeats=1', '--warmup=1',
       '--depth_multiplier=0.25'],
      cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith('{')]
  assert len(records) == 1, proc.stdout
  record = records[0]
  for key in ('variant', 'size', 'output_stride', 'repeats', 'warmup',
              'saved_model_ms', 'saved_model_folded_ms', 'folding_speedup',
              'export_s', 'loadavg'):
    assert key in record, key
  assert record['variant'] == 'mobilenet_v2' and record['size'] == 33
  assert record['saved_model_ms'] > 0 and record['saved_model_folded_ms'] > 0
  assert 'ms' in proc.stdout


def test_serving_with_the_dense_crf(zoo_checkpoint):
  """--crf: the CRF runs in the serving graph on the padded batch, then crop."""
  from deeplab_tf import crf
  params = crf.get_params('deeplab_v2_resnet101_voc', num_iterations=3)
  crop = serving_model_options(OPTIONS, CROP).crop_size
  predictor, _ = build_and_restore(PredictorSpec(OPTIONS), zoo_checkpoint, crop)
  module = ServingModule(predictor, ServingSettings(CROP, crf=params))
  image = _blocks(np.random.default_rng(5), 37, 53)
  out = module.serve(tf.constant(image[np.newaxis]))
  # By hand: pad with the mean pixel, predict, CRF, crop.
  padded = np.full(CROP + (3,), 127.5, np.float32)
  padded[:37, :53] = image
  probs = predictor(padded[np.newaxis], training=False)['semantic_prob']
  refined = crf.refine_batch(tf.constant(padded[np.newaxis]), probs, params)
  np.testing.assert_allclose(out['semantic_probabilities'][0],
                             refined.numpy()[0, :37, :53], atol=1e-5)
  np.testing.assert_array_equal(out['semantic'].numpy()[0],
                                np.argmax(refined.numpy()[0, :37, :53], -1))
  plain = np.argmax(probs.numpy()[0, :37, :53], -1)
  assert (plain != out['semantic'].numpy()[0]).any()   # the CRF acted


# --- The original's artefact: a frozen GraphDef (--export_path=....pb) ---

FROZEN_OUTPUTS = ('SemanticPredictions', 'SemanticProbabilities',
                  'RawSemanticPredictions', 'RawSemanticProbabilities')

# Plain TensorFlow (no deeplab_tf) runs SavedModels and frozen graphs, the
# latter exactly as code written for the model zoo's frozen_inference_graph.pb.
_FROZEN_RUNNER = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    jobs_path, outputs_path = sys.argv[1:3]
    with open(jobs_path) as f:
      jobs = json.load(f)
    names = %r
    results, info = {}, {}
    for job, (kind, path, inputs_path) in sorted(jobs.items()):
      inputs = np.load(inputs_path)
      if kind == 'saved_model':
        serve = tf.saved_model.load(path).signatures['serving_default']
        for image in inputs.files:
          for key, value in serve(image=tf.constant(inputs[image])).items():
            results['/'.join((job, image, key))] = value.numpy()
        continue
      graph_def = tf.compat.v1.GraphDef()
      with open(path, 'rb') as f:
        graph_def.ParseFromString(f.read())
      with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name='')
      placeholder = graph.get_tensor_by_name('ImageTensor:0')
      info[job] = {
          'input': [placeholder.dtype.name, placeholder.shape.as_list()],
          'variable_ops': sorted({op.type for op in graph.get_operations()
                                  if 'Variable' in op.type}),
          'library_functions': len(graph_def.library.function)}
      with tf.compat.v1.Session(graph=graph) as sess:
        for image in inputs.files:
          values = sess.run([n + ':0' for n in names],
                            feed_dict={'ImageTensor:0': inputs[image]})
          for name, value in zip(names, values):
            results['/'.join((job, image, name))] = value
    info['deeplab_tf_imported'] = any(m.startswith('deeplab_tf')
                                      for m in sys.modules)
    np.savez(outputs_path, **results)
    with open(outputs_path + '.json', 'w') as f:
      json.dump(info, f)
    ''' % (FROZEN_OUTPUTS,))


def _run_plain_tensorflow(folder, jobs):
  """Runs ``jobs`` ({job: (kind, path, inputs .npz)}) in a process without
  deeplab_tf; returns (arrays, info)."""
  runner = folder / 'frozen_runner.py'
  runner.write_text(_FROZEN_RUNNER)
  (folder / 'jobs.json').write_text(json.dumps(jobs))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  proc = subprocess.run(
      [sys.executable, str(runner), str(folder / 'jobs.json'),
       str(folder / 'outputs.npz')], cwd=str(folder), env=env,
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  info = json.loads((folder / 'outputs.npz.json').read_text())
  assert info.pop('deeplab_tf_imported') is False
  return np.load(folder / 'outputs.npz'), info


RESIZE_SETTINGS = ServingSettings(CROP, min_resize_value=50,
                                  max_resize_value=60)


@pytest.fixture(scope='module')
def frozen_runs(workdir, zoo_checkpoint, export_dir):
  """The tiny checkpoint exported by the script to a .pb, and to a .pb with
  resize_to_range (both at once); these and the SavedModel of ``export_dir``
  (same checkpoint and flags) run in plain TensorFlow on the same images
  (batch 1, the original's input)."""
  folder = workdir / 'frozen'
  folder.mkdir()
  paths = {'frozen': str(folder / 'plain' / 'frozen_inference_graph.pb'),
           'resized': str(folder / 'resized' / 'frozen_inference_graph.pb')}
  base = [sys.executable, '-m', 'deeplab_tf.export_model',
          '--checkpoint_path=' + zoo_checkpoint,
          '--num_classes=4'] + MODEL_FLAGS
  extra = {'frozen': ['--save_inference_graph'],
           'resized': ['--min_resize_value=50', '--max_resize_value=60']}
  procs = {job: subprocess.Popen(
      base + ['--export_path=' + paths[job]] + extra[job], cwd=REPO,
      env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for job in paths}
  logs = {job: proc.communicate(timeout=300)[0] for job, proc in procs.items()}
  for job, proc in procs.items():
    assert proc.returncode == 0, (job, logs[job][-4000:])
  assert 'wrote frozen graph' in logs['frozen'], logs['frozen'][-2000:]
  rng = np.random.default_rng(11)
  images = {'odd': _blocks(rng, 37, 53),  # smaller than the 65x65 crop
            'larger_than_crop': _blocks(rng, 70, 90)}  # padded to 81x97
  np.savez(folder / 'inputs.npz', **{k: v[None] for k, v in images.items()})
  inputs = str(folder / 'inputs.npz')
  jobs = {job: ('frozen', path, inputs) for job, path in paths.items()}
  jobs['saved_model'] = ('saved_model', export_dir, inputs)
  arrays, info = _run_plain_tensorflow(folder, jobs)
  return {'arrays': arrays, 'info': info, 'images': images, 'paths': paths}


def test_frozen_graph_in_plain_tensorflow_equals_the_saved_model(frozen_runs):
  """The .pb has the original's tensors and computes the SavedModel's output."""
  out, info = frozen_runs['arrays'], frozen_runs['info']
  for job in ('frozen', 'resized'):
    assert info[job] == {'input': ['uint8', [1, None, None, 3]],
                         'variable_ops': [], 'library_functions': 0}
  for image, padded in (('odd', (65, 65)), ('larger_than_crop', (81, 97))):
    h, w = frozen_runs['images'][image].shape[:2]
    labels, probs, raw_labels, raw_probs = (
        out['frozen/%s/%s' % (image, name)] for name in FROZEN_OUTPUTS)
    # The original's dtypes and shapes.
    assert labels.dtype == np.int32 and labels.shape == (1, h, w)
    assert probs.dtype == np.float32 and probs.shape == (1, h, w, NUM_CLASSES)
    assert raw_labels.dtype == np.float32 and raw_labels.shape == (1,) + padded
    assert raw_probs.dtype == np.float32
    assert raw_probs.shape == (1,) + padded + (NUM_CLASSES,)
    # Not resized: the Semantic* outputs are the Raw* ones cropped.
    np.testing.assert_array_equal(labels, raw_labels[:, :h, :w])
    np.testing.assert_array_equal(probs, raw_probs[:, :h, :w])
    # The SavedModel exported from the same checkpoint.
    np.testing.assert_array_equal(
        labels, out['saved_model/%s/semantic' % image])
    np.testing.assert_allclose(
        probs, out['saved_model/%s/semantic_probabilities' % image],
        atol=1e-5)
    assert len(np.unique(labels)) >= 2
  # --save_inference_graph: the graph before freezing, beside the .pb.
  pbtxt = os.path.join(os.path.dirname(frozen_runs['paths']['frozen']),
                       'inference_graph.pbtxt')
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  graph_def = text_format.Parse(open(pbtxt).read(), tf.compat.v1.GraphDef())
  nodes = {node.name: node.op for node in graph_def.node}
  assert nodes['ImageTensor'] == 'Placeholder'
  assert all(name in nodes for name in FROZEN_OUTPUTS)
  assert 'ReadVariableOp' in nodes.values()   # not frozen
  resized_folder = os.path.dirname(frozen_runs['paths']['resized'])
  assert not os.path.exists(os.path.join(resized_folder,
                                         'inference_graph.pbtxt'))


def test_frozen_graph_with_resize_to_range(frozen_runs, zoo_checkpoint):
  """--min/max_resize_value: resized in the graph, predictions back at the
  input size, as the original graph (independent reference)."""
  out = frozen_runs['arrays']
  image = frozen_runs['images']['odd']
  labels = out['resized/odd/SemanticPredictions'][0]
  probs = out['resized/odd/SemanticProbabilities'][0]
  assert labels.shape == (37, 53) and probs.shape == (37, 53, NUM_CLASSES)
  # 37x53 is resized to 41x59 and padded to the 65x65 crop.
  raw_labels = out['resized/odd/RawSemanticPredictions'][0]
  assert raw_labels.shape == CROP
  ref_labels, ref_probs = _reference(zoo_checkpoint, image, RESIZE_SETTINGS)
  np.testing.assert_allclose(probs, ref_probs, atol=PROB_ATOL)
  _assert_same_labels(labels, ref_labels, ref_probs)
  # The un-resized export gives other probabilities: the resize acted.
  assert np.abs(probs - out['frozen/odd/SemanticProbabilities'][0]).max() > 1e-3


@pytest.mark.slow
def test_frozen_graph_of_reference_case_a(workdir, reference_dir):
  """Case A of the original-graph fixtures (xception_65 + decoder), frozen
  from its converted checkpoint and run as a model-zoo .pb: the labels are
  the argmax of the fixture's logits wherever its top-2 margin is not tiny,
  the probabilities their softmax. (In this process: the plain-TensorFlow
  runs above cover that no deeplab_tf is needed.)"""
  from deeplab_tf.conformance import model_case  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import write_frozen_graph  # pylint: disable=g-import-not-at-top
  case_path = os.path.join(reference_dir, 'case_A.json')
  with open(case_path) as f:
    case = json.load(f)
  ref = np.load(os.path.join(reference_dir, case['reference_files']['npz']))
  folder = workdir / 'case_a'
  folder.mkdir()
  prefix = model_case.write_case_checkpoint(case_path, case, str(folder))
  options = model_case.options_from_case(case)
  crop = tuple(options.crop_size)   # 129x129, the size of the case image
  predictor, _ = build_and_restore(
      PredictorSpec(options), prefix,
      serving_model_options(options, crop).crop_size)
  path = str(folder / 'frozen_inference_graph.pb')
  write_frozen_graph(ServingModule(predictor, ServingSettings(crop)), path)
  del predictor
  graph_def = tf.compat.v1.GraphDef()
  with open(path, 'rb') as f:
    graph_def.ParseFromString(f.read())
  with tf.Graph().as_default() as graph:
    tf.compat.v1.import_graph_def(graph_def, name='')
  with tf.compat.v1.Session(graph=graph) as sess:
    labels, probs, raw_labels = sess.run(
        ['SemanticPredictions:0', 'SemanticProbabilities:0',
         'RawSemanticPredictions:0'], {'ImageTensor:0': ref['image'][None]})
  logits = ref['logits']
  expected = np.argmax(logits, axis=-1)
  confident = (model_case.top2_margin(logits)
               >= case['label_margin']['threshold'])
  assert labels.shape == raw_labels.shape == (1,) + expected.shape
  for ours in (labels[0], raw_labels[0].astype(np.int64)):
    assert not np.any((ours != expected) & confident)
  softmax = np.exp(logits - logits.max(-1, keepdims=True))
  softmax /= softmax.sum(-1, keepdims=True)
  np.testing.assert_allclose(probs[0], softmax, atol=1e-5)
  assert len(np.unique(labels)) >= 2
