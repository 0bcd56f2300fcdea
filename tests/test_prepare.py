"""Stage data: labels come from XML, and disagreements with the masks are reported."""

import shutil
from pathlib import Path

import pytest

import seamlib.data.prepare
from seamlib.config import load_config
from seamlib.data.lists import DataError, labels_cache
from seamlib.data.prepare import CROSSCHECK, prepare_data
from seamlib.data.voc import SEG_CLASS_AUG


@pytest.fixture
def prepared(voc_root_difficult: Path, monkeypatch):
    """prepare_data on the fixture dataset (the generator is skipped: the data is there)."""
    monkeypatch.setattr(seamlib.data.prepare, "generate", lambda *args: None)

    def run(**data):
        cfg = load_config("smoke", {"data": data}, data_root=voc_root_difficult)
        return prepare_data(cfg)
    return run


def test_prepare_reports_disagreements_and_uses_xml(prepared, voc_root_difficult, capsys):
    voc_root = voc_root_difficult
    prepared()
    out = capsys.readouterr().out
    assert "labels come from xml" in out and "disagree on 1 of 4" in out
    report = (voc_root / CROSSCHECK).read_text()
    assert "come from xml" in report and "2007_000001: only in mask: -; only in XML: dog" in report
    assert labels_cache(voc_root, "xml").is_file() and labels_cache(voc_root, "mask").is_file()


def test_prepare_with_mask_labels_says_so(prepared, capsys):
    prepared(label_source="mask")
    assert "labels come from mask" in capsys.readouterr().out
    with pytest.raises(ValueError, match="data.label_source"):
        prepared(label_source="png")


def test_prepare_validate_takes_a_user_folder_without_aug_masks(voc_root, monkeypatch, capsys):
    """A folder of one's own: nothing downloaded or generated, no list sizes checked, XML
    labels with no SegmentationClassAug at all; the skipped cross-check is reported."""
    for name in ("prepare_voc", "write_train_aug", "check_real_sizes", "generate"):
        monkeypatch.setattr(seamlib.data.prepare, name, lambda *a, n=name: pytest.fail(f"{n} ran"))
    shutil.rmtree(voc_root / SEG_CLASS_AUG)
    cfg = load_config("voc", {"data": {"prepare": "validate", "train_list": "train"}},
                      data_root=voc_root)
    assert prepare_data(cfg) == voc_root
    out = capsys.readouterr().out
    assert "labels come from xml" in out and "not cross-checked" in out
    assert "SegmentationClassAug/ lacks" in (voc_root / CROSSCHECK).read_text()
    assert labels_cache(voc_root, "xml").is_file() and not labels_cache(voc_root, "mask").exists()
    with pytest.raises(DataError, match="SegmentationClassAug/: required folder is missing"):
        prepare_data(load_config("voc", {"data": {"prepare": "validate", "label_source": "mask",
                                                  "train_list": "train"}}, data_root=voc_root))


def test_prepare_validate_cross_checks_where_both_sources_exist(voc_root_difficult, capsys):
    cfg = load_config("voc", {"data": {"prepare": "validate"}}, data_root=voc_root_difficult)
    prepare_data(cfg)
    assert "disagree on 1 of 4" in capsys.readouterr().out


def test_prepare_rejects_an_unknown_mode(voc_root):
    cfg = load_config("voc", {"data": {"prepare": "copy"}}, data_root=voc_root)
    with pytest.raises(ValueError, match=r"data.prepare.*download, generate, validate.*'copy'"):
        prepare_data(cfg)


def test_profiles_prepare_their_own_data():
    assert load_config("voc").data.prepare == "download"
    assert load_config("proxy").data.prepare == load_config("smoke").data.prepare == "generate"
