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


# ---------------------------------------------------------------------------------- layers
# Bottom up: errors and formats (the files); data; methods (cam_ops, densecrf, models...);
# the stages, none importing another; pipeline, cli and report over them.

def seamlib_imports(path: Path, root: Path = SEAMLIB) -> set[str]:
    """Every seamlib module a file under ``root`` (the seamlib folder) imports, at any depth,
    as dotted names: ``from seamlib.x import y`` counts as ``seamlib.x`` and ``seamlib.x.y``
    (y may be a module); relative imports are resolved."""
    package = ["seamlib", *path.relative_to(root).parts[:-1]]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {n for n in names if n == "seamlib" or n.startswith("seamlib.")}


def within(name: str, *packages: str) -> bool:
    """Whether module ``name`` is one of ``packages`` or inside one."""
    return any(name == p or name.startswith(f"{p}.") for p in packages)


ABOVE_DATA = ("seamlib.stages", "seamlib.pipeline", "seamlib.cli", "seamlib.report")


def data_layer_violations(root: Path = SEAMLIB) -> dict[str, list[str]]:
    """{data module: what it imports from above the data layer}."""
    found = {}
    for path in sorted((root / "data").glob("*.py")):
        bad = sorted(m for m in seamlib_imports(path, root) if within(m, *ABOVE_DATA))
        if bad:
            found[path.name] = bad
    return found


def test_the_data_layer_imports_no_stage_pipeline_or_cli():
    assert data_layer_violations() == {}


def test_no_stage_imports_another_stage_or_what_runs_the_stages():
    for path in (SEAMLIB / "stages").glob("*.py"):
        if path.stem == "__init__":
            continue
        own = f"seamlib.stages.{path.stem}"
        bad = sorted(m for m in seamlib_imports(path)
                     if within(m, *ABOVE_DATA) and not within(m, own))
        assert not bad, f"stages/{path.name} imports {bad}"


def test_formats_and_the_dense_crf_sit_below_the_stages():
    formats = seamlib_imports(SEAMLIB / "formats.py")
    assert all(within(m, "seamlib.errors") for m in formats), sorted(formats)
    densecrf = seamlib_imports(SEAMLIB / "densecrf.py")
    assert not {m for m in densecrf if within(m, *ABOVE_DATA, "seamlib.data")}, sorted(densecrf)


def test_the_layer_check_sees_a_data_module_importing_a_stage(tmp_path):
    """What the data layer did before formats.py: read the CRF score maps from the crf stage."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "affinity_data.py").write_text(
        "def load():\n    from seamlib.stages.crf import load_score_maps\n")
    (tmp_path / "data" / "lists.py").write_text("from ..stages import crf\n")
    (tmp_path / "data" / "voc.py").write_text("from seamlib.formats import atomic_write\n")
    assert data_layer_violations(tmp_path) == {
        "affinity_data.py": ["seamlib.stages.crf", "seamlib.stages.crf.load_score_maps"],
        "lists.py": ["seamlib.stages", "seamlib.stages.crf"]}
