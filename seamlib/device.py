"""Where tensors live: one setting (``Config.device``) for every stage."""

from __future__ import annotations

import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device, checked."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"device: cannot parse {spec!r}; expected auto, cpu, cuda or "
                         f"cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {spec!r} asked for, but torch sees no CUDA device")
    return device
