"""Label noise: the generators' statistics and seeds, LDCE's label distribution and confidence by hand, GLC's and
Patrini's estimates of C on synthetic cases, forward correction (cross-entropy at C = I, gradcheck), detection scores
by hand and against scikit-learn, and confident learning against cleanlab's own functions; every error message."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from robustlab.common import label_noise as ln
from robustlab.common.errors import ConfigError, DataError
from robustlab.common.label_noise import (
    anchor_transition_matrix,
    check_transition_matrix,
    confidence,
    confident_learning_issues,
    corrupt,
    detection_scores,
    estimate_corruption,
    estimate_noise_rate,
    find_noisy,
    forward_loss,
    label_distribution,
    noise_rate,
    pair_noise,
    symmetric_noise,
    transition_matrix,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N_STATS = 20_000


def _labels(n=N_STATS, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


def _empirical_c(true, noisy, k):
    c = np.zeros((k, k))
    np.add.at(c, (true, noisy), 1.0)
    return c / c.sum(axis=1, keepdims=True)


def _synthetic_probs(true, k, *, margin=2.5, seed=0):
    """Predicted probabilities of a fair classifier: logits N(0, 1) plus ``margin`` on the true class."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(true), k))
    logits[np.arange(len(true)), true] += margin
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------- generators


def test_transition_matrix_symmetric_and_pair_entries():
    c = transition_matrix("symmetric", 0.3, 4)
    assert c.dtype == np.float64 and c.shape == (4, 4)
    np.testing.assert_allclose(np.diag(c), 0.7)
    np.testing.assert_allclose(c[~np.eye(4, dtype=bool)], 0.1)
    p = transition_matrix("pair", 0.25, 4)
    expected = 0.75 * np.eye(4)
    expected[[0, 1, 2, 3], [1, 2, 3, 0]] = 0.25
    np.testing.assert_allclose(p, expected)
    np.testing.assert_array_equal(transition_matrix("symmetric", 0.0, 3), np.eye(3))
    for c in (transition_matrix(kind, 0.4, 7, seed=1) for kind in ("symmetric", "pair", "random_pair")):
        np.testing.assert_allclose(c.sum(axis=1), 1.0)
        assert check_transition_matrix(c) is not c  # a checked copy


