"""Dense CRF (seamlib/densecrf.py), the CRF score maps (seamlib/formats.py) and the CRF label
stage (seamlib/stages/crf.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from seamlib.config import CRFConfig, load_config
from seamlib.data.affinity_data import AffinityDataset
from seamlib.data.lists import list_path
from seamlib.data.voc import IGNORE, read_list
from seamlib.densecrf import dense_crf, to_label, with_background
from seamlib.errors import InputError
from seamlib.formats import load_label_png, load_score_maps, save_cam, save_score_maps
from seamlib.provenance import MANIFEST
from seamlib.stages.crf import (
    SUFFIXES,
    crf_stage,
)


def test_dense_crf_marginals_and_smoothing():
    image = np.zeros((20, 20, 3), np.uint8)
    image[:, 10:] = 200  # two flat colour regions
    probs = np.zeros((2, 20, 20), np.float32)
    probs[0, :, :10], probs[1, :, :10] = 0.8, 0.2
    probs[0, :, 10:], probs[1, :, 10:] = 0.2, 0.8
    probs[:, 5, 5] = (0.4, 0.6)  # one weakly wrong pixel inside the left region
    q = dense_crf(image, probs, CRFConfig())
    assert q.shape == (2, 20, 20) and q.dtype == np.float32
    np.testing.assert_allclose(q.sum(0), 1, atol=1e-4)
    assert probs.argmax(0)[5, 5] == 1 and q.argmax(0)[5, 5] == 0  # smoothed by its region
    assert (q.argmax(0)[:, 10:] == 1).all() and (q.argmax(0)[:, :5] == 0).all()


def test_dense_crf_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        dense_crf(np.zeros((4, 4, 3), np.float32), np.ones((2, 4, 4)), CRFConfig())
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((2, 4, 5)), CRFConfig())


def test_missing_pydensecrf_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(InputError, match="'crf' extra"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((2, 4, 4)), CRFConfig())


def test_background_scores_and_labels():
    cams = np.array([[[0.5, 0.0]], [[0.2, 0.9]]], np.float32)  # 2 classes, 1 x 2 pixels
    power = with_background(cams, 2.0, power=True)
    np.testing.assert_allclose(power[0], [[0.25, 0.01]], atol=1e-6)
    np.testing.assert_array_equal(power[1:], cams)
    const = with_background(cams, 0.26, power=False)
    np.testing.assert_allclose(const[0], 0.26)
    assert to_label(const, np.array([3, 15])).tolist() == [[3, 15]]
    assert to_label(with_background(cams, 0.6, False), np.array([3, 15])).tolist() == [[0, 15]]


def test_score_maps_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    la, ha = rng.random((2, 3, 4, 5), dtype=np.float32)  # background + 2 classes
    save_score_maps(tmp_path / "a.npz", la, ha, np.array([3, 15]))
    got_la, got_ha, classes = load_score_maps(tmp_path / "a.npz")
    assert got_la.dtype == got_ha.dtype == np.float32 and classes.tolist() == [3, 15]
    np.testing.assert_allclose(got_la, la, atol=1e-3)  # stored as float16
    np.testing.assert_allclose(got_ha, ha, atol=1e-3)
    with pytest.raises(ValueError, match="2 classes"):
        save_score_maps(tmp_path / "b.npz", la[:2], ha[:2], np.array([3, 15]))
    (tmp_path / "c.npz").write_bytes(b"not an npz")
    with pytest.raises(InputError, match="c.npz"):
        load_score_maps(tmp_path / "c.npz")


def write_cams(root, cam_dir, images, list_name="train", seed=0):
    """Random CAMs for every image of a list, classes from the fixture spec ``images``."""
    gen = torch.Generator().manual_seed(seed)
    for image_id in read_list(list_path(root, list_name)):
        height, width, classes = images[image_id]
        label = torch.zeros(20)
        label[[c - 1 for c in classes]] = 1
        save_cam(cam_dir / f"{image_id}.npz", torch.rand(20, height, width, generator=gen),
                 label)


@pytest.mark.parametrize("kind", ["affinity", "threshold"])
def test_crf_stage_writes_resumes_and_checks(voc_root, tiny, tmp_path, kind):
    cam_dir, out = tmp_path / "cams", tmp_path / "crf"
    write_cams(voc_root, cam_dir, tiny.images)
    cfg = CRFConfig(workers=0)
    crf_stage(cam_dir, voc_root, "train", out, cfg, kind=kind, progress=False)
    suffix = SUFFIXES[kind]
    for image_id in read_list(list_path(voc_root, "train")):
        height, width, classes = tiny.images[image_id]
        if kind == "threshold":
            label = load_label_png(out / f"{image_id}.png")
            assert label.shape == (height, width)
            assert set(np.unique(label).tolist()) <= {0, *classes}
            continue
        la, ha, got = load_score_maps(out / f"{image_id}.npz")
        assert got.tolist() == sorted(classes)
        assert la.shape == ha.shape == (len(classes) + 1, height, width)
        np.testing.assert_allclose(la.sum(0), 1, atol=5e-3)  # CRF marginals (float16)
        assert ha[0].mean() < la[0].mean()  # background (1 - max)^24 below (1 - max)^4
    assert (out / MANIFEST).is_file()
    # Resume: nothing to redo; a changed CAM file redoes only its image.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob(f"*{suffix}")}
    assert len(stamps) == 3
    crf_stage(cam_dir, voc_root, "train", out, cfg, kind=kind, progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob(f"*{suffix}")}
    first = "2007_000001"
    label = torch.zeros(20)
    label[14] = 1
    save_cam(cam_dir / f"{first}.npz", torch.zeros(20, 30, 40), label)
    crf_stage(cam_dir, voc_root, "train", out, cfg, kind=kind, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob(f"*{suffix}")}
    assert [n for n in stamps if stamps[n] != after[n]] == [f"{first}{suffix}"]
    # Other settings in the same folder are refused, naming the setting.
    with pytest.raises(ValueError, match="bilateral_srgb"):
        crf_stage(cam_dir, voc_root, "train", out, CRFConfig(bilateral_srgb=5), kind=kind,
                  progress=False)
    # A folder seam did not make is neither written into nor taken for outputs.
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / f"{first}{suffix}").write_bytes(b"the user's")
    with pytest.raises(InputError, match=f"mine holds files seam did not make .*{first}"):
        crf_stage(cam_dir, voc_root, "train", mine, cfg, kind=kind, progress=False)
    assert [p.name for p in mine.iterdir()] == [f"{first}{suffix}"]
    assert (mine / f"{first}{suffix}").read_bytes() == b"the user's"


def test_crf_stage_pool_matches_serial(voc_root, tiny, tmp_path):
    cam_dir = tmp_path / "cams"
    write_cams(voc_root, cam_dir, tiny.images)
    serial = crf_stage(cam_dir, voc_root, "train", tmp_path / "a", CRFConfig(workers=0),
                       progress=False)
    pooled = crf_stage(cam_dir, voc_root, "train", tmp_path / "b", CRFConfig(workers=2),
                       progress=False)
    assert len(list(serial.glob("*.npz"))) == 3
    for path in serial.glob("*.npz"):
        for a, b in zip(load_score_maps(path), load_score_maps(pooled / path.name), strict=True):
            np.testing.assert_array_equal(a, b)


def test_crf_score_maps_feed_the_affinity_dataset(voc_root, tiny, tmp_path):
    """End to end on the smoke profile: the crf stage's score maps are what the affinity
    dataset reads; its labels are the image's classes, background or ignored."""
    cfg = load_config("smoke", data_root=voc_root)
    write_cams(voc_root, tmp_path / "cams", tiny.images)
    out = crf_stage(tmp_path / "cams", voc_root, "train", tmp_path / "crf", cfg.crf,
                    progress=False)
    data = AffinityDataset(voc_root, "train", out, cfg.affinity.crop_size, cfg.affinity.resize_long,
                           cfg.affinity.color_jitter)
    torch.manual_seed(0)
    side = cfg.affinity.crop_size // 8
    for index, image_id in enumerate(data.ids):
        image, label, _ = data[index]
        assert image.shape == (3, side * 8, side * 8) and label.shape == (side, side)
        assert set(label.unique().tolist()) <= {0, *tiny.images[image_id][2], IGNORE}
        if min(tiny.images[image_id][:2]) <= 33:  # 5 blocks at most: a padding row or column
            assert (label == IGNORE).any()


def test_crf_stage_missing_cam_names_the_folder(voc_root, tiny, tmp_path):
    cam_dir = tmp_path / "cams"
    write_cams(voc_root, cam_dir, tiny.images)
    (cam_dir / "2007_000002.npz").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000002"):
        crf_stage(cam_dir, voc_root, "train", tmp_path / "out", CRFConfig(workers=0))
    with pytest.raises(ValueError, match="kind must be one of"):
        crf_stage(cam_dir, voc_root, "train", tmp_path / "out", CRFConfig(), kind="seg")
