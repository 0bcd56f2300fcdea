"""Classification quality of a trained CAM network: image scores (its pooled fc8 CAMs) on a
list's whole images, and VOC average precision over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from seamlib.config import Config
from seamlib.data.datasets import ClassificationDataset
from seamlib.data.lists import labels_for
from seamlib.models import SEAMNet, build_model
from seamlib.models.weights import load_weights
from seamlib.transforms import Rescale


def average_precision(scores_: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision as VOC >= 2010: the area under the precision-recall curve
    after making precision monotone (each point takes the best precision at equal or higher
    recall).

    ``scores_`` and ``targets`` are (N, C); classes with no positive get NaN. Tied scores keep
    the input order."""
    aps = np.full(scores_.shape[1], np.nan)
    for c in range(scores_.shape[1]):
        order = np.argsort(-scores_[:, c], kind="stable")
        hits = targets[order, c] > 0
        if not hits.any():
            continue
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        aps[c] = envelope[hits].sum() / hits.sum()  # each hit adds 1/npos recall
    return aps


def mean_average_precision(scores_: np.ndarray, targets: np.ndarray) -> float:
    """Mean of ``average_precision`` over the classes with a positive."""
    return float(np.nanmean(average_precision(scores_, targets)))


@torch.no_grad()
def image_scores(net: SEAMNet, cfg: Config, list_name: str, scale: float = 1.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(N, 20) scores (pooled fc8 CAMs) and labels of ``list_name``'s whole images (long side
    the crop size, padded square, as in evaluation), rescaled by ``scale`` as ER rescales its
    second branch's input."""
    net.eval()
    device = next(net.parameters()).device
    labels = labels_for(cfg.data.root, list_name, cfg.data.label_source)
    data = ClassificationDataset.from_config(cfg.data, labels, list_name, train=False)
    rescale = Rescale(scale)
    out, targets = [], []
    for images, target, _ in DataLoader(data, batch_size=32):
        x = images.to(device)
        x = x if scale == 1 else rescale(x)
        out.append(net(x, with_pcm=False).cam[:, 1:].mean((2, 3)).float().cpu())
        targets.append(target)
    return torch.cat(out).numpy(), torch.cat(targets).numpy()


def classification_map(cfg: Config, weights: Path, list_name: str, scale: float = 1.0) -> float:
    """Classification mAP of the network trained into ``weights`` (``image_scores``)."""
    net = build_model(cfg.model)
    load_weights(net, weights, kind="seam")
    return mean_average_precision(*image_scores(net, cfg, list_name, scale))