def test_transition_matrix_random_pair_one_other_class_per_row_and_seeded():
    k = 10
    c = transition_matrix("random_pair", 0.3, k, seed=3)
    np.testing.assert_allclose(np.diag(c), 0.7)
    off = c.copy()
    np.fill_diagonal(off, 0.0)
    assert ((off > 0).sum(axis=1) == 1).all()  # exactly one other class per row, never the class itself
    np.testing.assert_allclose(off.max(axis=1), 0.3)
    np.testing.assert_array_equal(c, transition_matrix("random_pair", 0.3, k, seed=3))
    off_targets = {tuple(np.argmax(transition_matrix("random_pair", 0.3, k, seed=s) - 0.7 * np.eye(k), axis=1))
                   for s in range(6)}
    assert len(off_targets) > 1  # different seeds draw different pairs
    # every other class is reachable (the draw is over the K - 1 others, shifted past the diagonal)
    targets = np.concatenate([np.argmax(transition_matrix("random_pair", 0.3, 3, seed=s) - 0.7 * np.eye(3), axis=1)
                              for s in range(40)])
    assert set(targets.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("rate", [0.2, 0.45])
def test_symmetric_noise_statistics(rate):
    k = 5
    true = _labels(k=k)
    noisy, is_noisy = symmetric_noise(true, rate, k, seed=0)
    assert noisy.dtype == np.int64 and is_noisy.dtype == bool and noisy.shape == is_noisy.shape == true.shape
    np.testing.assert_array_equal(is_noisy, noisy != true)
    assert abs(is_noisy.mean() - rate) < 0.01
    assert noise_rate(noisy, true) == pytest.approx(is_noisy.mean())
    # every entry of the empirical corruption matrix near the requested one (4000 samples per class: std <= 0.008)
    np.testing.assert_allclose(_empirical_c(true, noisy, k), transition_matrix("symmetric", rate, k), atol=0.03)


def test_pair_noise_next_flips_only_to_the_next_class():
    k = 10
    true = _labels(k=k)
    noisy, is_noisy = pair_noise(true, 0.3, k, seed=0)
    assert abs(is_noisy.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(noisy[is_noisy], (true[is_noisy] + 1) % k)
    np.testing.assert_allclose(_empirical_c(true, noisy, k), transition_matrix("pair", 0.3, k), atol=0.04)


def test_pair_noise_random_uses_the_seed_for_pairs_then_labels():
    k = 10
    true = _labels(k=k)
    noisy, is_noisy = pair_noise(true, 0.2, k, seed=7, variant="random")
    assert abs(is_noisy.mean() - 0.2) < 0.01
    rng = np.random.default_rng(7)
    c = transition_matrix("random_pair", 0.2, k, seed=rng)
    again, _ = corrupt(true, c, seed=rng)
    np.testing.assert_array_equal(noisy, again)
    for i in range(k):  # each class flips to its one drawn partner only
        assert set(noisy[(true == i) & is_noisy].tolist()) == {int(np.argmax(c[i] - 0.8 * np.eye(k)[i]))}


@pytest.mark.parametrize("make", [
    lambda y, s: symmetric_noise(y, 0.3, 10, seed=s),
    lambda y, s: pair_noise(y, 0.3, 10, seed=s),
    lambda y, s: pair_noise(y, 0.3, 10, seed=s, variant="random"),
    lambda y, s: corrupt(y, transition_matrix("symmetric", 0.3, 10), seed=s),
], ids=["symmetric", "pair", "random_pair", "corrupt"])
def test_generators_repeat_under_a_seed_and_differ_across_seeds(make):
    true = _labels(2000)
    a, b, c = make(true, 5), make(true, 5), make(true, 6)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (a[0] != c[0]).any()
    g1, g2 = make(true, np.random.default_rng(5)), make(true, np.random.default_rng(5))
    np.testing.assert_array_equal(g1[0], g2[0])  # a Generator is accepted and consumed the same way


def test_corrupt_follows_degenerate_rows_exactly():
    perm = np.eye(3)[[2, 0, 1]]  # 0 -> 2, 1 -> 0, 2 -> 1, surely
    noisy, is_noisy = corrupt([0, 1, 2, 2, 0], perm, seed=0)
    assert noisy.tolist() == [2, 0, 1, 1, 2] and is_noisy.all()
    # a class of probability 0 is never drawn, even the last one, even when the row sums to 1 - 5e-7
    c = np.array([[0.5, 0.5 - 5e-7, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]])
    noisy, _ = corrupt(np.zeros(20_000, dtype=int), c, seed=1)
    assert set(noisy.tolist()) == {0, 1} and abs(noisy.mean() - 0.5) < 0.02
    noisy, is_noisy = corrupt(torch.tensor([0, 1, 2]), np.eye(3), seed=0)  # tensors accepted
    assert noisy.tolist() == [0, 1, 2] and not is_noisy.any()


def test_check_transition_matrix_accepts_tensors_and_rounding():
    c = torch.tensor([[0.5, 0.5], [0.3, 0.7 + 5e-7]], dtype=torch.float64)
    out = check_transition_matrix(c, 2)
    assert out.dtype == np.float64 and out.shape == (2, 2)


def test_noise_rate_by_hand():
    assert noise_rate([0, 1, 2, 3], [0, 1, 2, 3]) == 0.0
    assert noise_rate(np.array([0, 1, 1, 0]), torch.tensor([1, 1, 0, 0])) == 0.5


# ------------------------------------------------------------------------------------------------- LDCE pieces


def test_label_distribution_hand_computed():
    # class 0 support at (0, 0) and (2, 0), class 1 at (1, 2); the sample at (1, 0):
    # d_0 = mean(((1-0)^2 + 0) / 2, ((1-2)^2 + 0) / 2) = 0.5, d_1 = ((0)^2 + (0-2)^2) / 2 = 2
    # similarities (2, 0.5): share of class 0 = 1 / (1 + exp(-1.5))
    support = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 2.0]])
    dist = label_distribution(np.array([[1.0, 0.0]]), support, [0, 0, 1], 2)
    assert dist.dtype == torch.float32 and dist.shape == (1, 2)
    assert dist[0, 0].item() == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-6)
    assert dist[0].sum().item() == pytest.approx(1.0, abs=1e-6)
    # three classes, one-dimensional: sample at 1, supports 0 (class 0), 3 (class 1), 1.5 and 2.5 (class 2)
    # d = (1, 4, (0.25 + 2.25) / 2 = 1.25) -> s = (1, 0.25, 0.8)
    dist = label_distribution([[1.0]], [[0.0], [3.0], [1.5], [2.5]], [0, 1, 2, 2], 3)
    s = np.array([1.0, 0.25, 0.8])
    np.testing.assert_allclose(dist[0].numpy(), np.exp(s) / np.exp(s).sum(), rtol=1e-6)


