"""Stage train_cam: SEAM (or, with ER/ECR off, the plain CAM baseline) on image-level labels.

The loop (poly-lr SGD over the four reference parameter groups, checkpoints, resume) is
``seamlib.trainer.fit``; this stage supplies the data, the network and the SEAM loss.
Output: ``<out_dir>/model.pth`` (released key names).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from seamlib import trainer
from seamlib.config import Config
from seamlib.data.datasets import ClassificationDataset
from seamlib.data.lists import check_inputs, labels_for
from seamlib.device import device_kind, resolve_device
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.models.weights import load_weights, require_weights, save_released
from seamlib.transforms import parse_transform


def train_cam(cfg: Config, out_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Train the SEAM network the config describes; return the path of the trained weights."""
    require_weights(cfg.model)
    source = cfg.data.label_source
    check_inputs(cfg.data.root, [cfg.data.train_list], need_masks=source == "mask",
                 need_xml=source == "xml", progress=progress)
    labels = labels_for(cfg.data.root, cfg.data.train_list, cfg.data.label_source)
    dataset = ClassificationDataset.from_config(cfg.data, labels)
    torch.manual_seed(cfg.train_cam.seed)  # the network's initialisation
    net = build_model(cfg.model)
    if cfg.model.weights:
        print(load_weights(net, cfg.model.weights))
    transform = parse_transform(cfg.loss.transform)

    def loss_fn(net: torch.nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
        images, targets, _ = batch
        return seam_loss(net, images, targets, transform, cfg.loss)

    return trainer.fit(net, loss_fn, dataset, cfg.train_cam, out_dir or cfg.train_cam.out_dir,
                       device=resolve_device(cfg.device), num_workers=cfg.data.num_workers,
                       settings=run_settings(cfg), progress=progress, save=save_released)


def run_settings(cfg: Config) -> dict:
    """The settings a SEAM training run depends on (recorded and checked by the trainer).

    The device's kind is among them: CUDA arithmetic differs from the CPU's. Other stages'
    settings (CAMs, CRF, ...) cannot change the weights."""
    return {**{stage: dataclasses.asdict(getattr(cfg, stage))
               for stage in ("data", "model", "loss", "train_cam")},
            "device": device_kind(cfg.device)}
