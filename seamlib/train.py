"""Stage train: SEAM (or, with ER/ECR off, the plain CAM baseline) on image-level labels.

Poly-lr SGD over the four reference parameter groups; a checkpoint after every epoch lets an
interrupted run resume where it stopped. Output: ``<out_dir>/model.pth`` (released key names).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from seamlib.config import Config
from seamlib.data.datasets import ClassificationDataset
from seamlib.data.lists import labels_for
from seamlib.io import atomic_write
from seamlib.losses import seam_loss
from seamlib.models import SEAMNet, build_model
from seamlib.models.weights import load_weights, require_weights, save_released
from seamlib.transforms import parse_transform

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
CONFIG = "config.json"
UNCHECKED = {"train.out_dir", "data.num_workers"}  # settings that do not change the result


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (all randomness of training and augmentation comes from it); return a
    generator for the DataLoader's shuffling and worker seeds."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def poly_factor(step: int, max_step: int, power: float) -> float:
    """Poly learning-rate decay (1 - step / max_step) ** power."""
    return (1 - step / max_step) ** power


def build_optimizer(net: SEAMNet, cfg: Config) -> torch.optim.SGD:
    """SGD over the reference parameter groups (momentum: see TrainConfig.momentum)."""
    groups = net.parameter_groups(cfg.train.lr, cfg.train.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum)


def save_checkpoint(path: Path, net: SEAMNet, opt: torch.optim.Optimizer, step: int,
                    seconds: float) -> None:
    """Write model + optimiser state atomically, so a crash never leaves a broken checkpoint."""
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
             "seconds": seconds, "rng": torch.get_rng_state()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def check_run_config(out: Path, cfg: Config) -> None:
    """Record the run's settings in ``out``; refuse to resume or reuse a run made with others."""
    current = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, like the file
    path = out / CONFIG
    if not path.exists():
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(current, indent=1)))
        return
    saved = json.loads(path.read_text())
    changed = [f"{stage}.{key}" for stage, values in current.items() if isinstance(values, dict)
               for key, value in values.items()
               if f"{stage}.{key}" not in UNCHECKED and saved.get(stage, {}).get(key) != value]
    if changed:
        raise ValueError(f"{out} holds a run made with other settings ({', '.join(changed)}; "
                         f"see {path}); set another train.out_dir or delete that folder")


def train(cfg: Config, out_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Train the SEAM network the config describes; return the path of the trained weights."""
    require_weights(cfg.model)
    out = Path(out_dir or cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(out, cfg)
    if (out / MODEL).exists():
        return out / MODEL
    generator = seed_everything(cfg.train.seed)
    labels = labels_for(cfg.data.root, cfg.data.train_list, cfg.data.label_source)
    dataset = ClassificationDataset.from_config(cfg.data, labels)
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, drop_last=True,
                        num_workers=cfg.data.num_workers, generator=generator)
    net = build_model(cfg.model)
    if cfg.model.weights:
        print(load_weights(net, cfg.model.weights))
    opt = build_optimizer(net, cfg)
    transform = parse_transform(cfg.loss.transform)
    max_step = cfg.train.epochs * len(loader)
    step, seconds = resume(out / CHECKPOINT, net, opt)
    log = (out / "log.jsonl").open("a")
    net.train()
    bar = tqdm(total=max_step, initial=step, desc=f"train {cfg.profile}", disable=not progress)
    start = time.time() - seconds  # training time so far, across resumes
    for epoch in range(step // len(loader), cfg.train.epochs):
        generator.manual_seed(cfg.train.seed * 1000 + epoch)  # same order after a resume
        for images, targets, _ in loader:
            for group in opt.param_groups:
                group["lr"] = cfg.train.lr * group["lr_mult"] * poly_factor(
                    step, max_step, cfg.train.poly_power)
            terms = seam_loss(net, images, targets, transform, cfg.loss)
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
    save_released(net, out / MODEL)
    return out / MODEL


def resume(path: Path, net: SEAMNet, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Load a checkpoint if one exists; return (step to continue from, seconds trained)."""
    if not path.exists():
        return 0, 0.0
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])  # dropout and augmentation continue as if never stopped
    print(f"resuming {path} at step {state['step']}")
    return int(state["step"]), float(state["seconds"])
