"""Regimes: the contract over every regime, schedules, the clean/adversarial mix, catastrophic-overfitting guard."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common import regimes
from robustlab.common.attacks import BIM, FGSM, PGD
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.models import Autoencoder
from robustlab.common.regimes import AdversarialTraining, FastAdversarialTraining, GaussianNoise
from robustlab.common.regimes.base import FitState
from robustlab.common.regimes.schedules import EpsRamp
from robustlab.common.tasks import get_task
from robustlab.common.testing import random_targets

TASKS = ("multiclass", "multilabel", "regression")
OUT = {"multiclass": 3, "multilabel": 3, "regression": 1}


def _attack(m, task):
    return PGD(m, eps=0.1, steps=3, loss=get_task(task).attack_loss)


def _ldce(task):
    """LDCE with 24 trusted samples of the three classes, for noisy sets of up to 96 samples; the embedding is
    the output of the ReLU (layer "2" of :func:`_model`)."""
    g = torch.Generator().manual_seed(1)
    return regimes.LDCE(torch.randn(24, 4, generator=g), torch.arange(24) % 3, 96, features="2", n_shot=2,
                        query_batch_size=8, task=task)


_C3 = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]


FACTORIES = {
    "ERM": lambda m, t: regimes.ERM(task=t),
    "GaussianNoise": lambda m, t: regimes.GaussianNoise(0.1, task=t),
    "AdversarialTraining": lambda m, t: regimes.AdversarialTraining(_attack(m, t), fraction=0.5, task=t),
    "FastAdversarialTraining": lambda m, t: regimes.FastAdversarialTraining(0.1, task=t),
    "TRADES": lambda m, t: regimes.TRADES(_attack(m, t), beta=6.0, task=t),
    "MeanTeacher": lambda m, t: regimes.MeanTeacher(task=t),
    "VAT": lambda m, t: regimes.VAT(eps=0.5, task=t),
    "EAAT": lambda m, t: regimes.EAAT(eps=0.5, task=t),
    "KnowledgeDistillation": lambda m, t: regimes.KnowledgeDistillation(_model(t), alpha=0.5, task=t),
    "ARD": lambda m, t: regimes.ARD(_model(t), _attack(m, t), alpha=0.5, task=t),
    "CoTeaching": lambda m, t: regimes.CoTeaching(_model(t), forget_rate=0.2, task=t),
    "LDCE": lambda m, t: _ldce(t),
    "LossCorrection": lambda m, t: regimes.LossCorrection(_C3, confidences=torch.linspace(0, 1, 96), mode="hard",
                                                          task=t),
    "GradualPruning": lambda m, t: regimes.GradualPruning(0.5, begin=0.0, end=0.5, frequency=1, task=t),
    "DiversityAdversarialTraining": lambda m, t: regimes.DiversityAdversarialTraining(
        _model(t), [FGSM(None, eps=0.1), BIM(None, eps=0.1, steps=3)], task=t),
    "ATLR": lambda m, t: regimes.ATLR(_attack(m, t), layers=["2"], weights=0.5, task=t),
    "OnManifoldAdversarialTraining": lambda m, t: regimes.OnManifoldAdversarialTraining(
        Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity"), eps=0.5, steps=2, fraction=0.5, task=t),
    "GraphDistillation": lambda m, t: regimes.GraphDistillation(_model(t), layers=("1", "2"), task=t),
    "GraphClassification": lambda m, t: regimes.GraphClassification(layers="2", task=t),
    "GraphSmoothness": lambda m, t: regimes.GraphSmoothness(layers=("0", "2"), weight=1e-2, task=t),
}
# (regime, task) pairs that do not apply: the overfitting guard needs accuracy; LDCE and LossCorrection score and
# correct class labels (multi-class only); a GAN has no task and its model is a generator (tests/common/test_gan.py
# covers it).
NOT_APPLICABLE = {("FastAdversarialTraining", "regression"), ("LDCE", "multilabel"), ("LDCE", "regression"),
                  ("LossCorrection", "multilabel"), ("LossCorrection", "regression")}
CASES = [(n, t) for n in regimes.__all__ if n != "GAN" for t in TASKS if (n, t) not in NOT_APPLICABLE]


def test_every_regime_has_a_factory():
    assert set(regimes.__all__) - {"GAN"} == set(FACTORIES)


def test_guard_refuses_a_regression_task():
    with pytest.raises(ConfigError, match="FastAdversarialTraining"):
        regimes.FastAdversarialTraining(0.1, task="regression")


def _model(task="multiclass"):
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, OUT[task]))


def _targets(task, n, g, x=None):
    """Random targets, or with ``x`` targets a small network can learn from it."""
    if x is None:
        return random_targets(task, n, outputs=OUT[task], generator=g)
    if task == "multiclass":
        return (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    if task == "multilabel":
        return (x[:, :3] > 0).float()
    return x[:, :1] - x[:, 1:2]


def _batch(task="multiclass", n=32):
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(n, 4, generator=g), "y": _targets(task, n, g), "index": torch.arange(n)}


@pytest.mark.parametrize(("name", "task"), CASES)
def test_contract(name, task):
    torch.manual_seed(0)
    model = _model(task).train()
    regime = FACTORIES[name](model, task)
    assert regime.task.name == task
    batch = _batch(task)
    loss = regime(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert model.training, "a regime leaves the model in train mode"
    assert all(isinstance(v, float) for v in regime.step_metrics.values())
    # determinism under a seed
    values = []
    for _ in range(2):
        torch.manual_seed(5)
        m = _model(task).train()
        values.append(FACTORIES[name](m, task)(m, batch).item())
    assert values[0] == values[1]
    # state survives a weights-only checkpoint round trip
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    assert name in repr(regime)


@pytest.mark.parametrize(("name", "task"), CASES)
def test_runs_through_the_engine(name, task):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    loader = DataLoader(ArrayDataset(x, _targets(task, 96, g, x)), batch_size=32, shuffle=True)
    model = _model(task)
    res = fit(model, FACTORIES[name](model, task), loader, val_loader=loader, epochs=3, progress=False)
    assert len(res.history) == 3 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in res.history)
    assert torch.isfinite(torch.tensor(res.history[-1]["val_loss"]))


def test_eps_ramp_schedule():
    s = EpsRamp(warmup_epochs=2, ramp_epochs=2)
    assert s.factor(0, 5, 10, 10) == 0.0 and s.factor(1, 9, 10, 10) == 0.0
    assert s.factor(2, 0, 10, 10) == pytest.approx(0.05)
    assert s.factor(3, 0, 10, 10) == pytest.approx(0.55)
    assert s.factor(3, 9, 10, 10) == 1.0 and s.factor(7, 0, 10, 10) == 1.0
    assert EpsRamp().resolved_ramp_epochs(10) == 3
    assert EpsRamp().resolved_ramp_epochs(1) == 0
    assert EpsRamp(ramp_epochs=0).factor(0, 0, 10, 10) == 1.0
    with pytest.raises(ValueError, match="ramp_epochs"):
        EpsRamp(ramp_epochs=-1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        EpsRamp(warmup_epochs=-1)


class _SpyAttack:
    """Records the eps in force and the samples it is given; perturbs by +100 so they can be recognised."""

    def __init__(self, eps):
        self.eps, self.alpha, self.seen, self.model = eps, None, [], None

    def __call__(self, x, y):
        self.seen.append((self.eps, len(x)))
        return x + 100.0


class _Recording(nn.Module):
    """A linear model that keeps a copy of every input it is called on (``seen``)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.net = nn.Linear(n_in, n_out)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.net(x)


