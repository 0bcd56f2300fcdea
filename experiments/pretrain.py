"""Stage pretrain: the proxy's counterpart of ImageNet pretraining.

Trains the narrow ResNet38 trunk (trainable BN) with a global-pool + linear classifier on the
proxy "ImageNet" (data/pretrain_set.py), then writes the trunk alone in the released ImageNet
key layout (conv1a, b2 .. b7, bn7; fp16) so it loads through ``model.weights`` like the real
file. Checkpoints every few steps make an interrupted run resume where it stopped.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from experiments.pretrain_set import PRETRAIN_VERSION, class_designs, datasheet, make_split
from seamlib.config import Config, PretrainConfig
from seamlib.data.voc import MEAN, STD
from seamlib.device import hardware
from seamlib.io import atomic_write, sha256_file
from seamlib.models.resnet38 import ResNet38
from seamlib.runs import require_same

CHECKPOINT = "checkpoint.pth"
LOG = "log.jsonl"
WARMUP = 0.02  # share of the steps with a linear learning-rate warm-up
PAD = 4  # random-crop padding, pixels
CHECKPOINT_EVERY = 100  # steps


class TrunkClassifier(nn.Module):
    """ResNet38 trunk + global average pool + linear classifier over the pretraining classes."""

    def __init__(self, width: float, num_classes: int) -> None:
        super().__init__()
        self.trunk = ResNet38(width)
        self.head = nn.Linear(self.trunk.channels["conv6"], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)["conv6"].mean((2, 3)))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) normalised with the ImageNet statistics, as the
    benchmark's loaders do."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop (PAD-pixel replicate padding) and horizontal flip of each image."""
    n, _, h, w = x.shape
    padded = F.pad(x, (PAD,) * 4, mode="replicate")
    dx, dy = (torch.randint(0, 2 * PAD + 1, (2, n), generator=gen)).tolist()
    flips = torch.rand(n, generator=gen) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    out[flips] = out[flips].flip(3)
    return out


