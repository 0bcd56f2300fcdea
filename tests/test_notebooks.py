"""The source notebooks' structure that nbval and papermill rely on, checked without running."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_the_notebooks_are_found():
    assert [p.stem for p in NOTEBOOKS][:3] == ["01_data", "02_train_seam", "03_cams"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_parameters_cell_defaults_to_smoke(path: Path):
    tagged = [c for c in code_cells(path) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    assert 'profile = "smoke"' in "".join(tagged[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checked_cells_keep_a_reference_output_and_others_keep_none(path: Path):
    """nbval fails a checked cell whose output has no execution count ('Unrun reference cell')."""
    for i, cell in enumerate(code_cells(path)):
        checked = "".join(cell["source"]).startswith("# NBVAL_CHECK_OUTPUT")
        where = f"{path.name}, code cell {i}"
        if checked:
            assert cell["metadata"].get("keep_output") is True, f"{where}: no keep_output"
            assert cell["outputs"], f"{where}: checked cell has no reference output"
            count = cell["execution_count"]
            assert isinstance(count, int), f"{where}: reference output has no execution count"
        else:
            assert not cell["outputs"], f"{where}: unchecked cell keeps an output"
