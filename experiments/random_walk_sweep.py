"""The random walk of a finished pipeline run scored over a grid of (logt, alpha): how the
proxy's walk settings were chosen (results/proxy/diagnostics/random_walk_sweep_baseline.json)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from seamlib.config import Config
from seamlib.pipeline import label_cam_dir
from seamlib.stages.evaluate import evaluate
from seamlib.stages.random_walk import random_walk_stage


def random_walk_sweep(run_dir: str | Path, cfg: Config, logts: list[int], alphas: list[float],
                      list_name: str | None = None, progress: bool = True) -> dict:
    """Score the random walk of a pipeline run over a grid of (logt, alpha) on a list.

    Reuses the run's CAMs of data.train_list (label_cams) and its AffinityNet; each setting's
    labels go to ``run_dir/random_walk_sweep/logt{L}_alpha{A}`` through ``random_walk_stage``
    (so an interrupted sweep resumes) and are scored by ``evaluate`` (default: data.cam_list).
    """
    run, list_name = Path(run_dir), list_name or cfg.data.cam_list
    weights = run / "train_affinity" / "model.pth"
    rows = []
    for logt in logts:
        for alpha in alphas:
            walk = dataclasses.replace(cfg.random_walk, logt=logt, alpha=alpha)
            out = run / "random_walk_sweep" / f"logt{logt}_alpha{alpha:g}"
            random_walk_stage(label_cam_dir(cfg, run), weights, cfg.data.root,
                              list_name, out, dataclasses.replace(cfg, random_walk=walk),
                              progress)
            result = evaluate(out, cfg.data.root, list_name, kind="png")
            rows.append({"logt": logt, "alpha": alpha,
                         **{k: result[k] for k in ("miou", "mfp", "mfn")}})
    best = max(rows, key=lambda row: row["miou"])
    return {"run": str(run), "list": list_name, "beta": cfg.random_walk.beta,
            "radius": cfg.affinity.radius, "rows": rows, "best": best}
