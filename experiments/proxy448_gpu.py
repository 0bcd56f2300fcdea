"""The proxy at the paper's geometry on one GPU, in one process: the ``proxy448`` benchmark,
its trunk, the baseline acceptance, then baseline and SEAM over 3 seeds (SEAM scored on its PCM
output and its fc8 CAM), the input-scale sweep and the geometry datasheet.

    python -m experiments.proxy448_gpu --device cuda --out results/proxy448 --budget 570
    python -m experiments.proxy448_gpu --tiny --device cpu --out /tmp/p448   # the CPU test

Runs share the one GPU as separate processes (``--workers`` at a time). Each part's result is
written under ``--out`` when it is done; a part is started only while ``--budget`` seconds of
wall time remain, and a phase of runs still going at the budget is stopped (training resumes
from its checkpoint next time). summary.md records every part's wall time and what was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from experiments.compare import compare, run_method
from experiments.datasheet import MIOU_WINDOW, write_datasheet
from experiments.difficulty import measure_difficulty
from experiments.geometry import scale_consistency, score
from experiments.geometry_sheet import write_geometry_sheet
from experiments.pretrain import pretrain
from seamlib.config import Config, load_config, variant_config
from seamlib.data.prepare import prepare_data
from seamlib.device import hardware
from seamlib.formats import atomic_write, sha256_file, write_json
from seamlib.parallel import run_parallel
from seamlib.pipeline import run_folder
from seamlib.trainer import MODEL

SEEDS = (0, 1, 2)
BF16_JOBS = [("baseline_bf16", 0), ("seam_bf16", 0)]  # beside the fp32 runs of the same seed
ACCEPT_MAP = 0.85  # the baseline acceptance (the CPU proxy's datasheet asks 0.9)


def tiny_overrides(out: Path) -> dict[str, dict]:
    """Smoke sizes on the same path (scaled rendering, pretraining, frozen-BN fine-tuning), with
    every file under ``out``."""
    trunk = str(out / "pretrain_trunk.pth")
    return {
        "synthetic": {"n_train": 12, "n_val": 8, "n_test": 4, "n_extra": 16, "min_size": 20,
                      "max_size": 32, "scale": 2.0},
        "data": {"root": str(out / "data" / "VOC2012"), "crop_size": 32,
                 "resize_long": (32, 48), "num_workers": 0},
        "model": {"width": 0.0625, "weights": trunk},
        "train_cam": {"batch_size": 4, "epochs": 1, "out_dir": str(out / "runs")},
        "pretrain": {"n_distractors": 20, "n_train": 2, "n_heldout": 1, "image_size": 32,
                     "batch_size": 16, "epochs": 1, "out_dir": str(out / "runs" / "pretrain"),
                     "trunk": trunk},
    }


def build_config(tiny: bool, device: str, out: Path) -> Config:
    """The proxy448 profile on ``device``; ``tiny``: at smoke sizes, all under ``out``."""
    cfg = load_config("proxy448", tiny_overrides(out) if tiny else None)
    cfg.device = device
    return cfg


def accepted(d: dict) -> bool:
    """The baseline acceptance: val mAP >= 0.85, best-threshold train CAM mIoU in the
    datasheet's window."""
    return d["val_map"] >= ACCEPT_MAP and MIOU_WINDOW[0] <= d["train_miou_best"] <= MIOU_WINDOW[1]


def scored_run(cfg: Config, method: str, seed: int) -> tuple[Config, Path]:
    """A compare run's config, its extra CAM folders inside its own run folder
    (pipeline.run_folder), and its trained weights."""
    run, folder = variant_config(cfg, method, seed), run_folder(cfg.profile, method, seed)
    run.train_cam.out_dir = str(folder)
    return run, folder / "train_cam" / MODEL


def run_job(cfg: Config, method: str, seed: int) -> dict:
    """One compare run (trained or reused); SEAM is also scored on its fc8 CAM."""
    record = run_method(cfg, method, seed, progress=False)
    if method == "seam":
        record["fc8"] = score(*scored_run(cfg, method, seed), False, "_fc8")
    return record


def scale_job(cfg: Config, method: str, seed: int) -> dict:
    """Single-scale fc8 CAM scores of a trained run at input scales 0.5 to 2."""
    return scale_consistency(*scored_run(cfg, method, seed))


class Session:
    """The parts done so far, their times, what was skipped; summary.md after every part."""

    def __init__(self, out: Path, budget: float, command: str) -> None:
        self.out, self.budget, self.command = out, budget, command
        self.start = time.time()
        self.parts: list[dict] = []

    def left(self) -> float:
        return self.budget - (time.time() - self.start)

    def part(self, name: str, work: Callable[[], object]) -> object | None:
        """Run ``work`` if budget is left, else record it as skipped."""
        if self.left() <= 0:
            return self.record(name, "skipped: wall-clock budget spent", 0.0)
        start = time.time()
        try:
            result = work()
        except Exception as err:  # recorded in summary.md, then raised
            self.record(name, f"failed: {type(err).__name__}: {err}", time.time() - start)
            raise
        self.record(name, "done", time.time() - start)
        return result

    def record(self, name: str, status: str, seconds: float) -> None:
        self.parts.append({"part": name, "status": status, "seconds": round(seconds, 1)})
        self.write()

    def write(self) -> None:
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
        lines = ["# proxy448 on one GPU", "",
                 f"Command: `{self.command}`  ", f"GPU: {gpu}; hardware: {hardware()}  ",
                 f"torch {torch.__version__}; budget {self.budget:.0f} s; wall so far "
                 f"{time.time() - self.start:.0f} s", "", "| part | status | wall s |",
                 "|---|---|---|", *[f"| {p['part']} | {p['status']} | {p['seconds']} |"
                                    for p in self.parts], ""]
        atomic_write(self.out / "summary.md", lambda t: t.write_text("\n".join(lines)))
        write_json(self.out / "summary.json", {"command": self.command, "gpu": gpu,
                                               "torch": torch.__version__, "parts": self.parts})


