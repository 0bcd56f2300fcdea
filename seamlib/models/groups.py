"""The reference SGD parameter groups, shared by every trainable network (SEAM, DeepLab)."""

from __future__ import annotations

from collections.abc import Collection

from torch import nn

# group name -> (lr multiplier, whether weight decay applies)
GROUP_SPEC = {"weight": (1, True), "bias": (2, False), "head_weight": (10, True),
              "head_bias": (20, False), "norm": (1, False)}


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a BatchNorm layer."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def reference_groups(net: nn.Module, head_names: Collection[str], lr: float,
                     weight_decay: float) -> list[dict]:
    """SGD groups of the authors' code: trunk weights (lr, wd), trunk biases (2lr, no wd),
    weights of the new layers ``head_names`` (10lr, wd), their biases (20lr, no wd); plus
    trainable BatchNorm affine terms (lr, no wd), which the reference never trains. Frozen
    parameters are left out; each group has "lr_mult" and "name"."""
    params: dict[str, list[nn.Parameter]] = {k: [] for k in GROUP_SPEC}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if is_norm(net.get_submodule(name.rsplit(".", 1)[0])):
            group = "norm"
        else:
            kind = "bias" if name.endswith("bias") else "weight"
            group = f"head_{kind}" if name.split(".")[0] in head_names else kind
        params[group].append(p)
    return [{"params": params[k], "lr": lr * mult, "lr_mult": mult,
             "weight_decay": weight_decay if decay else 0.0, "name": k}
            for k, (mult, decay) in GROUP_SPEC.items() if params[k]]
