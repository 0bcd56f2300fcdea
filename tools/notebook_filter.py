"""A notebook as the repository keeps it: git's clean filter for ``notebooks/*.ipynb`` (set up
by ``make hooks``) and ``make lint``'s check. Outputs and counts are stripped (nbstripout),
except in the cells whose outputs nbval compares (``keep_output``): there the streams are joined
and the count is 1 (nbval compares only cells with a count). Running a notebook in JupyterLab
then changes nothing git sees.

    python tools/notebook_filter.py < notebooks/03_cams.ipynb   # the cleaned notebook
"""

from __future__ import annotations

import sys

import nbformat
from nbstripout import strip_output


def join_streams(outputs: list) -> list:
    """A cell's outputs with consecutive stream outputs of the same name joined into one (how
    a kernel chunks what a cell prints varies from run to run)."""
    joined: list = []
    for out in outputs:
        if out.output_type == "stream" and joined and joined[-1].output_type == "stream" \
                and joined[-1].name == out.name:
            joined[-1].text += out.text
        else:
            joined.append(out)
    return joined


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook stripped, its checked cells' outputs kept with count 1."""
    nb = strip_output(nb, keep_output=False, keep_count=True, keep_id=True)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.metadata.get("keep_output"):
            cell.execution_count = None
            continue
        cell.execution_count = 1
        for out in cell.outputs:
            if "execution_count" in out:
                out.execution_count = 1
        cell.outputs = join_streams(cell.outputs)
    return nb


if __name__ == "__main__":
    sys.stdout.write(nbformat.writes(clean(nbformat.read(sys.stdin, as_version=4))) + "\n")
