"""Distillation regimes: KnowledgeDistillation and ARD against hand computations, a frozen checkpointed teacher,
ARD's attack on the student, a student that learns from its teacher, and the contract on the three tasks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.attacks import PGD
from robustlab.common.attacks.base import Attack
from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.metrics import robust_accuracy
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.regimes.ard import ARD
from robustlab.common.regimes.distillation import KnowledgeDistillation
from robustlab.common.tasks import UNLABELED, get_task
from robustlab.common.testing import random_targets

TASKS = ("multiclass", "multilabel", "regression")


def _linear(seed, k=4, d=3):
    torch.manual_seed(seed)
    return nn.Linear(d, k).double()


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np(module, x):
    w, b = module.weight.detach().numpy(), module.bias.detach().numpy()
    return x.numpy() @ w.T + b


def _kl_rows(t_logits, s_logits):
    """Per-sample KL(softmax t || softmax s), in numpy."""
    p, q = _softmax(t_logits), _softmax(s_logits)
    return (p * (np.log(p) - np.log(q))).sum(1)


def _ce(logits, y):
    p = _softmax(logits)
    return -np.log(p[np.arange(len(y)), y])


class _FixedAttack(Attack):
    """Returns a fixed adversarial batch; records what it was asked."""

    def __init__(self, model, x_adv):
        super().__init__(model, eps=1.0)
        self.x_adv, self.calls = x_adv, []

    def perturb(self, x, y, *, loss=None, x_init=None):
        self.calls.append((x, y, loss))
        return self.x_adv


# -- hand computations -----------------------------------------------------------------------------------------
def test_knowledge_distillation_equals_hand_computation():
    teacher, student = _linear(0), _linear(1)
    g = torch.Generator().manual_seed(2)
    x, extra = torch.randn(6, 3, generator=g).double(), torch.randn(3, 3, generator=g).double()
    y = torch.tensor([0, 3, UNLABELED, 1, 2, UNLABELED])
    t, alpha = 3.0, 0.7
    regime = KnowledgeDistillation(teacher, temperature=t, alpha=alpha)
    loss = regime(student, {"x": x, "y": y, "unlabeled": {"x": extra}})
    x_all = torch.cat([x, extra])
    soft = _kl_rows(_np(teacher, x_all) / t, _np(student, x_all) / t).mean()  # every input, /N of all inputs
    known = (y != UNLABELED).numpy()
    hard = _ce(_np(student, x)[known], y.numpy()[known]).mean()  # labelled samples only
    assert loss.item() == pytest.approx(alpha * t * t * soft + (1 - alpha) * hard, rel=1e-12)
    assert regime.step_metrics["soft_loss"] == pytest.approx(t * t * soft, rel=1e-12)
    assert regime.step_metrics["hard_loss"] == pytest.approx(hard, rel=1e-12)


def test_knowledge_distillation_multilabel_and_regression_by_hand():
    teacher, student = _linear(0), _linear(1)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(3)).double()
    zt, zs = _np(teacher, x), _np(student, x)
    t = 2.0
    # multi-label: the KL of each label's Bernoulli, summed over labels, averaged over samples
    y = (torch.rand(5, 4, generator=torch.Generator().manual_seed(4)) > 0.5).double()
    loss = KnowledgeDistillation(teacher, temperature=t, alpha=1.0, task="multilabel")(student, {"x": x, "y": y})
    p, q = 1 / (1 + np.exp(-zt / t)), 1 / (1 + np.exp(-zs / t))
    kl = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(1).mean()
    assert loss.item() == pytest.approx(t * t * kl, rel=1e-12)
    # regression: t**2 * squared difference of outputs / t**2, i.e. the squared difference per sample
    y = torch.randn(5, 4, generator=torch.Generator().manual_seed(5)).double()
    alpha = 0.25
    loss = KnowledgeDistillation(teacher, temperature=t, alpha=alpha, task="regression")(student, {"x": x, "y": y})
    expected = alpha * ((zs - zt) ** 2).sum(1).mean() + (1 - alpha) * ((zs - y.numpy()) ** 2).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "batchmean"])
def test_ard_equals_hand_computation(reduction):
    teacher, student = _linear(0), _linear(1)
    g = torch.Generator().manual_seed(6)
    x, x_adv = torch.randn(6, 3, generator=g).double(), torch.randn(6, 3, generator=g).double()
    y = torch.tensor([0, 3, 2, 1, 2, 0])
    t, alpha = 30.0, 0.6
    attack = _FixedAttack(student, x_adv)
    regime = ARD(teacher, attack, temperature=t, alpha=alpha, kl_reduction=reduction)
    loss = regime(student, {"x": x, "y": y})
    kl = _kl_rows(_np(teacher, x) / t, _np(student, x_adv) / t).sum()  # teacher on clean x, student on x + delta
    kl /= 6 * 4 if reduction == "mean" else 6  # the authors' nn.KLDivLoss(): mean over the N * K logits
    hard = _ce(_np(student, x), y.numpy()).mean()  # clean cross entropy
    assert loss.item() == pytest.approx(alpha * t * t * kl + (1 - alpha) * hard, rel=1e-12)
    (x_seen, y_seen, attack_loss), = attack.calls
    assert torch.equal(x_seen, x) and torch.equal(y_seen, y), "the attack sees the clean batch and true labels"
    logits = student(x)
    assert attack_loss(logits, y).item() == pytest.approx(_ce(_np(student, x), y.numpy()).sum(), rel=1e-12), \
        "the attack ascends the summed cross entropy"


def test_ard_defaults_follow_the_authors():
    regime = ARD(_linear(0), PGD(_linear(1), eps=0.1))
    assert (regime.temperature, regime.alpha, regime.kl_reduction) == (30.0, 1.0, "mean")
    assert "Goldblum" in regime.citation and "779ade36d612bddb0a5a705fdd74efe7571a1381" in ARD.__doc__


# -- the teacher -----------------------------------------------------------------------------------------------
def _blobs(n, seed, k=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    return centers[y] + 0.6 * torch.randn(n, 2, generator=g), y


def _teacher_with_batchnorm():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


@pytest.mark.parametrize("cls", ["KnowledgeDistillation", "ARD"])
def test_teacher_is_frozen_and_checkpointed(cls, tmp_path):
    teacher = _teacher_with_batchnorm().train()  # train mode on purpose: the regime must run it in eval mode
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = MLP(2, 3, hidden=(8,))
    regime = (KnowledgeDistillation(teacher) if cls == "KnowledgeDistillation"
              else ARD(teacher, PGD(student, eps=0.1, steps=2)))
    assert not any(p.requires_grad for p in teacher.parameters())
    assert regime.networks == {"teacher": teacher} and regime.trainable_networks == {}
    x, y = _blobs(64, 0)
    loader = DataLoader(ArrayDataset(x, y), batch_size=16)
    fit(student, regime, loader, val_loader=loader, epochs=2, out_dir=tmp_path, progress=False, device="cpu")
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights and batch-norm statistics unchanged"
    assert all(p.grad is None for p in teacher.parameters())
    assert teacher.training, "the teacher's own mode is restored"
    for name in ("last.pt", "best.pt"):
        saved = load_checkpoint(tmp_path / name)["networks"]["teacher"]
        assert all(torch.equal(saved[k], before[k]) for k in before)
    optimizer = regime.configure_optimizers(student, None)["model"]
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not in_optimizer & {id(p) for p in teacher.parameters()}


# -- ARD's attack ----------------------------------------------------------------------------------------------
class _Recording(PGD):
    """PGD that keeps its last output."""

    def perturb(self, x, y, **kw):
        self.last = super().perturb(x, y, **kw)
        return self.last


def test_ard_delta_is_in_the_ball_and_comes_from_the_student():
    torch.manual_seed(0)
    student, teacher = MLP(2, 3, hidden=(16,)), MLP(2, 3, hidden=(16,))
    x = torch.rand(32, 2)
    y = torch.randint(0, 3, (32,))
    eps, bounds = 0.1, (0.0, 1.0)
    attack = _Recording(student, eps=eps, alpha=0.03, steps=5, bounds=bounds)
    teacher_inputs = []
    teacher.register_forward_pre_hook(lambda _m, args: teacher_inputs.append(args[0].clone()))
    regime = ARD(teacher, attack, alpha=0.5)
    torch.manual_seed(1)
    regime(student, {"x": x, "y": y})
    x_adv = attack.last
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > eps / 2, "the attack moved"
    assert len(teacher_inputs) == 1 and torch.equal(teacher_inputs[0], x), "the teacher sees the clean input only"
    task = get_task("multiclass")
    torch.manual_seed(1)
    on_student = PGD(student, eps=eps, alpha=0.03, steps=5, bounds=bounds).perturb(x, y, loss=task.attack_loss)
    torch.manual_seed(1)
    on_teacher = PGD(teacher, eps=eps, alpha=0.03, steps=5, bounds=bounds).perturb(x, y, loss=task.attack_loss)
    assert torch.equal(x_adv, on_student) and not torch.equal(x_adv, on_teacher)
    with torch.no_grad():
        assert task.attack_loss(student(x_adv), y) > task.attack_loss(student(x), y)


def test_ard_refuses_an_attack_on_the_teacher_and_unlabelled_batches():
    student, teacher = MLP(2, 3), MLP(2, 3)
    with pytest.raises(ConfigError, match="built on the student"):
        ARD(teacher, PGD(teacher, eps=0.1))
    regime = ARD(teacher, PGD(None, eps=0.1, steps=1))
    batch = {"x": torch.randn(4, 2), "y": torch.randint(0, 3, (4,))}
    regime(student, batch)
    assert regime.attack.model is student, "an attack without a model gets the student"
    with pytest.raises(ConfigError, match="labelled batches only"):
        regime(student, {**batch, "unlabeled": {"x": torch.randn(4, 2)}})


@pytest.mark.parametrize("schedule, expected", [
    (None, [0.2] * 6),  # the authors': full budget from the first step
    # a clean epoch (no attack runs: no budget-0 PGD), then a per-step ramp over one epoch
    ("warmup1_ramp1", [0.1, 0.2, 0.2, 0.2]),
])
def test_ard_eps_schedule(schedule, expected):
    from robustlab.common.regimes.schedules import EpsRamp

    seen = []

    class Recording(PGD):
        def perturb(self, x, y, **kw):
            seen.append((float(self.eps), float(self.alpha)))
            return super().perturb(x, y, **kw)

    torch.manual_seed(0)
    student, teacher = MLP(2, 3), MLP(2, 3)
    attack = Recording(student, eps=0.2, alpha=0.05, steps=1, model_mode="train")
    ramp = EpsRamp(warmup_epochs=1, ramp_epochs=1) if schedule else None
    regime = ARD(teacher, attack, schedule=ramp)
    loader = DataLoader(ArrayDataset(torch.randn(8, 2), torch.randint(0, 3, (8,))), batch_size=4)
    fit(student, regime, loader, epochs=3, optimizer=torch.optim.SGD(student.parameters(), lr=0.01),
        device="cpu", progress=False)
    assert [e for e, _ in seen] == pytest.approx(expected)
    assert [a for _, a in seen] == pytest.approx([0.05 * e / 0.2 for e in expected])  # the step scales too
    assert (attack.eps, attack.alpha) == (0.2, 0.05)  # full budget after fit


def test_bad_options():
    teacher = MLP(2, 3)
    with pytest.raises(ConfigError, match="temperature"):
        KnowledgeDistillation(teacher, temperature=0.0)
    with pytest.raises(ConfigError, match="alpha"):
        KnowledgeDistillation(teacher, alpha=1.5)
    with pytest.raises(ConfigError, match="kl_reduction"):
        ARD(teacher, PGD(MLP(2, 3), eps=0.1), kl_reduction="sum")


# -- learning from the teacher ---------------------------------------------------------------------------------
def test_students_learn_from_a_trained_teacher():
    """A teacher trained with labels; a smaller student distilled without any label reaches 95% test accuracy,
    and an ARD student 95% clean and 90% accuracy under PGD at eps 0.3."""
    torch.manual_seed(0)
    x, y = _blobs(600, 0)
    x_test, y_test = _blobs(600, 1)
    labelled = DataLoader(ArrayDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    teacher = MLP(2, 3, hidden=(64, 64))
    fit(teacher, ERM(), labelled, epochs=10, progress=False, device="cpu")

    def accuracy(m):
        with torch.no_grad():
            return (m(x_test).argmax(1) == y_test).float().mean().item()

    assert accuracy(teacher) >= 0.97
    no_labels = torch.full_like(y, UNLABELED)
    unlabelled = DataLoader(ArrayDataset(x, no_labels), batch_size=64, shuffle=True,
                            generator=torch.Generator().manual_seed(0))
    student = MLP(2, 3, hidden=(8,))
    fit(student, KnowledgeDistillation(teacher, temperature=4.0, alpha=1.0), unlabelled, epochs=10,
        optimizer=torch.optim.Adam(student.parameters(), lr=1e-2), progress=False, device="cpu")
    assert accuracy(student) >= 0.95

    robust_student = MLP(2, 3, hidden=(8,))
    attack = PGD(robust_student, eps=0.3, alpha=0.1, steps=5, model_mode="train")
    fit(robust_student, ARD(teacher, attack), labelled, epochs=10,
        optimizer=torch.optim.Adam(robust_student.parameters(), lr=1e-2), progress=False, device="cpu")
    assert accuracy(robust_student) >= 0.95
    test_loader = DataLoader(ArrayDataset(x_test, y_test), batch_size=300)
    assert robust_accuracy(robust_student, test_loader, PGD(robust_student, eps=0.3, steps=10)) >= 0.9


# -- the contract on the three tasks ---------------------------------------------------------------------------
def _task_batch(task, n=16, k=3):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return x, random_targets(task, n, outputs=k, generator=g)


def _student():
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def _make(name, task, student, seed=0):
    torch.manual_seed(seed)
    teacher = MLP(4, 3, hidden=(16,))
    if name == "KnowledgeDistillation":
        return KnowledgeDistillation(teacher, alpha=0.5, task=task)
    return ARD(teacher, PGD(student, eps=0.1, steps=3, loss=get_task(task).attack_loss), alpha=0.5, task=task)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("name", ["KnowledgeDistillation", "ARD"])
def test_contract(name, task):
    torch.manual_seed(0)
    student = _student().train()
    regime = _make(name, task, student)
    x, y = _task_batch(task)
    loss = regime(student, {"x": x, "y": y})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    assert all(p.grad is None for p in regime.teacher.parameters())
    assert student.training and set(regime.step_metrics) == {"soft_loss", "hard_loss"}
    assert all(isinstance(v, float) for v in regime.step_metrics.values())
    values = []
    for _ in range(2):
        torch.manual_seed(5)
        s = _student().train()
        values.append(_make(name, task, s)(s, {"x": x, "y": y}).item())
    assert values[0] == values[1]
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    assert name in repr(regime) and isinstance(regime.citation, str) and "Examples::" in type(regime).__doc__
    loader = DataLoader(ArrayDataset(x.repeat(4, 1), y.repeat(4, *([1] * (y.ndim - 1)))), batch_size=16)
    res = fit(student, regime, loader, val_loader=loader, epochs=2, progress=False, device="cpu")
    assert len(res.history) == 2 and all(np.isfinite(r["train_loss"]) for r in res.history)


@pytest.mark.parametrize("task", TASKS)
def test_soft_term_is_zero_when_the_student_is_the_teacher(task):
    teacher = MLP(4, 3, hidden=(16,))
    x, y = _task_batch(task)
    regime = KnowledgeDistillation(teacher, alpha=1.0, task=task)
    assert regime(teacher, {"x": x, "y": y}).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("module", ["robustlab.common.regimes.distillation", "robustlab.common.regimes.ard"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
