"""Image lists (train_aug), image-level class labels and the validation pass run before stages.

Image-level labels come from the XML annotations by default, as in the authors' code (every
object named in ``Annotations/<id>.xml``, difficult ones included; VOC masks paint difficult
objects as void), or from the classes painted in the masks (``DataConfig.label_source``).
Label cache format: ``<cache>/cls_labels_<source>.json`` (one file per source, so labels from one
are never read as the other) is a JSON object mapping each image id to the sorted list of its
foreground class indices into ``voc.CLASSES`` (1..20, background never listed), e.g.
``{"2007_000032": [1, 15]}``; beside it, ``cls_labels_<source>.stat.json`` holds the size and
mtime of each id's annotation or mask when it was read, so an edited file is read again. In
memory, labels are 20-dim float32 multi-hot vectors where entry ``c - 1`` stands for class
``c``. ``<cache>`` is ``voc.cache_dir(root)``:
the root when the project made it, else a folder of the project's (a user's root is only read).
Validation stamps: ``<cache>/.validated.json`` maps the fingerprint of each list that passed
``validate`` (``check_inputs``) to ``{"list", "images", "masks", "xml", "time"}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from seamlib.data.voc import (
    ANNOTATIONS,
    CLASSES,
    IGNORE,
    IMAGES,
    NUM_CLASSES,
    SBD_LISTS,
    SEG_CLASS_AUG,
    SEG_LISTS,
    cache_dir,
    read_list,
    write_list,
)
from seamlib.errors import InputError
from seamlib.formats import atomic_write, load_label_png, strict_decoding

EXPECTED_SIZES = {"train_aug": 10582, "train": 1464, "val": 1449}
LABEL_SOURCES = ("xml", "mask")
NUM_FG = NUM_CLASSES - 1  # 20 foreground classes: the length of a multi-hot label
MAX_LISTED = 20  # problems shown in a DataError before "... and N more"
STAMPS = ".validated.json"  # in a dataset's cache: the validation passes check_inputs recorded
MAX_STAMPS = 256  # passes kept there (one per fingerprint), the oldest dropped first

Disagreement = tuple[str, tuple[str, ...], tuple[str, ...]]  # (id, only_in_mask, only_in_xml)


class DataError(InputError):
    """A dataset problem found before a stage runs; the message lists every problem found."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []  # one line per bad file, where a validation listed them


def list_path(root: str | Path, name: str) -> Path:
    """Path of the segmentation list ``name`` (e.g. "train_aug") under a VOC root."""
    return Path(root) / SEG_LISTS / f"{name}.txt"


# ----------------------------------------------------------------------------------- lists

def build_train_aug(sbd_train: Iterable[str], sbd_val: Iterable[str], voc_train: Iterable[str],
                    voc_val: Iterable[str]) -> list[str]:
    """SBD train + SBD val + VOC train minus every VOC val id, deduplicated and sorted.

    VOC val is held out for evaluation, so none of its images may be trained on.
    """
    return sorted((set(sbd_train) | set(sbd_val) | set(voc_train)) - set(voc_val))


def check_real_sizes(root: str | Path) -> None:
    """Check the real VOC lists have their published sizes; raise ``DataError`` otherwise."""
    problems = []
    for name, expected in EXPECTED_SIZES.items():
        path = list_path(root, name)
        try:
            actual = len(read_list(path))
        except (OSError, ValueError) as err:
            problems.append(str(err))
            continue
        if actual != expected:
            problems.append(f"{path}: expected {expected} ids in the real VOC2012 {name!r} "
                            f"list, found {actual}")
    if problems:
        raise DataError("VOC list sizes differ from the real dataset:\n  "
                        + "\n  ".join(problems))


def write_train_aug(root: str | Path) -> list[str]:
    """Build train_aug from the SBD and VOC lists under ``root``, write it and return it."""
    root = Path(root)
    ids = build_train_aug(read_list(root / SBD_LISTS / "sbd_train.txt"),
                          read_list(root / SBD_LISTS / "sbd_val.txt"),
                          read_list(list_path(root, "train")), read_list(list_path(root, "val")))
    write_list(list_path(root, "train_aug"), ids)
    return ids


