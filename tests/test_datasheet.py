"""The datasheet: measured statistics of a VOC-format dataset and the difficulty section."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from experiments.datasheet import dataset_statistics, targets_met, write_datasheet
from seamlib.config import Config, load_config
from seamlib.data.lists import labels_for
from seamlib.data.synthetic import generate

DIFFICULTY = {"val_map": 0.95, "train_miou_best": 0.42, "best_threshold": 0.15,
              "val_threshold": 0.2, "train_miou_at_val_threshold": 0.41, "mfp": 0.3, "mfn": 0.2,
              "train_minutes": 12.5, "steps": 750, "threads": 1,
              "command": "seam difficulty --profile proxy",
              "hardware": "test", "seed": 0, "config": asdict(Config())}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "VOC2012"
    generate(load_config("smoke").synthetic, root, workers=1)
    return root


def test_statistics_count_the_dataset(root):
    stats = dataset_statistics(root, "train_aug")
    labels = np.stack(list(labels_for(root, "train_aug").values()))
    assert stats["splits"]["train_aug"] == len(labels)
    assert list(stats["images_per_class"].values()) == labels.sum(0).astype(int).tolist()
    assert sum(stats["objects_per_image"]) == len(labels)
    assert sum(stats["object_size_hist"]) >= labels.sum()  # one box per object, >= 1 per class
    assert np.diag(stats["cooccurrence"]).tolist() == labels.sum(0).astype(int).tolist()
    assert 0 < stats["void_share"] < 1
    assert sum(stats["pixel_share"].values()) == pytest.approx(1, abs=1e-3)


def test_targets_window():
    assert targets_met(DIFFICULTY)
    assert not targets_met({**DIFFICULTY, "val_map": 0.89})
    assert not targets_met({**DIFFICULTY, "train_miou_best": 0.7})
    assert not targets_met({**DIFFICULTY, "train_miou_best": 0.2})


def test_datasheet_files_say_whether_the_targets_are_met(root, tmp_path):
    text = write_datasheet(root, tmp_path / "out", {**DIFFICULTY, "val_map": 0.5}).read_text()
    assert "Targets met: **no**" in text and "| classification mAP, val | 0.500 |" in text
    assert "| training time | 12.5 min (750 steps, 1 torch thread(s)) |" in text
    # a training run made before summary.json recorded its threads
    old = write_datasheet(root, tmp_path / "older", {**DIFFICULTY, "threads": None}).read_text()
    assert "(750 steps, unrecorded torch thread(s))" in old
    assert json.loads((tmp_path / "out" / "datasheet.json").read_text())["list"] == "train_aug"
    assert "Not measured yet" in write_datasheet(root, tmp_path / "bare").read_text()


def test_datasheet_lists_the_per_class_ap_lowest_first(root, tmp_path):
    aps = {"cat": 0.95, "dog": 0.61, "cow": None, "boat": 0.88}
    text = write_datasheet(root, tmp_path / "out", {**DIFFICULTY, "val_ap_per_class": aps})
    assert ("per class, lowest first: dog 0.61, boat 0.88, cat 0.95. "
            "2 of 3 classes are below 0.9.") in text.read_text()
    assert "per class" not in write_datasheet(root, tmp_path / "old", DIFFICULTY).read_text()
