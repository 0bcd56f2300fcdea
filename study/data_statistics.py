"""Measured statistics of a VOC-format dataset: class frequencies, co-occurrence, object
sizes, pixel shares and image sizes of a list (notebook 01_data, the datasheets)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from tqdm.auto import tqdm

from seamlib.data import voc
from seamlib.data.lists import labels_for, list_path
from seamlib.formats import load_label_png

SIZE_BINS = (0.0, 0.01, 0.05, 0.15, 0.35, 1.01)  # object box area / image area
SPLITS = ("train", "val", "test", "train_aug")


def split_sizes(root: Path) -> dict[str, int]:
    """Images per list, for the VOC lists and the SBD-style ones that exist."""
    paths = {s: list_path(root, s) for s in SPLITS}
    paths.update({p.stem: p for p in sorted((root / voc.SBD_LISTS).glob("*.txt"))})
    return {name: len(voc.read_list(p)) for name, p in paths.items() if p.exists()}


def object_boxes(path: Path) -> tuple[tuple[int, int], list[float]]:
    """Image size and the box-area fraction of every object of a VOC XML annotation."""
    tree = ET.parse(path).getroot()
    w, h = (int(tree.find(f"size/{k}").text) for k in ("width", "height"))
    fractions = []
    for box in tree.iter("bndbox"):
        x0, y0, x1, y1 = (float(box.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax"))
        fractions.append((x1 - x0 + 1) * (y1 - y0 + 1) / (w * h))
    return (w, h), fractions


def dataset_statistics(root: str | Path, list_name: str = "train_aug") -> dict:
    """Class frequencies, co-occurrence, object sizes, pixel shares and image sizes of a list."""
    root = Path(root)
    labels = labels_for(root, list_name)
    ids = list(labels)
    multi_hot = np.stack([labels[i] for i in ids])
    pixels = np.zeros(256, np.int64)
    sizes, fractions, counts = [], [], []
    for iid in tqdm(ids, desc=f"statistics {list_name}", leave=False):
        pixels += np.bincount(load_label_png(root / voc.SEG_CLASS_AUG / f"{iid}.png").ravel(),
                              minlength=256)
        size, fr = object_boxes(root / voc.ANNOTATIONS / f"{iid}.xml")
        sizes.append(size)
        fractions += fr
        counts.append(len(fr))
    labelled = pixels[: voc.NUM_CLASSES]
    hist, _ = np.histogram(fractions, bins=SIZE_BINS)
    wh = np.array(sizes)
    return {
        "list": list_name,
        "splits": split_sizes(root),
        "images_per_class": dict(zip(voc.CLASSES[1:], multi_hot.sum(0).astype(int).tolist(),
                                     strict=True)),
        "pixel_share": dict(zip(voc.CLASSES, (labelled / labelled.sum()).round(4).tolist(),
                                strict=True)),
        "void_share": round(float(pixels[voc.IGNORE] / pixels.sum()), 4),
        "cooccurrence": (multi_hot.T @ multi_hot).astype(int).tolist(),
        "objects_per_image": np.bincount(counts).tolist(),
        "object_size_bins": list(SIZE_BINS),
        "object_size_hist": hist.tolist(),
        "image_width": [int(wh[:, 0].min()), float(np.median(wh[:, 0])), int(wh[:, 0].max())],
        "image_height": [int(wh[:, 1].min()), float(np.median(wh[:, 1])), int(wh[:, 1].max())],
    }


def top_pairs(cooc: list[list[int]], k: int = 10) -> list[tuple[str, str, int]]:
    """The k most frequent pairs of different classes."""
    m = np.array(cooc)
    pairs = [(voc.CLASSES[i + 1], voc.CLASSES[j + 1], int(m[i, j]))
             for i in range(len(m)) for j in range(i + 1, len(m))]
    return sorted(pairs, key=lambda p: -p[2])[:k]
