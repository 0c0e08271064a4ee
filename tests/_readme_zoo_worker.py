"""Subprocess body for test_experiments: the README's model-zoo table builds.

For every row with a convert command: the command's flags parse with
deeplab_tf.convert_checkpoint's flags and build the model (no checkpoint is
read); the row's eval flags (code spans starting with --dataset=) parse with
deeplab_tf.eval's flags and give the same model options, the number of
classes (from the dataset) included, up to what may differ at evaluation.
Runs apart from pytest's process because convert_checkpoint marks --checkpoint
and --output required at import, which would break the other tests' parsing.
Prints one ``ROW <name> <status>`` line per row and exits 1 on a failure.
"""
import re
import shlex
import sys

from absl import flags

from deeplab_tf import convert_checkpoint  # pylint: disable=unused-import  (flags)
from deeplab_tf import eval as eval_script
from deeplab_tf import model_flags
from deeplab_tf.data import datasets_info
from deeplab_tf.models import build_model

MAY_DIFFER = {'output_stride', 'atrous_rates', 'crop_size'}
# convert_checkpoint requires these; they do not matter for the model.
CONVERT_REQUIRED = ['--checkpoint=unused', '--output=unused']


def zoo_section(readme):
  return readme[readme.index('## Model zoo'):readme.index('## Using a model')]


def shell_variables(section):
  """NAME="..." and NAME=value assignments of the section's bash blocks."""
  values = {}
  for block in re.findall(r'```bash\n(.*?)```', section, re.S):
    for match in re.finditer(r'(\w+)=("([^"]*)"|(\S+))', block):
      if match.group(1).isupper():
        values[match.group(1)] = (match.group(3) if match.group(3) is not None
                                  else match.group(4))
  return values


def rows(section):
  for line in section.splitlines():
    if line.startswith('| ') and not line.startswith('| **'):
      cells = [c.strip() for c in line.strip().strip('|').split('|')]
      if len(cells) == 5 and cells[0] not in ('checkpoint', '---'):
        yield cells


def parse(argv):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(argv)


def main(readme_path):
  with open(readme_path) as f:
    section = zoo_section(f.read())
  variables = shell_variables(section)

  def expand(text):
    return re.sub(r'\$(\w+)', lambda m: variables[m.group(1)], text)

  built = {}
  failures = 0
  for name, _, convert, eval_cell, _ in rows(section):
    commands = re.findall(r'`(\$CONVERT [^`]*)`', convert)
    if not commands:
      print('ROW %s no-convert %s' % (name, convert.replace(' ', '_')))
      continue
    try:
      args = shlex.split(expand(commands[0]))
      assert args[:3] == ['python', '-m', 'deeplab_tf.convert_checkpoint'], args
      model_args = [a for a in args[3:] if not a.startswith(
          ('--checkpoint=', '--output='))]
      assert any(a.startswith('--checkpoint=') for a in args), 'no --checkpoint'
      assert any(a.startswith('--output=') for a in args), 'no --output'
      parse(['convert'] + model_args + CONVERT_REQUIRED)
      options = model_flags.model_options_from_flags(
          crop_size=flags.FLAGS.crop_size)
      key = tuple(sorted(model_args))
      if key not in built:
        built[key] = build_model(options).output['merged_logits'].shape[-1]
      assert built[key] == options.num_classes
      for eval_flags in re.findall(r'`(--dataset=[^`]*)`', eval_cell):
        parse(['eval'] + shlex.split(expand(eval_flags)) + CONVERT_REQUIRED
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
  sys.exit(main(sys.argv[1]))
