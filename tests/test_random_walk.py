"""Random walk with AffinityNet affinities (seamlib/stages/random_walk.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from experiments.random_walk_sweep import random_walk_sweep
from seamlib.config import Config, ModelConfig, RandomWalkConfig, load_config
from seamlib.data.lists import list_path
from seamlib.data.voc import read_list
from seamlib.densecrf import with_background
from seamlib.formats import load_label_png, save_cam
from seamlib.models.affinity import build_affinity_net
from seamlib.models.weights import save_released
from seamlib.stages.crf import crf_stage
from seamlib.stages.evaluate import evaluate
from seamlib.stages.random_walk import (
    propagate,
    random_walk_label,
    random_walk_stage,
    transition_matrix,
)
from seamlib.stages.train_affinity import train_affinity


def test_transition_two_nodes_analytic():
    a, beta, logt = 0.5, 2.0, 3
    trans = transition_matrix(torch.tensor([[1.0, a], [a, 1.0]]), beta, logt)
    # T = [[p, q], [q, p]], p = 1 / (1 + a^beta); T^n = (1/2) [[1 + (p - q)^n, 1 - (p - q)^n],
    # ...], here p - q = 0.6 and n = 2^3 = 8.
    lam = 0.6 ** 8
    expect = 0.5 * torch.tensor([[1 + lam, 1 - lam], [1 - lam, 1 + lam]])
    torch.testing.assert_close(trans, expect, rtol=1e-6, atol=1e-6)


def test_transition_chain_by_hand():
    chain = torch.tensor([[1.0, 1, 0], [1, 1, 1], [0, 1, 1]])  # 3 pixels in a row
    trans = transition_matrix(chain, beta=1.0, logt=1)  # T^2, T = D^-1 A
    expect = torch.tensor([[5 / 12, 5 / 12, 1 / 6], [5 / 18, 4 / 9, 5 / 18],
                           [1 / 6, 5 / 12, 5 / 12]])
    torch.testing.assert_close(trans, expect)
    torch.testing.assert_close(trans.sum(1), torch.ones(3))
    scores = torch.tensor([[[1.0, 0, 0]], [[0, 0, 1.0]]])  # 2 classes on the 3 pixels
    torch.testing.assert_close(propagate(scores, trans), (trans @ scores[:, 0].T).T[:, None])


class StubNet(nn.Module):
    """Stands in for AffinityNet: a fixed dense affinity matrix of the stride-8 grid."""

    def __init__(self, make) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.make = make

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        return self.make((x.shape[2] // 8) * (x.shape[3] // 8))


def stripes(height: int = 16, width: int = 24) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CAMs of classes 3 (columns 0-7) and 12 (16-23), background between; the argmax."""
    cams = np.zeros((2, height, width), np.float32)
    cams[0, :, :8] = 1
    cams[1, :, 16:] = 0.9
    expect = np.zeros((height, width), np.uint8)
    expect[:, :8], expect[:, 16:] = 3, 12
    return cams, np.array([3, 12]), expect


def test_identity_affinity_keeps_the_argmax():
    cams, classes, expect = stripes()
    label = random_walk_label(StubNet(torch.eye), torch.zeros(3, 16, 24), cams, classes, Config())
    np.testing.assert_array_equal(label, expect)


def test_uniform_affinity_gives_one_label():
    """Every pixel walks to the same mix: the mean of [background, cams] over the grid."""
    cams, classes, _ = stripes()
    cams[0] *= 0.5
    cfg = Config()
    label = random_walk_label(StubNet(lambda n: torch.ones(n, n)), torch.zeros(3, 16, 24), cams,
                              classes, cfg)
    means = with_background(cams, cfg.random_walk.alpha, power=True).mean((1, 2))
    assert means.argmax() == 0 and (label == 0).all()  # bg: (8 x 0.5^6 + 8 x 1) / 24 wins
    cams[1, :, 8:] = 0.9  # class 12 spreads over two thirds: mean 0.6, background ~0.005
    label = random_walk_label(StubNet(lambda n: torch.ones(n, n)), torch.zeros(3, 16, 24), cams,
                              classes, cfg)
    means = with_background(cams, cfg.random_walk.alpha, power=True).mean((1, 2))
    assert means.argmax() == 2 and (label == 12).all()


def test_padding_to_the_stride():
    cams, classes, expect = stripes(height=13, width=21)  # padded to 16 x 24 inside
    label = random_walk_label(StubNet(torch.eye), torch.zeros(3, 13, 21), cams, classes, Config())
    assert label.shape == (13, 21)
    np.testing.assert_array_equal(label[:, :16], expect[:, :16])


