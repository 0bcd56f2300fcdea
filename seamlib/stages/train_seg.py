"""Stage train_seg: DeepLab-LargeFOV retrained on the pseudo labels (the authors'
semantic-segmentation-codebase, experiment seamv1-pseudovoc), through the one training loop
``seamlib.trainer.fit``. Output: ``<out_dir>/model.pth``; stages/segment.py predicts with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.config import TEST_SETTINGS, Config
from seamlib.data.lists import check_inputs
from seamlib.data.segmentation_data import PseudoLabelDataset
from seamlib.data.voc import IGNORE
from seamlib.device import device_kind, resolve_device
from seamlib.errors import InputError
from seamlib.models.deeplab import build_deeplab
from seamlib.models.weights import load_weights
from seamlib.trainer import fit


def segmentation_loss(net: nn.Module, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pixel-wise cross entropy of the logits against the labels, void (255) ignored."""
    images, labels = batch
    return {"loss": F.cross_entropy(net(images), labels, ignore_index=IGNORE)}


def train_seg(cfg: Config, pseudo_label_dir: str | Path, out_dir: str | Path | None = None,
            progress: bool = True) -> Path:
    """Train DeepLab-LargeFOV on the pseudo labels of ``cfg.segment.train_list``; return the
    path of the trained weights (``<out_dir>/model.pth``, written by ``seamlib.trainer.fit``)."""
    labels = Path(pseudo_label_dir)
    if not any(labels.glob("*.png")) and any(labels.glob("*.npz")):
        raise InputError(f"{labels}: holds .npz files (CAMs or CRF score maps), not pseudo-label "
                         "PNGs; pass the random_walk folder, or another of <id>.png label maps")
    check_inputs(cfg.data.root, [cfg.segment.train_list], need_masks=str(labels.absolute()),
                 progress=progress)
    dataset = PseudoLabelDataset(cfg.data.root, cfg.segment.train_list, pseudo_label_dir,
                                 cfg.segment, cfg.model.num_classes)
    torch.manual_seed(cfg.train_seg.seed)  # the new layers' initialisation, as in train_cam
    net = build_deeplab(cfg.model, cfg.segment)
    init = cfg.segment.init_weights or cfg.model.weights
    if init:  # only the trunk: a SEAM head or ImageNet classifier in the file is ignored
        print(load_weights(net, init, kind="imagenet"))
    seg = {k: v for k, v in dataclasses.asdict(cfg.segment).items() if k not in TEST_SETTINGS}
    settings = {"segment": {**seg, "init_weights": init},
                "train_seg": dataclasses.asdict(cfg.train_seg),
                "model": {k: getattr(cfg.model, k) for k in ("backbone", "width", "num_classes")},
                "data": {"root": cfg.data.root, "pseudo_labels": str(pseudo_label_dir)},
                "device": device_kind(cfg.device)}
    return fit(net, segmentation_loss, dataset, cfg.train_seg, out_dir or cfg.train_seg.out_dir,
               device=resolve_device(cfg.device), num_workers=cfg.data.num_workers,
               settings=settings, progress=progress)
