"""SEAM vs baseline end to end on the smoke profile (one seed, one epoch), and the report's
aggregation and wording on hand-made numbers."""

import json
import os

import numpy as np
import pytest

from experiments.compare import (
    aggregate,
    compare,
    findings,
    format_markdown,
)
from seamlib.config import load_config, variant_config
from seamlib.data.synthetic import generate
from seamlib.stages.evaluate import THRESHOLDS, sweep_metrics
from study.tables import mean_std

SMALL = {"synthetic": {"n_train": 6, "n_val": 4, "n_test": 2, "n_extra": 4}}  # 2 steps, 10 CAMs


def test_variant_config_switches_terms_and_seed_only():
    cfg = load_config("proxy")
    base, seam = variant_config(cfg, "baseline", 3), variant_config(cfg, "seam", 3)
    assert not (base.loss.use_er or base.loss.use_ecr or base.loss.use_rvmin)
    assert seam.loss == cfg.loss and seam.model == cfg.model and seam.data == cfg.data
    assert base.train_cam.seed == seam.train_cam.seed == 3 and cfg.train_cam.seed == 0
    assert base.train_cam.out_dir == seam.train_cam.out_dir == cfg.train_cam.out_dir
    with pytest.raises(ValueError, match="unknown variant"):
        variant_config(cfg, "affinity", 0)


def test_sweep_metrics_best_and_val_chosen_thresholds():
    confs = np.zeros((len(THRESHOLDS), 21, 21), np.int64)
    confs[:, 0, 0] = 10
    confs[:, 1, 1] = 10
    confs[5, 1, 0] = 0
    confs[np.arange(len(THRESHOLDS)) != 5, 1, 0] = 5  # train: best at index 5
    val = confs.copy()
    val[:, 1, 0] = 5
    val[7, 1, 0] = 0  # val: best at index 7
    m = sweep_metrics(confs, val)
    assert m["best_threshold"] == THRESHOLDS[5] and m["val_threshold"] == THRESHOLDS[7]
    assert m["train_miou_best"] > m["train_miou_at_val_threshold"]
    assert m["mfn_best"] < m["mfn_at_val_threshold"]
    assert len(m["curve"]["miou"]) == len(THRESHOLDS) and len(m["per_class_iou_best"]) == 21


def test_mean_std_over_seeds_ignores_nan_and_has_no_std_for_one_seed():
    assert mean_std([0.2]) == {"mean": 0.2, "std": None}
    out = mean_std([[0.2, np.nan], [0.4, np.nan]])
    assert out["mean"][0] == pytest.approx(0.3) and out["mean"][1] is None
    assert out["std"][0] == pytest.approx(np.std([0.2, 0.4], ddof=1))


def fake_run(method, seed, miou):
    iou = [miou] * 21
    curve = {k: [miou] * len(THRESHOLDS) for k in ("miou", "mfp", "mfn")}
    return {"method": method, "seed": seed, "train_miou_best": miou,
            "train_miou_at_val_threshold": miou, "best_threshold": 0.2, "val_threshold": 0.2,
            "mfp_best": 0.1, "mfn_best": 0.3, "mfp_at_val_threshold": 0.1,
            "mfn_at_val_threshold": 0.3, "per_class_iou_best": iou,
            "per_class_iou_at_val_threshold": iou, "curve": curve}


def test_findings_say_lower_when_seam_is_lower():
    runs = [fake_run("baseline", s, 0.5 + 0.01 * s) for s in range(3)]
    runs += [fake_run("seam", s, 0.4) for s in range(3)]
    report = {"summary": aggregate(runs), "classes": [f"c{i}" for i in range(21)]}
    lines = findings(report)
    assert "lower by 11.0 points, not better for SEAM; larger than the sum" in lines[0]
    assert "higher on 0 and lower on 21 of 21" in lines[-1]


def compare_in(folder, *args, **kw) -> dict:
    """``compare`` run from ``folder``: its runs go to ``folder``/runs/smoke/..."""
    folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        return compare(*args, **kw)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    cfg = load_config("smoke", SMALL, data_root=tmp / "VOC")
    generate(cfg.synthetic, tmp / "VOC", workers=1)
    return compare_in(tmp, cfg, [0], "seam compare --profile smoke --seeds 0", tmp / "results",
                      progress=False), tmp


@pytest.mark.slow
def test_compare_writes_complete_report(report):
    report, tmp = report
    saved = json.loads((tmp / "results" / "seam_vs_baseline.json").read_text())
    assert saved["seeds"] == [0] and {r["method"] for r in saved["runs"]} == {"baseline", "seam"}
    assert (tmp / "results" / "seam_vs_baseline.png").stat().st_size > 0
    md = (tmp / "results" / "seam_vs_baseline.md").read_text()
    assert md == format_markdown(saved) and "| seam |" in md and "val-chosen" in md
    for run in saved["runs"]:
        assert 0 <= run["train_miou_at_val_threshold"] <= run["train_miou_best"] <= 1
        assert run["use_pcm"] == (run["method"] == "seam") and run["steps"] > 0
        assert set(run["seconds"]) == {"train", "cams", "evaluate"}
        assert "background" in run["classes_with_ground_truth"]
        assert set(run["classes_with_ground_truth"]) <= set(run["classes_in_means"])
    runs = tmp / "runs" / "smoke"
    seam_cfg = json.loads((runs / "seam" / "seed0" / "train_cam" / "config.json").read_text())
    base_cfg = json.loads((runs / "baseline" / "seed0" / "train_cam" / "config.json").read_text())
    assert seam_cfg["loss"]["use_er"] and not base_cfg["loss"]["use_er"]


