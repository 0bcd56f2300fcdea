"""SEAM vs the plain-CAM baseline: the pipeline up to the CAM evaluation (train, multi-scale
CAMs, threshold sweeps) for both variants over several seeds, and a neutral report of it.

The baseline is SEAM with ER, ECR and the PCM terms off (``config.VARIANTS``); its CAMs are the
raw fc8 maps. SEAM's CAMs are the PCM output, as in the authors' infer_SEAM (``uses_pcm``).
Each run lives in ``pipeline.run_folder`` (``runs/<profile>/<variant>/seed<k>``), so ``seam
run``, the notebooks and this report share (and resume) the same runs; the difficulty
measurement reads the baseline's run of the profile's seed. ``workers`` > 1 runs that many at
once, each in its own process with an equal share of the CPU threads (on a CPU, two one-thread
runs do more work per second than one two-thread run).
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from seamlib.config import Config, variant_config
from seamlib.data.voc import CLASSES
from seamlib.device import hardware
from seamlib.errors import InputError, MissingFile
from seamlib.formats import atomic_write, json_safe, save_figure, write_json
from seamlib.parallel import run_parallel
from seamlib.pipeline import METRICS as METRICS_FILE
from seamlib.pipeline import run_folder, run_pipeline
from seamlib.provenance import require_same
from seamlib.stages.evaluate import THRESHOLDS
from seamlib.trainer import SUMMARY
from study.tables import mean_std

METHODS = ("baseline", "seam")  # variants of seamlib.config.VARIANTS
# Scalars of one run, reported as mean +- std over seeds.
METRICS = ("train_miou_best", "train_miou_at_val_threshold", "best_threshold", "val_threshold",
           "mfp_best", "mfn_best", "mfp_at_val_threshold", "mfn_at_val_threshold")
REPORT = "seam_vs_baseline"


def run_method(cfg: Config, method: str, seed: int, progress: bool = True) -> dict:
    """The pipeline of one (variant, seed) up to the CAM evaluation (each stage reused when
    it is up to date in ``pipeline.run_folder``); the run's record."""
    run, folder = variant_config(cfg, method, seed), run_folder(cfg.profile, method, seed)
    timings = run_pipeline(run, folder, until="cam_eval")
    metrics = json.loads((folder / "cam_eval" / METRICS_FILE).read_text())
    summary = json.loads((folder / "train_cam" / SUMMARY).read_text())
    return {"method": method, "seed": seed, "out_dir": str(folder), "steps": summary["steps"],
            "reused_training": not timings["train_cam"]["ran"],
            "threads": torch.get_num_threads(), "hardware": hardware(),  # this process's threads
            "train_threads": summary.get("threads"),  # the training's own
            "seconds": {"train": summary["seconds"], "cams": timings["cams"]["seconds"],
                        "evaluate": timings["cam_eval"]["seconds"]},
            **metrics}


def run_methods(cfg: Config, jobs: list[tuple[str, int]], workers: int = 1,
                progress: bool = True) -> list[dict]:
    """``run_method`` for each (method, seed) of ``jobs``, in order; ``workers`` > 1 runs that
    many at once in spawned processes, each with ``cpu_count // workers`` torch threads."""
    threads = max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None
    done = run_parallel(partial(run_method, cfg, progress=False), jobs, workers,
                        threads=threads, star=True)
    runs = dict(tqdm(done, total=len(jobs), desc="compare runs",
                     disable=not progress or workers <= 1))
    return [runs[job] for job in jobs]


def aggregate(runs: list[dict]) -> dict[str, dict]:
    """Per method: mean +- std over seeds of every scalar metric, per-class IoU and curve."""
    out = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        entry = {k: mean_std([r[k] for r in mine]) for k in METRICS}
        for key in ("per_class_iou_best", "per_class_iou_at_val_threshold"):
            entry[key] = mean_std([[np.nan if v is None else v for v in r[key]] for r in mine])
        entry["curve"] = {k: mean_std([r["curve"][k] for r in mine]) for k in ("miou", "mfp",
                                                                                "mfn")}
        entry["seeds"] = [r["seed"] for r in mine]
        out[method] = entry
    return out


def recorded_runs(cfg: Config, path: Path, seeds: list[int]) -> tuple[list[dict], list[str]]:
    """The runs and commands of an earlier report at ``path`` made with ``cfg``'s settings,
    less the ``seeds`` about to be rerun; refuse a report of other settings."""
    if not path.exists():
        raise MissingFile(f"{path}: no earlier comparison to extend; run without --extend")
    old = json.loads(path.read_text())
    try:
        require_same(old["config"], json_safe(dataclasses.asdict(cfg)), path, "a comparison")
    except ValueError as err:
        raise InputError(f"{err} (or rerun every seed instead of --extend)") from None
    runs = [{"hardware": old["hardware"], **r} for r in old["runs"] if r["seed"] not in seeds]
    return runs, old.get("commands", [old["command"]])


