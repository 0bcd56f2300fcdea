"""study.summary: every table and figure linked, with notebook 04's verdicts and the runs
not recorded yet."""

from __future__ import annotations

import json

from seamlib.config import load_config
from study.reproduce import plan
from study.summary import write_summary


def test_the_summary_links_tables_and_figures_with_verdicts_and_missing_runs(tmp_path):
    out = tmp_path / "results" / "proxy"
    (out / "tables").mkdir(parents=True)
    (out / "tables" / "04_components.md").write_text("# t\n")
    (out / "tables" / "pseudo_masks.md").write_text("# t\n")
    (out / "04_scale_consistency.png").write_bytes(b"png")
    sections = {"components": {"claims": {"SEAM beats each component": {
        "verdict": "not resolved"}}}}
    (out / "04_ablations.json").write_text(json.dumps({"sections": sections}))
    cfg = load_config("proxy")
    text = write_summary(cfg, out, tmp_path / "results").read_text()
    assert "- [04_components](tables/04_components.md): ER, PCM and ECR" in text
    assert "Verdict: SEAM beats each component: **not resolved**." in text
    assert "- [pseudo_masks](tables/pseudo_masks.md): pseudo masks" in text
    assert "[04_scale_consistency.png](04_scale_consistency.png)" in text
    jobs = sum(len(chain) for chain in plan(cfg))
    assert f"{jobs} of the runs behind the tables: baseline seed 0 cam_eval" in text
    assert "5x5 map" in text  # what the proxy cannot show
    assert "The recorded runs took 0.0 h of one worker's time" in text
