"""Layer sustainability analysis (robustlab.common.analysis.layers) and the ATLR regime
(robustlab.common.regimes.atlr)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.analysis.layers import (
    LayerErrors,
    default_layers,
    layer_sustainability,
    plot_layer_errors,
    relative_error,
    vulnerable_layers,
)
from robustlab.common.attacks import PGD
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.regimes.atlr import ATLR
from robustlab.common.regimes.schedules import EpsRamp
from robustlab.common.tasks import get_task
from robustlab.common.testing import random_targets


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 5), nn.ELU(), nn.Linear(5, 2))


def _hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


class _Shift:
    """A deterministic 'attack': x + delta (with the eps/alpha attributes AdversarialTraining's schedule scales)."""

    def __init__(self, delta, eps=0.5):
        self.delta, self.eps, self.alpha = delta, eps, None

    def __call__(self, x, y):
        return x + self.delta


# -- relative error ---------------------------------------------------------------------------------------------


def test_relative_error_against_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    c, p = torch.randn(4, 2, 3, generator=g), torch.randn(4, 2, 3, generator=g)
    cn, pn = c.numpy().astype(np.float64), p.numpy().astype(np.float64)
    whole = np.sqrt(((cn - pn) ** 2).sum()) / np.sqrt((cn ** 2).sum())
    assert float(relative_error(c, p)) == pytest.approx(whole, rel=1e-5)
    rows = [np.linalg.norm(cn[i] - pn[i]) / np.linalg.norm(cn[i]) for i in range(4)]
    assert relative_error(c, p, per_sample=True).numpy() == pytest.approx(rows, rel=1e-5)
    # the authors' code: np.linalg.norm over the whole batch tensor (Frobenius of the flattened array)
    assert float(relative_error(c, p)) == pytest.approx(np.linalg.norm(cn - pn) / np.linalg.norm(cn), rel=1e-5)


def test_relative_error_zero_for_identical_inputs_even_all_zero():
    x = torch.randn(5, 4)
    assert float(relative_error(x, x.clone())) == 0.0
    z = torch.zeros(3, 2)
    assert relative_error(z, z, per_sample=True).tolist() == [0.0, 0.0, 0.0]


def test_relative_error_refuses_other_shapes():
    with pytest.raises(ConfigError, match=r"shape.*\(2, 3\) vs \(3, 2\)"):
        relative_error(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="two tensors"):
        relative_error((torch.zeros(2),), torch.zeros(2))


# -- layer_sustainability -----------------------------------------------------------------------------------------


def test_default_layers_are_the_activation_modules():
    assert default_layers(_net()) == ["1", "3"]
    with pytest.raises(ConfigError, match="no activation module"):
        default_layers(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))


def test_layer_sustainability_matches_a_hand_computation():
    model = _net()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g)
    def shift(a, b):  # a perturbation of each sample alone, so that batching does not matter
        return a + 0.3 * torch.sin(3 * a)

    res = layer_sustainability(model, (x, y), shift, batch_size=4)  # three batches: 4, 4, 2
    delta = shift(x, y) - x
    assert res.layers == ("1", "3") and res.per_sample.shape == (10, 2)
    with torch.no_grad():
        h1c, h1a = model[:2](x), model[:2](x + delta)
        h3c, h3a = model[:4](x), model[:4](x + delta)
    for j, (c, a) in enumerate([(h1c, h1a), (h3c, h3a)]):
        c, a = c.double().numpy(), a.double().numpy()
        assert res.errors[j] == pytest.approx(np.linalg.norm(c - a) / np.linalg.norm(c), rel=1e-5)
        per = np.linalg.norm(c - a, axis=1) / np.linalg.norm(c, axis=1)
        assert res.per_sample[:, j] == pytest.approx(per, rel=1e-4)
    assert res.mean == pytest.approx(res.per_sample.mean(0))
    assert res.as_dict()["layers"] == ["1", "3"] and len(res.as_dict()["errors"]) == 2
    assert _hooks(model) == 0


def test_layer_sustainability_is_zero_without_perturbation_and_reads_loaders():
    model = _net().train()
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    loader = DataLoader(ArrayDataset(x, y), batch_size=5)
    res = layer_sustainability(model, loader, lambda a, b: a.clone(), layers=["0", "4"])
    assert res.layers == ("0", "4") and np.all(res.errors == 0) and np.all(res.per_sample == 0)
    assert model.training, "the model's mode is restored"


