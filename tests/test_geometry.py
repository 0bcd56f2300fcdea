"""The geometry diagnosis end to end on smoke: each model's record, its PCM scored only when it
trained one, the input-scale sweep of baseline and SEAM, and a resumed run that keeps records."""

import json

import pytest

from experiments.geometry import DIAGNOSTICS, INPUT_SCALES, run_diagnostics
from seamlib.config import load_config
from seamlib.data.synthetic import generate


@pytest.mark.slow
def test_diagnostics_record_every_model_and_resume(tmp_path):
    cfg = load_config("smoke", data_root=tmp_path / "VOC2012")
    generate(cfg.synthetic, tmp_path / "VOC2012", workers=1)
    names = ["baseline", "seam", "two_branch_cls"]
    report = run_diagnostics(cfg, names, tmp_path / "out", tmp_path / "runs", "test", workers=1)
    records = report["records"]
    assert set(records) == set(names)
    assert "pcm" in records["seam"] and "pcm" not in records["two_branch_cls"]
    assert "pcm_label_masked" in records["seam"] and "pcm_label_masked" not in records["baseline"]
    assert set(records["baseline"]["input_scales"]) == {f"{s:g}" for s in INPUT_SCALES}
    for r in records.values():
        assert 0 <= r["fc8"]["train_miou_best"] <= 1 and 0 <= r["val_map"] <= 1
    md = (tmp_path / "out" / "geometry.md").read_text()
    assert "| seam | pcm_label_masked |" in md and "x0.5" in md
    again = run_diagnostics(cfg, names, tmp_path / "out", tmp_path / "runs", "again", workers=1)
    assert again["records"] == json.loads(json.dumps(records))


def test_every_diagnostic_is_a_variant_that_changes_only_the_loss():
    from seamlib.config import VARIANTS

    assert {"baseline", "seam", "pcm_only", "two_branch_cls"} <= set(DIAGNOSTICS) <= set(VARIANTS)
    for name in DIAGNOSTICS:
        assert set(VARIANTS[name]) <= {"loss"}, name
    assert VARIANTS["pcm_only"] == {"loss": {"use_er": False}}  # SEAM without ER
