"""The geometry table of a profile's benchmark: how many stride-8 cells an object
covers in SEAM's two branches.

The main branch sees the training crop; the transformed branch sees the crop rescaled by the
``loss.transform`` factor (0.3 in the paper), and ER compares CAMs on that branch's map. Images
are taken at the mean training resize (long side = the middle of ``data.resize_long``). An
object's body is the pixels of
its class inside its annotated box in ``SegmentationClass`` (void excluded); an object covers
less than one cell when that area is below one cell's area.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from seamlib.config import Config
from seamlib.data import voc
from seamlib.formats import atomic_write, load_label_png
from seamlib.transforms import Compose, Rescale, parse_transform

STRIDE = 8  # the network's output stride


def rescale_factor(spec: str) -> float:
    """The product of the rescale factors in a transform spec (1 when it has none)."""
    transform = parse_transform(spec)
    parts = transform.transforms if isinstance(transform, Compose) else (transform,)
    return math.prod(p.factor for p in parts if isinstance(p, Rescale))


def map_side(crop: int, factor: float) -> int:
    """Side of the stride-8 map of a ``crop`` input rescaled by ``factor`` (interpolate floors the
    size; each stride-2 layer rounds up)."""
    return math.ceil(math.floor(crop * factor) / STRIDE)


def body_areas(root: Path, list_name: str) -> list[tuple[float, int]]:
    """(body pixels, image long side) of every annotated object of a list."""
    out = []
    for iid in voc.read_list(root / voc.SEG_LISTS / f"{list_name}.txt"):
        label = load_label_png(root / voc.SEG_CLASS / f"{iid}.png")
        tree = ET.parse(root / voc.ANNOTATIONS / f"{iid}.xml").getroot()
        for obj in tree.iter("object"):
            cls = voc.CLASSES.index(obj.find("name").text)
            x0, y0, x1, y1 = (int(obj.find(f"bndbox/{k}").text) - 1
                              for k in ("xmin", "ymin", "xmax", "ymax"))
            body = int((label[y0:y1 + 1, x0:x1 + 1] == cls).sum())
            out.append((float(body), max(label.shape)))
    return out


def geometry_table(cfg: Config, list_name: str = "train") -> dict:
    """Map side and share of objects under one cell, for the main and the transformed branch."""
    root, crop = Path(cfg.data.root), cfg.data.crop_size
    objects = body_areas(root, list_name)
    branches = {"main": 1.0, "transformed": rescale_factor(cfg.loss.transform)}
    long_side = sum(cfg.data.resize_long) / 2
    table = {"profile": cfg.profile, "list": list_name, "objects": len(objects), "crop": crop,
             "resize_long": long_side, "branches": {}}
    for name, factor in branches.items():
        cells = [body * (long_side * factor / (long * STRIDE)) ** 2
                 for body, long in objects]
        table["branches"][name] = {
            "factor": factor, "map_side": map_side(crop, factor),
            "under_one_cell": float(np.mean(np.array(cells) < 1)) if cells else None,
            "median_cells": float(np.median(cells)) if cells else None}
    return table


def geometry_markdown(table: dict) -> str:
    """The table as markdown, one row per branch."""
    lines = [f"## Object size in stride-8 cells ({table['profile']}, `{table['list']}`, "
             f"{table['objects']} objects)", "",
             f"Crop {table['crop']}; images at long side {table['resize_long']:g} (the mean "
             "training resize); body = the object's class pixels inside its box.", "",
             "| branch | input scale | map side | objects under one cell | median cells |",
             "|---|---|---|---|---|"]
    for name, b in table["branches"].items():
        share = "n/a" if b["under_one_cell"] is None else f"{100 * b['under_one_cell']:.1f} %"
        median = "n/a" if b["median_cells"] is None else f"{b['median_cells']:.1f}"
        lines.append(f"| {name} | {b['factor']:g} | {b['map_side']}x{b['map_side']} | {share} "
                     f"| {median} |")
    return "\n".join(lines) + "\n"


def write_geometry_sheet(cfg: Config, out: str | Path) -> dict:
    """Measure the table and write ``out``/geometry_sheet.{json,md}; return the table."""
    out = Path(out)
    table = geometry_table(cfg)
    atomic_write(out / "geometry_sheet.json", lambda t: t.write_text(json.dumps(table, indent=1)))
    atomic_write(out / "geometry_sheet.md", lambda t: t.write_text(geometry_markdown(table)))
    return table
