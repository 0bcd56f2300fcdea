"""Dense CRF and the CRF label stage (seamlib/stages/crf.py)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from seamlib.config import CRFConfig
from seamlib.data.lists import list_path
from seamlib.data.voc import IGNORE, load_label_png, read_list
from seamlib.manifest import MANIFEST
from seamlib.stages.cams import save_cam
from seamlib.stages.crf import (
    combine_affinity_labels,
    crf_stage,
    dense_crf,
    to_label,
    with_background,
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
    with pytest.raises(ImportError, match="'crf' extra"):
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


def test_combine_affinity_labels():
    low = np.array([[0, 0, 5, 5]], np.uint8)  # alpha 4: foreground where confident
    high = np.array([[0, 5, 0, 5]], np.uint8)  # alpha 24: background where confident
    assert combine_affinity_labels(low, high).tolist() == [[0, IGNORE, 0, 5]]


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
    for image_id in read_list(list_path(voc_root, "train")):
        height, width, classes = tiny.images[image_id]
        label = load_label_png(out / f"{image_id}.png")
        assert label.shape == (height, width)
        allowed = {0, *classes} | ({IGNORE} if kind == "affinity" else set())
        assert set(np.unique(label).tolist()) <= allowed
    assert (out / MANIFEST).is_file()
    # Resume: nothing to redo; a changed CAM file redoes only its image.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    crf_stage(cam_dir, voc_root, "train", out, cfg, kind=kind, progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    first = "2007_000001"
    label = torch.zeros(20)
    label[14] = 1
    save_cam(cam_dir / f"{first}.npz", torch.zeros(20, 30, 40), label)
    crf_stage(cam_dir, voc_root, "train", out, cfg, kind=kind, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert [n for n in stamps if stamps[n] != after[n]] == [f"{first}.png"]
    # Other settings in the same folder are refused, naming the setting.
    with pytest.raises(ValueError, match="bilateral_srgb"):
        crf_stage(cam_dir, voc_root, "train", out, CRFConfig(bilateral_srgb=5), kind=kind,
                  progress=False)


def test_crf_stage_pool_matches_serial(voc_root, tiny, tmp_path):
    cam_dir = tmp_path / "cams"
    write_cams(voc_root, cam_dir, tiny.images)
    serial = crf_stage(cam_dir, voc_root, "train", tmp_path / "a", CRFConfig(workers=0),
                       progress=False)
    pooled = crf_stage(cam_dir, voc_root, "train", tmp_path / "b", CRFConfig(workers=2),
                       progress=False)
    for path in serial.glob("*.png"):
        np.testing.assert_array_equal(load_label_png(path), load_label_png(pooled / path.name))


def test_crf_stage_missing_cam_names_the_folder(voc_root, tiny, tmp_path):
    cam_dir = tmp_path / "cams"
    write_cams(voc_root, cam_dir, tiny.images)
    (cam_dir / "2007_000002.npz").unlink()
    with pytest.raises(FileNotFoundError, match="2007_000002"):
        crf_stage(cam_dir, voc_root, "train", tmp_path / "out", CRFConfig(workers=0))
    with pytest.raises(ValueError, match="kind must be one of"):
        crf_stage(cam_dir, voc_root, "train", tmp_path / "out", CRFConfig(), kind="seg")
