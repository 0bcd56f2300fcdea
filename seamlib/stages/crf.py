"""Stage crf: dense CRF (pydensecrf) over CAM files -> pseudo labels or CRF score maps.

Two kinds of output, both from the scores [background, present-class CAMs]:

* ``threshold``: background = the constant ``CRFConfig.bg_threshold``; the CRF's argmax is a
  segmentation pseudo label, written as a PNG.
* ``affinity``: what AffinityNet trains on. Background (1 - max cam)^alpha with the low alpha
  (4: confident foreground, "la") and the high alpha (24: confident background, "ha"), one CRF
  each; both CRF score maps are kept, as the authors do (one npz per image, see
  :func:`save_score_maps`). ``seamlib.data.affinity_data`` augments them with the image,
  average-pools them to stride 8 and only then derives the labels.

The unary is -log of the scores as given (clipped at 1e-5, pydensecrf's
``unary_from_softmax``), as in the authors' ``crf_inference``: the scores are not softmaxed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from seamlib.config import CRFConfig
from seamlib.data.datasets import VOCImages
from seamlib.data.lists import check_inputs
from seamlib.data.voc import save_label_png
from seamlib.errors import InputError
from seamlib.io import atomic_write
from seamlib.parallel import run_parallel
from seamlib.provenance import Manifest, cam_hashes
from seamlib.stages.cams import load_cam

LABEL_KINDS = ("threshold", "affinity")
SUFFIXES = {"threshold": ".png", "affinity": ".npz"}  # the output file of each kind


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


def save_score_maps(path: Path, la: np.ndarray, ha: np.ndarray, classes: np.ndarray) -> None:
    """Write la and ha (K+1, H, W) and the 1-based classes (K,) of their channels 1..K as a
    float16 npz, atomically."""
    if la.shape != ha.shape or la.ndim != 3 or len(la) != len(classes) + 1:
        raise InputError(f"{path}: la {la.shape} and ha {ha.shape} must both be (K+1, H, W) "
                         f"for {len(classes)} classes")
    arrays = {"la": la.astype(np.float16), "ha": ha.astype(np.float16),
              "classes": np.asarray(classes, dtype=np.int64)}

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:
            np.savez(file, **arrays)

    atomic_write(path, write)


def load_score_maps(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(la, ha (K+1, H, W) float32, classes (K,)) written by :func:`save_score_maps`; a file
    that cannot be read is an error naming it."""
    try:
        with np.load(path) as data:
            return data["la"].astype(np.float32), data["ha"].astype(np.float32), data["classes"]
    except FileNotFoundError:
        raise
    except Exception as err:  # zipfile.BadZipFile, EOFError, KeyError, ValueError...
        raise InputError(f"{path}: cannot read these CRF score maps ({err!r})") from err


# ------------------------------------------------------------------------------------ stage


def load_image_cams(cam_dir: Path, images: VOCImages, image_id: str,
                    size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(cams, classes) of one image, checked against the image's (H, W)."""
    cam_path = cam_dir / f"{image_id}.npz"
    cams, classes = load_cam(cam_path)
    if cams.shape[1:] != tuple(size):
        raise InputError(f"{cam_path}: CAMs are {cams.shape[1:]} but the image "
                         f"{images.image_path(image_id)} is {tuple(size)}")
    return cams, classes


def _settings(cfg: CRFConfig, kind: str) -> dict:
    """The settings an output depends on (the pool size does not change results)."""
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "workers"}
    return {"kind": kind, **values}


class _Job:
    """One image's work (picklable for the process pool): load, CRF, write its output."""

    def __init__(self, images: VOCImages, cam_dir: Path, out: Path, kind: str,
                 cfg: CRFConfig) -> None:
        self.images, self.cam_dir, self.out, self.kind, self.cfg = images, cam_dir, out, kind, cfg

    def __call__(self, image_id: str) -> str:
        image = np.asarray(self.images.load_image(image_id))
        cams, classes = load_image_cams(self.cam_dir, self.images, image_id, image.shape[:2])
        path = self.out / f"{image_id}{SUFFIXES[self.kind]}"
        if self.kind == "affinity":
            save_score_maps(path, *affinity_scores(image, cams, classes, self.cfg), classes)
        else:
            save_label_png(path, crf_label(image, cams, classes, self.cfg.bg_threshold, False,
                                           self.cfg))
        return image_id


def crf_stage(cam_dir: str | Path, root: str | Path, list_name: str, out_dir: str | Path,
              cfg: CRFConfig, kind: str = "affinity", progress: bool = True) -> Path:
    """Write the ``kind`` CRF output of every image of a list to ``out_dir``: a label PNG (VOC
    palette) for "threshold", an npz of the la/ha score maps for "affinity".

    Resumable: ``out_dir/manifest.json`` records the settings and the sha256 of the CAM file
    each output was made from; an image is skipped only when its output exists and its CAM
    file is unchanged. A folder made with other settings is an error.
    """
    if kind not in LABEL_KINDS:
        raise InputError(f"kind must be one of {LABEL_KINDS}, got {kind!r}")
    check_inputs(root, [list_name], progress=progress)
    cam_dir, out = Path(cam_dir), Path(out_dir)
    images = VOCImages(root, list_name)
    hashes = cam_hashes(cam_dir, images.ids, images.list_path)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, _settings(cfg, kind), hashes, suffix=SUFFIXES[kind])
    job = _Job(images, cam_dir, out, kind, cfg)
    done = run_parallel(job, manifest.todo, cfg.workers, context="fork")
    for image_id, _ in tqdm(done, total=len(manifest.todo), desc=f"crf {kind} -> {out}",
                            disable=not progress):
        manifest.finished(image_id)
    manifest.save()
    return out
