"""Stage data: labels come from XML, and disagreements with the masks are reported."""

from pathlib import Path

import pytest

import seamlib.data.prepare
from seamlib.config import load_config
from seamlib.data.lists import labels_cache
from seamlib.data.prepare import CROSSCHECK, prepare_data


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
