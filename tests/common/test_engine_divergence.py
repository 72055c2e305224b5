"""Divergence: a loss that grows by orders of magnitude or weights that stop being finite stop a run (or warn)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import DivergenceCheck, fit
from robustlab.common.errors import ConfigError, DivergenceError, NonFiniteLossError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.training import TrainConfig, train


def _blobs(n=256, seed=0, margin=1.5):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None].float() * 2 - 1) * margin
    return ArrayDataset(x, y)


def _loader(n=256, batch=32, seed=0, margin=1.5):
    return DataLoader(_blobs(n, seed, margin), batch_size=batch, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


pytestmark = pytest.mark.usefixtures("one_thread")


def _no_divergence_warning(record):
    return [w for w in record if "diverged" in str(w.message)] == []


# -- the loss grows by orders of magnitude ------------------------------------------------------------------------
def test_adam_at_lr_1e9_stops_at_the_step_it_diverges(tmp_path):
    model = MLP(2, 2, hidden=(16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e9)
    with pytest.raises(DivergenceError, match=r"epoch 1/3, step \d+/8") as info:
        fit(model, ERM(), _loader(), optimizer=opt, epochs=3, out_dir=tmp_path, progress=False)
    message = str(info.value)
    assert not isinstance(info.value, NonFiniteLossError)
    assert "reference" in message and "more than" in message
    assert "nothing was written" in message
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_sgd_at_lr_1e6_stops():
    model = MLP(2, 2, hidden=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(DivergenceError, match=r"training diverged: the training loss is .* at epoch 1/2"):
        fit(model, ERM(), _loader(), optimizer=opt, epochs=2, progress=False)


def _explode_at_epoch_2(opt):
    """Learning rate 1e-2 in epoch 1, 1e9 from epoch 2 on (on overlapping blobs: on separable ones a huge step can
    take the loss to exactly 0, which is no divergence of the loss)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 if e < 1 else 1e11)


