"""Tables of the study: rows as CSV and Markdown, and mean +- std over seeds."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from seamlib.errors import InputError
from seamlib.formats import atomic_write, json_safe


def write_table(rows: list[dict], base: str | Path, title: str = "") -> Path:
    """Write ``rows`` (one dict per row, the same keys in the same order) as ``base``.csv and
    ``base``.md (a Markdown table under ``title``); return the Markdown's path."""
    base = Path(base)
    if not rows:
        raise InputError(f"{base}: a table needs at least one row")
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lines = ([f"# {title}", ""] if title else []) + [
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
        *("| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows)]
    atomic_write(base.with_suffix(".csv"), lambda t: t.write_text(buffer.getvalue()))
    atomic_write(base.with_suffix(".md"), lambda t: t.write_text("\n".join(lines) + "\n"))
    return base.with_suffix(".md")


def mean_std(values: list) -> dict[str, list | float | None]:
    """Mean and sample std (ddof=1; None with one seed) over seeds, elementwise, NaN-aware."""
    arr = np.asarray(values, dtype=float)
    with warnings.catch_warnings():  # classes absent in every run: NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(arr, axis=0)
        std = np.nanstd(arr, axis=0, ddof=1) if len(arr) > 1 else None
    return {"mean": json_safe(mean), "std": None if std is None else json_safe(std)}


def pm(values: list[float], scale: float = 100, digits: int = 1) -> str:
    """``values`` over seeds as "mean ± std" (just the mean for one seed), times ``scale``."""
    stats = mean_std(values)
    mean = f"{scale * stats['mean']:.{digits}f}"
    return mean if stats["std"] is None else f"{mean} ± {scale * stats['std']:.{digits}f}"