@pytest.mark.slow
def test_compare_reuses_runs_and_reproduces_numbers(report):
    report, tmp = report
    cfg = load_config("smoke", SMALL, data_root=tmp / "VOC")
    again = compare_in(tmp, cfg, [0], "again", tmp / "again", progress=False)
    assert all(r["reused_training"] for r in again["runs"])
    # the CAMs are reused too, and the report still states what making them cost
    made = [r["seconds"]["cams"] for r in report["runs"]]
    assert all(t > 0 for t in made) and [r["seconds"]["cams"] for r in again["runs"]] == made
    assert again["summary"] == json.loads(json.dumps(report["summary"]))


@pytest.mark.slow
def test_parallel_runs_give_the_serial_numbers(report):
    report, tmp = report
    cfg = load_config("smoke", SMALL, data_root=tmp / "VOC")
    parallel = compare_in(tmp / "parallel", cfg, [0], "parallel", tmp / "parallel_results",
                          progress=False, workers=2)
    assert [r["method"] for r in parallel["runs"]] == [r["method"] for r in report["runs"]]
    assert not any(r["reused_training"] for r in parallel["runs"])
    threads = max(1, os.cpu_count() // 2)
    assert all(r["threads"] == r["train_threads"] == threads for r in parallel["runs"])
    # each run names the threads it ran with, not those of the process writing the report
    assert all(f", {threads} torch threads," in r["hardware"] for r in parallel["runs"])
    md = (tmp / "parallel_results" / "seam_vs_baseline.md").read_text()
    assert f", {threads} torch threads," in md.split("Hardware: ")[1].splitlines()[0]
    assert f"torch threads per run: [{threads}] (training: {threads})." in md
    for mine, serial in zip(parallel["runs"], report["runs"], strict=True):
        # one thread per run instead of all: the same training, up to float rounding
        assert mine["train_miou_best"] == pytest.approx(serial["train_miou_best"], abs=1e-3)
        assert mine["curve"]["miou"] == pytest.approx(serial["curve"]["miou"], abs=1e-3)


@pytest.mark.slow
def test_extend_keeps_recorded_seeds_and_refuses_other_settings(report):
    report, tmp = report
    results = tmp / "extended"
    results.mkdir()
    (results / "seam_vs_baseline.json").write_text(
        (tmp / "results" / "seam_vs_baseline.json").read_text())
    cfg = load_config("smoke", SMALL, data_root=tmp / "VOC")
    extended = compare_in(tmp, cfg, [1], "seam compare --seeds 1 --extend", results,
                          progress=False, extend=True)
    assert extended["seeds"] == [0, 1] and len(extended["runs"]) == 4
    assert extended["commands"] == ["seam compare --profile smoke --seeds 0",
                                    "seam compare --seeds 1 --extend"]
    kept = [r for r in extended["runs"] if r["seed"] == 0]
    assert [r["train_miou_best"] for r in kept] == [r["train_miou_best"] for r in report["runs"]]
    assert extended["summary"]["seam"]["train_miou_best"]["std"] is not None
    assert "seam compare --seeds 1 --extend" in (results / "seam_vs_baseline.md").read_text()
    other = load_config("smoke", SMALL | {"train_cam": {"lr": 0.5}}, data_root=tmp / "VOC")
    with pytest.raises(ValueError, match=r"other settings: train_cam.lr was"):
        compare(other, [2], "x", results, progress=False, extend=True)
    with pytest.raises(FileNotFoundError, match="no earlier comparison"):
        compare(cfg, [2], "x", tmp / "nothing", progress=False, extend=True)


def test_runs_in_a_pool_are_returned_in_the_jobs_order(monkeypatch):
    """Spawned runs come back as they finish; run_methods returns them in the jobs' order, and
    each worker gets cpu_count // workers threads (tests/test_parallel.py checks they arrive)."""
    import experiments.compare as compare_module

    seen = {}

    def runner(fn, jobs, workers, **kw):
        seen.update(workers=workers, **kw)
        return iter([(job, {"job": job}) for job in reversed(jobs)])

    monkeypatch.setattr(compare_module, "run_parallel", runner)
    monkeypatch.setattr(compare_module.os, "cpu_count", lambda: 6)
    jobs = [("baseline", 0), ("seam", 0), ("seam", 1)]
    runs = compare_module.run_methods(None, jobs, workers=2, progress=False)
    assert [r["job"] for r in runs] == jobs
    assert seen == {"workers": 2, "threads": 3, "star": True}
