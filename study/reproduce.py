"""``python -m study reproduce``: every run behind the tables of notebooks 04 (ablations) and
05 (pseudo masks and segmentation), which of them remain, an estimate of their time, and
running them on several workers at once.

A job is one record under ``results/<profile>/runs/<variant>/seed<k>/``: a run of the pipeline
up to ``cam_eval`` or ``evaluate`` (``records.recorded_run``), the CAMs of a trained run at
other inference scales (``scales_record``), or its CAMs refined by the CRF with a constant
background score (``crf_record``). A job whose record exists with the current settings is done;
the others run, resuming whatever their run folder already holds. The notebooks read the same
records, so after this call they only render.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from seamlib.config import Config, uses_pcm
from seamlib.errors import InputError
from seamlib.formats import atomic_write
from seamlib.parallel import run_parallel
from seamlib.pipeline import (
    METRICS,
    final_key,
    run_folder,
    run_pipeline,
    score_cams,
    scored_cams,
    stale_stages,
)
from study.records import made_record, read_record, record_path, recorded_run, run_config

MAIN = ("baseline", "seam")  # the whole pipeline for PIPELINE_SEEDS; other scales for SCALE_SEEDS
SEEDS = {"baseline": 5, "seam": 5, "seam_rescale05": 5,  # seeds 0..n-1; the others 1
         "pcm_only": 3, "baseline_wide_aug": 3, "seam_rescale07": 3}
ABLATIONS: dict[str, tuple[str, ...]] = {  # notebook 04's sections: their rows
    # "+ ER only" is SEAM's own fc8 CAM (ECR and the min-pooling loss reach only the PCM), scored
    # on every SEAM seed (FC8_VARIANTS); its separately trained run checks that they are equal.
    "components": ("baseline", "er_only", "pcm_only", "seam"),
    "transforms": ("seam", "transform_flip", "transform_rotate", "transform_translate",
                   "transform_rescale_flip", "transform_rescale_rotate",
                   "transform_rescale_translate"),
    "augmentation": ("baseline", "baseline_wide_aug", "seam"),
    "er_scale": ("baseline", "seam", "seam_rescale05", "seam_rescale07"),
}
FC8_VARIANTS = ("seam",)  # scored on their fc8 CAM too (a record "fc8" beside cam_eval)
# How recognisable ER's second branch is: the baseline's val classification mAP on whole images
# downscaled by each factor (the branch's input at rescale 0.3, 0.5, 0.7; 1 the first branch).
RECOGNISABILITY_SCALES = (0.3, 0.5, 0.7, 1.0)
SCALE_SETS = ((1.0,), (0.5, 1.0), (1.0, 1.5), (0.5, 1.0, 1.5, 2.0))  # multi-scale inference
INPUT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)  # consistency over one input scale
INFER_SEED = 0  # the run the single-network figures show
SCALE_SEEDS = (0, 1, 2)  # MAIN's runs inferred at other scales and by Grad-CAM (paired verdicts)
# Grad-CAM and Grad-CAM++ of the baseline network, at one input scale: summed over scales they
# would weigh each pass by its inverse size (study/gradcam.py), the CAM does not.
GRADCAM_JOBS = tuple(("baseline", (1.0,), m) for m in ("gradcam", "gradcam++"))
PIPELINE_SEEDS = (0, 1, 2)  # notebook 05: the whole pipeline, every trainer reseeded


def seeds_of(variant: str, seeds: Iterable[int] | None = None) -> list[int]:
    """A variant's seeds: ``seeds`` when given, else 0 .. SEEDS[variant] - 1 (default 0 only)."""
    return list(seeds) if seeds is not None else list(range(SEEDS.get(variant, 1)))


@dataclass(frozen=True)
class Job:
    """One record to make: ``kind`` is cam_eval, evaluate, crf_threshold, scales (the maps of
    ``method``, the CAM or ``study.gradcam``'s, at ``scales``), fc8 (a PCM variant's fc8 CAM
    scored as cam_eval) or recognisability (val mAP on inputs downscaled by ``scales``)."""

    variant: str
    seed: int
    kind: str
    scales: tuple[float, ...] = ()
    method: str = "cam"

    @property
    def name(self) -> str:
        """The record's file name (without .json)."""
        if self.kind == "scales":
            prefix = "cams" if self.method == "cam" else self.method
            return f"{prefix}_scales_" + "-".join(f"{s:g}" for s in self.scales)
        return self.kind

    def __str__(self) -> str:
        return f"{self.variant} seed {self.seed} {self.name}"


