"""Deciding a paper's claim from seeded runs: a paired comparison with an interval and a verdict.

A claim of the form "condition A scores higher (or lower) than condition B" is decided from runs of both
conditions under the same seeds. Each seed gives one difference of means (A's mean minus B's over the same test
items), so the seeds are the replicates: the mean difference gets a t interval across seeds. Within each seed,
the per-item scores of A and B are paired (the same test items), and a Wilcoxon signed-rank test asks whether A's
items score higher; the seeds' one-sided p-values are combined with Stouffer's method. The verdict:

- ``"reproduced"``: at least ``min_seeds`` seeds, the interval lies wholly on the claimed side of 0, and the
  combined paired test is significant at ``alpha`` in the claimed direction;
- ``"not reproduced"``: at least ``min_seeds`` seeds and the interval lies wholly on the other side (it excludes
  the paper's direction);
- ``"undecided at this power"``: anything else, including fewer than ``min_seeds`` seeds.

The paired p-value treats the test items of one seed as independent samples; it says whether one pair of models
differs on these items, not how much models differ from seed to seed. The interval across seeds carries that
variation, which is why a verdict needs both.

scipy is imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["MIN_SEEDS", "PairedClaim", "paired_claim", "seed_interval", "unpaired_claim"]

MIN_SEEDS = 5
"""Fewest seeds for a verdict other than "undecided at this power"."""


@dataclass(frozen=True)
class PairedClaim:
    """The outcome of :func:`paired_claim`.

    Attributes:
        higher: the claimed direction: A higher than B (True) or lower (False).
        seeds: the seeds run in both conditions.
        mean_a, mean_b: mean over seeds of each condition's per-seed mean.
        diff: mean over seeds of ``mean(A) - mean(B)``.
        ci_low, ci_high: its ``confidence`` t interval across seeds (NaN with fewer than two seeds).
        seeds_agreeing: seeds whose difference goes the claimed way.
        p_value: Stouffer-combined one-sided p of the per-seed paired Wilcoxon tests in the claimed direction
            (NaN without per-item scores).
        verdict: ``"reproduced"``, ``"not reproduced"`` or ``"undecided at this power"``.
    """

    higher: bool
    seeds: tuple[int, ...]
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float
    ci_high: float
    seeds_agreeing: int
    p_value: float
    verdict: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seeds": list(self.seeds)}

    def summary(self, digits: int = 3) -> str:
        """``"+0.012 [−0.004, +0.028], 4 of 5 seeds, paired p = 0.03"``."""
        def f(v: float) -> str:
            return "n/a" if not math.isfinite(v) else f"{v:+.{digits}f}"

        ci = f" [{f(self.ci_low)}, {f(self.ci_high)}]" if math.isfinite(self.ci_low) else " (no interval)"
        p = "" if not math.isfinite(self.p_value) else (
            ", paired p < 1e-300" if self.p_value < 1e-300 else f", paired p = {self.p_value:.2g}")
        return f"{f(self.diff)}{ci}, {self.seeds_agreeing} of {len(self.seeds)} seeds{p}"


def seed_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t interval of ``values`` (one per seed); the interval is NaN for fewer than two."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half


def _wilcoxon_one_sided(diff: np.ndarray, higher: bool) -> float:
    from scipy import stats

    d = diff[np.isfinite(diff)]
    if d.size == 0 or not np.any(d != 0):
        return float("nan")  # no evidence either way: the seed gets no vote
    return float(stats.wilcoxon(d, alternative="greater" if higher else "less", zero_method="wilcox").pvalue)


def _verdict(n: int, low: float, high: float, p_value: float, *, higher: bool, alpha: float, min_seeds: int) -> str:
    """The verdict of an interval ``[low, high]`` (and a p-value, NaN when there is none) from ``n`` seeds."""
    if n < min_seeds or not math.isfinite(low):
        return "undecided at this power"
    significant = p_value < alpha if math.isfinite(p_value) else True
    if (low > 0 if higher else high < 0) and significant:
        return "reproduced"
    if high < 0 if higher else low > 0:
        return "not reproduced"
    return "undecided at this power"


def unpaired_claim(
    a: Sequence[float],
    b: Sequence[float],
    *,
    higher: bool = True,
    confidence: float = 0.95,
    min_seeds: int = MIN_SEEDS,
) -> PairedClaim:
    """Decide "A is higher (or lower) than B" from runs that share nothing (other data, other models): the mean
    difference with a Welch t interval, the verdict on the interval alone (``p_value`` NaN, ``seeds`` counts the
    smaller group). For runs of the same seeds on the same test items use :func:`paired_claim`."""
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.size == 0 or y.size == 0:
        raise ValueError("unpaired_claim: both groups need at least one value")
    diff = float(x.mean() - y.mean())
    low = high = float("nan")
    if x.size > 1 and y.size > 1:
        ci = stats.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
        low, high = float(ci.low), float(ci.high)
    n = int(min(x.size, y.size))
    agreeing = int(sum((v > y.mean()) if higher else (v < y.mean()) for v in x))
    return PairedClaim(higher=higher, seeds=tuple(range(n)), mean_a=float(x.mean()), mean_b=float(y.mean()),
                       diff=diff, ci_low=low, ci_high=high, seeds_agreeing=agreeing, p_value=float("nan"),
                       verdict=_verdict(n, low, high, float("nan"), higher=higher, alpha=0.05, min_seeds=min_seeds))


def paired_claim(
    a: Mapping[int, Any],
    b: Mapping[int, Any],
    *,
    higher: bool = True,
    confidence: float = 0.95,
    alpha: float = 0.05,
    min_seeds: int = MIN_SEEDS,
) -> PairedClaim:
    """Decide "A is higher (``higher=True``) or lower than B" from seeded runs.

    Args:
        a, b: by seed, either one number (a run's summary metric) or a 1-D array of per-item scores over the same
            test items in both conditions (NaN items, e.g. a sequence with no motif, are left out of both).
            Only seeds present in both count.
        higher: the claimed direction.
        confidence: the interval's coverage.
        alpha: significance of the combined paired test.
        min_seeds: fewest seeds for a verdict other than "undecided at this power".

    Returns:
        A :class:`PairedClaim`. With per-seed numbers only (no per-item scores) the verdict rests on the interval
        and ``p_value`` is NaN.

    Raises:
        ValueError: per-item arrays of one seed differ in length between A and B.
    """
    from scipy import stats

    seeds = tuple(sorted(set(a) & set(b)))
    means_a, means_b, diffs, zs = [], [], [], []
    for s in seeds:
        va, vb = np.atleast_1d(np.asarray(a[s], dtype=np.float64)), np.atleast_1d(np.asarray(b[s], dtype=np.float64))
        if va.shape != vb.shape:
            raise ValueError(f"paired_claim: seed {s} has {va.size} scores for A and {vb.size} for B; the items "
                             "must be the same")
        both = np.isfinite(va) & np.isfinite(vb)
        means_a.append(float(va[both].mean()) if both.any() else float("nan"))
        means_b.append(float(vb[both].mean()) if both.any() else float("nan"))
        diffs.append(means_a[-1] - means_b[-1])
        if va.size > 1:
            p = _wilcoxon_one_sided(va[both] - vb[both], higher)
            if math.isfinite(p):
                zs.append(float(stats.norm.isf(min(max(p, 1e-300), 1 - 1e-16))))
    diff, low, high = seed_interval(diffs, confidence)
    p_value = float(stats.norm.sf(sum(zs) / math.sqrt(len(zs)))) if zs else float("nan")
    agreeing = sum((d > 0) if higher else (d < 0) for d in diffs)
    verdict = _verdict(len(seeds), low, high, p_value, higher=higher, alpha=alpha, min_seeds=min_seeds)
    return PairedClaim(higher=higher, seeds=seeds, mean_a=float(np.mean(means_a)) if seeds else float("nan"),
                       mean_b=float(np.mean(means_b)) if seeds else float("nan"), diff=diff, ci_low=low, ci_high=high,
                       seeds_agreeing=int(agreeing), p_value=p_value, verdict=verdict)
