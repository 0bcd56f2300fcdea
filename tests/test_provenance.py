"""Provenance: a folder records the settings that made it and refuses others, naming the
first that differs; what cannot change an output is never compared."""

import json

import pytest

from seamlib.errors import InputError
from seamlib.provenance import (
    changed_settings,
    checked,
    claim,
    flatten,
    is_done,
    record_stage,
    require_same,
    stage_record,
)


def test_flatten_names_nested_settings_with_dots():
    assert flatten({"train_cam": {"lr": 0.1, "amp": {"on": True}}, "device": "cpu"}) == {
        "train_cam.lr": 0.1, "train_cam.amp.on": True, "device": "cpu"}


def test_tuples_equal_lists_and_saved_only_settings_count():
    saved = {"data": {"resize_long": [128, 224]}, "old": 1}
    changed = changed_settings(saved, {"data": {"resize_long": (128, 224)}})
    assert changed == [("old", 1, "(absent)")]


def test_claim_records_then_accepts_the_same_and_refuses_others(tmp_path):
    path = tmp_path / "run" / "settings.json"
    settings = {"train_cam": {"lr": 0.1, "out_dir": "a"}, "device": "cpu"}
    assert claim(path, settings) is True
    assert json.loads(path.read_text()) == settings
    assert claim(path, settings) is False
    assert claim(path, {**settings, "train_cam": {"lr": 0.1, "out_dir": "b"}}) is False
    with pytest.raises(ValueError, match=r"run holds a training run made with other settings: "
                                         r"train_cam\.lr was 0\.1, now 0\.2 and 1 more"):
        claim(path, {"train_cam": {"lr": 0.2, "out_dir": "a"}, "device": "cuda"}, "a training run")


def test_claim_without_write_leaves_no_record(tmp_path):
    assert claim(tmp_path / "s.json", {"a": 1}, write=False) is True
    assert not (tmp_path / "s.json").exists()


def test_a_torn_record_is_an_error_naming_it(tmp_path):
    (tmp_path / "s.json").write_text('{"a": ')
    with pytest.raises(ValueError, match="s.json: not a settings record"):
        claim(tmp_path / "s.json", {"a": 1})


def test_require_same_names_where_the_settings_were_recorded():
    with pytest.raises(ValueError, match=r"^report\.json holds a comparison made with other "
                                         r"settings: seed was 0, now 1;"):
        require_same({"seed": 0}, {"seed": 1}, "report.json", "a comparison")


def test_checked_settings_leave_out_what_cannot_change_an_output_at_any_depth():
    settings = {"train_cam": {"lr": 0.1, "out_dir": "a", "log_every": 5}, "crf": {"workers": 2},
                "data": {"num_workers": 2, "cache_images": True, "crop_size": 128}}
    assert checked(settings) == {"train_cam": {"lr": 0.1}, "crf": {}, "data": {"crop_size": 128}}


def test_a_stage_record_is_done_only_when_complete_with_the_same_key(tmp_path):
    assert stage_record(tmp_path) == {}
    record_stage(tmp_path, {"key": "k1", "settings": {}, "complete": False})
    assert not is_done(stage_record(tmp_path), "k1")
    record_stage(tmp_path, {"key": "k1", "settings": {}, "complete": True, "seconds": 1.0})
    assert is_done(stage_record(tmp_path), "k1") and not is_done(stage_record(tmp_path), "k2")


def test_a_torn_stage_record_is_an_error_naming_it(tmp_path):
    (tmp_path / "stage.json").write_text("{bad")
    with pytest.raises(InputError, match=r"stage\.json: not a stage record .*delete that folder"):
        stage_record(tmp_path)
