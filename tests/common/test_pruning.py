"""Gradual magnitude pruning: the cubic schedule, the sparsity reached per layer, masks in the forward pass and in
the checkpoints, best.pt only at the final sparsity, restore-best then permanent pruning, resume after SIGKILL, the
three tasks."""

from __future__ import annotations

import io
import json
import textwrap

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit, load_best
from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP
from robustlab.common.regimes.base import FitState
from robustlab.common.regimes.pruning import GradualPruning
from robustlab.common.tasks import TASKS
from robustlab.common.testing import kill_mid_run, random_targets, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


class _ConvNet(nn.Module):
    """Conv2d, Conv1d and two Linear layers: every default target type."""

    def __init__(self):
        super().__init__()
        self.conv2 = nn.Conv2d(1, 4, 3)
        self.conv1 = nn.Conv1d(4, 4, 3)
        self.fc = nn.Linear(4 * 34, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):  # (N, 1, 8, 8)
        h = F.relu(self.conv2(x)).flatten(2)  # (N, 4, 36)
        h = F.relu(self.conv1(h)).flatten(1)  # (N, 136)
        return self.out(F.relu(self.fc(h)))


def _images(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return ArrayDataset(torch.randn(n, 1, 8, 8, generator=g) + y[:, None, None, None].float(), y)


def _blobs(n=96, seed=0, features=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    return ArrayDataset(torch.randn(n, features, generator=g) + y[:, None].float(), y)


class _Spy(GradualPruning):
    """Records every mask update and, at each epoch start, whether best.pt exists."""

    def __init__(self, *args, out=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.out, self.updates, self.seen = out, [], []

    def on_step_end(self, model, state):
        before = self._sparsity
        super().on_step_end(model, state)
        if self._sparsity != before:
            self.updates.append((state.global_step, self._sparsity, {k: v.clone() for k, v in self._masks.items()}))

    def on_epoch_start(self, model, state):
        if self.out is not None:
            self.seen.append((state.epoch, (self.out / "best.pt").exists(), self._sparsity))


def test_cubic_schedule_matches_the_formula():
    s_i, s_f, total, dt = 0.1, 0.8, 200, 7
    regime = GradualPruning(s_f, initial_sparsity=s_i, begin=0.1, end=0.7, frequency=dt)
    t0, t_end = 20, 140
    assert regime.window(total) == (t0, t_end)
    values = [regime.sparsity_at(t, total_steps=total) for t in range(total + 1)]
    for t, s in enumerate(values):
        if t < t0:
            expected = 0.0
        elif t >= t_end:
            expected = s_f
        else:
            tk = t0 + (t - t0) // dt * dt  # the last update step
            expected = s_f + (s_i - s_f) * (1 - (tk - t0) / (t_end - t0)) ** 3
        assert s == pytest.approx(expected, abs=1e-12), t
    assert values[t0] == s_i and values[t_end] == s_f
    assert all(a <= b for a, b in zip(values, values[1:])), "the schedule never decreases"
    assert values[t0 + 7] == pytest.approx(s_f + (s_i - s_f) * (1 - 7 / 120) ** 3)
    # the updates: every dt steps from t0, and the end step even when it is off the grid
    changes = [t for t in range(1, total + 1) if values[t] != values[t - 1]]
    assert changes == [*range(t0, t_end, dt), t_end]
    assert GradualPruning(0.5, begin=0.5, end=0.5).sparsity_at(100, total_steps=200) == 0.5


def test_final_sparsity_per_layer_masks_in_the_forward_pass_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = _ConvNet()
    regime = _Spy(0.7, initial_sparsity=0.05, begin=0.25, end=0.75, frequency=4, make_permanent=False)
    loader = DataLoader(_images(), batch_size=16, shuffle=True)  # 6 steps an epoch, 24 in all
    res = fit(model, regime, loader, epochs=4, out_dir=tmp_path, progress=False)
    names = ["conv2", "conv1", "fc", "out"]
    assert [n for n, _ in regime.targets(model)] == names
    # updates at t0 = 6, then every 4 steps, the last at 18 = 0.75 * 24
    assert [(t, round(s, 6)) for t, s, _ in regime.updates] == [
        (t, round(regime.sparsity_at(t, total_steps=24), 6)) for t in (6, 10, 14, 18)]
    assert regime.updates[-1][1] == 0.7
    for (_, _, earlier), (_, _, later) in zip(regime.updates, regime.updates[1:]):
        for k in earlier:
            assert not (later[k] & ~earlier[k]).any(), "a pruned weight stays pruned"
    for name in names:
        m = getattr(model, name)
        assert hasattr(m, "weight_orig") and hasattr(m, "weight_mask")
        assert int((m.weight_mask == 0).sum()) == round(0.7 * m.weight_mask.numel())  # within one weight
        assert torch.equal(regime.state_dict()["masks"][name], m.weight_mask.bool())
    assert regime.layer_sparsity(model) == pytest.approx(
        {n: round(0.7 * getattr(model, n).weight.numel()) / getattr(model, n).weight.numel() for n in names})
    assert [r["sparsity_target"] for r in res.history] == [0.05, regime.sparsity_at(12, total_steps=24), 0.7, 0.7]
    assert res.history[-1]["sparsity"] == pytest.approx(sum(round(0.7 * getattr(model, n).weight.numel())
                                                            for n in names) / (36 + 48 + 2176 + 48))

    # the forward pass uses weight_orig * weight_mask: pruned weights are zero and get no gradient
    x, y = _images(8, seed=3).x, _images(8, seed=3).y
    masked = {n: getattr(model, n).weight_orig * getattr(model, n).weight_mask for n in names}
    h = F.relu(F.conv2d(x, masked["conv2"], model.conv2.bias)).flatten(2)
    h = F.relu(F.conv1d(h, masked["conv1"], model.conv1.bias)).flatten(1)
    manual = F.linear(F.relu(F.linear(h, masked["fc"], model.fc.bias)), masked["out"], model.out.bias)
    out = model(x)
    torch.testing.assert_close(out, manual, rtol=0, atol=0)
    F.cross_entropy(out, y).backward()
    for n in names:
        m = getattr(model, n)
        assert torch.equal(m.weight[m.weight_mask == 0], torch.zeros(int((m.weight_mask == 0).sum())))
        assert (m.weight_orig.grad[m.weight_mask == 0] == 0).all()
        assert m.weight_orig.grad[m.weight_mask == 1].abs().sum() > 0

    # checkpoints hold the re-parametrized weights and the regime's masks
    last = load_checkpoint(tmp_path / "last.pt")
    assert {"conv2.weight_orig", "conv2.weight_mask", "out.weight_mask"} <= set(last["model"])
    assert "conv2.weight" not in last["model"]
    assert torch.equal(last["regime"]["masks"]["fc"], model.fc.weight_mask.bool())
    assert last["regime"]["sparsity"] == 0.7

    # made permanent: plain weights, the same outputs, the same zeros
    regime.remove(model)
    assert not hasattr(model.fc, "weight_orig") and isinstance(model.fc.weight, nn.Parameter)
    torch.testing.assert_close(model(x), out.detach(), rtol=0, atol=0)
    for n in names:
        w = getattr(model, n).weight
        assert int((w == 0).sum()) == round(0.7 * w.numel())


def test_best_is_only_written_at_the_final_sparsity_then_restored_and_made_permanent(tmp_path):
    torch.manual_seed(0)
    model = MLP(4, 3, hidden=(32, 32))
    regime = _Spy(0.8, begin=0.0, end=0.5, frequency=3, out=tmp_path)
    loader = DataLoader(_blobs(), batch_size=16, shuffle=True)  # 6 steps an epoch: the end is step 18 of 36
    val = DataLoader(_blobs(64, seed=1), batch_size=64)
    res = fit(model, regime, loader, val_loader=val, epochs=6, out_dir=tmp_path, restore_best=True,
              progress=False)
    assert regime.seen[:4] == [(0, False, 0.0), (1, False, regime.sparsity_at(6, total_steps=36)),
                               (2, False, regime.sparsity_at(12, total_steps=36)), (3, True, 0.8)]
    assert res.best_epoch >= 3
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == res.best_epoch and best["regime"]["sparsity"] == 0.8
    # restore_best, then on_fit_end: the model holds best.pt's masked weights as plain weights
    for name in ("1", "3", "5"):
        w = model.get_submodule(name).weight
        assert not hasattr(model.get_submodule(name), "weight_orig")
        assert torch.equal(w, best["model"][f"{name}.weight_orig"] * best["model"][f"{name}.weight_mask"])
        assert torch.equal(best["regime"]["masks"][name], best["model"][f"{name}.weight_mask"].bool())
        assert int((w == 0).sum()) == round(0.8 * w.numel())
    # outside fit: setup (the re-parametrization), load_best, remove
    outside, reader = MLP(4, 3, hidden=(32, 32)), GradualPruning(0.8)
    reader.setup(outside, FitState())
    load_best(outside, tmp_path, regime=reader)
    assert reader.state_dict()["sparsity"] == 0.8
    reader.remove(outside)
    for k, v in model.state_dict().items():
        assert torch.equal(outside.state_dict()[k], v)
    # last.pt keeps the re-parametrized weights: a later resume works again, on a fresh model and on this one
    assert "1.weight_orig" in load_checkpoint(tmp_path / "last.pt")["model"]
    fresh = MLP(4, 3, hidden=(32, 32))
    again = GradualPruning(0.8, begin=0.0, end=0.5, frequency=3)
    res2 = fit(fresh, again, loader, val_loader=val, epochs=7, out_dir=tmp_path, resume=True, progress=False)
    assert len(res2.history) == 7 and res2.history[-1]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert again.layer_sparsity(fresh) == {n: round(0.8 * fresh.get_submodule(n).weight.numel())
                                           / fresh.get_submodule(n).weight.numel() for n in ("1", "3", "5")}
    fit(model, regime, loader, val_loader=val, epochs=7, out_dir=tmp_path, resume=True, progress=False)
    for name in ("1", "3", "5"):
        assert torch.equal(model.get_submodule(name).weight, fresh.get_submodule(name).weight)


def test_an_optimizer_built_before_fit_keeps_training_the_pruned_weights():
    torch.manual_seed(0)
    model = MLP(4, 3, hidden=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = model[1].weight
    before = first.detach().clone()
    regime = GradualPruning(0.5, begin=0.0, end=0.5, frequency=1)
    fit(model, regime, DataLoader(_blobs(), batch_size=16), optimizer=opt, epochs=2, progress=False)
    assert model[1].weight is first, "prune re-registers the same Parameter as weight_orig and back"
    assert opt.param_groups[0]["params"][0] is first
    kept = first != 0
    assert not torch.equal(first[kept], before[kept]), "the kept weights trained"
    assert regime.layer_sparsity(model) == {"1": 0.5, "3": 0.5}


def test_layers_by_name_and_exclude_last():
    model = _ConvNet()
    assert [n for n, _ in GradualPruning(exclude_last=True).targets(model)] == ["conv2", "conv1", "fc"]
    regime = GradualPruning(0.5, layers=["fc"], begin=0.0, end=0.0)
    regime.setup(model, FitState())
    regime.on_fit_start(model, FitState(epochs=1, steps_per_epoch=4))
    assert regime.layer_sparsity(model) == {"fc": 0.5}
    assert not hasattr(model.conv2, "weight_orig") and int((model.conv2.weight == 0).sum()) == 0
    with pytest.raises(ConfigError, match="no submodules"):
        GradualPruning(layers=["nope"]).targets(model)
    with pytest.raises(ConfigError, match="no weight"):
        GradualPruning(layers=[""]).targets(model)
    attention = nn.Sequential(nn.MultiheadAttention(4, 2), nn.Linear(4, 2))
    assert [n for n, _ in GradualPruning().targets(attention)] == ["1"]


@pytest.mark.parametrize("bad", [dict(final_sparsity=1.0), dict(final_sparsity=0.5, initial_sparsity=0.6),
                                 dict(begin=0.6, end=0.5), dict(end=1.5), dict(frequency=0)])
def test_config_errors(bad):
    with pytest.raises(ConfigError):
        GradualPruning(**bad)


@pytest.mark.parametrize("task", TASKS)
def test_contract_over_tasks(task):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=g), random_targets(task, 48, generator=g)
    model = MLP(4, 3, hidden=(16,)).train()
    regime = GradualPruning(0.5, begin=0.0, end=0.5, frequency=1, task=task)
    regime.setup(model, FitState())
    loss = regime(model, {"x": x[:16], "y": y[:16]})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [m.weight_orig.grad for _, m in regime.targets(model)]
    assert all(gr is not None and torch.isfinite(gr).all() and gr.abs().sum() > 0 for gr in grads)
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    assert "GradualPruning" in repr(regime)
    model.zero_grad()
    res = fit(model, regime, DataLoader(ArrayDataset(x, y), batch_size=16), epochs=2, progress=False)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in res.history)
    assert regime.layer_sparsity(model) == {"1": 0.5, "3": 0.5}


# -- resume after a real SIGKILL ------------------------------------------------------------------------------
_RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, load_best
    from robustlab.common.models import MLP
    from robustlab.common.regimes.pruning import GradualPruning

    class Slow(GradualPruning):
        def __call__(self, model, batch):
            time.sleep(float(sys.argv[2]))
            return super().__call__(model, batch)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (240,), generator=g)
    x = torch.randn(240, 5, generator=g) + y[:, None]
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)   # 15 steps an epoch, 90 in all
    val = DataLoader(ArrayDataset(x[:64], y[:64]), batch_size=64)
    model = MLP(5, 3, hidden=(32, 32), dropout=0.2)
    regime = Slow(0.9, initial_sparsity=0.1, begin=0.1, end=0.7, frequency=5)   # updates at steps 9 to 63
    fit(model, regime, loader, val_loader=val, epochs=6, out_dir=sys.argv[1], resume=True, progress=False)
    torch.save(model.state_dict(), sys.argv[1] + "/final.pt")
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_RESUME_SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_script(script, full, "0")
    kill_mid_run(script, killed, "0.02", epochs=5)  # before the masks stop changing
    done = load_checkpoint(killed / "last.pt")
    assert 0.1 <= done["regime"]["sparsity"] < 0.9 and "1.weight_mask" in done["model"]
    run_script(script, killed, "0")
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and "1.weight" in a  # made permanent at the end
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    for k in ("1.weight", "4.weight", "7.weight"):  # the Linear layers (ReLU and Dropout between them)
        assert int((a[k] == 0).sum()) == round(0.9 * a[k].numel())
    rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (full, killed)]
    keys = ("train_loss", "sparsity", "sparsity_target", "val_loss")
    assert [[r[k] for k in keys] for r in rows[0]] == [[r[k] for k in keys] for r in rows[1]]
    best = [load_checkpoint(d / "best.pt") for d in (full, killed)]
    assert best[0]["epoch"] == best[1]["epoch"] >= 5 and best[0]["regime"]["sparsity"] == 0.9


