"""Benchmarks: training steps and multi-scale CAM inference, each beside the plain reference
loop, on a small proxy-sized synthetic dataset.

Every measurement runs in its own subprocess (its peak RSS is that configuration's memory),
and reference and optimised runs alternate (A/B/A/B) so a shared machine's load hits both;
results are medians. ``python -m benchmarks.bench --out DIR`` writes ``DIR/*.json`` and
``DIR/README.md`` (default runs/benchmarks; the committed runs are under results/benchmarks/).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

from seamlib.config import LossConfig, ModelConfig, SyntheticConfig
from seamlib.device import hardware, keep_freed_memory
from seamlib.formats import atomic_write
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.transforms import parse_transform

OUT = Path("runs/benchmarks")  # committed results/benchmarks/ change only when asked (--out)
BASELINE = LossConfig(use_er=False, use_ecr=False, use_rvmin=False)


def peak_rss_gib() -> float:
    """This process's peak resident memory so far, GiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)


def minor_faults() -> int:
    """Minor page faults of this process so far (memory the OS had to map in)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def make_data(root: Path, images: int) -> Path:
    """A proxy-sized synthetic VOC root (96-160 px images) with ``images`` train images."""
    from seamlib.data.synthetic import generate

    if not (root / "VOC2012" / "synthetic.json").exists():
        generate(SyntheticConfig(seed=7, n_train=images, n_val=4, n_test=4, n_extra=0,
                                 min_size=96, max_size=160), root / "VOC2012")
    return root / "VOC2012"


def train_run(root: str, width: float, crop: int, batch: int, method: str, variant: str,
              steps: int) -> dict[str, Any]:
    """Time ``steps`` training steps (batch fetch + loss + backward + SGD step) after one
    warm-up step. Variants: reference (decode every image, no workers); cached (decoded-image
    cache); cached_wN (cache + N loader workers); cached_cl (cache + channels_last);
    cached_keep (cache + ``keep_freed_memory``, set by ``main``); cached_bf16 (cache + bf16
    autocast: changes the numbers, so no profile uses it)."""
    from seamlib.data.datasets import ClassificationDataset
    from seamlib.data.lists import labels_for

    torch.manual_seed(0)
    cached = variant != "reference"
    workers = int(variant.split("_w")[1]) if "_w" in variant else 0
    labels = labels_for(root, "train")
    data = ClassificationDataset(root, "train", labels, crop, (crop, crop * 7 // 4),
                                 (0.3, 0.3, 0.3, 0.0), cache_images=cached)
    sampler = RandomSampler(data, num_samples=batch * (steps + 1),  # as many epochs as needed
                            generator=torch.Generator().manual_seed(0))
    loader = iter(DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True,
                             num_workers=workers))
    net = build_model(ModelConfig(width=width)).train()
    fmt = torch.channels_last if variant.endswith("_cl") else torch.contiguous_format
    net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameter_groups(0.01, 5e-4), lr=0.01, momentum=5e-4)
    cfg = BASELINE if method == "baseline" else LossConfig()
    transform = parse_transform(cfg.transform)
    bf16 = variant.endswith("_bf16")
    seconds, losses, faults = [], [], []
    for _ in range(steps + 1):
        start, faults_before = time.perf_counter(), minor_faults()
        images, targets, _ = next(loader)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            terms = seam_loss(net, images.contiguous(memory_format=fmt), targets, transform, cfg)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
        losses.append(terms["loss"].item())
        faults.append(minor_faults() - faults_before)
    return {"seconds": seconds[1:], "loss": losses, "minor_faults": faults[1:],
            "peak_rss_gib": peak_rss_gib()}


def infer_run(root: str, width: float, images: int, variant: str, save: str) -> dict[str, Any]:
    """Multi-scale (0.5, 1, 1.5, 2) + flip CAM inference of ``images`` images: reference = one
    pass and one image at a time; batched = equal-size passes of 4 images per forward;
    batched_keep = batched + ``keep_freed_memory`` (set by ``main``)."""
    from seamlib.data.datasets import MultiScaleDataset
    from seamlib.data.lists import labels_for
    from seamlib.stages.cams import multiscale_cams

    torch.manual_seed(0)
    net = build_model(ModelConfig(width=width)).eval()
    data = MultiScaleDataset(root, "train", labels_for(root, "train"))
    samples = [data[i] for i in range(images)]
    per_batch, max_pixels = (1, 0) if variant == "reference" else (4, 2 * 1000 * 750)
    with torch.no_grad():
        net(torch.randn(2, 3, 64, 64))  # warm-up
    start, faults = time.perf_counter(), minor_faults()
    cams = []
    for i in range(0, images, per_batch):
        cams += multiscale_cams(net, samples[i:i + per_batch], max_pixels=max_pixels)
    seconds = time.perf_counter() - start
    faults = minor_faults() - faults
    torch.save(cams, save)
    return {"seconds": [seconds], "minor_faults": [faults], "cams": save,
            "peak_rss_gib": peak_rss_gib()}


def difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Max |a - b| of two runs' outputs: the CAMs (inference) or the step losses (training)."""
    if "cams" in a:
        pairs = zip(torch.load(a["cams"]), torch.load(b["cams"]), strict=True)
        return max(float((x - y).abs().max()) for x, y in pairs)
    return max(abs(x - y) for x, y in zip(a["loss"], b["loss"], strict=True))


