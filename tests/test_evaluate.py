"""Metrics against hand computations."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seamlib.cli import main
from seamlib.data.lists import DataError, list_path
from seamlib.data.voc import SEG_CLASS, write_list
from seamlib.errors import InputError
from seamlib.formats import json_safe, load_cam, save_cam
from seamlib.stages.evaluate import (
    THRESHOLDS,
    at_threshold,
    cam_prediction,
    confusion,
    evaluate,
    image_mious,
    scores,
    sweep_metrics,
    sweep_table,
    threshold_sweep,
)


def test_confusion_ignores_void_and_counts_gt_rows():
    gt = np.array([[0, 1, 255], [1, 1, 2]])
    pred = np.array([[0, 2, 1], [1, 1, 2]])
    conf = confusion(pred, gt, n=3)
    assert conf.tolist() == [[1, 0, 0], [0, 2, 1], [0, 0, 1]]


def test_scores_iou_fp_fn():
    conf = np.array([[1, 0, 0], [0, 2, 1], [0, 0, 1]])
    s = scores(conf)
    # class 1: T=3, P=2, TP=2 -> IoU 2/3, FP 0, FN 1/3; class 2: T=1, P=2, TP=1 -> 1/2, 1/2, 0
    assert s["iou"] == pytest.approx([1, 2 / 3, 1 / 2])
    assert s["fp"] == pytest.approx([0, 0, 1 / 2])
    assert s["fn"] == pytest.approx([0, 1 / 3, 0])
    assert s["miou"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert s["mfp"] + s["mfn"] + s["miou"] == pytest.approx(1.0)
    assert s["present"] == [0, 1, 2] and s["absent"] == []


def test_scores_leave_absent_classes_out_unless_asked_for_parity():
    conf = np.diag([5, 0, 3])  # perfect prediction; class 1 in neither gt nor prediction
    s = scores(conf)
    assert s["miou"] == 1.0 and s["mfp"] == 0.0 and s["mfn"] == 0.0
    assert s["iou"][0] == 1.0 and math.isnan(s["iou"][1]) and math.isnan(s["fp"][1])
    assert s["present"] == [0, 2] and s["absent"] == [1]
    parity = scores(conf, absent_as_zero=True)  # the authors' code: absent class has IoU 0
    assert parity["miou"] == pytest.approx(2 / 3) and parity["iou"] == [1.0, 0.0, 1.0]
    assert parity["present"] == [0, 1, 2] and parity["absent"] == []


def test_a_class_only_predicted_counts_as_zero_not_absent():
    s = scores(np.array([[2, 2], [0, 0]]))  # class 1: no gt pixel, two predicted
    assert s["iou"] == [0.5, 0.0] and s["absent"] == []


def test_scores_are_valid_json_with_nan_as_null():
    s = json_safe(scores(np.diag([1, 0])))
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text)["iou"] == [1.0, None]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 2)), np.zeros((2, 3)))


def test_cam_prediction_background_wins_ties():
    # columns: below, exactly at (a tie with the background score 0.5), and above the threshold;
    # the last two columns tie two foreground classes: the first listed class wins
    cams = np.array([[[0.25, 0.5, 0.75, 0.75]], [[0.125, 0.5, 0.625, 0.75]]], np.float32)
    pred = cam_prediction(cams, np.array([4, 7]), threshold=0.5)
    assert pred.tolist() == [[0, 0, 4, 4]]
    assert cam_prediction(cams, np.array([7, 4]), threshold=0.5).tolist() == [[0, 0, 7, 7]]
    assert cam_prediction(np.zeros((0, 1, 3)), np.array([], int), 0.1).tolist() == [[0, 0, 0]]


def test_threshold_sweep_matches_single_evaluations():
    rng = np.random.default_rng(0)
    samples = [(rng.random((2, 4, 5)), np.array([3, 9]), rng.choice([0, 3, 9, 255], (4, 5)))
               for _ in range(3)]
    thresholds = np.array([0.0, 0.4, 0.8])
    confs = threshold_sweep(samples, thresholds)
    for i, thr in enumerate(thresholds):
        direct = sum(confusion(cam_prediction(c, k, thr), g) for c, k, g in samples)
        assert (confs[i] == direct).all()
    rows = sweep_table(confs, thresholds)
    assert [r["threshold"] for r in rows] == [0.0, 0.4, 0.8]


def test_sweep_metrics_at_the_best_and_the_val_chosen_threshold():
    rng = np.random.default_rng(1)
    def sweep():
        samples = [(rng.random((2, 6, 6)), np.array([3, 9]), rng.choice([0, 3, 9], (6, 6)))
                   for _ in range(4)]
        return threshold_sweep(samples, THRESHOLDS)
    train, val = sweep(), sweep()
    metrics = sweep_metrics(train, val)
    miou = [scores(c)["miou"] for c in train]
    best, chosen = int(np.argmax(miou)), int(np.argmax([scores(c)["miou"] for c in val]))
    assert at_threshold(metrics)["miou"] == max(miou)
    assert at_threshold(metrics)["threshold"] == THRESHOLDS[best]
    at_val = at_threshold(metrics, "val")
    assert at_val["threshold"] == THRESHOLDS[chosen] and at_val["miou"] == miou[chosen]
    assert at_val["mfn"] == scores(train[chosen])["mfn"]
    with pytest.raises(InputError, match="which='worst'"):
        at_threshold(metrics, "worst")


def write_png(path: Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(label.astype(np.uint8), mode="L").save(path)


GT = {"a": np.array([[0, 0, 5, 5], [0, 255, 5, 5]]), "b": np.array([[0, 12, 12, 0]])}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "VOC2012"
    write_list(list_path(root, "val"), list(GT))
    for iid, mask in GT.items():
        write_png(root / SEG_CLASS / f"{iid}.png", mask)
    return root


def test_evaluate_label_pngs_hand_counts(root, tmp_path):
    write_png(tmp_path / "pred" / "a.png", np.array([[0, 5, 5, 5], [0, 0, 5, 0]]))
    write_png(tmp_path / "pred" / "b.png", np.array([[0, 12, 12, 0]]))
    out = evaluate(tmp_path / "pred", root, "val")
    assert out["kind"] == "png" and out["images"] == 2 and out["classes"][5] == "bottle"
    conf = np.array(out["confusion"])
    # background: 5 gt pixels, 4 kept, 1 -> bottle (5); bottle: 4 gt, 3 kept, 1 -> background
    assert conf.sum() == 11 and conf[0, 0] == 4 and conf[0, 5] == 1 and conf[5, 0] == 1
    assert out["iou"][0] == pytest.approx(4 / 6) and out["iou"][5] == pytest.approx(3 / 5)
    assert out["iou"][12] == 1.0 and out["iou"][1] is None  # absent: null, not 0
    assert out["present"] == [0, 5, 12] and len(out["absent"]) == 18
    assert out["miou"] == pytest.approx((4 / 6 + 3 / 5 + 1) / 3)
    json.dumps(out, allow_nan=False)


def test_evaluate_cams_at_a_threshold_and_by_sweep(root, tmp_path):
    rng = np.random.default_rng(0)
    cams = {"a": (rng.random((1, 2, 4)), [5]), "b": (rng.random((2, 1, 4)), [12, 3])}
    for iid, (cam, classes) in cams.items():  # save_cam takes all 20 maps and the label
        label, full = torch.zeros(20), torch.zeros(20, *cam.shape[1:])
        label[torch.tensor(classes) - 1] = 1
        full[torch.tensor(classes) - 1] = torch.tensor(cam, dtype=torch.float32)
        save_cam(tmp_path / "cams" / f"{iid}.npz", full, label)
    stored = {iid: load_cam(tmp_path / "cams" / f"{iid}.npz") for iid in GT}
    direct = sum(confusion(cam_prediction(c, k, 0.4), GT[iid]) for iid, (c, k) in stored.items())
    out = evaluate(tmp_path / "cams", root, "val", threshold=0.4)
    assert out["kind"] == "cam" and out["threshold"] == 0.4 and "curve" not in out
    assert out["confusion"] == direct.tolist()
    swept = evaluate(tmp_path / "cams", root, "val", kind="cam")
    assert len(swept["curve"]) == len(THRESHOLDS)
    best = max(r["miou"] for r in swept["curve"])
    assert swept["miou"] == pytest.approx(best)
    assert swept["threshold"] == swept["curve"][[r["miou"] for r in swept["curve"]].index(best)][
        "threshold"]


def test_image_mious_scores_each_image_over_its_own_classes(root, tmp_path):
    # a: bottle CAM high on the right half -> perfect; b: class 12 CAM high on pixel 1 only
    label = torch.zeros(20)
    label[4] = 1
    full = torch.zeros(20, 2, 4)
    full[4, :, 2:] = 0.9
    save_cam(tmp_path / "cams" / "a.npz", full, label)
    label = torch.zeros(20)
    label[11] = 1
    full = torch.zeros(20, 1, 4)
    full[11, 0, 1] = 0.9
    save_cam(tmp_path / "cams" / "b.npz", full, label)
    out = image_mious(tmp_path / "cams", root, "val", threshold=0.5)
    assert out["a"] == pytest.approx(1.0)
    # b: background 2/3 (gt 0 at pixels 0, 3; predicted at 0, 2, 3), dog 1/2
    assert out["b"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert list(out) == ["a", "b"]


def test_evaluate_errors_name_the_file(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="a.npz.*a.png"):
        evaluate(tmp_path / "nothing", root, "val")
    write_png(tmp_path / "pred" / "a.png", np.zeros((2, 4)))
    with pytest.raises(FileNotFoundError, match=r"pred/b\.png"):
        evaluate(tmp_path / "pred", root, "val")
    write_png(tmp_path / "pred" / "b.png", np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"pred/b\.png.*shape"):
        evaluate(tmp_path / "pred", root, "val")
    write_png(tmp_path / "pred" / "b.png", np.full((1, 4), 21))
    with pytest.raises(ValueError, match=r"pred/b\.png.*class 21"):
        evaluate(tmp_path / "pred", root, "val")
    write_png(tmp_path / "pred" / "b.png", np.zeros((1, 4)))
    (root / SEG_CLASS / "b.png").unlink()  # the masks are validated before scoring
    with pytest.raises(DataError, match=r"SegmentationClass/b\.png: missing mask"):
        evaluate(tmp_path / "pred", root, "val", kind="png")


def test_seam_evaluate_command_writes_valid_json(root, tmp_path, capsys):
    for iid, mask in GT.items():
        write_png(tmp_path / "pred" / f"{iid}.png", np.where(mask == 255, 0, mask))
    main(["evaluate", str(tmp_path / "pred"), "--list", "val", "--data-root", str(root),
          "--out", str(tmp_path / "r.json")])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["miou"] == 1.0 and saved["iou"][1] is None
    assert json.loads(capsys.readouterr().out)["miou"] == 1.0
