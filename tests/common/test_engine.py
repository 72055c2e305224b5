"""The training engine: fitting, logs, checkpoints, resume after SIGKILL, early stopping, NaN, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint, save_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import EarlyStopping, evaluate, fit
from robustlab.common.errors import CheckpointError, ConfigError, NonFiniteLossError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.regimes.base import Regime
from robustlab.common.testing import kill_mid_run, run_script


def _blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None].float() * 2 - 1) * 1.5
    return ArrayDataset(x, y)


def _loaders(n=256, batch=32):
    torch.manual_seed(0)
    return DataLoader(_blobs(n), batch_size=batch, shuffle=True), DataLoader(_blobs(128, seed=1), batch_size=64)


def test_fit_learns_and_writes_logs_and_checkpoints(tmp_path):
    train, val = _loaders()
    model = MLP(2, 2, hidden=(16,))
    res = fit(model, ERM(), train, val_loader=val, epochs=4, out_dir=tmp_path, progress=False)
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.history[-1]["val_accuracy"] > 0.9
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(header)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 4 and set(ckpt) >= {"model", "optimizers", "rng", "regime", "history", "networks"}
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == res.best_epoch
    assert not list(tmp_path.glob("*.tmp")), "temporary files must not be left behind"


def test_evaluate_restores_mode_and_reports_accuracy():
    _, val = _loaders()
    model = MLP(2, 2).train()
    out = evaluate(model, val)
    assert model.training
    # an untrained model: the figures must be those of the whole validation set, computed here by hand
    with torch.no_grad():
        logits = model.eval()(val.dataset.x)
    assert set(out) == {"loss", "accuracy"}
    assert out["accuracy"] == pytest.approx((logits.argmax(1) == val.dataset.y).float().mean().item())
    assert out["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, val.dataset.y).item(), rel=1e-6)


def test_existing_run_is_not_overwritten_without_resume(tmp_path):
    train, _ = _loaders()
    fit(MLP(2, 2), ERM(), train, epochs=1, out_dir=tmp_path, progress=False)
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ConfigError, match="resume=True"):
        fit(MLP(2, 2), ERM(), train, epochs=1, out_dir=tmp_path, progress=False)
    assert (tmp_path / "last.pt").read_bytes() == before


class _NaNAt(Regime):
    """ERM whose loss becomes NaN at a given (1-based) epoch and step."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), 0

    def on_epoch_start(self, model, state):
        self.epoch = state.epoch + 1
        self.step = 0

    def __call__(self, model, batch):
        self.step += 1
        loss = self.loss(model(batch["x"]), batch["y"])
        return loss * float("nan") if (self.epoch, self.step) == self.at else loss


def test_nan_loss_names_epoch_and_step_and_keeps_files(tmp_path):
    train, _ = _loaders()
    model = MLP(2, 2)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2/3, step 3/8"):
        fit(model, _NaNAt(2, 3), train, epochs=3, out_dir=tmp_path, progress=False)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    assert all(torch.isfinite(p).all() for p in model.parameters()), "the NaN step must not reach the weights"


def test_corrupt_or_truncated_checkpoint_gives_a_clear_error(tmp_path):
    train, _ = _loaders()
    fit(MLP(2, 2), ERM(), train, epochs=1, out_dir=tmp_path, progress=False)
    path = tmp_path / "last.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="last.pt"):
        fit(MLP(2, 2), ERM(), train, epochs=2, out_dir=tmp_path, resume=True, progress=False)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(path)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_loading_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"format": "robustlab-checkpoint", "model": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_of_wrong_model_names_file(tmp_path):
    train, _ = _loaders()
    fit(MLP(2, 2, hidden=(8,)), ERM(), train, epochs=1, out_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"last\.pt.*does not fit"):
        fit(MLP(2, 2, hidden=(16,)), ERM(), train, epochs=2, out_dir=tmp_path, resume=True, progress=False)


def test_not_a_robustlab_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a robustlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "ok.pt", {"x": torch.ones(2)})
    assert torch.equal(load_checkpoint(tmp_path / "ok.pt")["x"], torch.ones(2))


def test_early_stopping_stops_and_restores_best(tmp_path):
    train, _ = _loaders()
    flipped = _blobs(128, seed=1)
    flipped.y = 1 - flipped.y  # validation labels opposite to training: validation loss only gets worse
    val = DataLoader(flipped, batch_size=64)
    model = MLP(2, 2, hidden=(16,))
    res = fit(model, ERM(), train, val_loader=val, epochs=30, out_dir=tmp_path, progress=False,
              early_stopping=EarlyStopping(monitor="val_loss", mode="min", patience=2))
    assert res.stop_reason and "early stopping" in res.stop_reason
    assert len(res.history) < 30
    assert len(res.history) - res.best_epoch == 2
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == res.best_epoch
    for k, v in model.state_dict().items():  # restore_best defaults to True with early stopping
        assert torch.equal(v, best["model"][k])
    assert evaluate(model, val)["loss"] == pytest.approx(res.best_value, rel=1e-6)


def test_early_stopping_without_out_dir_restores_best_from_memory():
    train, _ = _loaders()
    flipped = _blobs(128, seed=1)
    flipped.y = 1 - flipped.y
    val = DataLoader(flipped, batch_size=64)
    model = MLP(2, 2, hidden=(16,))
    res = fit(model, ERM(), train, val_loader=val, epochs=30, progress=False,
              early_stopping=EarlyStopping(monitor="val_loss", mode="min", patience=2))
    assert res.best_epoch < len(res.history)
    assert evaluate(model, val)["loss"] == pytest.approx(res.best_value, rel=1e-6)


