"""``seam run``: the whole SEAM pipeline, stages in order, in one run folder.

    data -> weights -> train_cam -> cams -> cam_eval -> label_cams -> crf -> train_affinity
    -> random_walk -> train_seg -> segment -> evaluate

Every run of a (variant, seed) lives in ``runs/<profile>/<variant>/seed<k>/<stage>/``
(``run_folder``): ``seam run``, the comparisons, the ablations and the notebooks read and write
that one layout. Each stage is a function of the config and the run folder that reads what
earlier stages wrote there and writes ``<run>/<stage>/``. A stage records a key
(``provenance.stage_key``: the settings it depends on, the device among them where it computes
with torch, chained with the key of the stage before it). A stage whose key is unchanged is
skipped; one whose settings (or any earlier stage's) changed is cleared and rerun, and so is
everything after it, because their keys change too. The per-stage wall times land in
``<run>/timings.json``.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seamlib.config import Config, uses_pcm
from seamlib.errors import InputError, Interrupted
from seamlib.formats import atomic_write, write_json
from seamlib.provenance import (
    RECORD,
    STAGE_RECORD,
    changed_settings,
    is_done,
    record_stage,
    stage_key,
    stage_record,
    stage_settings,
)

if TYPE_CHECKING:
    from torch import nn

TIMINGS = "timings.json"
METRICS = "metrics.json"  # of the cam_eval and evaluate stages


@dataclass(frozen=True)
class Stage:
    """One pipeline step: the config sections it depends on, whether it computes with torch
    (its outputs depend on the device), how to run it and the file in its folder that the later
    stages read (a record without it is not complete: the file was deleted)."""

    name: str
    sections: tuple[str, ...]
    run: Callable[[Config, Path], None]
    device: bool = False
    output: str | None = None


def _data(cfg: Config, run: Path) -> None:
    from seamlib.data.prepare import prepare_data

    prepare_data(cfg)


def _weights(cfg: Config, run: Path) -> None:
    """The starting point: the ImageNet file (voc) or the committed proxy trunk, checked."""
    from seamlib.models.weights import require_weights, verify_trunk

    require_weights(cfg.model)
    if cfg.pretrain.trunk is not None and cfg.model.weights == cfg.pretrain.trunk:
        verify_trunk(cfg.pretrain.trunk, cfg.pretrain.trunk_sha256)


def _train_cam(cfg: Config, run: Path) -> None:
    from seamlib.stages.train_cam import train_cam

    cfg = copy.deepcopy(cfg)
    cfg.train_cam.out_dir = str(run / "train_cam")
    train_cam(cfg)


def _cams(cfg: Config, run: Path) -> None:
    scored_cams(cfg, run / "train_cam" / "model.pth", run / "cams")


def scored_cams(cfg: Config, weights: Path, out: Path, progress: bool = True,
                use_pcm: bool | None = None,
                wrap: Callable[[nn.Module], nn.Module] | None = None) -> Path:
    """CAMs of what ``cam_eval`` scores, ``cam_list`` and ``val_list`` (to choose a threshold),
    in ``out/<list>/``: by default the PCM output when the PCM was trained (ECR on), else the
    raw CAM; ``use_pcm`` and ``wrap`` as ``cams_stage`` takes them."""
    from seamlib.stages.cams import cams_stage

    use_pcm = uses_pcm(cfg) if use_pcm is None else use_pcm
    for name in dict.fromkeys((cfg.data.cam_list, cfg.data.val_list)):
        cams_stage(cfg, weights, name, out / name, use_pcm=use_pcm, progress=progress, wrap=wrap)
    return out


def _cam_eval(cfg: Config, run: Path) -> None:
    write_json(run / "cam_eval" / METRICS, score_cams(cfg, run / "cams"))


def score_cams(cfg: Config, cams: Path) -> dict:
    """CAM quality on ``cam_list`` from the threshold sweeps of it and of ``val_list`` (CAMs in
    ``cams/<list>/``): the best threshold, the one chosen on val, mIoU / mFP / mFN and
    per-class IoU at both."""
    from seamlib.stages.evaluate import THRESHOLDS, cam_confusions, sweep_metrics

    data = cfg.data
    sweeps = [cam_confusions(cams / name, data.root, name, THRESHOLDS)
              for name in (data.cam_list, data.val_list)]
    return {"use_pcm": uses_pcm(cfg), **sweep_metrics(*sweeps)}


def _label_cams(cfg: Config, run: Path) -> None:
    """CAMs of the whole ``train_list``, from which the pseudo labels are made (CRF,
    AffinityNet, random walk). A stage of its own so that runs scored on CAMs alone (the
    ablations, ``--until cam_eval``) infer only the two small lists; it recomputes the
    ``cam_list`` images rather than copying them, so its maps equal one pass over the list."""
    from seamlib.stages.cams import cams_stage

    cams_stage(cfg, run / "train_cam" / "model.pth", cfg.data.train_list, label_cam_dir(cfg, run),
               use_pcm=uses_pcm(cfg))


def label_cam_dir(cfg: Config, run: Path) -> Path:
    """Where a run's CAMs of the whole training list are (the pseudo labels' input)."""
    return run / "label_cams" / cfg.data.train_list


def _crf(cfg: Config, run: Path) -> None:
    from seamlib.stages.crf import crf_stage

    crf_stage(label_cam_dir(cfg, run), cfg.data.root, cfg.data.train_list,
              run / "crf", cfg.crf, kind="affinity")


def _train_affinity(cfg: Config, run: Path) -> None:
    from seamlib.stages.train_affinity import train_affinity

    train_affinity(cfg, run / "crf", run / "train_affinity")


def _random_walk(cfg: Config, run: Path) -> None:
    from seamlib.stages.random_walk import random_walk_stage

    random_walk_stage(label_cam_dir(cfg, run), run / "train_affinity" / "model.pth",
                      cfg.data.root, cfg.data.train_list, run / "random_walk", cfg)


def _train_seg(cfg: Config, run: Path) -> None:
    from seamlib.stages.train_seg import train_seg

    train_seg(cfg, run / "random_walk", run / "train_seg")


def _segment(cfg: Config, run: Path) -> None:
    from seamlib.stages.segment import segment_stage

    for name in eval_lists(cfg):
        segment_stage(cfg, run / "train_seg" / "model.pth", name, run / "segment" / name)


def _evaluate(cfg: Config, run: Path) -> None:
    """Every stage's output against the masks: the CAMs as ``cam_eval`` scored them (its record,
    not a second scoring), random-walk pseudo labels on ``cam_list``, the segmentation on each
    evaluated list."""
    from seamlib.stages.evaluate import evaluate

    data = cfg.data
    metrics = {
        "cams": json.loads((run / "cam_eval" / METRICS).read_text()),
        "random_walk": evaluate(run / "random_walk", data.root, data.cam_list, kind="png"),
        **{f"segment_{name}": evaluate(run / "segment" / name, data.root, name, kind="png")
           for name in eval_lists(cfg)},
    }
    write_json(run / "evaluate" / METRICS, metrics)


def eval_lists(cfg: Config) -> list[str]:
    """Lists the retrained network is evaluated on: ``val_list``, and ``test`` where the
    dataset has its masks (the synthetic benchmark; VOC test goes to the server)."""
    from seamlib.data.lists import list_path
    from seamlib.data.voc import SEG_CLASS, read_list

    names = [cfg.data.val_list]
    test = list_path(cfg.data.root, "test")
    if test.is_file() and all((Path(cfg.data.root) / SEG_CLASS / f"{i}.png").is_file()
                              for i in read_list(test)):
        names.append("test")
    return names


STAGES: tuple[Stage, ...] = (
    Stage("data", ("data", "synthetic"), _data),
    Stage("weights", ("model", "pretrain"), _weights),
    Stage("train_cam", ("model", "loss", "train_cam"), _train_cam, device=True, output="model.pth"),
    Stage("cams", ("cams",), _cams, device=True),
    Stage("cam_eval", (), _cam_eval, output=METRICS),
    Stage("label_cams", ("cams",), _label_cams, device=True),
    Stage("crf", ("crf",), _crf),
    Stage("train_affinity", ("affinity", "train_affinity"), _train_affinity, device=True,
          output="model.pth"),
    Stage("random_walk", ("random_walk",), _random_walk, device=True),
    Stage("train_seg", ("segment", "train_seg"), _train_seg, device=True, output="model.pth"),
    Stage("segment", ("segment",), _segment, device=True),
    Stage("evaluate", (), _evaluate, output=METRICS),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def keys(cfg: Config, until: str | None = None) -> dict[str, tuple[str, dict]]:
    """Per stage up to ``until`` (all by default): its chained key and its settings."""
    out, key = {}, ""
    for stage in STAGES[:STAGE_NAMES.index(until) + 1 if until else None]:
        settings = stage_settings(cfg, stage.sections, stage.device)
        key = stage_key(stage.name, settings, key)
        out[stage.name] = (key, settings)
    return out


def run_folder(profile: str, variant: str, seed: int) -> Path:
    """Where the stages of one (variant, seed) run live: ``runs/<profile>/<variant>/seed<k>``."""
    return Path("runs") / profile / variant / f"seed{seed}"


def run_pipeline(cfg: Config, run_dir: str | Path, until: str | None = None,
                 replace: bool = False) -> dict[str, dict]:
    """Run the stages up to ``until`` (all by default) in ``run_dir``; return, per stage, its
    wall seconds and whether it ran now or was up to date. Trained weights made with other
    settings are cleared only with ``replace``; otherwise that is an error."""
    if until is not None and until not in STAGE_NAMES:
        raise InputError(f"until={until!r}: expected one of {', '.join(STAGE_NAMES)}")
    run = Path(run_dir)
    plan = _plan(cfg, until)
    if not replace:  # checked before any stage runs, so a refusal changes nothing
        for stage, (key, settings) in plan:
            _keep_weights(run / stage.name, key, settings)
    timings = {stage.name: _run_stage(cfg, run, stage, *key) for stage, key in plan}
    atomic_write(run / TIMINGS, lambda t: t.write_text(json.dumps(timings, indent=1)))
    return timings


def final_key(cfg: Config, until: str) -> str:
    """The chained key of stage ``until``: equal iff every setting up to it is equal."""
    return keys(cfg, until)[until][0]


def stale_stages(cfg: Config, run_dir: str | Path, until: str) -> list[str]:
    """The stages up to ``until`` that a ``run_pipeline`` call would run (not complete with
    their current settings in ``run_dir``)."""
    folders = [(stage, Path(run_dir) / stage.name, key) for stage, (key, _) in _plan(cfg, until)]
    return [stage.name for stage, folder, key in folders
            if not _complete(stage, folder, stage_record(folder), key)]


def _plan(cfg: Config, until: str | None) -> list[tuple[Stage, tuple[str, dict]]]:
    """The stages up to ``until``, each with its key and settings."""
    return list(zip(STAGES, keys(cfg, until).values(), strict=False))


def _complete(stage: Stage, folder: Path, state: dict, key: str) -> bool:
    """Whether ``folder``, whose record is ``state``, holds the stage's finished work with
    ``key``: the record says so and the output later stages read is still there."""
    return is_done(state, key) and (stage.output is None or (folder / stage.output).is_file())


def _why(state: dict, settings: dict) -> str:
    """Why a stage folder's record is stale: its first changed setting, or an earlier stage."""
    changed = changed_settings(state.get("settings", {}), settings)
    return (f"{changed[0][0]} was {changed[0][1]!r}, now {changed[0][2]!r}" if changed
            else "an earlier stage changed")


