"""SBD (Hariharan et al., the PASCAL "aug" labels): ``cls/*.mat`` files."""
import numpy as np
import tensorflow as tf


def load_sbd_mat(path):
  """``GTcls.Segmentation`` of an SBD ``cls/*.mat`` file as uint8 [H, W].

  Needs scipy (``pip install deeplab_tf[sbd]`` or ``pip install scipy``).
  """
  try:
    import scipy.io  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError('reading SBD .mat files needs scipy: pip install scipy '
                      '(or pip install -e .[sbd])') from None
  with tf.io.gfile.GFile(path, 'rb') as f:
    mat = scipy.io.loadmat(f, squeeze_me=True, struct_as_record=False)
  if 'GTcls' not in mat:
    raise ValueError('no GTcls struct in the .mat file (keys: %s)' % sorted(
        k for k in mat if not k.startswith('__')))
  segmentation = np.asarray(getattr(mat['GTcls'], 'Segmentation'))
  if segmentation.ndim != 2:
    raise ValueError('GTcls.Segmentation has shape %s, expected 2-D' % (
        segmentation.shape,))
  return segmentation