def compare(cfg: Config, seeds: list[int], command: str, results: str | Path,
            progress: bool = True, workers: int = 1, extend: bool = False) -> dict:
    """Run baseline and SEAM for every seed (``workers`` runs at a time); write
    ``<results>/seam_vs_baseline.{json,md,png}`` and return the report. ``extend`` keeps the
    other seeds' runs of the report already there (same settings required), so seeds can be
    added one session at a time."""
    if not seeds:
        raise InputError("compare needs at least one seed")
    path = Path(results) / f"{REPORT}.json"
    kept, commands = recorded_runs(cfg, path, seeds) if extend else ([], [])
    jobs = [(method, seed) for method in METHODS for seed in seeds]
    runs = kept + run_methods(cfg, jobs, workers, progress)
    runs.sort(key=lambda r: (METHODS.index(r["method"]), r["seed"]))
    report = {"command": command, "commands": [*commands, command], "profile": cfg.profile,
              "seeds": sorted({r["seed"] for r in runs}),
              "cam_list": cfg.data.cam_list, "val_list": cfg.data.val_list,
              "thresholds": THRESHOLDS.tolist(), "classes": list(CLASSES),
              "runs": json_safe(runs), "summary": aggregate(runs), "hardware": hardware(),
              "workers": workers,
              "config": dataclasses.asdict(cfg)}
    report["findings"] = findings(report)
    write_report(report, Path(results))
    return report


def _mean(entry: dict, key: str) -> float:
    return entry[key]["mean"]


def _spread(entry: dict, key: str) -> float:
    return entry[key]["std"] or 0.0


def findings(report: dict) -> list[str]:
    """Plain sentences saying where SEAM's numbers are above or below the baseline's."""
    s = report.get("summary", {})
    if not {"baseline", "seam"} <= set(s):
        return []
    base, seam = s["baseline"], s["seam"]
    lines = []
    for key, what, higher_is_better in (
            ("train_miou_best", "CAM mIoU at the best threshold", True),
            ("train_miou_at_val_threshold", "CAM mIoU at the val-chosen threshold", True),
            ("mfp_best", "mFP (over-activation) at the best threshold", False),
            ("mfn_best", "mFN (under-activation) at the best threshold", False)):
        diff = _mean(seam, key) - _mean(base, key)
        spread = _spread(seam, key) + _spread(base, key)
        side = "higher" if diff > 0 else "lower" if diff < 0 else "equal"
        better = (diff > 0) == higher_is_better and diff != 0
        size = ("one seed: no spread to compare with" if seam[key]["std"] is None else
                ("larger than" if abs(diff) > spread else "within")
                + " the sum of the two methods' std over seeds")
        lines.append(f"{what}: SEAM {100 * _mean(seam, key):.1f} vs baseline "
                     f"{100 * _mean(base, key):.1f} ({side} by {100 * abs(diff):.1f} points, "
                     f"{'better' if better else 'not better'} for SEAM; {size}).")
    diffs = [(name, a - b) for name, a, b in zip(
        report["classes"], seam["per_class_iou_best"]["mean"],
        base["per_class_iou_best"]["mean"], strict=True) if a is not None and b is not None]
    up = [f"{n} ({100 * d:+.1f})" for n, d in sorted(diffs, key=lambda x: -x[1]) if d > 0]
    down = [f"{n} ({100 * d:+.1f})" for n, d in sorted(diffs, key=lambda x: x[1]) if d < 0]
    lines.append(f"Per class at the best threshold, SEAM is higher on {len(up)} and lower on "
                 f"{len(down)} of {len(diffs)} classes."
                 + (f" Higher: {', '.join(up)}." if up else "")
                 + (f" Lower: {', '.join(down)}." if down else ""))
    return lines


def _pm(entry: dict, key: str, scale: float = 100, digits: int = 1) -> str:
    mean, std = entry[key]["mean"], entry[key]["std"]
    if mean is None:
        return "n/a"
    return f"{scale * mean:.{digits}f}" + ("" if std is None else f" ± {scale * std:.{digits}f}")


