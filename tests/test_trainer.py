"""The shared training loop: data order and augmentation seeding, exact mid-epoch resume,
the JSONL log, the non-finite stop, AMP / channels_last settings and DDP on CPU (gloo)."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seamlib import trainer
from seamlib.config import LossConfig, ModelConfig, TrainConfig
from seamlib.data.datasets import ClassificationDataset
from seamlib.errors import InputError
from seamlib.losses import seam_loss
from seamlib.models import build_model
from seamlib.provenance import claim
from seamlib.trainer import CHECKPOINT, LOG, MODEL, EpochBatches, SeededSamples, fit
from seamlib.transforms import parse_transform


class Noisy(Dataset):
    """Fixed 3x8x8 images with a random flip and noise (drawn from torch's global RNG, like
    the real augmentation), a 2-value target and an id."""

    def __init__(self, n: int = 14) -> None:
        g = torch.Generator().manual_seed(123)
        self.images = torch.randn(n, 3, 8, 8, generator=g)
        self.targets = torch.rand(n, 2, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        image = self.images[i].flip(-1) if torch.rand(()) < 0.5 else self.images[i]
        return image + 0.1 * torch.randn_like(image), self.targets[i], f"id{i}"


class Toy(nn.Module):
    """conv + trainable BatchNorm + dropout + linear: every kind of state a real net has."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.drop, self.fc = nn.Dropout(0.3), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(F.relu(self.bn(self.conv(x))).mean((2, 3))))

    def parameter_groups(self, lr: float, weight_decay: float) -> list[dict]:
        return [{"params": list(self.parameters()), "lr": lr, "lr_mult": 1,
                 "weight_decay": weight_decay, "name": "weight"}]


def toy_loss(net: nn.Module, batch: tuple) -> dict[str, torch.Tensor]:
    images, targets, _ = batch
    mse = F.mse_loss(net(images), targets)
    return {"mse": mse, "loss": mse}


def toy_train(**kw) -> TrainConfig:
    """3 steps per epoch on 14 samples, 2 epochs; every step logged."""
    return TrainConfig(**{"lr": 0.1, "momentum": 0.9, "batch_size": 4, "epochs": 2,
                          "log_every": 1, **kw})


def toy_fit(out: Path, loss_fn=toy_loss, **kw) -> Path:
    torch.manual_seed(0)
    return fit(Toy(), loss_fn, Noisy(), toy_train(**kw), out, device="cpu", progress=False)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def assert_same(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], msg=key, **tol)


def batches(dataset: Dataset, num_workers: int, batch_size: int = 4, world: int = 1,
            rank: int = 0) -> list:
    """Two epochs of one process's batches, as the trainer's loader yields them."""
    sampler = EpochBatches(len(dataset), batch_size, seed=3, rank=rank, world=world)
    out = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        out += list(DataLoader(SeededSamples(dataset, seed=3), batch_sampler=sampler,
                               num_workers=num_workers))
    return out


def test_augmented_batches_do_not_depend_on_num_workers(voc_root, tiny):
    labels = {i: np.isin(np.arange(1, 21), c).astype(np.float32)
              for i, (_, _, c) in tiny.images.items()}
    data = ClassificationDataset(voc_root, "train_aug", labels, crop_size=16,
                                 resize_long=(16, 40))
    serial, parallel = batches(data, 0, batch_size=2), batches(data, 2, batch_size=2)
    assert len(serial) == 4  # 4 images, 2 per batch, 2 epochs
    for (a, ta, ia), (b, tb, ib) in zip(serial, parallel, strict=True):
        assert ia == ib and torch.equal(a, b) and torch.equal(ta, tb)
    epochs = [dict(zip(a[2] + b[2], torch.cat([a[0], b[0]]), strict=True))
              for a, b in (serial[:2], serial[2:])]
    assert not any(torch.equal(epochs[0][i], epochs[1][i]) for i in epochs[0])  # re-augmented