def _keep_weights(folder: Path, key: str, settings: dict) -> None:
    """Refuse to clear a stage folder holding weights trained with other settings."""
    state = stage_record(folder)
    if state.get("key") not in (None, key) and any(folder.glob("*.pth")):
        raise InputError(f"{folder} holds weights trained with other settings "
                         f"({_why(state, settings)}); use another --run-dir, or --replace "
                         "(replace=True) to retrain them there")


def _run_stage(cfg: Config, run: Path, stage: Stage, key: str, settings: dict) -> dict:
    """Run one stage unless its record says it completed with ``key``. A folder made with
    another key is cleared first; one interrupted with the same key is resumed (the stage's
    own files say how far it got)."""
    folder = run / stage.name
    state = stage_record(folder)
    if _complete(stage, folder, state, key):
        print(f"[{stage.name}] up to date ({folder / STAGE_RECORD})")
        return {**{k: v for k, v in state.items() if k not in RECORD}, "ran": False}
    if is_done(state, key):
        print(f"[{stage.name}] {folder / stage.output} is missing: running the stage again")
    if state.get("key") not in (None, key):
        print(f"[{stage.name}] {_why(state, settings)}: clearing {folder}")
        shutil.rmtree(folder)
    from seamlib.device import cpu_ticks, hardware, steal_percent

    record_stage(folder, {"key": key, "settings": settings, "complete": False})
    start, ticks = time.time(), cpu_ticks()
    try:
        stage.run(cfg, run)
    except KeyboardInterrupt as err:
        raise Interrupted(stage.name) from err
    seconds = round(time.time() - start, 1)
    done = {"seconds": seconds, "hardware": hardware(),
            "cpu_steal_percent": steal_percent(ticks, cpu_ticks())}
    record_stage(folder, {"key": key, "settings": settings, "complete": True, **done})
    print(f"[{stage.name}] done in {seconds} s")
    return {**done, "ran": True}
