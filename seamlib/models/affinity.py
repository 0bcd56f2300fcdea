"""AffinityNet (Ahn & Kwak, CVPR 2018) on the SEAM trunk: the network behind the paper's final
pseudo labels (random walk). Layer names follow the authors' released ``resnet38_aff`` files
(trunk, f8_3, f8_4, f8_5, f9; no biases), so those files load by key with ``load_weights``.

Pairs: on the stride-8 feature map, each pixel ``i`` of the "from" region is paired with the
pixels at the offsets of :func:`pair_offsets` (half a disc of radius ``r``: every unordered
pair once). The "from" region leaves out the last r-1 rows and the first and last r-1 columns,
so every offset stays inside the map; pixels there still take part as the "to" end. Affinity
of a pair: exp(-mean over channels |f_i - f_j|).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.config import ModelConfig
from seamlib.errors import InputError
from seamlib.models.seam import build_backbone
from seamlib.models.trunk import TrunkNet

HEAD_NAMES = ("f8_3", "f8_4", "f8_5", "f9")
# (our prefix, released prefix), as weights.KEY_TABLE for SEAMNet. fc8 is listed so that a SEAM
# checkpoint used to initialise the trunk maps its classifier to a name that is left out.
KEY_TABLE: tuple[tuple[str, str], ...] = (
    ("f8_3.", "f8_3."),
    ("f8_4.", "f8_4."),
    ("f8_5.", "f8_5."),
    ("f9.", "f9."),
    ("fc8.", "fc8."),
    ("backbone.", ""),
)
STRIDE = 8  # feature (and label) stride


def pair_offsets(radius: int) -> list[tuple[int, int]]:
    """(dy, dx) of the pairs of one pixel: (0, 1..r-1), then rows 1..r-1 with |dx| < r and
    dx^2 + dy^2 < r^2 (the authors' search order)."""
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius)
                if dx * dx + dy * dy < radius * radius]
    return offsets