# -- an inner regime supplies the loss ------------------------------------------------------------------------
def test_inner_regime_gives_the_loss_its_hooks_run_and_its_state_nests():
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import AdversarialTraining
    from robustlab.common.regimes.schedules import EpsRamp

    torch.manual_seed(0)
    model = MLP(4, 3, hidden=(16,))
    inner = AdversarialTraining(PGD(model, eps=0.2, steps=2), schedule=EpsRamp(warmup_epochs=1, ramp_epochs=1))
    regime = GradualPruning(0.5, begin=0.0, end=0.5, frequency=1, inner=inner)
    assert regime.task is inner.task and regime.loss is inner.loss
    res = fit(model, regime, DataLoader(_blobs(), batch_size=32), epochs=3, progress=False, device="cpu")
    # the inner schedule advanced (warm-up epoch clean, then eps ramped to full) while the masks reached 50 %
    assert [round(r["train_eps"], 3) for r in res.history] == [0.0, pytest.approx(0.1, abs=0.07), 0.2]
    assert res.history[-1]["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert inner.attack.eps == 0.2  # the inner regime's on_fit_end ran (full budget restored)
    state = regime.state_dict()
    assert set(state) == {"sparsity", "masks", "inner"}


def test_inner_regime_networks_are_registered_and_its_loss_is_used():
    from robustlab.common.regimes import KnowledgeDistillation

    torch.manual_seed(0)
    teacher, student = MLP(4, 3, hidden=(8,)), MLP(4, 3, hidden=(8,))
    inner = KnowledgeDistillation(teacher, alpha=0.7)
    regime = GradualPruning(0.5, inner=inner)
    assert regime.networks == {"teacher": teacher} and not regime.trainable_networks
    regime.setup(student, FitState())
    batch = {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}
    assert regime(student, batch).item() == pytest.approx(inner(student, batch).item())
    assert set(regime.step_metrics) == {"soft_loss", "hard_loss"}


def test_without_inner_the_behaviour_is_unchanged():
    torch.manual_seed(0)
    model = MLP(4, 3, hidden=(8,))
    batch = {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}
    assert GradualPruning(0.5)(model, batch).item() == pytest.approx(F.cross_entropy(model(batch["x"]),
                                                                                     batch["y"]).item())
    assert GradualPruning(0.5).task.name == "multiclass" and "inner" not in GradualPruning(0.5).state_dict()


def test_inner_regime_errors():
    from robustlab.common.regimes import ERM, CoTeaching

    with pytest.raises(ConfigError, match="loss comes from the inner"):
        GradualPruning(0.5, inner=ERM(), loss=F.mse_loss)
    with pytest.raises(ConfigError, match="differs"):
        GradualPruning(0.5, inner=ERM(task="regression"), task="multiclass")
    with pytest.raises(ConfigError, match="train_step"):
        GradualPruning(0.5, inner=CoTeaching(MLP(4, 3), forget_rate=0.2))
    with pytest.raises(ConfigError, match="must be a Regime"):
        GradualPruning(0.5, inner=lambda model, batch: 0.0)
    assert GradualPruning(0.5, inner=ERM(task="regression")).task.name == "regression"


def test_inner_mean_teacher_is_created_after_pruning_registered_masked_and_resumes(tmp_path):
    from robustlab.common.regimes import MeanTeacher

    regime = GradualPruning(0.5, inner=MeanTeacher(alpha=0.9))
    model = MLP(4, 3, hidden=(8,))
    regime.setup(model, FitState())
    regime.setup(model, FitState())  # idempotent (load_best runs it again)
    teacher = regime.inner.teacher
    assert regime.networks == {"teacher": teacher} and hasattr(teacher[1], "weight_mask")
    regime.inner.update_teacher(model)  # shaped like the re-parametrized student

    class _Crash(GradualPruning):
        def on_epoch_start(self, model, state):
            if state.epoch == 2:
                raise KeyboardInterrupt
            super().on_epoch_start(model, state)

    def run(out, resume=False, kind=GradualPruning):
        torch.manual_seed(0)
        m = MLP(4, 3, hidden=(8,))
        r = kind(0.5, begin=0.0, end=0.5, frequency=1, inner=MeanTeacher(alpha=0.9))
        res = fit(m, r, DataLoader(_blobs(), batch_size=32), epochs=4, out_dir=out, resume=resume,
                  progress=False, device="cpu")
        return m, r, res

    full, r_full, res = run(tmp_path / "full")
    assert res.history[-1]["sparsity"] == pytest.approx(0.5, abs=0.01)
    for net in (full, r_full.inner.teacher):  # both made permanent, pruned alike
        assert not hasattr(net[1], "weight_orig")
        assert torch.equal(net[1].weight == 0, full[1].weight == 0)
    assert "teacher" in load_checkpoint(tmp_path / "full" / "last.pt")["networks"]
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", kind=_Crash)
    cut, r_cut, _ = run(tmp_path / "cut", resume=True)
    for a, b in ((full, cut), (r_full.inner.teacher, r_cut.inner.teacher)):
        for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(v, w), k