def scales_config(cfg: Config, variant: str, seed: int, scales: Iterable[float]) -> Config:
    run = run_config(cfg, variant, seed)
    run.cams = dataclasses.replace(run.cams, scales=tuple(float(s) for s in scales))
    return run


def job_key(cfg: Config, job: Job) -> str:
    """The settings key a job's record must carry to count as done."""
    if job.kind == "scales":
        key = final_key(scales_config(cfg, job.variant, job.seed, job.scales), "cam_eval")
        return key if job.method == "cam" else f"{key}+{job.method}"
    if job.kind in ("fc8", "recognisability"):
        until = "cam_eval" if job.kind == "fc8" else "train_cam"
        return f"{final_key(run_config(cfg, job.variant, job.seed), until)}+{job.kind}"
    until = "crf" if job.kind == "crf_threshold" else job.kind
    return final_key(run_config(cfg, job.variant, job.seed), until)


def scales_record(cfg: Config, variant: str, seed: int, scales: Iterable[float],
                  results: str | Path = "results", run: bool = True,
                  method: str = "cam") -> dict:
    """CAM metrics (as ``cam_eval``) of a trained run inferred at ``scales`` instead of the
    profile's, or of its Grad-CAM / Grad-CAM++ (``method``): recorded, else computed from the
    run's weights (trained here if absent)."""
    job = Job(variant, seed, "scales", tuple(float(s) for s in scales), method)
    run_cfg = scales_config(cfg, variant, seed, job.scales)
    if method == "cam" and run_cfg.cams == run_config(cfg, variant, seed).cams:
        return recorded_run(cfg, variant, seed, "cam_eval", results, run)
    folder = run_folder(cfg.profile, variant, seed)

    def make() -> dict:
        run_pipeline(run_config(cfg, variant, seed), folder, until="train_cam")
        cams = folder / job.name
        shutil.rmtree(cams, ignore_errors=True)  # made from other weights or settings
        from study.gradcam import GradCAMNet

        start = time.time()
        wrap = None if method == "cam" else partial(GradCAMNet, method=method)
        scored_cams(run_cfg, folder / "train_cam" / "model.pth", cams, progress=False,
                    use_pcm=False if wrap else None, wrap=wrap)
        metrics = {"scales": list(job.scales), "method": method, **score_cams(run_cfg, cams)}
        return {"variant": variant, "seed": seed, "scales": list(job.scales), "method": method,
                "run_dir": str(folder), "seconds": round(time.time() - start, 1),
                "metrics": metrics}
    return made_record(record_path(results, cfg.profile, variant, seed, job.name),
                       job_key(cfg, job), run, "these scales", make)


def fc8_record(cfg: Config, variant: str, seed: int, results: str | Path = "results",
               run: bool = True) -> dict:
    """A PCM variant's fc8 CAM (the network without its PCM), scored as ``cam_eval`` scores the
    PCM output: recorded, else inferred from the run's weights (trained here if absent). The
    record also holds the PCM output's scores of the same weights (``pcm``)."""
    job = Job(variant, seed, "fc8")
    run_cfg, folder = run_config(cfg, variant, seed), run_folder(cfg.profile, variant, seed)

    def make() -> dict:
        run_pipeline(run_cfg, folder, until="cam_eval")
        cams = folder / "fc8"
        shutil.rmtree(cams, ignore_errors=True)  # made from other weights or settings
        start = time.time()
        scored_cams(run_cfg, folder / "train_cam" / "model.pth", cams, progress=False,
                    use_pcm=False)
        return {"variant": variant, "seed": seed, "run_dir": str(folder),
                "seconds": round(time.time() - start, 1),
                "metrics": {**score_cams(run_cfg, cams), "use_pcm": False},
                "pcm": json.loads((folder / "cam_eval" / METRICS).read_text())}
    return made_record(record_path(results, cfg.profile, variant, seed, job.name),
                       job_key(cfg, job), run, "the fc8 CAM", make)


