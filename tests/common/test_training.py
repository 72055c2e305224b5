"""robustlab.common.training: named regimes, the task's loss and metrics, one fit call for every domain."""

from __future__ import annotations

import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.training import REGIME_NAMES, TrainConfig, build_regime, task_metrics, train


def _data(task, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    if task == "multiclass":
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    elif task == "multilabel":
        y = torch.stack([(x[:, 0] > 0), (x[:, 1] > 0), (x[:, 2] + x[:, 3] > 0)], 1).float()
    else:
        y = (2 * x[:, :1] - x[:, 1:2]) + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


OUTPUTS = {"multiclass": 3, "multilabel": 3, "regression": 1}


@pytest.mark.parametrize(
    ("task", "metric", "bound"),
    [("multiclass", "val_macro_f1", 0.8), ("multilabel", "val_auroc", 0.9), ("regression", "val_r2", 0.9)],
)
def test_train_learns_each_task_with_its_metrics(task, metric, bound):
    torch.manual_seed(0)
    model = MLP(4, OUTPUTS[task], hidden=(32,))
    res = train(model, "erm", _data(task), _data(task, 128, seed=1), task=task,
                config=TrainConfig(epochs=15, batch_size=32, lr=1e-2))
    last = res.history[-1]
    expected = {name for name in task_metrics(task)[0]}
    assert {f"val_{k}" for k in expected} <= set(last)
    best = max(r[metric] for r in res.history)
    assert best > bound, res.history
    assert res.best_epoch is not None and res.eval_model is model


def test_regression_best_epoch_is_the_lowest_rmse():
    torch.manual_seed(0)
    res = train(MLP(4, 1, hidden=(16,)), "erm", _data("regression"), _data("regression", 64, 1), task="regression",
                config=TrainConfig(epochs=6, batch_size=32, lr=1e-2))
    rmse = [r["val_rmse"] for r in res.history]
    assert res.best_value == min(rmse) and res.best_epoch == rmse.index(min(rmse)) + 1


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
@pytest.mark.parametrize("name", ["erm", "noise", "adversarial", "trades"])
def test_named_regimes_build_for_every_task(name, task):
    torch.manual_seed(0)
    model = MLP(4, OUTPUTS[task])
    params = {"eps": 0.1, "steps": 2} if name in ("adversarial", "trades") else {}
    regime = build_regime(name, model, task=task, **params)
    assert regime.task.name == task
    x, y = _data(task, 16)
    loss = regime(model, {"x": x, "y": y})
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_unknown_regime_and_bad_options_are_clear():
    with pytest.raises(ConfigError, match="unknown regime 'magic'.*erm"):
        build_regime("magic", MLP(4, 2))
    with pytest.raises(ConfigError, match="regime 'noise'"):
        build_regime("noise", MLP(4, 2), colour="red")
    with pytest.raises(ConfigError, match="needs eps"):
        build_regime("adversarial", MLP(4, 2))
    assert "mean_teacher" in REGIME_NAMES and "co_teaching" in REGIME_NAMES


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"lr": float("nan")}, "lr"), ({"batch_size": 0}, "batch_size"),
     ({"optimizer": "lbfgs"}, "optimizer"), ({"patience": 0}, "patience"), ({"weight_decay": -1}, "weight_decay")],
)
def test_train_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ConfigError, match=f"TrainConfig.{field}"):
        TrainConfig(**kwargs)


def test_train_resumes_bit_identically(tmp_path):
    def run(epochs, out, resume=False):
        torch.manual_seed(0)
        model = MLP(4, 3, hidden=(16,), dropout=0.2)
        train(model, ERM(), _data("multiclass"), _data("multiclass", 64, 1), config=TrainConfig(epochs=epochs,
              batch_size=32), out_dir=out, resume=resume, seed=5)
        return model

    full = run(4, tmp_path / "full")
    run(2, tmp_path / "part")
    resumed = run(4, tmp_path / "part", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_train_passes_unlabeled_data_to_the_regime():
    seen = []

    class Peek(ERM):
        def __call__(self, model, batch):
            seen.append(len(batch["unlabeled"]["x"]))
            assert batch["unlabeled"]["index"].dtype == torch.int64
            return super().__call__(model, batch)

    x, y = _data("multiclass", 64)
    train(MLP(4, 3), Peek(), (x, y), unlabeled_data=torch.randn(100, 4),
          config=TrainConfig(epochs=1, batch_size=16, unlabeled_batch_size=25, epoch_length="unlabeled"))
    assert seen == [25, 25, 25, 25]
    with pytest.raises(ConfigError, match="regime_params"):
        train(MLP(4, 3), ERM(), (x, y), regime_params={"std": 0.1})
