"""robustlab.common.metrics.claims: a claim decided from seeded runs with an interval and a paired test."""

import math

import numpy as np
import pytest
from scipy import stats

from robustlab.common.metrics import paired_claim, seed_interval


def _runs(effect, seeds=5, items=300, seed_sd=0.005, item_sd=0.05, rng=0):
    """Per-item scores of A and B on the same items: B ~ base, A = B + effect + seed and item noise."""
    g = np.random.default_rng(rng)
    base = g.uniform(0.6, 0.9, items)
    a, b = {}, {}
    for s in range(seeds):
        b[s] = base + g.normal(0, item_sd, items)
        a[s] = b[s] + effect + g.normal(0, seed_sd) + g.normal(0, item_sd, items)
    return a, b


def test_a_clear_effect_is_reproduced_and_its_interval_holds_the_truth():
    a, b = _runs(0.03)
    claim = paired_claim(a, b, higher=True)
    assert claim.verdict == "reproduced"
    assert claim.ci_low < 0.03 < claim.ci_high and claim.ci_low > 0
    assert claim.seeds_agreeing == 5 and claim.p_value < 1e-6
    # the lower direction of the same data is refuted: the interval excludes it
    assert paired_claim(a, b, higher=False).verdict == "not reproduced"
    assert "5 of 5 seeds" in claim.summary()
    from dataclasses import replace

    assert replace(claim, p_value=0.0).summary().endswith("paired p < 1e-300")  # a combined p that underflows


def test_interval_and_tests_match_scipy():
    a, b = _runs(0.01, seed_sd=0.01)
    claim = paired_claim(a, b)
    diffs = [a[s].mean() - b[s].mean() for s in range(5)]
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert claim.diff == pytest.approx(np.mean(diffs), abs=1e-12)
    assert (claim.ci_low, claim.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    z = [stats.norm.isf(stats.wilcoxon(a[s] - b[s], alternative="greater").pvalue) for s in range(5)]
    assert claim.p_value == pytest.approx(stats.norm.sf(sum(z) / math.sqrt(5)), rel=1e-9)


def test_too_few_seeds_or_no_effect_stay_undecided():
    a, b = _runs(0.2, seeds=2)
    two = paired_claim(a, b)
    assert two.verdict == "undecided at this power" and two.ci_low > 0  # clear, but two seeds decide nothing
    a, b = _runs(0.0, seed_sd=0.02)
    none = paired_claim(a, b)
    assert none.ci_low < 0 < none.ci_high and none.verdict == "undecided at this power"
    one = paired_claim({0: 0.8}, {0: 0.7})
    assert math.isnan(one.ci_low) and one.verdict == "undecided at this power"


def test_numbers_per_seed_decide_on_the_interval_alone():
    a = {s: 0.9 + 0.001 * s for s in range(6)}
    b = {s: 0.8 + 0.002 * s for s in range(6)}
    claim = paired_claim(a, b)
    assert claim.verdict == "reproduced" and math.isnan(claim.p_value)
    assert claim.seeds == tuple(range(6))
    assert paired_claim({**a, 9: 0.1}, b).seeds == tuple(range(6))  # only seeds run in both count


def test_nan_items_leave_both_sides_and_mismatched_items_are_refused():
    a, b = _runs(0.03)
    a[0][:10] = np.nan
    claim = paired_claim(a, b)
    assert math.isfinite(claim.diff) and claim.verdict == "reproduced"
    same = {s: np.full(50, 0.7) for s in range(5)}
    assert math.isnan(paired_claim(same, same).p_value)  # no difference anywhere: no evidence, not evidence against
    with pytest.raises(ValueError, match="seed 1"):
        paired_claim({1: np.ones(3)}, {1: np.ones(4)})
    mean, low, high = seed_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and low < 2.0 < high


def test_unpaired_claim_is_welch_with_the_same_verdict_rules():
    from robustlab.common.metrics import unpaired_claim

    small = [0.10, 0.09, 0.10, 0.11, 0.09]
    large = [0.01, 0.00, 0.02, 0.00, 0.01]
    claim = unpaired_claim(small, large)
    ci = stats.ttest_ind(small, large, equal_var=False).confidence_interval(0.95)
    assert (claim.ci_low, claim.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert claim.verdict == "reproduced" and math.isnan(claim.p_value) and claim.diff == pytest.approx(0.09)
    assert unpaired_claim(large, small).verdict == "not reproduced"
    assert unpaired_claim(small[:3], large[:3]).verdict == "undecided at this power"  # three seeds decide nothing
    with pytest.raises(ValueError, match="both groups"):
        unpaired_claim([], large)
