"""Stage random walk: AffinityNet propagates the CAMs (authors' infer_aff) -> pseudo labels.

Per image: the network sees the whole image (zero-padded to a multiple of 8); its pair
affinities become a dense (n, n) matrix A over the n stride-8 pixels, with self-loops, raised
to the power beta. The transition matrix T = D^-1 A (rows sum to 1) is raised to 2^logt by
squaring logt times. The scores [(1 - max cam)^alpha, cams] of the present classes are
zero-padded like the image and average-pooled 8x8 to the same grid; the walk gives
v' = T^(2^logt) v per class. The authors normalise A's columns and multiply the class rows from
the left, which is the same product for a symmetric A. v' is upsampled bilinearly to the padded
size, cropped, and its argmax over [background, classes] is the pseudo label.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seamlib.config import Config
from seamlib.data.datasets import VOCImages, normalise
from seamlib.data.lists import check_inputs
from seamlib.densecrf import to_label, with_background
from seamlib.device import resolve_device
from seamlib.formats import load_image_cams, save_label_png, sha256_file
from seamlib.models.affinity import STRIDE, AffinityNet, build_affinity_net
from seamlib.models.weights import load_weights
from seamlib.provenance import Manifest, cam_hashes


def transition_matrix(aff: torch.Tensor, beta: float, logt: int) -> torch.Tensor:
    """(D^-1 A^beta)^(2^logt) of a dense affinity matrix A (n, n), by repeated squaring."""
    power = aff ** beta
    trans = power / power.sum(dim=1, keepdim=True)
    for _ in range(logt):
        trans = trans @ trans
    return trans


def propagate(scores: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Random walk of score maps (C, h, w) with a transition matrix (hw, hw)."""
    c, height, width = scores.shape
    return (trans @ scores.reshape(c, -1).T).T.reshape(c, height, width)


def pad_to_stride(x: torch.Tensor) -> torch.Tensor:
    """Zero-pad the last two dimensions (bottom, right) up to multiples of the stride."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, -width % STRIDE, 0, -height % STRIDE))


@torch.no_grad()
def random_walk_label(net: AffinityNet, image: torch.Tensor, cams: np.ndarray,
                      classes: np.ndarray, cfg: Config) -> np.ndarray:
    """Pseudo label (H, W) uint8 of one normalised image (3, H, W) and its CAMs (K, H, W)."""
    rw = cfg.random_walk
    height, width = image.shape[1:]
    device = next(net.parameters()).device
    trans = transition_matrix(net.dense(pad_to_stride(image)[None].to(device)), rw.beta,
                              rw.logt)
    scores = torch.from_numpy(with_background(cams, rw.alpha, power=True)).to(device)
    scores = F.avg_pool2d(pad_to_stride(scores)[None], STRIDE, STRIDE)[0]
    walked = propagate(scores, trans)
    padded = (height + -height % STRIDE, width + -width % STRIDE)
    walked = F.interpolate(walked[None], padded, mode="bilinear", align_corners=False)[0]
    return to_label(walked[:, :height, :width].cpu().numpy(), classes)


def load_affinity_net(cfg: Config, weights: str | Path) -> AffinityNet:
    """A trained AffinityNet (released or our key names, strictly checked), in eval mode."""
    net = build_affinity_net(cfg.model, cfg.affinity.radius)
    load_weights(net, weights, kind="seam")
    return net.to(resolve_device(cfg.device)).eval()


def random_walk_stage(cam_dir: str | Path, aff_weights: str | Path, root: str | Path,
                      list_name: str, out_dir: str | Path, cfg: Config,
                      progress: bool = True) -> Path:
    """Write the random-walk pseudo label PNG (VOC palette) of every image of a list.

    Resumable like the crf stage: ``out_dir/manifest.json`` ties each PNG to its CAM file's
    sha256 and the folder to the AffinityNet weights and the walk's settings.
    """
    check_inputs(root, [list_name], progress=progress)
    cam_dir, out = Path(cam_dir), Path(out_dir)
    images = VOCImages(root, list_name)
    hashes = cam_hashes(cam_dir, images.ids, images.list_path)
    net = load_affinity_net(cfg, aff_weights)
    settings = {"random_walk": dataclasses.asdict(cfg.random_walk),
                "radius": cfg.affinity.radius, "weights": sha256_file(aff_weights)}
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, settings, hashes)
    for image_id in tqdm(manifest.todo, desc=f"random walk -> {out}", disable=not progress):
        image = normalise(images.load_image(image_id))
        cams, classes = load_image_cams(cam_dir, images, image_id, image.shape[1:])
        save_label_png(out / f"{image_id}.png",
                       random_walk_label(net, image, cams, classes, cfg))
        manifest.finished(image_id)
    manifest.save()
    return out
