"""The files on disk, in one place: atomic writes, figures and content hashes; the CAM npz
(``cams`` stage); the CRF score-map npz (``crf`` stage, read by AffinityNet's data); VOC
palette label PNGs; and JSON that is always valid (NaN as null).

Only numpy, PIL and the standard library: every layer (data, stages, study, lab tools) may
import it, and it imports none of them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFile

from seamlib.errors import InputError, MissingFile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JPEG_QUALITY = 85  # image grids (images under CAMs): 5-6x smaller than PNG on the proxy run

# ------------------------------------------------------------------------ file primitives


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``, so readers never see a partial file.

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask), not
    ``mkstemp``'s private 0600, so shared results folders stay readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically; ``.jpg`` for image grids, ``.png`` for plots."""
    path = Path(path)
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    kwargs = {"pil_kwargs": {"quality": JPEG_QUALITY}} if jpeg else {}
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, **kwargs))
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (weights and trunk identities, CAM manifests)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------ JSON


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON null), tuples and arrays
    as lists and NumPy scalars as Python numbers, so ``json.dumps`` writes valid JSON (it
    would write ``NaN``)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, obj: Any) -> None:
    """Write ``json_safe(obj)`` as JSON (indent 1), atomically."""
    atomic_write(path, lambda t: t.write_text(json.dumps(json_safe(obj), indent=1)))


# ---------------------------------------------------------------------------- CAM npz files


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed npz, atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as file:
            np.savez(file, **arrays)

    atomic_write(path, write)


def save_cam(path: Path, cam: Any, label: Any) -> None:
    """Keep the classes present in the label (20,) of the CAM (20, H, W) (arrays or CPU
    tensors); write atomically as float16 npz."""
    classes = np.flatnonzero(np.asarray(label) > 0)  # multi-hot: 1 where present
    save_npz(path, {"classes": (classes + 1).astype(np.int64),
                    "cams": np.asarray(cam)[classes].astype(np.float16)})


def _load_npz(path: Path, what: str, *names: str) -> list[np.ndarray]:
    """The arrays ``names`` of an npz file; a file that cannot be read (truncated, not an npz,
    arrays missing) is an error naming it and ``what`` it should hold."""
    try:
        with np.load(path) as data:
            return [data[name] for name in names]
    except FileNotFoundError:
        raise
    except Exception as err:  # zipfile.BadZipFile, EOFError, KeyError, ValueError...
        first = str(err).split(". ")[0]  # numpy's advice to unpickle is not for a corrupt file
        raise InputError(f"{path}: cannot read these {what} ({type(err).__name__}: {first}); "
                         "make them again") from err


def load_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(cams (K, H, W) float32, classes (K,) 1-based) written by ``save_cam``; a file that
    cannot be read (truncated, not an npz, arrays missing) is an error naming it."""
    cams, classes = _load_npz(path, "CAMs", "cams", "classes")
    return cams.astype(np.float32), classes


def iter_cams(cam_dir: str | Path, ids: list[str]) -> Iterator[tuple[str, np.ndarray,
                                                                     np.ndarray]]:
    """Yield (id, cams, classes) for ``ids``; a missing file is an error naming it."""
    for iid in ids:
        path = Path(cam_dir) / f"{iid}.npz"
        if not path.exists():
            raise MissingFile(f"{path}: no CAM for {iid!r}; run the cams stage first")
        cams, classes = load_cam(path)
        yield iid, cams, classes


def load_image_cams(cam_dir: Path, images: Any, image_id: str,
                    size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(cams, classes) of one image, checked against the image's (H, W); ``images`` (a
    ``VOCImages``) names the image file in the error."""
    cam_path = cam_dir / f"{image_id}.npz"
    cams, classes = load_cam(cam_path)
    if cams.shape[1:] != tuple(size):
        raise InputError(f"{cam_path}: CAMs are {cams.shape[1:]} but the image "
                         f"{images.image_path(image_id)} is {tuple(size)}")
    return cams, classes


# ---------------------------------------------------------------------- CRF score-map npz


def save_score_maps(path: Path, la: np.ndarray, ha: np.ndarray, classes: np.ndarray) -> None:
    """Write la and ha (K+1, H, W) and the 1-based classes (K,) of their channels 1..K as a
    float16 npz, atomically."""
    if la.shape != ha.shape or la.ndim != 3 or len(la) != len(classes) + 1:
        raise InputError(f"{path}: la {la.shape} and ha {ha.shape} must both be (K+1, H, W) "
                         f"for {len(classes)} classes")
    save_npz(path, {"la": la.astype(np.float16), "ha": ha.astype(np.float16),
                    "classes": np.asarray(classes, dtype=np.int64)})


def load_score_maps(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(la, ha (K+1, H, W) float32, classes (K,)) written by :func:`save_score_maps`; a file
    that cannot be read is an error naming it."""
    la, ha, classes = _load_npz(path, "CRF score maps", "la", "ha", "classes")
    return la.astype(np.float32), ha.astype(np.float32), classes


# ------------------------------------------------------------------- images and label PNGs


def voc_palette() -> np.ndarray:
    """The 256-entry VOC colour map (bit-interleaved), as a (256, 3) uint8 array."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


def save_label_png(path: Path, label: np.ndarray) -> None:
    """Write a (H, W) uint8 label map as a VOC palette PNG, atomically."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise InputError(f"{path}: label map must be a 2-D uint8 array, got {label.dtype} "
                         f"{label.shape}")
    atomic_write(path, lambda tmp: tmp.write_bytes(palette_png(label)))


def palette_png(label: np.ndarray) -> bytes:
    """A (H, W) uint8 label map encoded as a VOC palette PNG."""
    image = Image.fromarray(label, mode="P")
    image.putpalette(voc_palette().ravel().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def strict_decoding() -> Iterator[None]:
    """Make PIL raise on truncated images for the duration (it is a process-wide flag)."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def decode_image(path: Path, mode: str | None = None) -> Image.Image:
    """Fully decode an image file (converted to ``mode`` if given). Truncated data is an error
    even where PIL's ``LOAD_TRUNCATED_IMAGES`` is set; every decoding error names the file."""
    try:
        with strict_decoding(), Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode else image.copy()
    except FileNotFoundError:
        raise
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... on bad data
        raise InputError(f"{path}: cannot decode this image ({err})") from err


def load_label_png(path: Path) -> np.ndarray:
    """Read a label PNG (palette or grayscale) into a (H, W) uint8 array of class indices."""
    image = decode_image(path)
    if image.mode not in ("P", "L"):
        raise InputError(f"{path}: label PNG must be palette (P) or grayscale (L) mode, "
                         f"got {image.mode}")
    return np.asarray(image, dtype=np.uint8).copy()
