"""robustlab.common.tasks: the losses, divergences and correctness of the three tasks, unlabelled samples left out."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.tasks import UNLABELED, get_task


def _g():
    return torch.Generator().manual_seed(0)


def test_losses_equal_torchs_on_fully_labelled_batches():
    g = _g()
    logits = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y_class = torch.randint(0, 3, (8,), generator=g)
    y_multi = torch.randint(0, 2, (8, 3), generator=g).double()
    assert get_task("multiclass").loss(logits, y_class).item() == F.cross_entropy(logits, y_class).item()
    assert (get_task("multilabel").loss(logits, y_multi).item()
            == F.binary_cross_entropy_with_logits(logits, y_multi).item())
    assert get_task("regression").loss(logits, y_multi).item() == F.mse_loss(logits, y_multi).item()


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_unlabelled_samples_are_left_out(task):
    g = _g()
    logits = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    if task == "multiclass":
        y = torch.tensor([0, 2, UNLABELED, 1, UNLABELED, 0])
    else:
        y = torch.randint(0, 2, (6, 3), generator=g).double()
        y[[2, 4]] = float("nan")
    t = get_task(task)
    keep = torch.tensor([0, 1, 3, 5])
    assert t.labeled(y).tolist() == [True, True, False, True, False, True]
    assert t.loss(logits, y).item() == pytest.approx(t.loss(logits[keep], y[keep]).item(), rel=1e-12)
    per = t.per_sample_loss(logits, y)
    assert per.shape == (6,) and per[2] == 0 and per[4] == 0
    assert per[keep].mean().item() == pytest.approx(t.loss(logits[keep], y[keep]).item(), rel=1e-12)
    none = torch.full_like(y, UNLABELED) if task == "multiclass" else torch.full_like(y, float("nan"))
    zero = t.loss(logits, none)
    assert zero.item() == 0.0 and zero.requires_grad, "no labelled sample: a zero that keeps the graph"


def test_divergences_against_hand_formulas():
    g = _g()
    a, b = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    p, q = a.softmax(1), b.softmax(1)
    assert get_task("multiclass").divergence(a, b).item() == pytest.approx((p * (p / q).log()).sum().item())
    assert get_task("multiclass").divergence(a, b, kind="mse").item() == pytest.approx(((p - q) ** 2).sum().item() / 4)
    s, r = a.sigmoid(), b.sigmoid()
    bern = s * (s / r).log() + (1 - s) * ((1 - s) / (1 - r)).log()
    assert get_task("multilabel").divergence(a, b).item() == pytest.approx(bern.sum().item())
    assert get_task("regression").divergence(a, b).item() == pytest.approx(((a - b) ** 2).sum().item())
    t2 = get_task("multiclass").divergence(a, b, temperature=2.0).item()
    assert t2 == pytest.approx(get_task("multiclass").divergence(a / 2, b / 2).item())
    assert get_task("multiclass").divergence(a, a).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ConfigError, match="unknown divergence"):
        get_task("multiclass").divergence(a, b, kind="js")


def test_correct_and_its_errors():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.0], [-1.0, 3.0]])
    assert get_task("multiclass").correct(logits, torch.tensor([0, 0, 1])).tolist() == [1.0, 0.0, 1.0]
    multi = get_task("multilabel").correct(logits, torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]))
    assert multi.tolist() == [1.0, 1.0, 0.5]
    with pytest.raises(ConfigError, match="regression task has no correct"):
        get_task("regression").correct(logits, torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="task='multilabel'"):
        get_task("multiclass").correct(logits, torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="unknown task 'ranking'"):
        get_task("ranking")
