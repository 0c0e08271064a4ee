"""CRF parameters (names of the DeepLab DenseCRF configuration) and presets.

DeepLab v1 (Chen et al., ICLR 2015, arXiv:1412.7062, Sec. 4.1) and v2 (Chen
et al., TPAMI 2017, arXiv:1606.00915, Sec. 4.1) refine the network's
softmax output with the fully connected CRF of Krähenbühl & Koltun (NIPS
2011). Its pairwise energy between pixels i and j is Potts times

    bi_w  * exp(-|p_i - p_j|^2 / (2 bi_xy_std^2) - |I_i - I_j|^2 / (2 bi_rgb_std^2))
  + pos_w * exp(-|p_i - p_j|^2 / (2 pos_xy_std^2))

(the papers' w1, sigma_alpha, sigma_beta, w2, sigma_gamma), p a pixel's
(x, y) position and I its RGB colour. Both papers fix w2 and sigma_gamma
(v1: w2 = 3, sigma_gamma = 3) and pick w1, sigma_alpha and sigma_beta by
cross-validation on a subset of val (see deeplab_tf/crf/search.py); the
released configurations carry the chosen values, collected in ``PRESETS``.
"""
import dataclasses

NORMALIZATIONS = ('after', 'symmetric', 'none')


@dataclasses.dataclass(frozen=True)
class CRFParams:
  """Fully connected CRF settings; defaults are the DeepLab v2 ResNet-101 ones.

  Attributes:
    bi_w: weight of the appearance (bilateral) kernel, w1.
    bi_xy_std: its position standard deviation in pixels, sigma_alpha.
    bi_rgb_std: its colour standard deviation in 0..255 units, sigma_beta.
    pos_w: weight of the smoothness (Gaussian) kernel, w2.
    pos_xy_std: its position standard deviation in pixels, sigma_gamma.
    num_iterations: mean-field iterations (10 in both papers).
    normalization: how each kernel's message is scaled, with
      D_i = sum_j k(f_i, f_j) (j = i included):
      'after': divided by D_i, so a message is a weighted mean of the other
        pixels' Q. Krähenbühl's 2011 densecrf code, which DeepLab's Caffe
        DenseCRF layer wraps, does this per-pixel normalisation by default
        (PottsPotential, per_pixel_normalization=true): the presets' weights
        were tuned with it.
      'symmetric': D_i^-1/2 k_ij D_j^-1/2, pydensecrf's default
        (NORMALIZE_SYMMETRIC).
      'none': the raw sums of the NIPS 2011 paper's equations.
    exclude_self: True (the paper, Sec. 4: messages over j != i) subtracts a
      pixel's own contribution from the filtered sums; False keeps it, as
      the released lattice code does (its filter includes the pixel itself).
    min_probability: probabilities are clipped to at least this before
      unary = -log(p). 1e-5 is pydensecrf's unary_from_softmax default
      clip, so comparisons with it share the unary.
  """
  bi_w: float = 4.0
  bi_xy_std: float = 67.0
  bi_rgb_std: float = 3.0
  pos_w: float = 3.0
  pos_xy_std: float = 1.0
  num_iterations: int = 10
  normalization: str = 'after'
  exclude_self: bool = True
  min_probability: float = 1e-5

  def __post_init__(self):
    for name in ('bi_w', 'pos_w'):
      value = getattr(self, name)
      if not value >= 0:
        raise ValueError('CRFParams.%s must be >= 0, got %r' % (name, value))
    for name in ('bi_xy_std', 'bi_rgb_std', 'pos_xy_std'):
      value = getattr(self, name)
      if not value > 0:
        raise ValueError('CRFParams.%s must be a positive standard deviation, '
                         'got %r' % (name, value))
    if (isinstance(self.num_iterations, bool) or
        int(self.num_iterations) != self.num_iterations or
        self.num_iterations < 0):
      raise ValueError('CRFParams.num_iterations must be an integer >= 0, '
                       'got %r' % (self.num_iterations,))
    if self.normalization not in NORMALIZATIONS:
      raise ValueError('CRFParams.normalization must be one of %s, got %r' %
                       (', '.join(NORMALIZATIONS), self.normalization))
    if not 0 < self.min_probability < 1:
      raise ValueError('CRFParams.min_probability must be in (0, 1), got %r' %
                       (self.min_probability,))

  def replace(self, **changes):
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)


# Values of the released DeepLab models; 10 mean-field iterations everywhere
# (v1 Sec. 4.1 fixes the number of mean-field iterations to 10; the v2 test
# prototxts' DenseCRF layer has max_iter: 10). The release files were read
# through their transcriptions in public ports (Caffe sources are not
# vendored here); the values agree across those ports.
PRESETS = {
    # DeepLab v2, ResNet-101 on PASCAL VOC 2012: the DenseCRF layer of the
    # release's test prototxt (dense_crf_param: max_iter 10, pos_w 3,
    # pos_xy_std 1, bi_w 4, bi_xy_std 67, bi_rgb_std 3).
    'deeplab_v2_resnet101_voc': CRFParams(
        bi_w=4.0, bi_xy_std=67.0, bi_rgb_std=3.0, pos_w=3.0, pos_xy_std=1.0),
    # DeepLab v2, VGG-16 (LargeFOV) on PASCAL VOC 2012: same layer in the
    # VGG-16 test prototxt (pos_w 2, pos_xy_std 2, bi_w 4, bi_xy_std 65,
    # bi_rgb_std 3).
    'deeplab_v2_vgg16_voc': CRFParams(
        bi_w=4.0, bi_xy_std=65.0, bi_rgb_std=3.0, pos_w=2.0, pos_xy_std=2.0),
    # DeepLab v1, DeepLab-CRF-LargeFOV on PASCAL VOC 2012: the values listed
    # for the "FOV" model in the v1 release's model list (bi_w 4, bi_xy_std
    # 121, bi_rgb_std 5, pos_w 3, pos_xy_std 3; w2 = sigma_gamma = 3 as fixed
    # in v1 Sec. 4.1).
    'deeplab_v1_largefov_voc': CRFParams(
        bi_w=4.0, bi_xy_std=121.0, bi_rgb_std=5.0, pos_w=3.0, pos_xy_std=3.0),
}


def get_params(preset=None, **overrides):
  """A preset's CRFParams with some fields overridden.

  Args:
    preset: a key of ``PRESETS``, a ``CRFParams``, or None for the defaults.
    **overrides: CRFParams fields; None values are ignored.

  Returns:
    CRFParams.

  Raises:
    KeyError: unknown preset name.
    ValueError: an override out of range.
  """
  if preset is None:
    params = CRFParams()
  elif isinstance(preset, CRFParams):
    params = preset
  elif preset in PRESETS:
    params = PRESETS[preset]
  else:
    raise KeyError('unknown CRF preset %r; expected one of %s' %
                   (preset, ', '.join(sorted(PRESETS))))
  changes = {k: v for k, v in overrides.items() if v is not None}
  return params.replace(**changes) if changes else params
