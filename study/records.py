"""The study's records: one JSON file per (variant, seed, job) under
``results/<profile>/runs/<variant>/seed<k>/<name>.json``, committed so tables render on any
machine without retraining. A record counts only when it carries the settings key it was made
with (``pipeline.final_key``), so a changed setting makes it stale."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from seamlib.config import Config, variant_config
from seamlib.errors import InputError, MissingFile
from seamlib.formats import write_json
from seamlib.pipeline import METRICS, final_key, run_folder, run_pipeline


def record_path(results: str | Path, profile: str, variant: str, seed: int, name: str) -> Path:
    """Where a run's metrics are recorded: ``results/<profile>/runs/<variant>/seed<k>/<name>.json``
    (committed, so tables render on any machine without retraining)."""
    return Path(results) / profile / "runs" / variant / f"seed{seed}" / f"{name}.json"


def read_record(path: Path, key: str) -> dict | None:
    """The record at ``path`` if it was made with the settings whose key is ``key``."""
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("key") == key:
            return record
    return None


def write_record(path: Path, record: dict) -> dict:
    """Write ``record`` at ``path`` atomically; return it."""
    write_json(path, record)
    return record


def made_record(path: Path, key: str, run: bool, what: str, make: Callable[[], dict]) -> dict:
    """The record at ``path`` made with settings ``key``; else (``run``) ``make()``'s, written
    there with the key; else an error naming the file and ``what`` is missing."""
    if (record := read_record(path, key)) is not None:
        return record
    if not run:
        raise MissingFile(f"{path}: no record of {what} with these settings; run it first "
                          "(python -m study reproduce, make reproduce) or allow training")
    return write_record(path, {"key": key, **make()})


# The device each profile's committed records are made on: a machine with a GPU still renders
# the tables from them, and its runs of the study's plan match them.
RECORDED_ON = {"smoke": "cpu", "proxy": "cpu"}


def run_config(cfg: Config, variant: str, seed: int) -> Config:
    """The config of one recorded (variant, seed) run: the variant's settings and seed, on the
    device the profile's records are made on."""
    run = variant_config(cfg, variant, seed)
    run.device = RECORDED_ON.get(cfg.profile, run.device)
    return run


def recorded_run(cfg: Config, variant: str, seed: int, until: str = "cam_eval",
                 results: str | Path = "results", run: bool = True) -> dict:
    """The metrics of one (variant, seed) run up to ``until`` (cam_eval or evaluate), from its
    record when that was made with the same settings; else (``run``) the pipeline runs,
    resuming what it finds, and the record is written."""
    if until not in ("cam_eval", "evaluate"):
        raise InputError(f"until={until!r}: expected cam_eval or evaluate (the stages with "
                         "metrics)")
    run_cfg = run_config(cfg, variant, seed)
    folder = run_folder(cfg.profile, variant, seed)

    def make() -> dict:
        timings = run_pipeline(run_cfg, folder, until)
        return {"variant": variant, "seed": seed, "profile": cfg.profile,
                "run_dir": str(folder), "timings": timings,
                "metrics": json.loads((folder / until / METRICS).read_text())}
    return made_record(record_path(results, cfg.profile, variant, seed, until),
                       final_key(run_cfg, until), run, "this run", make)