# ---------------------------------------------------------------------------------- labels

def multi_hot(classes: Iterable[int]) -> np.ndarray:
    """20-dim float32 vector with a 1 at ``c - 1`` for each foreground class index ``c``."""
    vector = np.zeros(NUM_FG, dtype=np.float32)
    for cls in classes:
        vector[int(cls) - 1] = 1.0
    return vector


def class_names(label: np.ndarray) -> tuple[str, ...]:
    """Names of the classes set in a multi-hot label (or boolean flags over the 20 classes)."""
    return tuple(CLASSES[i + 1] for i in np.flatnonzero(label))


def _mask_values(mask: np.ndarray) -> np.ndarray:
    """Distinct values of a uint8 mask (bincount: faster than np.unique on images)."""
    return np.flatnonzero(np.bincount(mask.ravel(), minlength=256))


def _bad_values(values: np.ndarray) -> list[int]:
    """Values that are neither a class index (0..20) nor the void label."""
    return [int(v) for v in values if v >= NUM_CLASSES and v != IGNORE]


def labels_from_masks(root: str | Path, ids: Iterable[str],
                      mask_dir: str = SEG_CLASS_AUG) -> dict[str, np.ndarray]:
    """Image-level labels from the foreground values present in each mask (0 and 255 ignored)."""
    labels = {}
    for image_id in ids:
        path = Path(root) / mask_dir / f"{image_id}.png"
        values = _mask_values(load_label_png(path))
        bad = _bad_values(values)
        if bad:
            raise InputError(f"{path}: mask values {bad} are outside 0..{NUM_FG} and {IGNORE}")
        labels[image_id] = multi_hot(v for v in values if 0 < v < NUM_CLASSES)
    return labels


def xml_classes(path: str | Path) -> list[int]:
    """Class indices (1..20) of the objects named in a VOC annotation XML, in file order."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise InputError(f"{path}: malformed annotation XML ({err})") from err
    classes = []
    for obj in tree.getroot().findall("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASSES[1:]:
            raise InputError(f"{path}: unknown object class {name!r}; expected one of "
                             f"{', '.join(CLASSES[1:])}")
        classes.append(CLASSES.index(name))
    return classes


def labels_from_xml(root: str | Path, ids: Iterable[str]) -> dict[str, np.ndarray]:
    """Image-level labels from the object names in ``Annotations/<id>.xml``."""
    root = Path(root)
    return {i: multi_hot(xml_classes(root / ANNOTATIONS / f"{i}.xml")) for i in ids}


def cross_check(mask_labels: dict[str, np.ndarray],
                xml_labels: dict[str, np.ndarray]) -> list[Disagreement]:
    """(id, classes only in the mask, classes only in the XML) for every disagreeing image.

    Both mappings must cover the same ids, so a missing side is an error, not a disagreement.
    """
    differ = sorted(set(mask_labels) ^ set(xml_labels))
    if differ:
        raise InputError(f"cross_check needs labels for the same ids on both sides; "
                         f"{len(differ)} ids are on one side only, e.g. {differ[:5]}")
    out = []
    for image_id in sorted(mask_labels):
        in_mask, in_xml = mask_labels[image_id] > 0, xml_labels[image_id] > 0
        if (in_mask != in_xml).any():
            out.append((image_id, class_names(in_mask & ~in_xml), class_names(in_xml & ~in_mask)))
    return out


def format_disagreements(disagreements: list[Disagreement], total: int | None = None) -> str:
    """A readable report of ``cross_check`` output, one line per image."""
    of_total = f" of {total}" if total is not None else ""
    if not disagreements:
        return f"mask and XML labels agree on all{of_total} images"
    lines = [f"{len(disagreements)}{of_total} images have mask classes differing from their "
             f"XML objects:"]
    for image_id, only_mask, only_xml in disagreements:
        lines.append(f"  {image_id}: only in mask: {', '.join(only_mask) or '-'}; "
                     f"only in XML: {', '.join(only_xml) or '-'}")
    return "\n".join(lines)


def save_labels(path: str | Path, labels: dict[str, np.ndarray]) -> None:
    """Write labels atomically as JSON ``{id: [class indices 1..20]}``, one id per line."""
    rows = [f"  {json.dumps(i)}: {json.dumps([int(c) + 1 for c in np.flatnonzero(v)])}"
            for i, v in sorted(labels.items())]
    text = "{\n" + ",\n".join(rows) + "\n}\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def load_labels(path: str | Path) -> dict[str, np.ndarray]:
    """Read labels written by ``save_labels`` back into 20-dim float32 multi-hot vectors."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object mapping id -> list of class indices")
    labels = {}
    for image_id, classes in data.items():
        if not isinstance(classes, list) or not all(
                isinstance(c, int) and 0 < c < NUM_CLASSES for c in classes):
            raise InputError(f"{path}: {image_id!r} must map to a list of class indices "
                             f"1..{NUM_FG}, got {classes!r}")
        labels[image_id] = multi_hot(classes)
    return labels