def test_ranks_split_the_same_global_batches():
    single = batches(Noisy(), 0)
    ranks = batches(Noisy(), 0, world=2, rank=0), batches(Noisy(), 0, world=2, rank=1)
    assert len(single) == 6  # 14 // 4 batches per epoch (the incomplete one dropped), 2 epochs
    for whole, first, second in zip(single, *ranks, strict=True):
        assert whole[2] == first[2] + second[2]
        assert torch.equal(whole[0], torch.cat([first[0], second[0]]))
    assert single[0][2] != single[3][2]  # each epoch has its own order
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        EpochBatches(14, 4, seed=0, world=3)


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    full = toy_fit(tmp_path / "full", checkpoint_every=2)
    calls = 0

    def killed_at_step_6(net, batch):  # step 5 (mid-epoch 2) ran, checkpoint at step 4
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt
        return toy_loss(net, batch)

    with pytest.raises(KeyboardInterrupt):
        toy_fit(tmp_path / "resumed", killed_at_step_6, checkpoint_every=2)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["step"] == 4
    with (tmp_path / "resumed" / LOG).open("a") as log:
        log.write('{"step": 6, "ep')  # a row torn by the kill
    resumed = toy_fit(tmp_path / "resumed", checkpoint_every=2)
    assert_same(weights(full), weights(resumed), rtol=0, atol=0)
    rows = [json.loads(r) for r in (tmp_path / "resumed" / LOG).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]  # step 5 logged once
    full_rows = [json.loads(r) for r in (tmp_path / "full" / LOG).read_text().splitlines()]
    assert [r["mse"] for r in rows] == [r["mse"] for r in full_rows]
    assert {"step", "epoch", "mse", "loss", "lr", "images_per_s", "time"} <= set(rows[-1])
    assert rows[0]["lr"] == 0.1 and rows[-1]["lr"] < rows[0]["lr"]


def test_a_non_finite_loss_stops_naming_the_step_and_term(tmp_path):
    calls = 0

    def nan_at_step_3(net, batch):
        nonlocal calls
        calls += 1
        terms = toy_loss(net, batch)
        if calls == 3:
            terms["mse"] = terms["mse"] * float("nan")
        return terms

    with pytest.raises(InputError, match=r"step 3: loss term 'mse' is nan.*\(step 2\)"):
        toy_fit(tmp_path, nan_at_step_3, checkpoint_every=2)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == 2
    assert not (tmp_path / MODEL).exists()


def test_run_folder_checks_only_settings_that_change_the_weights(tmp_path):
    settings = {"data": {"num_workers": 0, "crop_size": 32}, "train_cam": {"out_dir": "a",
                "lr": 0.1, "log_every": 20, "checkpoint_every": 0}, "device": "cpu"}
    claim(tmp_path / trainer.CONFIG, settings, "a training run")
    neutral = {"data": {"num_workers": 4, "crop_size": 32}, "train_cam": {"out_dir": "b",
               "lr": 0.1, "log_every": 1, "checkpoint_every": 5}, "device": "cpu"}
    claim(tmp_path / trainer.CONFIG, neutral, "a training run")
    with pytest.raises(ValueError, match=r"train_cam\.lr was 0\.1, now 0\.2 and 1 more"):
        claim(tmp_path / trainer.CONFIG, {**neutral, "train_cam": {"lr": 0.2}, "device": "cuda"},
              "a training run")


def test_amp_and_channels_last_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert trainer.autocast_dtype("auto", cpu) is None
    assert trainer.autocast_dtype("auto", cuda) is None  # fp32 on CUDA until bf16 is shown equal
    assert trainer.autocast_dtype("bf16", cuda) == torch.bfloat16
    assert trainer.autocast_dtype("fp16", cpu) == torch.float16
    with pytest.raises(ValueError, match="train.amp"):
        trainer.autocast_dtype("half", cpu)
    assert not any(trainer.use_channels_last("auto", d) for d in (cpu, cuda))
    assert trainer.use_channels_last("on", cpu)
    with pytest.raises(ValueError, match="train.channels_last"):
        trainer.use_channels_last("yes", cpu)


def test_bf16_and_channels_last_train_on_cpu(tmp_path):
    plain = weights(toy_fit(tmp_path / "plain"))
    mixed = weights(toy_fit(tmp_path / "mixed", amp="bf16", channels_last="on"))
    assert all(torch.isfinite(v).all() for v in mixed.values())
    assert not torch.equal(plain["conv.weight"], mixed["conv.weight"])  # bf16 was used


# --- DDP: 2 processes with gloo on the smoke SEAM network --------------------------------
# Dropout masks are drawn per process and trainable BatchNorm normalises per process, so
# a DDP run equals a single-process run of the same global batch only with both fixed: the
# smoke network here has frozen BN (the reference setting) and dropout off.

