"""TRADES and fast adversarial training on multi-label and regression tasks: the task's divergence, loss and
correctness in the regime and in the catastrophic-overfitting guard."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from robustlab.common.attacks import PGD
from robustlab.common.attacks.base import Attack
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.regimes import TRADES, FastAdversarialTraining
from robustlab.common.regimes._overfitting_guard import CatastrophicOverfittingGuard
from robustlab.common.regimes.base import FitState
from robustlab.common.tasks import get_task
from robustlab.common.testing import random_targets


def _model(k=3):
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, k))


def _batch(task, n=32, k=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return {"x": x, "y": random_targets(task, n, outputs=k, generator=g)}


class _NoMove(Attack):
    """An 'attack' that returns the clean input: the adversarial prediction equals the clean one."""

    def perturb(self, x, y, *, loss=None, x_init=None):
        self.loss_used = loss
        return x.detach().clone()


# -- TRADES ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_trades_on_other_tasks_has_a_finite_loss_and_gradients(task):
    torch.manual_seed(0)
    model = _model().train()
    regime = TRADES(PGD(model, eps=0.1, steps=3), beta=6.0, task=task)
    batch = _batch(task)
    loss = regime(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert model.training
    assert regime.step_metrics["robust_kl"] > 0, "the inner maximization finds a prediction that differs"
    natural = get_task(task).loss(model(batch["x"]), batch["y"]).item()
    assert regime.step_metrics["natural_loss"] == pytest.approx(natural, rel=1e-5)


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_trades_divergence_is_zero_when_adversarial_equals_clean(task):
    torch.manual_seed(0)
    model = _model().eval()  # batch norm in eval mode: the clean and 'adversarial' passes agree exactly
    attack = _NoMove(model, eps=0.1)
    batch = _batch(task)
    loss = TRADES(attack, beta=6.0, task=task)(model, batch)
    assert loss.item() == pytest.approx(get_task(task).loss(model(batch["x"]), batch["y"]).item(), abs=1e-6)
    logits = model(batch["x"])
    clean = F.softmax(logits, dim=1) if task == "multiclass" else logits  # the multi-class path takes p_clean
    assert attack.loss_used(logits, clean).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_trades_inner_maximization_ascends_the_task_divergence(task):
    torch.manual_seed(0)
    model = _model().eval()
    x = _batch(task)["x"]
    regime = TRADES(PGD(model, eps=0.2, steps=5), task=task)
    divergence = get_task(task).divergence
    with torch.no_grad():
        clean = model(x)
    torch.manual_seed(1)
    x_adv = regime.attack.perturb(x, clean, loss=regime._divergence, x_init=x + 0.001 * torch.randn_like(x))
    with torch.no_grad():
        moved = divergence(clean, model(x_adv), kind="kl")
        start = divergence(clean, model(x + 0.001 * torch.randn_like(x)), kind="kl")
    assert moved > 100 * start
    if task == "regression":
        assert moved.item() == pytest.approx(((model(x_adv) - clean) ** 2).sum().item(), rel=1e-6)


def test_trades_multiclass_path_agrees_with_the_task_divergence():
    logits, adv = torch.randn(8, 5), torch.randn(8, 5)
    legacy = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(logits, dim=1), reduction="sum")
    assert get_task("multiclass").divergence(logits, adv, kind="kl").item() == pytest.approx(legacy.item(), rel=1e-6)


# -- fast adversarial training and its guard -------------------------------------------------------------------
def test_fast_at_refuses_regression_naming_the_regime():
    with pytest.raises(ConfigError, match="FastAdversarialTraining .*'regression' task"):
        FastAdversarialTraining(0.1, task="regression")
    with pytest.raises(ConfigError, match="regression"):
        CatastrophicOverfittingGuard(eps=0.1, bounds=None, steps=3, size=8, max_drop=0.2, max_gap=0.2,
                                     task="regression")


def test_fast_at_multiclass_with_label_rows_raises_the_task_error():
    model = _model()
    regime = FastAdversarialTraining(0.1)
    batch = _batch("multilabel")  # 0/1 rows given to a multi-class regime
    with pytest.raises(ConfigError, match="pass task='multilabel'"):
        regime(model, batch)
    loader = DataLoader(ArrayDataset(batch["x"], batch["y"]), batch_size=16)
    with pytest.raises(ConfigError, match="pass task='multilabel'"):
        regime.on_epoch_end(model, FitState(epoch=0, epochs=1, val_loader=loader))


def test_fast_at_multilabel_trains_through_the_engine():
    torch.manual_seed(0)
    batch = _batch("multilabel", n=64)
    loader = DataLoader(ArrayDataset(batch["x"], batch["y"]), batch_size=16)
    model = _model()
    regime = FastAdversarialTraining(0.1, task="multilabel", remedy="warn")
    assert regime.attack.loss == regime.task.attack_loss
    loss = regime(model, batch)
    assert torch.isfinite(loss)
    res = fit(model, regime, loader, val_loader=loader, epochs=2, progress=False, device="cpu")
    for r in res.history:
        assert 0.0 <= r["pgd_check_acc"] <= r["fgsm_check_acc"] + 0.2 and r["fgsm_check_acc"] <= 1.0


def _two_label_threshold_model(threshold):
    """1-D input, two labels: label 0 iff x > threshold, label 1 iff x < threshold (steep logits)."""
    m = nn.Linear(1, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[20.0], [-20.0]]))
        m.bias.copy_(torch.tensor([-20.0 * threshold, 20.0 * threshold]))
    return m


def test_guard_on_multilabel_detects_a_collapse():
    x = torch.tensor([[-1.0], [1.0]]).repeat(32, 1)
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(32, 1)
    loader = DataLoader(ArrayDataset(x, y), batch_size=64)
    regime = FastAdversarialTraining(0.3, task="multilabel", max_drop=0.2, remedy="restore")
    model = _two_label_threshold_model(0.0)  # margin 1 > eps: every label right under attack
    state = FitState(epoch=0, epochs=5, val_loader=loader)
    regime.on_fit_start(model, state)
    assert regime.on_epoch_end(model, state)["pgd_check_acc"] == 1.0 and regime.stop_reason is None
    model.load_state_dict(_two_label_threshold_model(0.9).state_dict())  # x=1 is 0.1 from the boundary
    state.epoch = 1
    metrics = regime.on_epoch_end(model, state)
    assert metrics["pgd_check_acc"] == 0.5, "both labels of the x=1 samples flip: half of all labels right"
    assert "catastrophic overfitting at epoch 2" in regime.stop_reason
    assert torch.equal(model.bias, _two_label_threshold_model(0.0).bias), "the healthy weights are restored"


def test_guard_multilabel_accuracy_is_the_fraction_of_labels_right():
    x = torch.tensor([[1.0]]).repeat(8, 1)
    y = torch.tensor([[1.0, 1.0]]).repeat(8, 1)  # label 1 is wrong for every sample, label 0 right
    loader = DataLoader(ArrayDataset(x, y), batch_size=8)
    guard = CatastrophicOverfittingGuard(eps=0.01, bounds=None, steps=2, size=8, max_drop=0.2, max_gap=0.2,
                                         task="multilabel")
    report = guard.check(_two_label_threshold_model(0.0), FitState(val_loader=loader))
    assert report.pgd_acc == 0.5 and report.fgsm_acc == 0.5


def test_guard_leaves_unlabelled_samples_out():
    x = torch.tensor([[-1.0], [1.0]]).repeat(4, 1)
    y = torch.tensor([0, -1]).repeat(4)  # the x=1 samples are unlabelled
    loader = DataLoader(ArrayDataset(x, y), batch_size=8)
    linear = nn.Linear(1, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[-20.0], [20.0]]))
        linear.bias.zero_()
    guard = CatastrophicOverfittingGuard(eps=0.3, bounds=None, steps=3, size=8, max_drop=0.2, max_gap=0.2)
    assert guard.check(linear, FitState(val_loader=loader)).pgd_acc == 1.0


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_adversarial_training_attacks_with_the_task_loss_by_default(task):
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import AdversarialTraining

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    attack = PGD(model, eps=0.1, steps=3)  # left at its default loss
    regime = AdversarialTraining(attack, task=task)
    x = torch.randn(8, 4)
    y = torch.randint(0, 2, (8, 3)).float() if task == "multilabel" else torch.randn(8, 3)
    x_adv = regime.attack(x, y)
    assert (x_adv - x).abs().max() == pytest.approx(0.1, rel=1e-5), "the attack moves the input to its budget"
    with torch.no_grad():
        assert regime.task.loss(model(x_adv), y) > regime.task.loss(model(x), y)
