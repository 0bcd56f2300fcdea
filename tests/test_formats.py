"""seamlib.formats: atomic writes keep the usual file mode and leave nothing behind on failure;
JSON is always valid (NaN as null)."""

import os
import stat
from pathlib import Path

import pytest

from seamlib.formats import atomic_write, save_figure, sha256_file, write_json


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.json", lambda p: p.write_text("{}"))
        (tmp_path / "b.json").write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o644


def test_atomic_write_failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.md"
    target.write_text("old")

    def broken(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["table.md"]


def test_sha256_file_matches_a_known_digest(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"abc")
    assert sha256_file(tmp_path / "x") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_save_figure_writes_jpeg_for_image_grids_and_png_for_plots(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(4, 4))
    # photo-like: smooth shading (as in images under CAM overlays), which PNG stores poorly
    ax.imshow(np.random.default_rng(0).random((16, 16, 3)), interpolation="bicubic")
    jpg = save_figure(fig, tmp_path / "grid.jpg")
    png = save_figure(fig, tmp_path / "grid.png")
    plt.close(fig)
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert jpg.stat().st_size < png.stat().st_size / 2
    assert sorted(f.name for f in tmp_path.iterdir()) == ["grid.jpg", "grid.png"]


def test_write_json_writes_nan_as_null_with_indent_one(tmp_path: Path) -> None:
    import numpy as np

    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": float("nan"), "c": (1,)})
    assert (tmp_path / "m.json").read_text() == '{\n "a": 0.5,\n "b": null,\n "c": [\n  1\n ]\n}'
