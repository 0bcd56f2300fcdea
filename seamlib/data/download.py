"""Download and lay out the real data of the ``voc`` profile: PASCAL VOC 2012 plus SBD.

The result is a VOC-format root ``<data_dir>/VOC2012`` whose ``SegmentationClassAug`` holds a
palette PNG for every VOC and SBD mask (VOC's own masks win), and whose
``ImageSets/SegmentationAug`` holds SBD's train/val lists. Every step can be interrupted and
resumed: downloads continue with HTTP Range, extractions are marked complete, conversions skip
what is already written.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tarfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from tqdm.auto import tqdm

from seamlib.data.voc import (
    IGNORE,
    IMAGES,
    NUM_CLASSES,
    PREPARED,
    SBD_LISTS,
    SEG_CLASS,
    SEG_CLASS_AUG,
    read_list,
    write_list,
)
from seamlib.errors import InputError, MissingFile, SeamError
from seamlib.formats import atomic_write, load_label_png, save_label_png

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds without data before a download is given up
CHUNK = 1 << 20
SBD_DATASET = Path("benchmark_RELEASE") / "dataset"  # SBD's data folder inside benchmark.tgz
_VALID_LABELS = np.array([*range(NUM_CLASSES), IGNORE])
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())  # tarfile's own refusals (Python >= 3.11.4)


@dataclass(frozen=True)
class Resource:
    """One file to download: where it lives, its md5 and the name it gets on disk."""

    name: str
    url: str
    md5: str
    filename: str


VOC2012 = Resource(
    name="voc2012",
    url="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    md5="6cd6e144f989b92b3379bac3b3de84fd",
    filename="VOCtrainval_11-May-2012.tar",
)
SBD = Resource(
    name="sbd",
    url="http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/"
        "benchmark.tgz",
    md5="82b4d87ceb2ed10f6038a1cba92111cb",
    filename="benchmark.tgz",
)
RESOURCES: tuple[Resource, ...] = (VOC2012, SBD)


class DownloadError(SeamError, RuntimeError):
    """A resource could not be fetched (network, HTTP or server trouble)."""


class ChecksumError(InputError):
    """A downloaded file does not have the expected md5."""


# --------------------------------------------------------------------------------------------
# Download


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file, read in chunks so multi-GB archives fit in memory."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(resource: Resource, downloads_dir: Path, timeout: float = DEFAULT_TIMEOUT,
          also: tuple[Resource, ...] = ()) -> Path:
    """Return ``downloads_dir/<filename>`` with a verified md5, downloading (or resuming) it first.

    Data goes to ``<filename>.part`` and is renamed only after the md5 matches. ``also``: the
    archives the caller needs next; a failed download names them too, so that an offline user
    fetches every archive by hand at once.
    """
    final = Path(downloads_dir) / resource.filename
    if final.exists():
        actual = md5sum(final)
        if actual == resource.md5:
            return final
        warnings.warn(f"{final} has md5 {actual}, expected {resource.md5}; deleting it and "
                      f"downloading {resource.url} again", stacklevel=2)
        final.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    try:
        _download(resource.url, part, timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code != 416 or not part.exists():  # 416: .part holds the whole file already
            raise _fetch_error(resource, final, err, also) from err
    except (OSError, http.client.HTTPException) as err:  # URLError and timeouts are OSErrors
        raise _fetch_error(resource, final, err, also) from err
    _commit(resource, part, final)
    return final


def _download(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (HTTP Range); rewrite it if Range is ignored."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "seamlib"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status == 206:
            _check_range_start(response.headers.get("Content-Range", ""), offset, part)
        else:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=part.name.removesuffix(".part")) as bar:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise http.client.HTTPException(f"transfer ended after {size} of {total} bytes; "
                                        f"run again to resume from {part}")


def _check_range_start(content_range: str, offset: int, part: Path) -> None:
    """Refuse a 206 answer that does not continue exactly where ``part`` ends."""
    match = re.match(r"bytes (\d+)-", content_range)
    if match is None or int(match.group(1)) != offset:
        part.unlink()
        raise http.client.HTTPException(f"server answered Content-Range {content_range!r} to a "
                                        f"request starting at byte {offset}; deleted {part}, "
                                        "run again to download from scratch")


def _fetch_error(resource: Resource, final: Path, err: BaseException,
                 also: tuple[Resource, ...] = ()) -> DownloadError:
    """An error saying which URL failed and where to put it (and ``also``) by hand."""
    reason = getattr(err, "reason", None) or err
    steps = " and ".join(f"{r.url} (md5 {r.md5}) to {(final.parent / r.filename).resolve()}"
                         for r in (resource, *also))
    return DownloadError(f"could not fetch {resource.url}: {reason}; without internet, "
                         f"download {steps}, then run again")


def _commit(resource: Resource, part: Path, final: Path) -> None:
    """Rename ``part`` onto ``final`` if its md5 is right; otherwise delete it and raise."""
    actual = md5sum(part)
    if actual != resource.md5:
        part.unlink()
        raise ChecksumError(f"{final.name}: md5 {actual} does not match the expected "
                            f"{resource.md5} (downloaded from {resource.url}); the bad download "
                            "was deleted. Run again, or put the correct file at "
                            f"{final.resolve()}.")
    os.replace(part, final)


# --------------------------------------------------------------------------------------------
# Extraction


def _extract_marker(dest_dir: Path, archive_name: str) -> Path:
    """The file whose presence says ``archive_name`` was fully extracted into ``dest_dir``."""
    return Path(dest_dir) / f".{archive_name}.extracted"


def extract(archive: Path, dest_dir: Path) -> Path:
    """Unpack a tar/tgz into ``dest_dir`` once, refusing members that would land outside it.

    A marker written after the last member makes reruns free and redoes interrupted extractions.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    marker = _extract_marker(dest_dir, archive.name)
    if marker.exists():
        return dest_dir
    dest_dir.mkdir(parents=True, exist_ok=True)
    log.info("extracting %s into %s", archive, dest_dir)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest_dir, filter=lambda member, path: tarfile.data_filter(
                    _check_member(member, dest_dir, archive), path))
            else:  # Python without extraction filters: rely on our own check only
                members = [_check_member(m, dest_dir, archive) for m in tar.getmembers()]
                tar.extractall(dest_dir, members=members)
    except _FILTER_ERRORS as err:
        raise InputError(f"{archive}: refusing unsafe archive member: {err}") from err
    atomic_write(marker, lambda tmp: tmp.write_text(f"{archive.name}\n"))
    return dest_dir


