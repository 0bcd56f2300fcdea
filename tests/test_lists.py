"""Lists (train_aug, real sizes), image-level labels and the pre-training validation pass."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import seamlib.data.lists
from seamlib.data.lists import (
    EXPECTED_SIZES,
    MAX_LISTED,
    SBD_LISTS,
    STAMPS,
    DataError,
    build_train_aug,
    check_inputs,
    check_real_sizes,
    cross_check,
    format_disagreements,
    labels_cache,
    labels_for,
    labels_from_masks,
    labels_from_xml,
    list_path,
    load_labels,
    save_labels,
    validate,
    write_train_aug,
)
from seamlib.data.voc import (
    ANNOTATIONS,
    CLASSES,
    IMAGES,
    SEG_CLASS,
    SEG_CLASS_AUG,
    cache_dir,
    read_list,
    write_list,
)
from seamlib.formats import load_label_png, save_label_png


def expected_label(tiny, image_id: str) -> np.ndarray:
    label = np.zeros(20, np.float32)
    label[[c - 1 for c in tiny.images[image_id][2]]] = 1
    return label


# ----------------------------------------------------------------------------------- lists

def test_train_aug_union_minus_val_dedup_sorted():
    sbd_train = ["c", "a", "v1"]
    sbd_val = ["b", "c", "d"]  # "c" is in both SBD lists
    voc_train = ["e", "a", "v2"]  # "a" also in SBD; a VOC val id here is still removed
    voc_val = ["v1", "v2", "zz"]
    assert build_train_aug(sbd_train, sbd_val, voc_train, voc_val) == ["a", "b", "c", "d", "e"]


def test_train_aug_empty_and_all_held_out():
    assert build_train_aug([], [], [], []) == []
    assert build_train_aug(["x"], ["y"], ["x"], ["x", "y"]) == []


def test_write_train_aug(voc_root: Path, tiny):
    write_list(voc_root / SBD_LISTS / "sbd_train.txt", ["2008_000001", "2007_000004"])
    write_list(voc_root / SBD_LISTS / "sbd_val.txt", ["2008_000002", "2007_000001"])
    ids = write_train_aug(voc_root)
    expected = sorted({"2008_000001", "2008_000002", *tiny.lists["train"]})
    assert ids == expected
    assert read_list(list_path(voc_root, "train_aug")) == expected


def test_check_real_sizes_names_file_and_counts(voc_root: Path):
    with pytest.raises(DataError) as err:
        check_real_sizes(voc_root)
    message = str(err.value)
    assert "train_aug.txt" in message and "10582" in message and "found 4" in message
    assert "val.txt" in message and "1449" in message and "found 2" in message


def test_check_real_sizes_passes_on_real_counts(tmp_path: Path):
    for name, size in EXPECTED_SIZES.items():
        write_list(list_path(tmp_path, name), [f"{name}_{i:05d}" for i in range(size)])
    check_real_sizes(tmp_path)


# ---------------------------------------------------------------------------------- labels

def test_labels_from_masks(voc_root: Path, tiny):
    labels = labels_from_masks(voc_root, tiny.images)
    for image_id in tiny.images:
        assert labels[image_id].dtype == np.float32 and labels[image_id].shape == (20,)
        np.testing.assert_array_equal(labels[image_id], expected_label(tiny, image_id))


def test_labels_from_masks_rejects_bad_value(voc_root: Path):
    mask = np.zeros((8, 8), np.uint8)
    mask[0, 0] = 21
    save_label_png(voc_root / SEG_CLASS_AUG / "2007_000001.png", mask)
    with pytest.raises(ValueError, match=r"2007_000001\.png.*\[21\]"):
        labels_from_masks(voc_root, ["2007_000001"])


def test_labels_from_xml(voc_root: Path, tiny):
    labels = labels_from_xml(voc_root, tiny.images)
    for image_id in tiny.images:
        np.testing.assert_array_equal(labels[image_id], expected_label(tiny, image_id))


def test_labels_from_xml_unknown_class_names_file(voc_root: Path):
    path = voc_root / ANNOTATIONS / "2007_000002.xml"
    path.write_text("<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(ValueError, match=r"2007_000002\.xml.*unicorn"):
        labels_from_xml(voc_root, ["2007_000002"])


def test_cross_check_reports_disagreement(voc_root: Path, tiny):
    # XML of 2007_000004 names dog (12) but not bird (3); its mask has 3, 15, 20.
    (voc_root / ANNOTATIONS / "2007_000004.xml").write_text(tiny.xml("2007_000004", (15, 20, 12)))
    ids = list(tiny.images)
    found = cross_check(labels_from_masks(voc_root, ids), labels_from_xml(voc_root, ids))
    assert found == [("2007_000004", ("bird",), ("dog",))]
    report = format_disagreements(found, total=len(ids))
    assert "2007_000004" in report and "bird" in report and "dog" in report
    assert "1 of 6" in report


def test_cross_check_agreement_and_id_mismatch(voc_root: Path, tiny):
    ids = list(tiny.images)
    masks = labels_from_masks(voc_root, ids)
    assert cross_check(masks, labels_from_xml(voc_root, ids)) == []
    assert "agree" in format_disagreements([])
    with pytest.raises(ValueError, match="same ids"):
        cross_check(masks, labels_from_xml(voc_root, ids[:2]))


def test_save_load_labels_roundtrip(tmp_path: Path):
    labels = {"b": np.eye(20, dtype=np.float32)[4], "a": np.zeros(20, np.float32)}
    labels["a"][[0, 19]] = 1
    path = tmp_path / "labels.json"
    save_labels(path, labels)
    assert json.loads(path.read_text()) == {"a": [1, 20], "b": [5]}
    loaded = load_labels(path)
    assert loaded.keys() == labels.keys()
    for key, value in labels.items():
        np.testing.assert_array_equal(loaded[key], value)
        assert loaded[key].dtype == np.float32


def test_load_labels_rejects_bad_index(tmp_path: Path):
    path = tmp_path / "labels.json"
    path.write_text('{"a": [0, 3]}')
    with pytest.raises(ValueError, match="labels.json"):
        load_labels(path)


def test_labels_for_builds_then_reads_cache(voc_root: Path, tiny):
    labels = labels_for(voc_root, "train")
    assert list(labels) == tiny.lists["train"]
    cache = labels_cache(voc_root, "xml")
    assert set(json.loads(cache.read_text())) == set(tiny.lists["train"])
    # A cached entry wins over the XML: proves the cache is read, not rebuilt.
    save_labels(cache, {**labels, "2007_000001": np.eye(20, dtype=np.float32)[0]})
    assert labels_for(voc_root, "train")["2007_000001"][0] == 1
    # Ids missing from the cache are added to it.
    labels_for(voc_root, "val")
    assert set(json.loads(cache.read_text())) == set(tiny.lists["train"] + tiny.lists["val"])


def test_an_edited_annotation_or_mask_is_read_again(voc_root: Path):
    dog = CLASSES.index("dog") - 1
    assert labels_for(voc_root, "train")["2007_000001"][dog] == 0
    xml = voc_root / "Annotations" / "2007_000001.xml"
    xml.write_text(xml.read_text().replace("</annotation>",
                                           "<object><name>dog</name></object></annotation>"))
    assert labels_for(voc_root, "train")["2007_000001"][dog] == 1
    mask = voc_root / "SegmentationClassAug" / "2007_000001.png"
    before = labels_for(voc_root, "train", "mask")["2007_000001"]
    assert before[dog] == 0  # the mask source keeps its own cache
    pixels = load_label_png(mask)
    pixels[0, 0] = CLASSES.index("dog")
    save_label_png(mask, pixels)
    after = labels_for(voc_root, "train", "mask")["2007_000001"]
    assert after[dog] == 1 and (np.delete(after, dog) == np.delete(before, dog)).all()


def test_labels_come_from_xml_difficult_objects_included(voc_root_difficult: Path):
    voc_root = voc_root_difficult
    dog = CLASSES.index("dog") - 1
    mask = labels_for(voc_root, "train", "mask")  # built first: its cache must not leak
    xml = labels_for(voc_root, "train")
    assert xml["2007_000001"][dog] == 1 and mask["2007_000001"][dog] == 0
    assert xml["2007_000001"][14] == mask["2007_000001"][14] == 1  # the painted person
    assert labels_for(voc_root, "train", "xml")["2007_000001"][dog] == 1  # from its own cache
    assert labels_for(voc_root, "train", "mask")["2007_000001"][dog] == 0
    assert labels_cache(voc_root, "xml") != labels_cache(voc_root, "mask")
    with pytest.raises(ValueError, match="data.label_source"):
        labels_for(voc_root, "train", "json")


# ------------------------------------------------------------------------------ validation

ALL_LISTS = ["train", "val", "train_aug"]


def validation_error(root: Path, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        validate(root, ALL_LISTS, need_masks=True, progress=False, **kwargs)
    return str(err.value)


def test_validate_clean_dataset_passes(voc_root: Path):
    validate(voc_root, ALL_LISTS + ["test"], need_masks=True, need_xml=True, progress=False)
    validate(voc_root, ["val"], need_masks=SEG_CLASS, progress=False)


def test_validate_missing_root(tmp_path: Path):
    with pytest.raises(DataError, match="nowhere.*does not exist"):
        validate(tmp_path / "nowhere", ["train"], progress=False)


def test_validate_missing_folder(voc_root: Path):
    shutil.rmtree(voc_root / SEG_CLASS_AUG)
    message = validation_error(voc_root)
    assert f"{SEG_CLASS_AUG}/: required folder is missing" in message
    assert message.count("\n") == 1  # no per-file flood for the missing folder


def test_validate_id_without_jpeg(voc_root: Path):
    (voc_root / IMAGES / "2007_000002.jpg").unlink()
    assert "JPEGImages/2007_000002.jpg: missing" in validation_error(voc_root)


def test_validate_truncated_jpeg(voc_root: Path):
    path = voc_root / IMAGES / "2007_000003.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = validation_error(voc_root)
    assert "JPEGImages/2007_000003.jpg: truncated or unreadable JPEG" in message


def test_validate_mask_value_21(voc_root: Path):
    mask = np.zeros((30, 40), np.uint8)
    mask[5, 5] = 21
    save_label_png(voc_root / SEG_CLASS_AUG / "2007_000001.png", mask)
    assert f"{SEG_CLASS_AUG}/2007_000001.png: values [21]" in validation_error(voc_root)


def test_validate_mask_size_mismatch(voc_root: Path):
    save_label_png(voc_root / SEG_CLASS_AUG / "2007_000005.png", np.zeros((40, 41), np.uint8))
    message = validation_error(voc_root)
    assert f"{SEG_CLASS_AUG}/2007_000005.png: size 41x40 differs" in message


def test_validate_mask_wrong_mode_and_missing(voc_root: Path):
    Image.new("RGB", (40, 30)).save(voc_root / SEG_CLASS_AUG / "2007_000001.png")
    (voc_root / SEG_CLASS_AUG / "2007_000002.png").unlink()
    message = validation_error(voc_root)
    assert f"{SEG_CLASS_AUG}/2007_000001.png: mode RGB" in message
    assert f"{SEG_CLASS_AUG}/2007_000002.png: missing mask" in message


def test_validate_list_with_blank_line(voc_root: Path):
    list_path(voc_root, "val").write_text("2007_000004\n\n2007_000005\n")
    assert "val.txt:2: blank line" in validation_error(voc_root)


def test_validate_list_with_duplicate(voc_root: Path):
    list_path(voc_root, "train").write_text("2007_000001\n2007_000002\n2007_000001\n")
    assert "train.txt:3: duplicate id '2007_000001'" in validation_error(voc_root)


def test_validate_bad_xml(voc_root: Path):
    (voc_root / ANNOTATIONS / "2007_000001.xml").write_text("<annotation><object>")
    message = validation_error(voc_root, need_xml=True)
    assert "2007_000001.xml: malformed annotation XML" in message


def test_validate_collects_all_problems_and_caps_listing(voc_root: Path):
    (voc_root / IMAGES / "2007_000002.jpg").unlink()
    list_path(voc_root, "val").write_text("2007_000004\n\n")
    message = validation_error(voc_root)
    assert "2007_000002.jpg" in message and "val.txt" in message
    ids = [f"9999_{i:06d}" for i in range(MAX_LISTED + 5)]  # no JPEG and no mask each
    write_list(list_path(voc_root, "train_aug"), ids)
    message = validation_error(voc_root)
    assert "... and" in message and f"{2 * len(ids) + 2} data problem(s)" in message
    assert len(message.splitlines()) == MAX_LISTED + 2


# ----------------------------------------------------------------------- cached validation

def truncate(path: Path) -> None:
    """Keep the first half of a file's bytes, as an interrupted copy does."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def validations(monkeypatch) -> list[tuple[list[str], dict]]:
    """The (lists, options) of every real ``validate`` run, recorded as it runs."""
    calls: list[tuple[list[str], dict]] = []
    real = seamlib.data.lists.validate

    def recording(root, list_names, **kwargs):
        calls.append((list(list_names), kwargs))
        real(root, list_names, **kwargs)

    monkeypatch.setattr(seamlib.data.lists, "validate", recording)
    return calls


