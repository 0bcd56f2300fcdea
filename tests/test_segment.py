"""Segment stage: training crops and loss, multi-scale + flip aggregation, resumable
inference tied to the weights (with and without CRF), retraining, the VOC submission archive."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from seamlib.config import SegmentationConfig, load_config
from seamlib.data.segmentation_data import PseudoLabelDataset, augment_pair, hsv_shift
from seamlib.data.voc import SEG_CLASS, SEG_CLASS_AUG, read_list
from seamlib.formats import load_label_png, save_label_png
from seamlib.models.deeplab import build_deeplab
from seamlib.stages.evaluate import confusion, scores
from seamlib.stages.segment import MANIFEST, multiscale_probs, run_writes, segment_stage
from seamlib.stages.train_seg import segmentation_loss, train_seg
from seamlib.submission import SUBMISSION_DIR, export_submission

# ---------------------------------------------------------------------------------------------
# Training data and loss


def plain(**kw) -> SegmentationConfig:
    """No random augmentation unless asked for."""
    return SegmentationConfig(**{"hsv_jitter": (0, 0, 0), "flip_prob": 0.0,
                                 "scale_range": (1.0, 1.0), **kw})


def test_crop_pads_labels_with_void_and_images_with_zero():
    image = Image.fromarray(np.full((10, 12, 3), 200, np.uint8))
    label = np.full((10, 12), 7, np.uint8)
    x, y = augment_pair(image, label, plain(crop_size=16))
    assert x.shape == (3, 16, 16) and y.shape == (16, 16) and y.dtype == torch.int64
    assert (y == 7).sum() == 120 and (y == 255).sum() == 256 - 120
    assert torch.all(x[:, y == 255] == 0) and torch.all(x[:, y == 7] > 0)


def test_flip_moves_image_and_label_together():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, :3] = 255
    label = np.zeros((8, 8), np.uint8)
    label[:, :3] = 5
    x, y = augment_pair(Image.fromarray(rgb), label, plain(crop_size=8, flip_prob=1.0))
    assert torch.all(y[:, -3:] == 5) and torch.all(y[:, :-3] == 0)
    assert torch.all((x[0] > 0) == (y == 5))


def test_hsv_shift_in_opencv_units():
    gray = Image.fromarray(np.full((2, 2, 3), 100, np.uint8))
    assert np.all(np.asarray(hsv_shift(gray, 0, 0, 10)) == 110)
    assert np.all(np.asarray(hsv_shift(gray, 0, -10, 250)) == 255)  # clipped, still gray
    red = Image.fromarray(np.array([[[200, 0, 0]]], np.uint8))
    assert np.asarray(hsv_shift(red, 60, 0, 0))[0, 0].argmax() == 1  # 120 degrees: green
    assert np.array_equal(np.asarray(hsv_shift(red, 180, 0, 0)), np.asarray(red))  # full turn


def test_full_augmentation_keeps_label_values():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    label = rng.choice(np.array([0, 3, 255], np.uint8), size=(30, 40))
    for _ in range(5):
        x, y = augment_pair(image, label, SegmentationConfig(crop_size=24))
        assert x.shape == (3, 24, 24)
        assert set(torch.unique(y).tolist()) <= {0, 3, 255}


def test_pseudo_label_dataset_checks_files(voc_root, tmp_path):
    seg = plain(crop_size=16)
    data = PseudoLabelDataset(voc_root, "train", voc_root / SEG_CLASS, seg)
    x, y = data[0]
    assert x.shape == (3, 16, 16) and y.shape == (16, 16)
    with pytest.raises(FileNotFoundError, match=r"3 of the 3 ids .* no label PNG"):
        PseudoLabelDataset(voc_root, "train", tmp_path / "none", seg)
    bad = tmp_path / "bad"
    for iid in read_list(voc_root / "ImageSets/Segmentation/train.txt"):
        save_label_png(bad / f"{iid}.png", np.full((3, 3), 30, np.uint8))
    data = PseudoLabelDataset(voc_root, "train", bad, seg)
    with pytest.raises(ValueError, match="label is 3x3 but its image"):
        data[0]
    image_size = Image.open(voc_root / "JPEGImages/2007_000001.jpg").size
    save_label_png(bad / "2007_000001.png", np.full(image_size[::-1], 30, np.uint8))
    with pytest.raises(ValueError, match=r"values \[30\] are not class indices"):
        data[0]


def test_loss_ignores_void():
    logits = torch.randn(1, 3, 2, 2)
    net = lambda x: logits  # noqa: E731
    labels = torch.tensor([[[0, 255], [2, 255]]])
    loss = segmentation_loss(net, (torch.zeros(1, 3, 2, 2), labels))["loss"]
    expected = -(logits.log_softmax(1)[0, 0, 0, 0] + logits.log_softmax(1)[0, 2, 1, 0]) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# Multi-scale + flip aggregation, on nets whose output is known


class Pointwise(nn.Module):
    """Logits from a 1x1 conv of the input: equivariant to flips and local."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.conv(x)


