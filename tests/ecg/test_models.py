"""The four channel models: shapes, the in-model preprocessing, model files, determinism and learnability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import load_model, save_model
from robustlab.common.testing import check_model_contract
from robustlab.common.training import TrainConfig, train
from robustlab.ecg.models import CHANNEL_MODELS, ChannelModel, build_channel_model
from robustlab.ecg.models.channels import channel_defaults

NAMES = tuple(CHANNEL_MODELS)
FS, WINDOW, R = 360.0, 720, 360


def _beats(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 1, WINDOW) * 0.2


def test_the_four_names_and_citations():
    assert NAMES == ("cnn", "resnet", "bigru", "cnn_lstm")
    for cls in CHANNEL_MODELS.values():
        assert issubclass(cls, ChannelModel)
        assert "Reference:" in (cls.__doc__ or "")
        assert any(year in cls.citation for year in ("2016", "2017", "2018", "2019", "2020"))


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_size(name):
    model = build_channel_model(name, num_classes=4)
    x = _beats(5)
    assert model(x).shape == (5, 4)
    z = model.embed(x)
    assert z.shape == (5, model.embedding_dim)
    n_params = sum(p.numel() for p in model.parameters())
    assert 5_000 <= n_params <= 100_000, n_params


@pytest.mark.parametrize("name", NAMES)
def test_geometry_of_the_defaults(name):
    model = build_channel_model(name, num_classes=4)
    expected = {"cnn": (360.0, True), "resnet": (360.0, True), "bigru": (90.0, True), "cnn_lstm": (120.0, False)}
    rate, beat_crop = expected[name]
    assert model.rate == rate
    if beat_crop:  # [-0.25 s, +0.45 s] around the R peak
        assert model.crop == (R - 90, 252)
    else:
        assert model.crop == (0, WINDOW)
    assert model.steps == model.crop[1] // round(FS / rate)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_the_input_through_the_preprocessing(name):
    model = build_channel_model(name, num_classes=3).eval()
    x = _beats(3).requires_grad_(True)
    model(x)[:, 1].sum().backward()
    g = x.grad.abs().sum(dim=(0, 1))
    assert torch.isfinite(x.grad).all()
    start, length = model.crop
    assert (g[start:start + length] > 0).float().mean() > 0.9  # every sample it looks at moves the output
    assert torch.all(g[:start] == 0) and torch.all(g[start + length:] == 0)  # nothing outside its crop does


@pytest.mark.parametrize("name", NAMES)
def test_model_contract(name, tmp_path):
    cls = CHANNEL_MODELS[name]
    kwargs = {"num_classes": 3, **channel_defaults(name)}
    check_model_contract(cls, kwargs, _beats(4), (4, 3), tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_model_file_round_trip(name, tmp_path):
    model = build_channel_model(name, num_classes=5, dropout=0.2)
    x = _beats(4)
    model.train()(x)  # batch-norm statistics move: they must travel too
    model.eval()
    path = save_model(model, tmp_path / f"{name}.pt")
    loaded = load_model(path)
    assert type(loaded.model) is type(model) and loaded.args == model.model_args
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
        assert torch.equal(loaded.model.embed(x), model.embed(x))


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_under_a_seed(name):
    x = _beats(4)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        outs.append(build_channel_model(name, num_classes=3).eval()(x).detach())
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("name", NAMES)
def test_record_level_variant(name):
    model = build_channel_model(name, num_classes=6, in_channels=12, fs=500.0, window=2500, beat=False)
    assert model.crop == (0, 2500)
    assert model.rate == {"cnn": 100.0, "resnet": 100.0, "bigru": 25.0, "cnn_lstm": 50.0}[name]
    x = torch.randn(2, 12, 2500) * 0.1
    assert model(x).shape == (2, 6)
    assert model.embed(x).shape == (2, model.embedding_dim)


def test_overrides_reach_the_class():
    model = build_channel_model("cnn", num_classes=2, rate=180.0, embedding_dim=16, channels=(4, 8))
    assert model.rate == 180.0 and model.embedding_dim == 16 and model.model_args["channels"] == [4, 8]
    assert model.embed(_beats(2)).shape == (2, 16)


@pytest.mark.parametrize("bad, match", [
    ({"name": "transformer"}, "unknown channel model"),
    ({"name": "cnn", "r_index": 40}, "outside the window"),
    ({"name": "bigru", "rate": 2.0}, "leave"),
    ({"name": "resnet", "kernels": 3}, "unexpected keyword"),
    ({"name": "cnn", "dropout": 1.0}, "dropout"),
])
def test_bad_configurations_are_refused(bad, match):
    args = {"num_classes": 3, **bad}
    with pytest.raises(ConfigError, match=match):
        build_channel_model(args.pop("name"), **args)


def test_wrong_input_shape_is_named():
    model = build_channel_model("cnn", num_classes=3)
    with pytest.raises(ValueError, match=r"\(N, 1, 720\)"):
        model(torch.randn(2, 1, 500))
    with pytest.raises(ValueError, match=r"\(N, 1, 720\)"):
        model(torch.randn(2, 2, 720))


# -- learnability ------------------------------------------------------------------------------------------------

def _gaussian(t: np.ndarray, centre: float, width_s: float, amplitude: np.ndarray) -> np.ndarray:
    return amplitude[:, None] * np.exp(-0.5 * ((t[None] - centre) / width_s) ** 2)


def _morphology_set(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: a narrow QRS (sigma 10 ms), class 1: a wide one (sigma 35 ms); random amplitude, noise."""
    t = (np.arange(WINDOW) - R) / FS
    y = rng.integers(0, 2, n)
    width = np.where(y == 1, 0.035, 0.010) * rng.uniform(0.85, 1.15, n)
    amp = rng.uniform(0.6, 1.6, n)
    x = amp[:, None] * np.exp(-0.5 * (t[None] / width[:, None]) ** 2)
    x += 0.05 * rng.normal(size=x.shape)
    return torch.tensor(x[:, None], dtype=torch.float32), torch.tensor(y)


