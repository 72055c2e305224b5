"""Projected gradient descent (PGD), L-inf and L2."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.attacks.base import Attack, LossFn

__all__ = ["PGD"]


class PGD(Attack):
    """Projected gradient descent on the loss, within an L-inf or L2 ball and the input bounds.

    Args:
        model: the network to attack.
        eps: radius of the ball in input units (L-inf: a float or a per-feature tensor; L2: a float).
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.).
        steps: number of gradient steps.
        norm: ``"linf"`` (signed gradient steps) or ``"l2"`` (normalized gradient steps).
        random_start: start from a uniform random point in the ball rather than from ``x``.
        bounds, loss, targeted, model_mode: see :class:`~robustlab.common.attacks.Attack`.

    Shape:
        x: ``(N, *)``; y: ``(N,)`` class indices (or whatever ``loss`` takes); returns ``(N, *)`` like ``x``.

    Reference:
        Madry, A. et al. "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float | Tensor,
        alpha: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        bounds=None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, eps=eps, bounds=bounds, loss=loss, targeted=targeted, model_mode=model_mode)
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
        if norm == "l2" and isinstance(eps, Tensor):
            raise ValueError("norm='l2' takes a float eps; per-feature eps is for norm='linf'")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = int(steps)
        self.alpha = float(alpha) if alpha is not None else None
        self.norm = norm
        self.random_start = random_start

    def step_size(self) -> float | Tensor:
        """The step size in force: ``alpha``, or ``2.5 * eps / steps`` when alpha is not set."""
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def perturb(self, x: Tensor, y: Tensor, *, loss: LossFn | None = None, x_init: Tensor | None = None) -> Tensor:
        loss = loss or self.loss
        x = x.detach()
        eps = self._eps_like(x)
        alpha = self.step_size()
        if isinstance(alpha, Tensor):
            alpha = alpha.to(device=x.device, dtype=x.dtype)
        b_lo, b_hi = self._bounds_like(x)
        with self._attack_mode():
            if self.norm == "linf":
                return self._linf(x, y, loss, eps, alpha, b_lo, b_hi, x_init)
            return self._l2(x, y, loss, float(eps), alpha, b_lo, b_hi, x_init)

    def _linf(self, x, y, loss, eps, alpha, b_lo, b_hi, x_init) -> Tensor:
        # The feasible set is a box: the eps-ball intersected with the bounds, computed once.
        lo, hi = x - eps, x + eps
        if b_lo is not None:
            lo = torch.clamp(lo, min=b_lo) if isinstance(b_lo, Tensor) else lo.clamp_(min=b_lo)
            hi = torch.clamp(hi, max=b_hi) if isinstance(b_hi, Tensor) else hi.clamp_(max=b_hi)
        if x_init is not None:
            x_adv = torch.clamp(x_init.detach(), lo, hi)
        elif self.random_start:
            x_adv = torch.clamp(x + torch.empty_like(x).uniform_(-1, 1) * eps, lo, hi)
        else:
            x_adv = x.clone()
        for _ in range(self.steps):
            grad = self._input_gradient(x_adv, y, loss)
            x_adv = x_adv.detach().add_(grad.sign_().mul_(alpha))
            x_adv = torch.clamp(x_adv, lo, hi)
        return x_adv.detach()

    def _l2(self, x, y, loss, eps, alpha, b_lo, b_hi, x_init) -> Tensor:
        view = (-1,) + (1,) * (x.ndim - 1)

        def project(x_adv: Tensor) -> Tensor:
            delta = x_adv - x
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (eps / norms).clamp(max=1.0).view(view)
            x_adv = x + delta
            return x_adv if b_lo is None else torch.clamp(x_adv, b_lo, b_hi)

        if x_init is not None:
            x_adv = project(x_init.detach())
        elif self.random_start:
            d = torch.randn_like(x)
            d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            r = torch.rand(x.shape[0], device=x.device, dtype=x.dtype).view(view)
            x_adv = project(x + d * r * eps)
        else:
            x_adv = x.clone()
        for _ in range(self.steps):
            grad = self._input_gradient(x_adv, y, loss)
            g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            x_adv = project(x_adv.detach() + alpha * grad / g_norm)
        return x_adv.detach()
