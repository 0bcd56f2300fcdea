"""The proxy448 profile, the scaled synthetic rendering, the geometry table and the GPU script's
tiny CPU run."""

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest

from experiments.geometry_sheet import geometry_table, map_side
from seamlib.config import PROFILES, load_config
from seamlib.data.synthetic import GENERATOR_VERSION, generate


def test_proxy448_keeps_voc_settings_but_the_listed_deviations():
    voc, p = load_config("voc"), load_config("proxy448")
    for stage, field in (("data", "crop_size"), ("data", "resize_long"), ("loss", "transform"),
                         ("train_cam", "batch_size"), ("train_cam", "epochs"), ("train_cam", "lr")):
        assert getattr(getattr(p, stage), field) == getattr(getattr(voc, stage), field)
    assert p.train_cam.momentum == 0.9 and p.model.width == 0.125 and p.synthetic.scale == 3.5
    assert p.data.color_jitter[3] == 0.0 and p.pretrain.trunk_sha256 is None
    assert set(PROFILES["proxy448"]) == {"data", "synthetic", "model", "train_cam", "pretrain",
                                         "affinity", "train_affinity", "train_seg"}


def sizes(root):
    out = {}
    for xml in sorted((root / "Annotations").glob("*.xml")):
        tree = ET.parse(xml).getroot()
        out[xml.stem] = (int(tree.find("size/width").text),
                         [o.find("name").text for o in tree.iter("object")],
                         [int(o.find("bndbox/xmax").text) for o in tree.iter("object")])
    return out


def test_scaled_rendering_draws_the_same_scenes_larger(tmp_path):
    small = load_config("smoke").synthetic
    big = dataclasses.replace(small, scale=2.0)
    a, b = sizes(generate(small, tmp_path / "a", 1)), sizes(generate(big, tmp_path / "b", 1))
    assert json.loads((tmp_path / "b" / "synthetic.json").read_text())["scale"] == 2.0
    assert json.loads((tmp_path / "a" / "synthetic.json").read_text())["generator_version"] \
        == GENERATOR_VERSION
    same = [k for k in a if a[k][1] == b[k][1]]
    assert len(same) >= 0.8 * len(a)
    for k in same:
        assert b[k][0] == 2 * a[k][0]
        for x, y in zip(a[k][2], b[k][2], strict=True):
            assert abs(y - 2 * x) <= 3 or y == b[k][0]  # boxes clipped at the border


def test_geometry_table_on_smoke(tmp_path):
    cfg = load_config("smoke", {"data": {"root": str(tmp_path / "VOC2012")}})
    generate(cfg.synthetic, tmp_path / "VOC2012", 1)
    table = geometry_table(cfg)
    assert table["branches"]["main"]["map_side"] == 4
    assert table["branches"]["transformed"]["map_side"] == map_side(32, 0.3) == 2
    assert map_side(448, 0.3) == 17 and map_side(128, 0.3) == 5
    main, small = (table["branches"][b]["under_one_cell"] for b in ("main", "transformed"))
    assert 0 <= main <= small <= 1 and table["objects"] > 0


@pytest.mark.slow
def test_gpu_script_tiny_on_cpu(tmp_path, monkeypatch):
    from experiments import proxy448_gpu

    monkeypatch.chdir(tmp_path)
    proxy448_gpu.main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "out")])
    out = tmp_path / "out"
    for name in ("seam_vs_baseline.json", "seam_vs_baseline.md", "seam_fc8.json",
                 "difficulty.json", "geometry_sheet.md", "pretrain.json", "input_scales.json"):
        assert (out / name).exists(), name
    parts = json.loads((out / "summary.json").read_text())["parts"]
    assert all(p["status"] == "done" for p in parts)


def test_a_spent_budget_skips_parts_and_says_so(tmp_path):
    from experiments.proxy448_gpu import Session

    session = Session(tmp_path, budget=0.0, command="test")
    assert session.part("work", lambda: 1 / 0) is None  # never started
    assert "skipped: wall-clock budget spent" in (tmp_path / "summary.md").read_text()


def nap_job(cfg, method: str, seconds: int) -> dict:
    """A stand-in run for run_pool: sleeps ``seconds``."""
    import time

    time.sleep(seconds)
    return {"method": method}


@pytest.mark.slow
def test_runs_still_going_at_the_budget_are_stopped_and_recorded_as_skipped(tmp_path):
    from experiments.proxy448_gpu import Session, run_pool

    session = Session(tmp_path, budget=30.0, command="test")
    done = run_pool(session, None, nap_job, [("quick", 0), ("slow", 600)], 2, "compare")
    assert done == {("quick", 0): {"method": "quick"}}
    assert json.loads((tmp_path / "runs" / "compare_quick_seed0.json").read_text()) == {
        "method": "quick"}
    assert session.parts == [{"part": "compare slow seed 600",
                              "status": "skipped: stopped at the budget", "seconds": 0.0}]
    assert session.left() > -60  # stopped near the budget, not after the run


@pytest.mark.slow
def test_the_prepared_device_command_runs_both_parts_tiny_on_cpu(tmp_path, monkeypatch):
    """The one command a lent GPU runs (benchmarks/device_check.py), at toy sizes on the CPU:
    the voc benchmark, then proxy448 with its bf16 runs beside fp32, all under --out."""
    from benchmarks import device_check

    monkeypatch.chdir(tmp_path)
    status = device_check.main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "out")])
    assert status == {"gpu": "done", "proxy448": "done"}
    out = tmp_path / "out"
    assert (out / "gpu" / "README.md").is_file()
    bf16 = json.loads((out / "proxy448" / "bf16.json").read_text())
    assert set(bf16) == {"baseline_seed0", "seam_seed0"}
    assert all(v["train_miou_best"]["fp32"] is not None for v in bf16.values())
    parts = json.loads((out / "proxy448" / "summary.json").read_text())["parts"]
    assert all(p["status"] == "done" for p in parts)
