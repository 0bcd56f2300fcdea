"""Timing and peak memory of one SEAM training step (forward + loss + backward) on CPU."""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

import torch

from seamlib.config import LossConfig, ModelConfig
from seamlib.io import atomic_write
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.transforms import parse_transform


def hardware() -> str:
    """A one-line description of the machine a measurement ran on."""
    return (f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, {platform.platform(terse=True)}")


def train_step_benchmark(width: float = 1.0, batch: int = 2, size: int = 448,
                         out: str | None = None) -> dict:
    """Run two reference training steps (the first warms up) and report the second."""
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=width)).train()
    images = torch.randn(batch, 3, size, size)
    labels = torch.zeros(batch, 20)
    labels[:, 14] = 1
    transform, cfg = parse_transform(LossConfig().transform), LossConfig()
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        terms = seam_loss(net, images, labels, transform, cfg)
        terms["loss"].backward()
        seconds.append(time.perf_counter() - start)
        net.zero_grad(set_to_none=True)
    result = {"width": width, "batch": batch, "size": size,
              "step_seconds": round(seconds[1], 2), "first_step_seconds": round(seconds[0], 2),
              "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
              "hardware": hardware()}
    if out:
        atomic_write(Path(out), lambda t: t.write_text(json.dumps(result, indent=1)))
    return result