def effective_radius(radius: int, height: int, width: int) -> int:
    """The radius used on a height x width map: the largest r' <= radius whose "from" region
    (height - r' + 1 rows, width - 2r' + 2 columns) is not empty. The SEAM code reduces it to
    (min side - 1) // 2 below 2r + 1 pixels and PSA not at all; both agree on every VOC image
    (maps of 11+ pixels), this rule keeps more pairs on the small proxy/smoke images."""
    return max(0, min(radius, height, (width - 1) // 2 + 1))


@lru_cache(maxsize=32)
def pair_indices(radius: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of the pairs on a height x width map: ``from`` (P,) and ``to`` (D, P),
    D = number of offsets (none when the radius is below 2)."""
    r = radius - 1
    grid = torch.arange(height * width).view(height, width)
    rows, cols = height - r, width - 2 * r
    if radius < 2 or rows <= 0 or cols <= 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty.view(0, 0)
    ind_from = grid[:rows, r:r + cols].reshape(-1)
    ind_to = torch.stack([grid[dy:dy + rows, r + dx:r + dx + cols].reshape(-1)
                          for dy, dx in pair_offsets(radius)])
    return ind_from, ind_to


def map_pairs(height: int, width: int, radius: int, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`pair_indices` at the effective radius of the map, on ``device``."""
    ind_from, ind_to = pair_indices(effective_radius(radius, height, width), height, width)
    return ind_from.to(device), ind_to.to(device)


def pair_labels(label: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
    """Affinity targets of stride-8 label maps (N, h, w) (255 = ignore): float masks (N, D, P)
    of background-positive, foreground-positive and negative pairs. A pair is positive when
    both ends have the same label (for foreground both must be valid), negative when the
    labels differ and both are valid; pairs touching an ignored pixel count nowhere."""
    n, height, width = label.shape
    ind_from, ind_to = map_pairs(height, width, radius, label.device)
    flat = label.reshape(n, -1)
    lab_from = flat[:, ind_from][:, None, :]
    lab_to = flat[:, ind_to.reshape(-1)].view(n, *ind_to.shape)
    valid = (lab_from < 255) & (lab_to < 255)
    same = lab_from == lab_to
    bg = same & (lab_from == 0)
    fg = same & (lab_from != 0) & valid
    neg = ~same & valid
    return bg.float(), fg.float(), neg.float()


def pair_affinity(feats: torch.Tensor, radius: int) -> torch.Tensor:
    """exp(-mean_c |f_i - f_j|) (N, D, P) of the pairs of feature maps (N, C, h, w)."""
    n, c, height, width = feats.shape
    ind_from, ind_to = map_pairs(height, width, radius, feats.device)
    flat = feats.reshape(n, c, -1)
    f_from = flat[:, :, ind_from][:, :, None, :]
    f_to = flat[:, :, ind_to.reshape(-1)].view(n, c, *ind_to.shape)
    return torch.exp(-(f_to - f_from).abs().mean(1))


def dense_affinity(aff: torch.Tensor, height: int, width: int, radius: int) -> torch.Tensor:
    """Symmetric (hw, hw) affinity matrix of one map from its pair affinities (D, P), with
    ones on the diagonal (self-loops) and zeros beyond the radius."""
    ind_from, ind_to = map_pairs(height, width, radius, aff.device)
    area = height * width
    dense = torch.zeros(area, area, dtype=aff.dtype, device=aff.device)
    rows = ind_from.expand_as(ind_to).reshape(-1)
    cols = ind_to.reshape(-1)
    dense[rows, cols] = aff.reshape(-1)
    dense[cols, rows] = aff.reshape(-1)
    dense.fill_diagonal_(1.0)
    return dense


class AffinityNet(TrunkNet):
    """Trunk + f8_3 (conv4 -> 64), f8_4 (conv5 -> 128), f8_5 (conv6 -> 256), f9 (448 -> 448),
    each a 1x1 convolution without bias followed by ELU, as in the authors' network."""

    head_names = HEAD_NAMES
    key_table = KEY_TABLE

    def __init__(self, backbone: nn.Module, radius: int = 5, frozen_bn: bool = True,
                 frozen_stem: bool = True) -> None:
        super().__init__(backbone, frozen_bn, frozen_stem)
        ch = backbone.channels
        self.radius = radius
        self.f8_3 = nn.Conv2d(ch["conv4"], 64, 1, bias=False)
        self.f8_4 = nn.Conv2d(ch["conv5"], 128, 1, bias=False)
        self.f8_5 = nn.Conv2d(ch["conv6"], 256, 1, bias=False)
        self.f9 = nn.Conv2d(448, 448, 1, bias=False)
        for layer in (self.f8_3, self.f8_4, self.f8_5):
            nn.init.kaiming_normal_(layer.weight)
        nn.init.xavier_uniform_(self.f9.weight, gain=4)
        self._freeze()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, 448, H/8, W/8) embedding whose L1 distances give the affinities."""
        feats = self.backbone(x)
        parts = [F.elu(self.f8_3(feats["conv4"])), F.elu(self.f8_4(feats["conv5"])),
                 F.elu(self.f8_5(feats["conv6"]))]
        return F.elu(self.f9(torch.cat(parts, dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pair affinities (N, D, P) of images ``x`` (N, 3, H, W); see :func:`pair_indices`."""
        return pair_affinity(self.features(x), self.radius)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The (hw, hw) affinity matrix of one image ``x`` (1, 3, H, W), hw at stride 8."""
        if x.shape[0] != 1:
            raise InputError(f"AffinityNet.dense takes one image, got a batch of {x.shape[0]}")
        feats = self.features(x)
        height, width = feats.shape[2:]
        return dense_affinity(pair_affinity(feats, self.radius)[0], height, width, self.radius)


def build_affinity_net(cfg: ModelConfig, radius: int) -> AffinityNet:
    """The AffinityNet on the trunk a ModelConfig describes (weights are loaded separately)."""
    return AffinityNet(build_backbone(cfg), radius, cfg.frozen_bn, cfg.frozen_stem)
