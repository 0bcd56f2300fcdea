"""DeepLab-v1 (LargeFOV) on the ResNet38 trunk: the fully supervised network SEAM retrains on
its pseudo labels (authors' semantic-segmentation-codebase, ``deeplabv1`` with ``resnet38``).

Head on the stride-8 ``conv6`` features: 3x3 conv dilation 12 -> 512, BN, ReLU; 1x1 conv
512 -> 512, BN, ReLU; dropout 0.5; 1x1 conv -> classes (with bias). Logits are upsampled
(bilinear, align_corners=True) to the input size. Module names equal the authors' state dict
(``backbone.<ResNet38 names>``, conv_fov, bn_fov, conv_fov2, bn_fov2, cls_conv), so their
released DeepLab checkpoints load by key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.config import ModelConfig, SegmentationConfig
from seamlib.models.groups import is_norm, reference_groups
from seamlib.models.resnet38 import ResNet38

HEAD_NAMES = ("conv_fov", "bn_fov", "conv_fov2", "bn_fov2", "cls_conv")  # new layers, 10x lr
FOV_CHANNELS = 512
FOV_DILATION = 12


class DeepLabLargeFOV(nn.Module):
    """ResNet38 trunk + LargeFOV head, with the reference BatchNorm and freezing rules."""

    def __init__(self, backbone: ResNet38, num_classes: int = 21, frozen_bn: bool = False,
                 bn_momentum: float = 0.0003, train_bn_affine: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.conv_fov = nn.Conv2d(backbone.channels["conv6"], FOV_CHANNELS, 3,
                                  padding=FOV_DILATION, dilation=FOV_DILATION, bias=False)
        self.bn_fov = nn.BatchNorm2d(FOV_CHANNELS)
        self.conv_fov2 = nn.Conv2d(FOV_CHANNELS, FOV_CHANNELS, 1, bias=False)
        self.bn_fov2 = nn.BatchNorm2d(FOV_CHANNELS)
        self.dropout1 = nn.Dropout(0.5)
        self.cls_conv = nn.Conv2d(FOV_CHANNELS, num_classes, 1)
        for conv in (self.conv_fov, self.conv_fov2, self.cls_conv):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        # The reference leaves cls_conv's bias at PyTorch's default init.
        self.frozen_bn = frozen_bn
        for m in self.modules():
            if is_norm(m):
                m.momentum = bn_momentum
                m.requires_grad_(train_bn_affine and not frozen_bn)

    def train(self, mode: bool = True) -> DeepLabLargeFOV:
        """Like nn.Module.train, but with ``frozen_bn`` every BatchNorm stays in eval mode."""
        super().train(mode)
        if self.frozen_bn:
            for m in self.modules():
                if is_norm(m):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, classes, H, W) of images ``x`` (N, 3, H, W), at the input size."""
        feature = self.backbone(x)["conv6"]
        feature = F.relu(self.bn_fov(self.conv_fov(feature)))
        feature = F.relu(self.bn_fov2(self.conv_fov2(feature)))
        logits = self.cls_conv(self.dropout1(feature))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """SGD groups of the reference: trunk conv weights (lr, wd), head conv weights (10lr,
        wd), head bias (20lr, no wd); see ``models.groups.reference_groups``."""
        return reference_groups(self, HEAD_NAMES, lr, weight_decay)


def build_deeplab(model: ModelConfig, seg: SegmentationConfig) -> DeepLabLargeFOV:
    """The segmentation network: ResNet38 of ``model.width`` with the LargeFOV head."""
    if model.backbone != "resnet38":
        raise ValueError(f"model.backbone must be 'resnet38' for the segmentation network "
                         f"(DeepLab-LargeFOV on ResNet38), got {model.backbone!r}")
    return DeepLabLargeFOV(ResNet38(width=model.width), model.num_classes, seg.frozen_bn,
                           seg.bn_momentum, seg.train_bn_affine)
