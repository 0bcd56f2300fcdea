"""File primitives every stage shares: atomic writes, figures and content hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

JPEG_QUALITY = 85  # image grids (images under CAMs): 5-6x smaller than PNG on the proxy run


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