def recognisability_record(cfg: Config, variant: str, seed: int,
                           results: str | Path = "results", run: bool = True) -> dict:
    """The run's ``val_list`` classification mAP on whole images downscaled by each of
    ``RECOGNISABILITY_SCALES``: recorded, else measured (trained here if absent)."""
    job = Job(variant, seed, "recognisability")
    run_cfg, folder = run_config(cfg, variant, seed), run_folder(cfg.profile, variant, seed)

    def make() -> dict:
        from study.classification import classification_map

        run_pipeline(run_cfg, folder, until="train_cam")
        start = time.time()
        maps = {f"{s:g}": classification_map(run_cfg, folder / "train_cam" / "model.pth",
                                             run_cfg.data.val_list, s)
                for s in RECOGNISABILITY_SCALES}
        return {"variant": variant, "seed": seed, "run_dir": str(folder),
                "seconds": round(time.time() - start, 1), "metrics": {"val_map": maps}}
    return made_record(record_path(results, cfg.profile, variant, seed, job.name),
                       job_key(cfg, job), run, "the downscaled classification", make)


def crf_record(cfg: Config, variant: str, seed: int, results: str | Path = "results",
               run: bool = True) -> dict:
    """The run's CAMs of ``cam_list`` refined by the dense CRF with a constant background
    score (``crf.bg_threshold``), scored: recorded, else made (the CAMs first if absent)."""
    from seamlib.stages.crf import crf_stage
    from seamlib.stages.evaluate import evaluate

    job = Job(variant, seed, "crf_threshold")
    run_cfg, folder = run_config(cfg, variant, seed), run_folder(cfg.profile, variant, seed)

    def make() -> dict:
        run_pipeline(run_cfg, folder, until="cams")
        out = folder / "crf_threshold"
        shutil.rmtree(out, ignore_errors=True)  # made with other settings
        start = time.time()
        crf_stage(folder / "cams" / cfg.data.cam_list, cfg.data.root, cfg.data.cam_list, out,
                  run_cfg.crf, kind="threshold", progress=False)
        metrics = evaluate(out, cfg.data.root, cfg.data.cam_list, kind="png")
        return {"variant": variant, "seed": seed, "profile": cfg.profile,
                "run_dir": str(folder), "bg_threshold": run_cfg.crf.bg_threshold,
                "seconds": round(time.time() - start, 1), "metrics": metrics}
    return made_record(record_path(results, cfg.profile, variant, seed, job.name),
                       job_key(cfg, job), run, "CAM + CRF", make)


def run_job(cfg: Config, job: Job, results: str | Path = "results", run: bool = True) -> dict:
    """The record of ``job``: read back, or made when ``run``."""
    if job.kind == "scales":
        return scales_record(cfg, job.variant, job.seed, job.scales, results, run, job.method)
    if job.kind == "crf_threshold":
        return crf_record(cfg, job.variant, job.seed, results, run)
    if job.kind == "fc8":
        return fc8_record(cfg, job.variant, job.seed, results, run)
    if job.kind == "recognisability":
        return recognisability_record(cfg, job.variant, job.seed, results, run)
    return recorded_run(cfg, job.variant, job.seed, job.kind, results, run)


