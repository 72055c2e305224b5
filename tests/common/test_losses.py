"""Class-weighted losses: scikit-learn's balanced weights, torch's weighted cross entropy, usable by regimes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.losses import WeightedBCE, WeightedCrossEntropy, class_weights, positive_weights


def test_class_weights_equal_scikit_learn_balanced():
    from sklearn.utils.class_weight import compute_class_weight

    y = np.random.default_rng(0).choice(4, size=500, p=[0.7, 0.2, 0.07, 0.03])
    ours = class_weights(y, 4)
    theirs = compute_class_weight("balanced", classes=np.arange(4), y=y)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(class_weights(y, 4, power=0.5), np.sqrt(theirs), rtol=1e-12)
    assert class_weights(y, 4, how="none").tolist() == [1.0] * 4


def test_class_weights_leave_out_unlabelled_and_absent_classes():
    w = class_weights(np.array([0, 0, 1, -1, -1]), 3)
    assert w[2] == 0.0
    np.testing.assert_allclose(w[:2], [3 / (3 * 2), 3 / (3 * 1)])
    with pytest.raises(ConfigError, match="0..2"):
        class_weights(np.array([0, 3]), 3)


def test_weighted_cross_entropy_equals_torch_and_ignores_unlabelled():
    logits = torch.randn(10, 3, requires_grad=True)
    y = torch.tensor([0, 1, 2, 2, 1, 0, -1, 2, 0, -1])
    w = torch.tensor([0.5, 2.0, 3.0])
    ours = WeightedCrossEntropy(w)(logits, y)
    theirs = F.cross_entropy(logits, y, weight=w, ignore_index=-1)
    torch.testing.assert_close(ours, theirs)
    ours.backward()
    assert logits.grad[6].abs().sum() == 0  # the unlabelled row gets no gradient
    empty = WeightedCrossEntropy(w)(logits, torch.full((10,), -1))
    assert float(empty) == 0.0 and empty.requires_grad
    with pytest.raises(ConfigError, match="3 class weights"):
        WeightedCrossEntropy(w)(torch.randn(2, 4), torch.tensor([0, 1]))


def test_weighted_bce_equals_torch_on_known_entries():
    logits = torch.randn(6, 2)
    y = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 1], [0, 0], [1, 0]], dtype=torch.float32)
    pw = positive_weights(y.numpy())
    np.testing.assert_allclose(pw, [1.0, 2.0])  # 3/3 -> 1, 4/2 -> 2
    ours = WeightedBCE(pw)(logits, y)
    theirs = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(pw, dtype=torch.float32))
    torch.testing.assert_close(ours, theirs)
    y_nan = y.clone()
    y_nan[0, 0] = float("nan")
    elem = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(y_nan), reduction="none",
                                              pos_weight=torch.tensor(pw, dtype=torch.float32))
    torch.testing.assert_close(WeightedBCE(pw)(logits, y_nan), elem.flatten()[1:].mean())


def test_a_regime_trains_with_the_weighted_loss():
    from robustlab.common.models import MLP
    from robustlab.common.training import TrainConfig, train

    torch.manual_seed(0)
    x = torch.randn(200, 2)
    y = (x[:, 0] > 1.2).long()  # about 12% positives
    model = MLP(2, 2, hidden=(8,))
    loss = WeightedCrossEntropy(class_weights(y, 2))
    train(model, "noise", (x, y), config=TrainConfig(epochs=30, batch_size=50, lr=0.05),
          regime_params={"std": 0.01, "loss": loss})
    with torch.no_grad():
        recall = float((model(x).argmax(1)[y == 1] == 1).float().mean())
    assert recall > 0.8
