"""VOC 2012 test predictions packed for the PASCAL evaluation server.

The server reads a tar.gz holding ``results/VOC2012/Segmentation/comp6_test_cls/<id>.png``:
one indexed (palette) PNG per test image, pixel values the class indices 0..20. comp6 is the
competition for methods trained with data beyond VOC (SEAM's trunk is ImageNet-pretrained).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seamlib.data.voc import NUM_CLASSES
from seamlib.errors import InputError, MissingFile
from seamlib.formats import atomic_write, load_label_png, palette_png

SUBMISSION_DIR = "results/VOC2012/Segmentation/comp6_test_cls"
ARCHIVE = "results.tar.gz"


def _checked_label(path: Path) -> np.ndarray:
    """A prediction PNG, which must exist and hold only class indices 0..20."""
    if not path.is_file():
        raise MissingFile(f"{path}: no prediction for this test id; run the segment "
                                "stage on the test list first")
    label = load_label_png(path)
    if label.max() >= NUM_CLASSES:
        raise InputError(f"{path}: values {np.unique(label[label >= NUM_CLASSES]).tolist()} are "
                         f"not class indices 0..{NUM_CLASSES - 1}; the server rejects them")
    return label


def export_submission(pred_dir: str | Path, ids: Sequence[str], out_dir: str | Path) -> Path:
    """Pack the predictions ``pred_dir/<id>.png`` of ``ids`` into ``out_dir/results.tar.gz`` in
    the server's layout; every id must have a valid prediction. Returns the archive path."""
    pred_dir = Path(pred_dir)
    if not ids:
        raise InputError("export_submission: the id list is empty")
    missing = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if missing:
        raise MissingFile(f"{pred_dir}: {len(missing)} of {len(ids)} test ids have no "
                                f"prediction PNG, e.g. {missing[:3]}")

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w:gz") as tar:
            for image_id in ids:
                data = palette_png(_checked_label(pred_dir / f"{image_id}.png"))
                info = tarfile.TarInfo(f"{SUBMISSION_DIR}/{image_id}.png")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    archive = Path(out_dir) / ARCHIVE
    atomic_write(archive, write)
    return archive
