"""Shared fixtures: tiny VOC-format datasets written into ``tmp_path``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from seamlib.data import voc
from seamlib.data.voc import (
    ANNOTATIONS,
    CLASSES,
    IGNORE,
    IMAGES,
    SEG_CLASS,
    SEG_CLASS_AUG,
    SEG_LISTS,
    write_list,
)
from seamlib.formats import save_label_png

# id -> (height, width, foreground classes present in the mask and the XML)
TINY_IMAGES: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "2007_000001": (30, 40, (15,)),
    "2007_000002": (50, 36, (8, 12)),
    "2007_000003": (24, 24, (1,)),
    "2007_000004": (48, 64, (3, 15, 20)),
    "2007_000005": (40, 40, (7,)),
    "2007_000006": (36, 60, (11, 5)),
}
TINY_LISTS: dict[str, list[str]] = {
    "train": ["2007_000001", "2007_000002", "2007_000003"],
    "val": ["2007_000004", "2007_000005"],
    "test": ["2007_000006"],
    "train_aug": ["2007_000001", "2007_000002", "2007_000003", "2007_000006"],
}


def tiny_mask(height: int, width: int, classes: tuple[int, ...]) -> np.ndarray:
    """Background with one vertical stripe per class and a void (255) border band."""
    mask = np.zeros((height, width), dtype=np.uint8)
    step = width // (len(classes) + 1)
    for k, cls in enumerate(classes):
        mask[2:-2, (k + 1) * step - 2:(k + 1) * step + 2] = cls
    mask[0, :] = IGNORE
    mask[:, -1] = IGNORE
    return mask


def tiny_xml(image_id: str, classes: tuple[int, ...]) -> str:
    """A minimal VOC annotation XML naming one object per class."""
    objects = "".join(f"<object><name>{CLASSES[c]}</name><difficult>0</difficult></object>"
                      for c in classes)
    return f"<annotation><filename>{image_id}.jpg</filename>{objects}</annotation>"


def build_voc(root: Path, images: dict[str, tuple[int, int, tuple[int, ...]]] | None = None,
              lists: dict[str, list[str]] | None = None, seed: int = 0) -> Path:
    """Write random JPEGs, palette masks (both mask folders), XMLs and lists under ``root``."""
    images = TINY_IMAGES if images is None else images
    lists = TINY_LISTS if lists is None else lists
    rng = np.random.default_rng(seed)
    for image_id, (height, width, classes) in images.items():
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        (root / IMAGES).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / IMAGES / f"{image_id}.jpg", quality=95)
        mask = tiny_mask(height, width, classes)
        save_label_png(root / SEG_CLASS / f"{image_id}.png", mask)
        save_label_png(root / SEG_CLASS_AUG / f"{image_id}.png", mask)
        (root / ANNOTATIONS).mkdir(parents=True, exist_ok=True)
        (root / ANNOTATIONS / f"{image_id}.xml").write_text(tiny_xml(image_id, classes))
    for name, ids in lists.items():
        write_list(root / SEG_LISTS / f"{name}.txt", ids)
    return root


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch) -> Path:
    """What the project derives from a user's dataset (voc.cache_dir) goes to a scratch folder,
    not to the repository's runs/."""
    folder = tmp_path_factory.mktemp("data_cache")
    monkeypatch.setattr(voc, "CACHE_ROOT", folder)
    return folder


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """A six-image VOC-format dataset with train/val/test/train_aug lists."""
    return build_voc(tmp_path / "VOC2012")


@pytest.fixture
def tiny() -> SimpleNamespace:
    """The fixture dataset's spec and builders, for tests that need more than ``voc_root``."""
    return SimpleNamespace(images=TINY_IMAGES, lists=TINY_LISTS, build=build_voc, xml=tiny_xml,
                           mask=tiny_mask)


@pytest.fixture
def voc_root_difficult(voc_root: Path) -> Path:
    """``voc_root`` whose 2007_000001 XML also names a difficult dog that its mask does not
    paint (as VOC masks paint difficult objects void): XML and mask labels disagree there."""
    path = voc_root / ANNOTATIONS / "2007_000001.xml"
    dog = "<object><name>dog</name><difficult>1</difficult></object></annotation>"
    path.write_text(path.read_text().replace("</annotation>", dog))
    return voc_root
