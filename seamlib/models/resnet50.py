"""torchvision ResNet-50 trunk with output stride 8 or 16, exposing SEAM's feature names.

An alternative to ResNet38 whose ImageNet weights are easy to get (torchvision state dicts
load by key). conv4/conv5/conv6 are the outputs of layer2/layer3/layer4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50

from seamlib.errors import InputError


class ResNet50(nn.Module):
    """ResNet-50 with dilated late stages; module names match torchvision's state dict."""

    stem_names = ("conv1", "bn1", "layer1")  # the counterpart of ResNet38's frozen stem

    def __init__(self, output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16):
            raise InputError(f"model.output_stride must be 8 or 16 for resnet50, "
                             f"got {output_stride}")
        net = resnet50(weights=None, replace_stride_with_dilation=[False, output_stride == 8, True])
        for name in ("conv1", "bn1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))
        self.channels = {"conv3": 256, "conv4": 512, "conv5": 1024, "conv6": 2048}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        conv3 = self.layer1(x)
        conv4 = self.layer2(conv3)
        conv5 = self.layer3(conv4)
        conv6 = self.layer4(conv5)
        return {"conv3": conv3, "conv4": conv4, "conv5": conv5, "conv6": conv6}
