"""Stage crf: dense CRF (pydensecrf) over CAM files -> pseudo labels or CRF score maps.

Two kinds of output, both from the scores [background, present-class CAMs]:

* ``threshold``: background = the constant ``CRFConfig.bg_threshold``; the CRF's argmax is a
  segmentation pseudo label, written as a PNG.
* ``affinity``: what AffinityNet trains on. Background (1 - max cam)^alpha with the low alpha
  (4: confident foreground, "la") and the high alpha (24: confident background, "ha"), one CRF
  each; both CRF score maps are kept, as the authors do (one npz per image, see
  :func:`seamlib.formats.save_score_maps`). ``seamlib.data.affinity_data`` augments them with
  the image, average-pools them to stride 8 and only then derives the labels.

The CRF itself is in ``seamlib.densecrf``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from seamlib.config import CRFConfig
from seamlib.data.datasets import VOCImages
from seamlib.data.lists import check_inputs
from seamlib.densecrf import affinity_scores, crf_label
from seamlib.errors import InputError
from seamlib.formats import load_image_cams, save_label_png, save_score_maps
from seamlib.parallel import run_parallel
from seamlib.provenance import Manifest, cam_hashes

LABEL_KINDS = ("threshold", "affinity")
SUFFIXES = {"threshold": ".png", "affinity": ".npz"}  # the output file of each kind


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
