"""Vision models: the model contract (shapes, gradients to every parameter, eval determinism, checkpoint and model
file round trips), the published sizes of ResNet-32 and WRN-40-2, the embedding layer FeatureRecorder reaches, the
registry and argument checks, and a little training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder
from robustlab.common.models import SmallCNN
from robustlab.common.testing import check_model_contract, exported_modules
from robustlab.vision import models
from robustlab.vision.models import MODELS, PatchCNN, ResNet, WideResNet, build_model, embedding_layer

CASES = [
    (ResNet, {"depth": 8}, (1, 28, 28)),
    (ResNet, {"depth": 14, "in_channels": 3, "num_classes": 4}, (3, 32, 32)),
    (WideResNet, {"depth": 10, "widen_factor": 1}, (1, 28, 28)),
    (WideResNet, {"depth": 10, "widen_factor": 2, "dropout": 0.0, "in_channels": 3, "num_classes": 4}, (3, 32, 32)),
]


GENERATIVE = {"DCGANGenerator", "DCGANDiscriminator"}  # forward(z, y) and (x, y): their tests are in test_gan.py


def test_every_exported_model_has_a_case():
    assert set(exported_modules(models)) == {cls.__name__ for cls, _, _ in CASES} | {"PatchCNN"} | GENERATIVE


@pytest.mark.parametrize("kwargs, side", [({"width": 4}, 32), ({"width": 2, "num_classes": 3, "dropout": 0.0}, 16)])
def test_patch_cnn_contract(kwargs, side, tmp_path, one_thread):
    x = torch.rand(4, 1, side, side)
    check_model_contract(PatchCNN, kwargs, x, (4, kwargs.get("num_classes", 2)), tmp_path)
    model = PatchCNN(**kwargs).eval()
    assert model.citation
    emb = model.embed(x)
    assert emb.shape == (4, model.embedding_dim) == (4, 8 * kwargs["width"])
    assert torch.allclose(model.head(emb), model(x))
    assert model.features(model.blocks(x)).shape[-1] == side // 8  # the map Grad-CAM reads


@pytest.mark.parametrize("kwargs, match", [({"width": 0}, "width"), ({"dropout": 1.0}, "dropout")])
def test_patch_cnn_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        PatchCNN(**kwargs)


@pytest.mark.parametrize("cls, kwargs, shape", CASES)
def test_model_contract(cls, kwargs, shape, tmp_path, one_thread):
    x = torch.randn(4, *shape)
    check_model_contract(cls, kwargs, x, (4, kwargs.get("num_classes", 10)), tmp_path)
    model = cls(**kwargs).eval()
    assert model.citation and model.embedding_layer == "features"
    with FeatureRecorder(model, model.embedding_layer) as rec:
        logits = model(x)
    emb = rec.outputs["features"]
    assert emb.shape == (4, model.embedding_dim)
    assert torch.equal(emb, model.embed(x)) and torch.allclose(model.fc(emb), logits)


@pytest.mark.parametrize("name, weights, dim, convs", [("resnet32", 464_154, 64, 1 + 3 * 5 * 2),
                                                       ("wrn40_2", 2_243_546, 128, 1 + 3 * 6 * 2)])
def test_published_sizes(name, weights, dim, convs, one_thread):
    """On CIFAR's three channels ResNet-32 has 0.46 M weights (He et al., Table 6) and WRN-40-2 2.2 M (Zagoruyko &
    Komodakis, Table 1); with one input channel 3 x 3 x 16 x 2 = 288 fewer."""
    model = build_model(name, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == weights
    assert sum(p.numel() for p in build_model(name).parameters()) == weights - 288
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules()) == convs
    assert model.embedding_dim == dim
    out = build_model(name).eval()(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_resnet_layout():
    model = ResNet(depth=32)
    assert [len(s) for s in (model.layer1, model.layer2, model.layer3)] == [5, 5, 5]
    assert [s[0].conv1.out_channels for s in (model.layer1, model.layer2, model.layer3)] == [16, 32, 64]
    assert [s[0].conv1.stride for s in (model.layer1, model.layer2, model.layer3)] == [(1, 1), (2, 2), (2, 2)]
    # option A: the shortcut that changes the shape subsamples and pads with zeros, without weights
    shortcut = model.layer2[0].shortcut
    assert not list(shortcut.parameters())
    x = torch.randn(1, 16, 28, 28)
    y = shortcut(x)
    assert y.shape == (1, 32, 14, 14) and torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_wide_resnet_layout():
    model = WideResNet()
    assert (model.depth, model.widen_factor, model.dropout) == (40, 2, 0.3)
    assert [len(g) for g in (model.block1, model.block2, model.block3)] == [6, 6, 6]
    assert [g[0].conv1.out_channels for g in (model.block1, model.block2, model.block3)] == [32, 64, 128]
    assert all(b.dropout == 0.3 for g in (model.block1, model.block2, model.block3) for b in g)
    x = torch.randn(2, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x)), "dropout is active in training mode"


def test_registry():
    assert list(MODELS) == ["small_cnn", "resnet32", "wrn40_2"]
    assert isinstance(build_model("small_cnn"), SmallCNN)
    assert build_model("resnet32", num_classes=4).model_args == {"depth": 32, "in_channels": 1, "num_classes": 4}
    assert build_model("wrn40_2", depth=40).depth == 40  # the fixed value itself is fine
    with pytest.raises(ConfigError, match="did you mean 'resnet32'"):
        build_model("resnet23")
    with pytest.raises(ConfigError, match=r"'resnet32' fixes depth=32; got depth=20.*ResNet directly"):
        build_model("resnet32", depth=20)
    with pytest.raises(ConfigError, match="'wrn40_2'.*unexpected keyword"):
        build_model("wrn40_2", width=3)


def test_embedding_layer():
    cnn = build_model("small_cnn")
    name = embedding_layer(cnn)
    assert name == "8" and isinstance(cnn[int(name) + 1], nn.Linear)
    with FeatureRecorder(cnn, name) as rec:
        cnn(torch.randn(3, 1, 28, 28))
    assert rec.outputs[name].shape == (3, cnn[-1].in_features)
    assert embedding_layer(WideResNet(depth=10)) == "features"
    with pytest.raises(ConfigError, match="names no embedding layer"):
        embedding_layer(nn.Conv2d(1, 1, 3))


@pytest.mark.parametrize("cls, kwargs, match", [
    (ResNet, {"depth": 30}, "6n \\+ 2"),
    (ResNet, {"depth": 2}, "6n \\+ 2"),
    (ResNet, {"in_channels": 0}, "in_channels"),
    (ResNet, {"num_classes": 2.0}, "num_classes"),
    (WideResNet, {"depth": 28 + 1}, "6n \\+ 4"),
    (WideResNet, {"widen_factor": 0}, "widen_factor"),
    (WideResNet, {"dropout": 1.0}, "dropout"),
    (WideResNet, {"dropout": True}, "dropout"),
])
def test_bad_arguments(cls, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("model", [ResNet(depth=8), WideResNet(depth=10, widen_factor=1)])
def test_wrong_input_shape(model):
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.randn(2, 3, 28, 28))


@pytest.mark.parametrize("cls, kwargs", [(ResNet, {"depth": 8}), (WideResNet, {"depth": 10, "widen_factor": 1})])
def test_learns_a_separable_set(cls, kwargs, one_thread):
    """Bright vs dark images: a few Adam steps separate them."""
    torch.manual_seed(0)
    x = torch.cat([torch.randn(16, 1, 12, 12) + 1.0, torch.randn(16, 1, 12, 12) - 1.0])
    y = torch.tensor([0] * 16 + [1] * 16)
    model = cls(num_classes=2, **kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model.eval()(x).argmax(1) == y).float().mean() == 1.0