def check_label_source(source: str) -> str:
    """Return ``source`` if it is a known label source, else raise naming the setting."""
    if source not in LABEL_SOURCES:
        raise InputError(f"data.label_source: {source!r}; expected one of {LABEL_SOURCES}")
    return source


def labels_cache(root: str | Path, source: str) -> Path:
    """The label cache of one source: ``<cache>/cls_labels_<source>.json``."""
    return cache_dir(root) / f"cls_labels_{source}.json"


def labels_for(root: str | Path, list_name: str, source: str = "xml",
               mask_dir: str = SEG_CLASS_AUG) -> dict[str, np.ndarray]:
    """Labels of a list's ids from the cache of ``source``; ids it lacks, or whose XML
    annotation (``"xml"``) or mask (``"mask"``) changed size or time since, are read from it.

    Newly read labels are merged into the cache, so later calls only read the JSON files.
    """
    check_label_source(source)
    root = Path(root)
    ids = read_list(list_path(root, list_name))
    cache = labels_cache(root, source)
    stat_path = cache.with_suffix(".stat.json")  # id -> (size, mtime in ns) of the file read
    labels, seen = load_labels(cache) if cache.is_file() else {}, _read_object(stat_path)
    folder, suffix = (root / ANNOTATIONS, ".xml") if source == "xml" else (root / mask_dir, ".png")
    stats = {i: _stat(folder / f"{i}{suffix}") for i in ids}
    stale = [i for i in ids if i not in labels or seen.get(i) != stats[i]]
    if stale:
        labels.update(labels_from_xml(root, stale) if source == "xml"
                      else labels_from_masks(root, stale, mask_dir))
        seen.update({i: stats[i] for i in stale})
        try:
            save_labels(cache, labels)
            atomic_write(stat_path, lambda tmp: tmp.write_text(json.dumps(seen)))
        except OSError as err:  # a read-only dataset still works, only slower next time
            warnings.warn(f"{cache}: could not cache image-level labels ({err})", stacklevel=2)
    return {i: labels[i] for i in ids}


# ------------------------------------------------------------------------------ validation

def _check_jpeg(root: Path, image_id: str) -> tuple[tuple[int, int] | None, str | None]:
    """Fully decode one image: its (W, H), or None and a problem naming the file."""
    rel = f"{IMAGES}/{image_id}.jpg"
    if not (root / rel).is_file():
        return None, f"{rel}: missing (the id is listed but has no JPEG)"
    try:
        with Image.open(root / rel) as image:
            image.load()
            return image.size, None
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... on bad data
        return None, f"{rel}: truncated or unreadable JPEG ({err})"


