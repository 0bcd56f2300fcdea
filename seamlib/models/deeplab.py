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
from seamlib.errors import InputError
from seamlib.models.resnet38 import ResNet38
from seamlib.models.trunk import TrunkNet

HEAD_NAMES = ("conv_fov", "bn_fov", "conv_fov2", "bn_fov2", "cls_conv")  # new layers, 10x lr
FOV_CHANNELS = 512
FOV_DILATION = 12


class DeepLabLargeFOV(TrunkNet):
    """ResNet38 trunk + LargeFOV head, with the reference BatchNorm rules and the reference
    parameter groups of ``TrunkNet`` (the head at 10x/20x; the stem trains, conv1a included)."""

    head_names = HEAD_NAMES

    def __init__(self, backbone: ResNet38, num_classes: int = 21, frozen_bn: bool = False,
                 bn_momentum: float = 0.0003, train_bn_affine: bool = False) -> None:
        super().__init__(backbone, frozen_bn=frozen_bn, frozen_stem=False)
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
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = bn_momentum
                m.requires_grad_(train_bn_affine)  # the reference's optimiser never sees them
        self._freeze()  # frozen_bn: no BN gradients and eval mode in train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, classes, H, W) of images ``x`` (N, 3, H, W), at the input size."""
        feature = self.backbone(x)["conv6"]
        feature = F.relu(self.bn_fov(self.conv_fov(feature)))
        feature = F.relu(self.bn_fov2(self.conv_fov2(feature)))
        logits = self.cls_conv(self.dropout1(feature))
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


def build_deeplab(model: ModelConfig, seg: SegmentationConfig) -> DeepLabLargeFOV:
    """The segmentation network: ResNet38 of ``model.width`` with the LargeFOV head."""
    if model.backbone != "resnet38":
        raise InputError(f"model.backbone must be 'resnet38' for the segmentation network "
                         f"(DeepLab-LargeFOV on ResNet38), got {model.backbone!r}")
    return DeepLabLargeFOV(ResNet38(width=model.width), model.num_classes, seg.frozen_bn,
                           seg.bn_momentum, seg.train_bn_affine)
