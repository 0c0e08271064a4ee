"""Model conformance: our Keras model, loaded from the original checkpoint, vs the original logits.

For a case JSON (``model_options``, ``cmdline``, ``reference_files``):
  1. write the TF1 checkpoint of the case's variable manifest with the
     fixture's own rule (``make_tf1_checkpoint.py`` beside the case);
  2. build our predictor from the case's original options (and, from its
     cmdline, ``eval_scales`` / ``add_flipped_images`` for multi-scale cases);
  3. load the checkpoint with our converter (every variable must be found);
  4. run the case's input image and compare every array of the npz that the
     predictor computes (``merged_logits``, ``logits``, ``probs``, ``labels``).

Tolerances are those of ``shared/reference/README.md``: ``max|d| <= 1e-4 *
max(1, max|ref|)``, ``mean|d| <= 1e-5 * max(1, max|ref|)``, and labels equal
wherever the reference top-1 minus top-2 margin is at least 1e-3.
"""
import importlib.util
import os
import tempfile

import numpy as np

from deeplab_tf import conformance
from deeplab_tf import checkpoints
from deeplab_tf.models import ModelOptions, build_predictor

MAX_TOL = 1e-4
MEAN_TOL = 1e-5
MARGIN_THRESHOLD = 1e-3
CHECKPOINT_WRITER = 'make_tf1_checkpoint.py'


def parse_eval_flags(cmdline):
  """eval_scales and add_flipped_images from an original command line."""
  scales, flip = [], False
  for arg in cmdline or ():
    if not arg.startswith('--'):
      continue
    key, _, value = arg[2:].partition('=')
    if key == 'eval_scales':
      scales.extend(float(v) for v in value.split(',') if v)
    elif key == 'add_flipped_images':
      flip = value.lower() not in ('0', 'false', 'no') if value else True
    elif key == 'noadd_flipped_images':
      flip = False
  return tuple(scales) or (1.0,), flip


def find_checkpoint_writer(case_path):
  """The fixture's checkpoint writer: beside the case, or one folder up."""
  here = os.path.dirname(os.path.abspath(case_path))
  folders = [here, os.path.dirname(here)]
  shared = conformance.shared_reference_dir()
  if shared:
    folders.append(shared)  # a copied case: the shared fixtures' writer
  for d in folders:
    candidate = os.path.join(d, CHECKPOINT_WRITER)
    if os.path.exists(candidate):
      return candidate
  raise FileNotFoundError(
      '%s not found beside %s (or in its parent folder, or in '
      'shared/reference): it is the rule that turns the case manifest into '
      'a TF1 checkpoint.' % (CHECKPOINT_WRITER, case_path))


def write_case_checkpoint(case_path, case, directory):
  """Writes the case's TF1 checkpoint into ``directory``; returns its prefix."""
  spec = importlib.util.spec_from_file_location(
      'deeplab_fixture_ckpt_writer', find_checkpoint_writer(case_path))
  writer = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(writer)
  manifest_name = case.get('reference_files', {}).get('manifest')
  if not manifest_name:
    raise ValueError('%s names no manifest under reference_files.' % case_path)
  manifest_path = os.path.join(os.path.dirname(os.path.abspath(case_path)),
                               manifest_name)
  manifest = writer.load_manifest(manifest_path)
  prefix = os.path.join(directory, 'model.ckpt')
  writer.write_checkpoint(manifest, prefix)
  return prefix


def top2_margin(values):
  part = np.sort(values, axis=-1)
  return part[..., -1] - part[..., -2]


def options_from_case(case):
  return ModelOptions.from_dict(case['model_options'])


def run_model(case_path, case, arrays, checkpoint=None):
  """Builds, loads and runs our model for a case; returns (outputs, report)."""
  options = options_from_case(case)
  scales, flip = parse_eval_flags(case.get('cmdline'))
  model = build_predictor(options, eval_scales=scales, add_flipped_images=flip)
  with tempfile.TemporaryDirectory(prefix='deeplab_conformance_') as tmp:
    prefix = checkpoint or write_case_checkpoint(case_path, case, tmp)
    report = checkpoints.load_tf1_checkpoint(model, prefix, strict=True)
  image = arrays['image'].astype(np.float32)[np.newaxis]
  outputs = {k: np.asarray(v)[0] for k, v in model(image, training=False).items()}
  return outputs, report


@conformance.register(conformance.MODEL_KIND)
def check_model_case(case_path, case, arrays, checkpoint=None):
  result = conformance.CaseResult(case_path, conformance.MODEL_KIND)
  outputs, report = run_model(case_path, case, arrays, checkpoint)
  result.add('checkpoint', report.ok and not report.unused,
             'loaded %d variables, %d unused in checkpoint'
             % (len(report.loaded), len(report.unused)))
  ours_by_key = {'merged_logits': outputs.get('merged_logits'),
                 'logits': outputs.get('logits'),
                 # The fixtures hold the mean of the per-scale softmaxes.
                 'probs': outputs.get('averaged_prob',
                                      outputs.get('semantic_prob')),
                 'labels': outputs.get('semantic')}
  compared = 0
  for key in ('merged_logits', 'logits', 'probs'):
    if key not in arrays:
      continue
    ours = ours_by_key[key]
    if ours is None:
      result.add(key, False, 'the predictor for this case computes no %s' % key)
      continue
    scale = max(1.0, float(np.abs(arrays[key]).max()))
    conformance.compare_close(result, key, ours, arrays[key],
                              MAX_TOL * scale, MEAN_TOL * scale)
    result.arrays[key] = ours.astype(arrays[key].dtype)
    compared += 1
  if 'labels' in arrays:
    ours = ours_by_key['labels']
    ref = arrays['labels']
    margin_info = case.get('label_margin', {})
    margin_key = margin_info.get('tensor') or (
        'logits' if 'logits' in arrays else 'probs')
    threshold = float(margin_info.get('threshold', MARGIN_THRESHOLD))
    confident = top2_margin(arrays[margin_key]) >= threshold
    wrong = (ours.astype(np.int64) != ref.astype(np.int64))
    bad = int(np.sum(wrong & confident))
    result.add('labels', bad == 0,
               '%d of %d confident pixels differ; %.4f of all pixels equal '
               '(%d below margin %.0e)' % (bad, int(confident.sum()),
                                           1.0 - wrong.mean(),
                                           int((~confident).sum()), threshold))
    result.arrays['labels'] = ours.astype(ref.dtype)
    compared += 1
  if not compared:
    result.add('arrays', False, 'the npz holds none of merged_logits, logits, '
               'probs, labels')
  return result
