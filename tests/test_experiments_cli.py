"""``python -m experiments``: the lab tools' command line writes under runs/ unless told
``--out`` and ends bad input with one line."""

import json

import pytest

from experiments.__main__ import build_parser, main


def test_random_walk_sweep_command_writes_the_grid(monkeypatch, tmp_path):
    calls = []

    def sweep(run_dir, cfg, logts, alphas, list_name):
        calls.append((run_dir, cfg.random_walk.beta, logts, alphas, list_name))
        row = {"logt": 1, "alpha": 3.0, "miou": 0.5, "mfp": 0.2, "mfn": 0.3}
        return {"rows": [row], "best": row}

    monkeypatch.setattr("experiments.random_walk_sweep.random_walk_sweep", sweep)
    out = tmp_path / "rw.json"
    main(["random-walk-sweep", "RUN", "--profile", "smoke", "--logt", "1", "2", "--alpha", "3",
          "--set", "random_walk.beta=4", "--out", str(out)])
    assert calls == [("RUN", 4.0, [1, 2], [3.0], None)]
    written = json.loads(out.read_text())
    assert written["best"]["miou"] == 0.5 and "CPU" in written["hardware"]
    assert written["command"].startswith("python -m experiments random-walk-sweep")


def test_difficulty_writes_to_runs_unless_told_out(tmp_path, monkeypatch):
    monkeypatch.setattr("experiments.difficulty.measure_difficulty",
                        lambda cfg, command: {"val_map": 0.5, "command": command})
    monkeypatch.chdir(tmp_path)
    main(["difficulty", "--profile", "smoke"])
    assert json.loads((tmp_path / "runs" / "smoke" / "difficulty.json").read_text())["val_map"]
    main(["difficulty", "--profile", "smoke", "--out", "chosen"])
    assert (tmp_path / "chosen" / "difficulty.json").is_file()
    assert not (tmp_path / "results").exists()


def test_a_bad_input_ends_with_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pipeline-report", "seam", "--out", "x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith("experiments pipeline-report: run 'seam': expected NAME=DIR")


def test_pretrain_is_refused_for_a_profile_without_a_trunk(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["pretrain", "--profile", "voc"])
    assert exit_.value.code == 2 and "no pretraining stage" in capsys.readouterr().err


def test_every_lab_command_has_a_help_line():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"compare", "difficulty", "datasheet", "pretrain", "probe", "geometry",
            "random-walk-sweep", "pipeline-report"} == set(sub.choices)
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help and action.help.strip(), (name, action.dest)
