"""Event probabilities, binary and multi-class figures against scikit-learn, and the OOD score's calibration."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.seismic.evaluation import (
    OODScore,
    binary_metrics,
    event_labels,
    event_probabilities,
    multiclass_report,
    penultimate_features,
)


def test_event_probabilities_average_each_events_traces():
    ev, p = event_probabilities([0.1, 0.3, 0.8, 1.0, 0.0], ["x", "x", "y", "y", "z"])
    assert ev.tolist() == ["x", "y", "z"] and np.allclose(p, [0.2, 0.9, 0.0])
    ev2, p2 = event_probabilities(np.array([[0.9, 0.1], [0.7, 0.3]]), ["a", "a"])
    assert np.allclose(p2, [[0.8, 0.2]])
    with pytest.raises(DataError):
        event_probabilities([0.1], ["a", "b"])


def test_event_labels_refuse_disagreeing_traces():
    assert event_labels([1, 1, 0], ["b", "b", "a"])[1].tolist() == [0, 1]
    with pytest.raises(DataError, match="'a'"):
        event_labels([0, 1], ["a", "a"])


def test_binary_metrics_match_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.uniform(size=200) * 0.7, 0, 1)
    m = binary_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["explosion_f1"] == pytest.approx(f1_score(y, pred))
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert np.isnan(binary_metrics([0, 0], [0.2, 0.7])["auc"])


def test_multiclass_report_scores_only_the_classes_present():
    y = np.array([0, 0, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 0])
    rep = multiclass_report(y, pred, ("A", "B", "C"))
    assert rep["present"] == ["A", "C"]
    assert rep["recall"]["A"] == 0.5 and rep["recall"]["C"] == pytest.approx(2 / 3) and np.isnan(rep["recall"]["B"])
    from sklearn.metrics import f1_score

    assert rep["macro_f1"] == pytest.approx(f1_score(y, pred, labels=[0, 2], average="macro"))
    probs = np.eye(3)[pred]
    assert multiclass_report(y, probs, ("A", "B", "C"))["macro_f1"] == rep["macro_f1"]


def test_ood_score_flags_about_5_percent_of_in_distribution_and_round_trips():
    rng = np.random.default_rng(0)
    cov = np.diag(np.r_[np.linspace(5, 1, 10), np.full(40, 0.1)])
    ref = rng.multivariate_normal(np.zeros(50), cov, size=2000)
    ood = OODScore(components=10).fit_reference(ref)
    ood.fit(ood.score(rng.multivariate_normal(np.zeros(50), cov, size=1000)))
    fresh = rng.multivariate_normal(np.zeros(50), cov, size=4000)
    assert abs(ood.flag(ood.score(fresh)).mean() - 0.05) < 0.015
    # PPCA in the full space is the ordinary Mahalanobis distance
    full = OODScore(components=50).fit_reference(ref)
    d = fresh[:5] - ref.mean(0)
    expected = np.einsum("nd,de,ne->n", d, np.linalg.inv(np.cov(ref, rowvar=False)), d)
    assert np.allclose(full.score(fresh[:5]), expected, rtol=1e-6)
    back = OODScore.from_dict(ood.to_dict())
    assert np.allclose(back.score(fresh[:10]), ood.score(fresh[:10]), rtol=1e-4)
    assert back.threshold == ood.threshold
    with pytest.raises(DataError, match="damaged"):
        OODScore.from_dict({"quantile": 0.95})


def test_penultimate_features_are_what_the_head_reads():
    import torch

    from robustlab.common.models import MLP

    model = MLP(5, 3, hidden=(7,))
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    f = penultimate_features(model, x)
    assert f.shape == (4, 7)
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        assert np.allclose(last(torch.as_tensor(f, dtype=torch.float32)).numpy(), model.eval()(torch.as_tensor(x)).numpy(),
                           atol=1e-5)
