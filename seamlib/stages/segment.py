"""Stage segment: the retrained DeepLab-LargeFOV (stages/train_seg.py) predicts a list with
multi-scale + flip (+ dense CRF) inference, writing label PNGs (authors' seamv1-pseudovoc).

Inference per image: the normalised image is resized (bicubic) to every test scale, run with
its horizontal flip, each pass's logits are upsampled (bilinear, align_corners=True) to the
image size and un-flipped; the reference averages the logits and takes the softmax
(``seg.average="logits"``), ``"probs"`` averages the passes' softmax instead. Optionally a dense
CRF refines the probabilities; the argmax is written as a VOC palette PNG. Outputs are tied to
the weights by ``manifest.json`` (sha256 and settings), so an interrupted run resumes and a
folder made with other weights or settings is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from seamlib.config import TEST_SETTINGS, Config, CRFConfig
from seamlib.data.lists import check_inputs
from seamlib.data.segmentation_data import RawImages
from seamlib.data.voc import MEAN, STD
from seamlib.densecrf import dense_crf
from seamlib.device import resolve_device
from seamlib.errors import InputError, MissingFile
from seamlib.formats import save_label_png, sha256_file
from seamlib.models.deeplab import DeepLabLargeFOV, build_deeplab
from seamlib.models.weights import load_weights
from seamlib.parallel import run_parallel
from seamlib.provenance import MANIFEST, claim, require_ours

AVERAGES = ("logits", "probs")
CRF_KERNELS = ("gaussian_", "bilateral_")  # CRFConfig fields the dense CRF's kernels read


def normalise_image(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 on ``device``, ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1).float() / 255
    mean = torch.tensor(MEAN, device=device)[:, None, None]
    std = torch.tensor(STD, device=device)[:, None, None]
    return (x - mean) / std


@torch.no_grad()
def multiscale_probs(net: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,),
                     flip: bool = True, average: str = "logits") -> torch.Tensor:
    """(C, H, W) class probabilities of a normalised image (3, H, W) from every scale and, with
    ``flip``, its mirror; ``average`` is "logits" (reference) or "probs"."""
    if average not in AVERAGES:
        raise InputError(f"seg.average must be one of {AVERAGES}, got {average!r}")
    size = image.shape[1:]
    total, passes = None, 0
    for scale in scales:
        scaled = image[None]
        if scale != 1:
            scaled_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            scaled = F.interpolate(scaled, scaled_size, mode="bicubic", align_corners=False)
        batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
        out = F.interpolate(net(batch), size, mode="bilinear", align_corners=True)
        if flip:
            out = torch.stack([out[0], out[1].flip(-1)])
        if average == "probs":
            out = out.softmax(1)
        out = out.sum(0)
        total = out if total is None else total + out
        passes += len(batch)
    mean = total / passes
    return mean.softmax(0) if average == "logits" else mean


def crf_settings(cfg: Config) -> CRFConfig | None:
    """The CRFConfig the segment stage applies (kernels of ``cfg.crf``, iterations from
    ``segment.crf_iterations``), or None when ``segment.crf`` is off."""
    if not cfg.segment.crf:
        return None
    return dataclasses.replace(cfg.crf, iterations=cfg.segment.crf_iterations)


def write_prediction(path: Path, image: np.ndarray, probs: np.ndarray,
                     crf: CRFConfig | None) -> None:
    """Refine ``probs`` (C, H, W) with the dense CRF when ``crf`` settings are given, then
    write the argmax as a palette PNG. A top-level function, so a process pool can run it."""
    if crf is not None:
        probs = dense_crf(image, probs, crf)
    save_label_png(path, probs.argmax(0).astype(np.uint8))


def inference_settings(cfg: Config) -> dict:
    """Everything besides the weights that changes the predicted PNGs."""
    settings = {k: getattr(cfg.segment, k) for k in TEST_SETTINGS}
    if cfg.segment.crf:
        settings["crf_kernels"] = {k: v for k, v in dataclasses.asdict(cfg.crf).items()
                                   if k.startswith(CRF_KERNELS)}
    return settings


def load_segmenter(cfg: Config, weights: str | Path, device: torch.device) -> DeepLabLargeFOV:
    """The trained segmentation network in eval mode on ``device`` (every tensor checked)."""
    net = build_deeplab(cfg.model, cfg.segment)
    print(load_weights(net, weights, kind="full"))
    return net.to(device).eval()


def predict(net: nn.Module, loader: Iterable, cfg: Config,
            device: torch.device) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, (H, W, 3) uint8 image, (C, H, W) float32 probabilities) for each loaded image."""
    for image_id, image in loader:
        image = np.asarray(image)
        probs = multiscale_probs(net, normalise_image(image, device), cfg.segment.test_scales,
                                 cfg.segment.test_flip, cfg.segment.average)
        yield image_id, image, probs.float().cpu().numpy()


def run_writes(jobs: Iterable[tuple], workers: int) -> None:
    """``write_prediction(*job)`` for every job; with ``workers`` > 1 in a process pool (the
    CPU-bound CRF), at most 2 x workers jobs in flight, while the network computes the next."""
    method = "spawn" if torch.cuda.is_initialized() else "fork"  # never fork CUDA state
    for _ in run_parallel(write_prediction, jobs, workers, context=method, star=True):
        pass


def segment_stage(cfg: Config, weights: str | Path, list_name: str, out_dir: str | Path,
                  progress: bool = True) -> Path:
    """Write ``<out_dir>/<id>.png`` (VOC palette label map at the image size) for every image of
    ``list_name``; images already written with the same weights and settings are skipped."""
    out = Path(out_dir)
    weights = Path(weights)
    if not weights.is_file():
        raise MissingFile(f"{weights}: segmentation weights not found; run train_seg first")
    check_inputs(cfg.data.root, [list_name], progress=progress)
    require_ours(out)
    made_by = {"weights_sha256": sha256_file(weights), "settings": inference_settings(cfg)}
    claim(out / MANIFEST, made_by, "predictions", write=False)
    crf = crf_settings(cfg)
    device = resolve_device(cfg.device)
    images = RawImages(cfg.data.root, list_name)
    todo = [i for i, iid in enumerate(images.ids) if not (out / f"{iid}.png").exists()]
    if not todo:
        return out
    net = load_segmenter(cfg, weights, device)  # weights that fail to load leave no folder
    out.mkdir(parents=True, exist_ok=True)
    claim(out / MANIFEST, made_by, "predictions")
    loader = DataLoader(Subset(images, todo), batch_size=None, num_workers=cfg.data.num_workers)
    jobs = ((out / f"{image_id}.png", image, probs, crf)
            for image_id, image, probs in predict(net, loader, cfg, device))
    run_writes(tqdm(jobs, total=len(todo), desc=f"segment {list_name} -> {out}",
                    disable=not progress), cfg.crf.workers if crf is not None else 0)
    return out