def lr_at(step: int, max_step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up over WARMUP of the steps, then cosine decay to zero."""
    warm = max(1, round(WARMUP * max_step))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, max_step - warm)))


@torch.no_grad()
def top1(net: TrunkClassifier, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of ``net`` on whole (unaugmented) images."""
    net.eval()
    hits = sum(int((net(to_tensor(images[i:i + batch])).argmax(1).numpy()
                    == labels[i:i + batch]).sum()) for i in range(0, len(images), batch))
    net.train()
    return hits / max(1, len(images))


def parameter_groups(net: nn.Module, pc: PretrainConfig) -> list[dict]:
    """Conv and linear weights decay by ``pc.weight_decay``; BN scales/shifts and biases (1-d
    tensors) too unless ``pc.decay_norm`` is False."""
    params = list(net.parameters())
    if pc.decay_norm:
        return [{"params": params, "weight_decay": pc.weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": pc.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def trunk_state(net: TrunkClassifier) -> dict[str, torch.Tensor]:
    """The trunk's tensors under the released ImageNet names (no classifier), fp16."""
    return {k: v.detach().cpu().half().clone() for k, v in net.trunk.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def pretrain(cfg: Config, command: str = "", results: str | Path | None = None,
             progress: bool = True) -> Path:
    """Train the proxy trunk the config describes into ``cfg.pretrain.trunk``; write
    pretrain.json, its log and datasheet to ``results`` (default runs/PROFILE); return the
    trunk's path."""
    pc = cfg.pretrain
    if pc.trunk is None:
        raise ValueError(f"profile {cfg.profile!r} has no pretraining stage (pretrain.trunk is "
                         "unset): it starts from released ImageNet weights (model.weights)")
    out, trunk_path = Path(pc.out_dir), Path(pc.trunk)
    report = Path(results or Path("runs") / cfg.profile)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"pretrain_version": PRETRAIN_VERSION, "width": cfg.model.width,
                **{k: v for k, v in dataclasses.asdict(pc).items()
                   if k not in ("out_dir", "trunk", "trunk_sha256", "threads")}}
    if pc.threads:
        torch.set_num_threads(pc.threads)
    train_x, train_y, shares = make_split(pc, "train", progress=progress)
    held_x, held_y, _ = make_split(pc, "heldout", progress=progress)
    n_classes = len(class_designs(pc))
    torch.manual_seed(pc.seed)
    net = TrunkClassifier(cfg.model.width, n_classes)
    opt = torch.optim.SGD(parameter_groups(net, pc), lr=pc.lr, momentum=pc.momentum)
    steps_per_epoch = len(train_x) // pc.batch_size
    max_step = pc.epochs * steps_per_epoch
    step, seconds = resume(out / CHECKPOINT, net, opt, settings)
    start = time.time() - seconds
    bar = tqdm(total=max_step, initial=step, desc="pretrain", disable=not progress)
    with (out / LOG).open("a") as log:
        while step < max_step:
            epoch, within = divmod(step, steps_per_epoch)
            order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(
                pc.seed * 1000 + epoch))
            idx = order[within * pc.batch_size:(within + 1) * pc.batch_size].numpy()
            gen = torch.Generator().manual_seed(pc.seed * 10**6 + step)
            x, y = augment(to_tensor(train_x[idx]), gen), torch.from_numpy(train_y[idx])
            for group in opt.param_groups:
                group["lr"] = lr_at(step, max_step, pc)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
            row = {"step": step, "epoch": epoch}
            if step % 20 == 0:
                row |= {"loss": round(loss.item(), 4), "lr": round(opt.param_groups[0]["lr"], 5),
                        "batch_acc": round(float((logits.argmax(1) == y).float().mean()), 4)}
            if step % steps_per_epoch == 0:
                row["heldout_top1"] = round(top1(net, held_x, held_y), 4)
                bar.write(f"epoch {epoch + 1}: held-out top-1 {row['heldout_top1']:.4f}")
            if len(row) > 2:
                log.write(json.dumps(row | {"time": round(time.time() - start, 1)}) + "\n")
                log.flush()
            if step % CHECKPOINT_EVERY == 0 or step == max_step:
                save_checkpoint(out / CHECKPOINT, net, opt, step, time.time() - start, settings)
    bar.close()
    seconds = time.time() - start
    state = trunk_state(net)
    buffer = io.BytesIO()  # not the temp file: torch.save names the archive after the file
    torch.save(state, buffer)
    atomic_write(trunk_path, lambda t: t.write_bytes(buffer.getvalue()))
    net.trunk.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    accuracy = top1(net, held_x, held_y)  # of the fp16 trunk as written
    atomic_write(report / "pretrain_log.jsonl",
                 lambda t: shutil.copyfile(out / LOG, t))
    summary = {
        "command": command or " ".join(["seam", *sys.argv[1:]]), "trunk": str(trunk_path),
        "sha256": sha256_file(trunk_path), "bytes": trunk_path.stat().st_size,
        "heldout_top1": round(accuracy, 4), "classes": n_classes, "train_images": len(train_x),
        "heldout_images": len(held_x), "mean_object_share": round(float(shares.mean()), 4),
        "steps": max_step, "wall_minutes": round(seconds / 60, 2), "settings": settings,
        "hardware": hardware(), "log": str(report / "pretrain_log.jsonl"),
    }
    atomic_write(report / "pretrain.json",
                 lambda t: t.write_text(json.dumps(summary, indent=1)))
    sheet = datasheet(pc, train_y, shares) + (
        f"\n## Pretraining result\n\nHeld-out top-1 of the fp16 trunk: {accuracy:.4f} "
        f"({len(held_x)} images) after {max_step} steps, {seconds / 60:.1f} min "
        f"(`{summary['command']}`; pretrain.json).\n")
    atomic_write(report / "pretrain_datasheet.md", lambda t: t.write_text(sheet))
    return trunk_path


def save_checkpoint(path: Path, net: nn.Module, opt: torch.optim.Optimizer, step: int,
                    seconds: float, settings: dict) -> None:
    """Model, optimiser, step, time and RNG state, written atomically."""
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "seconds": seconds, "rng": torch.get_rng_state(), "settings": json.dumps(settings)}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def resume(path: Path, net: nn.Module, opt: torch.optim.Optimizer,
           settings: dict) -> tuple[int, float]:
    """Continue from a checkpoint made with the same settings; return (step, seconds)."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    require_same(json.loads(state["settings"]), settings, path, "a pretraining checkpoint")
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    print(f"resuming {path} at step {state['step']}")
    return int(state["step"]), float(state["seconds"])