def _rhythm_set(n: int, rng: np.random.Generator, noise: float = 0.05,
                neighbours: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Identical beats; class 1 is premature (previous beat 0.45 s before, compensatory pause after), class 0
    regular (neighbours 0.8 s away): only the neighbouring beats, outside the beat crop, tell them apart."""
    t = (np.arange(WINDOW) - R) / FS
    y = rng.integers(0, 2, n)
    amp = rng.uniform(0.6, 1.6, n)
    prev = np.where(y == 1, -0.45, -0.8) + rng.uniform(-0.04, 0.04, n)
    nxt = np.where(y == 1, 0.95, 0.8) + rng.uniform(-0.04, 0.04, n)
    x = _gaussian(t, 0.0, 0.015, amp)
    if neighbours:
        for centre in (prev, nxt):
            x += amp[:, None] * np.exp(-0.5 * ((t[None] - centre[:, None]) / 0.015) ** 2)
    x += noise * rng.normal(size=x.shape)
    return torch.tensor(x[:, None], dtype=torch.float32), torch.tensor(y)


@pytest.mark.parametrize("name", NAMES)
def test_each_model_learns_a_separable_set(name, one_thread):
    rng = np.random.default_rng(1)
    x, y = (_rhythm_set if name == "cnn_lstm" else _morphology_set)(256, rng)
    torch.manual_seed(0)
    model = build_channel_model(name, num_classes=2)
    train(model, "erm", (x, y), config=TrainConfig(epochs=12, batch_size=32, lr=3e-3), seed=0)
    with torch.no_grad():
        accuracy = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95, (name, accuracy)


def test_the_rhythm_set_needs_the_context():
    """What separates the rhythm set lies outside the beat crop: inside it, the windows with and without their
    neighbouring beats agree, so only the context model can learn the set."""
    x, _ = _rhythm_set(64, np.random.default_rng(2), noise=0.0)
    alone, _ = _rhythm_set(64, np.random.default_rng(2), noise=0.0, neighbours=False)
    start, length = build_channel_model("cnn", num_classes=2).crop
    crop = slice(start, start + length)
    assert torch.allclose(x[..., crop], alone[..., crop], atol=1e-4)
    assert not torch.allclose(x, alone, atol=0.1)
