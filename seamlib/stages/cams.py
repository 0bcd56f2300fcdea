"""Stage cams: multi-scale, flip-augmented CAM inference (authors' infer_SEAM).

For each image: the network runs at every scale and its flip; each pass's foreground map
(PCM output by default) is upsampled to the image size, masked by the image's labels,
un-flipped and summed; negatives are clamped and each class is min-max normalised. Output per
image: ``<out>/<id>.npz`` with ``classes`` (1-based, present classes only) and ``cams``, plus
``<out>/manifest.json`` naming the network and settings that made them and the time it took.

Speed: passes of equal size (a flip pair, the same scale of equal-size images) run as one
batch, and only the present classes are summed and normalised. On CPU, oneDNN convolutions
and the upsampling round differently for another batch size: the normalised CAMs differ from
one pass at a time by at most a few 1e-6 (``max_pixels=0`` gives the one-pass numbers).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from seamlib.cam_ops import normalise_maps
from seamlib.config import Config
from seamlib.data.datasets import MultiScaleDataset, collate_list
from seamlib.device import resolve_device
from seamlib.errors import MissingFile
from seamlib.formats import save_cam, sha256_file, write_json
from seamlib.provenance import MANIFEST, claim, require_ours

MAX_PIXELS = 2 * 1000 * 750  # pixels per forward: a flip pair of VOC's largest pass (scale 2)


def normalise_cam(cam: torch.Tensor) -> torch.Tensor:
    """Clamp at 0 and min-max normalise each class map; values within EPS of the min -> 0."""
    return normalise_maps(cam, lift_low=True)


def _chunks(items: list, pixels: int, max_pixels: int) -> Iterator[list]:
    """Split ``items`` (each ``pixels`` large) into runs of at most ``max_pixels`` (>= 1 item)."""
    step = max(1, max_pixels // pixels)
    for start in range(0, len(items), step):
        yield items[start:start + step]


@torch.no_grad()
def multiscale_cams(net: torch.nn.Module, samples: Sequence[dict[str, Any]],
                    use_pcm: bool = True, device: torch.device | None = None,
                    max_pixels: int = MAX_PIXELS) -> list[torch.Tensor]:
    """(20, H, W) normalised foreground CAM of each ``MultiScaleDataset`` sample.

    Every pass of equal size, across ``samples``, runs in one batch of at most ``max_pixels``;
    the maps are summed per sample in the order [s0, s0 flipped, s1, ...], as one at a time.
    ``max_pixels=0`` runs one pass at a time.
    """
    device = device or torch.device("cpu")
    cuda = device.type == "cuda"
    present = [torch.nonzero(s["label"]).flatten() for s in samples]
    groups: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
    for k, sample in enumerate(samples):
        if len(present[k]):  # an image without labels gets an all-zero CAM, no passes
            for i, image in enumerate(sample["images"]):
                groups[tuple(image.shape)].append((k, i))
    maps: dict[tuple[int, int], torch.Tensor] = {}
    for shape, keys in groups.items():
        for chunk in _chunks(keys, shape[1] * shape[2], max_pixels):
            batch = torch.stack([samples[k]["images"][i] for k, i in chunk])
            batch = batch.pin_memory().to(device, non_blocking=True) if cuda else batch
            out = net(batch, with_pcm=use_pcm)
            cam = (out.cam_rv if use_pcm else out.cam).float()
            for j, (k, i) in enumerate(chunk):
                # all 20 channels: the upsampling kernel rounds differently for fewer
                fg = F.interpolate(cam[j:j + 1, 1:], samples[k]["size"], mode="bilinear",
                                   align_corners=False)[0, present[k].to(cam.device)].cpu()
                fg = fg * samples[k]["label"][present[k], None, None]
                maps[k, i] = fg.flip(-1) if i % 2 else fg
    cams = []
    for k, sample in enumerate(samples):
        cam = torch.zeros(len(sample["label"]), *sample["size"])
        if len(present[k]):
            total = torch.zeros(len(present[k]), *sample["size"])
            for i in range(len(sample["images"])):
                total += maps.pop((k, i))
            cam[present[k]] = normalise_cam(total)
        cams.append(cam)
    return cams


def multiscale_cam(net: torch.nn.Module, images: list[torch.Tensor], label: torch.Tensor,
                   size: tuple[int, int], use_pcm: bool = True) -> torch.Tensor:
    """(20, H, W) normalised foreground CAM of one image from passes [s0, s0 flipped, s1, ...]."""
    sample = {"images": images, "label": label, "size": size}
    return multiscale_cams(net, [sample], use_pcm)[0]


def model_digest(net: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer's bytes: equal iff the network computes the same."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cam_manifest(net: torch.nn.Module, use_pcm: bool, scales: Sequence[float] | None,
                 weights: str | Path | None = None) -> dict[str, Any]:
    """What a CAM folder's maps depend on: the network's state, PCM or raw CAM, the scales;
    with the weights file (path, sha256) they came from when it is known; and the ``method`` of
    a network that names one (a wrapped network's other map: only then, so CAM folders' manifests
    stay as they were)."""
    manifest = {"model_sha256": model_digest(net), "use_pcm": use_pcm,
                "scales": None if scales is None else [float(s) for s in scales],
                "weights": None if weights is None else str(weights),
                "weights_sha256": None if weights is None else sha256_file(weights)}
    method = getattr(net, "method", "cam")
    return manifest if method == "cam" else {**manifest, "method": method}


# Recorded in the manifest, not compared: the same network may come from another file.
RECORDED = ("weights", "weights_sha256", "seconds")


def claim_folder(out: Path, manifest: dict[str, Any]) -> None:
    """Tie ``out`` to ``manifest``: a folder made by another network or settings, or one seam
    did not make, is an error."""
    require_ours(out)
    claim(out / MANIFEST, manifest, "CAMs", ignore=RECORDED)


def infer_cams(net: torch.nn.Module, dataset: Dataset, out_dir: str | Path,
               use_pcm: bool = True, progress: bool = True, *, weights: str | Path | None = None,
               device: str | torch.device = "auto", images_per_batch: int = 4,
               max_pixels: int = MAX_PIXELS, num_workers: int = 0) -> Path:
    """Write the CAM of every image of ``dataset`` (a ``MultiScaleDataset``) to ``out_dir``.

    Images already done by the same network and settings are skipped, so an interrupted run
    resumes; a folder made by another network or with other settings is an error.
    ``weights`` (the file ``net`` was loaded from) is recorded in the manifest. ``net`` is
    moved to ``device`` and set to eval mode.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device) if isinstance(device, str) else device
    net.to(device).eval()
    claim_folder(out, cam_manifest(net, use_pcm, getattr(dataset, "scales", None), weights))
    todo = [i for i, iid in enumerate(dataset.ids) if not (out / f"{iid}.npz").exists()]
    loader = DataLoader(Subset(dataset, todo), batch_size=images_per_batch,
                        collate_fn=collate_list, num_workers=num_workers)
    start = time.perf_counter()
    with tqdm(total=len(todo), desc=f"cams -> {out}", disable=not progress) as bar:
        for samples in loader:
            cams = multiscale_cams(net, samples, use_pcm, device, max_pixels)
            for sample, cam in zip(samples, cams, strict=True):
                save_cam(out / f"{sample['id']}.npz", cam, sample["label"])
            bar.update(len(samples))
    if todo:
        add_seconds(out, time.perf_counter() - start)
    return out


