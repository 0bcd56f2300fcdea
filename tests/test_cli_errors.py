"""The command line tried as a new user would: each bad input ends with one line,
``seam <command>: <what is wrong and what to do>``, and exit status 2 (no traceback)."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

import seamlib
import seamlib.stages.train_cam
from seamlib.cli import main
from seamlib.data.voc import ANNOTATIONS, IMAGES, SEG_CLASS
from study.__main__ import main as study

REPO = Path(seamlib.__file__).resolve().parents[1]


def fails(capsys, command: str, *argv: str) -> str:
    """Run ``seam COMMAND ARGV``; check it exits 2 with one line on stderr (after any progress
    bar) starting ``seam COMMAND: ``, and return that line."""
    with pytest.raises(SystemExit) as exit_:
        main([command, *argv])
    err = capsys.readouterr().err.split("\r")[-1]
    assert exit_.value.code == 2
    assert err.startswith(f"seam {command}: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def no_training(monkeypatch) -> None:
    """Fail the test if ``seam train_cam`` gets as far as building its network."""
    monkeypatch.setattr(seamlib.stages.train_cam, "build_model",
                        lambda *a: pytest.fail("training began"))


def test_train_with_a_missing_annotation_names_it(voc_root, tmp_path, capsys, no_training):
    (voc_root / ANNOTATIONS / "2007_000002.xml").unlink()
    for command, *argv in (("train_cam", "--set", f"train_cam.out_dir={tmp_path / 'run'}"),
                           ("data", "--set", "data.prepare=validate")):
        err = fails(capsys, command, "--profile", "smoke", "--data-root", str(voc_root), *argv)
        assert f"{ANNOTATIONS}/2007_000002.xml: missing" in err
    assert not (tmp_path / "run").exists()


def test_cams_with_a_missing_annotation_names_it(voc_root, tmp_path, capsys):
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"not read: the lists are checked first")
    (voc_root / ANNOTATIONS / "2007_000002.xml").unlink()  # data.label_source is xml
    err = fails(capsys, "cams", "--profile", "smoke", "--data-root", str(voc_root), "--list",
                "train", "--weights", str(weights), "--out", str(tmp_path / "cams"))
    assert f"{ANNOTATIONS}/2007_000002.xml: missing" in err


def test_train_seg_on_score_maps_says_it_needs_label_pngs(voc_root, tmp_path, capsys):
    maps = tmp_path / "crf"
    maps.mkdir()
    (maps / "2007_000001.npz").write_bytes(b"score maps")
    err = fails(capsys, "train_seg", "--profile", "smoke", "--data-root", str(voc_root),
                "--labels", str(maps), "--out", str(tmp_path / "seg"))
    assert f"{maps}: holds .npz files" in err and "pass the random_walk folder" in err
    assert not (tmp_path / "seg").exists()


def test_train_before_data_says_to_run_seam_data(tmp_path, monkeypatch, capsys, no_training):
    monkeypatch.chdir(tmp_path)
    err = fails(capsys, "train_cam", "--profile", "smoke")
    assert "data/smoke/VOC2012 does not exist" in err and "`seam data --profile smoke`" in err
    err = fails(capsys, "cams", "--profile", "smoke", "--data-root", "elsewhere")
    assert "`seam data --profile smoke --data-root elsewhere`" in err
    err = fails(capsys, "train_cam", "--profile", "smoke", "--set", "data.prepare=validate")
    assert "point --data-root at your VOC-format folder" in err


def test_data_offline_names_both_archives_and_where_to_put_them(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr("urllib.request.urlopen", offline)
    err = fails(capsys, "data", "--profile", "voc", "--data-root", str(tmp_path / "voc/VOC2012"))
    downloads = (tmp_path / "voc" / "downloads").resolve()
    assert "name resolution" in err
    for archive in ("VOCtrainval_11-May-2012.tar", "benchmark.tgz"):
        assert f"{archive} (md5 " in err and str(downloads / archive) in err


def test_voc_without_imagenet_weights_names_the_path_and_the_setting(voc_root, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/weights/ here
    err = fails(capsys, "train_cam", "--profile", "voc", "--data-root", str(voc_root))
    assert "data/weights/ilsvrc-cls_rna-a1_cls1000_ep-0001.params" in err
    assert "--set model.weights=PATH" in err


def truncated_checkpoint() -> bytes:
    """The first half of a real torch.save file."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(64)}, buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize("content", ["random", "empty", "truncated"])
def test_cams_with_a_bad_checkpoint_names_the_file(voc_root, tmp_path, capsys, content):
    data = {"random": np.random.default_rng(0).bytes(4096), "empty": b"",
            "truncated": truncated_checkpoint()}[content]
    weights = tmp_path / "model.pth"
    weights.write_bytes(data)
    err = fails(capsys, "cams", "--profile", "smoke", "--data-root", str(voc_root),
                "--weights", str(weights), "--out", str(tmp_path / "cams"))
    assert f"seam cams: {weights}: " in err and "expected a PyTorch state dict" in err


def test_run_until_an_unknown_stage_lists_the_stages(tmp_path, capsys):
    err = fails(capsys, "run", "--profile", "smoke", "--until", "foo",
                "--run-dir", str(tmp_path / "run"))
    assert "until='foo': expected one of data," in err and "random_walk" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("until", ["random-walk", "random_walk"])
