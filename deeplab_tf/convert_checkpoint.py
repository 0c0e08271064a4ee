r"""Converts an original DeepLab (TF1 / model-zoo) checkpoint into our model.

Usage (a model-zoo tarball, extracted):
  python -m deeplab_tf.convert_checkpoint \
      --checkpoint=deeplabv3_pascal_train_aug/model.ckpt \
      --output=converted/xception65_voc \
      --model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 \
      --atrous_rates=18 --output_stride=16 --decoder_output_stride=4 \
      --num_classes=21

Builds our Keras model from the model flags, loads the checkpoint by variable
name, reports what was loaded, excluded, missing, mis-shaped or unused, and
writes:
  * OUTPUT.weights.h5 when --output ends in ``.weights.h5`` (Keras weights of
    the model built with these flags), else a name-based checkpoint with the
    original variable names at prefix OUTPUT (loads into any of our builds and
    into the original TF1 graph);
  * OUTPUT_options.json: the ModelOptions, so the model can be rebuilt.

A strict conversion (the default) fails, listing the variables, when the
checkpoint does not fit. For an ImageNet backbone checkpoint (no ASPP,
decoder or logits) pass --allow_missing; to drop the logits of another
dataset pass --exclude_scopes=logits (the original --noinitialize_last_layer).
"""
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from deeplab_tf.config import model_flags
from deeplab_tf.core.errors import DeeplabError

FLAGS = flags.FLAGS
model_flags.define_model_flags(output_stride_default=16)
model_flags.define_initialization_flags()
flags.DEFINE_string('checkpoint', None,
                    'Original TF1 checkpoint: a prefix (model.ckpt) or a '
                    'directory with a "checkpoint" file.')
flags.DEFINE_string('output', None,
                    'Output: a checkpoint prefix, or a path ending in '
                    '.weights.h5 for a Keras weights file.')
flags.DEFINE_list('crop_size', None,
                  'Crop size "h,w" the model is built for (image pooling '
                  'kernel and resize sizes depend on it); unset = any size.')
flags.DEFINE_list('exclude_scopes', [],
                  'Original scopes not to load, e.g. "logits" (comma list).')
flags.DEFINE_boolean('allow_missing', False,
                     'Accept model variables absent from the checkpoint '
                     '(e.g. an ImageNet backbone checkpoint); they keep their '
                     'initial values.')
flags.mark_flags_as_required(['checkpoint', 'output'])


def main(argv):
  del argv
  from deeplab_tf import checkpoints  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models import build_model  # pylint: disable=g-import-not-at-top
  from deeplab_tf.models.deeplab import get_extra_layer_scopes  # pylint: disable=g-import-not-at-top
  options = model_flags.model_options_from_flags(crop_size=FLAGS.crop_size)
  model = build_model(options)
  exclude = list(FLAGS.exclude_scopes)
  if not FLAGS.initialize_last_layer:
    exclude += get_extra_layer_scopes(FLAGS.last_layers_contain_logits_only)
  try:
    report = checkpoints.load_tf1_checkpoint(
        model, FLAGS.checkpoint, exclude_scopes=exclude, strict=True,
        ignore_missing=FLAGS.allow_missing)
  except (DeeplabError, FileNotFoundError) as e:
    print('ERROR: %s' % e, file=sys.stderr)
    return 1
  print(report.summary())
  out = FLAGS.output
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  if out.endswith('.weights.h5'):
    model.save_weights(out)
    stem = out[:-len('.weights.h5')]
  else:
    checkpoints.save_tf1_checkpoint(model, out)
    stem = out
  with open(stem + checkpoints.folders.CONVERTER_OPTIONS_SUFFIX, 'w') as f:
    json.dump(options.to_dict(), f, indent=1, sort_keys=True)
  logging.info('wrote %s and %s_options.json', out, stem)
  print('wrote %s (+ %s_options.json)' % (out, stem))
  return 0


def run():
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