class Ramp(nn.Module):
    """Logits that ignore the image: class c is c * (column position), not flip equivariant."""

    def forward(self, x):
        n, _, h, w = x.shape
        ramp = torch.linspace(0, 1, w).expand(n, 1, h, w)
        return torch.cat([ramp * c for c in range(3)], 1)


def test_flip_passes_are_unflipped():
    image = torch.randn(3, 9, 13)
    one = multiscale_probs(Pointwise(), image, (1.0,), flip=False)
    both = multiscale_probs(Pointwise(), image, (1.0,), flip=True)
    assert torch.allclose(one, both, atol=1e-6)
    assert torch.allclose(one, Pointwise()(image[None])[0].softmax(0), atol=1e-6)


def test_logit_and_probability_averaging():
    image = torch.randn(3, 5, 7)
    ramp = Ramp()(image[None])[0]
    by_logits = multiscale_probs(Ramp(), image, (1.0,), flip=True, average="logits")
    by_probs = multiscale_probs(Ramp(), image, (1.0,), flip=True, average="probs")
    assert torch.allclose(by_logits, ((ramp + ramp.flip(-1)) / 2).softmax(0), atol=1e-6)
    assert torch.allclose(by_probs, (ramp.softmax(0) + ramp.flip(-1).softmax(0)) / 2, atol=1e-6)
    assert not torch.allclose(by_logits, by_probs, atol=1e-3)
    with pytest.raises(ValueError, match="seg.average"):
        multiscale_probs(Ramp(), image, average="max")


