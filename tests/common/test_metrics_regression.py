"""Regression metrics: agreement with scikit-learn (one and several outputs, per output), edge cases, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from robustlab.common.metrics import mae, r2, rmse

TOL = 1e-12
SEEDS = [0, 1, 2, 3]


def _rmse_sklearn(y, p, multioutput="uniform_average"):
    if hasattr(skm, "root_mean_squared_error"):
        return skm.root_mean_squared_error(y, p, multioutput=multioutput)
    raw = np.sqrt(skm.mean_squared_error(y, p, multioutput="raw_values"))
    return raw if multioutput == "raw_values" else raw.mean()


OURS = {"mae": mae, "rmse": rmse, "r2": r2}
THEIRS = {"mae": skm.mean_absolute_error, "rmse": _rmse_sklearn, "r2": skm.r2_score}


def _data(seed, shape):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=shape) * rng.uniform(0.5, 5.0, size=shape[1:] or None)
    return y, y + rng.normal(scale=0.7, size=shape)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(OURS))
@pytest.mark.parametrize("shape", [(50,), (50, 1), (80, 4)])
def test_agrees_with_sklearn(name, shape, seed):
    y, p = _data(seed, shape)
    assert OURS[name](y, p) == pytest.approx(THEIRS[name](y, p), abs=TOL, rel=TOL)
    if len(shape) == 2:
        np.testing.assert_allclose(OURS[name](y, p, average=None), THEIRS[name](y, p, multioutput="raw_values"),
                                   rtol=TOL, atol=TOL)


@pytest.mark.parametrize("name", list(OURS))
def test_tensors_and_lists(name):
    y, p = _data(0, (30, 2))
    expected = THEIRS[name](y, p)
    assert OURS[name](torch.from_numpy(y), torch.from_numpy(p)) == pytest.approx(expected, abs=TOL)
    assert OURS[name](y.tolist(), p.tolist()) == pytest.approx(expected, abs=TOL)
    assert OURS[name](torch.from_numpy(y).float(), torch.from_numpy(p).float()) == pytest.approx(expected, rel=1e-5)


def test_r2_constant_targets_follow_sklearn():
    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    exact = y.copy()
    off = y + np.array([[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    for p in (exact, off):
        np.testing.assert_allclose(r2(y, p, average=None), skm.r2_score(y, p, multioutput="raw_values"), atol=TOL)
        assert r2(y, p) == pytest.approx(skm.r2_score(y, p), abs=TOL)
    assert r2(y, exact, average=None).tolist() == [1.0, 1.0] and r2(y, off, average=None)[0] == 0.0


def test_perfect_and_mean_predictions():
    y = np.array([1.0, 2.0, 4.0, 8.0])
    assert mae(y, y) == 0.0 and rmse(y, y) == 0.0 and r2(y, y) == 1.0
    assert r2(y, np.full(4, y.mean())) == pytest.approx(0.0, abs=TOL)
    assert r2(y, -y) < 0


def test_higher_dimensions_are_flattened_per_sample():
    y, p = _data(1, (20, 3, 5))
    assert rmse(y, p) == pytest.approx(_rmse_sklearn(y.reshape(20, -1), p.reshape(20, -1)), abs=TOL)


def test_errors():
    y = np.arange(5.0)
    for fn in (mae, rmse, r2):
        with pytest.raises(ValueError, match="5 samples but y_pred has 4"):
            fn(y, y[:4])
        with pytest.raises(ValueError, match="empty"):
            fn([], [])
        with pytest.raises(ValueError, match=r"y_pred holds 1 NaN value\(s\), the first at sample 2"):
            fn(y, np.where(np.arange(5) == 2, np.nan, y))
        with pytest.raises(ValueError, match="y_true holds 1 infinite"):
            fn(np.where(np.arange(5) == 0, np.inf, y), y)
        with pytest.raises(ValueError, match="outputs per sample"):
            fn(np.zeros((5, 2)), np.zeros((5, 3)))
        with pytest.raises(ValueError, match="average"):
            fn(y, y, average="weighted")
        with pytest.raises(ValueError, match="numbers"):
            fn(["a"] * 5, y)
    with pytest.raises(ValueError, match="at least two samples"):
        r2([1.0], [1.0])


def test_docstring_examples_run():
    import doctest

    import robustlab.common.metrics.regression as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
