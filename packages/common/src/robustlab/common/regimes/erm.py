"""Empirical risk minimization: the plain supervised loss."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.regimes.base import Regime

__all__ = ["ERM"]


class ERM(Regime):
    """The loss of the model's output on the clean batch.

    Args:
        loss: ``loss(logits, y) -> scalar``; default the task's loss (cross entropy on class indices, binary
            cross entropy on 0/1 rows, mean squared error), which leaves unlabelled samples out.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 3)
        >>> batch = {"x": torch.randn(4, 2), "y": torch.tensor([0, 2, 1, -1])}  # -1: unlabelled
        >>> ERM()(model, batch).ndim
        0
    """

    citation = "Vapnik, V. N. The Nature of Statistical Learning Theory. Springer, 1995."

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        return self.loss(model(batch["x"]), batch["y"])
