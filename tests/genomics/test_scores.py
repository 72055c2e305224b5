"""Interpretability scores: reductions on hand-built maps, AUROC/AUPR against the motif mask, summaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from robustlab.common.metrics import aupr, auroc
from robustlab.genomics.interpret.scores import (
    REDUCTIONS,
    interpretability_scores,
    motif_mask,
    reduce_attribution,
    summarize_scores,
)


def _onehot(seq: str) -> np.ndarray:
    """(4, L) one-hot with rows A, C, G, T; N is 0.25 each, '-' all zero (padding)."""
    cols = {
        "A": [1, 0, 0, 0],
        "C": [0, 1, 0, 0],
        "G": [0, 0, 1, 0],
        "T": [0, 0, 0, 1],
        "N": [0.25] * 4,
        "-": [0] * 4,
    }
    return np.array([cols[c] for c in seq], dtype=np.float64).T


# A hand-built map over "ACNG-": one column per position, rows A, C, G, T.
ATTR = np.array(
    [
        [1.0, 0.5, 4.0, -1.0, 2.0],
        [2.0, -3.0, 0.0, 0.0, 2.0],
        [3.0, 0.0, 8.0, 2.0, 1.0],
        [4.0, 1.0, -4.0, 0.0, -2.0],
    ]
)
X = _onehot("ACNG-")

EXPECTED = {
    # sum_c attr * x: A -> 1, C -> -3, N -> 0.25 * (4 + 0 + 8 - 4) = 2, G -> 2, padding -> 0
    "grad_times_input": [1.0, -3.0, 2.0, 2.0, 0.0],
    # the value at the observed letter; N -> mean of the four (tied) = 2, padding -> 0
    "observed": [1.0, -3.0, 2.0, 2.0, 0.0],
    "sum": [10.0, -1.5, 8.0, 1.0, 3.0],
    "l2": [np.sqrt(30), np.sqrt(10.25), np.sqrt(96), np.sqrt(5), np.sqrt(13)],
}


@pytest.mark.parametrize("how", REDUCTIONS)
def test_reductions_on_a_hand_built_map(how):
    out = reduce_attribution(ATTR[None], X[None], how=how)
    assert out.shape == (1, 5)
    np.testing.assert_allclose(out[0], EXPECTED[how])
    single = reduce_attribution(torch.tensor(ATTR), torch.tensor(X), how=how)  # (4, L) tensors
    np.testing.assert_allclose(single, EXPECTED[how])


def test_observed_and_grad_times_input_agree_on_one_hot_and_differ_on_soft_inputs():
    times_input = ATTR * X  # what GradientTimesInput or IntegratedGradients return
    for attr in (ATTR, times_input):  # one-hot, N and padding: the same values, nothing counted twice
        np.testing.assert_allclose(
            reduce_attribution(attr, X, how="observed"), reduce_attribution(attr, X, how="grad_times_input")
        )
    soft = np.array([[0.7], [0.1], [0.1], [0.1]])  # a position given as probabilities
    attr = np.array([[2.0], [1.0], [-1.0], [4.0]])
    assert reduce_attribution(attr, soft, how="observed")[0] == pytest.approx(2.0)  # the A value alone
    assert reduce_attribution(attr, soft, how="grad_times_input")[0] == pytest.approx(1.4 + 0.1 - 0.1 + 0.4)
    once = attr * soft
    assert reduce_attribution(once, soft, how="observed")[0] == pytest.approx(1.4)
    assert reduce_attribution(once, soft, how="grad_times_input")[0] == pytest.approx(
        0.98 + 0.01 - 0.01 + 0.04
    )


def test_reduction_errors():
    with pytest.raises(ValueError, match="how"):
        reduce_attribution(ATTR, X, how="max")
    with pytest.raises(ValueError, match="shape"):
        reduce_attribution(ATTR[:3], X[:3])
    with pytest.raises(ValueError, match="shape of attr"):
        reduce_attribution(ATTR, X[:, :4])


def _random_problem(seed, n=60, length=200):
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, length), dtype=bool)
    for i in range(n):
        for start in rng.choice(length - 12, size=rng.integers(1, 4), replace=False):
            mask[i, start : start + rng.integers(6, 12)] = True
    return rng, mask


def test_perfect_importance_scores_one():
    _, mask = _random_problem(0)
    out = interpretability_scores(mask.astype(float), mask)
    assert out["n_skipped"] == 0 and out["evaluated"].all()
    np.testing.assert_allclose(out["auroc"], 1.0)
    np.testing.assert_allclose(out["aupr"], 1.0)
    assert out["summary"]["auroc"] == {"mean": 1.0, "std": 0.0, "median": 1.0, "n": 60}


def test_random_importance_scores_one_half():
    rng, mask = _random_problem(1, n=300)
    out = interpretability_scores(rng.normal(size=mask.shape), mask)
    assert out["summary"]["auroc"]["mean"] == pytest.approx(0.5, abs=0.02)
    prevalence = mask.mean(1)
    # average precision of random scores is the prevalence plus a small-sample bias upwards
    assert 0.0 < np.mean(out["aupr"] - prevalence) < 0.04


@pytest.mark.parametrize("seed", [2, 3])
def test_agrees_with_sklearn_and_core_metrics_per_sequence(seed):
    rng, mask = _random_problem(seed, n=40)
    importance = np.round(rng.normal(size=mask.shape) + 1.5 * mask, 1)  # informative, with many ties
    out = interpretability_scores(torch.tensor(importance), torch.tensor(mask))
    for i in range(len(mask)):
        assert out["auroc"][i] == pytest.approx(roc_auc_score(mask[i], importance[i]), abs=1e-12)
        assert out["aupr"][i] == pytest.approx(average_precision_score(mask[i], importance[i]), abs=1e-12)
        assert out["auroc"][i] == auroc(mask[i].astype(int), importance[i])
        assert out["aupr"][i] == aupr(mask[i].astype(int), importance[i])
    assert 0.75 < out["summary"]["auroc"]["mean"] < 1.0


def test_sequences_without_both_classes_are_skipped_and_counted():
    rng, mask = _random_problem(4, n=10)
    mask[3] = False
    mask[7] = True
    out = interpretability_scores(rng.normal(size=mask.shape), mask)
    assert out["n_skipped"] == 2
    assert np.isnan(out["auroc"][[3, 7]]).all() and np.isnan(out["aupr"][[3, 7]]).all()
    assert out["evaluated"].sum() == 8 and out["summary"]["auroc"]["n"] == 8
    assert np.isfinite(np.delete(out["auroc"], [3, 7])).all()


def test_excluded_positions_are_left_out():
    rng, mask = _random_problem(5, n=20)
    importance = rng.normal(size=mask.shape) + mask
    exclude = rng.random(mask.shape) < 0.3
    importance[exclude] = np.nan  # never looked at
    out = interpretability_scores(importance, mask, exclude=exclude)
    for i in range(len(mask)):
        keep = ~exclude[i]
        assert out["auroc"][i] == pytest.approx(roc_auc_score(mask[i][keep], importance[i][keep]), abs=1e-12)


def test_score_errors():
    mask = np.zeros((2, 5), dtype=bool)
    mask[:, 1] = True
    with pytest.raises(ValueError, match="reduce the channels"):
        interpretability_scores(np.zeros((2, 4, 5)), mask)
    with pytest.raises(ValueError, match="mask must have the shape"):
        interpretability_scores(np.zeros((2, 5)), mask[:, :4])
    bad = np.zeros((2, 5))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="sequence 1"):
        interpretability_scores(bad, mask)


def test_motif_mask_from_generating_matrix():
    # uniform background; an informative motif at 3..5 whose middle column is nearly uninformative
    p = np.full((1, 4, 10), 0.25)
    p[0, :, 3] = [0.97, 0.01, 0.01, 0.01]
    p[0, :, 4] = [0.28, 0.24, 0.24, 0.24]  # about 0.004 bits: inside the motif but below threshold
    p[0, :, 5] = [0.01, 0.01, 0.01, 0.97]
    mask, keep = motif_mask(p, rule="strict", threshold=0.1)
    assert mask[0].tolist() == [False] * 3 + [True, False, True] + [False] * 4
    assert keep[0].tolist() == [True] * 4 + [False] + [True] * 5
    importance = np.arange(10.0)[None] * 0 + mask  # perfect on the kept positions
    importance[0, 4] = 5.0  # would hurt if position 4 counted as a negative
    out = interpretability_scores(importance, mask, exclude=~keep)
    assert out["auroc"][0] == 1.0
    # The authors' rule: every column with information > 0 is a motif position, every position is scored.
    mask0, keep0 = motif_mask(p)
    assert mask0[0].tolist() == [False] * 3 + [True, True, True] + [False] * 4 and keep0.all()
    assert interpretability_scores(importance, mask0)["auroc"][0] == 1.0  # position 4 (5.0) is now a positive
    # float32 generating matrices, as the simulations store them: a uniform column is exactly 0 bits
    assert not motif_mask(np.full((2, 4, 5), 0.25, dtype=np.float32))[0].any()
    with pytest.raises(ValueError, match="rule"):
        motif_mask(p, rule="loose")


def test_summarize_scores():
    s = summarize_scores([0.5, np.nan, 1.0, 0.75])
    assert s == {"mean": 0.75, "std": pytest.approx(np.std([0.5, 1.0, 0.75])), "median": 0.75, "n": 3}
    empty = summarize_scores([np.nan])
    assert empty["n"] == 0 and np.isnan(empty["mean"])