def test_divergence_in_a_later_epoch_keeps_the_files_of_the_last_good_epoch(tmp_path):
    model = MLP(2, 2, hidden=(16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.raises(DivergenceError, match=r"epoch 2/4, step \d+/8") as info:
        fit(model, ERM(), _loader(margin=0.3), optimizer=opt, scheduler=_explode_at_epoch_2(opt), epochs=4,
            out_dir=tmp_path, progress=False)
    assert f"the files in {tmp_path} are those of epoch 1" in str(info.value)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1 and torch.isfinite(ckpt["model"]["1.weight"]).all()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    # the checkpoint is the last good epoch's: a resume at a sane learning rate continues from it
    model2 = MLP(2, 2, hidden=(16,))
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    res = fit(model2, ERM(), _loader(), optimizer=opt2, epochs=2, out_dir=tmp_path, resume=True, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2] and res.diverged is None


def test_warn_warns_once_trains_on_and_reports_it(tmp_path):
    model = MLP(2, 2, hidden=(16,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with pytest.warns(RuntimeWarning, match=r"training diverged: .* at epoch 2/4, step \d+/8") as record:
        res = fit(model, ERM(), _loader(margin=0.3), optimizer=opt, scheduler=_explode_at_epoch_2(opt), epochs=4,
                  out_dir=tmp_path, progress=False, divergence="warn")
    assert len([w for w in record if "diverged" in str(w.message)]) == 1
    assert len(res.history) == 4
    assert res.diverged is not None and "epoch 2/4" in res.diverged and "reference" in res.diverged
    assert load_checkpoint(tmp_path / "last.pt")["divergence"]["diverged"] == res.diverged
    # a resumed run still knows, and does not warn again
    model2 = MLP(2, 2, hidden=(16,))
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        res2 = fit(model2, ERM(), _loader(), optimizer=opt2, epochs=5, out_dir=tmp_path, resume=True,
                   progress=False, divergence="warn")
    assert res2.diverged == res.diverged and _no_divergence_warning(again)


@pytest.mark.parametrize("off", ["off", None, DivergenceCheck(action="off")])
def test_off_does_not_check(off, tmp_path):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = fit(MLP(2, 2), _Scripted([0.7] * 10 + [1e9]), _loader(), epochs=1, progress=False, divergence=off)
        assert res.diverged is None
        fit(MLP(2, 2), _PoisonAtEpochEnd(1), _loader(), epochs=1, out_dir=tmp_path, progress=False, divergence=off)
    assert _no_divergence_warning(record)
    assert not torch.isfinite(load_checkpoint(tmp_path / "last.pt")["model"]["1.weight"]).all()


class _Recorded(ERM):
    """ERM that keeps every step's loss value."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.values = []

    def train_step(self, step, model, batch):
        value = super().train_step(step, model, batch)
        self.values.append(value)
        return value


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_training_whose_loss_falls_to_about_zero_never_triggers(seed):
    torch.manual_seed(seed)
    model = MLP(2, 2, hidden=(32,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        res = fit(model, ERM(), _loader(seed=seed, margin=3.0, batch=8), optimizer=opt, epochs=10, progress=False,
                  divergence=DivergenceCheck(action="warn"))
    losses = [r["train_loss"] for r in res.history]
    assert min(losses) < 1e-3, losses  # it does fall to ~0
    assert res.diverged is None and _no_divergence_warning(record)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_batch_size_1_regression_whose_loss_falls_to_1e_7_and_jitters_never_triggers(seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 2, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.01 * torch.randn(64, 1, generator=g)
    regime = _Recorded(task="regression")
    opt = torch.optim.Adam((model := MLP(2, 1, hidden=(16,))).parameters(), lr=1e-2)
    loader = DataLoader(ArrayDataset(x, y), batch_size=1, shuffle=True, generator=g)
    res = fit(model, regime, loader, optimizer=opt, epochs=10, progress=False, divergence="warn")
    late = regime.values[320:]
    assert min(late) < 1e-5 and max(late) > 1e3 * min(late)  # near 0, jittering by orders of magnitude
    assert res.diverged is None


# -- the rule, on scripted loss values ----------------------------------------------------------------------------
class _Scripted(ERM):
    """ERM that trains normally but reports the scripted loss values, one per step (then repeats the last)."""

    def __init__(self, values):
        super().__init__()
        self.values, self.i = list(values), 0

    def train_step(self, step, model, batch):
        super().train_step(step, model, batch)
        value = self.values[min(self.i, len(self.values) - 1)]
        self.i += 1
        return value


def _scripted(values, *, epochs=1, n=80, batch=4, **kwargs):
    """fit over ``n / batch`` steps per epoch reporting ``values``."""
    return fit(MLP(2, 2), _Scripted(values), _loader(n=n, batch=batch), epochs=epochs, progress=False, **kwargs)


def test_a_loss_that_falls_to_zero_and_jitters_back_up_is_not_divergence():
    values = [0.7] * 10 + [1e-7] * 20 + [5.0, 1e-8, 7.0, 1e-9] * 5  # 1e9 times its minimum, 10 times its start
    res = _scripted(values, epochs=2, divergence="warn")
    assert res.diverged is None


def test_a_loss_4_orders_of_magnitude_above_its_start_is_divergence():
    values = [0.7] * 10 + [0.1] * 10 + [0.7 * 2e4]
    with pytest.raises(DivergenceError, match=r"loss is 1\.4e\+04, .* reference 0\.7\b.* at epoch 2/2, step 1/20"):
        _scripted(values, epochs=2)
    values = [-0.7] * 10 + [-0.7 * 2e4]  # a negative loss diverges too (in absolute value)
    with pytest.raises(DivergenceError, match=r"step 11/20"):
        _scripted(values)
    check = DivergenceCheck(factor=1e5)
    assert _scripted([0.7] * 10 + [0.7 * 2e4], divergence=check).diverged is None


def test_an_explosion_at_step_2_is_caught_there_and_kept_out_of_the_reference():
    with pytest.raises(DivergenceError, match=r"step 2/20"):
        _scripted([0.7, 0.7 * 1e9, 0.7 * 1e10])
    with pytest.raises(DivergenceError, match=r"step 4/20"):
        _scripted([0.7, 0.8, 0.6, 0.7 * 2e4])


def test_one_tiny_first_batch_loss_is_no_reference():
    """A single small batch (batch size 1, a regression target the model happens to hit) may have a loss far
    below the typical one; against one step the factor is squared."""
    assert _scripted([1e-5] + [1.0] * 30, divergence="warn").diverged is None
    assert _scripted([0.0] + [1.0] * 30, divergence="warn").diverged is None


def test_a_non_finite_loss_a_regime_reports_is_divergence():
    with pytest.raises(DivergenceError, match=r"the training loss is inf at epoch 1/1, step 5/20"):
        _scripted([0.7] * 4 + [float("inf")])


def test_the_reference_is_checkpointed_and_a_resumed_run_keeps_it(tmp_path):
    _scripted([1.0] * 40, epochs=2, out_dir=tmp_path)
    assert load_checkpoint(tmp_path / "last.pt")["divergence"]["reference"] == pytest.approx(1.0)
    # measured afresh, the reference would be ~100 and 2e4 only 200 times it; against the kept one it is 2e4 times
    with pytest.raises(DivergenceError, match=r"loss is 2e\+04, .*reference 1\b.* at epoch 3/3, step 3/20"):
        _scripted([100.0, 100.0, 2e4], epochs=3, out_dir=tmp_path, resume=True)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


# -- the weights are no longer finite -----------------------------------------------------------------------------
class _PoisonAtEpochEnd(ERM):
    """ERM that writes NaN into the model's first weight at the end of a given (1-based) epoch."""

    def __init__(self, epoch, value=float("nan")):
        super().__init__()
        self.at, self.value = epoch, value

    def on_epoch_end(self, model, state):
        if state.epoch + 1 == self.at:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = self.value
        return {}


def test_nan_weights_at_the_end_of_an_epoch_stop_before_its_checkpoint(tmp_path):
    model = MLP(2, 2, hidden=(8,))
    with pytest.raises(DivergenceError, match=r"weights are no longer finite \(model\.1\.weight .*at the end "
                                              r"of epoch 2/3") as info:
        fit(model, _PoisonAtEpochEnd(2), _loader(), epochs=3, out_dir=tmp_path, progress=False)
    assert f"the files in {tmp_path} are those of epoch 1" in str(info.value)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1 and all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_infinite_weights_warn():
    with pytest.warns(RuntimeWarning, match=r"weights are no longer finite"):
        res = fit(MLP(2, 2), _PoisonAtEpochEnd(1, float("inf")), _loader(), epochs=1, progress=False,
                  divergence="warn")
    assert res.diverged is not None and "end of epoch 1/1" in res.diverged


class _PoisonPeer(ERM):
    """ERM with a trainable peer network whose weights an optimizer-step hook turns to NaN at a given step."""

    def __init__(self, step):
        super().__init__()
        self.at = step
        self.add_network("peer", MLP(2, 2), trainable=True)

    def __call__(self, model, batch):
        return self.loss(model(batch["x"]), batch["y"]) + 0.0 * self.network("peer")(batch["x"]).sum()

    def on_step_end(self, model, state):
        if state.global_step == self.at:
            with torch.no_grad():
                for p in self.networks["peer"].parameters():
                    p.fill_(float("nan"))


def test_nan_weights_of_a_regime_network_are_divergence(tmp_path):
    # the peer's NaN would make the next step's loss NaN; at the end of the epoch it is caught first
    with pytest.raises(DivergenceError, match=r"peer\.1\.weight .*end of epoch 1/2"):
        fit(MLP(2, 2), _PoisonPeer(8), _loader(), epochs=2, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()


# -- options ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["sometimes", "STOP", 1])
def test_an_unknown_divergence_action_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="divergence"):
        fit(MLP(2, 2), ERM(), _loader(), progress=False, divergence=bad)


@pytest.mark.parametrize("kwargs", [{"action": "never"}, {"factor": 1.0}, {"factor": float("inf")},
                                    {"reference_steps": 0}])
def test_divergence_check_validates(kwargs):
    with pytest.raises(ConfigError, match="DivergenceCheck"):
        DivergenceCheck(**kwargs)


def test_train_config_passes_divergence_through(tmp_path):
    x, y = _blobs().x, _blobs().y
    with pytest.raises(ConfigError, match="TrainConfig.divergence"):
        TrainConfig(divergence="maybe")
    assert TrainConfig().divergence == "stop"
    with pytest.raises(DivergenceError, match="epoch 1/2"):
        train(MLP(2, 2), "erm", (x, y), config=TrainConfig(epochs=2, batch_size=32, lr=1e9), out_dir=tmp_path)
    assert not (tmp_path / "last.pt").exists()
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(MLP(2, 2), "erm", (x, y), config=TrainConfig(epochs=2, batch_size=32, lr=1e9, divergence="warn"))
    assert res.diverged is not None and len(res.history) == 2


def test_a_loss_rising_from_near_zero_after_a_clean_warm_up_is_not_divergence():
    """Fine-tuning a trained model with a strong attack after a clean epoch: the loss rises from ~1e-5 to a few
    units, as adversarial training does; the reference's floor (min_reference) keeps this from counting."""
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import AdversarialTraining
    from robustlab.common.regimes.schedules import EpsRamp

    torch.manual_seed(0)
    model = MLP(2, 2, hidden=(16,))
    fit(model, ERM(), _loader(margin=3.0), optimizer=torch.optim.Adam(model.parameters(), lr=0.05), epochs=15,
        progress=False)
    trained = {k: v.clone() for k, v in model.state_dict().items()}

    def regime():
        return AdversarialTraining(PGD(model, eps=3.0, steps=5), schedule=EpsRamp(warmup_epochs=1, ramp_epochs=0))

    with pytest.raises(DivergenceError):  # without the floor, the bare relative rule fires
        fit(model, regime(), _loader(margin=3.0), epochs=3, progress=False,
            divergence=DivergenceCheck(min_reference=0.0))
    model.load_state_dict(trained)
    result = fit(model, regime(), _loader(margin=3.0), epochs=3, progress=False)
    first, later = result.history[0]["train_loss"], max(r["train_loss"] for r in result.history[1:])
    assert first < 1e-3 and later > 1e4 * first  # the rise that a bare relative rule would call divergence
    assert result.diverged is None
