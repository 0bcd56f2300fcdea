"""Stage cams: multi-scale, flip-augmented CAM inference (authors' infer_SEAM).

For each image: the network runs at every scale and its flip; each pass's foreground map
(PCM output by default) is upsampled to the image size, masked by the image's labels,
un-flipped and summed; negatives are clamped and each class is min-max normalised. Output per
image: ``<out>/<id>.npz`` with ``classes`` (1-based, present classes only) and ``cams``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seamlib.cam_ops import EPS, normalise_maps
from seamlib.data.datasets import MultiScaleDataset
from seamlib.io import atomic_write
from seamlib.models import SEAMNet


@torch.no_grad()
def multiscale_cam(net: SEAMNet, images: list[torch.Tensor], label: torch.Tensor,
                   size: tuple[int, int], use_pcm: bool = True) -> torch.Tensor:
    """(20, H, W) normalised foreground CAM from passes [s0, s0 flipped, s1, ...]."""
    total = torch.zeros(len(label), *size)
    for i, image in enumerate(images):
        out = net(image[None], with_pcm=use_pcm)
        cam = (out.cam_rv if use_pcm else out.cam)[:, 1:]
        cam = F.interpolate(cam, size, mode="bilinear", align_corners=False)[0]
        cam = cam * label[:, None, None]
        total += cam.flip(-1) if i % 2 else cam
    return normalise_cam(total)


def normalise_cam(cam: torch.Tensor) -> torch.Tensor:
    """Clamp at 0 and min-max normalise each class map; values within EPS of the min -> 0."""
    return normalise_maps(cam, lift_low=True)


def save_cam(path: Path, cam: torch.Tensor, label: torch.Tensor) -> None:
    """Keep the classes present in the label; write atomically as float16 npz."""
    classes = torch.nonzero(label > EPS).flatten()
    arrays = {"classes": (classes + 1).numpy().astype(np.int64),
              "cams": cam[classes].numpy().astype(np.float16)}
    atomic_write(path, lambda tmp: np.savez(tmp.open("wb"), **arrays))


def load_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cams (K, H, W) float32, classes (K,) 1-based) written by ``save_cam``."""
    with np.load(path) as data:
        return data["cams"].astype(np.float32), data["classes"]


def infer_cams(net: SEAMNet, dataset: MultiScaleDataset, out_dir: str | Path,
               use_pcm: bool = True, progress: bool = True) -> Path:
    """Write the CAM of every image of ``dataset`` to ``out_dir``; images already done are
    skipped, so an interrupted run resumes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    todo = [i for i, iid in enumerate(dataset.ids) if not (out / f"{iid}.npz").exists()]
    for index in tqdm(todo, desc=f"cams -> {out}", disable=not progress):
        sample = dataset[index]
        cam = multiscale_cam(net, sample["images"], sample["label"], sample["size"], use_pcm)
        save_cam(out / f"{sample['id']}.npz", cam, sample["label"])
    return out


def iter_cams(cam_dir: str | Path, ids: list[str]) -> Iterator[tuple[str, np.ndarray,
                                                                     np.ndarray]]:
    """Yield (id, cams, classes) for ``ids``; a missing file is an error naming it."""
    for iid in ids:
        path = Path(cam_dir) / f"{iid}.npz"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no CAM for {iid!r}; run the cams stage first")
        cams, classes = load_cam(path)
        yield iid, cams, classes
