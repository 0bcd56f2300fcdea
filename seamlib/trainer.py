"""One training loop for every trainable stage (SEAM, AffinityNet, segmentation).

Poly-lr SGD over the network's parameter groups, atomic checkpoints every N steps and exact
resume mid-epoch, tqdm and a JSONL log, a stop on a non-finite loss, mixed precision,
channels_last, and DDP when launched by ``torchrun``. Output: ``<out_dir>/model.pth``.

Reproducibility: the data order of an epoch depends only on (seed, epoch) and each sample's
augmentation only on (seed, epoch, index) (``EpochBatches``, ``SeededSamples``), so batches
do not depend on ``num_workers``, on the number of processes, or on where a run was resumed.
Training randomness (dropout) comes from torch's global RNG, seeded with the trainer's ``seed`` plus
the process's rank and saved in every checkpoint (one state per process).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from seamlib.config import TrainConfig
from seamlib.device import hardware, keep_freed_memory
from seamlib.errors import InputError
from seamlib.formats import atomic_write
from seamlib.provenance import claim

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
CONFIG = "config.json"
LOG = "log.jsonl"
SUMMARY = "summary.json"
AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}

LossFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]
SaveFn = Callable[[nn.Module, Path], object]


def poly_factor(step: int, max_step: int, power: float) -> float:
    """Poly learning-rate decay (1 - step / max_step) ** power."""
    return (1 - step / max_step) ** power


def lr_factor(step: int, max_step: int, train: TrainConfig) -> float:
    """The learning rate's factor at ``step``: poly decay (``train.schedule`` "poly"), or a
    linear warm-up over ``train.warmup`` of the steps then cosine decay to zero ("cosine")."""
    if train.schedule == "poly":
        return poly_factor(step, max_step, train.poly_power)
    if train.schedule != "cosine":
        raise InputError(f"train.schedule: expected poly or cosine; got {train.schedule!r}")
    warm = max(1, round(train.warmup * max_step))
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, max_step - warm)))


def build_optimizer(net: nn.Module, train: TrainConfig) -> torch.optim.SGD:
    """SGD over the network's parameter groups (momentum: see TrainConfig.momentum)."""
    groups = net.parameter_groups(train.lr, train.weight_decay)
    return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)


def derived_seed(*keys: int) -> int:
    """A well-mixed 32-bit seed from non-negative integer keys (e.g. seed, epoch, index)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch, numpy and python RNGs seeded by ``seed``, then restore them."""
    py, npy = random.getstate(), np.random.get_state()  # noqa: NPY002 (the global RNGs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)  # noqa: NPY002


class SeededSamples(Dataset):
    """``dataset[index]`` for keys (epoch, index), its random augmentation drawn from
    (seed, epoch, index) alone: the same sample whichever process loads it, and when."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with seeded(derived_seed(self.seed, epoch, index + 1)):
            return self.dataset[index]


class EpochBatches(Sampler):
    """This process's share of each global batch of one epoch, from batch ``start`` on.

    The epoch's order is a permutation drawn from (seed, epoch); it is cut into global
    batches of ``batch_size`` (an incomplete last one is dropped), and process ``rank`` of
    ``world`` takes the rank-th slice of ``batch_size / world`` keys (epoch, index) of each."""

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0,
                 world: int = 1) -> None:
        if batch_size % world:
            raise InputError(f"train.batch_size {batch_size} is not divisible by the {world} "
                             f"processes (WORLD_SIZE); the global batch is split evenly")
        if size < batch_size:
            raise InputError(f"the dataset has {size} samples, fewer than one batch "
                             f"(train.batch_size {batch_size})")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.share, self.rank = batch_size // world, rank
        self.steps = size // batch_size  # optimiser steps per epoch
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its batch ``start`` (mid-epoch resume)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch, 0))
        order = torch.randperm(self.size, generator=generator).tolist()
        for b in range(self.start, self.steps):
            first = b * self.batch_size + self.rank * self.share
            yield [(self.epoch, i) for i in order[first:first + self.share]]


class DDP(DistributedDataParallel):
    """DDP that reads through to the wrapped network's attributes (e.g. AffinityNet's
    ``radius``), so a loss function works on either; computation must still go through
    ``net(...)`` for the gradients to be averaged."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a (nested) batch to ``device`` (4-D ones channels_last if set);
    other items stay as they are."""
    if isinstance(batch, torch.Tensor):
        fmt = torch.channels_last if channels_last and batch.dim() == 4 else torch.preserve_format
        return batch.to(device, non_blocking=device.type == "cuda", memory_format=fmt)
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp``: "auto" and "off" train in fp32 on every device
    (a replication changes no numerics by default), "bf16" or "fp16" opt in."""
    if amp == "auto":
        return None
    if amp not in AMP:
        raise InputError(f"train.amp: expected auto, {', '.join(AMP)}; got {amp!r}")
    return AMP[amp]


