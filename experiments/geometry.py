"""The geometry diagnosis on the CPU proxy: does SEAM lose to the plain-CAM
baseline because ER compares CAMs on a 5x5 map at the proxy's crop 128?

Each diagnostic is a variant of ``seamlib.config.VARIANTS`` (``DIAGNOSTICS``): SEAM with a
larger second branch (rescale 0.5, 0.7), SEAM without ER, and both branches' classification
alone. Every model is trained once (seed of the profile), then scored on its fc8 CAM and, when
it trained a PCM, on the PCM output: best-threshold and val-chosen-threshold CAM mIoU with mFP
and mFN on the cam list, and classification mAP on val. The baseline and SEAM are also scored
single-scale at input scales 0.5 to 2 (inference only). These are diagnostics: they never
change a profile's settings. Each finished model's record is written at once (resumable).
"""

from __future__ import annotations

import dataclasses
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from experiments.difficulty import classification_ap, load_seam
from seamlib.config import VARIANTS, Config, apply_overrides
from seamlib.data.datasets import MultiScaleDataset
from seamlib.data.lists import labels_for
from seamlib.device import hardware
from seamlib.errors import InputError
from seamlib.formats import atomic_write, json_safe, save_cam
from seamlib.models.seam import SEAMNet, SEAMOutput
from seamlib.parallel import run_parallel
from seamlib.stages.cams import multiscale_cams, run_cams
from seamlib.stages.evaluate import THRESHOLDS, cam_confusions, sweep_metrics
from seamlib.stages.train_cam import train_cam

# The diagnostics: variants of the one registry (seamlib.config.VARIANTS), trained by this tool.
DIAGNOSTICS = ("seam_rescale05", "seam_rescale07", "baseline", "seam", "pcm_only",
               "two_branch_cls")
SCALED = ("baseline", "seam")  # scored single-scale at every input scale below
MASKED = ("seam",)  # its PCM also scored with the label-masked top class as input
INPUT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
KEPT = ("train_miou_best", "train_miou_at_val_threshold", "best_threshold", "val_threshold",
        "mfp_best", "mfn_best", "mfp_at_val_threshold", "mfn_at_val_threshold")


def diagnostic_config(cfg: Config, name: str, root: Path) -> Config:
    """The profile's config with the diagnostic's overlay, training into ``root/name``."""
    run = apply_overrides(cfg, VARIANTS[name])
    run.train_cam.out_dir = str(root / name)
    return run


def score(run: Config, weights: Path, use_pcm: bool, suffix: str) -> dict:
    """CAM mIoU / mFP / mFN on the cam list at the best and the val-chosen threshold."""
    dirs = run_cams(run, weights, use_pcm, suffix, progress=False)
    sweeps = [cam_confusions(dirs[n], run.data.root, n, THRESHOLDS)
              for n in (run.data.cam_list, run.data.val_list)]
    metrics = sweep_metrics(*sweeps)
    return {k: metrics[k] for k in KEPT}


def scale_consistency(run: Config, weights: Path) -> dict[str, dict]:
    """Single-scale (with flip) fc8 CAM scores at each input scale: {scale: metrics}."""
    out = {}
    for scale in INPUT_SCALES:
        single = dataclasses.replace(run, cams=dataclasses.replace(run.cams, scales=(scale,)))
        out[f"{scale:g}"] = score(single, weights, False, f"_fc8_scale{scale:g}")
    return out


class LabelMaskedPCM(torch.nn.Module):
    """A trained SEAM network whose PCM is fed the top class among the image's labels
    (``label``, set per image) instead of over all 20 classes, as the authors feed it."""

    def __init__(self, net: SEAMNet) -> None:
        super().__init__()
        self.net, self.label = net, None

    def forward(self, x: torch.Tensor, with_pcm: bool = True) -> SEAMOutput:
        net = self.net
        feats = net.backbone(x)
        cam = net.fc8(net.dropout7(feats["conv6"]))
        keep = torch.cat([torch.ones(1), self.label]).to(cam)[None, :, None, None]
        masked = torch.where(keep > 0, cam, torch.zeros_like(cam))  # absent classes: 0
        rv = net.refine(x, masked, feats)
        up = [F.interpolate(m, x.shape[2:], mode="bilinear", align_corners=True)
              for m in (cam, rv)]
        return SEAMOutput(*up)


def masked_pcm_score(run: Config, weights: Path) -> dict:
    """The SEAM run's PCM output with the label-masked top class as its input (inference only,
    a diagnostic, not a setting), scored like the other CAMs."""
    wrapped = LabelMaskedPCM(load_seam(run, weights)).eval()
    dirs = {}
    for name in (run.data.cam_list, run.data.val_list):
        labels = labels_for(run.data.root, name, run.data.label_source)
        data = MultiScaleDataset(run.data.root, name, labels, run.cams.scales)
        out = Path(run.train_cam.out_dir) / f"cams_{name}_pcm_label_masked"
        out.mkdir(parents=True, exist_ok=True)
        for sample in data:
            path = out / f"{sample['id']}.npz"
            if not path.exists():
                wrapped.label = sample["label"]
                save_cam(path, multiscale_cams(wrapped, [sample])[0], sample["label"])
        dirs[name] = out
    sweeps = [cam_confusions(dirs[n], run.data.root, n, THRESHOLDS)
              for n in (run.data.cam_list, run.data.val_list)]
    metrics = sweep_metrics(*sweeps)
    return {k: metrics[k] for k in KEPT}


