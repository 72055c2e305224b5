"""AAMI EC57 figures, multi-label figures and the robustness sweep, checked against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustlab.ecg.evaluation import (
    BEAT_CLASSES,
    DE_CHAZAL_2004,
    aami_report,
    flat_metrics,
    multilabel_report,
    plot_confusion,
    predict_proba,
    robustness,
)


def test_aami_report_equals_scikit_learn():
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y = rng.choice(4, 3000, p=[0.85, 0.05, 0.08, 0.02])
    pred = np.where(rng.random(3000) < 0.7, y, rng.integers(0, 4, 3000))
    rep = aami_report(y, pred)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(4), zero_division=np.nan)
    for i, c in enumerate(BEAT_CLASSES):
        m = rep["per_class"][c]
        assert m["sensitivity"] == pytest.approx(r[i]) and m["positive_predictivity"] == pytest.approx(p[i])
        assert m["f1"] == pytest.approx(f[i]) and m["support"] == s[i]
    assert rep["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert rep["confusion"] == confusion_matrix(y, pred, labels=range(4)).tolist()
    flat = flat_metrics(rep, "m/")
    assert flat["m/S_se"] == pytest.approx(r[1]) and flat["m/macro_f1"] == rep["macro_f1"]


def test_a_class_never_predicted_has_no_positive_predictivity_and_is_left_out_of_macro_f1_only_if_undefined():
    y = np.array([0, 0, 1, 2, 3])
    pred = np.array([0, 0, 0, 2, 3])  # S never predicted: +P undefined, F1 = 0 (defined)
    rep = aami_report(y, pred)
    assert math.isnan(rep["per_class"]["S"]["positive_predictivity"])
    assert rep["per_class"]["S"]["f1"] == 0.0
    assert rep["macro_f1"] == pytest.approx(np.mean([0.8, 0.0, 1.0, 1.0]))


def test_de_chazal_f1_follows_from_its_se_and_pp():
    s = DE_CHAZAL_2004["S"]
    assert s["f1"] == pytest.approx(2 * 0.759 * 0.385 / (0.759 + 0.385))
    assert 0.50 < s["f1"] < 0.52 and 0.79 < DE_CHAZAL_2004["V"]["f1"] < 0.80


def test_multilabel_report_equals_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random((80, 3)) < [0.3, 0.5, 0.1]).astype(float)
    y[:, 2] = 0  # a label without positives: no AUROC, no F1 contribution when never predicted
    s = np.clip(y * 0.4 + rng.random((80, 3)) * 0.6, 0, 1)
    rep = multilabel_report(y, s, ["a", "b", "c"])
    for j, name in enumerate("ab"):
        assert rep["per_label"][name]["f1"] == pytest.approx(f1_score(y[:, j], s[:, j] >= 0.5))
        assert rep["per_label"][name]["auroc"] == pytest.approx(roc_auc_score(y[:, j], s[:, j]))
    assert math.isnan(rep["per_label"]["c"]["auroc"])
    assert rep["macro_auroc"] == pytest.approx(np.mean([rep["per_label"][n]["auroc"] for n in "ab"]))


def test_plot_confusion_writes_a_png(tmp_path):
    path = plot_confusion([[90, 5, 3, 2], [10, 20, 0, 0], [1, 0, 30, 1], [0, 0, 2, 5]], BEAT_CLASSES,
                          tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_scores_clean_and_every_perturbation_and_attack():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 1, 720)).astype(np.float32)
    y = np.arange(40) % 4
    calls = []

    def predict(xs):  # right on the clean windows, wrong on anything else: every condition must change the input
        calls.append(xs.shape)
        return y.copy() if np.array_equal(xs, x) else (y + 1) % 4

    def attack(eps):
        return x + eps

    res = robustness(predict, x, y, perturbations={"powerline50": [6.0, 12.0], "muscle": [6.0]}, fs=360.0,
                     attack=attack, eps=[0.01])
    assert set(res) == {f"{k}_{m}" for k in ("clean", "powerline50@6dB", "powerline50@12dB", "muscle@6dB",
                                              "pgd@0.01mV") for m in ("macro_f1", "accuracy")}
    assert res["clean_macro_f1"] == 1.0 and res["clean_accuracy"] == 1.0 and len(calls) == 5
    assert all(v == 0.0 for k, v in res.items() if not k.startswith("clean"))


def test_predict_proba_rows_sum_to_one_and_restore_the_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(50, 4), torch.nn.Dropout(0.5)).train()
    p = predict_proba(model, np.random.default_rng(0).normal(size=(7, 50)).astype(np.float32), batch_size=3)
    assert p.shape == (7, 4) and np.allclose(p.sum(1), 1, atol=1e-6)
    assert model.training