def use_channels_last(setting: str, device: torch.device) -> bool:
    """Whether ``train.channels_last`` is on: only when set "on" ("auto" and "off": the default
    memory format on every device)."""
    if setting not in ("auto", "on", "off"):
        raise InputError(f"train.channels_last: expected auto, on or off; got {setting!r}")
    return setting == "on"


def init_distributed(device: torch.device) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, this process's device, whether it started the process group) from
    torchrun's environment; a single process when WORLD_SIZE is unset or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device, False
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device, started


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's training RNG state (CPU, and CUDA when training there)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def save_state_dict(net: nn.Module, path: Path) -> None:
    """Default export: the network's state dict on the CPU, written atomically."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write a checkpoint atomically, so a crash never leaves a broken one."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


class Run:
    """The state of one ``fit`` call: network, optimiser, schedule, files and processes."""

    def __init__(self, net: nn.Module, train: TrainConfig, out: Path, size: int, rank: int,
                 world: int, device: torch.device) -> None:
        self.rank, self.world, self.device = rank, world, device
        self.train, self.out, self.main = train, out, self.rank == 0
        if train.log_every < 1 or train.checkpoint_every < 0:
            raise InputError(f"train.log_every must be >= 1 and train.checkpoint_every >= 0 "
                             f"(0: at each epoch's end); got {train.log_every}, "
                             f"{train.checkpoint_every}")
        self.sampler = EpochBatches(size, train.batch_size, train.seed, self.rank, self.world)
        self.max_step = train.epochs * self.sampler.steps
        lr_factor(0, self.max_step, train)  # an unknown schedule fails before any step
        self.dtype = autocast_dtype(train.amp, self.device)
        self.channels_last = use_channels_last(train.channels_last, self.device)
        self.net = net.to(self.device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.opt = build_optimizer(net, train)  # before DDP wraps it: parameter_groups
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.dtype == torch.float16)
        self.model = net if self.world == 1 else DDP(
            net, device_ids=[self.device] if self.device.type == "cuda" else None,
            find_unused_parameters=True)
        self.step, self.seconds, self.saved_step = 0, 0.0, None

    def set_lr(self) -> float:
        """The scheduled learning rate of the current step on every group; return the base."""
        lr = self.train.lr * lr_factor(self.step, self.max_step, self.train)
        for group in self.opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        return lr

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def checkpoint(self) -> None:
        """Save model, optimiser, scaler, step and every process's RNG (rank 0 writes)."""
        rng = [rng_state(self.device)]
        if self.world > 1:
            rng = [None] * self.world
            dist.all_gather_object(rng, {k: v.cpu() for k, v in rng_state(self.device).items()})
        if self.main:
            save_checkpoint(self.out / CHECKPOINT, {
                "model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "step": self.step, "seconds": self.seconds,
                "max_step": self.max_step, "rng": rng})
        self.saved_step = self.step

    def resume(self) -> None:
        """Continue from the checkpoint in ``out`` if there is one."""
        path = self.out / CHECKPOINT
        if not path.exists():
            return
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["max_step"] != self.max_step:
            raise InputError(f"{path}: made for {state['max_step']} steps, this run has "
                             f"{self.max_step} (dataset or batch size changed); delete it")
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = self.saved_step = int(state["step"])
        self.seconds = float(state["seconds"])
        if len(state["rng"]) == self.world:
            set_rng_state({k: v.cpu() for k, v in state["rng"][self.rank].items()}, self.device)
        else:  # another number of processes: dropout draws differ from here on
            torch.manual_seed(derived_seed(self.train.seed, self.step, self.rank + 1))
        if self.main:
            print(f"resuming {path} at step {self.step}")
            self.truncate_log()

    def truncate_log(self) -> None:
        """Drop log rows past the resumed step (and a row torn by the kill): no step twice."""
        path = self.out / LOG
        keep = []
        for line in path.read_text().splitlines(keepends=True) if path.exists() else []:
            with contextlib.suppress(json.JSONDecodeError):
                if json.loads(line)["step"] <= self.step:
                    keep.append(line if line.endswith("\n") else line + "\n")
        atomic_write(path, lambda t: t.write_text("".join(keep)))

    def reduce(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Loss terms averaged over the processes, as floats (one sync per step)."""
        values = torch.stack([v.detach().float() for v in terms.values()])
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return dict(zip(terms, values.tolist(), strict=True))

    def check_finite(self, values: dict[str, float]) -> None:
        """Stop on a non-finite term, naming the step and the term; keep the last checkpoint."""
        bad = [k for k, v in values.items() if not np.isfinite(v)]
        if bad:
            kept = (f"the last good checkpoint {self.out / CHECKPOINT} (step {self.saved_step}) "
                    f"is kept" if self.saved_step else "no checkpoint was written yet")
            raise InputError(f"step {self.step + 1}: loss term {bad[0]!r} is "
                                     f"{values[bad[0]]} (non-finite: {', '.join(bad)}); {kept}")

    def train_step(self, batch: Any, loss_fn: LossFn) -> tuple[dict[str, float], float]:
        """One optimiser step on a batch; return the averaged terms and the base lr."""
        lr = self.set_lr()
        batch = to_device(batch, self.device, self.channels_last)
        with self.autocast():
            terms = loss_fn(self.model, batch)
        values = self.reduce(terms)
        self.check_finite(values)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(terms["loss"]).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.step += 1
        return values, lr


def fit(net: nn.Module, loss_fn: LossFn, dataset: Dataset, train: TrainConfig,
        out_dir: str | Path, *, device: torch.device | str, num_workers: int = 0,
        settings: dict[str, Any] | None = None, progress: bool = True,
        save: SaveFn = save_state_dict) -> Path:
    """Train ``net`` on ``dataset`` with ``loss_fn(net, batch) -> {"loss": ..., terms...}``;
    return ``<out_dir>/model.pth`` (written by ``save``).

    An existing model.pth is returned as it is; an existing checkpoint is resumed.
    ``settings`` ({stage: {name: value}}) are recorded in ``<out_dir>/config.json`` and must
    match on a resume. Under ``torchrun`` (WORLD_SIZE > 1) ``loss_fn`` gets the DDP-wrapped
    network: it may read the network's attributes but must compute through ``net(...)``, and
    its loss must be a mean over the batch (the processes' gradients are averaged)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()  # fewer page faults per step, the same numbers (seamlib.device)
    rank, world, device, owns_group = init_distributed(torch.device(device))
    torch.manual_seed(train.seed + rank)  # training randomness (dropout), distinct per process
    try:
        if settings is not None:
            claim(out / CONFIG, settings, "a training run", write=rank == 0)
        if not (out / MODEL).exists():
            run = Run(net, train, out, len(dataset), rank, world, device)
            loop(run, loss_fn, dataset, num_workers, progress and run.main)
            if run.main:
                save(net, out / MODEL)
        if world > 1:
            dist.barrier()  # every process returns once model.pth exists
    finally:
        if owns_group:
            dist.destroy_process_group()
    return out / MODEL


def loop(run: Run, loss_fn: LossFn, dataset: Dataset, num_workers: int,
         progress: bool) -> None:
    """The epochs of a run, from its checkpoint if any; logs and checkpoints as set."""
    train, out, sampler = run.train, run.out, run.sampler
    loader = DataLoader(SeededSamples(dataset, train.seed), batch_sampler=sampler,
                        num_workers=num_workers, pin_memory=run.device.type == "cuda",
                        generator=torch.Generator())  # leaves the global (dropout) RNG alone
    run.resume()
    net_mode = run.net.training
    run.net.train()
    bar = tqdm(total=run.max_step, initial=run.step, desc=f"train {out.name}",
               disable=not progress)
    log = (out / LOG).open("a") if run.main else None
    start, window = time.time() - run.seconds, (time.time(), run.step)
    try:
        for epoch in range(run.step // sampler.steps, train.epochs):
            sampler.set_epoch(epoch, run.step % sampler.steps)
            for batch in loader:
                values, lr = run.train_step(batch, loss_fn)
                run.seconds = time.time() - start
                elapsed = max(time.time() - window[0], 1e-6)
                rate = (run.step - window[1]) * train.batch_size / elapsed
                bar.update()
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}
                                | {"img/s": f"{rate:.1f}"})
                if log and (run.step % train.log_every == 0 or run.step == run.max_step):
                    log.write(json.dumps({"step": run.step, "epoch": epoch, **values, "lr": lr,
                                          "images_per_s": round(rate, 1),
                                          "time": round(run.seconds, 1)}) + "\n")
                    log.flush()
                    window = (time.time(), run.step)
                every = train.checkpoint_every
                if (every and run.step % every == 0) or run.step % sampler.steps == 0:
                    run.checkpoint()
    finally:
        bar.close()
        if log:
            log.close()
    run.net.train(net_mode)
    if run.main:
        summary = {"steps": run.step, "seconds": round(run.seconds, 1),
                   "images": len(dataset), "processes": run.world,
                   "threads": torch.get_num_threads(), "hardware": hardware()}
        atomic_write(out / SUMMARY, lambda t: t.write_text(json.dumps(summary)))
