"""Executed copies of the notebooks are byte-stable: two executions (or two machines) that
print the same numbers write the same bytes (study.notebooks.make_stable)."""

from __future__ import annotations

from pathlib import Path

import nbformat

from study.notebooks import NOTEBOOKS, make_stable


def executed(path: Path, stamp: str, cell_id: str, chunks: list[str]) -> Path:
    """An executed copy as papermill writes it: timestamps, a random id, split streams, a
    progress bar, absolute paths, the kernel's own language metadata."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                  "language": "python"},
                   "language_info": {"name": "python", "version": "3.11.7"},
                   "papermill": {"start_time": stamp, "duration": 1.5, "parameters": {"a": 1},
                                 "input_path": str(NOTEBOOKS / "04_ablations.ipynb"),
                                 "output_path": str(NOTEBOOKS.parent / "results/x.ipynb")}}
    cell = nbformat.v4.new_code_cell("print(1)", id=cell_id)
    cell.metadata = {"execution": {"iopub.status.idle": stamp}, "papermill": {"duration": 1.5}}
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in chunks]
    cell.outputs.append(nbformat.v4.new_output(
        "stream", name="stderr", text=f"train: 100%|#####| 40/40 [00:01<00:00, {stamp} it/s]\r"))
    nb.cells = [cell]
    nbformat.write(nb, path)
    return path


def test_two_executions_with_the_same_numbers_write_the_same_bytes(tmp_path):
    source = NOTEBOOKS / "04_ablations.ipynb"
    repo = f"{NOTEBOOKS.parent}/"
    a = executed(tmp_path / "a.ipynb", "2026-12-07T10:00", "a1b2c3",
                 [f"wrote {repo}results/proxy/x.json\n", "mIoU 40.1\n"])
    b = executed(tmp_path / "b.ipynb", "2026-12-08T11:30", "ffee00",
                 [f"wrote {repo}results/proxy/x.json\nmIoU ", "40.1\n"])
    assert a.read_bytes() != b.read_bytes()
    make_stable(a, source)
    make_stable(b, source)
    assert a.read_bytes() == b.read_bytes()
    nb = nbformat.read(a, as_version=4)
    assert nb.metadata.kernelspec == nbformat.read(source, as_version=4).metadata.kernelspec
    assert nb.metadata.papermill == {"parameters": {"a": 1},
                                     "input_path": "notebooks/04_ablations.ipynb",
                                     "output_path": "results/x.ipynb"}
    cell = nb.cells[0]
    assert cell.id == "cell-0" and cell.metadata == {}
    assert [o.text for o in cell.outputs] == ["wrote results/proxy/x.json\nmIoU 40.1\n"]


def test_running_a_notebook_in_jupyterlab_leaves_git_and_make_lint_clean(tmp_path):
    """JupyterLab saves outputs and counts into notebooks/*.ipynb; with the filter `make
    install` sets up (`make hooks`), git sees the notebook unchanged (make lint then trusts
    the filter); the executed copies under results/ keep their outputs."""
    import shutil
    import subprocess
    import sys

    repo = NOTEBOOKS.parent
    clone = tmp_path / "clone"
    run = lambda *cmd, **kw: subprocess.run(cmd, cwd=clone, check=True,  # noqa: E731
                                            capture_output=True, text=True, **kw)
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(repo), str(clone)], check=True)
    run("make", "--no-print-directory", "hooks", f"BIN={Path(sys.executable).parent}")
    notebook = clone / "notebooks" / "03_cams.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = i + 1  # a checked cell prints what it printed before, in chunks
        if cell.metadata.get("keep_output"):
            text = "".join(o.text for o in cell.outputs)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t)
                            for t in (text[:5], text[5:])]
        else:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="lab\n")]
    nbformat.write(nb, notebook)
    shutil.copy(notebook, clone / "results" / "proxy" / "03_cams.ipynb")
    run("git", "diff", "--quiet", "--", "notebooks")  # what git would commit is unchanged
    run("git", "add", "-A")
    status = run("git", "status", "--porcelain").stdout.splitlines()
    assert status == ["M  results/proxy/03_cams.ipynb"]  # the notebook itself stages as clean


def test_the_committed_notebooks_are_as_the_filter_keeps_them():
    """The filter is idempotent on every committed notebook: make lint's check without the
    filter, and what a clean clone holds."""
    import subprocess
    import sys

    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cleaned = subprocess.run([sys.executable, "tools/notebook_filter.py"],
                                 stdin=path.open(), capture_output=True, check=True,
                                 cwd=NOTEBOOKS.parent).stdout
        assert cleaned == path.read_bytes(), path.name