def test_unknown_monitor_is_a_config_error():
    train, val = _loaders()
    with pytest.raises(ConfigError, match="val_auroc"):
        fit(MLP(2, 2), ERM(), train, val_loader=val, epochs=2, progress=False,
            early_stopping=EarlyStopping(monitor="val_auroc", mode="max"))


class _StopAfter(Regime):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def __call__(self, model, batch):
        return self.loss(model(batch["x"]), batch["y"])

    def on_epoch_end(self, model, state):
        if state.epoch + 1 >= self.n:
            self.stop_reason = "enough"
        return {"custom": 1.0}


def test_regime_can_stop_training_and_log_metrics():
    train, _ = _loaders()
    res = fit(MLP(2, 2), _StopAfter(2), train, epochs=10, progress=False)
    assert len(res.history) == 2 and res.stop_reason == "enough"
    assert res.history[-1]["custom"] == 1.0


def test_tuple_batches_are_accepted():
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    assert len(fit(MLP(2, 2), ERM(), loader, epochs=1, progress=False).history) == 1


# -- resume after a real SIGKILL ------------------------------------------------------------------------------
_RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP
    from robustlab.common.regimes import GaussianNoise

    class Slow(GaussianNoise):
        def __call__(self, model, batch):
            time.sleep(float(sys.argv[2]))
            return super().__call__(model, batch)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (240,), generator=g)
    x = torch.randn(240, 5, generator=g) + y[:, None]
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)
    model = MLP(5, 3, hidden=(32, 32), dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    fit(model, Slow(0.3), loader, optimizer=opt, scheduler=sched, epochs=6, out_dir=sys.argv[1],
        resume=True, progress=False)
    torch.save(model.state_dict(), sys.argv[1] + "/final.pt")
    """
)


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_RESUME_SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_script(script, full, "0")
    kill_mid_run(script, killed, "0.02", epochs=6)
    run_script(script, killed, "0")
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    hist_full = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    hist_killed = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [h["train_loss"] for h in hist_full] == [h["train_loss"] for h in hist_killed]


# -- distributed data parallel --------------------------------------------------------------------------------
_DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import ERM, AdversarialTraining

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (256,), generator=g)
    x = torch.randn(256, 5, generator=g) + y[:, None]
    loader = DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=False)   # the global batch
    model = MLP(5, 3, hidden=(32,))
    regime = ERM() if sys.argv[2] == "erm" else AdversarialTraining(PGD(model, eps=0.1, steps=3, random_start=False))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fit(model, regime, loader, optimizer=opt, epochs=4, out_dir=sys.argv[1], progress=False, device="cpu")
    """
)

DDP_TOLERANCE = 1e-5  # relative, per-epoch training loss: only the order of float reductions differs


@pytest.mark.slow
@pytest.mark.parametrize("regime", ["erm", "adversarial"])
def test_ddp_two_processes_match_one_process(tmp_path, regime):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run([sys.executable, str(script), str(tmp_path / "one"), regime], check=True, env=env, timeout=120)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path / "two"), regime],
        env=env, timeout=240, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    one = [json.loads(s)["train_loss"] for s in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(s)["train_loss"] for s in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 4
    assert one[-1] < one[0]
    for a, b in zip(one, two):
        assert abs(a - b) <= DDP_TOLERANCE * abs(a), (one, two)
    w1 = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    w2 = load_checkpoint(tmp_path / "two" / "last.pt")["model"]
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-4, atol=1e-5)


def test_ddp_requires_divisible_global_batch(monkeypatch):
    from robustlab.common._distributed import Distributed as _Distributed

    d = _Distributed.__new__(_Distributed)
    d.world, d.rank, d.created = 2, 0, False
    loader = DataLoader(_blobs(30), batch_size=15)
    with pytest.raises(ConfigError, match="batch_size \\(15\\)"):
        d.shard(loader, seed=0)
    sharded = d.shard(DataLoader(_blobs(32), batch_size=16), seed=0)
    assert sharded.batch_size == 8 and len(sharded) == 2


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    train, _ = _loaders()
    fit(MLP(2, 2), ERM(), train, epochs=2, out_dir=tmp_path, progress=False)
    model = MLP(2, 2)
    res = fit(model, ERM(), train, epochs=2, out_dir=tmp_path, resume=True, progress=False)
    assert len(res.history) == 2
    saved = load_checkpoint(Path(tmp_path) / "last.pt")["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])


def test_an_unwritable_out_dir_is_refused_before_the_first_epoch(tmp_path):
    (tmp_path / "a-file").write_text("")
    calls = []

    class Counting(ERM):
        def train_step(self, step, model, batch):
            calls.append(1)
            return super().train_step(step, model, batch)

    x, y = torch.randn(8, 2), torch.randint(0, 2, (8,))
    loader = DataLoader(ArrayDataset(x, y), batch_size=4)
    for out in (tmp_path / "a-file", tmp_path / "a-file" / "run"):
        with pytest.raises(ConfigError, match="a-file"):
            fit(MLP(2, 2), Counting(), loader, out_dir=out, progress=False)
    assert not calls
