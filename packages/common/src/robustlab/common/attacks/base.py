"""What every attack shares: bounds, the loss, the model's mode, and leaving the model as it was."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.modes import MODES
from robustlab.common.modes import input_gradient_context as _input_gradient_context

__all__ = ["Attack", "LossFn"]

LossFn = Callable[[Tensor, Tensor], Tensor]



def cross_entropy_sum(logits: Tensor, y: Tensor) -> Tensor:
    """Summed cross-entropy: per-sample gradients do not shrink with the batch size."""
    return F.cross_entropy(logits, y, reduction="sum")


class Attack:
    """Base class of the attacks: hyperparameters in ``__init__``, data in the call.

    Args:
        model: the network to attack; it is left in the train/eval mode it was in, and its parameters'
            ``.grad`` are not touched (the gradient is taken with respect to the input only).
        eps: the perturbation budget, in the units of the input (a float, or for L-inf a tensor that
            broadcasts against one sample, for per-feature budgets).
        bounds: the valid input range: ``None`` (unbounded, e.g. ECG in mV or seismic counts), a pair
            ``(low, high)`` of floats, or a pair of tensors broadcastable to one sample (per-feature bounds).
        loss: ``loss(logits, y) -> Tensor``, summed if it returns one value per sample. Defaults to cross
            entropy on class indices; pass e.g. ``BCEWithLogitsLoss(reduction="sum")`` for multi-label targets or
            an MSE for regression.
        targeted: if True, ``y`` holds target labels and the attack descends the loss towards them.
        model_mode: ``"eval"`` (default) runs the model in eval mode during the attack (batch-norm statistics
            are not updated, dropout is off), ``"train"`` in train mode, ``"keep"`` as it is.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float | Tensor,
        bounds: tuple[float | Tensor, float | Tensor] | None = None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        if model_mode not in MODES:
            raise ValueError(f"model_mode must be one of {MODES}, got {model_mode!r}")
        if isinstance(eps, (int, float)) and eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if bounds is not None:
            if not (isinstance(bounds, Sequence) and len(bounds) == 2):
                raise ValueError(f"bounds must be None or a pair (low, high), got {bounds!r}")
            lo, hi = bounds
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo >= hi:
                raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
        self.model = model
        self.eps = eps
        self.bounds = bounds
        self.loss = loss or cross_entropy_sum
        self.targeted = targeted
        self.model_mode = model_mode

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Return adversarial examples for ``x`` with labels (or targets) ``y``; same shape and dtype as ``x``."""
        return self.perturb(x, y)

    def perturb(self, x: Tensor, y: Tensor, *, loss: LossFn | None = None, x_init: Tensor | None = None) -> Tensor:
        """Like the call, with an optional loss for this call only and an optional starting point."""
        raise NotImplementedError

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if k not in ("model", "loss")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    # -- helpers for subclasses -------------------------------------------------------------------------------
    def _attack_mode(self):
        """Context: the model in the attack's mode, every submodule's own flag and parameters' ``requires_grad`` restored afterwards."""
        return _input_gradient_context(self.model, self.model_mode)

    def _bounds_like(self, x: Tensor) -> tuple[float | Tensor | None, float | Tensor | None]:
        if self.bounds is None:
            return None, None
        lo, hi = self.bounds
        if isinstance(lo, Tensor):
            lo = lo.to(device=x.device, dtype=x.dtype)
        if isinstance(hi, Tensor):
            hi = hi.to(device=x.device, dtype=x.dtype)
        return lo, hi

    def _eps_like(self, x: Tensor) -> float | Tensor:
        eps = self.eps
        if isinstance(eps, Tensor):
            return eps.to(device=x.device, dtype=x.dtype)
        return float(eps)

    def _input_gradient(self, x_adv: Tensor, y: Tensor, loss: LossFn) -> Tensor:
        x_adv.requires_grad_(True)
        value = loss(self.model(x_adv), y)
        if value.ndim:
            value = value.sum()
        (grad,) = torch.autograd.grad(value, x_adv)
        return -grad if self.targeted else grad
