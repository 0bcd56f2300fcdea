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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from experiments.pretrain import to_tensor
from seamlib.config import Config, TrainConfig
from seamlib.data.datasets import VOCImages
from seamlib.data.lists import check_inputs, labels_for
from seamlib.device import hardware
from seamlib.errors import InputError
from seamlib.models.seam import build_model
from seamlib.models.weights import load_weights
from study.classification import mean_average_precision

PROBE_STEPS = 400  # full-batch Adam steps of the linear probe
PROBE_WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2)


@torch.no_grad()
def pooled_features(backbone: nn.Module, cfg: Config, list_name: str, progress: bool = True
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C) pooled conv6 features of the list's whole images and their (N, 20) labels."""
    check_inputs(cfg.data.root, [list_name], need_xml=cfg.data.label_source == "xml",
                 progress=progress)
    images = VOCImages(cfg.data.root, list_name)
    labels = labels_for(cfg.data.root, list_name, cfg.data.label_source)
    backbone.eval()
    feats = [backbone(to_tensor(np.array(images.raw_image(i))[None]))["conv6"].mean((2, 3))[0]
             for i in tqdm(range(len(images)), desc=f"features {list_name}", unit="img",
                           disable=not progress)]
    targets = [torch.as_tensor(np.asarray(labels[i], np.float32)) for i in images.ids]
    return torch.stack(feats), torch.stack(targets)


def val_map(scores: torch.Tensor, targets: torch.Tensor) -> float:
    return mean_average_precision(scores.numpy(), targets.numpy())


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
                   train: TrainConfig, head: dict, num_classes: int = 21) -> dict:
    """Val mAP of fc8 alone trained on pooled features with ``train``'s momentum, poly decay,
    batch and steps, and the lr and weight decay of ``head`` (fc8's parameter group)."""
    gen = torch.Generator().manual_seed(train.seed)
    torch.manual_seed(train.seed)
    weight = torch.empty(num_classes, x.shape[1])
    torch.nn.init.xavier_uniform_(weight)
    weight.requires_grad_()
    lr = head["lr"]
    opt = torch.optim.SGD([weight], lr=lr, momentum=train.momentum,
                          weight_decay=head["weight_decay"])
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


def head_group(net: nn.Module, train: TrainConfig) -> dict:
    """fc8's parameter group (lr and weight decay) in the network's reference optimiser."""
    return next(g for g in net.parameter_groups(train.lr, train.weight_decay)
                if g["name"] == "head_weight")


def probe(cfg: Config, command: str = "", progress: bool = True) -> dict:
    """Both diagnostics for the profile's trunk (``model.weights``) and training schedule."""
    if not cfg.model.weights:
        raise InputError("model.weights is not set: the probe measures a pretrained trunk")
    net = build_model(cfg.model)
    load_weights(net, cfg.model.weights)
    head = head_group(net, cfg.train_cam)
    x, y = pooled_features(net.backbone, cfg, cfg.data.train_list, progress)
    xv, yv = pooled_features(net.backbone, cfg, cfg.data.val_list, progress)
    return {
        **linear_probe(x, y, xv, yv),
        **reference_head(x, y, xv, yv, cfg.train_cam, head, cfg.model.num_classes),
        "feature_channels": x.shape[1],
        "feature_sq_norm_mean": float((x ** 2).sum(1).mean()),
        "feature_mean": float(x.mean()),
        "train_list": cfg.data.train_list, "val_list": cfg.data.val_list,
        "weights": cfg.model.weights, "command": command, "hardware": hardware(),
    }
