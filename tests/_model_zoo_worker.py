"""Subprocess body for test_experiments: every model-zoo row builds.

For every row of ``deeplab_tf.checkpoints.zoo`` with convert flags: the flags
parse with deeplab_tf.convert_checkpoint's flags and build the model (no
checkpoint is read); the row's eval flag sets (code spans starting with
--dataset=) parse with deeplab_tf.eval's flags and give the same model
options, the number of classes (from the dataset) included, up to what may
differ at evaluation. README's table is rendered from the same rows (a fast
test checks that). Runs apart from pytest's process because
convert_checkpoint marks --checkpoint and --output required at import, which
would break the other tests' parsing. Prints one ``ROW <name> <status>`` line
per row and exits 1 on a failure.
"""
import sys

from absl import flags

from deeplab_tf import convert_checkpoint  # pylint: disable=unused-import  (flags)
from deeplab_tf import eval as eval_script
from deeplab_tf.config import model_flags
from deeplab_tf.checkpoints import zoo
from deeplab_tf.data import datasets_info
from deeplab_tf.models import build_model

MAY_DIFFER = {'output_stride', 'atrous_rates', 'crop_size'}
# convert_checkpoint requires these; they do not matter for the model.
CONVERT_REQUIRED = ['--checkpoint=unused', '--output=unused']


def parse(argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(argv)


def main():
  built = {}
  failures = 0
  for entry in zoo.entries():
    name = entry.name
    if not entry.supported:
      print('ROW %s no-convert %s' % (name, entry.not_supported.replace(' ', '_')))
      continue
    try:
      model_args = entry.convert_args()
      parse(['convert'] + model_args + CONVERT_REQUIRED)
      options = model_flags.model_options_from_flags(
          crop_size=flags.FLAGS.crop_size)
      key = tuple(sorted(model_args))
      if key not in built:
        built[key] = build_model(options).output['merged_logits'].shape[-1]
      assert built[key] == options.num_classes
      for eval_flags in entry.eval_flag_sets():
        parse(['eval'] + eval_flags + CONVERT_REQUIRED
              + ['--checkpoint_dir=unused', '--eval_logdir=unused',
                 '--dataset_dir=unused'])
        settings = eval_script.eval_settings_from_flags()
        descriptor = datasets_info.get_descriptor(flags.FLAGS.dataset)
        descriptor.check_split(settings.split)
        evaluated = model_flags.model_options_from_flags(
            crop_size=settings.crop_size, num_classes=descriptor.num_classes)
        ours, theirs = evaluated.to_dict(), options.to_dict()
        differ = [k for k in ours if ours[k] != theirs[k] and k not in MAY_DIFFER]
        assert not differ, 'eval flags build another model: %s' % differ
      print('ROW %s ok' % name)
    except Exception as e:  # pylint: disable=broad-except
      failures += 1
      print('ROW %s FAILED %s' % (name, str(e).replace('\n', ' ')[:500]))
    finally:
      flags.FLAGS.unparse_flags()
  return 1 if failures else 0


if __name__ == '__main__':
  sys.exit(main())
