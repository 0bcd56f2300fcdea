"""The difficulty measurement of a benchmark, on the plain-CAM baseline.

The baseline is SEAM with ER, ECR and the PCM terms off (``seamlib.config.VARIANTS``); its
CAMs come from fc8. The measurement is the baseline run of ``seam compare`` for the profile's
seed (trained, or reused when it exists) plus the classification mAP on val. The synthetic
benchmark's difficulty is set once on these numbers, never by looking at SEAM's results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from experiments.compare import run_method
from seamlib.config import Config, variant_config
from seamlib.data.voc import CLASSES
from seamlib.device import hardware, resolve_device
from seamlib.formats import json_safe
from seamlib.models import SEAMNet, build_model
from seamlib.models.weights import load_weights
from seamlib.stages.evaluate import THRESHOLDS
from seamlib.trainer import MODEL
from study.classification import average_precision, image_scores


def baseline_config(cfg: Config) -> Config:
    """The plain CAM classifier of a profile for its seed: the compare run of the baseline."""
    return variant_config(cfg, "baseline", cfg.train_cam.seed)


def classification_ap(net: SEAMNet, cfg: Config, list_name: str) -> np.ndarray:
    """Per-class AP (20 foreground classes, NaN where absent) of the network's image scores on
    the list's whole images at the training scale (``study.classification.image_scores``)."""
    return average_precision(*image_scores(net, cfg, list_name))


def load_seam(cfg: Config, weights: str | Path) -> SEAMNet:
    """The SEAM network of ``cfg`` with trained ``weights``."""
    net = build_model(cfg.model)
    load_weights(net, weights)
    return net


def measure_difficulty(cfg: Config, command: str, progress: bool = True) -> dict:
    """Train (or reuse) the baseline, then measure classification AP on val (mean and per
    class) and CAM mIoU on the cam list (best threshold, and the threshold chosen on val)."""
    base = baseline_config(cfg)
    run = run_method(cfg, "baseline", base.train_cam.seed, progress)
    weights = Path(run["out_dir"]) / "train_cam" / MODEL
    curve = [{"threshold": float(t), **{k: run["curve"][k][i] for k in ("miou", "mfp", "mfn")}}
             for i, t in enumerate(THRESHOLDS)]
    net = load_seam(base, weights).to(resolve_device(base.device))
    aps = classification_ap(net, base, base.data.val_list)
    result = {
        "val_map": float(np.nanmean(aps)),
        "val_ap_per_class": dict(zip(CLASSES[1:], aps.tolist(), strict=True)),
        "train_miou_best": run["train_miou_best"], "best_threshold": run["best_threshold"],
        "val_threshold": run["val_threshold"],
        "train_miou_at_val_threshold": run["train_miou_at_val_threshold"],
        "mfp": run["mfp_best"], "mfn": run["mfn_best"], "per_class_iou": run["per_class_iou_best"],
        "curve": curve, "train_minutes": run["seconds"]["train"] / 60, "seconds": run["seconds"],
        "steps": run["steps"], "threads": run["train_threads"], "run_dir": run["out_dir"],
        "reused_training": run["reused_training"], "command": command,
        "seed": base.train_cam.seed, "hardware": hardware(), "config": dataclasses.asdict(base),
    }
    return json_safe(result)  # classes absent from the list have NaN IoU: null in JSON
