"""The engine's contract with regimes: owned networks, named optimizers, the step context, eval model, hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import evaluate, fit, load_best
from robustlab.common.errors import CheckpointError, ConfigError, NonFiniteLossError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.regimes.base import Regime


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None].float() * 2 - 1) * 1.5
    return ArrayDataset(x, y)


def _loader(n=128, batch=32, shuffle=True):
    return DataLoader(_data(n), batch_size=batch, shuffle=shuffle, generator=torch.Generator().manual_seed(3))


class _WithPeer(Regime):
    """ERM on the model plus ERM on a peer network the regime owns."""

    def __init__(self, peer):
        super().__init__()
        self.add_network("peer", peer, trainable=True)
        self.calls = 0

    def __call__(self, model, batch):
        return self.loss(model(batch["x"]), batch["y"]) + self.loss(self.network("peer")(batch["x"]), batch["y"])


def test_a_trainable_network_is_optimized_and_checkpointed(tmp_path):
    torch.manual_seed(0)
    model, peer = MLP(2, 2, hidden=(8,)), MLP(2, 2, hidden=(8,))
    before = {k: v.clone() for k, v in peer.state_dict().items()}
    loss_before = evaluate(peer, _loader(shuffle=False))["loss"]
    regime = _WithPeer(peer)
    res = fit(model, regime, _loader(), val_loader=_loader(shuffle=False), epochs=2, out_dir=tmp_path,
              progress=False)
    assert any(not torch.equal(before[k], v) for k, v in peer.state_dict().items()), "the peer must train"
    assert evaluate(peer, _loader(shuffle=False))["loss"] < loss_before - 0.01
    last = load_checkpoint(tmp_path / "last.pt")
    for k, v in peer.state_dict().items():
        assert torch.equal(last["networks"]["peer"][k], v)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == res.best_epoch and "peer" in best["networks"] and "regime" in best
    # resuming loads the peer too: a fresh peer ends with the saved weights
    fresh = MLP(2, 2, hidden=(8,))
    fit(MLP(2, 2, hidden=(8,)), _WithPeer(fresh), _loader(), epochs=2, out_dir=tmp_path, resume=True,
        progress=False)
    for k, v in peer.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_a_frozen_network_does_not_train():
    torch.manual_seed(0)
    teacher = MLP(2, 2, hidden=(8,))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}

    class Distil(Regime):
        def __init__(self):
            super().__init__()
            self.add_network("teacher", teacher, trainable=False)

        def __call__(self, model, batch):
            with torch.no_grad():
                t = self.network("teacher")(batch["x"])
            return ((model(batch["x"]) - t) ** 2).mean()

    fit(MLP(2, 2, hidden=(8,)), Distil(), _loader(), epochs=1, progress=False)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())


class _TwoOptimizers(Regime):
    """Two networks stepped by two optimizers with two backward passes per batch (the shape of a GAN step)."""

    def __init__(self, other, nan_at=None):
        super().__init__()
        self.add_network("other", other, trainable=True)
        self.nan_at, self.steps_seen = nan_at, []

    def configure_optimizers(self, model, optimizer):
        return {"model": optimizer or torch.optim.SGD(model.parameters(), lr=0.1),
                "other": torch.optim.SGD(self.networks["other"].parameters(), lr=0.05)}

    def train_step(self, step, model, batch):
        loss_a = self.loss(model(batch["x"]), batch["y"])
        value = step.backward(loss_a, what="model loss")
        step.step("model")
        step.zero_grad()
        loss_b = self.loss(self.network("other")(batch["x"]), batch["y"])
        if (step.state.epoch + 1, step.state.step + 1) == self.nan_at:
            loss_b = loss_b * float("nan")
        step.backward(loss_b, what="other network's loss")
        step.step("other")
        self.steps_seen.append(sorted(step.stepped))
        return value


def test_a_regime_with_two_optimizers_and_two_backwards(tmp_path):
    torch.manual_seed(0)
    other = MLP(2, 2, hidden=(8,))
    loss_before = evaluate(other, _loader(shuffle=False))["loss"]
    regime = _TwoOptimizers(other)
    fit(MLP(2, 2, hidden=(8,)), regime, _loader(), epochs=2, out_dir=tmp_path, progress=False)
    assert regime.steps_seen[0] == ["model", "other"] and len(regime.steps_seen) == 8
    assert evaluate(other, _loader(shuffle=False))["loss"] < loss_before - 0.05
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert set(ckpt["optimizers"]) == {"model", "other"}
    assert ckpt["optimizers"]["other"]["param_groups"][0]["lr"] == 0.05


def test_non_finite_second_loss_names_it_with_epoch_and_step(tmp_path):
    torch.manual_seed(0)
    other = MLP(2, 2, hidden=(8,))
    with pytest.raises(NonFiniteLossError, match=r"other network's loss is nan at epoch 2/3, step 2/4"):
        fit(MLP(2, 2), _TwoOptimizers(other, nan_at=(2, 2)), _loader(), epochs=3, out_dir=tmp_path,
            progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in other.parameters())


def test_grad_clip_applies_to_every_optimizer():
    torch.manual_seed(0)
    model, other = MLP(2, 2, hidden=(8,)), MLP(2, 2, hidden=(8,))
    m0 = [p.detach().clone() for p in model.parameters()]
    o0 = [p.detach().clone() for p in other.parameters()]
    loader = DataLoader(_data(32), batch_size=32)
    fit(model, _TwoOptimizers(other), loader, epochs=1, grad_clip=1e-3, progress=False)

    def moved(ps, qs):
        return torch.cat([(p.detach() - q).flatten() for p, q in zip(ps, qs)]).norm().item()

    # one SGD step: the parameter change is lr times the clipped gradient (norm 1e-3)
    assert moved(model.parameters(), m0) == pytest.approx(0.1 * 1e-3, rel=1e-3)
    assert moved(other.parameters(), o0) == pytest.approx(0.05 * 1e-3, rel=1e-3)


def test_scheduler_needs_the_model_optimizer():
    class NoModel(_TwoOptimizers):
        def configure_optimizers(self, model, optimizer):
            return {"other": torch.optim.SGD(self.networks["other"].parameters(), lr=0.1)}

    model = MLP(2, 2)
    sched = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(model.parameters(), lr=0.1), 1)
    with pytest.raises(ConfigError, match="optimizer 'model', which NoModel does not have"):
        fit(model, NoModel(MLP(2, 2)), _loader(), scheduler=sched, progress=False)


def test_named_schedulers_step_their_optimizers_and_resume(tmp_path):
    torch.manual_seed(0)
    model, other = MLP(2, 2), MLP(2, 2)
    regime = _TwoOptimizers(other)

    class Scheduled(_TwoOptimizers):
        def configure_schedulers(self, optimizers):
            return {"other": torch.optim.lr_scheduler.StepLR(optimizers["other"], step_size=1, gamma=0.5)}

    regime = Scheduled(other)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    res = fit(model, regime, _loader(), optimizer=opt, epochs=2, out_dir=tmp_path, progress=False,
              scheduler={"model": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)})
    assert [r["lr"] for r in res.history] == pytest.approx([0.1, 0.1 * 0.1])  # the lr each epoch trained with
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert set(ckpt["schedulers"]) == {"model", "other"}
    assert ckpt["optimizers"]["other"]["param_groups"][0]["lr"] == pytest.approx(0.05 * 0.25)
    # resume: the restored scheduler goes on from epoch 2
    model2, other2 = MLP(2, 2), MLP(2, 2)
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1)
    res2 = fit(model2, Scheduled(other2), _loader(), optimizer=opt2, epochs=3, out_dir=tmp_path, resume=True,
               progress=False, scheduler={"model": torch.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.1)})
    assert res2.history[-1]["lr"] == pytest.approx(0.1 * 0.1 ** 2)
    wrong = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(MLP(2, 2).parameters(), lr=0.1), 1)
    with pytest.raises(ConfigError, match="another optimizer"):
        fit(MLP(2, 2), ERM(), _loader(), scheduler=wrong, progress=False)


def test_a_given_optimizer_gets_a_companion_for_an_uncovered_network():
    torch.manual_seed(0)
    model, peer = MLP(2, 2, hidden=(8,)), MLP(2, 2, hidden=(8,))
    before = [p.detach().clone() for p in peer.parameters()]
    regime = _WithPeer(peer)
    fit(model, regime, _loader(), optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, peer.parameters())), "the peer must train"
    opts = regime.configure_optimizers(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert set(opts) == {"model", "peer"} and type(opts["peer"]) is torch.optim.SGD
    partial = torch.optim.SGD(list(model.parameters()) + [next(peer.parameters())], lr=0.1)
    with pytest.raises(ConfigError, match="covers 1 of the 4 parameters of the network 'peer'"):
        fit(model, _WithPeer(peer), _loader(), optimizer=partial, progress=False)

    class Forgetful(_WithPeer):
        def configure_optimizers(self, model, optimizer):
            return {"model": torch.optim.SGD(model.parameters(), lr=0.1)}

    with pytest.raises(ConfigError, match="network 'peer' of Forgetful has parameters in no optimizer"):
        fit(model, Forgetful(peer), _loader(), progress=False)


class _ValidatedByOther(_WithPeer):
    def eval_model(self, model):
        return self.networks["peer"]


def test_validation_uses_the_regimes_eval_model():
    torch.manual_seed(0)
    model, peer = MLP(2, 2, hidden=(8,)), MLP(2, 2, hidden=(8,))
    regime = _ValidatedByOther(peer)
    val = _loader(shuffle=False)
    res = fit(model, regime, _loader(), val_loader=val, epochs=2, progress=False)
    assert res.eval_model is peer
    assert res.history[-1]["val_loss"] == pytest.approx(evaluate(peer, val)["loss"], rel=1e-6)
    assert res.history[-1]["val_loss"] != pytest.approx(evaluate(model, val)["loss"], rel=1e-3)


class _Counting(Regime):
    """Counts hook calls; fails at a given global step when asked."""

    def __init__(self, fail_at=None):
        super().__init__()
        self.fail_at, self.calls = fail_at, []

    def setup(self, model, state):
        self.calls.append("setup")

    def on_fit_start(self, model, state):
        self.calls.append("start")

    def __call__(self, model, batch):
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise RuntimeError("boom")
        self.calls.append("step")
        return self.loss(model(batch["x"]), batch["y"])

    def on_fit_end(self, model, state):
        self.calls.append("end")


def test_on_fit_end_runs_after_an_error():
    regime = _Counting(fail_at=4)
    with pytest.raises(RuntimeError, match="boom"):
        fit(MLP(2, 2), regime, _loader(), epochs=2, progress=False)
    assert regime.calls[:2] == ["setup", "start"] and regime.calls[-1] == "end"
    ok = _Counting()
    fit(MLP(2, 2), ok, _loader(), epochs=1, progress=False)
    assert ok.calls[0] == "setup" and ok.calls[-1] == "end" and ok.calls.count("step") == 4


class _Reparametrize(Regime):
    """Changes the model's structure in setup (a scale parameter beside each Linear), as pruning does."""

    def setup(self, model, state):
        for m in model.modules():
            if isinstance(m, nn.Linear) and not hasattr(m, "scale"):
                m.register_parameter("scale", nn.Parameter(torch.ones(())))

    def __call__(self, model, batch):
        return self.loss(model(batch["x"]), batch["y"])


