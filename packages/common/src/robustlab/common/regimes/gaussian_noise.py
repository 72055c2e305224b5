"""Input noise injection: train on inputs with additive Gaussian noise."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.regimes.base import Regime

__all__ = ["GaussianNoise"]


class GaussianNoise(Regime):
    """The loss on ``x + N(0, std^2)``, optionally clamped to the input bounds.

    Args:
        std: standard deviation of the noise, in input units (a float or a per-feature tensor).
        fraction: fraction of each batch that receives noise (the first ``round(fraction * N)`` samples).
        bounds: ``None`` or ``(low, high)`` to clamp noisy inputs to the valid range.
        loss: ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Reference:
        Bishop, C. M. "Training with Noise is Equivalent to Tikhonov Regularization", Neural Computation 1995.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> batch = {"x": torch.rand(8, 2), "y": torch.randint(0, 2, (8,))}
        >>> GaussianNoise(0.1, bounds=(0.0, 1.0))(MLP(2, 2), batch).ndim
        0
    """

    citation = ("Bishop, C. M. Training with Noise is Equivalent to Tikhonov Regularization. Neural Computation "
                "7(1):108-116, 1995.")

    def __init__(self, std: float | Tensor = 0.1, *, fraction: float = 1.0, bounds=None, loss=None,
                 task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        self.std = std
        self.fraction = fraction
        self.bounds = bounds

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x = batch["x"]
        k = round(self.fraction * x.shape[0])
        std = self.std.to(x) if isinstance(self.std, Tensor) else self.std
        noisy = x[:k] + torch.randn_like(x[:k]) * std
        if self.bounds is not None:
            noisy = torch.clamp(noisy, *self.bounds)
        x = torch.cat([noisy, x[k:]]) if k < x.shape[0] else noisy
        return self.loss(model(x), batch["y"])
