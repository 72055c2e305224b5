"""Genomics models: shapes, parameter counts, variants, validation, and a quick check that each one learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robustlab.common.metrics import auroc
from robustlab.common.testing import check_model_contract, exported_modules
from robustlab.genomics import models
from robustlab.genomics.models import CNNk, DistNet, LocalNet

ALL = [getattr(models, name) for name in models.__all__]


# Hand-counted parameters of the standard variant (conv: in*out*width + out; dense: in*out + out).
PARAMS = {
    # conv1 4*24*19+24, conv2 24*96*4+96, output 96*T+T
    LocalNet: lambda t: 1848 + 9312 + 97 * t,
    # conv1 4*24*7+24, conv2 24*32*6+32, conv3 32*48*6+48, conv4 48*64*4+64, conv5 64*96*4+96, output 97*T
    DistNet: lambda t: 696 + 4640 + 9264 + 12352 + 24672 + 97 * t,
    # conv1 4*30*19+30, conv2 30*128*5+128, dense 256*512+512, output 513*T
    CNNk: lambda t: 2310 + 19328 + 131584 + 513 * t,
}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("num_tasks", [1, 12])
def test_output_shape_and_parameter_count(cls, num_tasks):
    model = cls(num_tasks)
    out = model(torch.zeros(3, 4, 200))
    assert out.shape == (3, num_tasks)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[cls](num_tasks)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_contract(cls):
    assert isinstance(cls.citation, str) and "Koo" in cls.citation and "20" in cls.citation
    assert cls.__doc__ and "Shape:" in cls.__doc__ and "Reference:" in cls.__doc__
    model = cls(2)
    assert isinstance(model.conv1, nn.Conv1d) and model.conv1.in_channels == 4
    assert isinstance(model.act1, nn.ReLU)
    x = torch.rand(5, 4, 200, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# The model contract over models.__all__. Per exported class: (constructor arguments, input length, documented
# output shape (N, num_tasks)); each class also has a regularized case (batch norm and dropout), so that eval mode
# has something to switch off and the checkpoint holds buffers. A class exported without an entry fails
# test_every_exported_model_has_a_contract_case.
CONTRACT_CASES = {
    "LocalNet": [({"num_tasks": 2}, 200, (5, 2)),
                 ({"num_tasks": 1, "dropout": LocalNet.paper_dropout, "batch_norm": True}, 200, (5, 1))],
    "DistNet": [({"num_tasks": 3}, 200, (5, 3)),
                ({"num_tasks": 1, "dropout": DistNet.paper_dropout, "batch_norm": True}, 200, (5, 1))],
    "CNNk": [({"num_tasks": 2, "pool": 25}, 200, (5, 2)),
             ({"num_tasks": 1, "pool": 4, "length": 100, "dropout": CNNk.paper_dropout, "batch_norm": True}, 100,
              (5, 1))],
}
EXPORTED = exported_modules(models)


def test_every_exported_model_has_a_contract_case():
    missing = [n for n in EXPORTED if not CONTRACT_CASES.get(n)]
    assert not missing, f"exported models without an entry in CONTRACT_CASES: {missing}"
    assert set(CONTRACT_CASES) <= set(EXPORTED), set(CONTRACT_CASES) - set(EXPORTED)


@pytest.mark.parametrize(
    ("name", "kwargs", "length", "out_shape"),
    [pytest.param(n, *case, id=f"{n}-{i}") for n, cases in CONTRACT_CASES.items() for i, case in enumerate(cases)],
)
def test_model_contract(tmp_path, name, kwargs, length, out_shape):
    """robustlab.common.testing.check_model_contract on a batch of random one-hot DNA."""
    idx = torch.randint(0, 4, (out_shape[0], length), generator=torch.Generator().manual_seed(1))
    x = nn.functional.one_hot(idx, 4).permute(0, 2, 1).float()
    check_model_contract(getattr(models, name), kwargs, x, out_shape, tmp_path)


@pytest.mark.parametrize("pool", CNNk.pool_sizes)
def test_cnnk_every_pool_keeps_total_downsampling(pool):
    model = CNNk(12, pool=pool)
    assert model.pool == pool
    assert model.dense.in_features == 128 * 2  # 200 / 100 positions x 128 filters
    pools = [m.kernel_size for m in model.modules() if isinstance(m, nn.MaxPool1d)]
    assert int(np.prod(pools)) == 100
    assert model(torch.zeros(2, 4, 200)).shape == (2, 12)


@pytest.mark.parametrize("pool", [0, 3, 5, 20, 200, -2, 2.0, True, "2", None])
def test_cnnk_rejects_other_pools(pool):
    with pytest.raises(ValueError, match="pool"):
        CNNk(pool=pool)


def test_layer_sizes_follow_the_papers():
    local, dist = LocalNet(), DistNet()
    assert (local.conv1.out_channels, local.conv1.kernel_size, local.pool1.kernel_size) == (24, (19,), 50)
    assert (local.conv2.out_channels, local.conv2.kernel_size, local.conv2.padding) == (96, (4,), (0,))
    assert local.output.in_features == 96
    convs = [m for m in dist.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 5  # the "five convolution layers"
    assert [c.out_channels for c in convs] == [24, 32, 48, 64, 96]
    assert [c.kernel_size[0] for c in convs] == [7, 6, 6, 4, 4]
    assert [m.kernel_size for m in dist.modules() if isinstance(m, nn.MaxPool1d)] == [3, 4, 3]
    assert dist.output.in_features == 96  # 200 -> 195 -> 65 -> 60 -> 15 -> 12 -> 4 -> 1 position
    cnn = CNNk(pool=50)
    assert (cnn.conv1.out_channels, cnn.conv1.kernel_size, cnn.pool1.kernel_size) == (30, (19,), 50)
    assert (cnn.conv2.out_channels, cnn.conv2.kernel_size, cnn.pool2.kernel_size) == (128, (5,), 2)
    assert cnn.dense.out_features == 512
    assert not hasattr(CNNk(pool=1), "pool1") and not hasattr(CNNk(pool=100), "pool2")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_regularized_variant(cls):
    plain = cls(1)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.Dropout)) for m in plain.modules())
    assert plain.conv1.bias is not None
    reg = cls(1, dropout=cls.paper_dropout, batch_norm=True)
    bns = [m for m in reg.modules() if isinstance(m, nn.BatchNorm1d)]
    rates = [m.p for m in reg.modules() if isinstance(m, nn.Dropout)]
    assert len(bns) == len(cls.paper_dropout) and rates == list(cls.paper_dropout)
    assert reg.conv1.bias is None  # batch norm supplies the shift
    # parameter names of the convolutions and dense layers are the same in both variants
    assert {k for k in plain.state_dict() if "conv" in k and "weight" in k} <= set(reg.state_dict())
    x = torch.rand(8, 4, 200)
    reg.eval()
    assert torch.equal(reg(x), reg(x))
    reg.train()
    torch.manual_seed(1)
    a = reg(x)
    torch.manual_seed(2)
    assert not torch.allclose(a, reg(x))
    one_rate = cls(1, dropout=0.3)
    assert {m.p for m in one_rate.modules() if isinstance(m, nn.Dropout)} == {0.3}


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": (0.1, 0.2, 0.3, 0.4)}, "one rate per hidden layer"),
        ({"dropout": True}, "dropout"),
        ({"activation": "tanh"}, "activation"),
        ({"num_tasks": 0}, "num_tasks"),
        ({"length": 60}, "length"),
    ],
)
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls, shortest", [(LocalNet, 200), (DistNet, 200), (CNNk, 100)], ids=lambda c: str(c))
def test_other_lengths(cls, shortest):
    for length in (shortest, 1000):
        model = cls(3, length=length)
        assert model(torch.rand(2, 4, length)).shape == (2, 3)
    with pytest.raises(ValueError, match="length"):
        cls(length=shortest - 1)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_exponential_first_layer(cls):
    model = cls(1, activation="exponential", batch_norm=True)
    assert type(model.act1).__name__ == "Exponential"
    assert all(
        isinstance(m, nn.ReLU)
        for name, m in model.named_children()
        if name.startswith("act") and name != "act1"
    )
    out = model.eval()(torch.rand(4, 4, 200))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_learns_an_embedded_motif(cls, planted_motif):
    torch.manual_seed(0)
    x, y = map(torch.from_numpy, planted_motif(2000, 0))
    x_test, y_test = map(torch.from_numpy, planted_motif(400, 1))
    model = cls(1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(5):
        perm = torch.randperm(len(x))
        for b in range(0, len(x), 32):
            i = perm[b : b + 32]
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[i]).squeeze(1), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        scores = model(x_test).squeeze(1).numpy()
    assert auroc(y_test.numpy().astype(int), scores) > 0.9