def format_markdown(report: dict) -> str:
    """The report as markdown: headline table, per-class IoU, findings, per-run wall times."""
    s, cls = report["summary"], report["classes"]
    n = len(report["seeds"])
    machines = sorted({r.get("hardware", report["hardware"]) for r in report["runs"]})
    lines = [f"# SEAM vs plain-CAM baseline ({report['profile']})", "",
             *[f"Command: `{c}`  " for c in report.get("commands", [report["command"]])],
             f"Hardware: {'; '.join(machines)}", "",
             f"CAM pseudo labels on `{report['cam_list']}`: argmax over the CAMs of the "
             f"image's classes and a constant background threshold (swept over "
             f"{report['thresholds'][0]:.2f}..{report['thresholds'][-1]:.2f} in steps of 0.01). "
             f"\"best\": the threshold with the highest mIoU on `{report['cam_list']}` itself; "
             f"\"val-chosen\": the threshold with the highest mIoU on `{report['val_list']}`, "
             f"applied to `{report['cam_list']}`. Baseline CAMs: raw fc8 CAM; SEAM CAMs: PCM "
             f"output. Numbers in % (thresholds as fractions), mean ± sample std over {n} seed(s) "
             f"{report['seeds']}.", ""]
    means, present = (report["runs"][0][k] for k in ("classes_in_means",
                                                      "classes_with_ground_truth"))
    absent = [c for c in means if c not in present]
    lines += [f"mIoU, mFP and mFN are means over the {len(means)} classes (background included) "
              f"to which `seamlib.stages.evaluate.scores` gives an IoU: {', '.join(means)}. "
              f"{len(present)} of them have ground-truth pixels in `{report['cam_list']}`"
              + (f"; the others ({', '.join(absent)}) enter the means with IoU 0." if absent
                 else "."), "",
              "| method | mIoU (best thr) | best thr | mIoU (val-chosen thr) | val thr | "
              "mFP (best) | mFN (best) | mFP (val thr) | mFN (val thr) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m, e in s.items():
        lines.append(f"| {m} | {_pm(e, 'train_miou_best')} | {_pm(e, 'best_threshold', 1, 2)} "
                     f"| {_pm(e, 'train_miou_at_val_threshold')} | "
                     f"{_pm(e, 'val_threshold', 1, 2)} | {_pm(e, 'mfp_best')} | "
                     f"{_pm(e, 'mfn_best')} | {_pm(e, 'mfp_at_val_threshold')} | "
                     f"{_pm(e, 'mfn_at_val_threshold')} |")
    lines += ["", "## Findings", ""] + [f"- {f}" for f in report["findings"]]
    lines += ["", "## Per-class IoU at the best threshold (%)", "",
              "| class | " + " | ".join(s) + " |", "|---|" + "---|" * len(s)]
    for c, name in enumerate(cls):
        cells = []
        for e in s.values():
            mean, std = e["per_class_iou_best"]["mean"][c], e["per_class_iou_best"]["std"]
            sd = None if std is None else std[c]
            cells.append("n/a" if mean is None else f"{100 * mean:.1f}"
                         + ("" if sd is None else f" ± {100 * sd:.1f}"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Runs (wall time in seconds)", "",
              "| method | seed | steps | train | CAMs (train + val) | evaluation | folder |",
              "|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        t = r["seconds"]
        note = " (reused)" if r["reused_training"] else ""
        lines.append(f"| {r['method']} | {r['seed']} | {r['steps']} | {t['train']}{note} | "
                     f"{t['cams']} | {t['evaluate']} | `{r['out_dir']}` |")
    train_threads = sorted({str(r.get("train_threads") or "unrecorded") for r in report["runs"]})
    lines += ["", "Times are what each stage cost when it ran (the run's summary.json and the "
              "stages' stage.json), also when this command reused it; CAMs cover the training "
              f"list and val. Runs at a time: {report['workers']}, "
              f"torch threads per run: {sorted({r['threads'] for r in report['runs']})} "
              f"(training: {', '.join(train_threads)}).",
              "",
              f"Figure: `{REPORT}.png` (mIoU, mFP, mFN on `{report['cam_list']}` against the "
              f"threshold, mean over seeds).", ""]
    return "\n".join(lines)


def plot_curves(report: dict, path: Path) -> None:
    """mIoU, mFP and mFN against the background threshold, each method's mean over seeds
    (band: ± std), best thresholds marked; saved atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.asarray(report["thresholds"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for method, entry in report["summary"].items():
        for ax, key in zip(axes, ("miou", "mfp", "mfn"), strict=True):
            mean = np.asarray(entry["curve"][key]["mean"], dtype=float)
            line, = ax.plot(thresholds, mean, label=method)
            std = entry["curve"][key]["std"]
            if std is not None:
                std = np.asarray(std, dtype=float)
                ax.fill_between(thresholds, mean - std, mean + std, alpha=0.2,
                                color=line.get_color())
            ax.axvline(entry["best_threshold"]["mean"], color=line.get_color(), ls=":", lw=1)
    for ax, name in zip(axes, ("mIoU", "mFP", "mFN"), strict=True):
        ax.set_xlabel("background threshold")
        ax.set_title(f"{name} on {report['cam_list']}")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{report['profile']}: mean over seeds {report['seeds']} "
                 f"(dotted: mean of the seeds' best thresholds)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(report: dict, results: Path) -> Path:
    """Write the JSON, markdown and figure of a comparison into ``results``; return the md."""
    base = results / REPORT
    write_json(base.with_suffix(".json"), report)
    atomic_write(base.with_suffix(".md"), lambda t: t.write_text(format_markdown(report)))
    plot_curves(report, base.with_suffix(".png"))
    return base.with_suffix(".md")
