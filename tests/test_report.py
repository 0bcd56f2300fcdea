"""Result tables: mean ± std over seeds, CSV and Markdown written together."""

import csv

import pytest

from study.tables import pm, write_table


def test_pm_gives_mean_and_sample_std_in_percent():
    assert pm([0.40, 0.42]) == "41.0 ± 1.4"
    assert pm([0.4]) == "40.0"
    assert pm([0.1234], scale=1, digits=3) == "0.123"


def test_write_table_writes_csv_and_markdown(tmp_path):
    rows = [{"variant": "baseline", "mIoU": "40.0"}, {"variant": "seam", "mIoU": "38.0"}]
    md = write_table(rows, tmp_path / "tables" / "components", "Components")
    assert md.read_text().splitlines()[:4] == ["# Components", "", "| variant | mIoU |",
                                               "|---|---|"]
    with (tmp_path / "tables" / "components.csv").open() as f:
        assert list(csv.DictReader(f)) == rows
    with pytest.raises(ValueError, match="at least one row"):
        write_table([], tmp_path / "empty")
