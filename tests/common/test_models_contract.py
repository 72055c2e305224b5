"""The contract of every model robustlab.common.models exports: it builds from a few arguments, maps a small batch
to its documented output shape with finite values, passes gradients to every parameter, is deterministic in eval
mode, round-trips its weights through a checkpoint and a model file, and is a plain (not TorchScript) module
(robustlab.common.testing.check_model_contract)."""

from __future__ import annotations

import pytest
import torch

from robustlab.common import models
from robustlab.common.testing import check_model_contract, exported_modules

# Per exported class: (constructor arguments, input shape, documented output shape). Small arguments keep the test
# fast; each class also has a case with dropout or batch norm, so that eval mode has something to switch off and
# the checkpoint holds buffers. A class exported without an entry fails test_every_exported_model_has_a_case.
CASES = {
    "Autoencoder": [  # (N, *in_shape) -> (N, *in_shape), the reconstruction
        ({"in_shape": (1, 4, 4), "latent_dim": 3, "hidden": (8,)}, (5, 1, 4, 4), (5, 1, 4, 4)),
        ({"in_shape": (6,), "latent_dim": 2, "hidden": (8, 4), "output": "identity"}, (5, 6), (5, 6)),
    ],
    "MLP": [  # (N, *) flattening to (N, in_features) -> (N, num_classes)
        ({"in_features": 6, "num_classes": 3, "hidden": (8,)}, (5, 6), (5, 3)),
        ({"in_features": 6, "num_classes": 4, "hidden": (8, 8), "dropout": 0.5}, (5, 2, 3), (5, 4)),
    ],
    "SmallCNN": [  # (N, in_channels, image_size, image_size) -> (N, num_classes)
        ({"in_channels": 1, "num_classes": 10, "image_size": 8, "width": 4, "hidden": 8}, (5, 1, 8, 8), (5, 10)),
        ({"in_channels": 3, "num_classes": 2, "image_size": 12, "width": 4, "hidden": 8, "batch_norm": True},
         (5, 3, 12, 12), (5, 2)),
    ],
}

EXPORTED = exported_modules(models)
PARAMS = [pytest.param(name, *case, id=f"{name}-{i}") for name, cases in CASES.items() for i, case in enumerate(cases)]


def test_every_exported_model_has_a_case():
    assert EXPORTED, "models.__all__ exports no nn.Module class"
    missing = [n for n in EXPORTED if not CASES.get(n)]
    assert not missing, f"exported models without an entry in CASES (add constructor arguments and shapes): {missing}"
    assert set(CASES) <= set(EXPORTED), f"CASES names models that are not exported: {set(CASES) - set(EXPORTED)}"


@pytest.mark.parametrize(("name", "kwargs", "in_shape", "out_shape"), PARAMS)
def test_model_contract(tmp_path, name, kwargs, in_shape, out_shape):
    x = torch.rand(in_shape, generator=torch.Generator().manual_seed(1))
    check_model_contract(getattr(models, name), kwargs, x, out_shape, tmp_path)