def test_label_distribution_matches_a_direct_computation_flattens_and_chunks(monkeypatch):
    g = torch.Generator().manual_seed(0)
    f, s = torch.randn(37, 3, 2, 2, generator=g), torch.randn(15, 3, 2, 2, generator=g)
    y = torch.arange(15) % 5
    ff, ss = f.reshape(37, -1).double(), s.reshape(15, -1).double()
    d = ((ff[:, None] - ss[None]) ** 2).mean(2)
    dk = torch.stack([d[:, y == j].mean(1) for j in range(5)], 1)
    expected = torch.softmax(1 / dk, 1)
    got = label_distribution(f, s, y, 5)
    torch.testing.assert_close(got.double(), expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(label_distribution(f.numpy(), s.numpy(), y.numpy(), 5), got)
    assert label_distribution(f.double(), s, y, 5).dtype == torch.float64  # a float64 tensor keeps its dtype
    monkeypatch.setattr(ln, "_CHUNK_ELEMENTS", 24)  # 2 samples per chunk
    torch.testing.assert_close(label_distribution(f, s, y, 5), got)


def test_label_distribution_zero_distance_is_clamped_and_gradients_flow():
    dist = label_distribution([[0.0, 1.0]], [[0.0, 1.0], [5.0, 5.0]], [0, 1], 2)  # exactly on class 0's sample
    assert torch.isfinite(dist).all() and dist[0].tolist() == [1.0, 0.0]
    f = torch.randn(4, 3, requires_grad=True)
    label_distribution(f, torch.randn(6, 3), [0, 1, 2, 0, 1, 2], 3)[:, 0].sum().backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0


def test_confidence_share_and_smoothing_across_epochs():
    dist = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = torch.tensor([1, 2])
    torch.testing.assert_close(confidence(dist, y), torch.tensor([0.2, 0.8]))
    # the authors' running average from 0, over three epochs of shares (0.2, 0.8), (0.5, 0.1), (0.9, 0.4)
    prev = torch.zeros(2)
    shares = [dist, torch.tensor([[0, 0.5, 0.5], [0.9, 0, 0.1]]), torch.tensor([[0.1, 0.9, 0], [0.3, 0.3, 0.4]])]
    for d in shares:
        prev = confidence(d, y, previous=prev, alpha=0.6)
    expected = [0.4 * (0.6 ** 2 * a + 0.6 * b + c) for a, b, c in ((0.2, 0.5, 0.9), (0.8, 0.1, 0.4))]
    np.testing.assert_allclose(prev.numpy(), expected, rtol=1e-6)
    torch.testing.assert_close(confidence(dist, y, previous=[0.3, 0.3], alpha=1.0), torch.tensor([0.3, 0.3]))
    torch.testing.assert_close(confidence(dist, y, previous=[0.3, 0.3], alpha=0), torch.tensor([0.2, 0.8]))
    assert confidence(dist.double(), [0, 0]).dtype == torch.float64


def test_find_noisy_threshold_is_strict():
    assert find_noisy(torch.tensor([0.49, 0.5, 0.51])).tolist() == [True, False, False]
    mask = find_noisy(np.array([0.1, 0.3, 0.2]), threshold=0.25)
    assert mask.dtype == bool and mask.tolist() == [True, False, True]
    assert find_noisy(np.zeros(0)).shape == (0,)


def test_ldce_confidence_separates_noisy_labels_of_well_separated_classes():
    # no temperature: the share is decisive where within-class distances are well below 1 (here about 2 * 0.2^2)
    rng = np.random.default_rng(0)
    k, centers = 4, np.eye(4) * 2
    true = rng.integers(0, k, 400)
    x = centers[true] + 0.2 * rng.normal(size=(400, 4))
    support_y = np.repeat(np.arange(k), 5)
    support = centers[support_y] + 0.2 * rng.normal(size=(20, 4))
    noisy, is_noisy = symmetric_noise(true, 0.4, k, seed=0)
    c = confidence(label_distribution(x, support, support_y, k), noisy)
    scores = detection_scores(find_noisy(c), is_noisy)
    assert scores["precision"] > 0.95 and scores["recall"] > 0.95, scores
    # at unit spread (centers 6 apart) the distribution is nearly flat: even the right labels mostly fall below 0.5
    wide = centers[true] * 3 + rng.normal(size=(400, 4))
    flat = confidence(label_distribution(wide, centers[support_y] * 3 + rng.normal(size=(20, 4)), support_y, k), true)
    assert find_noisy(flat).mean() > 0.9 and flat.mean() < 0.45


# -------------------------------------------------------------------------------------------------- estimators


def test_estimate_corruption_recovers_c_from_a_calibrated_model():
    k = 4
    c = transition_matrix("random_pair", 0.35, k, seed=2) * 0.8 + 0.05  # rows still sum to 1
    rng = np.random.default_rng(0)
    true = rng.integers(0, k, 8000)
    probs = np.stack([rng.dirichlet(20 * c[y]) for y in true])  # noisy posteriors whose mean given y is C[y]
    est = estimate_corruption(probs, true, k)
    assert est.shape == (k, k) and est.dtype == np.float64
    np.testing.assert_allclose(est.sum(axis=1), 1.0)
    np.testing.assert_allclose(est, c, atol=0.015)
    # exact on rows that are C itself; tensors accepted
    np.testing.assert_allclose(estimate_corruption(torch.tensor(c[[0, 1, 2, 3, 3]]), [0, 1, 2, 3, 3], k), c)


def test_anchor_transition_matrix_recovers_c_from_perfect_anchors_and_skips_outliers():
    k = 3
    c = np.array([[0.8, 0.2, 0.0], [0.1, 0.7, 0.2], [0.0, 0.3, 0.7]])
    rng = np.random.default_rng(0)
    clean = np.vstack([rng.dirichlet(np.ones(k), 500), np.eye(k).repeat(30, axis=0)])  # some one-hot anchors
    probs = clean @ c  # the noisy posterior of a model trained on the noisy labels
    np.testing.assert_allclose(anchor_transition_matrix(probs, k, quantile=1.0), c, atol=1e-12)
    # with 10% near-anchors for each class, the 97th percentile still finds one
    near = np.vstack([rng.dirichlet(np.ones(k) * 0.01 + 200 * np.eye(k)[i], 60) for i in range(k)])
    probs = np.vstack([rng.dirichlet(np.ones(k), 1000), near]) @ c
    np.testing.assert_allclose(anchor_transition_matrix(probs, k), c, atol=0.03)
    # an outlier, more sure of class 0 than any anchor can be, is taken by the argmax and skipped at 0.97
    outlier = np.array([[0.99, 0.01, 0.0]])
    with_outlier = np.vstack([probs, outlier])
    assert anchor_transition_matrix(with_outlier, k, quantile=1.0)[0].tolist() == outlier[0].tolist()
    np.testing.assert_allclose(anchor_transition_matrix(with_outlier, k)[0], c[0], atol=0.03)


def test_anchor_transition_matrix_uses_the_largest_value_below_the_higher_quantile():
    col = np.linspace(0.0, 0.99, 100)
    probs = np.stack([col, 1 - col], axis=1)
    # the "higher" 0.97 quantile of 100 values is the 98th smallest (index 97 of 0..99): the anchor is index 96
    est = anchor_transition_matrix(probs, 2)
    np.testing.assert_allclose(est[0], probs[96])
    np.testing.assert_allclose(est[1], probs[3])  # column 1 is reversed: the 97th largest of 1 - col
    flat = np.full((5, 2), 0.5)  # nothing below the quantile: the argmax
    np.testing.assert_allclose(anchor_transition_matrix(flat, 2), flat[:2])


@pytest.mark.parametrize("k, kind, rate, seed", [(3, "symmetric", 0.2, 0), (10, "symmetric", 0.4, 1),
                                                 (10, "pair", 0.3, 2), (5, "random_pair", 0.25, 3)])
def test_estimate_noise_rate_agrees_with_cleanlab(k, kind, rate, seed):
    from cleanlab.count import estimate_joint

    true = _labels(6000, k, seed)
    noisy, is_noisy = corrupt(true, transition_matrix(kind, rate, k, seed=seed), seed=seed)
    probs = _synthetic_probs(true, k, margin=3.0, seed=seed)
    ours = estimate_noise_rate(noisy, probs)
    joint = estimate_joint(noisy, probs)
    theirs = 1.0 - np.trace(joint)
    assert abs(ours - theirs) < 0.02, (ours, theirs)
    assert abs(ours - is_noisy.mean()) < 0.1  # and near the injected rate for this fairly good classifier


def test_estimate_noise_rate_with_an_unused_class_agrees_with_cleanlab():
    from cleanlab.count import estimate_joint

    true = _labels(3000, 4, 0)
    noisy, _ = symmetric_noise(true, 0.2, 4, seed=0)
    noisy[noisy == 3] = 2  # nobody is labelled 3
    probs = _synthetic_probs(true, 4, seed=1)
    assert abs(estimate_noise_rate(noisy, probs) - (1 - np.trace(estimate_joint(noisy, probs)))) < 0.02
    assert estimate_noise_rate(true, np.eye(4)[true]) == pytest.approx(0.0)
    assert estimate_noise_rate(noisy, probs) > estimate_noise_rate(true, probs) + 0.1  # more noise, more found


# ------------------------------------------------------------------------------------------------- correction


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_loss_is_cross_entropy_at_identity(reduction):
    logits, y = torch.randn(9, 4), torch.randint(0, 4, (9,))
    torch.testing.assert_close(forward_loss(logits, y, torch.eye(4), reduction),
                               F.cross_entropy(logits, y, reduction=reduction))
    torch.testing.assert_close(forward_loss(logits, y.numpy(), np.eye(4), reduction),
                               F.cross_entropy(logits, y, reduction=reduction))


def test_forward_loss_by_hand_and_gradcheck():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax (0.25, 0.75)
    c = [[0.9, 0.1], [0.2, 0.8]]  # P(observed 0) = 0.25 * 0.9 + 0.75 * 0.2 = 0.375
    assert forward_loss(logits, [0], c).item() == pytest.approx(-math.log(0.375), rel=1e-6)
    assert forward_loss(logits, [1], c).item() == pytest.approx(-math.log(0.625), rel=1e-6)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    cm = torch.tensor(transition_matrix("symmetric", 0.3, 3))
    y = torch.tensor([0, 1, 2, 1, 0])
    assert torch.autograd.gradcheck(lambda z: forward_loss(z, y, cm), (x,))
    assert torch.autograd.gradcheck(lambda z: forward_loss(z, y, cm, reduction="none"), (x,))
    assert forward_loss(x, y, cm).dtype == torch.float64


def test_forward_loss_clamps_and_promotes_half_precision():
    c = np.array([[1.0, 0.0], [0.0, 1.0]])
    logits = torch.tensor([[100.0, -100.0]], requires_grad=True)
    loss = forward_loss(logits, [1], c)
    assert loss.item() == pytest.approx(-math.log(1e-12), rel=1e-5)  # clamped at 1e-12, not inf
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    half = forward_loss(torch.tensor([[8.0, -8.0]], dtype=torch.float16), [1], c)
    assert half.dtype == torch.float32 and math.isfinite(half.item()) and half.item() == pytest.approx(16, abs=0.01)


# ------------------------------------------------------------------------------------------- detection scores


def test_detection_scores_by_hand_and_against_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    flagged = np.array([1, 1, 1, 0, 0, 0, 0, 1], dtype=bool)
    noisy = np.array([1, 0, 1, 1, 0, 0, 0, 1], dtype=bool)
    s = detection_scores(flagged, noisy)  # 3 of 4 flagged are noisy, 3 of 4 noisy flagged
    assert s == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "flagged_fraction": 0.5}
    rng = np.random.default_rng(0)
    for _ in range(5):
        f, t = rng.random(50) < rng.random(), rng.random(50) < 0.3
        p, r, f1, _ = precision_recall_fscore_support(t, f, average="binary", zero_division=0)
        got = detection_scores(f.astype(int), torch.tensor(t))
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f1))
        assert got["flagged_fraction"] == pytest.approx(f.mean())


