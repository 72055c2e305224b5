"""Co-teaching: the exchange of small-loss selections against a hand computation, the forget-rate schedule, the
peer's training, checkpoints and optimizers, the three tasks, and recovery from 40% symmetric label noise."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import evaluate, fit
from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP
from robustlab.common.regimes import ERM
from robustlab.common.regimes.co_teaching import CoTeaching
from robustlab.common.tasks import TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


class _Lookup(nn.Module):
    """Logits looked up by sample: ``x`` holds the sample's row of ``table``."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def forward(self, x):
        return self.table[x.long()]


def _softplus(v):
    return math.log1p(math.exp(v))


def test_each_network_learns_from_the_samples_the_other_selected():
    # two classes, all labels 0: a sample's loss is softplus(-v) with v its class-0 logit (smaller v, larger loss)
    v_model = [3.0, -1.0, 2.0, 0.0, 1.0, -2.0]  # small-loss order 0, 2, 4, 3 | 1, 5
    v_peer = [-2.0, 2.0, 1.0, 3.0, -1.0, 0.0]  # small-loss order 3, 1, 2, 5 | 4, 0
    model = _Lookup([[v, 0.0] for v in v_model])
    peer = _Lookup([[v, 0.0] for v in v_peer])
    regime = CoTeaching(peer, forget_rate=1 / 3, num_gradual=0)  # keep 6 - round(2) = 4
    batch = {"x": torch.arange(6), "y": torch.zeros(6, dtype=torch.long),
             "meta": {"clean": torch.tensor([1, 0, 1, 1, 0, 1])}}
    loss = regime(model, batch)
    by_model, by_peer = regime.selected
    assert by_model.tolist() == [0, 2, 4, 3] and by_peer.tolist() == [3, 1, 2, 5]
    model_loss = sum(_softplus(-v_model[i]) for i in (3, 1, 2, 5)) / 4  # the model on the peer's selection
    peer_loss = sum(_softplus(-v_peer[i]) for i in (0, 2, 4, 3)) / 4  # the peer on the model's selection
    assert loss.item() == pytest.approx(model_loss + peer_loss, rel=1e-6)
    assert regime.step_metrics["peer_loss"] == pytest.approx(peer_loss, rel=1e-6)
    assert regime.step_metrics["label_precision"] == 0.75  # clean among 0, 2, 4, 3
    loss.backward()
    assert model.table.grad.abs().sum(1).nonzero().flatten().tolist() == [1, 2, 3, 5]
    assert peer.table.grad.abs().sum(1).nonzero().flatten().tolist() == [0, 2, 3, 4]
    # unlabelled samples take no part; at least one sample is kept
    regime = CoTeaching(_Lookup([[v, 0.0] for v in v_peer]), forget_rate=0.9, num_gradual=0)
    regime(model, {"x": torch.arange(6), "y": torch.tensor([0, -1, 0, -1, -1, 0])})
    assert [len(s) for s in regime.selected] == [1, 1]
    assert CoTeaching.select(torch.tensor([0.3, 0.1, 0.2, 0.1]), 0.5).tolist() == [1, 3]  # ties: index order


def test_forget_rate_schedule():
    regime = CoTeaching(MLP(2, 2), forget_rate=0.4, num_gradual=10)
    assert [regime.rate_at(t) for t in (0, 5, 10, 20)] == [0.0, 0.2, 0.4, 0.4]
    squared = CoTeaching(MLP(2, 2), forget_rate=0.4, num_gradual=10, exponent=2)
    assert squared.rate_at(5) == pytest.approx(0.1)
    assert CoTeaching(MLP(2, 2), forget_rate=0.3, num_gradual=0).rate_at(0) == 0.3
    torch.manual_seed(0)
    res = fit(MLP(2, 2), CoTeaching(MLP(2, 2), forget_rate=0.4, num_gradual=2),
              DataLoader(_noisy_blobs(64)[0], batch_size=32), epochs=4, progress=False)
    assert [r["forget_rate"] for r in res.history] == [0.0, 0.2, 0.4, 0.4]
    for bad in (dict(forget_rate=1.0), dict(num_gradual=-1), dict(exponent=0)):
        with pytest.raises(ConfigError):
            CoTeaching(MLP(2, 2), **bad)


def _noisy_blobs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) * 0.5 + (y[:, None].float() * 2 - 1)
    flip = torch.rand(n, generator=g) < 0.2
    return ArrayDataset(x, torch.where(flip, 1 - y, y), meta={"clean": (~flip).long()}), y