def plan(cfg: Config, seeds: Iterable[int] | None = None,
         pipeline_seeds: Iterable[int] = PIPELINE_SEEDS) -> list[list[Job]]:
    """Every job of notebooks 04 and 05, in chains that share a run folder (each chain's jobs
    in order, its training first). First the two runs whose weights the inference-only tables
    use, then the components, the other seeds of MAIN (the seed spread), then the rest."""
    seeds, pipeline_seeds = None if seeds is None else list(seeds), list(pipeline_seeds)
    variants = list(dict.fromkeys(v for rows in ABLATIONS.values() for v in rows))
    chains = []
    for variant in variants:
        for seed in seeds_of(variant, seeds):
            chain = [Job(variant, seed, "cam_eval")]
            if variant in FC8_VARIANTS:
                chain.append(Job(variant, seed, "fc8"))
            if variant == "baseline":
                chain.append(Job(variant, seed, "recognisability", RECOGNISABILITY_SCALES))
            if variant in MAIN and seed in pipeline_seeds:
                chain += [Job(variant, seed, "evaluate"), Job(variant, seed, "crf_threshold")]
            if variant in MAIN and seed in SCALE_SEEDS:  # the profile's own scales: cam_eval
                sets = dict.fromkeys([*SCALE_SETS, *((s,) for s in INPUT_SCALES)])
                chain += [Job(variant, seed, "scales", s) for s in sets
                          if s != tuple(cfg.cams.scales)]
                chain += [Job(variant, seed, "scales", s, m) for v, s, m in GRADCAM_JOBS
                          if v == variant]
            chains.append(chain)

    def rank(chain: list[Job]) -> tuple[int, int]:
        """The headline first: MAIN's inference seed, then its seeds beyond the first three,
        ER at rescale 0.5, the rest of MAIN (their pipelines), then the other rows by seed."""
        variant, seed = chain[0].variant, chain[0].seed
        if variant in MAIN:
            return (0 if seed == INFER_SEED else 1 if seed >= 3 else 3), seed
        return (2 if variant == "seam_rescale05" else 4), seed
    return sorted(chains, key=rank)


def remaining(cfg: Config, chains: list[list[Job]],
              results: str | Path = "results") -> list[list[Job]]:
    """The jobs of each chain whose record is missing or was made with other settings."""
    def done(job: Job) -> bool:
        path = record_path(results, cfg.profile, job.variant, job.seed, job.name)
        return read_record(path, job_key(cfg, job)) is not None
    left = [[job for job in chain if not done(job)] for chain in chains]
    return [chain for chain in left if chain]


def profile_records(profile: str, results: str | Path = "results") -> Iterator[tuple[Path, dict]]:
    """Every job record of the profile (``results/<profile>/runs/*/seed*/*.json``), read."""
    for path in sorted((Path(results) / profile / "runs").glob("*/seed*/*.json")):
        if not path.name.startswith("."):  # a record being written (formats.atomic_write)
            yield path, json.loads(path.read_text())


def recorded_seconds(profile: str, results: str | Path = "results") -> dict:
    """Seconds measured by earlier jobs of the profile, for estimates: per (stage, uses PCM)
    from the pipeline records, per crf_threshold, and per unit of sum(scale^2) of scales."""
    found: dict = defaultdict(list)
    for path, record in profile_records(profile, results):
        if "timings" in record:
            pcm = record["metrics"].get("use_pcm", record["metrics"].get("cams", {})
                                        .get("use_pcm"))
            for stage, t in record["timings"].items():
                found[stage, pcm].append(t["seconds"])
                found[stage, None].append(t["seconds"])
        elif "scales" in record:
            unit = record["seconds"] / sum(s * s for s in record["scales"])
            found["scale_unit", record.get("method", "cam")].append(unit)
        elif path.stem in OWN_WORK:
            found[path.stem].append(record["seconds"])
    return {k: statistics.median(v) for k, v in found.items()}


def recorded_compute(profile: str, results: str | Path = "results") -> dict:
    """The measured time of every recorded job, as one worker's seconds: each stage of a run
    folder once (a run's cam_eval and evaluate records share their first stages), plus the
    inference-only jobs; with the hardware the stages report."""
    stages: dict[tuple[str, str], float] = {}
    extra, hardware = 0.0, set()
    for _, record in profile_records(profile, results):
        for stage, t in record.get("timings", {}).items():
            stages[record["run_dir"], stage] = t["seconds"]
            hardware.add(t.get("hardware", "unknown"))
        if "timings" not in record:
            extra += record["seconds"]
    return {"seconds": round(sum(stages.values()) + extra, 1),
            "run_folders": len({run for run, _ in stages}), "hardware": sorted(hardware)}


OWN_WORK = {"crf_threshold": "cams", "fc8": "cam_eval", "recognisability": "train_cam",
            "scales": "train_cam"}  # jobs with work of their own: the stage they start from


