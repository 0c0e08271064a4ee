"""Evaluation paths: multi-scale + flip, image pyramid, any-size models, BN folding."""
import json
import os
import shutil

import keras
import numpy as np
import pytest

from deeplab_tf import checkpoints
from deeplab_tf import conformance
from deeplab_tf.models import ModelOptions, build_model, build_predictor
from deeplab_tf.models.fold import folded_predictor
from deeplab_tf.models.layers import scale_dimension
from test_layers import numpy_resize_align_corners


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _randomise_batch_norm(model, seed=0):
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      n = layer.gamma.shape[0]
      layer.set_weights([1 + 0.1 * rng.uniform(-1, 1, n), 0.1 * rng.normal(size=n),
                         0.1 * rng.normal(size=n), rng.uniform(0.5, 1.5, n)])


def _scaled_merged_logits(options, ckpt, image, scale):
  """One scale of predict_labels_multi_scale, composed from a single-scale model."""
  crop = options.crop_size
  scaled = tuple(scale_dimension(d, scale) for d in crop)
  x = image if scale == 1.0 else numpy_resize_align_corners(image, *scaled)
  model = build_predictor(options.replace(crop_size=scaled))
  checkpoints.load_tf1_checkpoint(model, ckpt)
  low = model(x.astype(np.float32))['merged_logits'].numpy().astype(np.float64)
  size = [scale_dimension(d, max(1.0, scale) / options.output_stride) for d in crop]
  return numpy_resize_align_corners(low, *size)


def test_multi_scale_flip_case_of_the_fixture_format(tmp_path, reference_dir):
  """A new case file (probs, eval_scales, flip) built independently passes the checker."""
  options = ModelOptions(model_variant='mobilenet_v2', crop_size=(65, 65),
                         output_stride=16, outputs_to_num_classes={'semantic': 5})
  manifest = [{'name': n, 'shape': list(v.shape), 'dtype': 'float32'}
              for n, v in checkpoints.model_variables(build_model(options)).items()]
  manifest.append({'name': 'global_step', 'shape': [], 'dtype': 'int64'})
  (tmp_path / 'manifest_X.json').write_text(json.dumps(manifest))
  shutil.copy(os.path.join(reference_dir, 'make_tf1_checkpoint.py'), tmp_path)
  from deeplab_tf.conformance import model_case
  case = {'config': 'X', 'cmdline': ['--model_variant=mobilenet_v2',
                                     '--eval_scales=0.5', '--eval_scales=1.25',
                                     '--add_flipped_images'],
          'model_options': options.to_dict(),
          'reference_files': {'npz': 'case_X.npz', 'manifest': 'manifest_X.json'}}
  ckpt = model_case.write_case_checkpoint(str(tmp_path / 'case_X.json'), case,
                                          str(tmp_path / 'ckpt'))
  image = np.random.default_rng(0).integers(0, 256, (1, 65, 65, 3)).astype(np.float64)
  probs = []
  for scale in (0.5, 1.25):
    for flip in (False, True):
      x = image[:, :, ::-1] if flip else image
      low = _scaled_merged_logits(options, ckpt, x, scale)
      if flip:
        low = low[:, :, ::-1]
      probs.append(_softmax(numpy_resize_align_corners(low, 65, 65)))
  mean = np.mean(probs, axis=0)[0]
  np.savez(tmp_path / 'case_X.npz', image=image[0].astype(np.uint8),
           probs=mean.astype(np.float32), labels=mean.argmax(-1).astype(np.uint8))
  case['label_margin'] = {'tensor': 'probs', 'threshold': 1e-4}
  (tmp_path / 'case_X.json').write_text(json.dumps(case))
  result = conformance.check_case(str(tmp_path / 'case_X.json'))
  print(result.report())
  assert result.passed, result.report()
  assert {c.name for c in result.checks} == {'checkpoint', 'probs', 'labels'}


