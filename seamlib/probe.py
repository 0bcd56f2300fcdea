"""Diagnostic ``seam probe``: is a profile's fine-tuning bound by its trunk's features or by
its optimiser?

Both numbers come from the frozen trunk's global-average-pooled conv6 features of whole
images (eval mode, no augmentation) of the training list, scored by val mAP:

- ``probe_map``: a converged linear probe (standardised features, full-batch Adam, the best of
  three weight decays on val): about what the features allow without fine-tuning the trunk;
- ``head_map``: fc8 alone trained with the profile's own optimiser (its head learning rate,
  momentum, weight decay, poly decay, batch and number of steps), from fc8's xavier init and
  without dropout: what the fine-tuning schedule reaches on those features.

A ``head_map`` far below ``probe_map`` says the schedule, not the features, holds the
baseline back. GAP commutes with the 1x1 fc8, so fc8 on pooled features is fc8 on the CAM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from seamlib.bench import hardware
from seamlib.config import Config, TrainConfig
from seamlib.data.lists import check_inputs, labels_for, list_path
from seamlib.data.voc import IMAGES, MEAN, STD, decode_image, read_list
from seamlib.evaluate import average_precision
from seamlib.models.seam import build_model
from seamlib.models.weights import load_weights

PROBE_STEPS = 400  # full-batch Adam steps of the linear probe
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)
HEAD_LR_MULT = 10  # fc8's learning-rate multiple in the reference parameter groups


@torch.no_grad()
def pooled_features(cfg: Config, list_name: str, progress: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) pooled conv6 features of the list's whole images and their (N, 20) labels."""
    if not cfg.model.weights:
        raise ValueError("model.weights is not set: the probe measures a pretrained trunk")
    root = Path(cfg.data.root)
    check_inputs(root, [list_name], need_xml=cfg.data.label_source == "xml", progress=progress)
    net = build_model(cfg.model)
    load_weights(net, cfg.model.weights)
    backbone = net.backbone.eval()
    labels = labels_for(root, list_name, cfg.data.label_source)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    feats, targets = [], []
    for image_id in tqdm(read_list(list_path(root, list_name)), desc=f"features {list_name}",
                         unit="img", disable=not progress):
        image = np.array(decode_image(root / IMAGES / f"{image_id}.jpg", "RGB"))
        x = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 - mean) / std
        feats.append(backbone(x)["conv6"].mean((2, 3))[0])
        targets.append(torch.as_tensor(np.asarray(labels[image_id], np.float32)))
    return torch.stack(feats), torch.stack(targets)


def val_map(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over classes (with a positive) of the VOC average precision."""
    return float(np.nanmean(average_precision(scores.numpy(), targets.numpy())))


def linear_probe(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor,
                 seed: int = 0) -> dict:
    """Best val mAP of a converged logistic-regression probe over PROBE_WEIGHT_DECAYS."""
    mu, sd = x.mean(0), x.std(0) + 1e-6
    x, xv = (x - mu) / sd, (xv - mu) / sd
    scores = {}
    for wd in PROBE_WEIGHT_DECAYS:
        torch.manual_seed(seed)
        lin = torch.nn.Linear(x.shape[1], y.shape[1])
        opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=wd)
        for _ in range(PROBE_STEPS):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(lin(x), y).backward()
            opt.step()
        with torch.no_grad():
            scores[wd] = val_map(lin(xv), yv)
    best = max(scores, key=scores.get)
    return {"probe_map": scores[best], "probe_weight_decay": best,
            "probe_map_per_weight_decay": {str(k): v for k, v in scores.items()}}


def reference_head(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor,
                   train: TrainConfig, num_classes: int = 21) -> dict:
    """Val mAP of fc8 alone trained on pooled features with ``train``'s optimiser and steps."""
    gen = torch.Generator().manual_seed(train.seed)
    torch.manual_seed(train.seed)
    weight = torch.empty(num_classes, x.shape[1])
    torch.nn.init.xavier_uniform_(weight)
    weight.requires_grad_()
    lr = train.lr * HEAD_LR_MULT
    opt = torch.optim.SGD([weight], lr=lr, momentum=train.momentum,
                          weight_decay=train.weight_decay)
    steps = train.epochs * (len(x) // train.batch_size)
    for step in range(steps):
        opt.param_groups[0]["lr"] = lr * (1 - step / steps) ** train.poly_power
        idx = torch.randint(0, len(x), (train.batch_size,), generator=gen)
        loss = F.multilabel_soft_margin_loss(x[idx] @ weight[1:].T, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return {"head_map": val_map(xv @ weight[1:].T, yv), "head_steps": steps,
                "head_final_loss": float(loss)}


def probe(cfg: Config, command: str = "", progress: bool = True) -> dict:
    """Both diagnostics for the profile's trunk (``model.weights``) and training schedule."""
    x, y = pooled_features(cfg, cfg.data.train_list, progress)
    xv, yv = pooled_features(cfg, cfg.data.val_list, progress)
    return {
        **linear_probe(x, y, xv, yv),
        **reference_head(x, y, xv, yv, cfg.train, cfg.model.num_classes),
        "feature_channels": x.shape[1],
        "feature_sq_norm_mean": float((x ** 2).sum(1).mean()),
        "feature_mean": float(x.mean()),
        "train_list": cfg.data.train_list, "val_list": cfg.data.val_list,
        "weights": cfg.model.weights, "command": command, "hardware": hardware(),
    }
