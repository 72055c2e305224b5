"""Generative quality measures: the Fréchet distance against closed forms for Gaussians, precision/recall/density/
coverage against the prdc package, and the nearest-neighbour copy check flagging copied samples."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from robustlab.common.metrics.generative import frechet_distance, nearest_neighbour_check, precision_recall
from robustlab.common.testing import require_peer


def _with_moments(rng, n, mean, cov):
    """``n`` samples whose sample mean and sample covariance (ddof 1) are exactly ``mean`` and ``cov``."""
    z = rng.normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T  # sample covariance I
    return z @ np.linalg.cholesky(cov).T + mean


def _sym_sqrt(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_equals_the_closed_form_of_the_sample_gaussians():
    rng = np.random.default_rng(0)
    for d in (1, 3, 8):
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
        real, fake = _with_moments(rng, 500, m1, s1), _with_moments(rng, 300, m2, s2)
        # Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2), by symmetric eigendecompositions (another route than sqrtm(S1 S2))
        r1 = _sym_sqrt(s1)
        expected = ((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(_sym_sqrt(r1 @ s2 @ r1))
        assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-8, abs=1e-9)
        assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-8)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 with the standard deviations
    a, b = _with_moments(rng, 50, np.array([1.0]), np.array([[4.0]])), _with_moments(rng, 70, np.array([-2.0]),
                                                                                      np.array([[0.25]]))
    assert frechet_distance(a, b) == pytest.approx(9.0 + (2.0 - 0.5) ** 2, rel=1e-10)


def test_frechet_distance_of_independent_draws_approaches_the_population_value():
    rng = np.random.default_rng(1)
    m1, m2 = np.array([0.0, 1.0, 0.0, 2.0]), np.array([0.5, 1.0, -1.0, 2.0])
    v1, v2 = np.array([1.0, 4.0, 0.25, 1.0]), np.array([1.0, 1.0, 1.0, 9.0])
    real = m1 + np.sqrt(v1) * rng.normal(size=(40000, 4))
    fake = m2 + np.sqrt(v2) * rng.normal(size=(40000, 4))
    population = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()  # diagonal: commuting
    assert population == pytest.approx(6.5)
    assert frechet_distance(real, fake) == pytest.approx(population, rel=0.02)
    assert frechet_distance(torch.from_numpy(real).float(), torch.from_numpy(fake).float()) == pytest.approx(
        population, rel=0.02)


def test_frechet_distance_with_fewer_samples_than_features_and_bad_input():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) + 1.0
    value = frechet_distance(real, fake)  # singular covariances: pytorch-fid's fallback keeps it finite
    assert np.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="same feature space"):
        frechet_distance(real, fake[:, :5])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(real[:1], fake)
    bad = real.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="sample 3"):
        frechet_distance(bad, fake)


@pytest.fixture(scope="module")
def prdc():
    return require_peer("prdc", what="the reference implementation of precision/recall/density/coverage")


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_precision_recall_agrees_with_prdc(prdc, k, shift):
    rng = np.random.default_rng(k)
    real = rng.normal(size=(300, 6)).astype(np.float32)
    fake = (rng.normal(size=(250, 6)) * [1.5, 1, 1, 0.5, 1, 1] + shift).astype(np.float32)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        ref = prdc.compute_prdc(real, fake, nearest_k=k)
    ours = precision_recall(real, fake, k=k)
    assert set(ours) == set(ref)
    for key in ref:  # continuous features: no exact ties, so prdc's `<` and the papers' `<=` agree
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key
    assert 0.0 < ours["precision"] < 1.0 and 0.0 < ours["recall"] < 1.0


def test_precision_recall_separates_fidelity_from_diversity():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(600, 2))
    same = precision_recall(real, rng.normal(size=(600, 2)))
    assert same["precision"] > 0.9 and same["recall"] > 0.9 and 0.7 < same["density"] < 1.3
    collapsed = precision_recall(real, 0.1 * rng.normal(size=(600, 2)))  # one mode of the reals: faithful, narrow
    assert collapsed["precision"] > 0.95 and collapsed["recall"] < 0.2 and collapsed["coverage"] < 0.3
    away = precision_recall(real, rng.normal(size=(600, 2)) + 8.0)
    assert away == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    with pytest.raises(ValueError, match="at least 4"):
        precision_recall(real[:3], real, k=3)
    with pytest.raises(ValueError, match="k must be"):
        precision_recall(real, real, k=0)


def test_a_copied_sample_is_flagged():
    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, size=(200, 8, 8)).astype(np.uint8)  # pixel space, as patches
    holdout = rng.integers(0, 256, size=(80, 8, 8)).astype(np.uint8)
    fresh = rng.integers(0, 256, size=(97, 8, 8)).astype(np.uint8)
    near = np.clip(train[[50]].astype(int) + rng.integers(-2, 3, size=(1, 8, 8)), 0, 255).astype(np.uint8)
    fake = np.concatenate([fresh[:40], train[[7, 123]], fresh[40:], near])
    out = nearest_neighbour_check(fake, train, holdout)
    flagged = np.flatnonzero(out["fake_distances"] <= out["threshold"])
    assert flagged.tolist() == [40, 41, 99], flagged  # the two exact copies and the near copy, nothing else
    assert out["n_copies"] == 3 and out["copy_share"] == pytest.approx(3 / 100)
    assert out["fake_indices"][[40, 41, 99]].tolist() == [7, 123, 50]
    assert out["fake_distances"][40] == 0.0 and out["fake_distances"][41] == 0.0
    assert 0.8 < out["median_ratio"] < 1.2  # the fresh fakes are as far from the training set as held-out reals
    assert out["holdout_distances"].shape == (80,) and out["holdout_indices"].shape == (80,)
    # a memorizing generator: every fake a slightly perturbed training sample
    memorized = train[rng.integers(0, 200, 100)].astype(float) + rng.normal(0, 3, size=(100, 8, 8))
    out = nearest_neighbour_check(memorized, train, holdout)
    assert out["median_ratio"] < 0.2 and out["copy_share"] == 1.0
    with pytest.raises(ValueError, match="quantile"):
        nearest_neighbour_check(fake, train, holdout, quantile=1.0)
    with pytest.raises(ValueError, match="same feature space"):
        nearest_neighbour_check(fake[:, :4], train, holdout)
