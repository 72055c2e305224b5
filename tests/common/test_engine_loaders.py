"""The engine's data side: labelled + unlabelled loaders, the index key, loader random state, per-sample state
under DDP, and SIGKILL resume with two seeded loaders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import as_batch, fit, to_device
from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.testing import kill_mid_run, run_script


class _Recorder(ERM):
    """ERM that records the indices of each step's labelled and unlabelled parts."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __call__(self, model, batch):
        u = batch.get("unlabeled")
        self.seen.append((batch["index"].tolist(), None if u is None else u["index"].tolist()))
        return super().__call__(model, batch)


def _ds(n, offset=0):
    x = torch.arange(offset, offset + n, dtype=torch.float32)[:, None].repeat(1, 2)
    return ArrayDataset(x, torch.zeros(n, dtype=torch.long))


def test_index_is_an_official_key_that_survives():
    assert "index" in __import__("robustlab.common.engine", fromlist=["BATCH_KEYS"]).BATCH_KEYS
    batch = next(iter(DataLoader(_ds(10), batch_size=4, shuffle=True)))
    moved = to_device(as_batch(batch), torch.device("cpu"))
    assert moved["index"].dtype == torch.int64
    assert torch.equal(moved["x"][:, 0].long(), moved["index"]), "index is the sample's dataset position"
    assert as_batch(torch.ones(3, 2))["x"].shape == (3, 2)
    assert set(as_batch((torch.ones(3, 2),))) == {"x"}


def test_unlabeled_loader_cycles_within_an_epoch_and_restarts_each_epoch():
    labeled = DataLoader(_ds(40), batch_size=10)  # 4 steps
    unlabeled = DataLoader(_ds(15, offset=100), batch_size=5)  # 3 batches: cycles once within an epoch
    regime = _Recorder()
    fit(MLP(2, 1), regime, labeled, unlabeled_loader=unlabeled, epochs=2, progress=False)
    assert len(regime.seen) == 8
    u_first = [u[0] for _, u in regime.seen[:4]]
    assert u_first == [0, 5, 10, 0], "the unlabelled loader starts a new pass when it ends"
    assert [u[0] for _, u in regime.seen[4:]] == u_first, "each epoch starts a new pass of both loaders"
    assert [lab[0] for lab, _ in regime.seen[:4]] == [0, 10, 20, 30]


def test_epoch_length_follows_the_unlabeled_loader_when_asked():
    labeled = DataLoader(_ds(10), batch_size=5)  # 2 batches, cycles
    unlabeled = DataLoader(_ds(50, offset=100), batch_size=10)  # 5 steps
    regime = _Recorder()
    res = fit(MLP(2, 1), regime, labeled, unlabeled_loader=unlabeled, epoch_length="unlabeled", epochs=1,
              progress=False)
    assert len(regime.seen) == 5 and len(res.history) == 1
    assert [lab[0] for lab, _ in regime.seen] == [0, 5, 0, 5, 0]
    with pytest.raises(ConfigError, match="unlabeled_loader"):
        fit(MLP(2, 1), ERM(), labeled, epoch_length="unlabeled", progress=False)
    with pytest.raises(ConfigError, match="epoch_length"):
        fit(MLP(2, 1), ERM(), labeled, epoch_length="longest", progress=False)


def test_an_unlabeled_loader_of_bare_tensors_is_accepted():
    unlabeled = DataLoader(TensorDataset(torch.randn(20, 2)), batch_size=5)
    seen = []

    class Peek(ERM):
        def __call__(self, model, batch):
            seen.append(tuple(batch["unlabeled"]["x"].shape))
            return super().__call__(model, batch)

    fit(MLP(2, 1), Peek(), DataLoader(_ds(10), batch_size=5), unlabeled_loader=unlabeled, progress=False)
    assert seen == [(5, 2), (5, 2)]


def test_the_loaders_own_generators_are_checkpointed_and_restored(tmp_path):
    def loaders():
        return (DataLoader(_ds(40), batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(7)),
                DataLoader(_ds(30, 100), batch_size=10, shuffle=True, generator=torch.Generator().manual_seed(8)))

    torch.manual_seed(0)
    full = _Recorder()
    lab, unl = loaders()
    fit(MLP(2, 1), full, lab, unlabeled_loader=unl, epochs=3, progress=False)
    torch.manual_seed(0)
    part = _Recorder()
    lab, unl = loaders()
    fit(MLP(2, 1), part, lab, unlabeled_loader=unl, epochs=1, out_dir=tmp_path, progress=False)
    saved = load_checkpoint(tmp_path / "last.pt")["loaders"]
    assert len(saved["train"]) == 1 and len(saved["unlabeled"]) == 1
    torch.manual_seed(123)  # another global state, fresh loaders: only the checkpoint can bring the order back
    rest = _Recorder()
    lab, unl = loaders()
    fit(MLP(2, 1), rest, lab, unlabeled_loader=unl, epochs=3, out_dir=tmp_path, resume=True, progress=False)
    assert part.seen + rest.seen == full.seen


