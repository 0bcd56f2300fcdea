"""`python -m study reproduce`: the plan of runs behind notebooks 04 and 05, what remains,
estimates from what was recorded, and the runs themselves on two worker processes (smoke, a
reduced plan)."""

from __future__ import annotations

import json

import pytest

from seamlib.config import load_config
from study import reproduce as rep
from study.reproduce import Job, plan, remaining


def test_the_plan_holds_every_table_row_and_starts_with_the_runs_inference_reuses():
    cfg = load_config("proxy")
    chains = plan(cfg)
    firsts = [(c[0].variant, c[0].seed) for c in chains]
    assert firsts[:2] == [("baseline", 0), ("seam", 0)]
    assert firsts[2:6] == [("baseline", 3), ("seam", 3), ("baseline", 4), ("seam", 4)]
    assert firsts[6:11] == [("seam_rescale05", k) for k in range(5)]
    assert firsts[11:15] == [("baseline", 1), ("seam", 1), ("baseline", 2), ("seam", 2)]
    rows = {v for section in rep.ABLATIONS.values() for v in section}
    assert {v for v, _ in firsts} == rows and len(firsts) == len(set(firsts))
    seeds = {v: sorted(k for w, k in firsts if w == v) for v in rows}
    assert seeds["seam"] == seeds["baseline"] == seeds["seam_rescale05"] == [0, 1, 2, 3, 4]
    assert seeds["pcm_only"] == seeds["baseline_wide_aug"] == seeds["seam_rescale07"] == [0, 1, 2]
    assert seeds["er_only"] == seeds["transform_flip"] == [0]
    seam0 = [job.name for job in chains[1]]
    assert seam0[:4] == ["cam_eval", "fc8", "evaluate", "crf_threshold"]
    assert "cams_scales_0.5-1" in seam0 and "cams_scales_1.75" in seam0
    assert "cams_scales_0.5-1-1.5-2" not in seam0  # the profile's own scales: cam_eval's record
    baseline0 = [job.name for job in chains[0]]
    assert baseline0[:2] == ["cam_eval", "recognisability"]
    assert {"gradcam_scales_1", "gradcam++_scales_1"} <= set(baseline0)  # of the baseline only
    assert not any(name.startswith("gradcam") for name in seam0)
    by_run = {(c[0].variant, c[0].seed): [job.name for job in c] for c in chains}
    assert by_run["seam", 3] == ["cam_eval", "fc8"]  # ER only: SEAM's fc8, every seed
    assert by_run["baseline", 4] == ["cam_eval", "recognisability"]
    assert by_run["seam", 2][:4] == ["cam_eval", "fc8", "evaluate", "crf_threshold"]  # 05: 0-2
    assert by_run["seam", 2][4:] == seam0[4:]  # inferred at other scales: seeds 0-2
    assert not any(name.startswith("cams_scales") for name in by_run["seam", 3])
    assert by_run["seam_rescale05", 1] == by_run["pcm_only", 2] == ["cam_eval"]


def test_chosen_seeds_apply_to_every_variant():
    chains = plan(load_config("proxy"), seeds=[3])
    assert {c[0].seed for c in chains} == {3}
    assert not any(job.kind == "evaluate" for c in chains for job in c)  # 05: seeds 0-2 only


@pytest.mark.slow
def test_reproduce_runs_what_remains_on_two_workers_and_then_nothing(tmp_path, monkeypatch,
                                                                    capfd):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rep, "ABLATIONS", {"components": ("baseline", "seam")})
    monkeypatch.setattr(rep, "SCALE_SETS", ((1.0,),))
    monkeypatch.setattr(rep, "INPUT_SCALES", (1.0,))
    cfg = load_config("smoke", data_root=tmp_path / "VOC2012")
    summary = rep.reproduce(cfg, workers=2, seeds=[0], results=tmp_path / "results")
    assert summary["failed"] == [] and summary["workers"] == 2
    made = {d["job"] for d in summary["ran"]}
    assert made == {str(job) for chain in plan(cfg, [0]) for job in chain}
    records = tmp_path / "results/smoke/runs"
    assert (records / "seam/seed0/evaluate.json").is_file()
    scaled = json.loads((records / "baseline/seed0/cams_scales_1.json").read_text())
    assert scaled["scales"] == [1.0] and 0 <= scaled["metrics"]["train_miou_best"] <= 1
    plus = json.loads((records / "baseline/seed0/gradcam++_scales_1.json").read_text())
    assert plus["method"] == "gradcam++" and plus["key"].endswith("+gradcam++")
    assert plus["metrics"]["train_miou_best"] != scaled["metrics"]["train_miou_best"]
    crf = json.loads((records / "baseline/seed0/crf_threshold.json").read_text())
    assert 0 <= crf["metrics"]["miou"] <= 1
    log = json.loads((tmp_path / "results/smoke/reproduce_log.json").read_text())
    assert len(log) == 1 and len(log[0]["ran"]) == len(made) and log[0]["finished"]
    out, err = capfd.readouterr()  # the workers' lines too (their own processes)
    assert f"{len(plan(cfg, [0]))} of {len(plan(cfg, [0]))} chains done after" in out
    bars = (tmp_path / "runs/smoke/seam/seed0" / rep.PROGRESS_LOG).read_text()
    assert "started: seam seed 0 cam_eval (progress: runs/smoke/seam/seed0/progress.log)" in out
    assert "train" in bars and "train" not in err  # the bars went to the run's log

    assert remaining(cfg, plan(cfg, [0]), tmp_path / "results") == []
    again = rep.reproduce(cfg, workers=2, seeds=[0], results=tmp_path / "results")
    assert again["ran"] == [] and "nothing remains" in capfd.readouterr().out

    rep.reproduce(cfg, workers=2, seeds=[1], results=tmp_path / "results", dry_run=True)
    out = capfd.readouterr().out  # seed 1: trained like seed 0, so its time is estimated
    assert "seam seed 1 cam_eval (~" in out and "no estimate" not in out


