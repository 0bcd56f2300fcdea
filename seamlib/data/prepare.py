"""Stage data: make the dataset of a profile ready and check it before any training.

``voc``: download VOC 2012 + SBD, build train_aug, check the list sizes, cross-check the
image-level labels from masks against the XML annotations. ``proxy``/``smoke``: generate the
synthetic benchmark. Then a validation pass over every list the pipeline reads.
"""

from __future__ import annotations

from pathlib import Path

from seamlib.config import Config
from seamlib.data import voc
from seamlib.data.download import prepare_voc
from seamlib.data.lists import (
    check_real_sizes,
    cross_check,
    format_disagreements,
    labels_for,
    labels_from_xml,
    validate,
    write_train_aug,
)
from seamlib.data.synthetic import generate
from seamlib.io import atomic_write


def prepare_data(cfg: Config, workers: int = 2) -> Path:
    """Download or generate the profile's data, validate it, cache its labels; return root."""
    root = Path(cfg.data.root)
    if cfg.profile == "voc":
        prepare_voc(root.parent)
        write_train_aug(root)
        check_real_sizes(root)
    else:
        generate(cfg.synthetic, root, workers)
    validate(root, [cfg.data.train_list], need_masks=True, need_xml=True)
    validate(root, [cfg.data.cam_list, cfg.data.val_list], need_masks=voc.SEG_CLASS)
    labels = labels_for(root, cfg.data.train_list)
    disagreements = cross_check(labels, labels_from_xml(root, list(labels)))
    if disagreements:
        report = format_disagreements(disagreements, total=len(labels))
        atomic_write(root / "label_crosscheck.txt", lambda t: t.write_text(report))
        print(f"labels from masks and XML disagree on {len(disagreements)} images; "
              f"see {root / 'label_crosscheck.txt'} (labels come from the masks)")
    return root