def test_detection_scores_never_nan():
    assert detection_scores([False, False], [True, False]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                               "flagged_fraction": 0.0}
    assert detection_scores([True, False], [False, False]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                               "flagged_fraction": 0.5}


# ---------------------------------------------------------------------------------------- confident learning


@pytest.mark.parametrize("kwargs", [{}, {"filter_by": "confident_learning"}, {"filter_by": "prune_by_class"},
                                    {"frac_noise": 0.5}])
def test_confident_learning_issues_equal_cleanlab_and_find_injected_noise(kwargs):
    from cleanlab.filter import find_label_issues

    k = 5
    true = _labels(3000, k, 4)
    noisy, is_noisy = symmetric_noise(true, 0.25, k, seed=4)
    probs = _synthetic_probs(true, k, margin=3.5, seed=4)
    ours = confident_learning_issues(noisy, probs, **kwargs)
    theirs = find_label_issues(noisy, probs, **kwargs)
    assert ours.dtype == bool and ours.shape == (3000,)
    np.testing.assert_array_equal(ours, theirs)
    if not kwargs:
        scores = detection_scores(ours, is_noisy)
        assert scores["precision"] > 0.8 and scores["recall"] > 0.6, scores


def test_confident_learning_issues_accepts_tensors():
    probs = torch.softmax(torch.randn(200, 3) * 3, 1)
    labels = probs.argmax(1)
    labels[:10] = (labels[:10] + 1) % 3
    mask = confident_learning_issues(labels, probs)
    assert mask.dtype == bool and mask[:10].mean() > 0.5