def test_the_peer_trains_and_is_checkpointed_with_one_optimizer(tmp_path):
    torch.manual_seed(0)
    model, peer = MLP(2, 2, hidden=(16,)), MLP(2, 2, hidden=(16,))
    before = {k: v.clone() for k, v in peer.state_dict().items()}
    data = DataLoader(_noisy_blobs(128)[0], batch_size=32, shuffle=True)
    regime = CoTeaching(peer, forget_rate=0.2, num_gradual=1)
    res = fit(model, regime, data, val_loader=data, epochs=3, out_dir=tmp_path, progress=False)
    assert any(not torch.equal(before[k], v) for k, v in peer.state_dict().items()), "the peer must train"
    last = load_checkpoint(tmp_path / "last.pt")
    for k, v in peer.state_dict().items():
        assert torch.equal(last["networks"]["peer"][k], v)
    assert set(last["optimizers"]) == {"model"}  # one Adam over both networks
    assert len(last["optimizers"]["model"]["state"]) == len(list(model.parameters())) + len(list(peer.parameters()))
    assert "peer" in load_checkpoint(tmp_path / "best.pt")["networks"]
    row = res.last
    assert {"train_peer_loss", "train_label_precision", "forget_rate", "val_peer_loss",
            "val_peer_accuracy"} <= set(row)
    assert row["val_peer_accuracy"] == pytest.approx(evaluate(peer, data)["accuracy"])
    assert row["val_accuracy"] == pytest.approx(evaluate(model, data)["accuracy"])
    assert row["train_label_precision"] > 0.8 + 0.05  # 20% noise: the small-loss samples are cleaner
    fresh = MLP(2, 2, hidden=(16,))
    fit(MLP(2, 2, hidden=(16,)), CoTeaching(fresh), data, epochs=3, out_dir=tmp_path, resume=True, progress=False)
    for k, v in peer.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_an_optimizer_over_the_model_only_gets_a_twin_for_the_peer(tmp_path):
    torch.manual_seed(0)
    model, peer = MLP(2, 2, hidden=(8,)), MLP(2, 2, hidden=(8,))
    p0 = [p.detach().clone() for p in peer.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    fit(model, CoTeaching(peer), DataLoader(_noisy_blobs(64)[0], batch_size=32), optimizer=opt, epochs=1,
        out_dir=tmp_path, progress=False)
    opts = load_checkpoint(tmp_path / "last.pt")["optimizers"]
    assert set(opts) == {"model", "peer"}
    assert opts["peer"]["param_groups"][0]["lr"] == 0.05 and opts["peer"]["param_groups"][0]["momentum"] == 0.9
    assert any(not torch.equal(a, b) for a, b in zip(p0, peer.parameters()))
    both = torch.optim.SGD([*model.parameters(), *peer.parameters()], lr=0.1)
    assert set(CoTeaching(peer).configure_optimizers(model, both)) == {"model"}
    partial = torch.optim.SGD([*model.parameters(), next(peer.parameters())], lr=0.1)
    with pytest.raises(ConfigError, match="covers 1 of the 4 parameters of the network 'peer'"):
        CoTeaching(peer).configure_optimizers(model, partial)


@pytest.mark.parametrize("task", TASKS)
def test_contract_over_tasks(task):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    y = {"multiclass": lambda: torch.randint(0, 3, (48,), generator=g),
         "multilabel": lambda: torch.randint(0, 2, (48, 3), generator=g).float(),
         "regression": lambda: torch.randn(48, 3, generator=g)}[task]()
    model, peer = MLP(4, 3, hidden=(16,)), MLP(4, 3, hidden=(16,))
    regime = CoTeaching(peer, forget_rate=0.25, num_gradual=0, task=task)
    loss = regime(model, {"x": x[:16], "y": y[:16]})
    assert loss.ndim == 0 and torch.isfinite(loss) and [len(s) for s in regime.selected] == [12, 12]
    loss.backward()
    for net in (model, peer):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
        assert any(p.grad.abs().sum() > 0 for p in net.parameters())
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    assert "CoTeaching" in repr(regime)
    loader = DataLoader(ArrayDataset(x, y), batch_size=16)
    res = fit(model, regime, loader, val_loader=loader, epochs=2, progress=False)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_peer_loss"]) for r in res.history)


@pytest.mark.slow
def test_beats_erm_under_40_percent_symmetric_label_noise():
    from sklearn.datasets import make_classification

    k, n, noise = 4, 1000, 0.4
    x, y = make_classification(n_samples=n + 2000, n_features=20, n_informative=10, n_redundant=0, n_classes=k,
                               n_clusters_per_class=1, class_sep=1.0, random_state=0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    flip = torch.rand(n, generator=g) < noise
    other = (y[:n] + torch.randint(1, k, (n,), generator=g)) % k  # symmetric: any other class, uniformly
    noisy = torch.where(flip, other, y[:n])
    train = ArrayDataset(x[:n], noisy, meta={"clean": (~flip).long()})
    test = DataLoader(ArrayDataset(x[n:], y[n:]), batch_size=500)

    def run(make_regime):
        torch.manual_seed(0)
        model, peer = MLP(20, k, hidden=(256, 256)), MLP(20, k, hidden=(256, 256))
        loader = DataLoader(train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
        regime = make_regime(peer)
        res = fit(model, regime, loader, val_loader=test, epochs=30, progress=False, device="cpu")
        return res.last, model

    erm, _ = run(lambda peer: ERM())
    cot, _ = run(lambda peer: CoTeaching(peer, forget_rate=noise, num_gradual=5))
    print(f"noise {flip.float().mean():.3f}; clean test accuracy after 30 epochs: ERM {erm['val_accuracy']:.3f}, "
          f"co-teaching {cot['val_accuracy']:.3f} (peer {cot['val_peer_accuracy']:.3f}); label precision of the "
          f"selection in the last epoch {cot['train_label_precision']:.3f}")
    assert cot["val_accuracy"] > erm["val_accuracy"] + 0.1
    assert cot["val_accuracy"] > 0.75 and cot["val_peer_accuracy"] > 0.75
    assert cot["train_label_precision"] > 0.8  # against 0.6 clean labels in a random selection