def _check_mask(root: Path, mask_dir: str, image_id: str,
                size: tuple[int, int] | None) -> str | None:
    """Check one mask (exists, P/L mode, image size, values 0..20 or 255), decoding it once."""
    rel = f"{mask_dir}/{image_id}.png"
    if not (root / rel).is_file():
        return f"{rel}: missing mask for a listed id"
    try:
        with Image.open(root / rel) as mask:
            if mask.mode not in ("P", "L"):
                return f"{rel}: mode {mask.mode}, expected a palette (P) or grayscale (L) PNG"
            if size is not None and mask.size != size:
                return (f"{rel}: size {mask.size[0]}x{mask.size[1]} differs from its image's "
                        f"{size[0]}x{size[1]} (WxH)")
            values = _mask_values(np.asarray(mask))
    except Exception as err:  # truncated or corrupt PNG
        return f"{rel}: unreadable PNG ({err})"
    bad = _bad_values(values)
    return f"{rel}: values {bad} outside 0..{NUM_FG} and {IGNORE}" if bad else None


def _check_xml(root: Path, image_id: str) -> str | None:
    """Check one annotation exists, parses and names only VOC classes."""
    rel = f"{ANNOTATIONS}/{image_id}.xml"
    if not (root / rel).is_file():
        return f"{rel}: missing (the id is listed but has no annotation XML)"
    try:
        xml_classes(root / rel)
    except (OSError, ValueError) as err:
        return str(err)
    return None


def _check_sample(root: Path, image_id: str, images: bool, mask_dir: str | None,
                  xml: bool) -> list[str]:
    """Every problem of one listed id: its JPEG, mask and annotation, each if required."""
    size, problem = _check_jpeg(root, image_id) if images else (None, None)
    problems = [problem] if problem else []
    if mask_dir is not None:
        problems.append(_check_mask(root, mask_dir, image_id, size))
    if xml:
        problems.append(_check_xml(root, image_id))
    return [p for p in problems if p]


def _read_lists(root: Path, list_names: Iterable[str], problems: list[str]) -> list[str]:
    """Union of the ids of several lists in first-seen order; read errors go to ``problems``."""
    ids: dict[str, None] = {}
    for name in list_names:
        try:
            ids.update(dict.fromkeys(read_list(list_path(root, name))))
        except (OSError, ValueError) as err:
            problems.append(str(err))
    return list(ids)


def _report(root: Path, problems: list[str]) -> str:
    """The DataError message: a header, the first MAX_LISTED problems, then a count."""
    shown = [p.replace(f"{root}{os.sep}", "") for p in problems[:MAX_LISTED]]
    lines = [f"{root}: {len(problems)} data problem(s) found; fix them first:"]
    lines += [f"  {p}" for p in shown]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
    return "\n".join(lines)


def _mask_dir(need_masks: bool | str) -> str | None:
    """The mask folder ``need_masks`` asks for: SegmentationClassAug for True, none for False."""
    return SEG_CLASS_AUG if need_masks is True else (need_masks or None)


def validate(root: str | Path, list_names: list[str], need_masks: bool | str = False,
             need_xml: bool = False, progress: bool = True, need_images: bool = True) -> None:
    """Check a dataset before training and raise one ``DataError`` listing every problem.

    Checks the folders, the lists (readable, no blank or duplicate lines), that every listed id
    has a fully decodable JPEG (unless not ``need_images``: then masks are not size-checked)
    and, when asked, a valid mask and annotation. ``need_masks`` is False, True (masks in
    SegmentationClassAug) or the name of the mask folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist (expected a VOC2012 folder with "
                        f"{IMAGES}/ and {SEG_LISTS}/)")
    mask_dir = _mask_dir(need_masks)
    folders = [IMAGES if need_images else None, str(SEG_LISTS), mask_dir,
               ANNOTATIONS if need_xml else None]
    missing = [f for f in folders if f is not None and not (root / f).is_dir()]
    problems = [f"{f}/: required folder is missing" for f in missing]
    ids = _read_lists(root, list_names, problems)
    if IMAGES not in missing:
        mask_dir = None if mask_dir in missing else mask_dir
        xml = need_xml and ANNOTATIONS not in missing
        with strict_decoding():
            for image_id in tqdm(ids, desc=f"validating {root.name}", unit="img",
                                 disable=not progress, leave=False):
                problems += _check_sample(root, image_id, need_images, mask_dir, xml)
    if problems:
        raise DataError(_report(root, problems), problems)


# ------------------------------------------------------------------- cached validation

Stat = Callable[[Path], list[int] | None]


class Checks(NamedTuple):
    """What validating a list covers: its JPEGs, masks (folder name or None), annotations."""

    images: bool
    masks: str | None
    xml: bool


def _stat(path: Path) -> list[int] | None:
    """[size, mtime in ns] of a file (a list: as JSON reads it back), or None where it cannot
    be read."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


