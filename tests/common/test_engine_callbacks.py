"""fit's callbacks: order, epoch boundaries, logged numbers, on_fit_end after an error, refused objects."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.regimes import ERM


def _data(n=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(ArrayDataset(x, (x[:, 0] > 0).long()), batch_size=8, shuffle=False)


class Log:
    def __init__(self):
        self.calls = []

    def on_fit_start(self, model, state):
        self.calls.append(("fit_start", state.epoch))

    def on_epoch_start(self, model, state):
        self.calls.append(("epoch_start", state.epoch))

    def on_epoch_end(self, model, state):
        self.calls.append(("epoch_end", state.epoch, state.step))
        return {"seen_epoch": float(state.epoch)}

    def on_fit_end(self, model, state):
        self.calls.append(("fit_end",))


def test_callbacks_see_epoch_boundaries_and_log_numbers():
    log, partial = Log(), type("Only", (), {"on_epoch_start": lambda self, m, s: seen.append(s.epoch)})()
    seen = []
    result = fit(nn.Linear(4, 2), ERM(), _data(), epochs=2, device="cpu", progress=False, callbacks=[log, partial])
    assert log.calls == [("fit_start", 0), ("epoch_start", 0), ("epoch_end", 0, 3), ("epoch_start", 1),
                         ("epoch_end", 1, 3), ("fit_end",)]
    assert seen == [0, 1]
    assert [r["seen_epoch"] for r in result.history] == [0.0, 1.0]


def test_without_callbacks_nothing_changes():
    torch.manual_seed(0)
    a = fit(nn.Linear(4, 2), ERM(), _data(), epochs=1, device="cpu", progress=False)
    torch.manual_seed(0)
    b = fit(nn.Linear(4, 2), ERM(), _data(), epochs=1, device="cpu", progress=False, callbacks=[])
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]


def test_on_fit_end_runs_after_an_error_and_the_error_is_the_first():
    class Boom(ERM):
        def __call__(self, model, batch):
            raise RuntimeError("boom in the step")

    log = Log()
    with pytest.raises(RuntimeError, match="boom in the step"):
        fit(nn.Linear(4, 2), Boom(), _data(), epochs=1, device="cpu", progress=False, callbacks=[log])
    assert log.calls[-1] == ("fit_end",)


def test_a_failing_on_fit_end_is_raised_after_the_others_ran():
    class Bad:
        def on_fit_end(self, model, state):
            raise ValueError("bad end")

    log = Log()
    with pytest.raises(ValueError, match="bad end"):
        fit(nn.Linear(4, 2), ERM(), _data(), epochs=1, device="cpu", progress=False, callbacks=[Bad(), log])
    assert log.calls[-1] == ("fit_end",)


def test_an_object_without_hooks_is_refused_by_position():
    with pytest.raises(ConfigError, match=r"callbacks\[1\] \(object\)"):
        fit(nn.Linear(4, 2), ERM(), _data(), epochs=1, device="cpu", progress=False, callbacks=[Log(), object()])