def test_setup_runs_before_weights_load_on_resume(tmp_path):
    torch.manual_seed(0)
    model = MLP(2, 2, hidden=(8,))
    fit(model, _Reparametrize(), _loader(), epochs=1, out_dir=tmp_path, progress=False)
    assert "1.scale" in load_checkpoint(tmp_path / "last.pt")["model"]
    fresh = MLP(2, 2, hidden=(8,))  # no scale parameters until setup adds them
    fit(fresh, _Reparametrize(), _loader(), epochs=2, out_dir=tmp_path, resume=True, progress=False)
    assert len(load_checkpoint(tmp_path / "last.pt")["history"]) == 2


class _Stateful(ERM):
    """Regime state that changes every epoch: restore_best must bring back the best epoch's value."""

    def __init__(self):
        super().__init__()
        self.counter = 0

    def on_epoch_end(self, model, state):
        self.counter += 1
        return {}

    def state_dict(self):
        return {"counter": self.counter}

    def load_state_dict(self, state):
        self.counter = state["counter"]


def test_best_state_includes_the_regime_and_is_restored(tmp_path):
    from robustlab.common.engine import EarlyStopping

    torch.manual_seed(0)
    flipped = _data(64, seed=1)
    flipped.y = 1 - flipped.y  # validation only gets worse: the best epoch is the first
    val = DataLoader(flipped, batch_size=64)
    for out in (tmp_path / "disk", None):
        regime = _Stateful()
        res = fit(MLP(2, 2, hidden=(8,)), regime, _loader(), val_loader=val, epochs=20, out_dir=out,
                  progress=False, early_stopping=EarlyStopping(patience=2))
        assert res.best_epoch < len(res.history)
        assert regime.counter == res.best_epoch, "the regime state of the best epoch is restored"
    reg = _Stateful()
    load_best(MLP(2, 2, hidden=(8,)), tmp_path / "disk", regime=reg)
    assert reg.counter == load_checkpoint(tmp_path / "disk" / "best.pt")["epoch"]


