"""Stage data: make a dataset ready and check it before any training.

``data.prepare`` says how: ``download`` (VOC 2012 + SBD, build train_aug, check the list
sizes), ``generate`` (the synthetic benchmark) or ``validate`` (a folder of your own, used as
it is). Then a validation pass over every list the pipeline reads, and a cross-check of the
image-level labels of the training list: the ones used (``data.label_source``, XML by default)
against the other source, each disagreement reported. A ``validate`` folder needs only the
source in use; the cross-check is skipped, and says so, where the other one is incomplete.
"""

from __future__ import annotations

from pathlib import Path

from seamlib.config import Config
from seamlib.data import voc
from seamlib.data.download import prepare_voc
from seamlib.data.lists import (
    LABEL_SOURCES,
    check_all,
    check_label_source,
    check_real_sizes,
    cross_check,
    format_disagreements,
    labels_for,
    list_path,
    write_train_aug,
)
from seamlib.data.synthetic import generate
from seamlib.io import atomic_write

CROSSCHECK = "label_crosscheck.txt"
PREPARE_MODES = ("download", "generate", "validate")
SOURCE_FILES = {"mask": (voc.SEG_CLASS_AUG, ".png"), "xml": (voc.ANNOTATIONS, ".xml")}


def prepare_data(cfg: Config, workers: int = 2) -> Path:
    """Download, generate or only check data.root (``data.prepare``), validate it, cache its
    labels, cross-check them; return the root."""
    root, source = Path(cfg.data.root), check_label_source(cfg.data.label_source)
    train_list = cfg.data.train_list
    if cfg.data.prepare == "download":
        prepare_voc(root.parent)
        write_train_aug(root)
        check_real_sizes(root)
    elif cfg.data.prepare == "generate":
        generate(cfg.synthetic, root, workers)
    elif cfg.data.prepare != "validate":
        raise ValueError(f"data.prepare must be one of {', '.join(PREPARE_MODES)}, "
                         f"got {cfg.data.prepare!r}")
    have = {s: cfg.data.prepare != "validate" or s == source or _complete(root, train_list, s)
            for s in LABEL_SOURCES}
    check_all(root, [([train_list], {"need_masks": have["mask"], "need_xml": have["xml"]}),
                     ([cfg.data.cam_list, cfg.data.val_list],
                      {"need_masks": voc.SEG_CLASS, "need_xml": source == "xml"})])
    labels = {s: labels_for(root, train_list, s) for s in LABEL_SOURCES if have[s]}
    if all(have.values()):
        disagreements = cross_check(labels["mask"], labels["xml"])
        report = format_disagreements(disagreements, total=len(labels[source]))
        summary = (f"masks and XML disagree on {len(disagreements)} of {len(labels[source])} "
                   f"{train_list} images")
    else:
        folder = SOURCE_FILES["xml" if source == "mask" else "mask"][0]
        report = summary = (f"not cross-checked: {folder}/ lacks files of some {train_list} "
                            f"images")
    atomic_write(root / CROSSCHECK, lambda t: t.write_text(
        f"image-level labels come from {source} (data.label_source)\n{report}\n"))
    print(f"image-level labels come from {source}; {summary} (see {root / CROSSCHECK})")
    return root


def _complete(root: Path, list_name: str, source: str) -> bool:
    """Whether every id of a list has its ``source`` file (mask or XML); False for a list
    that cannot be read (``validate`` reports that)."""
    folder, ext = SOURCE_FILES[source]
    try:
        ids = voc.read_list(list_path(root, list_name))
    except (OSError, ValueError):
        return False
    return all((root / folder / f"{i}{ext}").is_file() for i in ids)
