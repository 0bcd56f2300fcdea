"""Dense CRF (pydensecrf) over CAM scores: the operations behind the ``crf`` stage's pseudo
labels and AffinityNet's score maps, the random walk's scores and the segment stage's
refinement.

Scores are [background, present-class CAMs]; the background is a constant (``threshold``
labels) or (1 - max cam)^alpha (the authors' low/high alpha). The unary is -log of the scores
as given (clipped at 1e-5, pydensecrf's ``unary_from_softmax``), as in the authors'
``crf_inference``: the scores are not softmaxed.
"""

from __future__ import annotations

import numpy as np

from seamlib.config import CRFConfig
from seamlib.errors import InputError


def _pydensecrf():
    """Import pydensecrf lazily: it is the optional ``crf`` extra."""
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as e:
        raise InputError("the dense CRF needs pydensecrf: install the 'crf' extra "
                          "(pip install 'seamlib[crf]', i.e. pydensecrf2)") from e
    return dcrf, unary_from_softmax


def dense_crf(image: np.ndarray, probs: np.ndarray, cfg: CRFConfig) -> np.ndarray:
    """CRF marginals (C, H, W) float32 of scores ``probs`` (C, H, W) on an RGB uint8 image."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"dense_crf: image must be (H, W, 3) uint8, got {image.dtype} "
                         f"{image.shape}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise InputError(f"dense_crf: scores must be (C, H, W) with (H, W) = {image.shape[:2]}, "
                         f"got {probs.shape}")
    dcrf, unary_from_softmax = _pydensecrf()
    n, height, width = probs.shape
    crf = dcrf.DenseCRF2D(width, height, n)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs.astype(np.float32))))
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    # pydensecrf takes the image as a writable C-contiguous buffer: pass a copy.
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb,
                             rgbim=np.array(image, order="C"), compat=cfg.bilateral_compat)
    q = crf.inference(cfg.iterations)
    return np.asarray(q, dtype=np.float32).reshape(n, height, width)


def with_background(cams: np.ndarray, bg: float, power: bool) -> np.ndarray:
    """[background, cams] (K+1, H, W): bg constant, or (1 - max cam)^bg when ``power``."""
    if power:
        top = cams.max(0) if len(cams) else np.zeros(cams.shape[1:], np.float32)
        background = (1 - top) ** bg
    else:
        background = np.full(cams.shape[1:], bg, dtype=np.float32)
    return np.concatenate([background[None].astype(np.float32), cams.astype(np.float32)])


def to_label(scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Argmax over [background, classes...] -> (H, W) uint8 VOC class indices."""
    lut = np.concatenate([[0], classes]).astype(np.uint8)
    return lut[scores.argmax(0)]


def crf_label(image: np.ndarray, cams: np.ndarray, classes: np.ndarray, bg: float,
              power: bool, cfg: CRFConfig) -> np.ndarray:
    """CRF pseudo label of one image from its CAMs and a background score (see module doc)."""
    return to_label(dense_crf(image, with_background(cams, bg, power), cfg), classes)


def affinity_scores(image: np.ndarray, cams: np.ndarray, classes: np.ndarray,
                    cfg: CRFConfig) -> tuple[np.ndarray, np.ndarray]:
    """The low- and high-alpha CRF score maps (la, ha), each (K+1, H, W) over [background,
    classes] (the authors' ``_crf_with_alpha`` at ``low_alpha`` and ``high_alpha``)."""
    la = dense_crf(image, with_background(cams, cfg.low_alpha, True), cfg)
    ha = dense_crf(image, with_background(cams, cfg.high_alpha, True), cfg)
    return la, ha
