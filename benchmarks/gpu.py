"""The ``voc`` path on one GPU: every stage's step time at the ``voc`` profile's shapes on
synthetic inputs (random-init weights: cost depends only on shapes), CUDA checked against the
CPU, and the hours of each ``voc`` stage projected from the measured step times.

``python -m benchmarks.gpu --device cuda --out results/benchmarks/gpu`` writes one JSON per
part and ``README.md`` under ``--out`` (default runs/benchmarks/gpu); ``--device cpu --tiny``
runs the same code at toy sizes in seconds. A part that fails records its error and the rest
still run; once ``--budget-s`` is spent the remaining measuring parts are recorded as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from seamlib.config import VARIANTS, Config, apply_overrides, load_config
from seamlib.device import hardware
from seamlib.formats import atomic_write
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.models.affinity import STRIDE, build_affinity_net
from seamlib.models.deeplab import build_deeplab
from seamlib.stages.cams import multiscale_cams
from seamlib.stages.random_walk import random_walk_label
from seamlib.stages.segment import multiscale_probs
from seamlib.stages.train_affinity import affinity_loss_fn
from seamlib.stages.train_seg import segmentation_loss
from seamlib.trainer import autocast_dtype, build_optimizer, use_channels_last
from seamlib.transforms import parse_transform

OUT = Path("runs/benchmarks/gpu")
VOC_IMAGES = 10_582  # train_aug
VOC_VAL_IMAGES = 1_449
SEG_STEPS = 20_000  # the authors' retraining schedule
CAM_SCALES = (0.5, 1.0, 1.5, 2.0)
CAM_IMAGES = 8  # images per multiscale_cams call (its passes batch across images)
TRAIN_VARIANTS = ("fp32", "bf16", "bf16_cl")
CHECK_BATCH, CHECK_CROP = 2, 320  # CUDA-vs-CPU check: one small batch (the CPU side is slow)
CHECK_RTOL = 1e-3  # fp32 CUDA (TF32 off) vs CPU: loss terms and gradient norms
BF16_RTOL = 2e-2  # bf16 autocast vs fp32 step losses
FREE = ("projections",)  # parts that only compute: run even when the budget is spent
PROJECTION = "projection from measured step times"


@dataclass(frozen=True)
class Settings:
    """Shapes and step counts of one run (``--tiny``: toy sizes for a CPU)."""

    device: torch.device
    width: float = 1.0
    crop: int = 448
    batch: int = 8
    image: tuple[int, int] = (375, 500)  # (H, W): VOC's usual image
    warmup: int = 2
    steps: int = 5
    walk_size: int = 448
    check_crop: int = CHECK_CROP
    cam_images: int = CAM_IMAGES
    tiny: bool = False


def settings_for(device: str, tiny: bool) -> Settings:
    """The full ``voc`` shapes, or the tiny ones."""
    if tiny:
        return Settings(torch.device(device), width=0.0625, crop=64, batch=2, image=(60, 80),
                        warmup=1, steps=2, walk_size=64, check_crop=64, cam_images=2, tiny=True)
    return Settings(torch.device(device))


def voc_config(s: Settings, variant: str = "seam") -> Config:
    """The ``voc`` profile (with a method variant's overlay), random-init, at ``s.width``."""
    cfg = apply_overrides(load_config("voc"), VARIANTS[variant])
    cfg.model = dataclasses.replace(cfg.model, weights=None, width=s.width)
    return cfg


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so wall time measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], s: Settings) -> list[float]:
    """Seconds of each of ``s.steps`` calls of ``fn`` after ``s.warmup`` untimed ones."""
    for _ in range(s.warmup):
        fn()
    times = []
    for _ in range(s.steps):
        sync(s.device)
        start = time.perf_counter()
        fn()
        sync(s.device)
        times.append(time.perf_counter() - start)
    return times


def timing(times: list[float], items: int) -> dict[str, Any]:
    """Median seconds per call and items per second."""
    median = statistics.median(times)
    return {"seconds": median, "per_s": items / median, "times_s": times}


