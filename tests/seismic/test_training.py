"""Seismic training through the core: labelled events per class, the regimes' options, equal steps, the EMA
teacher as the model to predict with, resume, and learning a separable toy task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError, DataError
from robustlab.seismic.training import SeismicTrainConfig, fit_classifier, labelled_events, predict_proba


def _toy(n: int, seed: int = 0, length: int = 2000):
    """Class 1: a 2 Hz burst in the first 20 s over noise; class 0: noise only (z-scored as the real inputs)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 1, length))
    t = np.arange(400) / 20.0
    x[y == 1, 0, :400] += 3 * np.sin(2 * np.pi * 2 * t)
    x = (x - x.mean(2, keepdims=True)) / x.std(2, keepdims=True)
    return x.astype(np.float32), y


def test_labelled_events_draws_per_class_at_least_one_and_is_seeded():
    ids = [f"e{i:02d}" for i in range(40)]
    labels = [1 if i < 6 else 0 for i in range(40)]
    got = labelled_events(ids, labels, 0.1, seed=3)
    lab = dict(zip(ids, labels))
    assert sum(lab[e] == 1 for e in got) == 1 and sum(lab[e] == 0 for e in got) == 3  # round(0.6) -> 1, round(3.4)
    assert got.tolist() == labelled_events(ids, labels, 0.1, seed=3).tolist()
    assert got.tolist() != labelled_events(ids, labels, 0.1, seed=4).tolist()
    assert sorted(labelled_events(ids, labels, 1.0, seed=0).tolist()) == ids
    per_trace = labelled_events(np.repeat(ids, 3), np.repeat(labels, 3), 0.5, seed=0)  # traces of one event
    assert len(per_trace) == 3 + 17


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan")])
def test_labelled_events_refuses_a_bad_fraction(fraction):
    with pytest.raises(ConfigError, match="fraction"):
        labelled_events(["a", "b"], [0, 1], fraction, seed=0)


def test_labelled_events_refuses_an_event_with_two_classes():
    with pytest.raises(DataError, match="'a'"):
        labelled_events(["a", "a", "b"], [0, 1, 1], 0.5, seed=0)


def test_config_checks_values_and_maps_regimes():
    with pytest.raises(ConfigError, match="regularizer_only"):
        SeismicTrainConfig(regularizer_only=True)
    with pytest.raises(ConfigError, match="regime"):
        SeismicTrainConfig(regime="fixmatch")
    with pytest.raises(ConfigError, match="alpha"):
        SeismicTrainConfig(alpha=1.5)
    eaat = SeismicTrainConfig(regime="eaat", regularizer_only=True).regime_params()
    assert eaat == {"name": "eaat", "alpha": 0.999, "teacher_noise": 0.1, "xi": 1.0, "eps": 1.0, "weight": 3.0,
                    "use_unlabeled": False}
    assert SeismicTrainConfig(regime="mean_teacher").regime_params()["consistency"] == "mse"
    assert not SeismicTrainConfig(regime="vat", regularizer_only=True).uses_unlabelled
    assert SeismicTrainConfig(regime="vat").uses_unlabelled


def _count_training_batches(monkeypatch):
    """Count the labelled batches the engine trains on (the regime's train_step calls)."""
    from robustlab.common.regimes.base import Regime

    calls = []
    original = Regime.train_step

    def counting(self, ctx, model, batch):
        calls.append((len(batch["x"]), len(batch["unlabeled"]["x"]) if "unlabeled" in batch else 0))
        return original(self, ctx, model, batch)

    monkeypatch.setattr(Regime, "train_step", counting)
    return calls


@pytest.mark.parametrize("regime, only", [("supervised", False), ("eaat", False), ("eaat", True)])
def test_every_regime_takes_the_same_steps_per_epoch_and_mixes_50_50(monkeypatch, regime, only):
    x, y = _toy(12)
    pool = _toy(40, seed=1)[0]
    calls = _count_training_batches(monkeypatch)
    cfg = SeismicTrainConfig(regime=regime, regularizer_only=only, epochs=1, batch_size=8)
    fit_classifier(x, y, pool, config=cfg, seed=0)
    assert len(calls) == 5  # ceil(40 / 8): the pool sets the epoch, the 12 labelled traces cycle
    if regime == "eaat" and not only:
        assert all(c == (8, 8) for c in calls)  # 50/50 labelled/unlabelled
    else:
        assert all(u == 0 for _, u in calls)  # the pool only sets the length


def test_max_unlabelled_caps_the_pool(monkeypatch):
    x, y = _toy(8)
    calls = _count_training_batches(monkeypatch)
    cfg = SeismicTrainConfig(regime="mean_teacher", epochs=1, batch_size=4, max_unlabelled=12)
    fit_classifier(x, y, _toy(100, seed=2)[0], config=cfg, seed=0)
    assert len(calls) == 3


def test_ema_regimes_predict_with_the_teacher_and_restore_nothing_from_validation():
    x, y = _toy(16)
    cfg = SeismicTrainConfig(regime="mean_teacher", epochs=2, batch_size=8)
    model, result = fit_classifier(x, y, _toy(16, seed=1)[0], config=cfg, seed=0, val=(x, y))
    assert not model.training
    assert "val_macro_f1" in result.history[-1] and len(result.history) == 2
    assert result.eval_model is model  # the teacher (the regime's eval model)


def test_supervised_learns_a_separable_toy_task_and_is_deterministic():
    x, y = _toy(64)
    xt, yt = _toy(64, seed=5)
    cfg = SeismicTrainConfig(epochs=6, batch_size=16)
    model, _ = fit_classifier(x, y, config=cfg, seed=0)
    p = predict_proba(model, xt)
    assert p.shape == (64, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == yt).mean() > 0.8
    again, _ = fit_classifier(x, y, config=cfg, seed=0)
    assert np.allclose(predict_proba(again, xt), p, atol=1e-6)


def test_a_run_resumes_from_its_checkpoint(tmp_path):
    x, y = _toy(16)
    pool = _toy(16, seed=1)[0]
    full, _ = fit_classifier(x, y, pool, config=SeismicTrainConfig(regime="vat", epochs=2, batch_size=8), seed=1)
    fit_classifier(x, y, pool, config=SeismicTrainConfig(regime="vat", epochs=1, batch_size=8), seed=1,
                   out_dir=tmp_path)
    resumed, result = fit_classifier(x, y, pool, config=SeismicTrainConfig(regime="vat", epochs=2, batch_size=8),
                                     seed=1, out_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)


def test_bad_inputs_name_the_problem():
    x, y = _toy(4)
    with pytest.raises(DataError, match="labels must lie in 0..1"):
        fit_classifier(x, y + 1, config=SeismicTrainConfig(epochs=1))
    bad = x.copy()
    bad[0, 0, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fit_classifier(bad, y, config=SeismicTrainConfig(epochs=1))
    with pytest.raises(DataError, match="unlabelled traces have shape"):
        fit_classifier(x, y, x[:, :, :100], config=SeismicTrainConfig(regime="vat", epochs=1))


def test_predict_proba_restores_the_mode():
    from robustlab.seismic.models import build_model

    model = build_model("cnn").train()
    predict_proba(model, _toy(3)[0])
    assert model.training