def test_layer_sustainability_under_pgd_grows_with_eps_and_leaves_the_model_as_it_was():
    model = _net()
    x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
    before = [p.detach().clone() for p in model.parameters()]
    small = layer_sustainability(model, (x, y), PGD(model, eps=0.05, steps=5, random_start=False))
    large = layer_sustainability(model, (x, y), PGD(model, eps=0.5, steps=5, random_start=False))
    assert np.all(large.errors > small.errors) and np.all(small.errors > 0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert _hooks(model) == 0 and all(p.requires_grad for p in model.parameters())


def test_layer_sustainability_validates_layers_and_removes_hooks_after_an_error():
    model = _net()
    data = (torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ConfigError, match=r"no submodule '7'"):
        layer_sustainability(model, data, lambda a, b: a, layers=["1", "7"])
    with pytest.raises(ConfigError, match="at least one layer"):
        layer_sustainability(model, data, lambda a, b: a, layers=[])

    def broken(a, b):
        raise RuntimeError("attack failed")

    with pytest.raises(RuntimeError, match="attack failed"):
        layer_sustainability(model, data, broken)
    assert _hooks(model) == 0
    with pytest.raises(ConfigError, match="4 samples and y 3"):
        layer_sustainability(model, (torch.randn(4, 3), torch.zeros(3)), lambda a, b: a)


# -- vulnerable layers --------------------------------------------------------------------------------------------


def test_vulnerable_layers_by_the_papers_rule():
    per = np.array([[0.1, 0.2, 0.9], [0.1, 0.2, 0.7], [0.1, 0.2, 0.8]])  # three samples, three layers
    errs = LayerErrors(layers=("a", "b", "c"), errors=per.mean(0), per_sample=per)
    mu, sigma = per.mean(), per.std()  # over every sample and layer (Eq. 12)
    assert (0.8 - mu) > 1.0 * sigma and (0.2 - mu) < 0
    assert vulnerable_layers(errs, eta=1.0) == ["c"]
    assert vulnerable_layers(errs, eta=-1.5) == ["a", "b", "c"]  # in the model's order
    assert vulnerable_layers(errs, eta=5.0) == []
    assert vulnerable_layers(errs, eta=5.0, at_least=2) == ["b", "c"]  # the highest two, in the model's order
    # one number per layer: mu and sigma over the layers
    vals = {"l0": 0.94, "l1": 0.92, "l2": 0.81, "l3": 0.61}
    v = np.array(list(vals.values()))
    expected = [k for k, e in vals.items() if e - v.mean() > 0.5 * v.std()]
    assert vulnerable_layers(vals, eta=0.5) == expected == ["l0", "l1"]


@pytest.mark.parametrize("kwargs, match", [({"eta": float("nan")}, "eta"), ({"at_least": 4}, "at_least"),
                                           ({"at_least": -1}, "at_least")])
def test_vulnerable_layers_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        vulnerable_layers({"a": 0.1, "b": 0.2, "c": 0.3}, **kwargs)


def test_vulnerable_layers_refuses_nothing():
    with pytest.raises(ConfigError, match="at least one layer"):
        vulnerable_layers({})
    with pytest.raises(ConfigError, match="LayerErrors or a mapping"):
        vulnerable_layers([0.1, 0.2])


def test_plot_layer_errors_writes_a_png(tmp_path):
    model = _net()
    res = layer_sustainability(model, (torch.randn(8, 3), torch.zeros(8, dtype=torch.long)), lambda a, b: a + 0.1)
    path = tmp_path / "lsa.png"
    plot_layer_errors({"model": res, "other": [0.1, 0.2]}, path)
    assert path.stat().st_size > 1000


# -- ATLR ---------------------------------------------------------------------------------------------------------


def test_atlr_loss_is_adversarial_ce_plus_weighted_relative_errors():
    model = _net()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 3, generator=g), torch.randint(0, 2, (8,), generator=g)
    delta = 0.4 * torch.randn(8, 3, generator=g)
    regime = ATLR(_Shift(delta), layers=["1", "3"], weights=[0.7, 2.0])
    loss = regime(model, {"x": x, "y": y})
    with torch.no_grad():
        x_adv = x + delta
        ce = nn.functional.cross_entropy(model(x_adv), y)

        def re(k):
            with torch.no_grad():
                c, a = model[:k](x).double(), model[:k](x_adv).double()
            return float((c - a).norm() / c.norm())

        expected = float(ce) + 0.7 * re(2) + 2.0 * re(4)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert regime.step_metrics["layer_reg"] == pytest.approx(expected - float(ce), rel=1e-5)
    assert regime.step_metrics["rel_err/3"] == pytest.approx(re(4), rel=1e-5)
    # per-sample mode: the mean over the batch of the per-sample ratios
    regime = ATLR(_Shift(delta), layers=["1"], weights={"1": 0.5}, per_sample=True)
    with torch.no_grad():
        c, a = model[:2](x), model[:2](x + delta)
        per = ((c - a).norm(dim=1) / c.norm(dim=1).clamp_min(1e-12)).mean()
    assert regime(model, {"x": x, "y": y}).item() == pytest.approx(float(ce) + 0.5 * float(per), rel=1e-5)
    assert _hooks(model) == 0