def reset_peak(device: torch.device) -> None:
    """Free cached blocks and restart the peak-memory counter."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    """Peak GPU memory allocated since the last reset, GiB (None on the CPU)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in channels_last memory format when asked."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def class_labels(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 20) float image labels with one to three classes present each."""
    labels = torch.zeros(n, 20)
    for row in labels:
        count = int(torch.randint(1, 4, (), generator=generator))
        row[torch.randperm(20, generator=generator)[:count]] = 1
    return labels


def seam_batch(s: Settings, n: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded synthetic batch: normalised-looking images (n, 3, crop, crop) and labels."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, crop, crop, generator=generator), class_labels(n, generator)


def seam_net(cfg: Config, device: torch.device, channels_last: bool = False) -> nn.Module:
    """The SEAM network of ``cfg``, seeded (the same initial weights every call), training."""
    torch.manual_seed(0)
    net = build_model(cfg.model).to(device).train()
    return net.to(memory_format=torch.channels_last) if channels_last else net


def train_variant(s: Settings, method: str, variant: str) -> dict[str, Any]:
    """Time SEAM (or baseline) optimiser steps of one precision variant; first-step losses."""
    cfg = voc_config(s, method)
    dtype = torch.bfloat16 if variant.startswith("bf16") else None
    channels_last = variant.endswith("_cl")
    reset_peak(s.device)
    net = seam_net(cfg, s.device, channels_last)
    opt = build_optimizer(net, cfg.train_cam)
    transform = parse_transform(cfg.loss.transform)
    images, labels = seam_batch(s, s.batch, s.crop)
    images, labels = to_format(images.to(s.device), channels_last), labels.to(s.device)

    def step() -> dict[str, float]:
        with autocast(s.device, dtype):
            terms = seam_loss(net, images, labels, transform, cfg.loss)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    torch.manual_seed(1)  # the same dropout draws for every variant's first step
    first = step()
    result = timing(time_calls(step, s), s.batch)
    return {"images_per_s": result["per_s"], "step_s": result["seconds"],
            "times_s": result["times_s"], "peak_gib": peak_gib(s.device),
            "first_step_terms": first}


def relative(a: float, b: float) -> float:
    """|a - b| / |b| (|a - b| when b is 0)."""
    return abs(a - b) / abs(b) if b else abs(a - b)


def train_method(s: Settings, method: str) -> dict[str, Any]:
    """One method's training steps at the voc shapes in fp32, bf16, bf16 + channels_last."""
    runs = {v: train_variant(s, method, v) for v in TRAIN_VARIANTS}
    fp32 = runs["fp32"]["first_step_terms"]["loss"]
    for run in runs.values():
        run["loss_rel_diff_vs_fp32"] = relative(run["first_step_terms"]["loss"], fp32)
    return {"method": method, "batch": s.batch, "crop": s.crop, "width": s.width,
            "warmup": s.warmup, "timed_steps": s.steps, **runs}


def part_train_seam(s: Settings) -> dict[str, Any]:
    """SEAM training steps (the voc loss: ER, ECR, PCM, min-pooling)."""
    return train_method(s, "seam")


def part_train_baseline(s: Settings) -> dict[str, Any]:
    """Baseline (plain CAM classifier) training steps."""
    return train_method(s, "baseline")


def cam_sample(s: Settings, generator: torch.Generator) -> dict[str, Any]:
    """One ``MultiScaleDataset`` sample of ``s.image``'s size: every scale and its flip."""
    height, width = s.image
    images = []
    for scale in CAM_SCALES:
        image = torch.randn(3, max(1, round(height * scale)), max(1, round(width * scale)),
                            generator=generator)
        images += [image, image.flip(-1)]
    return {"id": "synthetic", "label": class_labels(1, generator)[0], "size": (height, width),
            "images": images}


def part_cams(s: Settings) -> dict[str, Any]:
    """Multi-scale + flip CAM inference (the cams stage's fp32 path): batched and one pass at
    a time."""
    net = seam_net(voc_config(s), s.device).eval()
    generator = torch.Generator().manual_seed(0)
    samples = [cam_sample(s, generator) for _ in range(s.cam_images)]
    out: dict[str, Any] = {"image_hw": list(s.image), "scales": list(CAM_SCALES), "flip": True,
                           "images_per_call": len(samples)}
    for name, max_pixels in (("batched", None), ("one_pass", 0)):
        kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
        result = timing(time_calls(lambda k=kwargs: multiscale_cams(
            net, samples, device=s.device, **k), s), len(samples))
        out[name] = {"images_per_s": result["per_s"], "call_s": result["seconds"],
                     "times_s": result["times_s"]}
    return out


def train_step_timing(s: Settings, net: nn.Module, train_cfg: Any, loss_fn: Callable,
                      batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """Time optimiser steps of ``loss_fn`` with the trainer's amp and channels_last settings."""
    dtype = autocast_dtype(train_cfg.amp, s.device)
    channels_last = use_channels_last(train_cfg.channels_last, s.device)
    net = net.to(s.device).train()
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    batch = (to_format(batch[0].to(s.device), channels_last), batch[1].to(s.device))
    opt = build_optimizer(net, train_cfg)

    def step() -> None:
        with autocast(s.device, dtype):
            loss = loss_fn(net, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    reset_peak(s.device)
    result = timing(time_calls(step, s), len(batch[0]))
    return {"batch": len(batch[0]), "step_s": result["seconds"], "images_per_s": result["per_s"],
            "times_s": result["times_s"], "peak_gib": peak_gib(s.device),
            "amp": str(dtype), "channels_last": channels_last}


def stage_batch(s: Settings, cfg_batch: int) -> int:
    """A stage's batch: its configured one, or the tiny batch."""
    return s.batch if s.tiny else cfg_batch


def void_labels(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random class labels of ``shape`` with a tenth of them void (255)."""
    labels = torch.randint(0, 21, shape, generator=generator)
    labels[torch.rand(labels.shape, generator=generator) < 0.1] = 255
    return labels


def part_affinity_step(s: Settings) -> dict[str, Any]:
    """AffinityNet optimiser step on random stride-8 label maps."""
    cfg = voc_config(s)
    crop = s.crop if s.tiny else cfg.affinity.crop_size
    n = stage_batch(s, cfg.train_affinity.batch_size)
    generator = torch.Generator().manual_seed(0)
    labels = void_labels((n, crop // STRIDE, crop // STRIDE), generator)
    torch.manual_seed(0)
    net = build_affinity_net(cfg.model, cfg.affinity.radius)
    images = torch.randn(n, 3, crop, crop, generator=generator)
    return {"crop": crop, **train_step_timing(s, net, cfg.train_affinity, affinity_loss_fn,
                                              (images, labels))}


def part_random_walk(s: Settings) -> dict[str, Any]:
    """``random_walk_label`` of one square image with two classes' CAMs."""
    cfg = voc_config(s)
    torch.manual_seed(0)
    net = build_affinity_net(cfg.model, cfg.affinity.radius).to(s.device).eval()
    generator = torch.Generator().manual_seed(0)
    size = s.walk_size
    image = torch.randn(3, size, size, generator=generator)
    cams = torch.rand(2, size, size, generator=generator).numpy()
    classes = np.array([3, 15])
    result = timing(time_calls(lambda: random_walk_label(net, image, cams, classes, cfg), s), 1)
    return {"image_hw": [size, size], "logt": cfg.random_walk.logt,
            "seconds_per_image": result["seconds"], "times_s": result["times_s"]}


def part_deeplab_step(s: Settings) -> dict[str, Any]:
    """DeepLab-LargeFOV retraining step on random labels (some void)."""
    cfg = voc_config(s)
    crop = s.crop if s.tiny else cfg.segment.crop_size
    n = stage_batch(s, cfg.train_seg.batch_size)
    generator = torch.Generator().manual_seed(0)
    labels = void_labels((n, crop, crop), generator)
    torch.manual_seed(0)
    net = build_deeplab(cfg.model, cfg.segment)
    images = torch.randn(n, 3, crop, crop, generator=generator)
    return {"crop": crop, **train_step_timing(s, net, cfg.train_seg, segmentation_loss,
                                              (images, labels))}


def part_segment_inference(s: Settings) -> dict[str, Any]:
    """DeepLab multi-scale + flip inference (``multiscale_probs``) of one VOC-size image."""
    cfg = voc_config(s)
    torch.manual_seed(0)
    net = build_deeplab(cfg.model, cfg.segment).to(s.device).eval()
    image = torch.randn(3, *s.image, generator=torch.Generator().manual_seed(0)).to(s.device)
    seg = cfg.segment
    result = timing(time_calls(lambda: multiscale_probs(net, image, seg.test_scales,
                                                        seg.test_flip, seg.average), s), 1)
    return {"image_hw": list(s.image), "scales": list(seg.test_scales), "flip": seg.test_flip,
            "seconds_per_image": result["seconds"], "times_s": result["times_s"]}


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """TF32 off for CUDA matmuls and convolutions (restored after)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def loss_and_grads(net: nn.Module, cfg: Config, batch: tuple[torch.Tensor, torch.Tensor],
                   dtype: torch.dtype | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """SEAM loss terms of one batch and each parameter's gradient norm."""
    device = next(net.parameters()).device
    images, labels = (t.to(device) for t in batch)
    net.zero_grad(set_to_none=True)
    with autocast(device, dtype):
        terms = seam_loss(net, images, labels, parse_transform(cfg.loss.transform), cfg.loss)
    terms["loss"].backward()
    norms = {k: float(p.grad.norm()) for k, p in net.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in terms.items()}, norms


def max_relative(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest relative difference of ``a`` from reference ``b`` over their shared keys."""
    return max(relative(a[k], b[k]) for k in b)


def state_dict_round_trip(net: nn.Module) -> bool:
    """Whether a state dict saved on CUDA loads on the CPU, and back, with equal tensors."""
    state = net.state_dict()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cuda.pth"
        torch.save(state, path)
        on_cpu = torch.load(path, map_location="cpu")
        torch.save(on_cpu, Path(folder) / "cpu.pth")
        back = torch.load(Path(folder) / "cpu.pth", map_location=next(net.parameters()).device)
    return all(torch.equal(on_cpu[k], state[k].cpu()) and torch.equal(back[k], state[k])
               for k in state)


def part_cuda_vs_cpu(s: Settings) -> dict[str, Any]:
    """``compare_devices`` on CUDA; skipped on other devices."""
    if s.device.type != "cuda":
        return {"status": "skipped", "reason": "skipped: needs cuda"}
    return compare_devices(s)


def compare_devices(s: Settings) -> dict[str, Any]:
    """fp32 ``s.device`` (TF32 off) vs CPU loss terms and gradient norms, bf16 vs fp32 losses,
    and a state dict round trip through the CPU. Networks in eval mode: no dropout draws."""
    cfg = voc_config(s)
    batch = seam_batch(s, CHECK_BATCH, s.check_crop)
    cpu_net = seam_net(cfg, torch.device("cpu")).eval()
    cuda_net = copy.deepcopy(cpu_net).to(s.device)  # the same weights
    cpu_terms, cpu_norms = loss_and_grads(cpu_net, cfg, batch)
    with no_tf32():
        cuda_terms, cuda_norms = loss_and_grads(cuda_net, cfg, batch)
    bf16_terms, _ = loss_and_grads(cuda_net, cfg, batch, torch.bfloat16)
    terms_diff, norms_diff = max_relative(cuda_terms, cpu_terms), max_relative(cuda_norms,
                                                                               cpu_norms)
    bf16_diff = max_relative(bf16_terms, cuda_terms)
    round_trip = state_dict_round_trip(cuda_net)
    return {"batch": CHECK_BATCH, "crop": s.check_crop, "rtol": CHECK_RTOL, "tf32": False,
            "cpu_terms": cpu_terms, "cuda_terms": cuda_terms, "bf16_terms": bf16_terms,
            "terms_max_rel_diff": terms_diff, "grad_norms_max_rel_diff": norms_diff,
            "bf16_rtol": BF16_RTOL, "bf16_terms_max_rel_diff": bf16_diff,
            "worst_grad_param": max(cpu_norms, key=lambda k: relative(cuda_norms[k],
                                                                      cpu_norms[k])),
            "state_dict_round_trip": round_trip,
            "passed": bool(terms_diff <= CHECK_RTOL and norms_diff <= CHECK_RTOL
                           and bf16_diff <= BF16_RTOL and round_trip)}


def hours(steps: float, seconds: float | None) -> float | None:
    """``steps`` x ``seconds`` in hours (None when not measured)."""
    return None if seconds is None else steps * seconds / 3600


def measured(results: dict[str, dict[str, Any]], part: str, *keys: str) -> float | None:
    """A number from an earlier part's result, None when that part did not measure it."""
    value: Any = results.get(part, {})
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def seam_hours(results: dict[str, dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """SEAM training hours of each measured precision variant."""
    steps = cfg.train_cam.epochs * (VOC_IMAGES // cfg.train_cam.batch_size)
    return {"steps": steps, "batch": cfg.train_cam.batch_size,
            **{v: hours(steps, measured(results, "train_seam", v, "step_s"))
               for v in TRAIN_VARIANTS}}


def part_projections(results: dict[str, dict[str, Any]], s: Settings) -> dict[str, Any]:
    """Hours of each voc stage on one device, from the measured step times."""
    cfg = voc_config(s)
    aff_steps = cfg.train_affinity.epochs * (VOC_IMAGES // cfg.train_affinity.batch_size)
    cam_rate = measured(results, "cams", "batched", "images_per_s")
    walk = measured(results, "random_walk", "seconds_per_image")
    seg_image = measured(results, "segment_inference", "seconds_per_image")
    stages = {
        "seam_train": seam_hours(results, cfg),
        "cams_train_aug": {"images": VOC_IMAGES,
                           "hours": hours(VOC_IMAGES, 1 / cam_rate if cam_rate else None)},
        "affinity_train": {"steps": aff_steps, "batch": cfg.train_affinity.batch_size,
                           "hours": hours(aff_steps, measured(results, "affinity_step", "step_s"))},
        "random_walk_train_aug": {"images": VOC_IMAGES, "hours": hours(VOC_IMAGES, walk)},
        "seg_retrain": {"steps": SEG_STEPS, "batch": cfg.train_seg.batch_size, "hours": hours(
            SEG_STEPS, measured(results, "deeplab_step", "step_s"))},
        "segment_val": {"images": VOC_VAL_IMAGES, "hours": hours(VOC_VAL_IMAGES, seg_image)},
    }
    note = "toy shapes (--tiny): not the voc shapes" if s.tiny else "voc shapes"
    return {"label": PROJECTION, "shapes": note, "stages": stages}


Part = Callable[[Settings], dict[str, Any]]


def parts() -> dict[str, Part]:
    """The measuring parts, in run order (looked up at call time, so tests can replace one)."""
    module = sys.modules[__name__]
    names = ("train_seam", "train_baseline", "cams", "affinity_step", "random_walk",
             "deeplab_step", "segment_inference", "cuda_vs_cpu")
    return {name: getattr(module, f"part_{name}") for name in names}


def run_part(name: str, fn: Callable[[], dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Run one part; an exception becomes its recorded error."""
    start = time.perf_counter()
    try:
        result = {"status": "ok", **fn()}
    except Exception as error:  # noqa: BLE001 -- one failure must not lose the whole run
        result = {"status": "error", "error": f"{type(error).__name__}: {error}",
                  "traceback": traceback.format_exc()}
    if device.type == "cuda":
        torch.cuda.empty_cache()
    result["wall_s"] = time.perf_counter() - start
    print(f"{name}: {result['status']} in {result['wall_s']:.1f} s", flush=True)
    return {"part": name, **result}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def environment(device: torch.device, argv: list[str]) -> dict[str, Any]:
    """The device, driver, CUDA and torch versions, and the command line."""
    env = {"command": shlex.join(["python", "-m", "benchmarks.gpu", *argv]),
           "torch": torch.__version__, "host": hardware()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   driver=nvidia_driver())
    else:
        env.update(gpu=None, cuda=None, driver=None)
    return env


def nvidia_driver() -> str | None:
    """The NVIDIA driver version nvidia-smi reports (None without it)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def summary(result: dict[str, Any]) -> str:
    """One table cell of a part's headline numbers."""
    if result["status"] != "ok":
        return result.get("error") or result.get("reason", "")
    name = result["part"]
    if name.startswith("train_"):
        return "; ".join(f"{v} {result[v]['images_per_s']:.1f} img/s, loss rel diff "
                         f"{result[v]['loss_rel_diff_vs_fp32']:.1e}" for v in TRAIN_VARIANTS)
    if name == "cams":
        return (f"batched {result['batched']['images_per_s']:.2f} img/s, one pass at a time "
                f"{result['one_pass']['images_per_s']:.2f} img/s")
    if "step_s" in result:
        return f"{result['step_s']:.3f} s per step of {result['batch']}"
    if "seconds_per_image" in result:
        return f"{result['seconds_per_image']:.3f} s per image"
    if name == "cuda_vs_cpu":
        return (f"passed {result['passed']}: terms {result['terms_max_rel_diff']:.2e}, grad "
                f"norms {result['grad_norms_max_rel_diff']:.2e}, bf16 "
                f"{result['bf16_terms_max_rel_diff']:.2e}")
    stages = result["stages"]
    cells = [f"seam {v} {stages['seam_train'][v]:.2f} h" for v in TRAIN_VARIANTS
             if stages["seam_train"][v] is not None]
    cells += [f"{k} {v['hours']:.2f} h" for k, v in stages.items()
              if k != "seam_train" and v["hours"] is not None]
    return f"{PROJECTION}: " + "; ".join(cells)


def safe_summary(result: dict[str, Any]) -> str:
    """``summary``, or a pointer to the JSON when a field it reads is missing."""
    try:
        return summary(result)
    except (KeyError, TypeError, ValueError) as error:
        return f"see {result['part']}.json (no summary: {type(error).__name__} {error})"


def readme(env: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    """README.md: the environment and one table row per part."""
    lines = ["# GPU benchmark of the voc path", "",
             f"- GPU: {env['gpu']}", f"- Driver: {env['driver']}, CUDA: {env['cuda']}",
             f"- torch: {env['torch']}", f"- Host: {env['host']}",
             f"- Command: `{env['command']}`", "",
             "| part | status | wall s | result |", "|---|---|---|---|"]
    for name, result in results.items():
        cell = safe_summary(result).replace("|", "/").replace("\n", " ")
        lines.append(f"| {name} | {result['status']} | {result['wall_s']:.1f} | {cell} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes: seconds on a CPU")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="skip the remaining measuring parts once this many seconds passed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run every part, write ``<out>/<part>.json`` and ``<out>/README.md``; return results."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    s = settings_for(args.device, args.tiny)
    env = environment(s.device, argv)
    start = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name, fn in [*parts().items(), ("projections", lambda x: part_projections(results, x))]:
        if time.perf_counter() - start > args.budget_s and name not in FREE:
            result = {"part": name, "status": "skipped", "reason": "budget spent", "wall_s": 0.0}
        else:
            result = run_part(name, lambda f=fn: f(s), s.device)
        results[name] = result
        write_json(args.out / f"{name}.json", {**result, "environment": env})
    atomic_write(args.out / "README.md", lambda tmp: tmp.write_text(readme(env, results)))
    return results


if __name__ == "__main__":
    main()
