"""The house: the library's stages read as the paper's flow, and data flows down the tree:
nothing in seamlib imports the lab tools (experiments/), the benchmarks or the study."""

import ast
from pathlib import Path

SEAMLIB = Path(__file__).resolve().parents[1] / "seamlib"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_library_module_imports_a_lab_tool():
    for path in SEAMLIB.rglob("*.py"):
        lab = {m for m in imported_modules(path)
               if m.split(".")[0] in ("experiments", "benchmarks", "study")}
        assert not lab, f"{path} imports {sorted(lab)}"


def test_the_stages_are_the_papers_flow():
    stages = {p.stem for p in (SEAMLIB / "stages").glob("*.py")} - {"__init__"}
    assert stages == {"train_cam", "cams", "crf", "train_affinity", "random_walk", "train_seg",
                      "segment", "evaluate"}
