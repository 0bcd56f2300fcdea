"""The synthetic benchmark: exact VOC layout, determinism, resume, labels and void band."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from seamlib.config import load_config
from seamlib.data import voc
from seamlib.data.lists import (
    cross_check,
    labels_from_masks,
    labels_from_xml,
    validate,
    write_train_aug,
)
from seamlib.data.shapes import DESIGNS, body_family, part_style
from seamlib.data.synthetic import erode, generate, part_period, void_band
from seamlib.formats import load_label_png


@pytest.fixture(scope="module")
def smoke_cfg():
    return load_config("smoke").synthetic


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory, smoke_cfg):
    return generate(smoke_cfg, tmp_path_factory.mktemp("syn") / "VOC2012", workers=1)


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_lists(smoke_root, smoke_cfg):
    for folder in (voc.IMAGES, voc.SEG_CLASS, voc.SEG_CLASS_AUG, voc.ANNOTATIONS):
        assert (smoke_root / folder).is_dir()
    seg = smoke_root / voc.SEG_LISTS
    train, val = voc.read_list(seg / "train.txt"), voc.read_list(seg / "val.txt")
    aug = voc.read_list(seg / "train_aug.txt")
    assert len(train) == smoke_cfg.n_train and len(val) == smoke_cfg.n_val
    assert set(train) <= set(aug) and not set(val) & set(aug)
    assert len(aug) == smoke_cfg.n_train + smoke_cfg.n_extra
    validate(smoke_root, ["train_aug"], need_masks=True, need_xml=True, progress=False)
    validate(smoke_root, ["train", "val", "test"], need_masks=voc.SEG_CLASS, progress=False)


def test_train_aug_drops_the_val_images_the_sbd_style_lists_hold(smoke_root):
    seg, aug = smoke_root / voc.SEG_LISTS, smoke_root / voc.SBD_LISTS
    val = set(voc.read_list(seg / "val.txt"))
    sbd = set(voc.read_list(aug / "sbd_train.txt")) | set(voc.read_list(aug / "sbd_val.txt"))
    assert sbd & val  # as in the real SBD: otherwise excluding val could never be tested
    generated = voc.read_list(seg / "train_aug.txt")
    assert not set(generated) & val
    assert write_train_aug(smoke_root) == generated  # rebuilt from the lists on disk
    assert set(generated) == (sbd | set(voc.read_list(seg / "train.txt"))) - val


def test_same_seed_gives_identical_bytes(tmp_path, smoke_cfg, smoke_root):
    again = generate(smoke_cfg, tmp_path / "VOC2012", workers=2)
    assert digest(again) == digest(smoke_root)


def test_other_seed_differs_and_mixing_settings_is_an_error(tmp_path, smoke_cfg, smoke_root):
    other = load_config("smoke", {"synthetic": {"seed": 1}}).synthetic
    root = generate(other, tmp_path / "VOC2012", workers=1)
    assert digest(root) != digest(smoke_root)
    with pytest.raises(ValueError, match="other settings"):
        generate(smoke_cfg, root, workers=1)


def test_resume_restores_a_missing_file(tmp_path, smoke_cfg, smoke_root):
    root = generate(smoke_cfg, tmp_path / "VOC2012", workers=1)
    victim = root / voc.IMAGES / "train_000003.jpg"
    victim.unlink()
    generate(smoke_cfg, root, workers=1)
    assert digest(root) == digest(smoke_root)
    assert json.loads((root / "synthetic.json").read_text())["seed"] == smoke_cfg.seed


def test_mask_labels_agree_with_xml_and_have_a_void_band(smoke_root):
    ids = voc.read_list(smoke_root / voc.SEG_LISTS / "train_aug.txt")
    from_masks = labels_from_masks(smoke_root, ids)
    assert cross_check(from_masks, labels_from_xml(smoke_root, ids)) == []
    assert all(label.sum() >= 1 for label in from_masks.values())
    mask = load_label_png(smoke_root / voc.SEG_CLASS / "train_000000.png")
    assert (mask == voc.IGNORE).any()
    assert set(np.unique(mask)) <= set(range(21)) | {255}


def test_void_band_and_erosion_on_a_square():
    label = np.zeros((7, 7), np.uint8)
    label[2:5, 2:5] = 3
    band = void_band(label, width=1)
    assert band[3, 3] == 3  # the centre's neighbours all share its label
    assert band[0, 0] == 0 and (band == 255).sum() == 24  # the 5x5 block minus its centre
    assert erode(label == 3, 1).sum() == 1


def test_every_class_has_a_unique_part_and_a_shape():
    assert len(DESIGNS) == 20
    assert [d.name for d in DESIGNS] == list(voc.CLASSES[1:])
    styles = [part_style(i) for i in range(1, 21)]
    assert len(set(styles)) == 20


def test_bodies_share_a_family_in_pairs_so_only_the_part_tells_them_apart():
    assert sorted(Counter(body_family(i) for i in range(1, 21)).values()) == [2] * 10


def test_part_pattern_scales_with_the_object():
    assert part_period((0, 0, 24, 10)) == 3  # small objects: the 3 px floor
    assert part_period((0, 0, 80, 160)) == 20  # 8 stripe widths along the longer side
