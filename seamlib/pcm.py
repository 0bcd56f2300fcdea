"""Pixel correlation module (PCM, paper Sec. 3.3): refines a CAM with feature self-similarity.

y_rv = cam · A, where A[i, j] = ReLU(cos(f_i, f_j)) normalised over i (each column sums to 1)
and f = f9([image, f8_3, f8_4]). As in the authors' code there is no residual connection and
no theta/phi/g embeddings besides f9, and the CAM input carries no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.cam_ops import EPS, normalise_maps


@torch.no_grad()
def pcm_input(cam: torch.Tensor) -> torch.Tensor:
    """Normalise a raw CAM (N, 21, h, w) for the PCM: per-channel max-normalise, background
    channel 1 - max(foreground), and keep only the per-pixel maximum foreground class."""
    fg = normalise_maps(cam, subtract_min=False)[:, 1:]
    fg_max = fg.amax(1, keepdim=True)
    background = 1 - fg_max
    fg = torch.where(fg < fg_max, torch.zeros_like(fg), fg)
    return torch.cat([background, fg], dim=1)


def pixel_affinity(features: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) features -> (N, hw, hw) ReLU cosine affinity, each column summing to 1."""
    f = features.flatten(2)
    f = f / (f.norm(dim=1, keepdim=True) + EPS)
    aff = F.relu(f.transpose(1, 2) @ f)
    return aff / (aff.sum(dim=1, keepdim=True) + EPS)


class PCM(nn.Module):
    """The PCM's learnable embedding f9 (1x1 conv, no bias) and the propagation y_rv = cam · A."""

    def __init__(self, in_channels: int = 195, channels: int = 192) -> None:
        super().__init__()
        self.f9 = nn.Conv2d(in_channels, channels, 1, bias=False)
        nn.init.xavier_uniform_(self.f9.weight, gain=4)

    def forward(self, cam: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Refine ``cam`` (N, C, h, w; no gradient) with affinities of ``features``."""
        n, c, h, w = features.shape
        cam = F.interpolate(cam, (h, w), mode="bilinear", align_corners=True).flatten(2)
        aff = pixel_affinity(self.f9(features))
        return (cam @ aff).view(n, -1, h, w)
