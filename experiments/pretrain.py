"""The proxy's counterpart of ImageNet pretraining, through the one training loop.

Trains the narrow ResNet38 trunk (trainable BN) with a global-pool + linear classifier on the
proxy "ImageNet" (experiments/pretrain_set.py) with ``seamlib.trainer.fit`` (checkpoints,
exact resume, settings check), then writes the trunk alone in the released ImageNet key layout
(conv1a, b2 .. b7, bn7; fp16) so it loads through ``model.weights`` like the real file.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from experiments.pretrain_set import PRETRAIN_VERSION, class_designs, datasheet, make_split
from seamlib.config import Config, PretrainConfig, TrainConfig
from seamlib.data.voc import MEAN, STD
from seamlib.device import hardware, resolve_device
from seamlib.errors import InputError
from seamlib.formats import atomic_write, sha256_file
from seamlib.models.resnet38 import ResNet38
from seamlib.trainer import LOG, SUMMARY, fit

WARMUP = 0.02  # share of the steps with a linear learning-rate warm-up
PAD = 4  # random-crop padding, pixels
CHECKPOINT_EVERY = 100  # steps


class TrunkClassifier(nn.Module):
    """ResNet38 trunk + global average pool + linear classifier over the pretraining classes."""

    def __init__(self, width: float, num_classes: int, decay_norm: bool = True) -> None:
        super().__init__()
        self.trunk = ResNet38(width)
        self.head = nn.Linear(self.trunk.channels["conv6"], num_classes)
        self.decay_norm = decay_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x)["conv6"].mean((2, 3)))

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        """Conv and linear weights decay by ``weight_decay``; BN scales/shifts and biases (1-d
        tensors) too unless ``decay_norm`` is False. One learning rate for all."""
        params = list(self.parameters())
        if self.decay_norm:
            split = {"all": (params, weight_decay)}
        else:
            split = {"weights": ([p for p in params if p.ndim > 1], weight_decay),
                     "norm_and_bias": ([p for p in params if p.ndim <= 1], 0.0)}
        return [{"params": ps, "lr": lr, "lr_mult": 1.0, "weight_decay": wd, "name": name}
                for name, (ps, wd) in split.items()]


class PretrainImages(Dataset):
    """(augmented normalised image, label) of the in-memory pretraining set: a random crop
    with PAD-pixel replicate padding and a horizontal flip, from torch's RNG (which the
    trainer seeds per sample)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_tensor(self.images[index:index + 1])
        _, _, h, w = x.shape
        padded = F.pad(x, (PAD,) * 4, mode="replicate")[0]
        dx, dy = torch.randint(0, 2 * PAD + 1, (2,)).tolist()
        crop = padded[:, dy:dy + h, dx:dx + w]
        if torch.rand(()) < 0.5:
            crop = crop.flip(-1)
        return crop, torch.tensor(int(self.labels[index]))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) normalised with the ImageNet statistics, as the
    benchmark's loaders do."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def train_settings(pc: PretrainConfig) -> TrainConfig:
    """The trainer's settings for pretraining: SGD with momentum, cosine decay after a short
    warm-up, a checkpoint every CHECKPOINT_EVERY steps."""
    return TrainConfig(lr=pc.lr, weight_decay=pc.weight_decay, momentum=pc.momentum,
                       schedule="cosine", warmup=WARMUP, batch_size=pc.batch_size,
                       epochs=pc.epochs, seed=pc.seed, out_dir=pc.out_dir,
                       checkpoint_every=CHECKPOINT_EVERY)


