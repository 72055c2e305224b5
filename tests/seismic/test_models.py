"""Seismic models: the model contract (shapes, gradients to every parameter, eval determinism, checkpoint and model
file round trips), the registry, argument checks, and a little training on a separable synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import load_model, save_model
from robustlab.common.testing import check_model_contract
from robustlab.seismic.models import MODELS, ConvNetQuake, SpectrogramCNN, build_model

CASES = [
    (ConvNetQuake, {}, (1, 2000)),
    (ConvNetQuake, {"in_channels": 3, "n_classes": 5, "n_samples": 1200, "pool": "avg", "batch_norm": True},
     (3, 1200)),
    (SpectrogramCNN, {}, (1, 2000)),
    (SpectrogramCNN, {"in_channels": 3, "n_classes": 5, "n_samples": 1200, "batch_norm": True, "n_mels": 24},
     (3, 1200)),
]


@pytest.mark.parametrize("cls, kwargs, shape", CASES)
def test_model_contract(cls, kwargs, shape, tmp_path):
    x = torch.randn(4, *shape)
    check_model_contract(cls, kwargs, x, (4, kwargs.get("n_classes", 2)), tmp_path)
    model = cls(**kwargs)
    assert model.citation and model.embed(x).shape == (4, model.embedding_dim)
    assert model.num_classes == model.n_classes == kwargs.get("n_classes", 2) and model.rate == 20.0


def test_registry():
    assert MODELS == {"cnn": ConvNetQuake, "spec": SpectrogramCNN}
    assert isinstance(build_model("spec", n_mels=16), SpectrogramCNN)
    with pytest.raises(ConfigError, match="did you mean 'cnn'"):
        build_model("cnm")
    with pytest.raises(ConfigError, match="'cnn'.*unexpected keyword"):
        build_model("cnn", kernel=5)


def test_convnetquake_layout():
    model = ConvNetQuake()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 8 and all(c.kernel_size == (3,) and c.stride == (2,) and c.out_channels == 32
                                   for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert model.embedding_dim == 32 * 8  # 2000 samples halved 8 times: 8 steps, flattened
    assert ConvNetQuake(pool="avg").embedding_dim == 32
    assert ConvNetQuake(pool="avg")(torch.randn(2, 1, 3000)).shape == (2, 2)  # average pooling takes any length


@pytest.mark.parametrize("cls, kwargs, match", [
    (ConvNetQuake, {"layers": 12}, "2\\^12"),
    (ConvNetQuake, {"channels": 0}, "channels"),
    (ConvNetQuake, {"dropout": 1.0}, "dropout"),
    (ConvNetQuake, {"pool": "max"}, "pool"),
    (ConvNetQuake, {"rate": -1.0}, "rate"),
    (SpectrogramCNN, {"channels": ()}, "channels"),
    (SpectrogramCNN, {"n_samples": 200}, "pools need"),
    (SpectrogramCNN, {"dropout": -0.1}, "dropout"),
    (SpectrogramCNN, {"n_mels": 0}, "n_mels"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls, kwargs", [(ConvNetQuake, {}), (SpectrogramCNN, {"n_samples": 2000})])
def test_wrong_input_shape(cls, kwargs):
    with pytest.raises(ValueError, match="waveforms of shape"):
        cls(**kwargs)(torch.randn(2, 1, 1999))
    with pytest.raises(ValueError, match="waveforms of shape"):
        cls(**kwargs)(torch.randn(2, 3, 2000))


def test_spectrogram_cnn_takes_any_long_enough_length():
    model = SpectrogramCNN()  # n_samples=None
    assert model(torch.randn(2, 1, 1200)).shape == (2, 2) and model.min_samples == 7 * 32
    assert model(torch.randn(1, 1, model.min_samples)).shape == (1, 2)
    with pytest.raises(ValueError, match="L >= 224"):
        model(torch.randn(1, 1, model.min_samples - 1))


def _separable(n=64, seed=0):
    """Class 0: a 2 Hz burst, class 1: a 6 Hz burst, each at a random time in noise, z-scored, 20 Hz, 100 s."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.arange(2000) / 20.0
    x = rng.standard_normal((n, 1, 2000)) * 0.5
    for i in range(n):
        start = rng.uniform(5, 60)
        burst = np.exp(-0.5 * ((t - start - 10) / 5) ** 2) * np.sin(2 * np.pi * (2.0 if y[i] == 0 else 6.0) * t)
        x[i, 0] += 3 * burst
    x /= x.std(-1, keepdims=True)
    return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)


@pytest.mark.parametrize("name", ["cnn", "spec"])
def test_trains_a_little_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    x, y = _separable()
    model = build_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        model.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    xt, yt = _separable(seed=1)
    model.eval()
    with torch.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    assert accuracy >= 0.9, accuracy
    path = save_model(model, tmp_path / "model.pt", preprocessing={"rate": 20.0, "n_samples": 2000})
    loaded = load_model(path)
    assert type(loaded.model) is type(model) and loaded.args == model.model_args
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(xt), model(xt))
