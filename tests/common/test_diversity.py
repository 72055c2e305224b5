"""DiversityAdversarialTraining: the batch it builds, the frozen source, crafting once, resume, errors."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from robustlab.common.attacks import BIM, CW, FGSM, PGD, DeepFool
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.regimes.diversity import DiversityAdversarialTraining


def _net(out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, out))


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 4, generator=g)
    return {"x": x, "y": torch.randint(0, 3, (n,), generator=g), "index": torch.arange(n)}


def _attacks():
    return [FGSM(None, eps=0.1, bounds=(0.0, 1.0)), BIM(None, eps=0.1, steps=3, bounds=(0.0, 1.0)),
            DeepFool(None, eps=0.5, steps=5, bounds=(0.0, 1.0)), CW(None, eps=0.5, steps=5, lr=0.05, bounds=(0.0, 1.0))]


def test_the_loss_is_over_the_clean_batch_and_every_attack_by_hand():
    source, model = _net(seed=0).eval(), _net(seed=1).train()
    regime = DiversityAdversarialTraining(source, _attacks())
    assert regime.names == ["fgsm", "bim", "deepfool", "cw"]
    b = _batch()
    x, y = b["x"], b["y"]
    # the examples crafted by hand on the source with the same attacks
    by_hand = [FGSM(source, eps=0.1, bounds=(0.0, 1.0))(x, y), BIM(source, eps=0.1, steps=3, bounds=(0.0, 1.0))(x, y),
               DeepFool(source, eps=0.5, steps=5, bounds=(0.0, 1.0))(x, y),
               CW(source, eps=0.5, steps=5, lr=0.05, bounds=(0.0, 1.0))(x, y)]
    assert not torch.equal(by_hand[0], x) and not torch.equal(by_hand[1], x)
    torch.manual_seed(0)
    expected = F.cross_entropy(model(torch.cat([x, *by_hand])), y.repeat(5))
    torch.manual_seed(0)
    got = regime(model, b)
    assert torch.allclose(got, expected, atol=1e-6)
    assert regime.step_metrics == {"adv_fraction": 0.8}
    assert model.training


def test_the_source_stays_frozen_and_unchanged_through_fit():
    source, model = _net(seed=0).eval(), _net(seed=1)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    regime = DiversityAdversarialTraining(source, [FGSM(None, eps=0.1), BIM(None, eps=0.1, steps=3)])
    assert regime.networks == {"source": source} and regime.trainable_networks == {}
    assert not any(p.requires_grad for p in source.parameters())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    loader = DataLoader(ArrayDataset(x, (x[:, 0] > 0).long()), batch_size=16, shuffle=True)
    res = fit(model, regime, loader, epochs=2, progress=False)
    assert len(res.history) == 2
    for k, v in source.state_dict().items():
        assert torch.equal(v, before[k]), f"the source's {k} changed"
    assert all(p.grad is None for p in source.parameters())


def test_the_cache_crafts_once_and_gives_the_same_examples():
    source = _net(seed=0).eval()
    calls = []

    class Counting(FGSM):
        def perturb(self, x, y, **kw):
            calls.append(len(x))
            return super().perturb(x, y, **kw)

    cached = DiversityAdversarialTraining(source, [Counting(None, eps=0.1)], cache=True)
    plain = DiversityAdversarialTraining(source, [FGSM(None, eps=0.1)])
    model = _net(seed=1).eval()
    b = _batch()
    first = cached(model, b)
    assert calls == [16]
    half = {k: v[8:] if torch.is_tensor(v) else v for k, v in b.items()}  # seen samples, another batch
    cached(model, half)
    assert calls == [16]
    assert torch.allclose(first, plain(model, b))
    mixed = {"x": torch.rand(4, 4), "y": torch.zeros(4, dtype=torch.long), "index": torch.tensor([0, 1, 100, 101])}
    cached(model, mixed)
    assert calls == [16, 2], "only the unseen samples are crafted"
    # offline crafting gives the same examples
    crafted = plain.craft(b["x"], b["y"], batch_size=5)
    assert torch.equal(crafted["fgsm"], FGSM(source, eps=0.1)(b["x"], b["y"]))
    with pytest.raises(ConfigError, match="index"):
        cached(model, {"x": b["x"], "y": b["y"]})


def test_state_survives_a_checkpoint_and_resume(tmp_path):
    source, model = _net(seed=0), _net(seed=1)
    regime = DiversityAdversarialTraining(source, [FGSM(None, eps=0.1)], cache=True)
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    regime.load_state_dict(torch.load(buf, weights_only=True))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 4, generator=g)
    loader = DataLoader(ArrayDataset(x, (x[:, 0] > 0).long()), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    fit(model, regime, loader, epochs=1, out_dir=tmp_path, progress=False)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    assert "source" in payload["networks"]
    # resuming in a fresh process: a new source is restored from the checkpoint, not left as initialized
    source2, model2 = _net(seed=5), _net(seed=6)
    regime2 = DiversityAdversarialTraining(source2, [FGSM(None, eps=0.1)], cache=True)
    fit(model2, regime2, loader, epochs=2, out_dir=tmp_path, resume=True, progress=False)
    for k, v in source.state_dict().items():
        assert torch.equal(source2.state_dict()[k], v)


def test_other_tasks_use_the_task_loss_and_refuse_minimal_attacks():
    source = _net(out=2)
    regime = DiversityAdversarialTraining(source, [FGSM(None, eps=0.1)], task="regression")
    assert regime.attacks["fgsm"].loss == regime.task.attack_loss
    b = {"x": torch.rand(8, 4), "y": torch.randn(8, 2)}
    model = _net(out=2)
    loss = regime(model, b)
    assert loss.ndim == 0 and torch.isfinite(loss)
    for attack in (DeepFool(None), CW(None, bounds=(0.0, 1.0))):
        with pytest.raises(ConfigError, match="multiclass"):
            DiversityAdversarialTraining(source, [attack], task="multilabel")


def test_errors():
    source = _net()
    with pytest.raises(ConfigError, match="at least one attack"):
        DiversityAdversarialTraining(source, [])
    with pytest.raises(ConfigError, match="built on the source"):
        DiversityAdversarialTraining(source, [PGD(_net(seed=3), eps=0.1)])
    with pytest.raises(ConfigError, match="Attack"):
        DiversityAdversarialTraining(source, {"noise": lambda x, y: x})
    regime = DiversityAdversarialTraining(source, {"a": FGSM(None, eps=0.1), "b": FGSM(None, eps=0.2)})
    assert regime.names == ["a", "b"]
    assert DiversityAdversarialTraining(source, [FGSM(None, eps=0.1), FGSM(None, eps=0.2)]).names == ["fgsm", "fgsm2"]
    with pytest.raises(ConfigError, match="unlabeled"):
        regime(_net(), {**_batch(), "unlabeled": {"x": torch.rand(4, 4)}})
    with pytest.raises(ConfigError, match="batch_size"):
        regime.craft(torch.rand(4, 4), torch.zeros(4, dtype=torch.long), batch_size=0)
