r"""Checks our code against fixtures made by running the original DeepLab graph.

Usage:
  python -m deeplab_tf.conformance CASE_JSON [CASE_JSON ...] [--dump OUT.npz]
  python -m deeplab_tf.conformance ../shared/reference/case_A.json
  python -m deeplab_tf.conformance ../shared/reference/ops/*.json

Each case prints its compared quantities (max/mean absolute difference, equal
labels ...) and PASS or FAIL. Exit status: 0 when every case is within its
tolerance, 1 when any case is outside it, 2 when a case cannot be run (unknown
fixture kind, missing files).
"""
import sys

from absl import app
from absl import flags

from deeplab_tf import conformance

FLAGS = flags.FLAGS
flags.DEFINE_string(
    'dump', None,
    'Write the arrays our code computed under the fixture\'s own npz keys to '
    'this .npz file (with several cases, the case name is prefixed: '
    'OUT_<case>.npz).')
flags.DEFINE_string(
    'checkpoint', None,
    'Model cases only: use this TF1 checkpoint prefix instead of writing one '
    'from the case manifest.')


def _dump_path(base, case_path, many):
  import os  # pylint: disable=g-import-not-at-top
  if not many:
    return base
  stem = os.path.splitext(os.path.basename(case_path))[0]
  root, ext = os.path.splitext(base)
  return '%s_%s%s' % (root, stem, ext or '.npz')


def main(argv):
  paths = argv[1:]
  if not paths:
    raise app.UsageError('Give at least one case JSON file. Known fixture '
                         'kinds: %s' % ', '.join(conformance.known_kinds()))
  import numpy as np  # pylint: disable=g-import-not-at-top
  status = 0
  for path in paths:
    options = {}
    if FLAGS.checkpoint:
      options['checkpoint'] = FLAGS.checkpoint
    try:
      result = conformance.check_case(path, **options)
    except (NotImplementedError, FileNotFoundError, ValueError, KeyError) as e:
      print('%s: ERROR %s: %s' % (path, type(e).__name__, e), flush=True)
      status = max(status, 2)
      continue
    print(result.report(), flush=True)
    if FLAGS.dump:
      out = _dump_path(FLAGS.dump, path, len(paths) > 1)
      np.savez(out, **result.arrays)
      names = sorted(result.arrays)
      listed = ', '.join(names[:8]) + (', ... (%d arrays)' % len(names)
                                       if len(names) > 8 else '')
      print('  wrote %s (%s)' % (out, listed))
    if not result.passed:
      status = max(status, 1)
  return status


def run():
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
