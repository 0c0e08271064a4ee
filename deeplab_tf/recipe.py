r"""The two-phase DeepLab training recipe as one command.

DeepLabv3 (arXiv:1706.05587, Sec. 4) and DeepLabv3+ train in two phases:
  phase 1: output stride 16, BatchNorm trained (large batch), poly LR from
           the ImageNet checkpoint (e.g. VOC train_aug);
  phase 2: BatchNorm frozen, its own split / LR / output stride (e.g. VOC
           trainval at output stride 8), initialised from phase 1's last
           checkpoint.

Usage:
  python -m deeplab_tf.recipe \
      --phase1_flagfile=experiments/pascal_voc/xception65_phase1_train_aug_os16.flags \
      --phase2_flagfile=experiments/pascal_voc/xception65_phase2_trainval_os8.flags \
      --train_logdir=workspace/train/voc_xception65 \
      -- --dataset_dir=workspace/records/pascal_voc_seg

Each phase runs ``deeplab_tf.train`` with its flagfile (then the arguments
after ``--``, which apply to both phases) in ``<train_logdir>/phase1`` and
``<train_logdir>/phase2``; phase 2 gets ``--tf_initial_checkpoint`` =
phase 1's folder. Rerunning the command resumes where it stopped: a finished
phase 1 returns at once, an interrupted one continues from its checkpoint.
Each phase also runs alone as a plain ``deeplab_tf.train`` command.
"""
import os
import subprocess
import sys

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def define_flags():
  """Flags of this script only (defined at run time: deeplab_tf.train, imported
  beside it in one process, has its own --train_logdir)."""
  flags.DEFINE_string('phase1_flagfile', None,
                      'Flagfile of phase 1 (BatchNorm trained).')
  flags.DEFINE_string('phase2_flagfile', None,
                      'Flagfile of phase 2 (BatchNorm frozen).')
  flags.DEFINE_string('train_logdir', None,
                      'Root folder: phase1/ and phase2/ are created inside.')
  flags.DEFINE_enum('phases', 'both', ['both', '1', '2'],
                    'Run both phases, or only one of them.')
  flags.mark_flags_as_required(['phase1_flagfile', 'phase2_flagfile',
                                'train_logdir'])


def phase_commands(phase1_flagfile, phase2_flagfile, train_logdir, extra=()):
  """The two ``deeplab_tf.train`` command lines of the recipe."""
  phase1_dir = os.path.join(train_logdir, 'phase1')
  phase2_dir = os.path.join(train_logdir, 'phase2')
  base = [sys.executable, '-m', 'deeplab_tf.train']
  phase1 = base + ['--flagfile=%s' % phase1_flagfile] + list(extra) + [
      '--train_logdir=%s' % phase1_dir]
  phase2 = base + ['--flagfile=%s' % phase2_flagfile] + list(extra) + [
      '--train_logdir=%s' % phase2_dir,
      '--tf_initial_checkpoint=%s' % phase1_dir]
  return phase1, phase2


def main(argv):
  extra = [a for a in argv[1:] if a != '--']
  for path in (FLAGS.phase1_flagfile, FLAGS.phase2_flagfile):
    if not os.path.exists(path):
      print('ERROR: flagfile %s not found.' % path, file=sys.stderr)
      return 2
  phase1, phase2 = phase_commands(FLAGS.phase1_flagfile, FLAGS.phase2_flagfile,
                                  FLAGS.train_logdir, extra)
  todo = {'both': [(1, phase1), (2, phase2)], '1': [(1, phase1)],
          '2': [(2, phase2)]}[FLAGS.phases]
  for number, command in todo:
    print('=== phase %d: %s' % (number, ' '.join(command)), flush=True)
    result = subprocess.run(command, check=False)
    if result.returncode:
      print('ERROR: phase %d failed with exit status %d.'
            % (number, result.returncode), file=sys.stderr)
      return result.returncode
  print('=== done: %s' % FLAGS.train_logdir)
  return 0


def run():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