# -- resume after a real SIGKILL, with two seeded loaders ----------------------------------------------------
_RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP
    from robustlab.common.regimes.base import Regime, all_inputs, labeled_part

    class Consistency(Regime):
        # supervised loss plus a noise-consistency term over labelled and unlabelled inputs
        def __call__(self, model, batch):
            time.sleep(float(sys.argv[2]))
            x, y = labeled_part(batch, self.task)
            xs = all_inputs(batch)
            noisy = model(xs + 0.3 * torch.randn_like(xs))
            return self.loss(model(x), y) + ((noisy - model(xs).detach()) ** 2).mean()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (240,), generator=g)
    x = torch.randn(240, 5, generator=g) + y[:, None]
    labeled = DataLoader(ArrayDataset(x[:60], y[:60]), batch_size=10, shuffle=True,
                         generator=torch.Generator().manual_seed(2))
    unlabeled = DataLoader(ArrayDataset(x[60:], -torch.ones(180, dtype=torch.long)), batch_size=20,
                           shuffle=True, generator=torch.Generator().manual_seed(3))
    model = MLP(5, 3, hidden=(32,), dropout=0.2)
    fit(model, Consistency(), labeled, unlabeled_loader=unlabeled, epoch_length="unlabeled", epochs=6,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2), out_dir=sys.argv[1], resume=True,
        progress=False)
    torch.save(model.state_dict(), sys.argv[1] + "/final.pt")
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_with_an_unlabeled_loader_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_RESUME_SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_script(script, full, "0")
    kill_mid_run(script, killed, "0.03", epochs=6)
    run_script(script, killed, "0")
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    hist = [[json.loads(s)["train_loss"] for s in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (full, killed)]
    assert hist[0] == hist[1]


# -- per-sample state under DDP -------------------------------------------------------------------------------
_DDP_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP
    from robustlab.common.regimes import ERM

    class PerSample(ERM):
        # a running mean of each training sample's loss, kept by index and updated from every process
        def __init__(self, n):
            super().__init__()
            self.mean = torch.zeros(n, dtype=torch.float64)
            self.count = torch.zeros(n, dtype=torch.int64)
            self.unlabeled_count = torch.zeros(64, dtype=torch.int64)

        def __call__(self, model, batch):
            logits = model(batch["x"])
            self._last = (batch["index"], self.task.per_sample_loss(logits, batch["y"]).detach(),
                          batch["unlabeled"]["index"])
            return self.loss(logits, batch["y"])

        def on_step_end(self, model, state):
            index, loss, u = (state.all_gather(t) for t in self._last)
            self.count[index] += 1
            self.mean[index] += (loss.double() - self.mean[index]) / self.count[index]
            self.unlabeled_count[u] += 1

        def state_dict(self):
            return {"mean": self.mean, "count": self.count, "unlabeled_count": self.unlabeled_count}

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (128,), generator=g)
    x = torch.randn(128, 5, generator=g) + y[:, None]
    loader = DataLoader(ArrayDataset(x, y), batch_size=32)
    unlabeled = DataLoader(ArrayDataset(torch.randn(64, 5), torch.zeros(64, dtype=torch.long)), batch_size=16,
                           shuffle=True)
    model = MLP(5, 3, hidden=(16,))
    fit(model, PerSample(128), loader, unlabeled_loader=unlabeled, epochs=3, out_dir=sys.argv[1],
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False, device="cpu")
    """
)


@pytest.mark.slow
def test_per_sample_state_and_two_loaders_under_ddp_match_one_process(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run([sys.executable, str(script), str(tmp_path / "one")], check=True, env=env, timeout=120)
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path / "two")], env=env, timeout=240, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    one = load_checkpoint(tmp_path / "one" / "last.pt")["regime"]
    two = load_checkpoint(tmp_path / "two" / "last.pt")["regime"]
    assert torch.equal(one["count"], torch.full((128,), 3)) and torch.equal(two["count"], one["count"])
    torch.testing.assert_close(two["mean"], one["mean"], rtol=1e-5, atol=1e-7)
    # both processes read disjoint shares of the unlabelled loader, every epoch reshuffled: 4 steps x 16 = 64
    assert torch.equal(two["unlabeled_count"], torch.full((64,), 3))


def test_a_loader_that_cannot_be_sharded_is_refused_under_ddp():
    from robustlab.common._distributed import Distributed

    d = Distributed.__new__(Distributed)
    d.world, d.rank, d.created, d._keep = 2, 0, False, []
    with pytest.raises(ConfigError, match="unlabeled loader is a list, not a torch DataLoader"):
        d.shard([{"x": torch.ones(2, 2)}], seed=0, what="unlabeled")
