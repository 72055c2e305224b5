"""The multi-resolution representation: channel embeddings, the downstream classifier and MRRNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.common.attacks import PGD
from robustlab.common.errors import ConfigError, DataError
from robustlab.common.modelfile import load_model, save_model
from robustlab.common.testing import check_model_contract
from robustlab.ecg.models import (
    CHANNEL_MODELS,
    MRRClassifier,
    MRRNet,
    build_channel_model,
    channel_embeddings,
)

GBDT = {"n_threads": 1}  # a few hundred rows: one OpenMP thread is faster than a team
FAST = {"gbdt": {"max_iter": 40, **GBDT}, "mlp": {"epochs": 15, "batch_size": 64, "lr": 3e-3}, "logreg": {"C": 1.0}}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return [build_channel_model(name, num_classes=3).eval() for name in CHANNEL_MODELS]


def _separable(n: int, rng: np.random.Generator, *, d: int = 6, f: int = 3, k: int = 3, through: str = "Z"):
    """Class k shifts one column of Z (or of F) by 3 standard deviations; the other block is noise."""
    y = rng.integers(0, k, n)
    Z = rng.normal(size=(n, d)).astype(np.float32) * 5 + 10
    F = rng.normal(size=(n, f)).astype(np.float32) * 0.1 - 2
    target, scale = (Z, 5.0) if through == "Z" else (F, 0.1)
    for c in range(k):
        target[y == c, c] += 4 * scale
    return Z, F, y


# -- channel_embeddings ------------------------------------------------------------------------------------------

def test_channel_embeddings_are_the_models_embeddings_side_by_side(models):
    x = torch.randn(10, 1, 720) * 0.3
    models[0].train()
    Z = channel_embeddings(models, x.numpy(), batch_size=4)
    assert Z.shape == (10, sum(m.embedding_dim for m in models)) and Z.dtype == np.float32
    assert models[0].training and not models[1].training  # each model's mode is restored
    col = 0
    for m in models:
        was = m.training
        with torch.no_grad():
            expected = m.eval().embed(x).numpy()
        m.train(was)
        np.testing.assert_allclose(Z[:, col:col + m.embedding_dim], expected, rtol=1e-5, atol=1e-6)
        col += m.embedding_dim
    np.testing.assert_allclose(channel_embeddings(models, x, batch_size=1024), Z, rtol=1e-5, atol=1e-6)
    models[0].eval()


# -- MRRClassifier -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", ["gbdt", "mlp", "logreg"])
def test_heads_fit_a_separable_set(head, one_thread):
    rng = np.random.default_rng(0)
    Z, F, y = _separable(600, rng)
    Zt, Ft, yt = _separable(300, rng)
    clf = MRRClassifier(head, **FAST[head]).fit(Z, F, y, Zt[:100], Ft[:100], yt[:100])
    p = clf.predict_proba(Zt, Ft)
    assert p.shape == (300, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (clf.predict(Zt, Ft) == yt).mean() >= 0.9
    assert clf.predict(Zt, Ft).dtype == np.int64


@pytest.mark.parametrize("head", ["gbdt", "mlp", "logreg"])
def test_the_features_are_used_or_ignored(head, one_thread):
    rng = np.random.default_rng(1)
    Z, F, y = _separable(600, rng, through="F")  # only F tells the classes apart
    Zt, Ft, yt = _separable(300, rng, through="F")
    with_f = MRRClassifier(head, **FAST[head]).fit(Z, F, y)
    assert (with_f.predict(Zt, Ft) == yt).mean() >= 0.9
    without = MRRClassifier(head, use_features=False, **FAST[head]).fit(Z, None, y)
    assert without.mean_.shape == (Z.shape[1],) and without.n_features_ == 0
    assert (without.predict(Zt, None) == yt).mean() < 0.6  # chance is 1/3
    np.testing.assert_array_equal(without.predict_proba(Zt, Ft), without.predict_proba(Zt, None))
    np.testing.assert_array_equal(without.predict_proba(Zt, Ft), without.predict_proba(Zt, Ft * 100))


def test_standardisation_uses_the_training_set_only():
    rng = np.random.default_rng(2)
    Z, F, y = _separable(200, rng)
    Zv, Fv, yv = _separable(100, rng)
    clf = MRRClassifier("gbdt", max_iter=10, **GBDT).fit(Z, F, y, Zv * 50 + 7, Fv * 50 + 7, yv)
    X = np.concatenate([Z, F], axis=1)
    np.testing.assert_allclose(clf.mean_, X.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(clf.scale_, X.std(axis=0), rtol=1e-5)


def test_a_constant_column_gets_scale_one():
    rng = np.random.default_rng(3)
    Z, F, y = _separable(100, rng)
    F[:, 1] = 4.0
    clf = MRRClassifier("gbdt", max_iter=5, **GBDT).fit(Z, F, y)
    assert clf.scale_[Z.shape[1] + 1] == 1.0
    assert np.isfinite(clf.predict_proba(Z, F)).all()


def test_balanced_mlp_favours_the_rare_class(one_thread):
    """With 5% of class 1 and overlapping classes, the balanced loss predicts class 1 far more often."""
    rng = np.random.default_rng(4)
    n = 2000
    y = (rng.random(n) < 0.05).astype(np.int64)
    Z = rng.normal(size=(n, 2)).astype(np.float32) + y[:, None] * 1.5
    predicted = {}
    for weight in ("balanced", None):
        clf = MRRClassifier("mlp", use_features=False, class_weight=weight, epochs=8, lr=3e-3).fit(Z, None, y)
        predicted[weight] = clf.predict(Z, None).mean()
    assert predicted["balanced"] > 3 * max(predicted[None], 0.01)


@pytest.mark.parametrize("head", ["gbdt", "mlp", "logreg"])
def test_same_seed_same_classifier(head):
    rng = np.random.default_rng(5)
    Z, F, y = _separable(300, rng)
    a = MRRClassifier(head, seed=3, **FAST[head]).fit(Z, F, y).predict_proba(Z, F)
    b = MRRClassifier(head, seed=3, **FAST[head]).fit(Z, F, y).predict_proba(Z, F)
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_named():
    rng = np.random.default_rng(6)
    Z, F, y = _separable(50, rng)
    with pytest.raises(ConfigError, match="head"):
        MRRClassifier("svm")
    with pytest.raises(DataError, match="needs the hand-crafted features"):
        MRRClassifier("gbdt").fit(Z, None, y)
    bad = F.copy()
    bad[7, 2] = np.nan
    with pytest.raises(DataError, match="row 7, column 2"):
        MRRClassifier("gbdt").fit(Z, bad, y)
    with pytest.raises(DataError, match="rows"):
        MRRClassifier("gbdt").fit(Z, F[:-1], y)
    with pytest.raises(DataError, match="class indices"):
        MRRClassifier("gbdt").fit(Z, F, y.astype(float))
    clf = MRRClassifier("gbdt", max_iter=5, **GBDT).fit(Z, F, y)
    with pytest.raises(DataError, match="fitted on 6"):
        clf.predict(Z[:, :5], F)
    with pytest.raises(ConfigError, match="not fitted"):
        MRRClassifier("mlp").predict(Z, F)


# -- MRRNet ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted(models):
    """An mlp-head MRR over the (untrained) channel models: windows, features, labels, classifier, net."""
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(120, 1, 720)) * 0.3).astype(np.float32)
    feats = rng.normal(size=(120, 4)).astype(np.float32) * 3 + 1
    y = rng.integers(0, 3, 120)
    Z = channel_embeddings(models, x)
    clf = MRRClassifier("mlp", epochs=3, seed=1).fit(Z, feats, y)
    return x, feats, y, clf, clf.to_module(models)


def test_pack_unpack_round_trip(fitted):
    x, feats, _, _, net = fitted
    packed = MRRNet.pack(x, feats)
    assert packed.shape == (120, 1, 724) and packed.dtype == torch.float32
    windows, features = net.unpack(packed)
    assert torch.equal(windows, torch.from_numpy(x)) and torch.equal(features, torch.from_numpy(feats))
    two = MRRNet.pack(torch.randn(2, 3, 10), torch.ones(2, 4))
    assert two.shape == (2, 3, 14) and torch.all(two[:, 0, 10:] == 1) and torch.all(two[:, 1:, 10:] == 0)
    assert torch.equal(MRRNet.pack(x, None), torch.from_numpy(x))
    with pytest.raises(DataError, match="features"):
        MRRNet.pack(x, feats[:5])
    with pytest.raises(ValueError, match="724"):
        net(torch.zeros(2, 1, 720))


def test_eps_mask_is_zero_on_the_features(fitted):
    _, _, _, _, net = fitted
    mask = net.eps_mask(0.05)
    assert mask.shape == (1, 724)
    assert torch.all(mask[:, :720] == 0.05) and torch.all(mask[:, 720:] == 0)
    with pytest.raises(ConfigError, match="eps must be >= 0"):
        net.eps_mask(-0.05)


def test_an_attack_with_the_mask_leaves_the_features_alone(fitted):
    x, feats, y, _, net = fitted
    packed = MRRNet.pack(x[:16], feats[:16])
    adv = PGD(net, eps=net.eps_mask(0.05), steps=3)(packed, torch.from_numpy(y[:16]))
    assert torch.equal(adv[..., 720:], packed[..., 720:])
    moved = (adv[..., :720] - packed[..., :720]).abs()
    assert moved.max() <= 0.05 + 1e-6 and moved.max() > 0.01


def test_gradient_reaches_windows_and_features(fitted):
    x, feats, _, _, net = fitted
    packed = MRRNet.pack(x[:4], feats[:4]).requires_grad_(True)
    net(packed)[:, 0].sum().backward()
    assert packed.grad[..., :720].abs().sum() > 0 and packed.grad[..., 720:].abs().sum() > 0


def test_mrrnet_equals_the_classifier(fitted):
    x, feats, _, clf, net = fitted
    with torch.no_grad():
        p = torch.softmax(net(MRRNet.pack(x, feats)), dim=1).double().numpy()
    expected = clf.predict_proba(channel_embeddings(list(net.channels), x), feats)
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert not np.allclose(p, p.mean(axis=0), atol=1e-3)  # the comparison is not between constants


def test_mrrnet_model_file_round_trip(fitted, tmp_path):
    x, feats, _, _, net = fitted
    path = save_model(net, tmp_path / "mrr.pt")
    loaded = load_model(path)
    assert type(loaded.model) is MRRNet
    assert [c["name"] for c in loaded.args["channels"]] == list(CHANNEL_MODELS)
    packed = MRRNet.pack(x, feats)
    with torch.no_grad():
        assert torch.equal(loaded.model(packed), net(packed))


def test_mrrnet_model_contract(tmp_path):
    channels = [{"name": name, "args": {"num_classes": 2}} for name in CHANNEL_MODELS]
    x = MRRNet.pack(torch.randn(4, 1, 720) * 0.3, torch.randn(4, 5))
    check_model_contract(MRRNet, {"channels": channels, "num_features": 5, "num_classes": 3}, x, (4, 3), tmp_path)
    net = MRRNet(channels, 5, 3)
    assert not any(k.startswith(f"channels.{i}.head.") for i in range(4) for k in net.state_dict())


def test_mrrnet_without_features(models):
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(60, 1, 720)) * 0.3).astype(np.float32)
    y = rng.integers(0, 2, 60)
    clf = MRRClassifier("mlp", use_features=False, epochs=2).fit(channel_embeddings(models, x), None, y)
    net = clf.to_module(models)
    assert net.num_features == 0 and net.eps_mask(0.1).shape == (1, 720)
    with torch.no_grad():
        p = torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()
    np.testing.assert_allclose(p, clf.predict_proba(channel_embeddings(models, x)), atol=1e-5)


def test_to_module_refuses_what_it_cannot_build(models):
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(40, 1, 720)) * 0.3).astype(np.float32)
    y = rng.integers(0, 2, 40)
    Z = channel_embeddings(models, x)
    with pytest.raises(ConfigError, match="head='mlp'"):
        MRRClassifier("gbdt", use_features=False, max_iter=3, **GBDT).fit(Z, None, y).to_module(models)
    clf = MRRClassifier("mlp", use_features=False, epochs=1).fit(Z, None, y)
    with pytest.raises(ConfigError, match="columns"):
        clf.to_module(models[:2])
    with pytest.raises(ConfigError, match="not a channel model"):
        clf.to_module([torch.nn.Linear(2, 128)])  # type: ignore[list-item]