def diagnose(cfg: Config, name: str, root: Path) -> dict:
    """Train one diagnostic (or reuse it), then score it; its record."""
    run = diagnostic_config(cfg, name, root)
    start = time.time()
    weights = train_cam(run, progress=False)
    summary = json.loads((weights.parent / "summary.json").read_text())
    record = {"name": name, "overrides": VARIANTS[name], "out_dir": run.train_cam.out_dir,
              "train_seconds": summary["seconds"], "hardware": hardware(),
              "fc8": score(run, weights, False, "_fc8")}
    if run.loss.use_ecr:
        record["pcm"] = score(run, weights, True, "_pcm")
    if name in MASKED:
        record["pcm_label_masked"] = masked_pcm_score(run, weights)
    ap = classification_ap(load_seam(run, weights), run, run.data.val_list)
    record["val_map"] = float(np.nanmean(ap))
    if name in SCALED:
        record["input_scales"] = scale_consistency(run, weights)
    record["seconds"] = round(time.time() - start, 1)
    return json_safe(record)


def run_diagnostics(cfg: Config, names: list[str], out: Path, root: Path, command: str,
                    workers: int = 2) -> dict:
    """Run the named diagnostics (``workers`` at once), adding each record to
    ``out``/geometry.json as it finishes; records already there are kept, not rerun."""
    path = out / "geometry.json"
    report = json.loads(path.read_text()) if path.exists() else {"records": {}}
    commands = report.pop("commands", [report.pop("command")] if "command" in report else [])
    report.update(commands=[*commands, command], profile=cfg.profile, seed=cfg.train_cam.seed)
    todo = [n for n in names if n not in report["records"]]
    unknown = [n for n in todo if n not in DIAGNOSTICS]
    if unknown:
        raise InputError(f"unknown diagnostics {unknown}; expected some of {list(DIAGNOSTICS)}")
    # several at once: spawned workers at one torch thread each (two runs share two cores)
    threads = 1 if workers > 1 else None
    for name, record in run_parallel(partial(diagnose, cfg, root=root), todo, workers,
                                     threads=threads):
        report["records"][name] = record
        write_report(report, out)
        if workers > 1:
            print(f"{name} done -> {path}", flush=True)
    complete_masked(report, cfg, root)
    write_report(report, out)
    return report


def complete_masked(report: dict, cfg: Config, root: Path) -> None:
    """Add the label-masked PCM score to the records of ``MASKED`` made before it existed."""
    for name in MASKED:
        record = report["records"].get(name)
        if record is not None and "pcm_label_masked" not in record:
            run = diagnostic_config(cfg, name, root)
            weights = Path(run.train_cam.out_dir) / "model.pth"
            record["pcm_label_masked"] = json_safe(masked_pcm_score(run, weights))


def pct(metrics: dict | None, key: str) -> str:
    return "-" if metrics is None else f"{100 * metrics[key]:.1f}"


def format_markdown(report: dict) -> str:
    """The records as tables: every model on fc8 and PCM, then the input-scale sweep."""
    lines = ["# Geometry diagnosis on the CPU proxy", "",
             "Commands: " + "; ".join(f"`{c}`" for c in report["commands"])
             + f"; profile `{report['profile']}`, seed "
             f"{report['seed']}; one torch thread per run. CAM mIoU / mFP / mFN in % on the cam "
             "list (`train`); best threshold, and the threshold chosen on `val`.", "",
             "| model | CAM | mIoU best | mIoU at val thr | mFP best | mFN best | val mAP | "
             "hardware |", "|---|---|---|---|---|---|---|---|"]
    for name, r in report["records"].items():
        for cam in ("fc8", "pcm", "pcm_label_masked"):
            if cam in r:
                m = r[cam]
                lines.append(f"| {name} | {cam} | {pct(m, 'train_miou_best')} | "
                             f"{pct(m, 'train_miou_at_val_threshold')} | {pct(m, 'mfp_best')} | "
                             f"{pct(m, 'mfn_best')} | {r['val_map']:.3f} | {r['hardware']} |")
    scaled = {n: r["input_scales"] for n, r in report["records"].items() if "input_scales" in r}
    if scaled:
        lines += ["", "## Single-scale fc8 CAMs at each input scale (mIoU / mFP / mFN, best "
                  "threshold)", "", "| model | " + " | ".join(f"x{s:g}" for s in INPUT_SCALES)
                  + " |", "|---|" + "---|" * len(INPUT_SCALES)]
        for name, sweep in scaled.items():
            cells = [f"{pct(m, 'train_miou_best')} / {pct(m, 'mfp_best')} / {pct(m, 'mfn_best')}"
                     for m in sweep.values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> None:
    """``out``/geometry.json and geometry.md, atomically."""
    atomic_write(out / "geometry.json", lambda t: t.write_text(json.dumps(report, indent=1)))
    atomic_write(out / "geometry.md", lambda t: t.write_text(format_markdown(report)))
