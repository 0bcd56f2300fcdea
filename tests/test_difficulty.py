"""The plain-CAM baseline and the difficulty measurement, end to end on the smoke profile."""

import json

import pytest

from experiments.difficulty import baseline_config, measure_difficulty
from seamlib.config import load_config
from seamlib.data.synthetic import generate
from seamlib.data.voc import CLASSES
from seamlib.stages.evaluate import THRESHOLDS


def test_baseline_config_is_the_baseline_variant_at_the_profile_seed():
    cfg = load_config("proxy", {"train_cam": {"seed": 4}})
    base = baseline_config(cfg)
    assert not (base.loss.use_er or base.loss.use_ecr or base.loss.use_rvmin)
    assert base.train_cam.seed == 4
    assert cfg.loss.use_er  # input left untouched


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("difficulty")
    cfg = load_config("smoke", data_root=tmp / "VOC")
    generate(cfg.synthetic, tmp / "VOC", workers=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the run goes to tmp/runs/smoke/baseline/seed0
        return measure_difficulty(cfg, "seam difficulty --profile smoke")


@pytest.mark.slow
def test_measurement_is_complete_and_in_range(result):
    assert 0 <= result["val_map"] <= 1
    assert 0 <= result["train_miou_best"] <= 1
    assert result["train_miou_at_val_threshold"] <= result["train_miou_best"] + 1e-9
    assert len(result["curve"]) == len(THRESHOLDS)
    best = max(r["miou"] for r in result["curve"])
    assert result["train_miou_best"] == pytest.approx(best)
    assert result["best_threshold"] in THRESHOLDS and result["train_minutes"] >= 0
    assert result["config"]["loss"]["use_er"] is False
    json.dumps(result, allow_nan=False)  # valid JSON: classes absent from smoke's lists are null
    assert result["run_dir"] == "runs/smoke/baseline/seed0" and result["steps"] > 0


def test_val_map_is_the_mean_of_the_per_class_aps(result):
    aps = result["val_ap_per_class"]
    assert list(aps) == list(CLASSES[1:])  # the 20 foreground classes, in order
    present = [ap for ap in aps.values() if ap is not None]
    assert present and all(0 <= ap <= 1 for ap in present)
    assert result["val_map"] == pytest.approx(sum(present) / len(present))
