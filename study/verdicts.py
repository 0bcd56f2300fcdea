"""Verdicts on the paper's claims, from paired runs.

Seed k of two variants shares the data order, the augmentation draws, dropout and the
initialisation of the new layers, so a claim is judged on the per-seed differences (variant
minus reference, same seed), never on a difference of means against one run's spread.

The rule, for every claim: the mean of the paired differences and its 95 % t interval over the
seeds (mean +- t(0.975, n - 1) * sd / sqrt(n)). A t interval, not a bootstrap over seeds: with
3 to 5 seeds a bootstrap has at most 126 distinct resamples and its percentile interval is
too narrow; the t interval is exact when the differences are normal and widens correctly with
few seeds. Verdict: ``holds`` when the interval lies on the paper's side of zero,
``reversed`` when it lies on the other side, ``not resolved`` when it straddles zero. A
comparison with fewer than two paired seeds gets no verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping

from scipy import stats

CONFIDENCE = 0.95
HOLDS, REVERSED, NOT_RESOLVED = "holds", "reversed", "not resolved"
ONE_SEED = "one seed, not judged"


def paired(variant: Mapping[int, float], reference: Mapping[int, float],
           paper_sign: int = 1) -> dict:
    """The paired comparison of ``variant`` with ``reference`` ({seed: value}) on the seeds
    both have: per-seed differences, their mean, the 95 % t interval and the verdict.
    ``paper_sign`` +1: the paper says variant > reference; -1: variant < reference."""
    seeds = sorted(set(variant) & set(reference))
    diffs = [variant[k] - reference[k] for k in seeds]
    result = {"seeds": seeds, "differences": diffs, "paper_sign": paper_sign,
              "mean": statistics.fmean(diffs) if diffs else None, "low": None, "high": None}
    if len(diffs) < 2:
        return {**result, "verdict": ONE_SEED if diffs else "not run"}
    half = (stats.t.ppf((1 + CONFIDENCE) / 2, len(diffs) - 1)
            * statistics.stdev(diffs) / math.sqrt(len(diffs)))
    low, high = result["mean"] - half, result["mean"] + half
    return {**result, "low": low, "high": high, "verdict": verdict(low, high, paper_sign)}


def verdict(low: float, high: float, paper_sign: int = 1) -> str:
    """``holds`` / ``reversed`` / ``not resolved`` for an interval and the paper's side."""
    low, high = sorted((paper_sign * low, paper_sign * high))
    return HOLDS if low > 0 else REVERSED if high < 0 else NOT_RESOLVED


def overall(verdicts: Iterable[str]) -> str:
    """One claim judged by several comparisons: ``holds`` when every judged one holds,
    ``reversed`` when any is reversed, else ``not resolved`` (``one seed, not judged`` when
    none could be judged, ``not run`` when none has numbers)."""
    verdicts = list(verdicts)
    judged = [v for v in verdicts if v in (HOLDS, REVERSED, NOT_RESOLVED)]
    if not judged:
        return ONE_SEED if ONE_SEED in verdicts else "not run"
    return REVERSED if REVERSED in judged else HOLDS if set(judged) == {HOLDS} else NOT_RESOLVED


def spread(values_by_scale: Mapping[float, float]) -> float:
    """A run's flatness over input scales: the range (max - min) of a metric over them."""
    return max(values_by_scale.values()) - min(values_by_scale.values())


def describe(comparison: dict, scale: float = 100, unit: str = " points") -> str:
    """``+1.2 points [-0.3, +2.7], 5 seeds: not resolved`` (values times ``scale``)."""
    if comparison["mean"] is None:
        return "not run"
    mean = f"{scale * comparison['mean']:+.1f}{unit}"
    if comparison["low"] is None:
        return f"{mean}, {comparison['verdict']}"
    return (f"{mean} [{scale * comparison['low']:+.1f}, {scale * comparison['high']:+.1f}], "
            f"{len(comparison['seeds'])} seeds: {comparison['verdict']}")