def test_atlr_gradients_flow_through_both_passes():
    model = _net()
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    delta = torch.full_like(x, 0.3)

    def grads(weight):
        model.zero_grad()
        ATLR(_Shift(delta), layers=["1"], weights=weight)(model, {"x": x, "y": y}).backward()
        return [p.grad.clone() for p in model.parameters()]

    plain, reg = grads(0.0), grads(5.0)
    assert all(torch.isfinite(g).all() for g in reg)
    assert not torch.allclose(plain[0], reg[0]), "the regularizer reaches the first layer"
    assert torch.allclose(plain[-1], reg[-1]), "a layer after the regularized one gets only the CE gradient"
    # through the clean pass too: the regularizer's gradient differs from one with the clean features detached
    model.zero_grad()
    c = model[:2](x)
    a = model[:2](x + delta)
    relative_error(c.detach(), a).backward()
    adv_only = model[0].weight.grad.clone()
    model.zero_grad()
    relative_error(model[:2](x), model[:2](x + delta)).backward()
    assert not torch.allclose(adv_only, model[0].weight.grad)
    model.zero_grad()
    ATLR(_Shift(delta), layers=["1"], weights=1.0)(model, {"x": x, "y": y}).backward()
    with_ce = model[0].weight.grad.clone()
    model.zero_grad()
    nn.functional.cross_entropy(model(x + delta), y).backward()
    ce_only = model[0].weight.grad.clone()
    model.zero_grad()
    relative_error(model[:2](x), model[:2](x + delta)).backward()
    assert torch.allclose(with_ce, ce_only + model[0].weight.grad, atol=1e-6)


def test_atlr_default_layers_weights_and_validation():
    model = _net()
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    regime = ATLR(_Shift(0.2), weights=1.0)  # every activation module
    regime(model, {"x": x, "y": y})
    assert {k for k in regime.step_metrics if k.startswith("rel_err/")} == {"rel_err/1", "rel_err/3"}
    with pytest.raises(ConfigError, match="no submodule '9'"):
        ATLR(_Shift(0.2), layers=["9"])(model, {"x": x, "y": y})
    assert _hooks(model) == 0, "hooks are removed after an error too"
    for kwargs, match in [({"weights": -1.0}, ">= 0"), ({"weights": [1.0, 2.0], "layers": ["1"]}, "same length"),
                          ({"weights": [1.0]}, "same length"), ({"layers": []}, "non-empty"),
                          ({"weights": {"5": 1.0}, "layers": ["1"]}, "not in layers")]:
        with pytest.raises(ConfigError, match=match):
            ATLR(_Shift(0.2), **kwargs)


