"""The SEAM network (paper Fig. 2): a backbone, the CAM classifier fc8 and the PCM."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from seamlib.config import ModelConfig
from seamlib.errors import InputError
from seamlib.models.resnet38 import ResNet38
from seamlib.models.resnet50 import ResNet50
from seamlib.models.trunk import TrunkNet
from seamlib.pcm import PCM, pcm_input

# Layers that SEAM adds on top of the ImageNet backbone: 10x learning rate, trained from scratch.
HEAD_NAMES = ("fc8", "f8_3", "f8_4", "pcm")


class SEAMOutput(NamedTuple):
    """Raw CAM and PCM-refined CAM, both upsampled to the input size; cam_rv is None without
    the PCM."""

    cam: torch.Tensor
    cam_rv: torch.Tensor | None


class SEAMNet(TrunkNet):
    """Backbone + fc8 CAM head + PCM (f8_3, f8_4, f9), with the reference freezing rules."""

    head_names = HEAD_NAMES

    def __init__(self, backbone: nn.Module, num_classes: int = 21, frozen_bn: bool = True,
                 frozen_stem: bool = True) -> None:
        super().__init__(backbone, frozen_bn, frozen_stem)
        ch = backbone.channels
        self.dropout7 = nn.Dropout2d(0.5)
        self.fc8 = nn.Conv2d(ch["conv6"], num_classes, 1, bias=False)
        self.f8_3 = nn.Conv2d(ch["conv4"], 64, 1, bias=False)
        self.f8_4 = nn.Conv2d(ch["conv5"], 128, 1, bias=False)
        self.pcm = PCM(3 + 64 + 128, 192)
        nn.init.xavier_uniform_(self.fc8.weight)
        nn.init.kaiming_normal_(self.f8_3.weight)
        nn.init.kaiming_normal_(self.f8_4.weight)
        self._freeze()

    def forward(self, x: torch.Tensor, with_pcm: bool = True) -> SEAMOutput:
        """Compute the CAM (and its PCM refinement) of images ``x`` (N, 3, H, W)."""
        size = x.shape[2:]
        feats = self.backbone(x)
        cam = self.fc8(self.dropout7(feats["conv6"]))
        cam_rv = self.refine(x, cam, feats) if with_pcm else None
        cam = F.interpolate(cam, size, mode="bilinear", align_corners=True)
        if cam_rv is not None:
            cam_rv = F.interpolate(cam_rv, size, mode="bilinear", align_corners=True)
        return SEAMOutput(cam, cam_rv)

    def refine(self, x: torch.Tensor, cam: torch.Tensor,
               feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """PCM on the stride-8 CAM with features [image, f8_3(conv4), f8_4(conv5)]."""
        size = cam.shape[2:]
        parts = [F.relu(self.f8_3(feats["conv4"].detach())),
                 F.relu(self.f8_4(feats["conv5"].detach()))]
        parts = [p if p.shape[2:] == size else
                 F.interpolate(p, size, mode="bilinear", align_corners=True) for p in parts]
        image = F.interpolate(x, size, mode="bilinear", align_corners=True)
        return self.pcm(pcm_input(cam), torch.cat([image, *parts], dim=1))


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The trunk a ModelConfig describes (ResNet38 of some width, or ResNet-50)."""
    if cfg.backbone == "resnet38":
        return ResNet38(width=cfg.width)
    if cfg.backbone == "resnet50":
        if cfg.width != 1.0:
            raise InputError(f"model.width must be 1.0 for resnet50, got {cfg.width}")
        return ResNet50(output_stride=cfg.output_stride)
    raise InputError(f"model.backbone must be 'resnet38' or 'resnet50', got {cfg.backbone!r}")


def build_model(cfg: ModelConfig) -> SEAMNet:
    """Construct the SEAM network a ModelConfig describes (weights are loaded separately)."""
    return SEAMNet(build_backbone(cfg), cfg.num_classes, cfg.frozen_bn, cfg.frozen_stem)
