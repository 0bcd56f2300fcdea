"""`seam probe`: the linear probe and the fc8-alone schedule on pooled trunk features."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.__main__ import main
from experiments.probe import head_group, linear_probe, probe, reference_head
from seamlib.config import ModelConfig, TrainConfig, load_config
from seamlib.models.seam import build_model
from seamlib.models.weights import save_released

REFERENCE = TrainConfig(epochs=10, batch_size=8)  # the reference optimiser, 500 steps below
HEAD = head_group(build_model(ModelConfig(width=0.0625)), REFERENCE)  # fc8: lr 0.1, wd 5e-4


def features(scale: float, n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative features (as after ReLU) in which each class lights two channels, times
    ``scale``; labels have 1-3 classes."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, 20, generator=g) < 0.1).float()
    y[torch.arange(n), torch.randint(0, 20, (n,), generator=g)] = 1
    x = torch.cat([y, y], 1) + 0.3 * torch.rand(n, 40, generator=g)
    return scale * x, y


def test_the_probe_reads_separable_features_and_not_noise():
    x, y = features(1.0)
    xv, yv = features(1.0, seed=1)
    assert linear_probe(x, y, xv, yv)["probe_map"] > 0.95
    noise = torch.rand_like(x)
    assert linear_probe(noise, y, torch.rand_like(xv), yv)["probe_map"] < 0.4


def test_the_reference_head_is_slow_on_small_features_and_fast_on_large_ones():
    small, y = features(1.0)
    small_v, yv = features(1.0, seed=1)
    slow = reference_head(small, y, small_v, yv, REFERENCE, HEAD)
    fast = reference_head(small * 10, y, small_v * 10, yv, REFERENCE, HEAD)
    assert slow["head_steps"] == fast["head_steps"] == 500
    assert fast["head_map"] > 0.95 > 0.6 > slow["head_map"]
    assert slow["head_final_loss"] > fast["head_final_loss"] + 0.2


def test_probe_runs_on_a_trunk_file_and_the_cli_writes_its_json(voc_root, tmp_path):
    cfg = load_config("smoke", data_root=voc_root)
    weights = save_released(build_model(cfg.model), tmp_path / "trunk.pth")
    out = tmp_path / "probe.json"
    main(["probe", "--profile", "smoke", "--data-root", str(voc_root),
          "--set", f"model.weights={weights}", "--out", str(tmp_path)])
    result = json.loads(out.read_text())
    assert 0 <= result["probe_map"] <= 1 and 0 <= result["head_map"] <= 1
    assert result["feature_channels"] == build_model(cfg.model).backbone.channels["conv6"]
    assert result["head_steps"] == cfg.train_cam.epochs * (4 // cfg.train_cam.batch_size)


def test_the_head_group_is_the_reference_fc8_group():
    assert HEAD["lr"] == pytest.approx(10 * REFERENCE.lr)
    assert HEAD["weight_decay"] == REFERENCE.weight_decay


def test_probe_needs_a_trunk(voc_root):
    with pytest.raises(ValueError, match="model.weights"):
        probe(load_config("smoke", data_root=voc_root))