def test_a_job_without_its_record_is_an_error_when_running_is_off(tmp_path):
    cfg = load_config("smoke", data_root=tmp_path / "VOC2012")
    with pytest.raises(FileNotFoundError, match="no record of these scales"):
        rep.run_job(cfg, Job("seam", 0, "scales", (1.0,)), tmp_path / "results", run=False)
    with pytest.raises(ValueError, match="workers=0: expected at least 1"):
        rep.reproduce(cfg, workers=0, results=tmp_path / "results")


def test_recorded_compute_counts_each_stage_of_a_run_once_plus_inference_jobs(tmp_path):
    runs = tmp_path / "results/proxy/runs/baseline/seed0"
    runs.mkdir(parents=True)
    hw = {"hardware": "cpu x"}
    first = {"train_cam": {"seconds": 100.0, **hw}, "cams": {"seconds": 10.0, **hw}}
    (runs / "cam_eval.json").write_text(json.dumps(
        {"run_dir": "runs/proxy/baseline/seed0", "timings": first}))
    (runs / "evaluate.json").write_text(json.dumps(  # shares train and cams with cam_eval
        {"run_dir": "runs/proxy/baseline/seed0",
         "timings": {**first, "train_seg": {"seconds": 50.0, **hw}}}))
    (runs / "cams_scales_1.json").write_text(json.dumps({"seconds": 5.0, "scales": [1.0]}))
    compute = rep.recorded_compute("proxy", tmp_path / "results")
    assert compute == {"seconds": 165.0, "run_folders": 1, "hardware": ["cpu x"]}


def test_the_dry_run_counts_the_notebooks_own_work_where_runs_are_gone(tmp_path, monkeypatch):
    """A fresh clone has every record but no runs/: the dry run says nothing remains of the
    plan and then what notebooks 02 and 03 still train, with their estimated minutes."""
    from pathlib import Path

    results = Path(rep.__file__).resolve().parents[1] / "results"
    seconds = rep.recorded_seconds("proxy", results)
    monkeypatch.chdir(tmp_path)  # no runs/ here
    text = rep.describe(load_config("proxy"), [], 2, seconds)
    assert text.startswith("every run behind the tables is recorded; nothing remains")
    assert "notebook 02_train_seam: seam seed 0 up to train_cam (~" in text
    assert "notebook 03_cams: baseline seed 0 up to cams (~" in text
    assert "notebook 03_cams: seam seed 0 up to random_walk (~" in text  # its training counted once
    assert "min on one worker" in text.splitlines()[-1]


def study_fails(capsys, *argv: str) -> str:
    """Run ``python -m study ARGV``; check it exits 2 with one line on stderr; return it."""
    from study.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    return err


def test_reproduce_with_no_workers_and_a_failed_run_end_in_one_line(tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)
    err = study_fails(capsys, "reproduce", "--profile", "smoke", "--workers", "0")
    assert err == "python -m study reproduce: workers=0: expected at least 1\n"
    monkeypatch.setattr(rep, "reproduce", lambda *a, **k: {"failed": [
        {"job": "seam seed 0 cam_eval", "error": "OSError: x.jpg: truncated"}]})
    err = study_fails(capsys, "reproduce", "--profile", "smoke")
    assert "1 runs failed, the first: seam seed 0 cam_eval: OSError: x.jpg: truncated" in err


def test_seam_has_no_reproduce_command_the_study_does(capsys):
    """The library runs the method; the runs behind the paper's tables are the study's."""
    from seamlib.cli import main

    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    assert "invalid choice: 'reproduce'" in capsys.readouterr().err


def test_the_chains_share_the_threads_through_the_runner(monkeypatch):
    """The worker environment is explicit: the runner gives each worker ``threads`` threads
    (tests/test_parallel.py checks that they reach it)."""
    seen = {}

    def runner(fn, jobs, workers, **kw):
        seen.update(jobs=jobs, workers=workers, **kw)
        return iter([(jobs[0], [{"job": "x", "seconds": 1.0}])])

    monkeypatch.setattr(rep, "run_parallel", runner)
    assert list(rep._run_chains(None, [["chain"]], 2, 3, "results")) == [
        [{"job": "x", "seconds": 1.0}]]
    assert seen == {"jobs": [["chain"]], "workers": 2, "threads": 3}
