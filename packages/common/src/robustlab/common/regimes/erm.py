"""Empirical risk minimization: the plain supervised loss."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.regimes.base import Regime

__all__ = ["ERM"]


class ERM(Regime):
    """The loss of the model's output on the clean batch.

    Args:
        loss: ``loss(logits, y) -> scalar``; default cross entropy on class indices
            (``nn.BCEWithLogitsLoss()`` for multi-label targets, ``nn.MSELoss()`` for regression).
    """

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        return self.loss(model(batch["x"]), batch["y"])
