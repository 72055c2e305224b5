"""Metrics: agreement with scikit-learn on random data with ties, edge cases, and robustness under attacks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustlab.common.attacks import PGD
from robustlab.common.data import ArrayDataset
from robustlab.common.errors import DataError
from robustlab.common.metrics import (
    accuracy,
    attack_success_rate,
    aupr,
    auroc,
    balanced_accuracy,
    confusion_matrix,
    macro_f1,
    per_class_report,
    predict,
    robust_accuracy,
)

TOL = 1e-12
SEEDS = [0, 1, 2, 3]


def _labels(seed, n=200, k=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = np.where(rng.random(n) < 0.6, y, rng.integers(0, k, n))  # better than chance, every kind of error
    return y, p


def _probs_with_ties(seed, n=300, k=4, distinct=7):
    """Class indices and probability rows drawn from a few distinct rows, so every column has many ties."""
    rng = np.random.default_rng(seed)
    rows = rng.dirichlet(np.ones(k), size=distinct)
    pick = rng.integers(0, distinct, n)
    scores = rows[pick]
    y = np.array([rng.choice(k, p=0.5 * r + 0.5 / k) for r in scores])  # labels related to the scores
    return y, scores


def _multilabel(seed, n=250, k=5):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random((n, k)), 1)  # 11 distinct values per column: many ties
    y = (rng.random((n, k)) < 0.3 + 0.4 * scores).astype(int)
    return y, scores


# --- labels -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_label_metrics_agree_with_sklearn(seed):
    y, p = _labels(seed)
    assert abs(accuracy(y, p) - skm.accuracy_score(y, p)) < TOL
    assert abs(balanced_accuracy(y, p) - skm.balanced_accuracy_score(y, p)) < TOL
    assert abs(macro_f1(y, p) - skm.f1_score(y, p, average="macro")) < TOL
    np.testing.assert_array_equal(confusion_matrix(y, p), skm.confusion_matrix(y, p))
    report = per_class_report(y, p)
    prec, rec, f1, support = skm.precision_recall_fscore_support(y, p, zero_division=np.nan)
    np.testing.assert_allclose(report["sensitivity"], rec, rtol=0, atol=TOL)
    np.testing.assert_allclose(report["positive_predictivity"], prec, rtol=0, atol=TOL)
    np.testing.assert_allclose(report["f1"], f1, rtol=0, atol=TOL)
    np.testing.assert_array_equal(report["support"], support)


def test_label_metrics_accept_tensors():
    y, p = _labels(0)
    ty, tp = torch.from_numpy(y), torch.from_numpy(p)
    assert accuracy(ty, tp) == accuracy(y, p)
    assert macro_f1(ty, tp) == macro_f1(y, p)
    np.testing.assert_array_equal(confusion_matrix(ty, tp), confusion_matrix(y, p))


def test_class_absent_from_y_true():
    # class 3 is predicted but never true; class 2 is neither true nor predicted (num_classes=5 adds class 4)
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0, 3, 1, 1, 0, 0])
    report = per_class_report(y, p, num_classes=5)
    assert report["support"].tolist() == [3, 3, 0, 0, 0]
    assert np.isnan(report["sensitivity"][[2, 3, 4]]).all()
    assert report["positive_predictivity"][3] == 0.0 and np.isnan(report["positive_predictivity"][[2, 4]]).all()
    assert report["f1"][3] == 0.0 and np.isnan(report["f1"][[2, 4]]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the class only predicted
        assert abs(balanced_accuracy(y, p) - skm.balanced_accuracy_score(y, p)) < TOL
        assert abs(macro_f1(y, p) - skm.f1_score(y, p, average="macro")) < TOL
    assert confusion_matrix(y, p, num_classes=5).shape == (5, 5)


def test_all_correct():
    y = np.array([0, 1, 2, 2, 1, 0, 3])
    assert accuracy(y, y) == balanced_accuracy(y, y) == macro_f1(y, y) == 1.0
    report = per_class_report(y, y)
    for key in ("sensitivity", "positive_predictivity", "f1"):
        assert (report[key] == 1.0).all()
    np.testing.assert_array_equal(confusion_matrix(y, y), np.diag([2, 2, 2, 1]))
    scores = np.eye(4)[y]
    assert auroc(y, scores) == aupr(y, scores) == 1.0


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([0, 1, 2], [0, 1], "3 samples but y_pred has 2"),
        ([[0, 1], [1, 0]], [0, 1], "argmax"),
        ([0, -1], [0, 1], ">= 0"),
        ([0.5, 1.0], [0, 1], "integer class indices"),
        ([], [], "empty"),
    ],
)
def test_label_metrics_reject_bad_input(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        accuracy(y_true, y_pred)


def test_confusion_matrix_num_classes_too_small():
    with pytest.raises(ValueError, match="labels go up to 3 but num_classes is 3"):
        confusion_matrix([0, 3], [0, 1], num_classes=3)


# --- scores -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_auroc_aupr_agree_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + 0.4 * y, 1)  # ties
    assert abs(auroc(y, scores) - skm.roc_auc_score(y, scores)) < TOL
    assert abs(aupr(y, scores) - skm.average_precision_score(y, scores)) < TOL
    assert auroc(torch.from_numpy(y), torch.from_numpy(scores)) == auroc(y, scores)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_multiclass_ovr_agrees_with_sklearn(seed, average):
    y, scores = _probs_with_ties(seed)
    expected = skm.roc_auc_score(y, scores, multi_class="ovr", average=average)
    assert abs(auroc(y, scores, average=average) - expected) < TOL
    onehot = np.eye(scores.shape[1])[y]
    expected_ap = skm.average_precision_score(onehot, scores, average=average)
    assert abs(aupr(y, scores, average=average) - expected_ap) < TOL


def test_multiclass_per_class_and_micro_agree_with_sklearn():
    y, scores = _probs_with_ties(5)
    onehot = np.eye(scores.shape[1])[y]
    np.testing.assert_allclose(auroc(y, scores, average=None), skm.roc_auc_score(onehot, scores, average=None),
                               rtol=0, atol=TOL)
    np.testing.assert_allclose(aupr(y, scores, average=None),
                               skm.average_precision_score(onehot, scores, average=None), rtol=0, atol=TOL)
    assert abs(auroc(y, scores, average="micro") - skm.roc_auc_score(onehot, scores, average="micro")) < TOL
    assert abs(aupr(y, scores, average="micro") - skm.average_precision_score(onehot, scores, average="micro")) < TOL


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("average", ["macro", "weighted", "micro", None])
def test_multilabel_agrees_with_sklearn(seed, average):
    y, scores = _multilabel(seed)
    np.testing.assert_allclose(auroc(y, scores, average=average),
                               skm.roc_auc_score(y, scores, average=average), rtol=0, atol=TOL)
    np.testing.assert_allclose(aupr(y, scores, average=average),
                               skm.average_precision_score(y, scores, average=average), rtol=0, atol=TOL)


def test_auroc_is_invariant_to_monotone_transforms_and_handles_ties():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9, 0.5, 0.2])
    # pairs (pos, neg): 9; wins: 0.5>{0.1}: 1, tie with 2 x 0.5: 1; 0.9 beats 3; 0.2 beats 0.1 only: 1 -> 6/9
    assert auroc(y, s) == pytest.approx(6 / 9, abs=TOL)
    assert auroc(y, np.exp(3 * s)) == pytest.approx(auroc(y, s), abs=TOL)
    assert auroc(y, np.zeros(6)) == 0.5


def test_class_without_positives_is_skipped_with_a_warning():
    y, scores = _probs_with_ties(0, k=4)
    y = np.where(y == 2, 0, y)  # class 2 absent
    with pytest.warns(RuntimeWarning, match=r"undefined for classes \[2\]"):
        macro = auroc(y, scores)
    with pytest.warns(RuntimeWarning, match=r"classes \[2\]"):
        macro_ap = aupr(y, scores)
    per_class = auroc(y, scores, average=None)
    assert np.isnan(per_class[2]) and not np.isnan(per_class[[0, 1, 3]]).any()
    onehot = np.eye(4)[y]
    present = [0, 1, 3]
    expected = np.mean([skm.roc_auc_score(onehot[:, k], scores[:, k]) for k in present])
    expected_ap = np.mean([skm.average_precision_score(onehot[:, k], scores[:, k]) for k in present])
    assert abs(macro - expected) < TOL and abs(macro_ap - expected_ap) < TOL


def test_multilabel_class_with_only_positives_is_skipped():
    y, scores = _multilabel(1)
    y[:, 0] = 1
    with pytest.warns(RuntimeWarning, match=r"classes \[0\]"):
        value = auroc(y, scores)
    assert abs(value - skm.roc_auc_score(y[:, 1:], scores[:, 1:])) < TOL


@pytest.mark.parametrize("metric", [auroc, aupr])
def test_undefined_binary_and_bad_input_raise(metric):
    with pytest.raises(ValueError, match="undefined: binary labels hold only negatives"):
        metric(np.zeros(5, int), np.arange(5.0))
    with pytest.raises(ValueError, match="undefined for every class"):
        metric(np.ones((4, 2), int), np.random.default_rng(0).random((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        metric([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match="class 3 but scores has only 3 columns"):
        metric([0, 3], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"binary labels in \{0, 1\}"):
        metric([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="average must be one of"):
        metric([0, 1], [0.1, 0.2], average="samples")


# --- robustness ---------------------------------------------------------------------------------------------


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.7 + (y[:, None].float() * 2 - 1) * 1.0
    return x, y


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_identity_attack_gives_clean_accuracy(trained):
    model, x, y = trained
    loader = DataLoader(ArrayDataset(x, y), batch_size=32)
    clean = accuracy(y, model(x).argmax(1))
    assert 0.8 < clean < 1.0
    assert robust_accuracy(model, loader, lambda x, y: x) == pytest.approx(clean, abs=TOL)
    tuples = DataLoader(TensorDataset(x, y), batch_size=50)
    assert robust_accuracy(model, tuples, lambda x, y: x) == pytest.approx(clean, abs=TOL)
    y_np, out = predict(model, loader)
    assert out.shape == (len(x), 2) and accuracy(y_np, out.argmax(1)) == pytest.approx(clean, abs=TOL)


def test_attacks_lower_accuracy_and_restore_the_mode(trained):
    model, x, y = trained
    loader = DataLoader(ArrayDataset(x, y), batch_size=64, shuffle=True)
    clean = robust_accuracy(model, loader, lambda x, y: x)

    def to_other_blob(x, y):  # moves each sample to the mirror point, where the other class lives
        return -x

    model.train()
    assert robust_accuracy(model, loader, to_other_blob) < 0.2 < clean
    assert model.training
    model.eval()
    pgd = PGD(model, eps=1.0, steps=5)
    with torch.no_grad():  # the attack still gets its input gradients
        assert robust_accuracy(model, loader, pgd) < clean - 0.2
    assert not model.training
    assert attack_success_rate(model, loader, to_other_blob) > 0.8


def _threshold_model():
    """Class 0 when x > 0, class 1 when x < 0."""
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return model


def test_attack_success_rate_on_a_known_case():
    x = torch.tensor([[1.0], [2.0], [3.0], [-1.0], [-2.0], [0.5]])
    y = torch.tensor([0, 0, 0, 1, 1, 1])  # clean: the first five are right, the last is wrong
    loader = DataLoader(ArrayDataset(x, y), batch_size=4)

    def shift(x, y):  # -> [-0.5, 0.5, 1.5, -2.5, -3.5, -1.0]: flips sample 0, fixes sample 5
        return x - 1.5

    model = _threshold_model()
    assert attack_success_rate(model, loader, shift) == pytest.approx(1 / 5)
    assert robust_accuracy(model, loader, shift) == pytest.approx(5 / 6)
    assert attack_success_rate(model, loader, lambda x, y: x) == 0.0


def test_attack_success_rate_undefined_without_correct_samples():
    x = torch.tensor([[1.0], [2.0]])
    loader = DataLoader(ArrayDataset(x, torch.tensor([1, 1])), batch_size=2)
    with pytest.warns(RuntimeWarning, match="no sample is classified correctly"):
        assert np.isnan(attack_success_rate(_threshold_model(), loader, lambda x, y: x))


def test_single_logit_models_and_empty_loaders():
    x = torch.tensor([[1.0], [-2.0], [3.0]])
    y = torch.tensor([1, 0, 0])
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    loader = DataLoader(ArrayDataset(x, y), batch_size=2)
    assert robust_accuracy(model, loader, lambda x, y: x) == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="no samples"):
        robust_accuracy(model, [], lambda x, y: x)