def _fingerprint(root: Path, name: str, checks: Checks, stat: Stat) -> str:
    """sha256 of what validating one list reads: the checks, the list's bytes, and the size
    and mtime of every file checked for its ids (JPEG, mask, annotation)."""
    path = list_path(root, name)
    files = []
    for image_id in _read_lists(root, [name], []):  # a bad list fails validation anyway
        paths = [root / IMAGES / f"{image_id}.jpg"] if checks.images else []
        paths += [root / checks.masks / f"{image_id}.png"] if checks.masks else []
        paths += [root / ANNOTATIONS / f"{image_id}.xml"] if checks.xml else []
        files.append([image_id, *map(stat, paths)])
    text = json.dumps({"list": name, "checks": checks, "files": files,
                       "sha256": hashlib.sha256(path.read_bytes()).hexdigest()
                       if path.is_file() else None})
    return hashlib.sha256(text.encode()).hexdigest()


def _read_object(path: Path) -> dict[str, Any]:
    """A cache file's JSON object (validation passes, label file stats); empty where it is
    missing or unreadable: the cache is then rebuilt."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_inputs(root: str | Path, list_names: list[str], need_masks: bool | str = False,
                 need_xml: bool = False, progress: bool = True, need_images: bool = True) -> None:
    """``validate`` the lists not yet recorded in ``<cache>/.validated.json`` as passed.

    Every stage calls it before its work. A pass is keyed per list by ``_fingerprint``, so any
    change (a file's size or mtime, the list, the checks asked for) validates again. A pass
    also vouches for fewer checks (problems found only grow with checks). A read-only root
    only warns, and then validates on every call.
    """
    root = Path(root)
    checks, stat = Checks(need_images, _mask_dir(need_masks), need_xml), functools.cache(_stat)
    path = cache_dir(root) / STAMPS
    stamps = _read_object(path)
    todo = [name for name in dict.fromkeys(list_names)
            if _fingerprint(root, name, checks, stat) not in stamps]
    if not todo:
        return
    validate(root, todo, need_masks=need_masks, need_xml=need_xml, progress=progress,
             need_images=need_images)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    vouched = {Checks(images, masks, xml) for images in (checks.images, False)
               for masks in (checks.masks, None) for xml in (checks.xml, False)}
    for name in todo:
        for fewer in vouched:
            key = _fingerprint(root, name, fewer, stat)
            stamps.pop(key, None)  # re-inserted last: the newest passes are kept
            stamps[key] = {"list": name, **fewer._asdict(), "time": now}
    kept = dict(list(stamps.items())[-MAX_STAMPS:])
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(kept, indent=1)))
    except OSError as err:
        warnings.warn(f"{path}: could not record the validation pass ({err})", stacklevel=2)


def check_all(root: str | Path, groups: Iterable[tuple[list[str], dict[str, Any]]]) -> None:
    """``check_inputs`` of several groups of lists, each with its own checks (keyword arguments),
    raising one DataError with the problems of every group: one pass reports every bad file."""
    problems: list[str] = []
    for list_names, checks in groups:
        try:
            check_inputs(root, list_names, **checks)
        except DataError as err:
            if not err.problems:  # no file list (the root itself is missing): nothing to add
                raise
            problems += err.problems
    if problems:
        problems = list(dict.fromkeys(problems))  # a file of two lists is reported once
        raise DataError(_report(Path(root), problems), problems)
