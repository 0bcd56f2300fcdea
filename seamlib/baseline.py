"""The plain-CAM baseline and the difficulty measurement of a benchmark.

The baseline is SEAM with ER, ECR and the PCM terms off (classification loss only, one
branch); its CAMs come from fc8. The synthetic benchmark's difficulty is set once on these
numbers, never by looking at SEAM's results.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from seamlib.bench import hardware
from seamlib.cams import cams_stage
from seamlib.config import Config, apply_overrides
from seamlib.data.datasets import ClassificationDataset
from seamlib.data.lists import labels_for
from seamlib.evaluate import average_precision, evaluate, json_safe
from seamlib.models import SEAMNet, build_model
from seamlib.models.weights import load_weights
from seamlib.train import train

BASELINE = {"loss": {"use_er": False, "use_ecr": False, "use_rvmin": False}}


def baseline_config(cfg: Config) -> Config:
    """The plain CAM classifier of a profile: same data, model and optimiser, cls loss only."""
    cfg = apply_overrides(cfg, BASELINE)
    cfg.train.out_dir = str(Path(cfg.train.out_dir) / "baseline")
    return cfg


@torch.no_grad()
def classification_map(net: SEAMNet, cfg: Config, list_name: str) -> float:
    """Mean AP of image-level scores (pooled fc8 CAMs) on whole images at the training scale
    (long side = crop size, padded square), over the classes present."""
    net.eval()
    labels = labels_for(cfg.data.root, list_name, cfg.data.label_source)
    data = ClassificationDataset.from_config(cfg.data, labels, list_name, train=False)
    out, targets = [], []
    for images, target, _ in DataLoader(data, batch_size=32):
        out.append(net(images, with_pcm=False).cam[:, 1:].mean((2, 3)))
        targets.append(target)
    return float(np.nanmean(average_precision(torch.cat(out).numpy(), torch.cat(targets).numpy())))


def load_seam(cfg: Config, weights: str | Path) -> SEAMNet:
    """The SEAM network of ``cfg`` with trained ``weights``."""
    net = build_model(cfg.model)
    load_weights(net, weights)
    return net


def measure_difficulty(cfg: Config, command: str) -> dict:
    """Train the baseline, then measure classification mAP on val and CAM mIoU on train
    (best threshold, and the threshold chosen on val)."""
    base = baseline_config(cfg)
    weights = train(base)
    root, out = base.data.root, Path(base.train.out_dir)
    for split in (base.data.cam_list, base.data.val_list):
        cams_stage(base, weights, split, out / f"cams_{split}", use_pcm=False)
    on_train = evaluate(out / f"cams_{base.data.cam_list}", root, base.data.cam_list, kind="cam")
    on_val = evaluate(out / f"cams_{base.data.val_list}", root, base.data.val_list, kind="cam")
    chosen = [r["threshold"] for r in on_train["curve"]].index(on_val["threshold"])
    result = {
        "val_map": classification_map(load_seam(base, weights), base, base.data.val_list),
        "train_miou_best": on_train["miou"], "best_threshold": on_train["threshold"],
        "val_threshold": on_val["threshold"],
        "train_miou_at_val_threshold": on_train["curve"][chosen]["miou"],
        "mfp": on_train["mfp"], "mfn": on_train["mfn"], "per_class_iou": on_train["iou"],
        "curve": on_train["curve"],
        "train_minutes": json.loads((out / "summary.json").read_text())["seconds"] / 60,
        "command": command, "seed": base.train.seed, "hardware": hardware(),
        "config": dataclasses.asdict(base),
    }
    return json_safe(result)  # classes absent from the list have NaN IoU: null in JSON