def smoke_cfg() -> Config:
    cfg = Config(device="cpu")
    cfg.model = ModelConfig(width=0.0625, frozen_bn=False, frozen_stem=False)
    return cfg


def write_random_cams(cam_dir, voc_root, tiny) -> None:
    """Random CAMs of the train list's images, masked by each image's classes."""
    gen = torch.Generator().manual_seed(0)
    for image_id in read_list(list_path(voc_root, "train")):
        height, width, classes = tiny.images[image_id]
        label = torch.zeros(20)
        label[[c - 1 for c in classes]] = 1
        save_cam(cam_dir / f"{image_id}.npz", torch.rand(20, height, width, generator=gen), label)


def test_random_walk_stage(voc_root, tiny, tmp_path):
    cam_dir, out = tmp_path / "cams", tmp_path / "rw"
    write_random_cams(cam_dir, voc_root, tiny)
    cfg = smoke_cfg()
    torch.manual_seed(0)
    weights = save_released(build_affinity_net(cfg.model, 5), tmp_path / "aff.pth")
    random_walk_stage(cam_dir, weights, voc_root, "train", out, cfg, progress=False)
    for image_id in read_list(list_path(voc_root, "train")):
        height, width, classes = tiny.images[image_id]
        label = load_label_png(out / f"{image_id}.png")
        assert label.shape == (height, width)
        assert set(np.unique(label).tolist()) <= {0, *classes}
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    random_walk_stage(cam_dir, weights, voc_root, "train", out, cfg, progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}  # resumed
    cfg.random_walk = dataclasses.replace(RandomWalkConfig(), beta=4.0)
    with pytest.raises(ValueError, match="random_walk"):
        random_walk_stage(cam_dir, weights, voc_root, "train", out, cfg, progress=False)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        random_walk_stage(cam_dir, tmp_path / "absent.pth", voc_root, "train", out, cfg)


def test_crf_affinity_random_walk_chain(voc_root, tiny, tmp_path):
    """The three stages fit together on smoke settings: CAMs -> CRF score maps ->
    AffinityNet training -> random-walk pseudo labels."""
    cfg = load_config("smoke", data_root=voc_root)
    cfg.device, cfg.data.train_list = "cpu", "train"
    cams = tmp_path / "cams"
    write_random_cams(cams, voc_root, tiny)
    labels = crf_stage(cams, voc_root, "train", tmp_path / "crf", cfg.crf, progress=False)
    cfg.train_affinity.batch_size = 3
    weights = train_affinity(cfg, labels, tmp_path / "aff", progress=False)
    out = random_walk_stage(cams, weights, voc_root, "train", tmp_path / "rw", cfg,
                            progress=False)
    assert sorted(p.stem for p in out.glob("*.png")) == read_list(list_path(voc_root, "train"))


def test_random_walk_sweep(voc_root, tiny, tmp_path):
    """Every (logt, alpha) of the grid is walked with its own settings and scored; the best
    row is the grid's highest mIoU."""
    run = tmp_path / "run"
    cfg = smoke_cfg()
    cfg.data.root, cfg.data.train_list, cfg.data.cam_list = str(voc_root), "train", "train"
    write_random_cams(run / "label_cams" / "train", voc_root, tiny)
    torch.manual_seed(0)
    save_released(build_affinity_net(cfg.model, 5), run / "train_affinity" / "model.pth")
    result = random_walk_sweep(run, cfg, [0, 2], [1.0, 8.0], progress=False)
    assert [(r["logt"], r["alpha"]) for r in result["rows"]] == [(0, 1.0), (0, 8.0),
                                                                  (2, 1.0), (2, 8.0)]
    assert result["best"]["miou"] == max(r["miou"] for r in result["rows"])
    single = dataclasses.replace(cfg, random_walk=dataclasses.replace(cfg.random_walk, logt=2,
                                                                      alpha=8.0))
    direct = random_walk_stage(run / "label_cams" / "train", run / "train_affinity" / "model.pth",
                               voc_root, "train", tmp_path / "direct", single, progress=False)
    assert evaluate(direct, voc_root, "train", kind="png")["miou"] == result["rows"][3]["miou"]
    assert (run / "random_walk_sweep" / "logt2_alpha8" / "manifest.json").exists()
    assert len({r["miou"] for r in result["rows"]}) > 1  # the settings reach the walk