def test_adversarial_fraction_and_schedule_through_fit():
    spy = _SpyAttack(0.3)
    regime = AdversarialTraining(spy, fraction=0.5, schedule=EpsRamp(warmup_epochs=1, ramp_epochs=1))
    probe = _Recording(4, 3)
    seen_inputs = probe.seen
    loader = DataLoader(ArrayDataset(torch.randn(64, 4), torch.randint(0, 3, (64,))), batch_size=16)
    res = fit(probe, regime, loader, epochs=3, progress=False)
    assert [round(r["train_eps"], 4) for r in res.history][0] == 0.0  # clean warm-up epoch
    ramp = [eps for eps, _ in spy.seen[:4]]
    assert ramp == pytest.approx([0.075, 0.15, 0.225, 0.3])  # linear per step over one epoch of 4 steps
    assert all(eps == pytest.approx(0.3) for eps, _ in spy.seen[4:])
    assert all(n == 8 for _, n in spy.seen), "half of each batch of 16 is made adversarial"
    last = seen_inputs[-1]
    assert (last[:8] > 50).all() and (last[8:] < 50).all(), "adversarial half first, clean half after"
    assert res.history[0]["train_adv_fraction"] == 0.0 and res.history[2]["train_adv_fraction"] == 0.5
    assert spy.eps == pytest.approx(0.3), "the attack gets its full budget back after fit"


