"""`seam run`: the stages in order on smoke, skipping what is up to date and rerunning what
changed together with everything after it."""

from __future__ import annotations

import json
import shutil

import pytest

from seamlib.config import apply_overrides, load_config
from seamlib.data.lists import list_path
from seamlib.data.voc import read_list
from seamlib.device import hardware
from seamlib.errors import InputError
from seamlib.pipeline import STAGE_NAMES, keys, run_pipeline, stale_stages
from seamlib.report import duration

pytestmark = pytest.mark.slow  # the whole module: seconds, not milliseconds


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole pipeline once on smoke, in a temporary data root and run folder."""
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = load_config("smoke", data_root=tmp / "VOC2012")
    return cfg, tmp / "run", run_pipeline(cfg, tmp / "run")


def test_every_stage_runs_in_order_and_writes_its_outputs(smoke_run):
    cfg, run, timings = smoke_run
    assert list(timings) == list(STAGE_NAMES)
    assert all(t["ran"] for t in timings.values())
    assert (run / "train_cam" / "model.pth").is_file()
    assert (run / "train_affinity" / "model.pth").is_file()
    assert (run / "train_seg" / "model.pth").is_file()
    for name in (cfg.data.cam_list, cfg.data.val_list):
        assert any((run / "cams" / name).glob("*.npz"))
    ids = (run / "label_cams" / cfg.data.train_list).glob("*.npz")  # the whole training list
    assert len(list(ids)) == len(read_list(list_path(cfg.data.root, cfg.data.train_list)))
    assert any((run / "random_walk").glob("*.png"))
    metrics = json.loads((run / "evaluate" / "metrics.json").read_text())
    assert {"cams", "random_walk", "segment_val"} <= set(metrics)
    # the CAMs' scores are cam_eval's record, read rather than scored a second time
    assert metrics["cams"] == json.loads((run / "cam_eval" / "metrics.json").read_text())
    for key, result in metrics.items():
        assert key == "cams" or 0 <= result["miou"] <= 1
    assert json.loads((run / "timings.json").read_text()) == timings


def test_cam_eval_scores_the_cams_at_the_best_and_the_val_chosen_threshold(smoke_run):
    _, run, _ = smoke_run
    metrics = json.loads((run / "cam_eval" / "metrics.json").read_text())
    assert metrics["use_pcm"] is True  # SEAM's CAMs are the PCM output
    assert 0 <= metrics["train_miou_at_val_threshold"] <= metrics["train_miou_best"] <= 1


def test_a_variant_and_seed_run_in_their_own_folder(smoke_run, tmp_path, monkeypatch):
    from seamlib.cli import main

    cfg, _, _ = smoke_run
    monkeypatch.chdir(tmp_path)
    main(["run", "--profile", "smoke", "--data-root", cfg.data.root, "--variant", "baseline",
          "--seed", "3", "--until", "train_cam"])
    saved = json.loads((tmp_path / "runs/smoke/baseline/seed3/train_cam/config.json").read_text())
    assert saved["train_cam"]["seed"] == 3 and saved["loss"]["use_er"] is False


def test_a_recorded_run_is_read_back_and_a_changed_setting_is_not(smoke_run, tmp_path,
                                                                  monkeypatch):
    from study.records import recorded_run

    cfg, _, _ = smoke_run
    monkeypatch.chdir(tmp_path)
    first = recorded_run(cfg, "baseline", 0, results=tmp_path / "results")
    path = tmp_path / "results/smoke/runs/baseline/seed0/cam_eval.json"
    assert path.is_file() and first["metrics"]["use_pcm"] is False
    run = tmp_path / first["run_dir"]  # scored on CAMs alone: the whole training list not inferred
    assert sorted(p.name for p in (run / "cams").iterdir() if p.is_dir()) == [cfg.data.cam_list,
                                                                 cfg.data.val_list]
    assert not (run / "label_cams").exists()
    assert 0 <= first["metrics"]["train_miou_best"] <= 1
    again = recorded_run(cfg, "baseline", 0, results=tmp_path / "results", run=False)
    assert again == first
    other = apply_overrides(cfg, {"cams": {"scales": (1.0,)}})
    with pytest.raises(FileNotFoundError, match="no record of this run with these settings"):
        recorded_run(other, "baseline", 0, results=tmp_path / "results", run=False)


def test_a_second_run_skips_every_stage(smoke_run):
    cfg, run, _ = smoke_run
    again = run_pipeline(cfg, run)
    assert not any(t["ran"] for t in again.values())


def test_seam_run_ends_with_the_result_table(smoke_run, capsys):
    from seamlib.cli import main

    cfg, run, _ = smoke_run
    main(["run", "--profile", "smoke", "--data-root", cfg.data.root, "--run-dir", str(run)])
    out = capsys.readouterr().out
    assert "| run | CAM, best thr |" in out and "| smoke seam seed0 | " in out
    main(["run", "--profile", "smoke", "--data-root", cfg.data.root, "--run-dir", str(run),
          "--until", "random_walk"])
    assert "stopped after random_walk" in capsys.readouterr().out


def test_the_report_tabulates_every_stage_output_and_wall_time(smoke_run, tmp_path):
    from experiments.__main__ import main

    cfg, run, _ = smoke_run
    run_pipeline(cfg, run)  # up to date (nothing runs) unless a test before changed it
    main(["pipeline-report", f"seam={run}", "--out", str(tmp_path / "pipeline"),
          "--setup", "one thread"])
    report = json.loads((tmp_path / "pipeline.json").read_text())
    entry = report["runs"]["seam"]
    metrics = json.loads((run / "evaluate" / "metrics.json").read_text())
    assert entry["metrics"]["random_walk"]["miou"] == metrics["random_walk"]["miou"]
    cams = metrics["cams"]  # cam_eval's record, one row per threshold rule
    assert entry["metrics"]["cams"]["miou"] == cams["train_miou_best"]
    assert entry["metrics"]["cams_at_val_threshold"]["threshold"] == cams["val_threshold"]
    assert set(entry["seconds"]) == set(STAGE_NAMES)
    md = (tmp_path / "pipeline.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| seam | "))
    assert f"{100 * metrics['segment_val']['miou']:.1f}" in row
    assert "one thread" in md
    assert entry["hardware"] == [hardware()] and report["hardware"] == hardware()
    assert f"Hardware: {hardware()}" in md
    steal = entry["cpu_steal_percent"]  # on Linux, by each stage that lasted a tick or more
    assert {"train_cam", "train_affinity", "train_seg"} <= set(steal) <= set(STAGE_NAMES)
    assert all(0 <= v <= 100 for v in steal.values())
    assert f"train_cam {steal['train_cam']:.1f}, cams {steal['cams']:.1f}" in md
    times = next(line for line in md.split("## Wall time per stage")[1].splitlines()
                 if line.startswith("| seam | "))
    assert f"| {duration(entry['seconds']['train_cam'])} |" in times  # smoke: seconds, not 0.0


def test_a_record_whose_output_was_deleted_runs_again(smoke_run, capsys):
    cfg, run, _ = smoke_run
    run_pipeline(cfg, run)  # up to date (nothing runs) unless a test before changed it
    model = run / "train_cam" / "model.pth"
    weights = model.read_bytes()
    model.unlink()
    assert stale_stages(cfg, run, "evaluate") == ["train_cam"]  # later stages keep their work
    model.write_bytes(weights)
    (run / "evaluate" / "metrics.json").unlink()
    capsys.readouterr()
    timings = run_pipeline(cfg, run)
    assert [name for name, t in timings.items() if t["ran"]] == ["evaluate"]
    assert "evaluate/metrics.json is missing: running the stage again" in capsys.readouterr().out
    assert (run / "evaluate" / "metrics.json").is_file()


def test_durations_read_in_the_unit_that_fits():
    assert [duration(s) for s in (0.04, 59.9, 60, 738, 3600, 5040)] == [
        "0.0 s", "59.9 s", "1.0 min", "12.3 min", "1.0 h", "1.4 h"]


def test_a_changed_setting_reruns_its_stage_and_everything_after(smoke_run, capsys):
    cfg, run, _ = smoke_run
    changed = apply_overrides(cfg, {"random_walk": {"beta": 4.0}})
    model = (run / "train_seg" / "model.pth").read_bytes()
    with pytest.raises(InputError, match=r"train_seg holds weights trained with other settings "
                       r"\(an earlier stage changed\); use another --run-dir, or --replace"):
        run_pipeline(changed, run, until="train_seg")  # never deletes trained weights unasked
    assert (run / "train_seg" / "model.pth").read_bytes() == model
    assert "clearing" not in capsys.readouterr().out  # refused before any stage ran
    timings = run_pipeline(changed, run, until="train_seg", replace=True)
    ran = [name for name, t in timings.items() if t["ran"]]
    assert ran == ["random_walk", "train_seg"]
    assert list(timings)[-1] == "train_seg"
    out = capsys.readouterr().out
    assert "[random_walk] random_walk.beta was 8.0, now 4.0: clearing" in out
    assert "[train_seg] an earlier stage changed: clearing" in out


def changed_keys(cfg, other) -> list[str]:
    """The stages whose keys differ between two configs."""
    a, b = keys(cfg), keys(other)
    return [name for name in STAGE_NAMES if a[name][0] != b[name][0]]


def test_keys_chain_so_an_early_change_moves_every_later_key():
    cfg = load_config("smoke")
    other = apply_overrides(cfg, {"train_cam": {"epochs": 2}})
    assert changed_keys(cfg, other) == list(STAGE_NAMES[STAGE_NAMES.index("train_cam"):])


def test_the_device_is_in_the_key_from_the_first_stage_that_computes_with_torch():
    cfg = load_config("smoke")
    cpu, cuda = apply_overrides(cfg, {}), apply_overrides(cfg, {})
    cpu.device, cuda.device = "cpu", "cuda:1"
    assert changed_keys(cpu, cuda) == list(STAGE_NAMES[STAGE_NAMES.index("train_cam"):])
    assert keys(cuda)["train_cam"][1]["device"] == "cuda"


def test_where_files_go_and_how_many_processes_work_leave_every_key_alone():
    cfg = load_config("smoke")
    other = apply_overrides(cfg, {
        "data": {"num_workers": 3, "cache_images": False},
        **{s: {"out_dir": "elsewhere", "log_every": 7, "checkpoint_every": 5}
           for s in ("train_cam", "train_affinity", "train_seg")},
        "crf": {"workers": 5}, "pretrain": {"out_dir": "elsewhere", "threads": 2}})
    assert changed_keys(cfg, other) == []
    assert "out_dir" not in keys(cfg)["train_cam"][1]["train_cam"]


def test_a_finished_run_asked_for_on_another_device_is_stale_from_train_on(smoke_run):
    cfg, run, _ = smoke_run
    assert stale_stages(cfg, run, "cam_eval") == []
    other = apply_overrides(cfg, {})
    other.device = "cuda"  # the smoke run was made on the CPU
    assert stale_stages(other, run, "cam_eval") == ["train_cam", "cams", "cam_eval"]


def test_unknown_until_is_an_error_naming_the_stages():
    with pytest.raises(ValueError, match="random_walk"):
        run_pipeline(load_config("smoke"), "unused", until="crff")


def test_the_report_names_a_run_that_did_not_finish(tmp_path):
    from seamlib.report import pipeline_report

    with pytest.raises(FileNotFoundError, match="metrics.json"):
        pipeline_report({"x": tmp_path})


def test_the_report_refuses_a_run_whose_last_call_stopped_early(smoke_run, tmp_path):
    from seamlib.report import pipeline_report

    cfg, run, _ = smoke_run
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    run_pipeline(cfg, partial, until="crf")
    with pytest.raises(ValueError, match="until"):
        pipeline_report({"x": partial})
