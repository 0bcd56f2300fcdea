"""Metrics against hand computations."""

import json
import math

import numpy as np
import pytest

from seamlib.evaluate import (
    average_precision,
    cam_prediction,
    confusion,
    json_safe,
    scores,
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
    cams = np.array([[[0.2, 0.5, 0.9]], [[0.1, 0.6, 0.3]]])
    pred = cam_prediction(cams, np.array([4, 7]), threshold=0.5)
    assert pred.tolist() == [[0, 7, 4]]
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


def test_average_precision_uses_the_voc2010_precision_envelope():
    # ranks 1..5 hit, miss, miss, hit, hit: precision at the hits 1, 2/4, 3/5. Without the
    # envelope AP = (1 + 0.5 + 0.6) / 3 = 0.700; the monotone envelope lifts rank 4 to 0.6
    # (the best precision at equal or higher recall): AP = (1 + 0.6 + 0.6) / 3 = 0.733.
    scores_ = np.array([[0.9], [0.8], [0.7], [0.6], [0.5]])
    targets = np.array([[1], [0], [0], [1], [1]])
    assert average_precision(scores_, targets)[0] == pytest.approx(2.2 / 3)


def test_average_precision_hand_example():
    scores_ = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3]])
    targets = np.array([[1, 0], [0, 0], [1, 0]])
    ap = average_precision(scores_, targets)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert np.isnan(ap[1])
