"""BIM, DeepFool and CW: their own behaviour and agreement with torchattacks (the contract is in test_attacks.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustlab.common.attacks import BIM, CW, PGD, DeepFool
from robustlab.common.attacks.bim import kurakin_steps
from robustlab.common.testing import require_peer


@pytest.fixture(scope="module")
def torchattacks():
    return require_peer("torchattacks", what="the reference BIM, DeepFool and CW ours are checked against")


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def _data(n=64):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 4, generator=g), torch.randint(0, 4, (n,), generator=g)


def _l2(a, b):
    return (a - b).flatten(1).norm(dim=1)


# -- BIM --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps, alpha, steps", [(0.1, 0.01, 10), (0.3, 0.05, 7), (8 / 255, None, 10)])
def test_bim_equals_torchattacks(torchattacks, eps, alpha, steps):
    model = _model()
    x, y = _data()
    ours = BIM(model, eps=eps, alpha=alpha, steps=steps, bounds=(0.0, 1.0))(x, y)
    kw = {} if alpha is None else {"alpha": alpha}  # torchattacks' default alpha 2/255 is ours at eps 8/255
    theirs = torchattacks.BIM(model, eps=eps, steps=steps, **kw)(x, y)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_bim_is_pgd_without_random_start_and_kurakin_steps():
    model = _model()
    x, y = _data()
    torch.manual_seed(0)
    pgd = PGD(model, eps=0.1, alpha=0.02, steps=6, random_start=False, bounds=(0.0, 1.0))(x, y)
    assert torch.equal(BIM(model, eps=0.1, alpha=0.02, steps=6, bounds=(0.0, 1.0))(x, y), pgd)
    assert BIM(model, eps=0.3, steps=0).steps == kurakin_steps(0.3) == 80  # min(76.5 + 4, 1.25 * 76.5)
    assert BIM(model, eps=8 / 255, steps=0).steps == 10
    assert not BIM(model, eps=0.1).random_start
    with pytest.raises(ValueError, match="steps=0"):
        BIM(model, eps=torch.full((3, 4), 0.1), steps=0)


# -- DeepFool ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accumulate", [False, True])
def test_deepfool_on_a_linear_model_is_the_exact_projection(accumulate):
    """On a two-class linear model the boundary is a hyperplane: one step of (1 + overshoot) times the distance,
    whether the overshoot applies to each step or to the total."""
    torch.manual_seed(0)
    model = nn.Linear(5, 2).eval()
    x = torch.randn(16, 5)
    y = model(x).argmax(1)
    x_adv = DeepFool(model, overshoot=0.02, accumulate=accumulate)(x, y)
    w = model.weight[1] - model.weight[0]
    b = model.bias[1] - model.bias[0]
    dist = (x @ w + b).abs() / w.norm()
    assert torch.allclose(_l2(x_adv, x), 1.02 * dist, rtol=1e-4, atol=1e-6)
    assert (model(x_adv).argmax(1) != y).all()


def test_deepfool_accumulated_steps_push_through_the_clip():
    """A point pushed against the bounds: per-step clipping loses the clipped part at every step, the accumulated
    perturbation keeps it (Algorithm 2); both report only true flips."""
    model = _model()
    x, _ = _data()
    y = model(x).argmax(1)
    for accumulate in (False, True):
        x_adv, ok = DeepFool(model, accumulate=accumulate, bounds=(0.0, 1.0)).perturb_and_report(x, y)
        assert (model(x_adv[ok]).argmax(1) != y[ok]).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    step = DeepFool(model, steps=3, bounds=(0.0, 1.0))(x, y)
    total = DeepFool(model, steps=3, accumulate=True, bounds=(0.0, 1.0))(x, y)
    assert not torch.equal(step, total)


def test_deepfool_reports_flips_and_respects_the_cap():
    model = _model()
    x, y = _data()
    y = model(x).argmax(1)
    x_adv, ok = DeepFool(model, bounds=(0.0, 1.0)).perturb_and_report(x, y)
    assert ok.float().mean() > 0.75  # the rest stall on a boundary at the bounds (logits tied), as torchattacks'
    assert (model(x_adv[ok]).argmax(1) != y[ok]).all()
    capped, ok_c = DeepFool(model, eps=0.05, bounds=(0.0, 1.0)).perturb_and_report(x, y)
    assert _l2(capped, x).max() <= 0.05 + 1e-6
    assert ok_c.sum() < ok.sum(), "a small cap must leave some points unflipped"
    wrong = model(x).argmax(1) != y
    assert not wrong.any() or torch.equal(capped[wrong], x[wrong])


@pytest.mark.parametrize("kwargs, match", [({"targeted": True}, "untargeted"), ({"steps": 0}, "steps"),
                                           ({"overshoot": -0.1}, "overshoot"), ({"eps": float("nan")}, "eps")])
def test_deepfool_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeepFool(_model(), **kwargs)


# -- CW ---------------------------------------------------------------------------------------------------------
def test_cw_keeps_the_smallest_success_and_the_cap():
    model = _model()
    x, _ = _data()
    y = model(x).argmax(1)
    x_adv, ok = CW(model, c=5.0, steps=100, lr=0.05, bounds=(0.0, 1.0)).perturb_and_report(x, y)
    assert ok.float().mean() > 0.5
    assert torch.equal(x_adv[~ok], x[~ok]), "a point never fooled is returned as it was"
    # a large confidence margin costs distance: the kept examples of kappa 0 are the smaller ones
    far, ok_far = CW(model, c=5.0, kappa=1.0, steps=100, lr=0.05, bounds=(0.0, 1.0)).perturb_and_report(x, y)
    both = ok & ok_far
    assert both.any() and _l2(x_adv[both], x[both]).mean() < _l2(far[both], x[both]).mean()
    capped, ok_c = CW(model, eps=0.1, c=5.0, steps=100, lr=0.05, bounds=(0.0, 1.0)).perturb_and_report(x, y)
    assert _l2(capped, x).max() <= 0.1 + 1e-6 and ok_c.sum() <= ok.sum()


def test_cw_margin_is_over_the_other_classes():
    cw = CW(_model(), kappa=0.5, bounds=(0.0, 1.0))
    logits = torch.tensor([[-3.0, -1.0, -2.0], [2.0, 0.0, 1.0], [0.0, 5.0, 1.0]])
    y = torch.tensor([1, 0, 0])
    # -1 - (-2) with negative logits (torchattacks' zero mask would give 0), 2 - 1, and 0 - 5 clamped at -kappa
    assert torch.allclose(cw.margin(logits, y), torch.tensor([1.0, 1.0, -0.5]))


def test_cw_targeted_reaches_the_target():
    model = _model()
    x, _ = _data()
    target = torch.full((64,), 3)
    x_adv, ok = CW(model, c=10.0, steps=100, lr=0.05, targeted=True, bounds=(0.0, 1.0)).perturb_and_report(x, target)
    before = (model(x).argmax(1) == 3).sum()
    assert ok.sum() > before and (model(x_adv[ok]).argmax(1) == 3).all()


@pytest.mark.parametrize("kwargs, match", [({"bounds": None}, "finite bounds"),
                                           ({"bounds": (0.0, float("inf"))}, "finite bounds"),
                                           ({"c": 0.0}, "c must"), ({"kappa": -1.0}, "kappa"),
                                           ({"steps": 0}, "steps"), ({"lr": 0.0}, "lr")])
def test_cw_bad_arguments(kwargs, match):
    kw = {"bounds": (0.0, 1.0), **kwargs}
    with pytest.raises(ValueError, match=match):
        CW(_model(), **kw)


# -- agreement with torchattacks on a trained MNIST model ------------------------------------------------------
POINT_TOLERANCE = 1e-3  # L2 distance between our example and torchattacks' for one point
POINTS_WITHIN = 0.99  # fraction of the 300 points whose examples agree within POINT_TOLERANCE
OFF_BOUNDARY = 1e-3  # labels are compared where the top two logits differ by more than this (DeepFool stops
# just across, or on, the boundary: float noise of 1e-7 decides the label of a point on it)
CW_SUCCESS_POINTS = 3.0  # CW: success rates within 3 percentage points


@pytest.mark.realdata
def test_deepfool_agrees_with_torchattacks(torchattacks, mnist, mnist_model):
    _, _, xt, yt = mnist
    x, y = xt[:300], yt[:300]
    ours = DeepFool(mnist_model, bounds=(0.0, 1.0))(x, y)
    theirs = torchattacks.DeepFool(mnist_model, steps=50, overshoot=0.02)(x, y)
    with torch.no_grad():
        lo, lt = mnist_model(ours), mnist_model(theirs)
    po, pt = lo.argmax(1), lt.argmax(1)
    gap = torch.minimum(lo.topk(2, 1).values.diff(dim=1).abs(), lt.topk(2, 1).values.diff(dim=1).abs()).squeeze(1)
    clear = gap > OFF_BOUNDARY
    within = (_l2(ours, theirs) <= POINT_TOLERANCE).float().mean().item()
    no, nt = _l2(ours, x).mean().item(), _l2(theirs, x).mean().item()
    print(f"DeepFool: examples within {POINT_TOLERANCE:g} (L2) on {within:.3f} of the points; mean L2 ours {no:.4f}, "
          f"torchattacks {nt:.4f}; labels agree on {(po == pt).float().mean():.3f} of all points and on "
          f"{(po[clear] == pt[clear]).float().mean():.3f} of the {int(clear.sum())} off the boundary")
    assert within >= POINTS_WITHIN
    assert clear.sum() >= 10 and torch.equal(po[clear], pt[clear])  # 13 of 300: clipping to [0, 1] after
    # every step leaves most points converging onto the boundary (torchattacks does the same)
    assert abs(no - nt) <= 0.01 * nt


@pytest.mark.realdata
def test_cw_agrees_with_torchattacks(torchattacks, mnist, mnist_model):
    _, _, xt, yt = mnist
    x, y = xt[:300], yt[:300]
    kw = {"c": 1.0, "kappa": 0.0, "steps": 100, "lr": 0.01}
    ours = CW(mnist_model, bounds=(0.0, 1.0), **kw)(x, y)
    theirs = torchattacks.CW(mnist_model, **kw)(x, y)
    with torch.no_grad():
        so, st = (mnist_model(ours).argmax(1) != y), (mnist_model(theirs).argmax(1) != y)
    both = so & st
    no, nt = _l2(ours[both], x[both]).mean().item(), _l2(theirs[both], x[both]).mean().item()
    print(f"CW: success ours {so.float().mean():.3f}, torchattacks {st.float().mean():.3f}; mean L2 of the points "
          f"both fool: ours {no:.4f}, torchattacks {nt:.4f} ({int(both.sum())} points)")
    assert abs(so.float().mean().item() - st.float().mean().item()) * 100 <= CW_SUCCESS_POINTS
    assert both.sum() >= 10 and abs(no - nt) <= 0.05 * nt
    assert not math.isnan(no)