def test_atlr_warmup_is_clean_without_regularizer_and_full_budget_after_fit():
    model = _net()
    x = torch.randn(32, 3)
    loader = DataLoader(ArrayDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    attack = PGD(model, eps=0.2, steps=2)
    res = fit(model, ATLR(attack, layers=["3"], schedule=EpsRamp(warmup_epochs=1, ramp_epochs=0)), loader, epochs=2,
              progress=False)
    assert res.history[0]["train_layer_reg"] == 0.0 and res.history[0]["train_adv_fraction"] == 0.0
    assert res.history[1]["train_layer_reg"] > 0.0 and res.history[1]["train_eps"] == pytest.approx(0.2)
    assert attack.eps == pytest.approx(0.2) and _hooks(model) == 0


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_atlr_on_the_regime_contract_model(task):
    """The contract of tests/common/test_regimes.py on its model (Linear, BatchNorm, ReLU, Linear)."""
    out = {"multiclass": 3, "multilabel": 3, "regression": 1}[task]

    def make():
        return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, out)).train()

    def regime_for(m):
        return ATLR(PGD(m, eps=0.1, steps=3, loss=get_task(task).attack_loss), layers=["2"], weights=0.5, task=task)

    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(32, 4, generator=g), "y": random_targets(task, 32, outputs=out, generator=g)}
    torch.manual_seed(0)
    model = make()
    regime = regime_for(model)
    loss = regime(model, batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and model.training
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert regime.step_metrics["layer_reg"] > 0
    values = []
    for _ in range(2):
        torch.manual_seed(5)
        m = make()
        values.append(regime_for(m)(m, batch).item())
    assert values[0] == values[1]
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    assert "ATLR" in repr(regime) and "Khalooei" in ATLR.citation


def test_atlr_refuses_unknown_weights_keys_with_close_names():
    model = _net()
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    regime = ATLR(PGD(model, eps=0.1, steps=2), weights={"typo": 1.0, "3": 1.0})
    with pytest.raises(ConfigError, match=r"\['typo'\]"):
        regime(model, {"x": x, "y": y})
    with pytest.raises(ConfigError, match=r"'11': close names 1"):
        ATLR(_Shift(0.2), weights={"11": 1.0})(model, {"x": x, "y": y})
    assert _hooks(model) == 0
    regime = ATLR(_Shift(0.2), weights={"3": 1.0})  # a known key: only that layer
    regime(model, {"x": x, "y": y})
    assert {k for k in regime.step_metrics if k.startswith("rel_err/")} == {"rel_err/3"}


class _Reused(nn.Module):
    """One nn.ReLU applied after each of two linear layers."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.out = nn.Linear(3, 6), nn.Linear(6, 5), nn.Linear(5, 2)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.out(self.relu(self.fc2(self.relu(self.fc1(x)))))


def test_a_reused_activation_is_one_layer_per_call_site():
    model = _Reused()
    x, y = torch.randn(10, 3), torch.randint(0, 2, (10,))

    def shift(a, b):
        return a + 0.3

    res = layer_sustainability(model, (x, y), shift, batch_size=4)
    assert res.layers == ("relu#0", "relu#1") and res.per_sample.shape == (10, 2)
    with torch.no_grad():
        h = [model.relu(model.fc1(v)) for v in (x, x + 0.3)]
        g = [model.relu(model.fc2(v)) for v in h]
    for j, (c, a) in enumerate([h, g]):
        assert res.errors[j] == pytest.approx(float((c - a).norm() / c.norm()), rel=1e-5)
    assert layer_sustainability(model, (x, y), shift, layers=["relu#1"]).layers == ("relu#1",)
    with pytest.raises(ConfigError, match="did not run"):
        layer_sustainability(model, (x, y), shift, layers=["relu#2"])
    regime = ATLR(_Shift(0.3), weights={"relu#1": 2.0})
    loss = regime(model, {"x": x, "y": y})
    with torch.no_grad():
        ce = nn.functional.cross_entropy(model(x + 0.3), y)
    assert loss.item() == pytest.approx(float(ce) + 2.0 * res.errors[1], rel=1e-5)
    regime = ATLR(_Shift(0.3), weights=1.0)
    regime(model, {"x": x, "y": y})
    assert regime.step_metrics["layer_reg"] == pytest.approx(float(res.errors.sum()), rel=1e-5)
    assert {k for k in regime.step_metrics if k.startswith("rel_err/")} == {"rel_err/relu#0", "rel_err/relu#1"}
    assert _hooks(model) == 0


def test_layer_sustainability_keeps_a_submodule_held_in_eval_mode():
    model = _net().train()
    model[1].eval()  # deliberately frozen, as a frozen batch norm
    layer_sustainability(model, (torch.randn(4, 3), torch.zeros(4, dtype=torch.long)), lambda a, b: a + 0.1)
    assert model.training and model[0].training and not model[1].training
