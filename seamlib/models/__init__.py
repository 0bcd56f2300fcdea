"""Networks: the ResNet38 and ResNet-50 backbones and the SEAM head with its PCM."""

from seamlib.models.seam import SEAMNet, build_model

__all__ = ["SEAMNet", "build_model"]
