"""The verdict rule on hand-made numbers: paired differences per seed, a 95 % t interval,
holds / reversed / not resolved, and no verdict on one seed."""

import statistics

import pytest
from scipy import stats

from study.verdicts import (
    HOLDS,
    NOT_RESOLVED,
    ONE_SEED,
    REVERSED,
    describe,
    overall,
    paired,
    spread,
)


def test_a_clear_paired_effect_holds():
    seam = {0: 0.42, 1: 0.45, 2: 0.40, 3: 0.44, 4: 0.43}
    baseline = {k: v - d for (k, v), d in zip(seam.items(), (0.02, 0.03, 0.025, 0.02, 0.03),
                                             strict=True)}
    c = paired(seam, baseline)
    assert c["verdict"] == HOLDS and c["seeds"] == [0, 1, 2, 3, 4]
    assert c["mean"] == pytest.approx(0.025) and 0 < c["low"] < c["mean"] < c["high"]


def test_the_interval_is_the_t_interval_over_seeds():
    c = paired({0: 0.3, 1: 0.5, 2: 0.2}, {0: 0.1, 1: 0.1, 2: 0.1})
    diffs = [0.2, 0.4, 0.1]
    half = stats.t.ppf(0.975, 2) * statistics.stdev(diffs) / 3 ** 0.5
    assert c["low"] == pytest.approx(statistics.fmean(diffs) - half)
    assert c["high"] == pytest.approx(statistics.fmean(diffs) + half)


def test_no_effect_is_not_resolved():
    c = paired({0: 0.40, 1: 0.43, 2: 0.41}, {0: 0.42, 1: 0.41, 2: 0.41})
    assert c["low"] < 0 < c["high"] and c["verdict"] == NOT_RESOLVED


def test_the_records_example_is_not_resolved_not_below():
    """SEAM minus baseline over seeds 0-2 was -1.78, -0.27, -2.65 points: below on every seed,
    but the interval reaches above zero, so SEAM below the baseline is not established."""
    seam = {0: 0.3900, 1: 0.3880, 2: 0.3870}
    baseline = {0: 0.4078, 1: 0.3907, 2: 0.4135}
    c = paired(seam, baseline)
    assert c["verdict"] == NOT_RESOLVED and c["high"] > 0 > c["mean"]


def test_a_clear_effect_against_the_paper_is_reversed():
    c = paired({0: 0.30, 1: 0.31, 2: 0.29}, {0: 0.40, 1: 0.40, 2: 0.40})
    assert c["verdict"] == REVERSED
    assert paired({0: 0.30, 1: 0.31, 2: 0.29}, {0: 0.40, 1: 0.40, 2: 0.40},
                  paper_sign=-1)["verdict"] == HOLDS


def test_the_paired_rule_and_the_unpaired_one_disagree():
    """Seeds vary far more than the effect: the old rule (difference of means against the
    largest seed std) calls it within the spread, the paired rule sees it on every seed."""
    variant = {0: 0.51, 1: 0.61, 2: 0.71}
    reference = {0: 0.50, 1: 0.60, 2: 0.70}
    unpaired_says_effect = (statistics.fmean(variant.values())
                            - statistics.fmean(reference.values())
                            > statistics.stdev(reference.values()))
    assert not unpaired_says_effect
    assert paired(variant, reference)["verdict"] == HOLDS


def test_one_seed_gets_its_number_and_no_verdict():
    c = paired({0: 0.5}, {0: 0.4, 1: 0.41, 2: 0.39})
    assert c["seeds"] == [0] and c["mean"] == pytest.approx(0.1) and c["verdict"] == ONE_SEED
    assert describe(c) == f"+10.0 points, {ONE_SEED}"
    assert paired({}, {0: 0.4})["verdict"] == "not run"


def test_only_the_seeds_both_have_are_paired():
    c = paired({0: 0.5, 1: 0.6, 3: 0.9}, {0: 0.4, 1: 0.5, 2: 0.1})
    assert c["seeds"] == [0, 1] and c["differences"] == pytest.approx([0.1, 0.1])


def test_a_claim_of_several_comparisons():
    assert overall([HOLDS, HOLDS]) == HOLDS
    assert overall([HOLDS, NOT_RESOLVED]) == NOT_RESOLVED
    assert overall([HOLDS, REVERSED, NOT_RESOLVED]) == REVERSED
    assert overall([ONE_SEED, HOLDS]) == HOLDS
    assert overall([ONE_SEED, "not run"]) == ONE_SEED
    assert overall(["not run", "not run"]) == "not run"


def test_flatness_is_the_range_over_scales_and_judged_paired():
    seam = {k: spread({0.5: 0.40, 1.0: 0.42 + k / 100, 2.0: 0.41}) for k in range(3)}
    baseline = {k: spread({0.5: 0.30, 1.0: 0.42 + k / 100, 2.0: 0.38}) for k in range(3)}
    assert seam == pytest.approx({0: 0.02, 1: 0.03, 2: 0.04})
    assert paired(seam, baseline, paper_sign=-1)["verdict"] == HOLDS  # SEAM's range smaller


def test_describe_states_mean_interval_seeds_and_verdict():
    c = paired({0: 0.42, 1: 0.44}, {0: 0.40, 1: 0.40})
    text = describe(c)
    assert text.startswith("+3.0 points [") and text.endswith("2 seeds: " + c["verdict"])
