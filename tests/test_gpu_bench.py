"""benchmarks/gpu.py: the tiny CPU run end to end, failure isolation, the device check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import gpu

TINY = ["--device", "cpu", "--tiny"]


def load(out: Path, name: str) -> dict:
    """One part's JSON."""
    return json.loads((out / f"{name}.json").read_text())


def positive(value: float) -> bool:
    """Finite and above zero."""
    return math.isfinite(value) and value > 0


@pytest.mark.slow
def test_tiny_cpu_run_writes_every_part(tmp_path: Path) -> None:
    """Every part's JSON with its measured fields; CUDA check skipped; README table."""
    gpu.main([*TINY, "--out", str(tmp_path)])
    for method in ("train_seam", "train_baseline"):
        result = load(tmp_path, method)
        assert result["status"] == "ok"
        for variant in gpu.TRAIN_VARIANTS:
            run = result[variant]
            assert positive(run["images_per_s"]) and positive(run["step_s"])
            assert run["peak_gib"] is None  # CPU: no GPU memory
            assert math.isfinite(run["loss_rel_diff_vs_fp32"])
        assert result["fp32"]["loss_rel_diff_vs_fp32"] == 0
    cams = load(tmp_path, "cams")
    assert positive(cams["batched"]["images_per_s"]) and positive(cams["one_pass"]["images_per_s"])
    for name in ("affinity_step", "deeplab_step"):
        assert positive(load(tmp_path, name)["step_s"])
    for name in ("random_walk", "segment_inference"):
        assert positive(load(tmp_path, name)["seconds_per_image"])
    check = load(tmp_path, "cuda_vs_cpu")
    assert check["status"] == "skipped" and check["reason"] == "skipped: needs cuda"
    projections = load(tmp_path, "projections")
    assert projections["label"] == gpu.PROJECTION
    assert positive(projections["stages"]["seam_train"]["bf16"])
    assert projections["stages"]["seam_train"]["steps"] == 10_576
    assert all(positive(stage["hours"]) for name, stage in projections["stages"].items()
               if name != "seam_train")
    assert load(tmp_path, "cams")["environment"]["command"].endswith(f"--out {tmp_path}")
    readme = (tmp_path / "README.md").read_text()
    assert "| part | status | wall s | result |" in readme
    assert all(f"| {name} |" in readme for name in [*gpu.parts(), "projections"])


def test_failing_part_is_recorded_and_others_run(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A part that raises is written as an error; the next parts still run; budget skips."""
    def broken(s: gpu.Settings) -> dict:
        raise RuntimeError("out of memory (simulated)")

    def quick(s: gpu.Settings) -> dict:
        return {"step_s": 0.5, "batch": 2}

    monkeypatch.setattr(gpu, "part_train_seam", broken)
    for name in gpu.parts():
        if name not in ("train_seam", "cuda_vs_cpu"):
            monkeypatch.setattr(gpu, f"part_{name}", quick)
    results = gpu.main([*TINY, "--out", str(tmp_path)])
    failed = load(tmp_path, "train_seam")
    assert failed["status"] == "error" and "out of memory (simulated)" in failed["error"]
    assert load(tmp_path, "train_baseline")["status"] == "ok"
    assert results["projections"]["stages"]["seam_train"]["bf16"] is None
    assert "RuntimeError" in (tmp_path / "README.md").read_text()
    results = gpu.main([*TINY, "--out", str(tmp_path), "--budget-s", "0"])
    assert results["train_baseline"]["status"] == "skipped"
    assert results["projections"]["status"] == "ok"  # computes only: never skipped


def test_device_comparison_runs_on_cpu() -> None:
    """The CUDA check's comparison, CPU against CPU: identical terms, the round trip holds."""
    result = gpu.compare_devices(gpu.settings_for("cpu", tiny=True))
    assert result["terms_max_rel_diff"] == 0 and result["grad_norms_max_rel_diff"] == 0
    assert result["state_dict_round_trip"] is True
    assert math.isfinite(result["bf16_terms_max_rel_diff"])
    assert torch.backends.cudnn.allow_tf32  # restored after the check
