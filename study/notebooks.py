"""The notebooks run headless: ``notebooks/NAME.ipynb`` executed by papermill into
``results/PROFILE/NAME.ipynb``, made byte-stable, and (``update_checks``) the outputs of its
checked cells stored back in the source as nbval's reference."""

from __future__ import annotations

import re
from pathlib import Path

from seamlib.errors import InputError
from tools.notebook_filter import join_streams

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def run_notebook(name: str, profile: str, train: bool = True, data_root: str | None = None,
                 update_checks: bool = False) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with the profile (from any directory); return the
    executed copy's path."""
    import papermill

    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.exists():
        names = ", ".join(sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")))
        raise InputError(f"{source}: no such notebook; expected one of {names}")
    target = NOTEBOOKS.parent / "results" / profile / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    params: dict = {"profile": profile}
    if not train:
        params["train"] = False
    if data_root:
        params["data_root"] = str(Path(data_root).resolve())
    papermill.execute_notebook(str(source), str(target), parameters=params, cwd=str(NOTEBOOKS))
    make_stable(target, source)
    if update_checks:
        copy_checked_outputs(target, source)
    return target


PROGRESS = re.compile(r"\r|\|\s*\d+/\d+ \[")  # a tqdm bar in a stream output


def make_stable(executed: Path, source: Path) -> None:
    """Make an executed copy byte-stable across runs and machines: no timestamps or durations,
    cell ids by position, the source's kernelspec and language, paths relative to the
    repository, each cell's streams joined, progress bars and widget views left out."""
    import nbformat

    nb, src = nbformat.read(executed, as_version=4), nbformat.read(source, as_version=4)
    repo = f"{NOTEBOOKS.parent}/"
    paper = nb.metadata.get("papermill", {})
    nb.metadata = {**src.metadata, "papermill": {
        "parameters": paper.get("parameters", {}),
        **{k: str(Path(paper[k]).resolve().relative_to(NOTEBOOKS.parent))
           for k in ("input_path", "output_path") if k in paper}}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if out.output_type == "stream":
                if out.name == "stderr" and PROGRESS.search(out.text):
                    continue
                out.text = out.text.replace(repo, "")
            elif "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
                continue
            elif "text/plain" in out.get("data", {}):
                out.data["text/plain"] = out.data["text/plain"].replace(repo, "")
            outputs.append(out)
        cell.outputs = join_streams(outputs)
    nbformat.write(nb, executed)


def copy_checked_outputs(executed: Path, source: Path) -> None:
    """Store the outputs of the ``# NBVAL_CHECK_OUTPUT`` cells of an executed notebook in its
    source (with nbstripout's ``keep_output``), as the reference nbval compares against."""
    import nbformat

    ran, src = nbformat.read(executed, as_version=4), nbformat.read(source, as_version=4)
    executed_cells = {c.source: c for c in ran.cells if c.cell_type == "code"}
    for cell in src.cells:
        if cell.cell_type == "code" and cell.source.startswith(CHECK_MARK):
            cell.outputs = executed_cells[cell.source].outputs
            cell.execution_count = executed_cells[cell.source].execution_count  # nbval needs it
            cell.metadata["keep_output"] = True
    nbformat.write(src, source)