def job_estimate(cfg: Config, job: Job, seconds: dict, covered: set[str]) -> float | None:
    """Estimated single-worker seconds of ``job`` from ``recorded_seconds``, None if unknown:
    its own work plus the stages it needs that are stale in its run folder and not in
    ``covered`` (run by an earlier job of its chain; updated here)."""
    run_cfg = run_config(cfg, job.variant, job.seed)
    until = OWN_WORK.get(job.kind, job.kind)
    stale = [s for s in stale_stages(run_cfg, run_folder(cfg.profile, job.variant, job.seed),
                                     until) if s not in covered]
    covered.update(stale)
    parts = [seconds.get((s, uses_pcm(run_cfg)), seconds.get((s, None))) for s in stale]
    if job.kind == "scales":
        unit = seconds.get(("scale_unit", job.method))
        parts.append(None if unit is None else unit * sum(s * s for s in job.scales))
    elif job.kind in OWN_WORK:
        parts.append(seconds.get(job.kind))
    return None if None in parts else sum(parts)


def job_estimates(cfg: Config, left: list[list[Job]], seconds: dict) -> list[float | None]:
    """``job_estimate`` of every remaining job, in chain order."""
    estimates = []
    for chain in left:
        covered: set[str] = set()
        estimates += [job_estimate(cfg, job, seconds, covered) for job in chain]
    return estimates


def minutes_left(estimates: list[float | None], workers: int) -> tuple[float, int]:
    """Minutes the estimated jobs take on ``workers`` workers, and how many jobs have no
    estimate (nothing like them recorded)."""
    known = [e for e in estimates if e is not None]
    return sum(known) / 60 / max(1, workers), len(estimates) - len(known)


# What the notebooks run themselves on top of the records (make reproduce executes them):
# 02 trains SEAM's inference seed, 03 scores both methods' CAMs and SEAM's random walk.
NOTEBOOK_RUNS = {"02_train_seam": (("seam", "train_cam"),),
                 "03_cams": (("baseline", "cams"), ("seam", "random_walk"))}


def notebook_work(cfg: Config, seconds: dict) -> str:
    """The notebooks' own stages that are not complete in ``runs/`` (a fresh clone: all of
    them), with their estimated single-worker minutes."""
    covered: dict[str, set[str]] = defaultdict(set)
    lines, total = [], 0.0
    for name, runs in NOTEBOOK_RUNS.items():
        for variant, until in runs:
            run_cfg = run_config(cfg, variant, INFER_SEED)
            stale = [s for s in stale_stages(run_cfg, run_folder(cfg.profile, variant,
                                                                 INFER_SEED), until)
                     if s not in covered[variant]]
            covered[variant].update(stale)
            parts = [seconds.get((s, uses_pcm(run_cfg)), seconds.get((s, None))) for s in stale]
            if stale:
                minutes = sum(p or 0 for p in parts) / 60
                total += minutes
                lines.append(f"  notebook {name}: {variant} seed {INFER_SEED} up to {until} "
                             f"(~{minutes:.0f} min)")
    if not lines:
        return "the notebooks' own runs are in runs/: they only render"
    return "\n".join(["the notebooks also run (make reproduce; runs/ lacks them):", *lines,
                      f"about {total:.0f} min on one worker"])


def describe(cfg: Config, left: list[list[Job]], workers: int, seconds: dict) -> str:
    """Which jobs remain and the estimated time left on ``workers`` workers, then what the
    notebooks run themselves."""
    jobs = [job for chain in left for job in chain]
    if not jobs:
        return ("every run behind the tables is recorded; nothing remains\n"
                + notebook_work(cfg, seconds))
    estimates = job_estimates(cfg, left, seconds)
    lines = [f"{len(jobs)} runs remain:"]
    lines += [f"  {job}" + ("" if e is None else f" (~{e / 60:.0f} min)")
              for job, e in zip(jobs, estimates, strict=True)]
    total, unknown = minutes_left(estimates, workers)
    lines.append(f"estimated {total:.0f} min on {workers} worker{'s' * (workers > 1)} "
                 f"({total * workers:.0f} min of one worker's time, from the runs recorded "
                 "so far)" + (f"; {unknown} runs with no estimate yet (nothing like them "
                              "recorded)" if unknown else ""))
    return "\n".join([*lines, notebook_work(cfg, seconds)])