def test_scales_resize_then_return_to_image_size():
    image = torch.randn(3, 12, 16)
    net = Pointwise()
    got = multiscale_probs(net, image, (0.5, 1.0), flip=False)
    half = F.interpolate(image[None], (6, 8), mode="bicubic", align_corners=False)
    half = F.interpolate(net(half), (12, 16), mode="bilinear", align_corners=True)
    expected = ((half[0] + net(image[None])[0]) / 2).softmax(0)
    assert got.shape == (4, 12, 16) and torch.allclose(got, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The segment stage: PNGs at the image size, resumable, tied to the weights


def smoke_cfg(voc_root: Path, **seg):
    """The smoke profile on the fixture dataset, on the CPU, without CRF unless asked for."""
    cfg = load_config("smoke", {"segment": {"crf": False, "test_scales": (0.5, 1.0), **seg}},
                      data_root=voc_root)
    cfg.device = "cpu"
    return cfg


def save_net(cfg, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.save(build_deeplab(cfg.model, cfg.segment).state_dict(), path)
    return path


def test_segment_stage_writes_resumes_and_checks_weights(voc_root, tmp_path, monkeypatch):
    cfg = smoke_cfg(voc_root, test_scales=(1.0,))
    weights = save_net(cfg, tmp_path / "model.pth")
    out = segment_stage(cfg, weights, "val", tmp_path / "pred", progress=False)
    ids = read_list(voc_root / "ImageSets/Segmentation/val.txt")
    for iid in ids:
        label = load_label_png(out / f"{iid}.png")
        gt = load_label_png(voc_root / SEG_CLASS / f"{iid}.png")
        assert label.shape == gt.shape and label.max() < 21
        assert Image.open(out / f"{iid}.png").mode == "P"
    manifest = json.loads((out / MANIFEST).read_text())
    assert len(manifest["weights_sha256"]) == 64 and manifest["settings"]["test_scales"] == [1.0]
    # Resume: only the missing image is redone.
    kept = (out / f"{ids[0]}.png").stat().st_mtime_ns
    (out / f"{ids[1]}.png").unlink()
    calls = []
    import seamlib.stages.segment as segment

    original = segment.multiscale_probs
    monkeypatch.setattr(segment, "multiscale_probs",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    segment_stage(cfg, weights, "val", out, progress=False)
    assert len(calls) == 1 and (out / f"{ids[1]}.png").exists()
    assert (out / f"{ids[0]}.png").stat().st_mtime_ns == kept
    # Other weights or settings: refused, naming what changed.
    other = save_net(cfg, tmp_path / "other.pth", seed=1)
    with pytest.raises(ValueError, match="weights_sha256"):
        segment_stage(cfg, other, "val", out, progress=False)
    cfg.segment.test_flip = False
    with pytest.raises(ValueError, match="settings"):
        segment_stage(cfg, weights, "val", out, progress=False)
    with pytest.raises(FileNotFoundError, match="segmentation weights"):
        segment_stage(cfg, tmp_path / "nope.pth", "val", tmp_path / "x", progress=False)
    (tmp_path / "junk.pth").write_bytes(b"not a network")
    with pytest.raises(ValueError, match="junk.pth"):
        segment_stage(cfg, tmp_path / "junk.pth", "val", tmp_path / "y", progress=False)
    assert not (tmp_path / "y").exists()  # nothing recorded for weights that did not load
    # A folder seam did not make: its files are not taken for predictions, nothing is added.
    cfg.segment.test_flip = True
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / f"{ids[0]}.png").write_bytes(b"the user's")
    with pytest.raises(ValueError, match="mine holds files seam did not make"):
        segment_stage(cfg, weights, "val", mine, progress=False)
    assert [p.name for p in mine.iterdir()] == [f"{ids[0]}.png"]


def test_writes_in_a_process_pool(tmp_path):
    rng = np.random.default_rng(0)
    jobs = [(tmp_path / f"{i}.png", np.zeros((4, 5, 3), np.uint8),
             rng.random((21, 4, 5), dtype=np.float32), None) for i in range(5)]
    run_writes(iter(jobs), workers=2)
    for path, _, probs, _ in jobs:
        assert np.array_equal(load_label_png(path), probs.argmax(0))


def test_segment_stage_with_crf(voc_root, tmp_path):
    cfg = smoke_cfg(voc_root, crf=True, test_scales=(1.0,))
    weights = save_net(cfg, tmp_path / "model.pth")
    out = segment_stage(cfg, weights, "test", tmp_path / "pred", progress=False)
    assert (out / "2007_000006.png").exists()
    assert json.loads((out / MANIFEST).read_text())["settings"]["crf_iterations"] == 1


def test_retrain_then_segment_on_smoke(voc_root, tmp_path):
    cfg = smoke_cfg(voc_root, test_scales=(1.0,))
    weights = train_seg(cfg, voc_root / SEG_CLASS_AUG, tmp_path / "run", progress=False)
    out = segment_stage(cfg, weights, "val", tmp_path / "pred", progress=False)
    conf = sum(confusion(load_label_png(out / f"{i}.png"),
                         load_label_png(voc_root / SEG_CLASS / f"{i}.png"))
               for i in read_list(voc_root / "ImageSets/Segmentation/val.txt"))
    assert 0 <= scores(conf)["miou"] <= 1
    again = torch.load(train_seg(cfg, voc_root / SEG_CLASS_AUG, tmp_path / "rerun", progress=False))
    first = torch.load(weights)  # the same weights: the head's initialisation is seeded
    assert all(torch.equal(first[k], again[k]) for k in first)


# ---------------------------------------------------------------------------------------------
# Submission archive


def test_export_submission_layout(tmp_path):
    pred = tmp_path / "pred"
    labels = {"2008_000001": np.array([[0, 15], [20, 3]], np.uint8),
              "2008_000002": np.zeros((4, 5), np.uint8)}
    for iid, label in labels.items():
        save_label_png(pred / f"{iid}.png", label)
    archive = export_submission(pred, list(labels), tmp_path / "out")
    assert archive == tmp_path / "out" / "results.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        assert names == [f"results/VOC2012/Segmentation/comp6_test_cls/{i}.png" for i in labels]
        assert SUBMISSION_DIR == "results/VOC2012/Segmentation/comp6_test_cls"
        for iid, label in labels.items():
            image = Image.open(tar.extractfile(f"{SUBMISSION_DIR}/{iid}.png"))
            assert image.mode == "P" and np.array_equal(np.asarray(image), label)
    with pytest.raises(FileNotFoundError, match=r"1 of 3 test ids"):
        export_submission(pred, [*labels, "2008_000003"], tmp_path / "out2")
    save_label_png(pred / "2008_000002.png", np.full((4, 5), 255, np.uint8))
    with pytest.raises(ValueError, match=r"values \[255\]"):
        export_submission(pred, list(labels), tmp_path / "out3")
    assert not (tmp_path / "out3" / "results.tar.gz").exists()


def test_export_command_reads_the_list(voc_root, tmp_path, capsys):
    from seamlib.cli import main

    save_label_png(tmp_path / "pred" / "2007_000006.png", np.ones((36, 60), np.uint8))
    main(["export", "--profile", "smoke", "--data-root", str(voc_root), "--pred",
          str(tmp_path / "pred"), "--list", "test", "--out", str(tmp_path / "sub")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "sub" / "results.tar.gz")
    with tarfile.open(tmp_path / "sub" / "results.tar.gz") as tar:
        assert tar.getnames() == [f"{SUBMISSION_DIR}/2007_000006.png"]
