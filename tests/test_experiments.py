"""Every flagfile in experiments/ parses with the train flags and builds its model."""
import glob
import os

import pytest
from absl import flags

from deeplab_tf import model_flags
from deeplab_tf import train  # pylint: disable=unused-import  (defines the flags)
from deeplab_tf.models import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGFILES = sorted(glob.glob(os.path.join(REPO, 'experiments', '**', '*.flags'),
                             recursive=True))


def test_there_are_flagfiles():
  assert len(FLAGFILES) >= 4


@pytest.mark.parametrize('path', FLAGFILES, ids=lambda p: os.path.relpath(p, REPO))
def test_flagfile_parses_and_builds(path):
  fv = flags.FLAGS
  fv.unparse_flags()
  try:
    fv(['train', '--flagfile=%s' % path, '--train_logdir=/tmp/x',
        '--dataset_dir=/tmp/x'])
    options = model_flags.model_options_from_flags(crop_size=fv.train_crop_size)
    model = build_model(options)
    assert model.output['merged_logits'].shape[-1] == options.num_classes
    with open(path) as f:
      header = [l for l in f if l.startswith('#')]
    assert header, '%s has no comment saying what it reproduces' % path
  finally:
    fv.unparse_flags()
