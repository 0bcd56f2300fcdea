"""SEAM's losses (paper Eq. 1-6) and the siamese training step that combines them.

Each term follows the authors' training script; see ``seam_loss`` for how they combine:
L = L_cls (+ adaptive min-pooling on the PCM output) + L_ER + L_ECR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seamlib.cam_ops import normalise_maps
from seamlib.config import LossConfig
from seamlib.transforms import Transform


def max_norm(cam: torch.Tensor) -> torch.Tensor:
    """Per-channel min-max normalisation of a ReLU'd CAM (N, C, H, W) to [0, 1)."""
    return normalise_maps(cam)


def with_background(cam: torch.Tensor) -> torch.Tensor:
    """Replace channel 0 of a normalised CAM by the background score 1 - max(foreground)."""
    return torch.cat([1 - cam[:, 1:].amax(1, keepdim=True), cam[:, 1:]], dim=1)


def onehot_max(cam: torch.Tensor) -> torch.Tensor:
    """Zero every foreground value that is not the per-pixel foreground maximum."""
    fg = cam[:, 1:]
    fg = torch.where(fg != fg.amax(1, keepdim=True), torch.zeros_like(fg), fg)
    return torch.cat([cam[:, :1], fg], dim=1)


def classification_loss(cam: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft margin on global-average-pooled foreground CAM scores (Eq. 1).

    ``labels`` is the (N, 20) multi-hot foreground label."""
    return F.multilabel_soft_margin_loss(cam[:, 1:].mean((2, 3)), labels)


def adaptive_min_pooling_loss(cam_rv: torch.Tensor) -> torch.Tensor:
    """Push the quarter of pixels with the lowest class score towards zero (authors' code).

    ``cam_rv`` is (N, 20, H, W) foreground PCM output times the label. It shifts the best
    background threshold, not the best mIoU."""
    n, _, h, w = cam_rv.shape
    k = h * w // 4
    lowest = cam_rv.amax(1).flatten(1).topk(k, dim=-1, largest=False).values
    return F.relu(lowest).sum() / (k * n)


def equivariant_loss(cam_o: torch.Tensor, cam_t: torch.Tensor) -> torch.Tensor:
    """L_ER (Eq. 3): mean |A(F(I)) - F(A(I))| over foreground channels of normalised CAMs."""
    return (cam_o[:, 1:] - cam_t[:, 1:]).abs().mean()


def equivariant_cross_loss(cam_o: torch.Tensor, rv_o: torch.Tensor, cam_t: torch.Tensor,
                           rv_t: torch.Tensor, topk_ratio: float = 0.2) -> torch.Tensor:
    """L_ECR (Eq. 5): each branch's PCM output regresses the other branch's one-hot CAM,
    averaged over the ``topk_ratio`` hardest elements per image (online hard example mining)."""
    return (_hardest_mean((onehot_max(cam_t.detach()) - rv_o).abs(), topk_ratio)
            + _hardest_mean((onehot_max(cam_o.detach()) - rv_t).abs(), topk_ratio))


def _hardest_mean(err: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mean of the k = int(C*H*W*ratio) largest elements of each image's error map (at least
    one, so a ratio too small for the map still has a loss)."""
    n, c, h, w = err.shape
    return err.view(n, -1).topk(max(1, int(c * h * w * ratio)), dim=-1).values.mean()


def seam_loss(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              transform: Transform, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """The siamese SEAM training loss of a batch, with every term by name.

    ``labels`` is (N, 20). Branch o sees the images, branch t sees A(images); their CAMs are
    max-normalised, masked by [1, labels] and compared after applying A to branch o's. With ER
    and ECR both off this is the plain CAM baseline (one branch, classification only), or with
    ``two_branches`` both branches' classification alone.
    """
    siamese = cfg.use_er or cfg.use_ecr or cfg.two_branches
    with_pcm = cfg.use_ecr or cfg.use_rvmin
    fg_mask = labels[..., None, None]
    cam_o, rv_o = net(images, with_pcm=with_pcm)
    terms = {"cls": classification_loss(cam_o, labels)}
    if cfg.use_rvmin:  # foreground channels only: no product of the background channel
        terms["rvmin"] = adaptive_min_pooling_loss(rv_o[:, 1:] * fg_mask)
    if siamese:
        cam_t, rv_t = net(transform(images), with_pcm=with_pcm)
        terms["cls"] = (terms["cls"] + classification_loss(cam_t, labels)) / 2
        if cfg.use_rvmin:
            terms["rvmin"] = (terms["rvmin"] + adaptive_min_pooling_loss(rv_t[:, 1:] * fg_mask)) / 2
        mask = torch.cat([labels.new_ones(len(labels), 1), labels], dim=1)[..., None, None]
        cam_o_n, cam_t_n = transform(max_norm(cam_o)) * mask, max_norm(cam_t) * mask
        if cfg.use_er:
            terms["er"] = equivariant_loss(cam_o_n, cam_t_n)
        if cfg.use_ecr:
            rv_o_n, rv_t_n = transform(max_norm(rv_o)) * mask, max_norm(rv_t) * mask
            terms["ecr"] = equivariant_cross_loss(with_background(cam_o_n), rv_o_n,
                                                  with_background(cam_t_n), rv_t_n,
                                                  cfg.ecr_topk_ratio)
    terms["loss"] = sum(terms.values())
    return terms
