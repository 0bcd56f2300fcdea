"""What every network on the ImageNet trunk shares: the reference freezing rules and the four
SGD parameter groups (trunk 1x/2x, new layers 10x/20x). SEAMNet and AffinityNet build on it."""

from __future__ import annotations

from torch import nn


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


class TrunkNet(nn.Module):
    """A ``backbone`` plus new layers named in ``head_names`` (trained from scratch)."""

    head_names: tuple[str, ...] = ()

    def __init__(self, backbone: nn.Module, frozen_bn: bool = True,
                 frozen_stem: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.frozen_bn = frozen_bn
        self.frozen_stem = frozen_stem

    def _freeze(self) -> None:
        """Stop gradients to the frozen stem and, if set, to every BatchNorm's affine terms.
        Subclasses call it once their layers exist."""
        if self.frozen_stem:
            for name in self.backbone.stem_names:
                getattr(self.backbone, name).requires_grad_(False)
        if self.frozen_bn:
            for m in self.modules():
                if _is_norm(m):
                    m.requires_grad_(False)

    def train(self, mode: bool = True) -> TrunkNet:
        """Like nn.Module.train, but frozen BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.frozen_bn:
            for m in self.modules():
                if _is_norm(m):
                    m.eval()
        return self

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """SGD parameter groups of the reference: backbone weights (lr, wd), backbone biases
        (2lr, no wd), head weights (10lr, wd), head biases (20lr, no wd); plus trainable
        BatchNorm affine terms (lr, no wd), which the reference never trains."""
        spec = {"weight": (1, weight_decay), "bias": (2, 0.0), "head_weight": (10, weight_decay),
                "head_bias": (20, 0.0), "norm": (1, 0.0)}
        params: dict[str, list[nn.Parameter]] = {k: [] for k in spec}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            params[self._group_of(name)].append(p)
        return [{"params": params[k], "lr": lr * mult, "lr_mult": mult, "weight_decay": wd,
                 "name": k} for k, (mult, wd) in spec.items() if params[k]]

    def _group_of(self, name: str) -> str:
        """Name of the parameter group a parameter belongs to."""
        module = self.get_submodule(name.rsplit(".", 1)[0])
        if _is_norm(module):
            return "norm"
        kind = "bias" if name.endswith("bias") else "weight"
        return f"head_{kind}" if name.split(".")[0] in self.head_names else kind