def test_check_inputs_validates_once_until_a_file_changes(voc_root: Path, validations):
    check_inputs(voc_root, ["train", "val"], need_masks=True, need_xml=True, progress=False)
    assert len(validations) == 1 and (cache_dir(voc_root) / STAMPS).is_file()
    check_inputs(voc_root, ["train", "val"], need_masks=True, need_xml=True, progress=False)
    check_inputs(voc_root, ["val"], need_xml=True, progress=False)  # fewer checks: vouched
    assert len(validations) == 1
    jpeg = voc_root / IMAGES / "2007_000002.jpg"
    info = jpeg.stat()
    os.utime(jpeg, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # touched, same bytes
    check_inputs(voc_root, ["train", "val"], need_masks=True, need_xml=True, progress=False)
    assert validations[-1][0] == ["train"]  # only the list holding the touched file
    save_label_png(voc_root / SEG_CLASS_AUG / "2007_000004.png", np.zeros((48, 64), np.uint8))
    check_inputs(voc_root, ["train", "val"], need_masks=True, need_xml=True, progress=False)
    assert validations[-1][0] == ["val"] and len(validations) == 3


def test_check_inputs_validates_again_for_new_ids_and_other_checks(voc_root: Path, validations):
    check_inputs(voc_root, ["train"], progress=False)
    write_list(list_path(voc_root, "train"), ["2007_000001", "2007_000002", "2007_000003",
                                              "2007_000004"])
    check_inputs(voc_root, ["train"], progress=False)
    check_inputs(voc_root, ["train"], need_masks=SEG_CLASS, progress=False)
    check_inputs(voc_root, ["train"], need_masks=SEG_CLASS, progress=False)
    assert [options["need_masks"] for _, options in validations] == [False, False, SEG_CLASS]


def test_failed_check_names_the_file_and_records_no_pass(voc_root: Path, validations):
    truncate(voc_root / IMAGES / "2007_000003.jpg")
    for _ in range(2):
        with pytest.raises(DataError, match=r"JPEGImages/2007_000003\.jpg: truncated"):
            check_inputs(voc_root, ["train"], progress=False)
    assert len(validations) == 2 and not (cache_dir(voc_root) / STAMPS).exists()


def test_check_inputs_label_folder_outside_the_root(voc_root: Path, tmp_path: Path, tiny):
    labels = tmp_path / "pseudo_labels"
    for image_id in tiny.lists["train"]:
        height, width, classes = tiny.images[image_id]
        save_label_png(labels / f"{image_id}.png", tiny.mask(height, width, classes))
    check_inputs(voc_root, ["train"], need_masks=str(labels), progress=False)
    truncate(labels / "2007_000002.png")
    with pytest.raises(DataError, match=r"pseudo_labels/2007_000002\.png: unreadable PNG"):
        check_inputs(voc_root, ["train"], need_masks=str(labels), progress=False)


def test_check_inputs_on_a_read_only_root_warns_and_goes_on(voc_root: Path, monkeypatch,
                                                             validations):
    def refuse(path, write):
        raise PermissionError(f"{path}: read-only file system")

    monkeypatch.setattr(seamlib.data.lists, "atomic_write", refuse)
    for _ in range(2):
        with pytest.warns(UserWarning, match="could not record the validation pass"):
            check_inputs(voc_root, ["val"], progress=False)
    assert len(validations) == 2


def test_check_inputs_ignores_an_unreadable_stamp_file(voc_root: Path, validations):
    cache_dir(voc_root).mkdir(parents=True)
    (cache_dir(voc_root) / STAMPS).write_text("{not json")
    check_inputs(voc_root, ["val"], progress=False)
    check_inputs(voc_root, ["val"], progress=False)
    assert len(validations) == 1
    stamps = json.loads((cache_dir(voc_root) / STAMPS).read_text())
    assert {s["list"] for s in stamps.values()} == {"val"}
