"""What a run reports as it goes: the learning-rate column of the metrics logs, progress bars on a terminal and a
few plain lines per epoch in a log file (robustlab.common.progress)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import torch
from torch.utils.data import DataLoader

from robustlab.common import progress as progress_module
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP
from robustlab.common.progress import ENV_VAR, LineProgress, progress, resolve_mode, write
from robustlab.common.regimes import ERM

pytestmark = pytest.mark.usefixtures("one_thread")


def _loader(n=64, batch=16):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + y[:, None].float()
    return DataLoader(ArrayDataset(x, y), batch_size=batch, shuffle=True, generator=g)


# -- the lr column ------------------------------------------------------------------------------------------------
def test_the_lr_column_is_the_learning_rate_each_epoch_trained_with(tmp_path):
    model = MLP(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    res = fit(model, ERM(), _loader(), optimizer=opt, scheduler=sched, epochs=3, out_dir=tmp_path, progress=False,
              divergence="off")
    assert [r["lr"] for r in res.history] == [1.0, 0.5, 0.25]
    rows = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == [1.0, 0.5, 0.25]
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [float(r["lr"]) for r in csv.DictReader(f)] == [1.0, 0.5, 0.25]


def test_with_a_per_step_scheduler_the_lr_column_is_that_of_the_epochs_first_step():
    model = MLP(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))  # 4 steps per epoch
    res = fit(model, ERM(), _loader(), optimizer=opt, scheduler=sched, scheduler_interval="step", epochs=3,
              progress=False, divergence="off")
    assert [r["lr"] for r in res.history] == pytest.approx([1.0, 1 / 5, 1 / 9])


# -- progress while training ---------------------------------------------------------------------------------------
def test_in_a_log_file_an_epoch_of_400_steps_writes_a_few_lines(capsys, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    fit(MLP(2, 2), ERM(), _loader(n=400, batch=1), epochs=2, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert "\r" not in err
    for epoch in (1, 2):
        mine = [line for line in lines if line.startswith(f"epoch {epoch}/2")]
        assert 3 <= len(mine) <= 6, lines
        steps = [line for line in mine if "step" in line]
        assert [re.search(r"step (\d+)/400", line).group(1) for line in steps] == ["100", "200", "300"]
        assert all(re.search(r"loss \d\.\d{4}, .*elapsed, ETA ", line) for line in steps), steps
        assert any("train_loss" in line for line in mine)  # the epoch's metrics line
    assert len(lines) <= 12


def test_the_env_var_forces_a_bar(capsys, monkeypatch):
    import tqdm.auto

    made = []

    class Spy(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Spy)
    monkeypatch.setenv(ENV_VAR, "bar")
    fit(MLP(2, 2), ERM(), _loader(), epochs=2, progress=True)
    assert [(k["total"], k["desc"]) for k in made] == [(4, "epoch 1/2"), (4, "epoch 2/2")]
    assert "\r" in capsys.readouterr().err


def test_the_env_var_can_turn_the_progress_lines_off(capsys, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "off")
    fit(MLP(2, 2), ERM(), _loader(n=400, batch=1), epochs=1, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "train_loss" in lines[0]  # the epoch's metrics only


def test_progress_false_writes_nothing_whatever_the_env_var(capsys, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "bar")
    fit(MLP(2, 2), ERM(), _loader(), epochs=1, progress=False)
    assert capsys.readouterr() == ("", "")


# -- the helper ----------------------------------------------------------------------------------------------------
def test_resolve_mode(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert resolve_mode(file=Tty()) == "bar"
    assert resolve_mode(file=io.StringIO()) == "lines"
    assert resolve_mode("off", file=Tty()) == "off"
    monkeypatch.setenv(ENV_VAR, "lines")
    assert resolve_mode(file=Tty()) == "lines"
    monkeypatch.setenv(ENV_VAR, "Bar ")
    assert resolve_mode(file=io.StringIO()) == "bar"
    monkeypatch.setenv(ENV_VAR, "fancy")  # the environment's mistake: warned, then the automatic choice
    with pytest.warns(RuntimeWarning, match=f"\\${ENV_VAR} must be one of bar, lines, off, got 'fancy'; ignored"):
        assert resolve_mode(file=io.StringIO()) == "lines"
    with pytest.raises(ConfigError, match="progress mode"):
        resolve_mode("loud")


def test_line_progress_writes_at_its_points_with_postfix_and_eta():
    out = io.StringIO()
    bar = progress(range(10), total=10, desc="job", unit="run", mode="lines", file=out)
    assert isinstance(bar, LineProgress)
    for i in bar:
        bar.set_postfix(loss=f"{i / 10:.2f}", refresh=False)
    lines = out.getvalue().splitlines()
    assert [re.match(r"job: run (\d+)/10 \((\d+)%\)", line).groups() for line in lines] == [
        ("3", "30"), ("5", "50"), ("8", "80"), ("10", "100")]
    assert "loss 0.20" in lines[0] and "ETA" in lines[0] and "ETA" not in lines[-1]
    assert bar.closed


def test_line_progress_by_update_with_bytes_and_an_initial_count():
    out = io.StringIO()
    with progress(total=4096, desc="file.bin", unit="B", unit_scale=True, unit_divisor=1024, initial=1024,
                  mode="lines", file=out, points=(0.5, 1.0)) as bar:
        bar.set_postfix_str("mirror 1")
        for _ in range(3):
            bar.update(1024)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("file.bin: 2.00kB/4.00kB (50%), mirror 1, ")
    assert lines[1].startswith("file.bin: 4.00kB/4.00kB (100%), mirror 1, ") and len(lines) == 2


def test_line_progress_without_a_total_writes_every_interval(monkeypatch):
    clock = iter(range(0, 1000, 20))
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    bar = LineProgress(desc="scan", interval=60, file=out)
    for _ in range(9):
        bar.update()
    assert len(out.getvalue().splitlines()) == 3 and "ETA" not in out.getvalue()


def test_off_and_disabled_write_nothing_but_still_iterate():
    out = io.StringIO()
    assert list(progress(range(5), mode="off", file=out)) == list(range(5))
    assert list(progress(range(5), enabled=False, mode="lines", file=out)) == list(range(5))
    assert out.getvalue() == ""


def test_write_goes_through_tqdm_only_for_a_bar(monkeypatch):
    import tqdm.auto

    seen = []
    monkeypatch.setattr(tqdm.auto.tqdm, "write", classmethod(lambda cls, s, file=None, **kw: seen.append(s)))
    out = io.StringIO()
    write("plain", file=out, mode="lines")
    write("through tqdm", file=out, mode="bar")
    assert out.getvalue() == "plain\n" and seen == ["through tqdm"]