SMOKE_TRAIN = {"lr": 0.01, "momentum": 0.9, "batch_size": 4, "epochs": 1}


class SmokeImages(Dataset):
    """Eight 3x32x32 images (smoke crop size) with multi-hot labels and a random flip."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(7)
        self.images = torch.randn(8, 3, 32, 32, generator=g)
        self.labels = (torch.rand(8, 20, generator=g) < 0.15).float()

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        flip = torch.rand(()) < 0.5
        return (self.images[i].flip(-1) if flip else self.images[i]), self.labels[i], str(i)


def smoke_fit(out: Path) -> nn.Module:
    torch.manual_seed(0)
    net = build_model(ModelConfig(width=0.0625, frozen_bn=True, frozen_stem=False))
    for m in net.modules():
        if isinstance(m, nn.Dropout2d):
            m.p = 0.0
    loss_cfg, transform = LossConfig(), parse_transform(LossConfig().transform)

    def loss_fn(model, batch):
        assert model.frozen_bn  # network attributes read through the DDP wrapper
        return seam_loss(model, batch[0], batch[1], transform, loss_cfg)

    fit(net, loss_fn, SmokeImages(), TrainConfig(**SMOKE_TRAIN), out, device="cpu",
        progress=False)
    return net


def ddp_worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    net = smoke_fit(Path(out) / "ddp")
    torch.save(net.state_dict(), Path(out) / f"rank{rank}.pth")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one_process(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    mp.start_processes(ddp_worker, args=(free_port(), str(tmp_path)), nprocs=2,
                       start_method="fork")
    rank0 = torch.load(tmp_path / "rank0.pth", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pth", weights_only=True)
    assert_same(rank0, rank1, rtol=0, atol=0)  # DDP keeps the replicas bit-identical
    single = smoke_fit(tmp_path / "single").state_dict()
    # Same global batches and gradients, summed in another order: float32 rounding only.
    assert_same(rank0, single, rtol=1e-4, atol=1e-6)
    assert (tmp_path / "ddp" / MODEL).exists()
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2


def test_default_cpu_step_is_the_pinned_manual_step(tmp_path):
    """On CPU with default settings (no autocast, no channels_last) a trainer step is bit for
    bit the plain poly-SGD step that tests/test_voc_pin.py pins."""
    cfg, loss_cfg = TrainConfig(**SMOKE_TRAIN), LossConfig()
    transform = parse_transform(loss_cfg.transform)
    data = SmokeImages()
    batch = (data.images[:4], data.labels[:4], ["0", "1", "2", "3"])

    def loss_fn(model, batch):
        return seam_loss(model, batch[0], batch[1], transform, loss_cfg)

    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(build_model(ModelConfig(width=0.0625, frozen_bn=False)).train())
    run = trainer.Run(nets[0], cfg, tmp_path, len(data), 0, 1, torch.device("cpu"))
    opt = trainer.build_optimizer(nets[1], cfg)
    for step in range(2):
        torch.manual_seed(step)  # the same dropout masks on both sides
        run.train_step(batch, loss_fn)
        torch.manual_seed(step)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * group["lr_mult"] * trainer.poly_factor(step, run.max_step, 0.9)
        terms = loss_fn(nets[1], batch)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
    assert_same(nets[0].state_dict(), nets[1].state_dict(), rtol=0, atol=0)


def test_to_device_moves_nested_tensors_and_keeps_the_rest():
    batch = ({"image": torch.zeros(2, 3, 4, 5), "mask": torch.zeros(2, 4, 5)}, ["a", "b"])
    moved = trainer.to_device(batch, torch.device("cpu"), channels_last=True)
    assert moved[0]["image"].is_contiguous(memory_format=torch.channels_last)
    assert moved[0]["mask"].is_contiguous() and moved[1] == ["a", "b"]


def test_the_progress_bar_shows_images_per_second_with_one_decimal(tmp_path, capsys):
    torch.manual_seed(0)
    fit(Toy(), toy_loss, Noisy(), toy_train(epochs=1), tmp_path, device="cpu", progress=True)
    assert re.search(r"img/s=\d+\.\d\]", capsys.readouterr().err)
