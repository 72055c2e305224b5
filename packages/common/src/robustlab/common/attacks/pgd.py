"""Projected gradient descent (PGD), L-inf and L2."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustlab.common.attacks.base import Attack, LossFn

__all__ = ["PGD", "harmonic_steps"]


def harmonic_steps(steps: int = 20, *, scale: float = 0.1, offset: int = 10) -> tuple[float, ...]:
    """The step sizes ``scale / (i + offset)`` for ``i = 0 .. steps - 1``, a schedule for ``PGD(alpha=...)``.

    The defaults are the schedule of Koo et al. (2019): 20 signed-gradient steps of ``0.1 / (i + 10)``, which add
    up to about 0.113, so an L-inf budget of 0.2 is never reached (``koo-lab/uncovering_regulatory_codes``,
    ``code/1_train_all_models_adv.py``, ``perturb``).

    Examples::

        >>> round(sum(harmonic_steps()), 4)
        0.1133
    """
    if steps < 1 or offset < 1 or not scale > 0:
        raise ValueError(f"harmonic_steps needs steps >= 1, offset >= 1 and scale > 0, got {steps}, {offset}, {scale}")
    return tuple(scale / (i + offset) for i in range(steps))


class PGD(Attack):
    """Projected gradient descent on the loss, within an L-inf or L2 ball and the input bounds.

    Args:
        model: the network to attack.
        eps: radius of the ball in input units (L-inf: a float or a per-feature tensor; L2: a float).
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.). A sequence of ``steps`` sizes is a
            schedule, one size per step (Koo et al. 2019 step ``i`` by ``0.1 / (i + 10)``, see
            :func:`harmonic_steps`).
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
        alpha: float | Sequence[float] | None = None,
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
        if alpha is not None and not isinstance(alpha, (int, float, Tensor)):
            alpha = tuple(float(a) for a in alpha)
            if len(alpha) != self.steps:
                raise ValueError(f"a step-size schedule needs one size per step: {len(alpha)} sizes for {steps} steps")
        elif alpha is not None and not isinstance(alpha, Tensor):
            alpha = float(alpha)
        self.alpha = alpha
        self.norm = norm
        self.random_start = random_start

    def step_size(self) -> float | Tensor | tuple[float, ...]:
        """The step size in force: ``alpha`` (a size or a schedule), or ``2.5 * eps / steps`` when alpha is not set."""
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def step_sizes(self) -> list[float | Tensor]:
        """The size of each of the ``steps`` steps."""
        alpha = self.step_size()
        return list(alpha) if isinstance(alpha, tuple) else [alpha] * self.steps

    def perturb(self, x: Tensor, y: Tensor, *, loss: LossFn | None = None, x_init: Tensor | None = None) -> Tensor:
        loss = loss or self.loss
        x = x.detach()
        eps = self._eps_like(x)
        alpha = [a.to(device=x.device, dtype=x.dtype) if isinstance(a, Tensor) else a for a in self.step_sizes()]
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
        for size in alpha:
            grad = self._input_gradient(x_adv, y, loss)
            x_adv = x_adv.detach().add_(grad.sign_().mul_(size))
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
        for size in alpha:
            grad = self._input_gradient(x_adv, y, loss)
            g_norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
            x_adv = project(x_adv.detach() + size * grad / g_norm)
        return x_adv.detach()
