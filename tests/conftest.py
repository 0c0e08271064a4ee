"""Shared test fixtures: the reference folder beside the repository, small options."""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top

from deeplab_tf.conformance import shared_reference_dir  # pylint: disable=g-import-not-at-top

REFERENCE_DIR = shared_reference_dir(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def reference_dir():
  if REFERENCE_DIR is None:
    pytest.fail('../shared/reference not found beside the repository: the '
                'conformance fixtures are required for these tests.')
  return REFERENCE_DIR
