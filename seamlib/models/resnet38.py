"""ResNet38 ("Wider or Deeper", Wu et al. 2019) with output stride 8, as used by SEAM.

Module names follow the authors' released files (conv1a, b2 .. b7, bn7; bn_branch2a,
conv_branch2a, ...) so their ImageNet and SEAM weights load by key. ``width`` scales every
channel count, giving a narrow copy of the same architecture that trains on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def scaled(channels: int, width: float) -> int:
    """Channel count of a layer in a network of the given width multiplier."""
    return max(1, round(channels * width))


class ResBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU, 3x3 conv, BN-ReLU, 3x3 conv, plus shortcut."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1,
                 first_dilation: int | None = None, dilation: int = 1) -> None:
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = in_ch == out_ch and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = nn.Conv2d(in_ch, mid_ch, 3, stride, padding=first_dilation,
                                       dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid_ch)
        self.conv_branch2b1 = nn.Conv2d(mid_ch, out_ch, 3, padding=dilation, dilation=dilation,
                                        bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output and its BN-ReLU input (``x_bn_relu``, a SEAM feature)."""
        x_bn_relu = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(x_bn_relu)
        branch = self.conv_branch2a(x_bn_relu)
        branch = self.conv_branch2b1(F.relu(self.bn_branch2b1(branch)))
        return shortcut + branch, x_bn_relu


class BottleneckBlock(nn.Module):
    """Pre-activation bottleneck with dropout: 1x1 (out/4), 3x3 dilated (out/2), 1x1 (out)."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.bn_branch2a = nn.BatchNorm2d(in_ch)
        self.conv_branch2a = nn.Conv2d(in_ch, out_ch // 4, 1, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(out_ch // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(out_ch // 4, out_ch // 2, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(out_ch // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(out_ch // 2, out_ch, 1, bias=False)
        self.conv_branch1 = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the block output and its BN-ReLU input."""
        x_bn_relu = F.relu(self.bn_branch2a(x))
        shortcut = self.conv_branch1(x_bn_relu)
        branch = self.conv_branch2a(x_bn_relu)
        branch = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(branch))))
        branch = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(branch))))
        return shortcut + branch, x_bn_relu


class ResNet38(nn.Module):
    """ResNet38 trunk returning the features SEAM and AffinityNet use.

    ``forward`` gives {"conv3": b4 input (256w ch, stride 4), "conv4": b5 input (512w),
    "conv5": b6 input (1024w), "conv6": BN-ReLU of b7's output (4096w)}, the last three at
    stride 8.
    """

    stem_names = ("conv1a", "b2", "b2_1", "b2_2")  # frozen in the reference training

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = {n: scaled(n, width) for n in (64, 128, 256, 512, 1024, 2048, 4096)}
        self.conv1a = nn.Conv2d(3, c[64], 3, padding=1, bias=False)
        self.b2 = ResBlock(c[64], c[128], c[128], stride=2)
        self.b2_1 = ResBlock(c[128], c[128], c[128])
        self.b2_2 = ResBlock(c[128], c[128], c[128])
        self.b3 = ResBlock(c[128], c[256], c[256], stride=2)
        self.b3_1 = ResBlock(c[256], c[256], c[256])
        self.b3_2 = ResBlock(c[256], c[256], c[256])
        self.b4 = ResBlock(c[256], c[512], c[512], stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", ResBlock(c[512], c[512], c[512]))
        self.b5 = ResBlock(c[512], c[512], c[1024], first_dilation=1, dilation=2)
        self.b5_1 = ResBlock(c[1024], c[512], c[1024], dilation=2)
        self.b5_2 = ResBlock(c[1024], c[512], c[1024], dilation=2)
        self.b6 = BottleneckBlock(c[1024], c[2048], dilation=4, dropout=0.3)
        self.b7 = BottleneckBlock(c[2048], c[4096], dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(c[4096])
        self.channels = {"conv3": c[256], "conv4": c[512], "conv5": c[1024], "conv6": c[4096]}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.conv1a(x)
        for name in ("b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2"):
            x, _ = getattr(self, name)(x)
        x, conv3 = self.b4(x)
        for i in range(1, 6):
            x, _ = getattr(self, f"b4_{i}")(x)
        x, conv4 = self.b5(x)
        x, _ = self.b5_1(x)
        x, _ = self.b5_2(x)
        x, conv5 = self.b6(x)
        x, _ = self.b7(x)
        conv6 = F.relu(self.bn7(x))
        return {"conv3": conv3, "conv4": conv4, "conv5": conv5, "conv6": conv6}
