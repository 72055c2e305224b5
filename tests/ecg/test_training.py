"""Training a channel model: validation by patient, N capped, class weights, the core's regimes in mV."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.common.errors import ConfigError
from robustlab.ecg.training import ChannelTrainConfig, balance_n, train_channel, validation_split


def test_validation_split_holds_out_whole_records_near_the_fraction():
    rng = np.random.default_rng(0)
    records = np.repeat([f"r{i}" for i in range(20)], rng.integers(50, 150, 20))
    y = rng.choice(4, len(records), p=[0.8, 0.1, 0.07, 0.03])
    tr, va = validation_split(records, y, fraction=0.25, seed=0)
    assert not set(records[tr]) & set(records[va])
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(records)))
    assert 0.15 < len(va) / len(records) < 0.35
    tr2, va2 = validation_split(records, y, fraction=0.25, seed=0)
    assert np.array_equal(va, va2)
    with pytest.raises(ValueError, match="fraction"):
        validation_split(records, y, fraction=1.0)


def test_balance_n_caps_the_n_class_and_keeps_the_others():
    y = np.array([0] * 100 + [1] * 5 + [2] * 7)
    idx = balance_n(y, 20, seed=1)
    assert (y[idx] == 0).sum() == 20 and (y[idx] == 1).sum() == 5 and (y[idx] == 2).sum() == 7
    assert np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, balance_n(y, 20, seed=1)) and not np.array_equal(idx, balance_n(y, 20, seed=2))
    assert len(balance_n(y, 0, seed=0)) == len(y)


def test_config_declares_its_ranges_and_regime_options():
    with pytest.raises(ConfigError, match="regime"):
        ChannelTrainConfig(regime="mixup")
    with pytest.raises(ConfigError, match="adv_eps"):
        ChannelTrainConfig(adv_eps=-1.0)
    adv = ChannelTrainConfig(regime="adversarial", adv_eps=0.05, adv_steps=5).regime_params()
    assert adv["eps"] == 0.05 and adv["alpha"] == pytest.approx(2.5 * 0.05 / 5) and adv["random_start"]
    assert ChannelTrainConfig(regime="noise", noise_std=0.1).regime_params() == {"std": 0.1}


def _beats(n: int, seed: int):
    """Windows of 720 samples: class 0 a narrow QRS, class 1 a wide one (a V-like beat), at the R peak 360."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    t = np.arange(720) - 360
    width = np.where(y == 0, 8.0, 30.0)[:, None]
    x = 1.2 * np.exp(-0.5 * (t / width) ** 2) + 0.03 * rng.normal(size=(n, 720))
    return x.astype(np.float32), y


@pytest.mark.parametrize("regime", ["erm", "noise", "adversarial"])
def test_train_channel_learns_a_separable_beat_task_with_each_regime(regime, one_thread, tmp_path):
    x, y = _beats(240, 0)
    xv, yv = _beats(80, 1)
    config = ChannelTrainConfig(epochs=3, batch_size=32, regime=regime, patience=None, adv_eps=0.02, adv_steps=2)
    model, result = train_channel("cnn", x, y, xv, yv, num_classes=2, config=config, seed=0, out_dir=tmp_path)
    assert not model.training and result.best_epoch is not None
    assert result.history[-1]["val_macro_f1"] > 0.9
    assert (tmp_path / "last.pt").is_file()


def test_train_channel_refuses_non_finite_windows():
    x, y = _beats(20, 0)
    x[3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_channel("cnn", x, y, x, y, num_classes=2, config=ChannelTrainConfig(epochs=1))


def test_the_regimes_train_differently_from_the_same_start(one_thread):
    import torch

    x, y = _beats(120, 0)
    weights = {}
    for regime in ("erm", "noise", "adversarial"):
        config = ChannelTrainConfig(epochs=2, batch_size=32, regime=regime, patience=None, noise_std=0.2,
                                    adv_eps=0.05, adv_steps=2, adv_warmup=0)
        model, _ = train_channel("cnn", x, y, x, y, num_classes=2, config=config, seed=3)
        weights[regime] = torch.cat([p.detach().flatten() for p in model.parameters()])
    again, _ = train_channel("cnn", x, y, x, y, num_classes=2, seed=3,
                             config=ChannelTrainConfig(epochs=2, batch_size=32, patience=None))
    assert torch.equal(weights["erm"], torch.cat([p.detach().flatten() for p in again.parameters()]))
    assert not torch.allclose(weights["erm"], weights["noise"]) and not torch.allclose(weights["erm"],
                                                                                        weights["adversarial"])
