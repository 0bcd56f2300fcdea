"""Stage evaluate: mIoU and the over/under-activation rates mFP/mFN, background-threshold
sweeps of CAMs, and classification mAP.

Counts accumulate over a whole list before any ratio is taken (as in the authors' code):
per class T (ground truth), P (prediction), TP, ignoring void (255) ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from seamlib.data.voc import IGNORE, NUM_CLASSES


def confusion(pred: np.ndarray, gt: np.ndarray, n: int = NUM_CLASSES) -> np.ndarray:
    """(n, n) counts of ground truth (rows) vs prediction (columns), void pixels ignored."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    keep = gt != IGNORE
    index = gt[keep].astype(np.int64) * n + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=n * n).reshape(n, n)


def scores(conf: np.ndarray) -> dict[str, float | list[float]]:
    """IoU per class, mIoU, FP and FN rates per class and their means (paper Sec. 4.3)."""
    tp = np.diag(conf).astype(float)
    t, p = conf.sum(1).astype(float), conf.sum(0).astype(float)
    union = np.maximum(t + p - tp, 1)
    iou, fp, fn = tp / union, (p - tp) / union, (t - tp) / union
    return {"miou": float(iou.mean()), "mfp": float(fp.mean()), "mfn": float(fn.mean()),
            "iou": iou.tolist(), "fp": fp.tolist(), "fn": fn.tolist()}


def cam_prediction(cams: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray:
    """Label map from foreground CAMs (K, H, W) of ``classes`` (1-based) with a constant
    background score: background wins ties, as with argmax over [bg, cams]."""
    if len(classes) == 0:
        return np.zeros(cams.shape[1:], np.uint8)
    best = cams.argmax(0)
    return np.where(cams.max(0) > threshold, np.asarray(classes)[best], 0).astype(np.uint8)


def threshold_sweep(samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
                    thresholds: np.ndarray) -> np.ndarray:
    """Confusion matrices (T, 21, 21) of CAM pseudo labels for every background threshold.

    ``samples`` yields (cams (K, H, W), classes (K,), ground truth (H, W))."""
    confs = np.zeros((len(thresholds), NUM_CLASSES, NUM_CLASSES), np.int64)
    for cams, classes, gt in samples:
        for i, thr in enumerate(thresholds):
            confs[i] += confusion(cam_prediction(cams, classes, thr), gt)
    return confs


def sweep_table(confs: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """Rows {threshold, miou, mfp, mfn} of a sweep, for curves and tables."""
    rows = []
    for thr, conf in zip(thresholds, confs, strict=True):
        s = scores(conf)
        rows.append({"threshold": float(thr), "miou": s["miou"], "mfp": s["mfp"],
                     "mfn": s["mfn"]})
    return rows


def average_precision(scores_: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class average precision (area under the precision-recall steps, as VOC >= 2010).

    ``scores_`` and ``targets`` are (N, C); classes with no positive get NaN."""
    aps = np.full(scores_.shape[1], np.nan)
    for c in range(scores_.shape[1]):
        order = np.argsort(-scores_[:, c], kind="stable")
        hits = targets[order, c] > 0
        if not hits.any():
            continue
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps[c] = precision[hits].mean()
    return aps