def test_run_until_takes_either_spelling(until, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("seamlib.pipeline.run_pipeline",
                        lambda cfg, run, stop, replace: calls.append(stop) or {stop: 0.0})
    main(["run", "--profile", "smoke", "--until", until])
    assert calls == ["random_walk"] and "stopped after random_walk" in capsys.readouterr().out


def test_evaluate_refuses_a_threshold_outside_0_1(voc_root, tmp_path, capsys):
    err = fails(capsys, "evaluate", str(tmp_path), "--profile", "smoke",
                "--data-root", str(voc_root), "--threshold", "1.5")
    assert "threshold 1.5: expected a CAM background threshold in [0, 1]" in err


@pytest.mark.parametrize("setting, expected", [
    ("train_cam.epochs=0", "at least 1"), ("train_affinity.epochs=0", "at least 1"),
    ("train_seg.epochs=-1", "at least 1"), ("train_cam.batch_size=0", "at least 1"),
    ("crf.bg_threshold=1.5", "[0, 1]"), ("crf.bg_threshold=nan", "[0, 1]"),
    ("loss.ecr_topk_ratio=0", "(0, 1]"), ("cams.scales=()", "one or more scales above 0"),
    ("segment.test_scales=()", "one or more scales"), ("cams.scales=0,1", "above 0"),
    ("train_cam.amp=foo", "one of auto, off, bf16, fp16"), ("crf.iterations=-5", "at least 0"),
    ("random_walk.logt=-3", "at least 0")])
def test_settings_out_of_range_are_refused_naming_them(setting, expected, capsys, no_training):
    name, value = setting.split("=")
    err = fails(capsys, "train_cam", "--profile", "smoke", "--set", setting)
    assert err.startswith(f"seam train_cam: setting {name}: cannot use ")
    assert expected in err


def test_validation_reports_the_bad_files_of_every_list_at_once(voc_root, capsys):
    jpeg = voc_root / IMAGES / "2007_000006.jpg"  # in train_aug only (and test)
    jpeg.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    (voc_root / SEG_CLASS / "2007_000004.png").unlink()  # in val only
    err = fails(capsys, "data", "--profile", "smoke", "--data-root", str(voc_root),
                "--set", "data.prepare=validate")
    assert "2 data problem(s) found; fix them first: " in err
    assert f"{IMAGES}/2007_000006.jpg: truncated" in err
    assert f"; {SEG_CLASS}/2007_000004.png: missing" in err


def test_notebook_runs_from_any_directory(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("papermill.execute_notebook",
                        lambda source, target, **kw: calls.append((source, target, kw)))
    monkeypatch.setattr("study.notebooks.make_stable", lambda *args: None)  # nothing ran
    monkeypatch.chdir(tmp_path)
    study(["notebook", "01_data", "--profile", "smoke"])
    (source, target, kw), = calls
    assert source == str(REPO / "notebooks" / "01_data.ipynb")
    assert target == str(REPO / "results" / "smoke" / "01_data.ipynb")
    assert kw["cwd"] == str(REPO / "notebooks") and kw["parameters"] == {"profile": "smoke"}
    assert not any(tmp_path.iterdir())
    study(["notebook", "03_cams", "--profile", "smoke", "--no-train"])
    assert calls[1][2]["parameters"] == {"profile": "smoke", "train": False}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        study(["notebook", "00_nope"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("python -m study notebook: ") and "expected one of 01_data" in err


def test_help_does_not_import_torch():
    code = ("import sys, seamlib.cli; seamlib.cli.build_parser().format_help(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_a_bug_shows_its_traceback_and_exits_1(monkeypatch, capsys):
    """Only what the user can fix (seamlib.errors.SeamError) is one line with exit 2; any
    other exception is a bug: its traceback, a line saying so, exit 1."""
    import seamlib.stages.evaluate

    def bug(*args, **kwargs):
        return {}["missing key"]

    monkeypatch.setattr(seamlib.stages.evaluate, "evaluate", bug)
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(REPO), "--profile", "smoke", "--data-root", str(REPO)])
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert "Traceback" in err and "KeyError: 'missing key'" in err
    assert err.rstrip().splitlines()[-1].startswith("seam evaluate: this is a bug in seamlib")


def test_ctrl_c_names_the_stage_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(seamlib.stages.train_cam, "train_cam", interrupted)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--profile", "smoke", "--data-root", str(tmp_path / "VOC2012")])
    assert exit_.value.code == 130
    err = capsys.readouterr().err.split("\r")[-1]
    assert err == ("seam run: interrupted during train_cam; rerun the same command to resume\n")


def test_a_negative_seed_is_refused_before_any_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = fails(capsys, "run", "--profile", "smoke", "--seed", "-1")
    assert "setting train_cam.seed: cannot use -1; expected at least 0" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_evaluate_names_a_missing_folder_before_the_data(tmp_path, capsys):
    missing = tmp_path / "nothing_here"
    err = fails(capsys, "evaluate", str(missing), "--data-root", str(tmp_path / "no_data"))
    assert err == f"seam evaluate: {missing}: no such folder (the pred dir to read)\n"