PROGRESS_LOG = "progress.log"  # in a run folder: its stages' progress bars (several workers)


def _run_chain(cfg: Config, chain: list[Job], results: str, quiet: bool) -> list[dict]:
    """Make a chain's records in order; stop at the first failure (later jobs need it).
    ``quiet``: the stages' progress bars go to the run folder's ``progress.log``, since several
    workers' bars on one terminal garble each other; the start and end lines stay here."""
    log = run_folder(cfg.profile, chain[0].variant, chain[0].seed) / PROGRESS_LOG
    if quiet:
        log.parent.mkdir(parents=True, exist_ok=True)
    done = []
    with (open(log, "a") if quiet else contextlib.nullcontext(sys.stderr)) as bars, \
            contextlib.redirect_stderr(bars):
        for job in chain:
            print(f"started: {job}" + (f" (progress: {log})" if quiet else ""), flush=True)
            start = time.time()
            try:
                run_job(cfg, job, results)
            except Exception as err:  # reported by the parent, one line per failed chain
                done.append({"job": str(job), "error": f"{type(err).__name__}: {err}"})
                print(f"failed: {job}: {err}", flush=True)
                break
            done.append({"job": str(job), "seconds": round(time.time() - start, 1)})
            print(f"done: {job} in {(time.time() - start) / 60:.1f} min", flush=True)
    return done


def _run_chains(cfg: Config, left: list[list[Job]], workers: int, threads: int,
                results: str) -> Iterator[list[dict]]:
    """Each chain's outcome as it finishes, the chains run on ``workers`` spawned processes
    (one: in this process) of ``threads`` threads each."""
    run = partial(_run_chain, cfg, results=results, quiet=workers > 1)
    for _, done in run_parallel(run, left, workers, threads=threads):
        yield done


def reproduce(cfg: Config, workers: int = 1, seeds: Iterable[int] | None = None,
              results: str | Path = "results", dry_run: bool = False) -> dict:
    """Run every remaining job, chains spread over ``workers`` processes (the CPU's threads
    shared between them); print what remains first. Returns what ran and what failed."""
    from seamlib.data.prepare import prepare_data

    if workers < 1:
        raise InputError(f"workers={workers}: expected at least 1")
    left = remaining(cfg, plan(cfg, seeds), results)
    print(describe(cfg, left, workers, recorded_seconds(cfg.profile, results)), flush=True)
    if dry_run or not left:
        return {"ran": [], "failed": []}
    prepare_data(cfg)
    from seamlib.device import hardware

    threads = max(1, (os.cpu_count() or 1) // workers)
    log = Path(results) / cfg.profile / "reproduce_log.json"
    start, earlier = time.time(), read_log(log)
    summary = {"started": time.strftime("%F %T"), "finished": None, "minutes": 0.0,
               "workers": workers, "threads": threads, "hardware": hardware(),
               "ran": [], "failed": []}
    for i, done in enumerate(_run_chains(cfg, left, workers, threads, str(results)), 1):
        summary["ran"] += done
        summary["failed"] = [d for d in summary["ran"] if "error" in d]
        summary["minutes"] = round((time.time() - start) / 60, 1)
        write_log(log, [*earlier, summary])
        rest, _ = minutes_left(job_estimates(cfg, remaining(cfg, left, results),
                                             recorded_seconds(cfg.profile, results)), workers)
        print(f"{i} of {len(left)} chains done after {summary['minutes']:.0f} min; "
              f"about {rest:.0f} min left", flush=True)
    summary["finished"] = time.strftime("%F %T")
    write_log(log, [*earlier, summary])
    print(f"{len(summary['ran']) - len(summary['failed'])} runs made in {summary['minutes']} "
          f"min on {workers} workers ({threads} threads each); {len(summary['failed'])} failed",
          flush=True)
    return summary


def read_log(path: Path) -> list[dict]:
    """The profile's reproduce log: one summary per call (what ran, how long; ``finished`` is
    None for a call that was stopped), rewritten after each chain so a stop keeps what ran."""
    return json.loads(path.read_text()) if path.is_file() else []


def write_log(path: Path, calls: list[dict]) -> None:
    atomic_write(path, lambda t: t.write_text(json.dumps(calls, indent=1)))