def run_pool(session: Session, cfg: Config, fn: Callable, jobs: list[tuple[str, int]],
             workers: int, name: str) -> dict[tuple[str, int], dict]:
    """``fn(cfg, method, seed)`` for each job in spawned processes sharing the device; each
    record is written to ``<out>/runs/<name>_<method>_seed<seed>.json`` when it is done. At the
    budget the pool is stopped and the unfinished jobs are recorded as skipped."""
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    done: dict[tuple[str, int], dict] = {}
    # with a timeout the runner always uses spawned processes, so that it can stop them
    for job, record in run_parallel(partial(fn, cfg), jobs, workers, threads=threads,
                                    star=True, timeout=session.left()):
        done[job] = record
        write_json(session.out / "runs" / f"{name}_{job[0]}_seed{job[1]}.json", record)
    for method, seed in (job for job in jobs if job not in done):
        session.record(f"{name} {method} seed {seed}", "skipped: stopped at the budget", 0.0)
    return done


def main(argv: list[str] | None = None) -> None:
    """Every part of the proxy448 measurement, in order, within the budget."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/proxy448"))
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=570.0, help="wall-clock seconds")
    p.add_argument("--workers", type=int, default=3, help="runs at once on the device")
    p.add_argument("--tiny", action="store_true", help="smoke sizes, everything under --out")
    args = p.parse_args(argv)
    command = "python -m experiments.proxy448_gpu " + " ".join(argv or sys.argv[1:])
    cfg = build_config(args.tiny, args.device, args.out.resolve() if args.tiny else args.out)
    if args.tiny:  # the compare runs live under ./runs (pipeline.run_folder): keep them in --out
        args.out.mkdir(parents=True, exist_ok=True)
        os.chdir(args.out)
        args.out = Path(".")
    s = Session(args.out, args.budget, command)
    s.part("generate data", lambda: prepare_data(cfg, workers=os.cpu_count() or 1))
    s.part("geometry table", lambda: write_geometry_sheet(cfg, args.out))
    trunk = s.part("pretrain trunk", lambda: pretrain(cfg, command, args.out, progress=False))
    if trunk is None:
        return
    cfg.pretrain.trunk_sha256 = sha256_file(trunk)  # this run's trunk (pretrain.json): pin it
    s.part("baselines", lambda: run_pool(s, cfg, run_job, [("baseline", x) for x in SEEDS],
                                         args.workers, "compare"))
    accept = s.part("baseline acceptance", lambda: measure_difficulty(cfg, command, False))
    if accept is None:
        return
    write_json(args.out / "difficulty.json", accept)
    s.part("datasheet", lambda: write_datasheet(cfg.data.root, args.out, accept))
    if not accepted(accept) and not args.tiny:  # tiny numbers mean nothing: go on
        s.record("SEAM runs", "skipped: baseline acceptance not met (change the trunk or "
                 "the benchmark, never SEAM)", 0.0)
        return
    s.part("SEAM runs", lambda: run_pool(s, cfg, run_job, [("seam", x) for x in SEEDS],
                                         args.workers, "compare"))
    s.part("comparison report", lambda: write_comparison(cfg, command, args.out))
    s.part("input-scale sweep", lambda: write_json(args.out / "input_scales.json", {
        f"{m}_seed{x}": r for (m, x), r in run_pool(
            s, cfg, scale_job, [("baseline", 0), ("seam", 0)], args.workers, "scales").items()}))
    s.part("bf16 runs", lambda: write_json(args.out / "bf16.json", bf16_report(
        args.out, run_pool(s, cfg, run_job, BF16_JOBS, args.workers, "bf16"))))


def bf16_report(out: Path, runs: dict[tuple[str, int], dict]) -> dict:
    """Each bf16 run's CAM mIoU (best and val-chosen threshold) beside the fp32 run of the same
    method and seed (its record under ``out/runs``), and the difference."""
    report = {}
    for (variant, seed), record in runs.items():
        method = variant.removesuffix("_bf16")
        path = out / "runs" / f"compare_{method}_seed{seed}.json"
        fp32 = json.loads(path.read_text()) if path.is_file() else None
        report[f"{method}_seed{seed}"] = {
            key: {"bf16": record[key], "fp32": None if fp32 is None else fp32[key],
                  "bf16_minus_fp32": None if fp32 is None else record[key] - fp32[key]}
            for key in ("train_miou_best", "train_miou_at_val_threshold")}
    return report


def write_comparison(cfg: Config, command: str, out: Path) -> None:
    """seam_vs_baseline.{json,md,png} from the finished runs (reused), plus SEAM's fc8 scores
    per seed (seam_fc8.json)."""
    seeds = [x for x in SEEDS if (out / "runs" / f"compare_seam_seed{x}.json").exists()]
    compare(cfg, seeds, command, out, progress=False)
    fc8 = {x: json.loads((out / "runs" / f"compare_seam_seed{x}.json").read_text())["fc8"]
           for x in seeds}
    write_json(out / "seam_fc8.json", fc8)


if __name__ == "__main__":
    main()
