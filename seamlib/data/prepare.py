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
from seamlib.errors import InputError
from seamlib.formats import atomic_write

CROSSCHECK = "label_crosscheck.txt"
PREPARE_MODES = ("download", "generate", "validate")
SOURCE_FILES = {"mask": (voc.SEG_CLASS_AUG, ".png"), "xml": (voc.ANNOTATIONS, ".xml")}


def prepare_data(cfg: Config, workers: int = 2) -> Path:
    """Download, generate or only check data.root (``data.prepare``), validate it, cache its
    labels, cross-check them; return the root. Only a root that is absent, empty or made by the
    project is written; any other is the user's, validated as it is."""
    root, source = Path(cfg.data.root), check_label_source(cfg.data.label_source)
    train_list, mode = cfg.data.train_list, cfg.data.prepare
    if mode not in PREPARE_MODES:
        raise InputError(f"data.prepare must be one of {', '.join(PREPARE_MODES)}, "
                         f"got {mode!r}")
    if mode != "validate" and not writable(root):
        print(f"{root}: not made by this project (no {voc.GENERATED} or {voc.PREPARED}), so "
              f"data.prepare={mode} leaves it as it is and only validates it")
        mode = "validate"
    if mode == "download":
        if root.name != "VOC2012":  # the archives unpack VOC2012/ (and SBD/, downloads/) beside
            raise InputError(f"data.root {root}: downloading makes <folder>/VOC2012 with SBD/ "
                             "and downloads/ beside it, so data.root must end in VOC2012 "
                             "(e.g. data/voc/VOC2012)")
        prepare_voc(root.parent)
        if not list_path(root, "train_aug").is_file():
            write_train_aug(root)
        check_real_sizes(root)
    elif mode == "generate":
        generate(cfg.synthetic, root, workers)
    have = {s: mode != "validate" or s == source or _complete(root, train_list, s)
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
    crosscheck = voc.cache_dir(root) / CROSSCHECK
    atomic_write(crosscheck, lambda t: t.write_text(
        f"image-level labels come from {source} (data.label_source)\n{report}\n"))
    print(f"image-level labels come from {source}; {summary} (see {crosscheck})")
    return root


def writable(root: Path) -> bool:
    """Whether the project may write into a dataset root: absent, empty, or made by it."""
    return not root.exists() or (root.is_dir() and not any(root.iterdir())) or voc.made_here(root)


def _complete(root: Path, list_name: str, source: str) -> bool:
    """Whether every id of a list has its ``source`` file (mask or XML); False for a list
    that cannot be read (``validate`` reports that)."""
    folder, ext = SOURCE_FILES[source]
    try:
        ids = voc.read_list(list_path(root, list_name))
    except (OSError, ValueError):
        return False
    return all((root / folder / f"{i}{ext}").is_file() for i in ids)
