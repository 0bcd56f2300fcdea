"""Result tables of finished `seam run` folders: every stage's output against the masks
(mIoU / mFP / mFN) and the stages' wall times, as JSON and Markdown."""

from __future__ import annotations

import json
from pathlib import Path

from seamlib.device import hardware
from seamlib.errors import InputError, MissingFile
from seamlib.pipeline import STAGE_NAMES, TIMINGS
from seamlib.stages.evaluate import at_threshold

REPORT_METRICS = (("cams", "CAM, best thr"), ("cams_at_val_threshold", "CAM, val-chosen thr"),
                  ("random_walk", "random walk"), ("segment_val", "segmentation val"),
                  ("segment_test", "segmentation test"))
REPORT_FIELDS = ("miou", "mfp", "mfn", "iou", "list", "images", "threshold")  # of each metric


def pipeline_report(runs: dict[str, Path], command: str = "", setup: str = "") -> dict:
    """Metrics and stage wall times of finished pipeline runs ({name: run folder}), with the
    hardware the stages recorded when they ran (not that of the process writing the report)."""
    out: dict = {"command": command, "setup": setup, "runs": {}}
    for name, run in runs.items():
        metrics_path, timings_path = run / "evaluate" / "metrics.json", run / TIMINGS
        for path in (metrics_path, timings_path):
            if not path.is_file():
                raise MissingFile(f"{path}: not a finished pipeline run (run `seam run "
                                        f"--run-dir {run}` to the evaluate stage)")
        metrics, timings = (json.loads(p.read_text()) for p in (metrics_path, timings_path))
        if list(timings) != list(STAGE_NAMES):
            raise InputError(f"{timings_path}: the last `seam run` there stopped after "
                             f"{list(timings)[-1]!r} (--until), so later stages may be stale; "
                             "run it to the end first")
        seconds = {stage: t["seconds"] for stage, t in timings.items()}
        out["runs"][name] = {
            "run_dir": str(run), "seconds": seconds,
            "cpu_steal_percent": {stage: t.get("cpu_steal_percent") for stage, t in
                                  timings.items() if t.get("cpu_steal_percent") is not None},
            "hardware": sorted({t["hardware"] for t in timings.values() if "hardware" in t}),
            "metrics": {key: {k: m[k] for k in REPORT_FIELDS if k in m}
                        for key, m in stage_scores(metrics).items()},
        }
    machines = sorted({h for r in out["runs"].values() for h in r["hardware"]})
    out["hardware"] = ("; ".join(machines) if machines else
                       f"not recorded by the runs (the report was written on {hardware()})")
    return out


def stage_scores(metrics: dict) -> dict[str, dict]:
    """An ``evaluate`` record's scores per row of the report: the CAMs at both thresholds,
    then every other stage's output."""
    cams = metrics["cams"]
    return {"cams": at_threshold(cams, "best"), "cams_at_val_threshold": at_threshold(cams, "val"),
            **{key: m for key, m in metrics.items() if key != "cams"}}


def duration(seconds: float) -> str:
    """Seconds under a minute, minutes under an hour, else hours: "9.9 s", "12.3 min", "1.4 h"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def format_report(report: dict) -> str:
    """The pipeline report as markdown: mIoU / mFP / mFN per stage output, then wall times."""
    runs = report["runs"]
    lines = ["# The whole pipeline: every stage's output against the masks", "",
             f"Command: `{report['command']}`  ", f"Hardware: {report['hardware']}  ",
             *([f"Setup: {report['setup']}"] if report["setup"] else []), "",
             "mIoU / mFP / mFN in % over the classes present (`seamlib.stages.evaluate.scores`). "
             "CAMs and random-walk pseudo labels are scored on the CAM list, the retrained "
             "segmentation (multi-scale + flip + CRF) on val and test.", "",
             "| run | " + " | ".join(title for _, title in REPORT_METRICS) + " |",
             "|---|" + "---|" * len(REPORT_METRICS)]
    for name, r in runs.items():
        cells = []
        for key, _ in REPORT_METRICS:
            m = r["metrics"].get(key)
            cells.append("n/a" if m is None else f"{100 * m['miou']:.1f} / {100 * m['mfp']:.1f}"
                         f" / {100 * m['mfn']:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    stages = list(next(iter(runs.values()))["seconds"]) if runs else []
    lines += ["", "## Wall time per stage", "",
              "| run | " + " | ".join(stages) + " | total |", "|---|" + "---|" * (len(stages) + 1)]
    for name, r in runs.items():
        s = r["seconds"]
        lines.append(f"| {name} | " + " | ".join(duration(s[k]) for k in stages)
                     + f" | {duration(sum(s.values()))} |")
    steal = [f"{n}: " + (", ".join(f"{k} {v:.1f}" for k, v in r["cpu_steal_percent"].items())
                         or "unrecorded") for n, r in runs.items()]
    lines += ["", "CPU time stolen by the host (`/proc/stat` steal, % of the machine's CPU time "
              "while a stage ran; it stretches wall times): " + "; ".join(steal) + "."]
    return "\n".join(lines) + "\n"