def classification_loss(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Cross entropy over the pretraining classes."""
    images, labels = batch
    return {"loss": F.cross_entropy(net(images), labels)}


@torch.no_grad()
def top1(net: TrunkClassifier, images: np.ndarray, labels: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of ``net`` on whole (unaugmented) images."""
    net.eval()
    hits = sum(int((net(to_tensor(images[i:i + batch])).argmax(1).numpy()
                    == labels[i:i + batch]).sum()) for i in range(0, len(images), batch))
    net.train()
    return hits / max(1, len(images))


def trunk_state(net: TrunkClassifier) -> dict[str, torch.Tensor]:
    """The trunk's tensors under the released ImageNet names (no classifier), fp16."""
    return {k: v.detach().cpu().half().clone() for k, v in net.trunk.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def save_trunk(net: TrunkClassifier, path: Path) -> None:
    """Write the fp16 trunk atomically (through memory: torch.save names the archive after the
    file it writes, so the temporary file's name would leak into it)."""
    buffer = io.BytesIO()
    torch.save(trunk_state(net), buffer)
    atomic_write(path, lambda t: t.write_bytes(buffer.getvalue()))


def pretrain(cfg: Config, command: str = "", results: str | Path | None = None,
             progress: bool = True) -> Path:
    """Train the proxy trunk the config describes into ``cfg.pretrain.trunk``; write
    pretrain.json, its log and datasheet to ``results`` (default runs/PROFILE); return the
    trunk's path."""
    pc = cfg.pretrain
    if pc.trunk is None:
        raise InputError(f"profile {cfg.profile!r} has no pretraining stage (pretrain.trunk is "
                         "unset): it starts from released ImageNet weights (model.weights)")
    trunk_path, report = Path(pc.trunk), Path(results or Path("runs") / cfg.profile)
    if pc.threads:
        torch.set_num_threads(pc.threads)
    workers = os.cpu_count() or 2  # the arrays do not depend on it
    train_x, train_y, shares = make_split(pc, "train", workers, progress)
    held_x, held_y, _ = make_split(pc, "heldout", workers, progress)
    n_classes = len(class_designs(pc))
    torch.manual_seed(pc.seed)  # the network's initialisation
    net = TrunkClassifier(cfg.model.width, n_classes, pc.decay_norm)
    settings = {"pretrain_version": PRETRAIN_VERSION, "width": cfg.model.width,
                "pretrain": {k: v for k, v in dataclasses.asdict(pc).items()
                             if k not in ("out_dir", "trunk", "trunk_sha256", "threads")}}
    model = fit(net, classification_loss, PretrainImages(train_x, train_y), train_settings(pc),
                pc.out_dir, device=resolve_device(cfg.device), settings=settings,
                progress=progress,
                save=save_trunk)
    atomic_write(trunk_path, lambda t: shutil.copyfile(model, t))
    state = torch.load(trunk_path, weights_only=True)
    net.trunk.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    accuracy = top1(net, held_x, held_y)  # of the fp16 trunk as written
    run = Path(pc.out_dir)
    trained = json.loads((run / SUMMARY).read_text())
    atomic_write(report / "pretrain_log.jsonl", lambda t: shutil.copyfile(run / LOG, t))
    summary = {
        "command": command, "trunk": str(trunk_path), "sha256": sha256_file(trunk_path),
        "bytes": trunk_path.stat().st_size, "heldout_top1": round(accuracy, 4),
        "classes": n_classes, "train_images": len(train_x), "heldout_images": len(held_x),
        "mean_object_share": round(float(shares.mean()), 4), "steps": trained["steps"],
        "wall_minutes": round(trained["seconds"] / 60, 2), "settings": settings,
        "hardware": hardware(), "log": str(report / "pretrain_log.jsonl"),
    }
    atomic_write(report / "pretrain.json", lambda t: t.write_text(json.dumps(summary, indent=1)))
    sheet = datasheet(pc, train_y, shares) + (
        f"\n## Pretraining result\n\nHeld-out top-1 of the fp16 trunk: {accuracy:.4f} "
        f"({len(held_x)} images) after {trained['steps']} steps, "
        f"{trained['seconds'] / 60:.1f} min (`{command}`; pretrain.json).\n")
    atomic_write(report / "pretrain_datasheet.md", lambda t: t.write_text(sheet))
    return trunk_path