def _check_member(member: tarfile.TarInfo, dest_dir: Path, archive: Path) -> tarfile.TarInfo:
    """Return ``member`` if it and any link target stay inside ``dest_dir``; raise otherwise."""
    root = dest_dir.resolve()
    path = root / member.name
    targets = [path]
    if member.issym():
        targets.append(path.parent / member.linkname)
    elif member.islnk():
        targets.append(root / member.linkname)
    for target in targets:
        if not target.resolve().is_relative_to(root):
            raise InputError(f"{archive}: member {member.name!r} would be written outside "
                             f"{dest_dir} (via {target}); refusing to extract")
    if member.isdev():
        raise InputError(f"{archive}: member {member.name!r} is a device file; refusing to extract")
    return member


# --------------------------------------------------------------------------------------------
# Masks


def _check_labels(path: Path, label: np.ndarray) -> np.ndarray:
    """Return ``label`` as uint8 if it is a 2-D map of VOC classes 0..20 or 255, else raise."""
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise InputError(f"{path}: expected a 2-D integer class map, got {label.dtype} "
                         f"{label.shape}")
    bad = np.setdiff1d(np.unique(label), _VALID_LABELS)
    if bad.size:
        raise InputError(f"{path}: class values {bad.tolist()} outside 0..{NUM_CLASSES - 1} "
                         f"and {IGNORE}")
    return label.astype(np.uint8)


def load_sbd_mat(path: Path) -> np.ndarray:
    """Read an SBD ``cls/<id>.mat`` file: the ``GTcls.Segmentation`` class map as uint8."""
    try:
        mat = scipy.io.loadmat(path)
    except (OSError, ValueError, TypeError, scipy.io.matlab.MatReadError) as err:
        raise InputError(f"{path}: cannot read as a MATLAB file: {err}") from err
    gt = mat.get("GTcls")
    if not isinstance(gt, np.ndarray) or gt.dtype.names is None \
            or "Segmentation" not in gt.dtype.names or gt.size != 1:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(f"{path}: expected a struct GTcls with a field Segmentation "
                         f"(SBD class map), found variables {found}")
    return _check_labels(path, np.asarray(gt["Segmentation"].flat[0]))


