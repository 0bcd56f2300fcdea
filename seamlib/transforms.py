"""The affine transforms A of the equivariance constraint F(A(I)) = A(F(I)) (paper Eq. 2).

A transform applies the same way to an image batch (N, 3, H, W) and to a CAM batch
(N, C, H, W), so the siamese branch can feed A(I) to the network and compare its CAM with
A(CAM(I)). The reference uses a single bilinear rescale by 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from seamlib.errors import InputError


class Transform:
    """An affine spatial transform of NCHW tensors."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Rescale(Transform):
    """Bilinear rescale by ``factor`` (align_corners=True, as in the authors' code)."""

    factor: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=True)


@dataclass(frozen=True)
class Flip(Transform):
    """Horizontal flip."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flip(x, dims=[3])


@dataclass(frozen=True)
class Rotate(Transform):
    """Rotation by ``angle`` degrees about the centre, bilinear, zero outside the source."""

    angle: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return TF.rotate(x, self.angle, interpolation=InterpolationMode.BILINEAR)


@dataclass(frozen=True)
class Translate(Transform):
    """Shift by (dx, dy) pixels, zero where nothing moves in."""

    dx: int
    dy: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return TF.affine(x, angle=0.0, translate=[self.dx, self.dy], scale=1.0, shear=[0.0, 0.0])


@dataclass(frozen=True)
class Compose(Transform):
    """Apply ``transforms`` left to right."""

    transforms: tuple[Transform, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x


def parse_transform(spec: str) -> Transform:
    """Build A from a spec such as ``rescale:0.3``, ``flip``, ``rotate:15``, ``translate:8,0``
    or a composition joined by ``+`` (``rescale:0.5+flip``)."""
    parts = [_parse_one(p.strip()) for p in spec.split("+")]
    return parts[0] if len(parts) == 1 else Compose(tuple(parts))


def _parse_one(spec: str) -> Transform:
    name, _, args = spec.partition(":")
    try:
        if name == "rescale":
            return Rescale(float(args))
        if name == "flip" and not args:
            return Flip()
        if name == "rotate":
            return Rotate(float(args))
        if name == "translate":
            dx, dy = (int(v) for v in args.split(","))
            return Translate(dx, dy)
    except ValueError:
        pass
    raise InputError(f"loss.transform: cannot parse {spec!r}; expected rescale:F, flip, "
                     f"rotate:DEG or translate:DX,DY, joined by '+'")