def test_gaussian_noise_respects_bounds_and_fraction():
    seen = []

    def model(x):
        seen.append(x)
        return torch.zeros(len(x), 2, requires_grad=True)

    batch = {"x": torch.full((10, 3), 0.5), "y": torch.zeros(10, dtype=torch.long)}
    GaussianNoise(5.0, fraction=0.3, bounds=(0.0, 1.0))(model, batch)
    x = seen[0]
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert not torch.equal(x[:3], batch["x"][:3]) and torch.equal(x[3:], batch["x"][3:])


# -- catastrophic overfitting ----------------------------------------------------------------------------------
def _threshold_model(threshold):
    """A 1-D classifier with a steep logistic boundary at ``threshold``: class 1 iff x > threshold."""
    m = nn.Linear(1, 2)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[-20.0], [20.0]]))
        m.bias.copy_(torch.tensor([20.0 * threshold, -20.0 * threshold]))
    return m


def _pm_one_loader():
    x = torch.tensor([[-1.0], [1.0]]).repeat(32, 1)
    y = torch.tensor([0, 1]).repeat(32)
    return DataLoader(ArrayDataset(x, y), batch_size=64)


def test_guard_detects_a_drop_restores_and_stops():
    regime = FastAdversarialTraining(0.3, max_drop=0.2, remedy="restore")
    model = _threshold_model(0.0)  # margin 1 > eps: robust accuracy 1.0
    state = FitState(epoch=0, epochs=5, val_loader=_pm_one_loader())
    regime.on_fit_start(model, state)
    assert regime.on_epoch_end(model, state)["pgd_check_acc"] == 1.0 and regime.stop_reason is None
    fragile = _threshold_model(0.9)  # still right on clean data, but x=1 is 0.1 from the boundary
    model.load_state_dict(fragile.state_dict())
    state.epoch = 1
    assert regime.on_epoch_end(model, state)["pgd_check_acc"] == 0.5
    assert regime.stop_reason and "catastrophic overfitting at epoch 2" in regime.stop_reason
    assert "fell from 1.000 (epoch 1) to 0.500" in regime.stop_reason
    assert torch.equal(model.bias, _threshold_model(0.0).bias), "weights of the best epoch are restored"


class _Masked(nn.Module):
    """Gradient masking in 1-D: the class-1 margin is flat (zero gradient) around x=1, and negative below 0.8.

    FGSM from x=1 sees a zero gradient and does not move; PGD from a random start below 0.95 walks down to 0.7,
    where the sample is misclassified: FGSM accuracy 1.0, PGD accuracy about 0.58.
    """

    def forward(self, x):
        m = 20 * (x - 0.8) - 20 * torch.clamp(x - 0.95, 0.0, 0.1)
        return torch.cat([-m / 2, m / 2], dim=1)


def test_guard_detects_the_fgsm_pgd_gap_in_the_first_epoch():
    loader = DataLoader(ArrayDataset(torch.ones(64, 1), torch.ones(64, dtype=torch.long)), batch_size=64)
    regime = FastAdversarialTraining(0.3, remedy="restore")
    state = FitState(epoch=0, epochs=5, val_loader=loader)
    metrics = regime.on_epoch_end(_Masked(), state)
    assert metrics["fgsm_check_acc"] == 1.0 and 0.3 < metrics["pgd_check_acc"] < 0.8
    assert "catastrophic overfitting at epoch 1: FGSM accuracy" in regime.stop_reason
    assert "no earlier healthy epoch" in regime.stop_reason


def test_guard_warn_remedy_keeps_training():
    regime = FastAdversarialTraining(0.3, remedy="warn")
    model = _threshold_model(0.0)
    state = FitState(epoch=0, epochs=5, val_loader=_pm_one_loader())
    regime.on_epoch_end(model, state)
    model.load_state_dict(_threshold_model(0.9).state_dict())
    state.epoch = 1
    with pytest.warns(RuntimeWarning, match="catastrophic overfitting"):
        regime.on_epoch_end(model, state)
    assert regime.stop_reason is None


class _Sabotaged(FastAdversarialTraining):
    """Replaces the weights by a fragile classifier at the start of epoch 3, as a collapse would."""

    def on_epoch_start(self, model, state):
        super().on_epoch_start(model, state)
        if state.epoch == 2:
            model.load_state_dict(_threshold_model(0.9).state_dict())

    def __call__(self, model, batch):
        return super().__call__(model, batch) * 0.0  # keep the weights where they are