def convert_sbd(sbd_dataset_dir: Path, out_dir: Path, exclude: Iterable[str] = ()) -> list[str]:
    """Write ``out_dir/<id>.png`` for every id in SBD's train.txt and val.txt; return those ids.

    Ids in ``exclude`` (those with a VOC mask, which wins) and PNGs already written are skipped.
    """
    sbd_dataset_dir, out_dir = Path(sbd_dataset_dir), Path(out_dir)
    ids = list(dict.fromkeys(read_list(sbd_dataset_dir / "train.txt")
                             + read_list(sbd_dataset_dir / "val.txt")))
    skip = set(exclude)
    todo = [i for i in ids if i not in skip and not (out_dir / f"{i}.png").exists()]
    for image_id in tqdm(todo, desc="SBD masks -> PNG", unit="img"):
        mat_path = sbd_dataset_dir / "cls" / f"{image_id}.mat"
        save_label_png(out_dir / f"{image_id}.png", load_sbd_mat(mat_path))
    return ids


def copy_voc_masks(seg_class_dir: Path, out_dir: Path) -> list[str]:
    """Copy VOC's own masks (palette PNGs) into ``out_dir`` index for index; return their ids.

    Already copied ones are skipped, so an interrupted run resumes.
    """
    seg_class_dir, out_dir = Path(seg_class_dir), Path(out_dir)
    if not seg_class_dir.is_dir():
        raise MissingFile(f"VOC mask folder {seg_class_dir} does not exist")
    paths = sorted(seg_class_dir.glob("*.png"))
    todo = [p for p in paths if not (out_dir / p.name).exists()]
    for path in tqdm(todo, desc="VOC masks -> PNG", unit="img"):
        save_label_png(out_dir / path.name, _check_labels(path, load_label_png(path)))
    return [p.stem for p in paths]


# --------------------------------------------------------------------------------------------
# Orchestration


def _fetch_and_extract(resource: Resource, dest_dir: Path, downloads_dir: Path,
                       timeout: float, also: tuple[Resource, ...] = ()) -> None:
    """Extract ``resource`` into ``dest_dir``, downloading it only if that is not done yet."""
    if not _extract_marker(dest_dir, resource.filename).exists():
        extract(fetch(resource, downloads_dir, timeout=timeout, also=also), dest_dir)


def _place_voc_root(data_dir: Path) -> Path:
    """Move the extracted ``VOCdevkit/VOC2012`` to ``<data_dir>/VOC2012`` and return it."""
    voc_root, extracted = data_dir / "VOC2012", data_dir / "VOCdevkit" / "VOC2012"
    if extracted.exists():
        if voc_root.exists():
            raise InputError(f"both {extracted} and {voc_root} exist; remove one of them "
                                  "and run again")
        os.replace(extracted, voc_root)
        if not any(extracted.parent.iterdir()):
            extracted.parent.rmdir()
    if not (voc_root / IMAGES).is_dir():
        raise MissingFile(f"{voc_root / IMAGES} missing: expected the VOC archive to "
                                "contain VOCdevkit/VOC2012/JPEGImages")
    return voc_root


def prepare_voc(data_dir: Path, downloads_dir: Path | None = None,
                timeout: float = DEFAULT_TIMEOUT, voc: Resource = VOC2012,
                sbd: Resource = SBD) -> Path:
    """Download, extract and convert VOC 2012 + SBD into ``<data_dir>/VOC2012``; return that root.

    Archives go to ``downloads_dir`` (default ``<data_dir>/downloads``); reruns resume.
    """
    data_dir = Path(data_dir)
    downloads_dir = Path(downloads_dir) if downloads_dir is not None else data_dir / "downloads"
    voc_root = data_dir / "VOC2012"
    if (voc_root / PREPARED).exists():
        return voc_root
    sbd_needed = not _extract_marker(data_dir / "SBD", sbd.filename).exists()
    _fetch_and_extract(voc, data_dir, downloads_dir, timeout, also=(sbd,) if sbd_needed else ())
    voc_root = _place_voc_root(data_dir)
    _fetch_and_extract(sbd, data_dir / "SBD", downloads_dir, timeout)
    sbd_dir = data_dir / "SBD" / SBD_DATASET
    if not sbd_dir.is_dir():
        raise MissingFile(f"{sbd_dir} missing: expected {sbd.filename} to contain "
                                f"{SBD_DATASET}")
    aug = voc_root / SEG_CLASS_AUG
    voc_ids = copy_voc_masks(voc_root / SEG_CLASS, aug)  # first: VOC masks take precedence
    convert_sbd(sbd_dir, aug, exclude=voc_ids)
    for split in ("train", "val"):
        write_list(voc_root / SBD_LISTS / f"sbd_{split}.txt",
                   read_list(sbd_dir / f"{split}.txt"))
    atomic_write(voc_root / PREPARED, lambda tmp: tmp.write_text("VOC2012 + SBD\n"))
    return voc_root
