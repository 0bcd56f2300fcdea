"""PASCAL VOC 2012 constants and image lists, shared by the real and the synthetic data."""

from __future__ import annotations

import hashlib
from pathlib import Path

from seamlib.errors import InputError, MissingFile
from seamlib.formats import atomic_write

CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
NUM_CLASSES = len(CLASSES)  # 21, background included
IGNORE = 255  # void label: object borders and difficult regions, ignored by every metric

# ImageNet statistics used to normalise RGB inputs (the ResNet38 weights were trained with them).
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# Folder names of the VOC layout.
IMAGES = "JPEGImages"
SEG_CLASS = "SegmentationClass"  # VOC's own masks (train/val), with a void band on borders
SEG_CLASS_AUG = "SegmentationClassAug"  # SBD + VOC masks for every train_aug image
ANNOTATIONS = "Annotations"
SEG_LISTS = Path("ImageSets") / "Segmentation"
SBD_LISTS = Path("ImageSets") / "SegmentationAug"  # sbd_train.txt, sbd_val.txt (SBD's lists)

# A dataset root the project made holds one of these; any other root is the user's, only read.
GENERATED = "synthetic.json"  # the synthetic generator's settings, written before any image
PREPARED = ".seamlib_prepared"  # written once the VOC 2012 + SBD preparation has finished
CACHE_ROOT = Path("runs") / "data_cache"  # what is derived from a user's root, kept aside


def made_here(root: str | Path) -> bool:
    """Whether the project made the dataset root (generated or downloaded it)."""
    return (Path(root) / GENERATED).is_file() or (Path(root) / PREPARED).is_file()


def cache_dir(root: str | Path) -> Path:
    """Where what the project derives from a dataset (label caches, validation passes, the
    label cross-check) is kept: the root itself when the project made it, else a folder under
    ``CACHE_ROOT`` named after the root's absolute path, so a user's folder is never written."""
    root = Path(root)
    if made_here(root):
        return root
    where = str(root.resolve())
    return CACHE_ROOT / f"{root.resolve().name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"


def read_list(path: Path) -> list[str]:
    """Read an ImageSets list: one image id per line (extra columns, as in SBD lists, ignored).

    Blank lines and duplicate ids are errors naming the file and line, never skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"image list {path} does not exist")
    ids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            raise InputError(f"{path}:{lineno}: blank line in image list")
        image_id = line.split()[0]
        if image_id in seen:
            raise InputError(f"{path}:{lineno}: duplicate id {image_id!r} "
                             f"(first on line {seen[image_id]})")
        seen[image_id] = lineno
        ids.append(image_id)
    return ids


def write_list(path: Path, ids: list[str]) -> None:
    """Write an ImageSets list atomically, one id per line."""
    atomic_write(Path(path), lambda tmp: tmp.write_text("".join(f"{i}\n" for i in ids)))
