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


@pytest.fixture(autouse=True)
def _fresh_global_seed():
  """Every test starts with TensorFlow's global seed unset, whatever ran
  before: stateful random ops combine it with their op seed, so a test that
  sets it (Keras' set_random_seed, tf.random.set_seed) would otherwise change
  the draws of the tests after it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.random.set_seed(None)
  yield
  tf.random.set_seed(None)