def add_seconds(out: Path, seconds: float) -> None:
    """Add ``seconds`` of inference to the folder's manifest (summed over resumed runs), so a
    report that reuses the CAMs still states what making them cost."""
    path = out / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["seconds"] = round(manifest.get("seconds", 0.0) + seconds, 1)
    write_json(path, manifest)


def cams_stage(cfg: Config, weights: str | Path | None = None, list_name: str | None = None,
               out_dir: str | Path | None = None, use_pcm: bool = True, progress: bool = True,
               wrap: Callable[[nn.Module], nn.Module] | None = None) -> Path:
    """Stage cams for the CLI and notebooks: load trained SEAM weights (default
    ``<train_cam.out_dir>/model.pth``) and write the CAMs of a list (default ``data.cam_list``),
    PCM output or raw fc8 CAM, to ``out_dir`` (default ``<train_cam.out_dir>/cams[_raw]_<list>``).
    The image labels that mask the CAMs come from ``data.label_source``. ``wrap`` replaces the
    loaded network by one whose CAM is another map of it (a Grad-CAM of the study)."""
    from seamlib.data.lists import check_inputs, labels_for
    from seamlib.models import build_model
    from seamlib.models.weights import load_weights

    list_name = list_name or cfg.data.cam_list
    run = Path(cfg.train_cam.out_dir)
    weights = Path(weights) if weights else run / "model.pth"
    out = Path(out_dir) if out_dir else run / f"cams{'' if use_pcm else '_raw'}_{list_name}"
    if not weights.is_file():
        raise MissingFile(f"{weights}: no trained weights; run `seam train_cam` first or "
                                f"pass the SEAM checkpoint to use")
    source = cfg.data.label_source
    check_inputs(cfg.data.root, [list_name], need_masks=source == "mask",
                 need_xml=source == "xml", progress=progress)
    net = build_model(cfg.model)
    load_weights(net, weights, kind="seam")
    net = net if wrap is None else wrap(net)
    labels = labels_for(cfg.data.root, list_name, cfg.data.label_source)
    dataset = MultiScaleDataset(cfg.data.root, list_name, labels, cfg.cams.scales)
    return infer_cams(net, dataset, out, use_pcm=use_pcm, progress=progress, weights=weights,
                      device=cfg.device, num_workers=cfg.data.num_workers)


def run_cams(run: Config, weights: str | Path, use_pcm: bool, suffix: str = "",
             progress: bool = True) -> dict[str, Path]:
    """Multi-scale CAMs of the cam and val lists from ``weights``; {list: folder}."""
    out = Path(run.train_cam.out_dir)
    return {name: cams_stage(run, weights, name, out / f"cams_{name}{suffix}", use_pcm=use_pcm,
                             progress=progress)
            for name in (run.data.cam_list, run.data.val_list)}
