"""``results/<profile>/summary.md``: every table and figure the notebooks wrote, one line each
on what it shows, the ablation verdicts of notebook 04, and which runs are not recorded yet."""

from __future__ import annotations

import json
from pathlib import Path

from seamlib.config import Config
from seamlib.formats import atomic_write
from study.reproduce import plan, recorded_compute, remaining

# What each table can show on the synthetic proxy (the paper's VOC numbers are never in them).
TABLES = {
    "04_components": "ER, PCM and ECR added to the baseline one at a time (paper: each helps)",
    "04_transformations": "the transformation A of ER (paper: rescale is the best)",
    "04_augmentation": "the baseline with wider rescale augmentation (paper: ER is more than "
                       "augmentation)",
    "04_er_scale": "SEAM with ER's second branch at rescale 0.3 (the paper's), 0.5 and 0.7",
    "04_er_scale_recognisability": "the baseline's val mAP on inputs downscaled as ER's "
                                   "second branch (inference only)",
    "04_multiscale": "multi-scale inference sets (inference only)",
    "04_gradcam": "the baseline's CAM, Grad-CAM and Grad-CAM++ against SEAM, one input scale",
    "04_scale_consistency": "one input scale at a time (paper: SEAM's CAMs vary less)",
    "04_verdicts": "every claim's paired difference over seeds, its 95 % t interval and verdict",
    "pseudo_masks": "pseudo masks: CAM, CAM + CRF, CAM + random walk",
    "sota_measured": "the retrained segmentation network on val and test",
    "sota_reported": "others' reported VOC numbers, for context only (not measured here)",
}
LAB = ("seam_vs_baseline.md", "difficulty.json", "datasheet.md", "pipeline.md")
# What a profile's numbers cannot show, said once at the top of its summary.
LIMITS = {
    "proxy": "The proxy is a synthetic VOC-format benchmark with a 1/8-width ResNet38 and crop "
             "128, where ER's rescaled branch (0.3) is a 5x5 map (17x17 in the paper): it "
             "tests the pipeline and the direction of effects, not the paper's VOC numbers "
             "(why SEAM trails the baseline here: diagnostics/README.md).",
    "smoke": "Smoke runs last seconds and exist for the tests: their numbers mean nothing.",
}
SECTIONS = {"components": "04_components", "transforms": "04_transformations",
            "augmentation": "04_augmentation", "er_scale": "04_er_scale",
            "multiscale": "04_multiscale",
            "gradcam": "04_gradcam",
            "scale_consistency": "04_scale_consistency"}


def verdicts(out: Path) -> dict[str, str]:
    """Table name -> 'claim: verdict; ...' from notebook 04's numbers (paired verdicts, see
    study/verdicts.py), when it has run."""
    path = out / "04_ablations.json"
    if not path.is_file():
        return {}
    sections = json.loads(path.read_text())["sections"]
    return {SECTIONS[k]: "; ".join(f"{claim}: **{c['verdict']}**"
                                  for claim, c in s["claims"].items())
            for k, s in sections.items() if k in SECTIONS}


def write_summary(cfg: Config, out: str | Path, results: str | Path = "results") -> Path:
    """Write ``out/summary.md`` linking every table (tables/*.md) and figure (*.png) of
    ``out``, with a line on each, the verdicts and the runs still missing."""
    out = Path(out)
    found = verdicts(out)
    lines = [f"# Results of the `{cfg.profile}` profile", "",
             f"Data: `{cfg.data.root}`. Every number below comes from the runs recorded under "
             f"`runs/` here (one JSON per run, with its settings key, wall times and hardware); "
             "`make tables` re-renders the tables from them. The notebooks that wrote them "
             "are the executed `*.ipynb` beside this file.",
             *(["", LIMITS[cfg.profile]] if cfg.profile in LIMITS else []), "", "## Tables", ""]
    for table in sorted((out / "tables").glob("*.md")):
        what = TABLES.get(table.stem, "")
        verdict = f" Verdict: {found[table.stem]}." if table.stem in found else ""
        lines.append(f"- [{table.stem}](tables/{table.name}): {what}.{verdict}")
    lines += ["", "## Figures", ""]
    lines += [f"- [{png.name}]({png.name})" for png in sorted(out.glob("*.png"))]
    lab = [f"[{f.name}]({f.name})" for name in LAB for f in sorted(out.glob(name))]
    if lab:
        lines += ["", "## Lab reports", "", "Made by `make lab` (`python -m experiments`), not by "
                  "`make reproduce`; each states the command, commit and machine that made it: "
                  + ", ".join(lab) + "."]
    compute = recorded_compute(cfg.profile, results)
    lines += ["", "## Compute", "",
              f"The recorded runs took {compute['seconds'] / 3600:.1f} h of one worker's time "
              f"(the sum of their measured stage times, {compute['run_folders']} trained runs "
              "and the inference-only jobs), on: " + "; ".join(compute["hardware"]) + "."]
    left = [str(job) for chain in remaining(cfg, plan(cfg), results) for job in chain]
    plan_note = (f"{len(left)} of the runs behind the tables: " + ", ".join(left) +
                 f" (`python -m study reproduce --profile {cfg.profile} --dry-run` lists them "
                 "with their estimated time).")
    lines += ["", "## Runs not recorded yet", "",
              plan_note if left else "None: every run behind the tables is recorded."]
    path = out / "summary.md"
    atomic_write(path, lambda t: t.write_text("\n".join(lines) + "\n"))
    return path
