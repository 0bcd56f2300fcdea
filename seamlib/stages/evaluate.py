"""Stage evaluate: mIoU and the over/under-activation rates mFP/mFN, background-threshold
sweeps of CAMs, and ``evaluate``: one scoring of any stage's output (CAM
files, pseudo-label or segmentation PNGs) against the masks of a list.

Counts accumulate over a whole list before any ratio is taken (as in the authors' code):
per class T (ground truth), P (prediction), TP, ignoring void (255) ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from seamlib.data.lists import check_inputs, list_path
from seamlib.data.voc import CLASSES, IGNORE, NUM_CLASSES, SEG_CLASS, read_list
from seamlib.errors import InputError, MissingFile
from seamlib.formats import iter_cams, json_safe, load_label_png


def confusion(pred: np.ndarray, gt: np.ndarray, n: int = NUM_CLASSES) -> np.ndarray:
    """(n, n) counts of ground truth (rows) vs prediction (columns), void pixels ignored."""
    if pred.shape != gt.shape:
        raise InputError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    keep = gt != IGNORE
    index = gt[keep].astype(np.int64) * n + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=n * n).reshape(n, n)


def scores(conf: np.ndarray, absent_as_zero: bool = False) -> dict[str, Any]:
    """IoU per class, mIoU, FP and FN rates per class and their means (paper Sec. 4.3).

    A class in neither ground truth nor prediction has no IoU: by default it is NaN in the
    per-class lists and left out of the means, and ``present``/``absent`` name the classes the
    means run over and those left out. ``absent_as_zero`` reproduces the authors' code, which
    counts such a class as IoU 0 (FP, FN 0) in every mean."""
    tp = np.diag(conf).astype(float)
    t, p = conf.sum(1).astype(float), conf.sum(0).astype(float)
    union = t + p - tp
    present = union > 0 if not absent_as_zero else np.ones(len(union), bool)
    safe = np.maximum(union, 1)
    iou, fp, fn = (np.where(present, x / safe, np.nan) for x in (tp, p - tp, t - tp))
    return {"miou": _mean(iou), "mfp": _mean(fp), "mfn": _mean(fn),
            "iou": iou.tolist(), "fp": fp.tolist(), "fn": fn.tolist(),
            "present": np.flatnonzero(present).tolist(),
            "absent": np.flatnonzero(~present).tolist()}


def _mean(values: np.ndarray) -> float:
    """Mean over the non-NaN values; NaN when there are none."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if len(kept) else float("nan")


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


# ------------------------------------------------------------------ any stage's output

THRESHOLDS = np.round(np.arange(0.0, 0.96, 0.01), 2)  # background thresholds of a CAM sweep


def ground_truth(root: str | Path, mask_dir: str, iid: str) -> np.ndarray:
    """The label mask of ``iid`` under ``root/mask_dir``; a missing file is an error naming it."""
    path = Path(root) / mask_dir / f"{iid}.png"
    if not path.is_file():
        raise MissingFile(f"{path}: no ground-truth mask for {iid!r}")
    return load_label_png(path)


def cam_confusions(cam_dir: str | Path, root: str | Path, list_name: str,
                   thresholds: np.ndarray, mask_dir: str = SEG_CLASS) -> np.ndarray:
    """Confusion matrices (T, 21, 21) of the CAM pseudo labels of a list at every threshold."""
    check_inputs(root, [list_name], need_masks=mask_dir, need_images=False)
    ids = read_list(list_path(root, list_name))
    samples = ((cams, classes, ground_truth(root, mask_dir, iid))
               for iid, cams, classes in iter_cams(cam_dir, ids))
    return threshold_sweep(samples, thresholds)


def image_mious(cam_dir: str | Path, root: str | Path, list_name: str, threshold: float,
                mask_dir: str = SEG_CLASS) -> dict[str, float]:
    """mIoU of each image's CAM pseudo label at ``threshold``, over the classes in that image's
    ground truth or prediction: finds the images where two methods differ most."""
    check_inputs(root, [list_name], need_masks=mask_dir, need_images=False)
    ids = read_list(list_path(root, list_name))
    return {iid: scores(confusion(cam_prediction(cams, classes, threshold),
                                  ground_truth(root, mask_dir, iid)))["miou"]
            for iid, cams, classes in iter_cams(cam_dir, ids)}


def png_confusion(pred_dir: str | Path, root: str | Path, list_name: str,
                  mask_dir: str = SEG_CLASS) -> np.ndarray:
    """Confusion matrix (21, 21) of label PNGs (pseudo labels, segmentation) over a list."""
    check_inputs(root, [list_name], need_masks=mask_dir, need_images=False)
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for iid in read_list(list_path(root, list_name)):
        path = Path(pred_dir) / f"{iid}.png"
        if not path.is_file():
            raise MissingFile(f"{path}: no prediction for {iid!r}")
        pred = load_label_png(path)
        if pred.max(initial=0) >= NUM_CLASSES:
            raise InputError(f"{path}: prediction holds class {pred.max()}; expected 0..20")
        gt = ground_truth(root, mask_dir, iid)  # its own errors name the mask
        try:
            conf += confusion(pred, gt)
        except InputError as err:  # the prediction's shape
            raise InputError(f"{path}: {err}") from None
    return conf


