"""One training loop for every trainable stage (SEAM, AffinityNet, segmentation).

Poly-lr SGD over the network's parameter groups; checkpoints let an interrupted run resume
where it stopped. Output: ``<out_dir>/model.pth``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from seamlib.config import TrainConfig
from seamlib.io import atomic_write

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
CONFIG = "config.json"
LOG = "log.jsonl"
UNCHECKED = {"out_dir", "num_workers"}  # setting names that do not change the result

LossFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
SaveFn = Callable[[nn.Module, Path], object]


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (all randomness of training and augmentation comes from it); return a
    generator for the DataLoader's shuffling and worker seeds."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def poly_factor(step: int, max_step: int, power: float) -> float:
    """Poly learning-rate decay (1 - step / max_step) ** power."""
    return (1 - step / max_step) ** power


def build_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.SGD:
    """SGD over the network's parameter groups (momentum: see TrainConfig.momentum)."""
    groups = net.parameter_groups(train.lr, train.weight_decay)
    return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor of a (nested) batch to ``device``; other items stay as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def save_state_dict(net: nn.Module, path: Path) -> None:
    """Default export: the network's state dict on the CPU, written atomically."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def save_checkpoint(path: Path, net: nn.Module, opt: torch.optim.Optimizer, step: int,
                    seconds: float) -> None:
    """Write model + optimiser state atomically, so a crash never leaves a broken checkpoint."""
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "seconds": seconds, "rng": torch.get_rng_state()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def resume(path: Path, net: nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Load a checkpoint if one exists; return (step to continue from, seconds trained)."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])  # dropout and augmentation continue as if never stopped
    print(f"resuming {path} at step {state['step']}")
    return int(state["step"]), float(state["seconds"])


def check_run_config(out: Path, settings: dict[str, Any]) -> None:
    """Record the run's settings in ``out``; refuse to resume or reuse a run made with others.

    ``settings`` is ``{stage: {name: value}}``; names in ``UNCHECKED`` are not compared."""
    current = json.loads(json.dumps(settings))  # tuples as lists, like the file
    path = out / CONFIG
    if not path.exists():
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(current, indent=1)))
        return
    saved = json.loads(path.read_text())
    changed = [f"{stage}.{key}" for stage, values in current.items() if isinstance(values, dict)
               for key, value in values.items()
               if key not in UNCHECKED and saved.get(stage, {}).get(key) != value]
    if changed:
        raise ValueError(f"{out} holds a run made with other settings ({', '.join(changed)}; "
                         f"see {path}); set another out_dir or delete that folder")


def fit(net: nn.Module, loss_fn: LossFn, dataset: Dataset, train: TrainConfig,
        out_dir: str | Path, *, device: torch.device | str, num_workers: int = 0,
        settings: dict[str, Any] | None = None, progress: bool = True,
        save: SaveFn = save_state_dict) -> Path:
    """Train ``net`` on ``dataset`` with ``loss_fn(net, batch) -> {"loss": ..., terms...}``;
    return ``<out_dir>/model.pth`` (written by ``save``). An existing model.pth is returned as
    it is; an existing checkpoint is resumed. ``settings`` ({stage: {name: value}}) are
    recorded in ``<out_dir>/config.json`` and must match on a resume."""
    device = torch.device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if settings is not None:
        check_run_config(out, settings)
    if (out / MODEL).exists():
        return out / MODEL
    generator = seed_everything(train.seed)
    loader = DataLoader(dataset, batch_size=train.batch_size, shuffle=True, drop_last=True,
                        num_workers=num_workers, generator=generator,
                        pin_memory=device.type == "cuda")
    net.to(device)
    opt = build_optimizer(net, train)
    max_step = train.epochs * len(loader)
    step, seconds = resume(out / CHECKPOINT, net, opt)
    log = (out / LOG).open("a")
    net.train()
    bar = tqdm(total=max_step, initial=step, desc=f"train {out.name}", disable=not progress)
    start = time.time() - seconds  # training time so far, across resumes
    for epoch in range(step // len(loader), train.epochs):
        generator.manual_seed(train.seed * 1000 + epoch)  # same order after a resume
        for batch in loader:
            for group in opt.param_groups:
                group["lr"] = train.lr * group["lr_mult"] * poly_factor(
                    step, max_step, train.poly_power)
            terms = loss_fn(net, to_device(batch, device))
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{terms['loss'].item():.3f}")
            if step % 20 == 0 or step == max_step:
                row = {k: round(v.item(), 5) for k, v in terms.items()}
                log.write(json.dumps({"step": step, "epoch": epoch, **row,
                                      "time": round(time.time() - start, 1)}) + "\n")
                log.flush()
        save_checkpoint(out / CHECKPOINT, net, opt, step, time.time() - start)
    bar.close()
    log.close()
    summary = {"steps": step, "seconds": round(time.time() - start, 1), "images": len(dataset)}
    atomic_write(out / "summary.json", lambda t: t.write_text(json.dumps(summary)))
    save(net, out / MODEL)
    return out / MODEL