# ------------------------------------------------------------------------------------------------------ errors


ERRORS = [
    (lambda: transition_matrix("uniform", 0.2, 3), ConfigError, ["kind", "'uniform'", "'symmetric'"]),
    (lambda: transition_matrix("symmetric", 1.0, 3), ConfigError, ["rate", "[0, 1)", "1.0"]),
    (lambda: transition_matrix("pair", -0.1, 3), ConfigError, ["rate", "-0.1"]),
    (lambda: transition_matrix("pair", "0.2", 3), ConfigError, ["rate", "'0.2'"]),
    (lambda: transition_matrix("symmetric", 0.2, 1), ConfigError, ["num_classes", ">= 2", "1"]),
    (lambda: transition_matrix("random_pair", 0.2, 3, seed="x"), ConfigError, ["seed", "'x'"]),
    (lambda: check_transition_matrix([[0.5, 0.5]]), DataError, ["square", "(1, 2)"]),
    (lambda: check_transition_matrix(np.eye(3), 2), DataError, ["(2, 2)", "(3, 3)"]),
    (lambda: check_transition_matrix([[1.0, 0.0], [-0.1, 1.1]]), DataError, ["C[1, 0]", "-0.1"]),
    (lambda: check_transition_matrix([[1.0, np.nan], [0.0, 1.0]]), DataError, ["C[0, 1]", "nan"]),
    (lambda: check_transition_matrix([[1.0, 0.0], [0.2, 0.7]]), DataError, ["row 1", "0.9"]),
    (lambda: corrupt([0, 1, 3, 5], np.eye(3)), DataError, ["labels[2]", "3", "[0, 3)"]),
    (lambda: corrupt([0, -1], np.eye(3)), DataError, ["labels[1]", "-1"]),
    (lambda: corrupt([0.0, 1.5], np.eye(3)), DataError, ["labels[1]", "1.5", "integer"]),
    (lambda: corrupt([[0, 1]], np.eye(3)), DataError, ["labels", "1-D", "(1, 2)"]),
    (lambda: corrupt(["a"], np.eye(3)), DataError, ["labels", "integer"]),
    (lambda: symmetric_noise([0, 1], 1.2, 2), ConfigError, ["rate", "1.2"]),
    (lambda: pair_noise([0, 1], 0.2, 2, variant="cycle"), ConfigError, ["variant", "'cycle'"]),
    (lambda: noise_rate([0, 1], [0]), DataError, ["noisy_labels", "2", "true_labels", "1"]),
    (lambda: noise_rate([], []), DataError, ["empty"]),
    (lambda: label_distribution([[1.0]], [[0.0], [1.0]], [0, 0], 2), DataError, ["class 1", "support"]),
    (lambda: label_distribution([[1.0, 2.0]], [[0.0], [1.0]], [0, 1], 2), DataError, ["2 values", "1"]),
    (lambda: label_distribution([[1.0]], [[0.0], [1.0]], [0, 2], 2), DataError, ["support_labels[1]", "2"]),
    (lambda: label_distribution([[1.0]], [[0.0], [1.0]], [0], 2), DataError, ["support_labels", "1", "2"]),
    (lambda: label_distribution([[1.0]], [[0.0], [1.0]], [0, 1], 1), ConfigError, ["num_classes", "1"]),
    (lambda: confidence([[0.5, 0.5]], [0], alpha=1.5), ConfigError, ["alpha", "[0, 1]", "1.5"]),
    (lambda: confidence([[0.5, 0.5]], [2]), DataError, ["labels[0]", "2", "[0, 2)"]),
    (lambda: confidence(torch.tensor([[0.5, 0.5]]), torch.tensor([2])), DataError, ["labels[0]", "2"]),
    (lambda: confidence([[0.5, 0.5]], [0, 1]), DataError, ["labels", "2 entries", "expected 1"]),
    (lambda: confidence([0.5, 0.5], [0]), DataError, ["distribution", "2-D", "(2,)"]),
    (lambda: confidence([[0.5, 0.5]], [0], previous=[0.1, 0.2]), DataError, ["previous", "(1,)", "(2,)"]),
    (lambda: find_noisy([0.2, np.nan, 0.3]), DataError, ["confidences[1]", "nan"]),
    (lambda: find_noisy([[0.2]]), DataError, ["confidences", "1-D"]),
    (lambda: find_noisy([0.2], threshold=float("inf")), ConfigError, ["threshold", "inf"]),
    (lambda: estimate_corruption([[1.0, 0.0], [1.0, 0.0]], [0, 0], 2), DataError, ["class 1", "true_labels"]),
    (lambda: estimate_corruption([[1.0, 0.0]], [0, 1], 2), DataError, ["true_labels", "2", "probs", "1"]),
    (lambda: estimate_corruption([[1.0, 0.0, 0.0]], [0], 2), DataError, ["probs", "3 columns", "2"]),
    (lambda: estimate_corruption([[0.5, 0.2], [0.5, 0.5]], [0, 1], 2), DataError, ["row 0", "probs", "0.7"]),
    (lambda: estimate_corruption([[1.5, -0.5]], [0], 2), DataError, ["probs[0, 1]", "-0.5"]),
    (lambda: anchor_transition_matrix([[0.5, 0.5]], 2, quantile=0.0), ConfigError, ["quantile", "(0, 1]", "0.0"]),
    (lambda: anchor_transition_matrix([[0.5, 0.5]], 3), DataError, ["probs", "2 columns", "3"]),
    (lambda: forward_loss(torch.randn(2, 3), [0, 1], torch.eye(2)), DataError, ["C", "(3, 3)", "(2, 2)"]),
    (lambda: forward_loss(torch.randn(2, 3), [0, 3], torch.eye(3)), DataError, ["labels[1]", "3", "[0, 3)"]),
    (lambda: forward_loss(torch.randn(2, 3), torch.tensor([0, 3]), torch.eye(3)), DataError, ["labels[1]", "3"]),
    (lambda: forward_loss(torch.randn(2, 3), [0], torch.eye(3)), DataError, ["labels", "1 entries", "2"]),
    (lambda: forward_loss(torch.randn(3), [0], torch.eye(3)), DataError, ["logits", "2-D", "(3,)"]),
    (lambda: forward_loss(torch.randn(2, 3), [0, 1], torch.eye(3), "avg"), ConfigError, ["reduction", "'avg'"]),
    (lambda: detection_scores([True], [True, False]), DataError, ["flagged", "1", "is_noisy", "2"]),
    (lambda: detection_scores([1, 2], [1, 0]), DataError, ["flagged[1]", "2", "mask"]),
    (lambda: detection_scores([], []), DataError, ["empty"]),
    (lambda: estimate_noise_rate([0, 1], [[0.5, 0.6], [0.5, 0.5]]), DataError, ["row 0", "pred_probs", "1.1"]),
    (lambda: estimate_noise_rate([0, 2], [[0.5, 0.5], [0.5, 0.5]]), DataError, ["labels[1]", "2", "[0, 2)"]),
    (lambda: estimate_noise_rate([0], [[0.5, 0.5], [0.5, 0.5]]), DataError, ["labels", "1", "pred_probs", "2"]),
    (lambda: confident_learning_issues([0, 1], [[0.9, 0.2], [0.5, 0.5]]), DataError, ["row 0", "pred_probs"]),
    (lambda: confident_learning_issues([0, 5], [[1.0, 0.0], [0.0, 1.0]]), DataError, ["labels[1]", "5"]),
    (lambda: confident_learning_issues([0, 1], [0.5, 0.5]), DataError, ["pred_probs", "2-D", "(2,)"]),
    (lambda: confident_learning_issues([0, 1, 1], [[1.0, 0.0], [0.0, 1.0]]), DataError, ["labels", "3", "2 rows"]),
]


