"""Fully connected CRF of DeepLab v1/v2 (Krähenbühl & Koltun, NIPS 2011).

  dense_crf(image, probabilities, ...)       numpy in/out, one image
  dense_crf_tf(image, probabilities, params) TF ops, [H,W,.] or [B,H,W,.]
  CRFParams, PRESETS, get_params             settings and published values
  brute_force_crf(...)                       exact O(N^2) reference (tiny images)

See inference.py for the mean-field updates and permutohedral.py for the
lattice filter.
"""
from deeplab_tf.crf.inference import dense_crf
from deeplab_tf.crf.inference import dense_crf_tf
from deeplab_tf.crf.inference import refine_batch
from deeplab_tf.crf.params import CRFParams
from deeplab_tf.crf.params import get_params
from deeplab_tf.crf.params import NORMALIZATIONS
from deeplab_tf.crf.params import PRESETS
from deeplab_tf.crf.reference import brute_force_crf

__all__ = ['dense_crf', 'dense_crf_tf', 'refine_batch', 'CRFParams', 'get_params',
           'NORMALIZATIONS', 'PRESETS', 'brute_force_crf']