def test_image_pyramid_merges_per_scale_logits_by_max():
  options = ModelOptions(model_variant='mobilenet_v2', crop_size=(65, 65),
                         output_stride=16, image_pyramid=(0.5, 1.0),
                         outputs_to_num_classes={'semantic': 4})
  model = build_model(options)
  out = model(np.random.default_rng(1).uniform(0, 255, (2, 65, 65, 3)).astype(np.float32))
  assert set(out) == {'merged_logits', 'logits_0.50', 'logits_1.00'}
  for v in out.values():
    assert v.shape == (2, 5, 5, 4)
  np.testing.assert_allclose(out['merged_logits'],
                             np.maximum(out['logits_0.50'], out['logits_1.00']))
  # Pyramid scales share weights (AUTO_REUSE): no extra variables.
  single = build_model(options.replace(image_pyramid=None))
  assert len(model.weights) == len(single.weights)
  avg = build_model(options.replace(merge_method='avg'))
  avg.set_weights(model.get_weights())
  out_avg = avg(np.zeros((1, 65, 65, 3), np.float32))
  np.testing.assert_allclose(out_avg['merged_logits'],
                             (out_avg['logits_0.50'] + out_avg['logits_1.00']) / 2,
                             atol=1e-6)


def test_any_size_model_equals_crop_model_at_the_crop_size():
  """crop_size=None (global pooling, dynamic resizes) == crop model when input == crop."""
  kw = dict(model_variant='xception_41', atrous_rates=(6, 12, 18),
            output_stride=16, decoder_output_stride=(4,),
            outputs_to_num_classes={'semantic': 3})
  fixed = build_predictor(ModelOptions(crop_size=(97, 65), **kw))
  _randomise_batch_norm(fixed)
  dynamic = build_predictor(ModelOptions(**kw))
  dynamic.set_weights(fixed.get_weights())
  x = np.random.default_rng(2).uniform(0, 255, (1, 97, 65, 3)).astype(np.float32)
  a, b = fixed(x), dynamic(x)
  assert b['merged_logits'].shape == (1, 25, 17, 3)
  np.testing.assert_allclose(a['logits'], b['logits'], atol=1e-5)
  # ... and it takes other sizes.
  y = dynamic(np.zeros((1, 50, 70, 3), np.float32))
  assert y['semantic'].shape == (1, 50, 70)


@pytest.mark.parametrize('variant,extra', [
    ('resnet_v1_50', dict(atrous_rates=(6, 12, 18), multi_grid=(1, 2, 4))),
    ('xception_65', dict(atrous_rates=(6, 12, 18), decoder_output_stride=(4,))),
])
def test_folded_batch_norm_predictor_matches(variant, extra):
  options = ModelOptions(model_variant=variant, crop_size=(65, 65),
                         output_stride=16, **extra)
  model = build_predictor(options)
  _randomise_batch_norm(model)
  folded = folded_predictor(model)
  assert not any(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)
  x = np.random.default_rng(3).uniform(0, 255, (1, 65, 65, 3)).astype(np.float32)
  # Float32 rounding of the folded kernels: the README's conformance tolerance.
  ref = model(x)['logits'].numpy()
  np.testing.assert_allclose(folded(x)['logits'], ref,
                             atol=1e-4 * max(1.0, np.abs(ref).max()))


def test_argmax_then_nearest_upsampling_path():
  options = ModelOptions(model_variant='mobilenet_v2', crop_size=(33, 33),
                         output_stride=16, prediction_with_upsampled_logits=False)
  model = build_predictor(options)
  out = model(np.random.default_rng(4).uniform(0, 255, (1, 33, 33, 3)).astype(np.float32))
  labels = out['semantic'].numpy()[0]
  low = out['merged_logits'].numpy()[0].argmax(-1)  # 3x3
  # Nearest align_corners from 3 to 33: source index round(y * 2 / 32).
  idx = np.minimum(np.floor(np.arange(33) * (2 / 32) + 0.5).astype(int), 2)
  np.testing.assert_array_equal(labels, low[idx][:, idx])
  assert out['semantic_prob'].shape == (1, 33, 33, 21)
