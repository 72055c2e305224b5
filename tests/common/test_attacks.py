"""Attacks: the contract over every attack, bounds, norms, losses, and agreement with torchattacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.common import attacks
from robustlab.common.attacks import FGSM, PGD
from robustlab.common.testing import require_peer


@pytest.fixture(scope="module")
def torchattacks():
    """The peer library, looked up before the fixtures that train a model (skipped outside CI when missing)."""
    return require_peer("torchattacks", what="the reference PGD ours is checked against")


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(16, 3))


def _data(n=32):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


ATTACKS = [n for n in attacks.__all__ if isinstance(getattr(attacks, n), type)]  # the classes, not the helpers
# Minimal-norm attacks (DeepFool, CW) stop once the prediction flips: their eps is an L2 cap (so also an L-inf
# one) and they are checked for flipping what they report, not for raising the loss by a margin.
MINIMAL = [n for n in ATTACKS if getattr(getattr(attacks, n), "minimal", False)]
BUDGET = [n for n in ATTACKS if n not in MINIMAL]


def _make(name, model, **kw):
    return getattr(attacks, name)(model, eps=0.1, **kw)


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("training", [True, False])
def test_contract(name, training):
    model = _model().train(training)
    model[4].eval()  # a submodule in its own mode must keep it
    model[2].bias.requires_grad_(False)  # a deliberately frozen parameter stays frozen
    x, y = _data()
    sentinel = [torch.full_like(p, 7.0) for p in model.parameters()]
    for p, s in zip(model.parameters(), sentinel):
        p.grad = s.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x_adv = _make(name, model, bounds=(0.0, 1.0))(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert model.training == training and not model[4].training
    for p, s in zip(model.parameters(), sentinel):
        assert torch.equal(p.grad, s), "parameter gradients must be left as they were"
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False, True, True]
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed (batch-norm statistics must not move in eval mode)"
    torch.manual_seed(3)
    a = _make(name, model, bounds=(0.0, 1.0))(x, y)
    torch.manual_seed(3)
    b = _make(name, model, bounds=(0.0, 1.0))(x, y)
    assert torch.equal(a, b), "attacks are deterministic under a seed"


def test_the_issue_attacks_are_exported():
    assert {"FGSM", "BIM", "PGD"} <= set(BUDGET) and set(MINIMAL) == {"DeepFool", "CW"}


@pytest.mark.parametrize("name", BUDGET)
def test_attack_raises_the_loss(name):
    model = _model().eval()
    x, y = _data(128)
    loss = nn.functional.cross_entropy
    x_adv = getattr(attacks, name)(model, eps=0.3)(x, y)
    assert loss(model(x_adv), y) > loss(model(x), y) + 0.05


@pytest.mark.parametrize("name", MINIMAL)
def test_minimal_attack_flips_what_it_reports(name):
    """Uncapped, a minimal attack flips most points it is given, every point it reports as a success is
    misclassified, and a point it does not fool is returned as it was or within the cap."""
    model = _model().eval()
    x = torch.randn(128, 3, 4, generator=torch.Generator().manual_seed(1)).clamp(-3, 3)  # on [0, 1]^12 this
    y = model(x).argmax(1)  # untrained model predicts one class everywhere: nothing to flip inside the box
    kw = {"c": 50.0, "steps": 100, "lr": 0.05} if name == "CW" else {}
    attack = getattr(attacks, name)(model, eps=float("inf"), bounds=(-3.0, 3.0), **kw)
    x_adv, ok = attack.perturb_and_report(x, y)
    assert torch.equal(x_adv, attack(x, y))
    assert ok.float().mean() > 0.5
    with torch.no_grad():
        assert (model(x_adv[ok]).argmax(1) != y[ok]).all()
    capped = getattr(attacks, name)(model, eps=0.3, bounds=(-3.0, 3.0), **kw)(x, y)
    assert (capped - x).flatten(1).norm(dim=1).max() <= 0.3 + 1e-6


def test_no_hidden_unit_clamp():
    """Inputs far outside [0, 1] (ECG in mV, seismic counts) stay in their own units."""
    model = nn.Sequential(nn.Linear(3, 2))
    x = torch.randn(16, 3) * 100 + 500
    y = torch.randint(0, 2, (16,))
    x_adv = PGD(model, eps=2.0, steps=5)(x, y)
    assert (x_adv - x).abs().max() <= 2.0 + 1e-4
    assert x_adv.min() > 100


def test_per_feature_bounds_and_eps():
    model = _model().eval()
    x, y = _data()
    lo = torch.zeros(3, 4)
    hi = torch.ones(3, 4)
    hi[0] = 0.2  # a per-feature upper bound below some inputs' values
    x = torch.minimum(x, hi)
    eps = torch.full((3, 4), 0.05)
    eps[2] = 0.0  # a feature that must not move at all
    x_adv = PGD(model, eps=eps, steps=5, bounds=(lo, hi))(x, y)
    assert (x_adv <= hi + 1e-7).all() and (x_adv >= lo).all()
    assert torch.equal(x_adv[:, 2], x[:, 2])
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6


def test_l2_ball():
    model = _model().eval()
    x, y = _data()
    x_adv = PGD(model, eps=0.5, steps=10, norm="l2")(x, y)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-5
    assert norms.mean() > 0.25, "L2 PGD should use most of its budget"
    with pytest.raises(ValueError, match="norm"):
        PGD(model, eps=0.5, norm="l1")


def test_targeted_moves_towards_target():
    model = _model().eval()
    x, _ = _data(128)
    target = torch.full((128,), 2)
    loss = nn.functional.cross_entropy
    x_adv = PGD(model, eps=0.5, steps=20, targeted=True)(x, target)
    assert loss(model(x_adv), target) < loss(model(x), target) - 0.05
    assert (model(x_adv).argmax(1) == 2).sum() >= (model(x).argmax(1) == 2).sum()


def test_multilabel_loss():
    model = nn.Sequential(nn.Linear(6, 4))
    x = torch.randn(32, 6)
    y = (torch.rand(32, 4) > 0.5).float()
    bce = nn.BCEWithLogitsLoss(reduction="sum")
    x_adv = PGD(model, eps=0.2, steps=5, loss=bce)(x, y)
    assert bce(model(x_adv), y) > bce(model(x), y)


def test_regression_loss():
    model = nn.Sequential(nn.Linear(6, 1))
    x, y = torch.randn(32, 6), torch.randn(32, 1)
    mse = nn.MSELoss(reduction="sum")
    x_adv = FGSM(model, eps=0.2, loss=mse)(x, y)
    assert mse(model(x_adv), y) > mse(model(x), y)


def test_fgsm_random_start_step_and_projection():
    model = _model().eval()
    x, y = _data()
    fast = FGSM(model, eps=0.1, random_start=True)
    assert fast.step_size() == pytest.approx(0.125)
    assert FGSM(model, eps=0.1).step_size() == pytest.approx(0.1)
    assert (fast(x, y) - x).abs().max() <= 0.1 + 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps"),
    ({"eps": 0.1, "bounds": (1.0, 0.0)}, "bounds"),
    ({"eps": 0.1, "bounds": (0.0,)}, "bounds"),
    ({"eps": 0.1, "model_mode": "test"}, "model_mode"),
    ({"eps": 0.1, "steps": 0}, "steps"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PGD(_model(), **kwargs)


# -- cross-check with torchattacks on a trained MNIST model ---------------------------------------------------
AGREEMENT_POINTS = 1.0  # robust accuracy, in percentage points


@pytest.mark.realdata
@pytest.mark.parametrize("eps, alpha, steps", [(0.1, 0.01, 10), (0.2, 0.02, 20)])
def test_pgd_agrees_with_torchattacks(torchattacks, mnist, mnist_model, eps, alpha, steps):
    _, _, xt, yt = mnist
    x, y = xt[:1000], yt[:1000]
    ours = PGD(mnist_model, eps=eps, alpha=alpha, steps=steps, random_start=False, bounds=(0.0, 1.0))
    theirs = torchattacks.PGD(mnist_model, eps=eps, alpha=alpha, steps=steps, random_start=False)
    with torch.no_grad():
        clean = (mnist_model(x).argmax(1) == y).float().mean().item() * 100
    acc_ours = (mnist_model(ours(x, y)).argmax(1) == y).float().mean().item() * 100
    acc_theirs = (mnist_model(theirs(x, y)).argmax(1) == y).float().mean().item() * 100
    print(f"eps {eps}: clean {clean:.1f}%, PGD robust accuracy ours {acc_ours:.1f}%, torchattacks {acc_theirs:.1f}%")
    assert clean > 95
    assert acc_ours < clean - 5, "the attack must bite"
    assert abs(acc_ours - acc_theirs) <= AGREEMENT_POINTS, (acc_ours, acc_theirs)


def test_a_step_size_schedule_adds_up_to_its_sum_below_the_budget():
    """Koo et al.'s schedule (20 steps of 0.1 / (i + 10), eps 0.2, no random start, clipped to [0, 1]): on a linear
    model the gradient's sign never changes, so every input moves by the schedule's sum, about 0.113 < 0.2."""
    from robustlab.common.attacks import harmonic_steps

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 30, 2))
    x = torch.rand(8, 4, 30) * 0.4 + 0.3  # inside [0, 1] by more than the budget: no clipping
    y = torch.randint(0, 2, (8,))
    pgd = PGD(model, eps=0.2, alpha=harmonic_steps(20), steps=20, random_start=False, bounds=(0.0, 1.0))
    moved = (pgd(x, y) - x).abs()
    assert sum(harmonic_steps(20)) == pytest.approx(0.1130, abs=1e-3)
    assert moved.max().item() == pytest.approx(0.113, abs=1e-3) and moved.min().item() == pytest.approx(0.113, abs=1e-3)
    full = PGD(model, eps=0.2, alpha=0.025, steps=20, random_start=False, bounds=(0.0, 1.0))
    assert (full(x, y) - x).abs().max().item() == pytest.approx(0.2, abs=1e-6)  # a constant step reaches eps


def test_a_step_size_schedule_needs_one_size_per_step():
    from robustlab.common.attacks import harmonic_steps

    with pytest.raises(ValueError, match="one size per step"):
        PGD(_model(), eps=0.2, alpha=harmonic_steps(5), steps=20)
    with pytest.raises(ValueError, match="harmonic_steps"):
        harmonic_steps(0)
    assert PGD(_model(), eps=0.2, alpha=[0.1, 0.05], steps=2).step_sizes() == [0.1, 0.05]
    assert PGD(_model(), eps=0.2, alpha=0.01, steps=3).step_sizes() == [0.01] * 3