def test_restore_remedy_stops_fit_and_state_is_checkpointed(tmp_path):
    from robustlab.common.checkpoint import load_checkpoint

    model = _threshold_model(0.0)
    res = fit(model, _Sabotaged(0.3, remedy="restore"), _pm_one_loader(), val_loader=_pm_one_loader(), epochs=6,
              out_dir=tmp_path, progress=False)
    assert len(res.history) == 3 and "catastrophic overfitting" in res.stop_reason
    assert [r["pgd_check_acc"] for r in res.history] == [1.0, 1.0, 0.5]
    assert res.history[-1]["val_accuracy"] == 1.0
    assert torch.equal(model.bias, _threshold_model(0.0).bias)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["regime"]["guard"]["detected_epoch"] == 2 and ckpt["stop_reason"] == res.stop_reason


def test_fallback_remedy_rolls_back_and_switches_to_pgd(tmp_path):
    model = _threshold_model(0.0)
    regime = _Sabotaged(0.3, fallback_steps=4)
    with pytest.warns(RuntimeWarning, match="training goes on with PGD-4"):
        res = fit(model, regime, _pm_one_loader(), val_loader=_pm_one_loader(), epochs=5, out_dir=tmp_path,
                  progress=False)
    assert len(res.history) == 5 and res.stop_reason is None
    assert type(regime.attack) is PGD and regime.attack.steps == 4 and regime.attack.eps == pytest.approx(0.3)
    assert regime.fell_back_epoch == 2
    assert torch.equal(model.bias, _threshold_model(0.0).bias), "weights rolled back to the healthy epoch"
    # a resumed run goes on with the fallback attack
    resumed = FastAdversarialTraining(0.3, fallback_steps=4)
    from robustlab.common.checkpoint import load_checkpoint

    resumed.load_state_dict(load_checkpoint(tmp_path / "last.pt")["regime"])
    resumed.on_fit_start(model, FitState(epochs=5))
    assert type(resumed.attack) is PGD and resumed.attack.steps == 4


def test_bad_remedy():
    with pytest.raises(ValueError, match="remedy"):
        FastAdversarialTraining(0.3, remedy="pray")


@pytest.mark.parametrize("with_val", [True, False])
def test_fast_adversarial_training_resumes_bit_identically(tmp_path, with_val):
    # the guard draws its check batch again after a resume: that must not move the training's random state
    def run(epochs, out, resume=False):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(96, 4, generator=g)
        data = ArrayDataset(x, _targets("multiclass", 96, g, x))
        loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(1))
        val = DataLoader(data, batch_size=32, shuffle=True) if with_val else None
        model = _model()
        fit(model, regimes.FastAdversarialTraining(0.1, check_size=32), loader, val_loader=val, epochs=epochs,
            out_dir=out, resume=resume, progress=False)
        return model

    full = run(4, tmp_path / "full")
    run(2, tmp_path / "part")
    resumed = run(4, tmp_path / "part", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_append_mode_doubles_the_batch_and_keeps_every_clean_sample():
    """mode="append" with fraction 1: the clean batch followed by its adversarial copy (Koo et al.'s code); the
    default replace mode keeps the batch size."""
    model = _Recording(3, 2)
    seen = model.seen
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    attack = PGD(model, eps=0.1, steps=2, random_start=False)
    regime = AdversarialTraining(attack, fraction=1.0, mode="append", schedule=EpsRamp(ramp_epochs=0))
    seen.clear()
    regime(model, {"x": x, "y": y})
    trained_on = seen[-1]
    assert trained_on.shape == (12, 3) and torch.equal(trained_on[:6], x)
    assert torch.allclose(trained_on[6:], attack(x, y)) and not torch.equal(trained_on[6:], x)
    assert regime.step_metrics["adv_fraction"] == pytest.approx(0.5)
    replace = AdversarialTraining(attack, fraction=0.5, schedule=EpsRamp(ramp_epochs=0))
    replace(model, {"x": x, "y": y})
    assert seen[-1].shape == (6, 3) and torch.equal(seen[-1][3:], x[3:])
    with pytest.raises(ValueError, match="mode"):
        AdversarialTraining(attack, mode="mix")


def test_the_eps_ramp_scales_a_step_size_schedule_step_by_step():
    from robustlab.common.attacks import harmonic_steps

    attack = PGD(nn.Linear(3, 2), eps=0.2, alpha=harmonic_steps(4), steps=4, random_start=False)
    regime = AdversarialTraining(attack, schedule=EpsRamp(ramp_epochs=0))
    regime._set_factor(0.5)
    assert attack.eps == pytest.approx(0.1) and attack.alpha == pytest.approx(tuple(a / 2 for a in harmonic_steps(4)))
    regime._set_factor(1.0)
    assert attack.alpha == pytest.approx(harmonic_steps(4))