def test_load_best_sets_a_fresh_regime_up_before_loading(tmp_path):
    from robustlab.common.regimes import GradualPruning, MeanTeacher

    torch.manual_seed(0)
    model, regime = MLP(2, 2, hidden=(8,)), MeanTeacher(alpha=0.5)
    fit(model, regime, _loader(), val_loader=_loader(shuffle=False), epochs=2, out_dir=tmp_path / "mt",
        progress=False)
    saved = load_checkpoint(tmp_path / "mt" / "best.pt")["networks"]["teacher"]
    fresh = MeanTeacher(alpha=0.5)
    load_best(MLP(2, 2, hidden=(8,)), tmp_path / "mt", regime=fresh)
    for k, v in fresh.teacher.state_dict().items():
        assert torch.equal(v, saved[k]), "a fresh regime gets the saved teacher, not a copy of the student"
    with pytest.raises(CheckpointError, match="networks \\['teacher'\\]"):
        load_best(MLP(2, 2, hidden=(8,)), tmp_path / "mt", regime=ERM())
    pruned = MLP(2, 2, hidden=(8,))
    fit(pruned, GradualPruning(0.5, begin=0.0, end=0.5, frequency=1, make_permanent=False), _loader(),
        val_loader=_loader(shuffle=False), epochs=2, out_dir=tmp_path / "pr", progress=False)
    again = MLP(2, 2, hidden=(8,))
    load_best(again, tmp_path / "pr", regime=GradualPruning(0.5))
    x = torch.randn(5, 2)
    assert torch.equal(again(x), pruned(x))


def test_a_regime_may_keep_an_epoch_from_becoming_best(tmp_path):
    class NotBefore3(ERM):
        def best_eligible(self, state):
            return state.epoch >= 2

    res = fit(MLP(2, 2), NotBefore3(), _loader(), val_loader=_loader(shuffle=False), epochs=4, out_dir=tmp_path,
              progress=False)
    assert res.best_epoch >= 3
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] >= 3


def test_not_a_regime_is_a_clear_error():
    with pytest.raises(ConfigError, match="Regime"):
        fit(MLP(2, 2), lambda m, b: m(b["x"]).sum(), _loader(), progress=False)