def start_run(kind: str, kwargs: dict[str, Any], core: int | None = None) -> subprocess.Popen:
    """Start one measurement in a fresh interpreter (own peak RSS), on ``core`` if given."""
    cmd = [sys.executable, "-m", "benchmarks.bench", "--one", json.dumps({kind: kwargs})]
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=pin)


def finish_run(proc: subprocess.Popen, kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Wait for a measurement started by ``start_run`` and return its result."""
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"benchmark run {kind} {kwargs} failed:\n{stderr[-2000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def subprocess_run(kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its result."""
    return finish_run(start_run(kind, kwargs), kind, kwargs)


def compare(kind: str, common: dict[str, Any], variants: list[str], repeats: int,
            images_per_run: int, scratch: Path) -> dict[str, Any]:
    """Alternate the variants ``repeats`` times (A/B/A/B), one run at a time."""
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(repeats):
        for v in variants:
            runs[v].append(subprocess_run(kind, run_kwargs(kind, common, v, r, scratch)))
    return summarise(kind, common, runs, repeats, images_per_run, scratch)


def compare_paired(kind: str, common: dict[str, Any], variants: list[str], repeats: int,
                   images_per_run: int, scratch: Path) -> dict[str, Any]:
    """Run two variants at the same time, one per core, swapping the cores each round
    (2 x ``repeats`` rounds): both see the same minutes of the host. On the 2-core VM one
    run's step time drifted by up to 1.5x within minutes, which sequential A/B runs cannot
    separate from an effect of a few percent. Each run must use one thread."""
    if len(variants) != 2:
        raise ValueError(f"paired benchmarks compare two variants, got {variants}")
    cores = sorted(os.sched_getaffinity(0))
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    rounds = []
    for r in range(2 * repeats):
        kwargs = {v: run_kwargs(kind, common, v, r, scratch) for v in variants}
        procs = {v: start_run(kind, kwargs[v], core=cores[(i + r) % len(cores)])
                 for i, v in enumerate(variants)}
        done = {v: finish_run(p, kind, kwargs[v]) for v, p in procs.items()}
        for v in variants:
            runs[v].append(done[v])
        a, b = (statistics.median(done[v]["seconds"]) for v in variants)
        rounds.append(round(a / b, 3))
    out = summarise(kind, common, runs, 2 * repeats, images_per_run, scratch)
    out["round_speedups"] = rounds  # reference / variant, each round's simultaneous pair
    return out


def run_kwargs(kind: str, common: dict[str, Any], variant: str, r: int,
               scratch: Path) -> dict[str, Any]:
    """One run's arguments; inference runs save their CAMs in ``scratch`` for the diff."""
    extra = {"save": str(scratch / f".{kind}_{variant}_{r}.pt")} if kind == "infer" else {}
    return {**common, "variant": variant, **extra}


def summarise(kind: str, common: dict[str, Any], runs: dict[str, list[dict]], repeats: int,
              images_per_run: int, scratch: Path) -> dict[str, Any]:
    """Medians over the runs of each variant (the first is the reference); speedups and
    output differences against the reference."""
    variants = list(runs)
    out: dict[str, Any] = {"settings": common, "repeats": repeats, "variants": {}}
    for v, rs in runs.items():
        seconds = statistics.median(s for r in rs for s in r["seconds"])
        out["variants"][v] = {"median_seconds": round(seconds, 4),
                              "images_per_s": round(images_per_run / seconds, 3),
                              "peak_rss_gib": max(r["peak_rss_gib"] for r in rs),
                              "all_seconds": [round(s, 4) for r in rs for s in r["seconds"]],
                              "minor_faults": statistics.median(f for r in rs
                                                                for f in r["minor_faults"])}
    ref = out["variants"][variants[0]]["median_seconds"]
    for v in variants:
        out["variants"][v]["speedup"] = round(ref / out["variants"][v]["median_seconds"], 3)
        out["variants"][v]["max_abs_diff"] = difference(runs[v][0], runs[variants[0]][0])
    for path in scratch.glob(f".{kind}_*.pt"):
        path.unlink()
    return out


def benchmarks(root: Path, quick: bool,
               steps: int | None = None) -> dict[str, tuple[str, dict[str, Any], list[str], int]]:
    """name -> (kind, settings, variants with the reference first, images per timed unit)."""
    steps = steps or (1 if quick else 3)
    proxy = dict(root=str(root), width=0.125, crop=128, batch=16, steps=steps)
    full = dict(root=str(root), width=1.0, crop=96 if quick else 128, batch=2, steps=steps)
    out: dict[str, tuple[str, dict[str, Any], list[str], int]] = {}
    for n, (w, images) in {"proxy": (0.125, 4 if quick else 16), "full": (1.0, 1)}.items():
        out[f"infer_{n}"] = ("infer", dict(root=str(root), width=w, images=images),
                             ["reference", "batched", "batched_keep"], images)
    for method in ("baseline", "seam"):
        out[f"train_proxy_{method}"] = ("train", {**proxy, "method": method},
                                        ["reference", "cached", "cached_keep", "cached_w1",
                                         "cached_bf16"], 16)
        out[f"train_full_{method}"] = ("train", {**full, "method": method},
                                       ["reference", "cached_keep", "cached_cl",
                                        "cached_bf16"], 2)
    return out


def run_all(out: Path, root: Path, repeats: int, quick: bool, only: list[str],
            paired: list[str] | None = None, steps: int | None = None) -> None:
    """Run the benchmarks named in ``only`` (all when empty), each written as its own JSON;
    with ``paired`` (two variants), those two at the same time (``compare_paired``)."""
    out.mkdir(parents=True, exist_ok=True)  # also holds the inference runs' scratch files
    for name, (kind, settings, variants, images) in benchmarks(root, quick, steps).items():
        if not only or name in only:
            result = (compare_paired(kind, settings, paired, repeats, images, scratch=out)
                      if paired else compare(kind, settings, variants, repeats, images, out))
            write_json(out / f"{name}.json", result)


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def table(results: dict[str, Any], command: str, note: str) -> str:
    """The README: one row per variant of each benchmark."""
    lines = ["# Benchmarks", "", f"Hardware: {hardware()}.", f"Command: `{command}`.", "", note,
             "", "| benchmark | settings | variant | images/s | median s | speedup vs reference "
             "| peak RSS GiB | minor page faults | max abs diff vs reference |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        s = {k: v for k, v in r["settings"].items() if k not in ("root", "variant")}
        settings = ", ".join(f"{k}={v}" for k, v in s.items())
        rounds = r.get("round_speedups")
        for i, (v, m) in enumerate(r["variants"].items()):
            spread = f" (rounds {min(rounds)}-{max(rounds)}x)" if rounds and i else ""
            lines.append(f"| {name} | {settings} | {v} | {m['images_per_s']} | "
                         f"{m['median_seconds']} | {m['speedup']}x{spread} | {m['peak_rss_gib']} | "
                         f"{m.get('minor_faults', 'unrecorded')} | {m['max_abs_diff']:.2g} |")
    return "\n".join(lines) + "\n"


def train_step_benchmark(width: float = 1.0, batch: int = 2, size: int = 448,
                         out: str | None = None) -> dict:
    """Run two reference training steps (the first warms up) and report the second."""
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=width)).train()
    images = torch.randn(batch, 3, size, size)
    labels = torch.zeros(batch, 20)
    labels[:, 14] = 1
    transform, cfg = parse_transform(LossConfig().transform), LossConfig()
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        terms = seam_loss(net, images, labels, transform, cfg)
        terms["loss"].backward()
        seconds.append(time.perf_counter() - start)
        net.zero_grad(set_to_none=True)
    result = {"width": width, "batch": batch, "size": size,
              "step_seconds": round(seconds[1], 2), "first_step_seconds": round(seconds[0], 2),
              "peak_rss_gib": peak_rss_gib(), "hardware": hardware()}
    if out:
        write_json(Path(out), result)
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--one`` runs a single measurement (internal); otherwise all of them."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--data", default="data/bench", help="where the small benchmark set goes")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="fewer steps, smaller full-width crop")
    p.add_argument("--only", nargs="*", default=[], help="benchmark names (default: all)")
    p.add_argument("--note", default="", help="a line for the README (e.g. machine shared)")
    p.add_argument("--paired", nargs=2, metavar=("REFERENCE", "VARIANT"),
                   help="run these two variants at once, one per core (one thread each)")
    p.add_argument("--steps", type=int, help="timed training steps per run (default 3, quick 1)")
    args = p.parse_args(argv)
    if args.one:
        (kind, kwargs), = json.loads(args.one).items()
        if kwargs["variant"].endswith("_keep"):  # cached_keep, batched_keep: as ``seam`` runs
            keep_freed_memory()
        print(json.dumps((train_run if kind == "train" else infer_run)(**kwargs)))
        return
    root = make_data(Path(args.data), 48)
    out = Path(args.out)
    load = os.getloadavg()[0]
    run_all(out, root, args.repeats, args.quick, args.only, args.paired, args.steps)
    results = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))
               if "variants" in json.loads(p.read_text())}
    command = shlex.join(["python", "-m", "benchmarks.bench", *(argv or sys.argv[1:])])
    note = (f"{args.note} Load average (1 min) at the start: {load:.1f}, at the end: "
            f"{os.getloadavg()[0]:.1f}.")
    atomic_write(out / "README.md", lambda t: t.write_text(table(results, command, note)))


if __name__ == "__main__":
    main()
