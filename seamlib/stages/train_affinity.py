"""Stage affinity: train AffinityNet on the CRF score maps (authors' train_aff).

Loss: for the pair affinities a and the background-positive, foreground-positive and negative
pair masks, bg = sum(-log(a + 1e-5)) / n_bg, fg likewise, neg = sum(-log(1 + 1e-5 - a)) / n_neg
(each count + 1e-5); loss = bg / 4 + fg / 4 + neg / 2.
Output: ``<out_dir>/model.pth`` from the shared trainer, under the authors' released names.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from seamlib.config import Config
from seamlib.data.affinity_data import AffinityDataset
from seamlib.data.lists import check_inputs
from seamlib.device import device_kind, resolve_device
from seamlib.errors import InputError
from seamlib.models.affinity import AffinityNet, build_affinity_net, pair_labels
from seamlib.models.weights import load_weights, save_released
from seamlib.trainer import fit

EPS = 1e-5


def affinity_loss(aff: torch.Tensor, bg: torch.Tensor, fg: torch.Tensor,
                  neg: torch.Tensor) -> dict[str, torch.Tensor]:
    """The balanced AffinityNet loss and its three terms (see module doc)."""
    bg_loss = (-bg * torch.log(aff + EPS)).sum() / (bg.sum() + EPS)
    fg_loss = (-fg * torch.log(aff + EPS)).sum() / (fg.sum() + EPS)
    neg_loss = (-neg * torch.log(1 + EPS - aff)).sum() / (neg.sum() + EPS)
    return {"loss": bg_loss / 4 + fg_loss / 4 + neg_loss / 2, "bg_loss": bg_loss,
            "fg_loss": fg_loss, "neg_loss": neg_loss}


def affinity_loss_fn(net: AffinityNet, batch) -> dict[str, torch.Tensor]:
    """Trainer loss of one batch (images, stride-8 label maps, ids)."""
    images, labels = batch[0], batch[1]
    aff = net(images)
    if aff.shape[1] == 0:
        raise InputError(f"affinity.crop_size {images.shape[-1]} gives a {labels.shape[-1]}-wide "
                         "label map: too small for any pair; use a larger crop")
    targets = pair_labels(labels, net.radius)
    if targets[0].shape != aff.shape:
        raise InputError(f"label maps {tuple(labels.shape[1:])} give pairs "
                         f"{tuple(targets[0].shape)} but the network's stride-8 features give "
                         f"{tuple(aff.shape)}: labels must be the crop at stride 8")
    return affinity_loss(aff, *targets)


def train_affinity(cfg: Config, score_dir: str | Path, out_dir: str | Path,
                   progress: bool = True) -> Path:
    """Train AffinityNet on the ``cfg.data.train_list`` images and the labels from their CRF
    score maps in ``score_dir`` (the crf stage's "affinity" kind); the trunk starts from
    ``cfg.model.weights`` (ImageNet, as the authors do; only the trunk of any file is used).
    Returns the trained weights' path."""
    check_inputs(cfg.data.root, [cfg.data.train_list], progress=progress)
    torch.manual_seed(cfg.train_affinity.seed)  # the new layers' initialisation, as in train_cam
    net = build_affinity_net(cfg.model, cfg.affinity.radius)
    if cfg.model.weights:
        load_weights(net, cfg.model.weights, kind="imagenet")
    aff = cfg.affinity
    dataset = AffinityDataset(cfg.data.root, cfg.data.train_list, score_dir, aff.crop_size,
                              aff.resize_long, aff.color_jitter)
    settings = {name: dataclasses.asdict(getattr(cfg, name))
                for name in ("data", "model", "affinity", "train_affinity")}
    settings["inputs"] = {"score_dir": str(score_dir)}
    settings["device"] = device_kind(cfg.device)
    return fit(net, affinity_loss_fn, dataset, cfg.train_affinity, out_dir,
               device=resolve_device(cfg.device), num_workers=cfg.data.num_workers,
               settings=settings, progress=progress, save=save_released)