@pytest.mark.parametrize("call, error, words", ERRORS, ids=[f"error{i}" for i in range(len(ERRORS))])
def test_every_error_names_the_argument_and_value(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


# ------------------------------------------------------------------------------------------------------ module


def test_public_names_and_no_cleanlab_at_import():
    assert all(callable(getattr(ln, name)) for name in ln.__all__) and len(ln.__all__) == 16
    code = "import sys, robustlab.common.label_noise; print('cleanlab' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(ln, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 20 and result.failed == 0



def test_confident_learning_issues_work_where_processes_spawn():
    """Recipe workers run with the 'spawn' start method, where cleanlab's own default (a process pool of one
    process per core, relying on globals inherited by fork) raises a NameError; the wrapper runs cleanlab in the
    calling process unless told otherwise."""
    code = textwrap.dedent("""
        import multiprocessing
        import numpy as np
        from robustlab.common.label_noise import confident_learning_issues

        if __name__ == "__main__":
            multiprocessing.set_start_method("spawn", force=True)
            rng = np.random.default_rng(0)
            probs = rng.dirichlet(np.ones(3) * 0.5, size=300)
            labels = np.where(rng.random(300) < 0.7, probs.argmax(1), rng.integers(0, 3, 300))
            print(int(confident_learning_issues(labels, probs).sum()))
            try:
                confident_learning_issues(labels, probs, n_jobs=2)
                print("pool ok")
            except NameError:
                print("pool NameError")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    flagged, pool = out.stdout.split("\n")[:2]
    assert int(flagged) > 0
    assert pool == "pool NameError"  # what the default n_jobs=1 avoids (if cleanlab fixes it, drop the default)
