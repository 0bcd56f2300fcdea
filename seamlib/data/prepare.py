"""Stage data: make the dataset of a profile ready and check it before any training.

``voc``: download VOC 2012 + SBD, build train_aug, check the list sizes. ``proxy``/``smoke``:
generate the synthetic benchmark. Then a validation pass over every list the pipeline reads,
and a cross-check of the image-level labels of the training list: the ones used
(``data.label_source``, XML by default) against the other source, each disagreement reported.
"""

from __future__ import annotations

from pathlib import Path

from seamlib.config import Config
from seamlib.data import voc
from seamlib.data.download import prepare_voc
from seamlib.data.lists import (
    LABEL_SOURCES,
    check_label_source,
    check_real_sizes,
    cross_check,
    format_disagreements,
    labels_for,
    validate,
    write_train_aug,
)
from seamlib.data.synthetic import generate
from seamlib.io import atomic_write

CROSSCHECK = "label_crosscheck.txt"


def prepare_data(cfg: Config, workers: int = 2) -> Path:
    """Download or generate the profile's data, validate it, cache its labels; return root."""
    root, source = Path(cfg.data.root), check_label_source(cfg.data.label_source)
    if cfg.profile == "voc":
        prepare_voc(root.parent)
        write_train_aug(root)
        check_real_sizes(root)
    else:
        generate(cfg.synthetic, root, workers)
    validate(root, [cfg.data.train_list], need_masks=True, need_xml=True)
    validate(root, [cfg.data.cam_list, cfg.data.val_list], need_masks=voc.SEG_CLASS,
             need_xml=source == "xml")
    labels = {s: labels_for(root, cfg.data.train_list, s) for s in LABEL_SOURCES}
    disagreements = cross_check(labels["mask"], labels["xml"])
    report = format_disagreements(disagreements, total=len(labels[source]))
    atomic_write(root / CROSSCHECK, lambda t: t.write_text(
        f"image-level labels come from {source} (data.label_source)\n{report}\n"))
    print(f"image-level labels come from {source}; masks and XML disagree on "
          f"{len(disagreements)} of {len(labels[source])} {cfg.data.train_list} images "
          f"(see {root / CROSSCHECK})")
    return root