def detect_kind(pred_dir: str | Path, first_id: str) -> str:
    """"cam" if the list's first image has ``<id>.npz`` in ``pred_dir``, "png" for ``<id>.png``."""
    for kind, ext in (("cam", "npz"), ("png", "png")):
        if (Path(pred_dir) / f"{first_id}.{ext}").is_file():
            return kind
    raise MissingFile(f"{pred_dir}: neither {first_id}.npz (CAMs) nor {first_id}.png "
                            f"(label maps) for the list's first image")


def evaluate(pred_dir: str | Path, root: str | Path, list_name: str, kind: str = "auto",
             threshold: float | None = None, mask_dir: str = SEG_CLASS) -> dict[str, Any]:
    """Score any stage's output against the masks of a list: mIoU, per-class IoU, mFP/mFN and
    the confusion matrix (rows ground truth), as JSON-ready data (NaN -> None).

    ``kind`` is "cam" (CAM npz files, ``seamlib.formats``), "png" (label maps: pseudo labels or
    segmentation) or "auto" (from the files). CAMs are scored at ``threshold`` or, when it is
    None, at the best threshold of a sweep over ``THRESHOLDS`` (the curve is included)."""
    if threshold is not None and not 0 <= threshold <= 1:
        raise InputError(f"threshold {threshold}: expected a CAM background threshold in "
                         f"[0, 1], or none for the best of a sweep")
    ids = read_list(list_path(root, list_name))
    if not ids:
        raise InputError(f"{list_path(root, list_name)}: empty list, nothing to evaluate")
    kind = detect_kind(pred_dir, ids[0]) if kind == "auto" else kind
    result: dict[str, Any] = {"pred_dir": str(pred_dir), "list": list_name, "kind": kind,
                              "images": len(ids), "mask_dir": mask_dir}
    if kind == "png":
        conf = png_confusion(pred_dir, root, list_name, mask_dir)
    elif kind == "cam":
        thresholds = THRESHOLDS if threshold is None else np.array([threshold])
        confs = cam_confusions(pred_dir, root, list_name, thresholds, mask_dir)
        best = int(np.nanargmax([scores(c)["miou"] for c in confs]))
        conf = confs[best]
        result["threshold"] = float(thresholds[best])
        if threshold is None:
            result["curve"] = sweep_table(confs, thresholds)
    else:
        raise InputError(f"kind {kind!r}: expected 'auto', 'cam' or 'png'")
    result.update(scores(conf), classes=list(CLASSES), confusion=conf.tolist())
    return json_safe(result)


def sweep_metrics(train_confs: np.ndarray, val_confs: np.ndarray) -> dict:
    """Metrics of a method from the threshold sweeps of the cam list (``train``) and val:
    the best threshold on train, the threshold chosen on val, and the train numbers at both."""
    curve, val_curve = sweep_table(train_confs, THRESHOLDS), sweep_table(val_confs, THRESHOLDS)
    best = int(np.nanargmax([r["miou"] for r in curve]))
    chosen = int(np.nanargmax([r["miou"] for r in val_curve]))
    at_best, at_chosen = scores(train_confs[best]), scores(train_confs[chosen])
    return {
        "train_miou_best": at_best["miou"], "best_threshold": float(THRESHOLDS[best]),
        "train_miou_at_val_threshold": at_chosen["miou"],
        "val_threshold": float(THRESHOLDS[chosen]),
        "mfp_best": at_best["mfp"], "mfn_best": at_best["mfn"],
        "mfp_at_val_threshold": at_chosen["mfp"], "mfn_at_val_threshold": at_chosen["mfn"],
        "per_class_iou_best": at_best["iou"], "per_class_iou_at_val_threshold": at_chosen["iou"],
        "classes_in_means": [CLASSES[c] for c, v in enumerate(at_best["iou"]) if np.isfinite(v)],
        "classes_with_ground_truth": [CLASSES[c] for c in np.flatnonzero(train_confs[best].sum(1))],
        "curve": {k: [r[k] for r in curve] for k in ("miou", "mfp", "mfn")},
        "val_curve": {k: [r[k] for r in val_curve] for k in ("miou", "mfp", "mfn")},
    }


def at_threshold(metrics: dict, which: str = "best") -> dict:
    """The CAM scores of a ``sweep_metrics`` record at its best threshold ("best") or at the
    one chosen on val ("val"), under the names of ``scores``: miou, mfp, mfn, iou, threshold."""
    if which not in ("best", "val"):
        raise InputError(f"which={which!r}: expected 'best' or 'val'")
    at = "best" if which == "best" else "at_val_threshold"
    return {"miou": metrics[f"train_miou_{at}"], "mfp": metrics[f"mfp_{at}"],
            "mfn": metrics[f"mfn_{at}"], "iou": metrics[f"per_class_iou_{at}"],
            "threshold": metrics[f"{which}_threshold"]}
