"""Carlini & Wagner's L2 attack: Adam on a tanh change of variables, margin loss, the smallest success kept."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robustlab.common.attacks._minimal import MinimalNormAttack
from robustlab.common.attacks.base import LossFn

__all__ = ["CW"]

_SHRINK = 0.999999  # Carlini's code scales into (-1, 1) before atanh, so inputs at the bounds map to finite w


class CW(MinimalNormAttack):
    """``min ||x' - x||_2^2 + c * f(x')`` over ``x' = lo + (hi - lo) * (tanh(w) + 1) / 2``, by Adam on ``w``.

    ``f`` is the margin loss f6 of Carlini & Wagner: ``max(Z_y - max_{k != y} Z_k, -kappa)`` untargeted (push
    the label's logit below the best other class by ``kappa``), ``max(max_{k != t} Z_k - Z_t, -kappa)``
    targeted. After every Adam step each point keeps the example of smallest L2 norm that reached the goal (and
    lies within the cap ``eps``); a point that never did is returned unchanged. As ``torchattacks.CW``: one
    constant ``c`` (no binary search over it), ``w`` started at the input, and the run stops early when the total
    cost has risen since the last check (every ``steps // 10`` steps). Two differences from torchattacks: the
    best other logit is taken over the other classes only (torchattacks masks the label's logit to 0, so with
    negative logits its margin is off), and inputs are scaled by ``0.999999`` before ``atanh`` as in Carlini's
    code (torchattacks maps inputs at the bounds to ``w = ±inf``, whose pixels can never move).

    Args:
        model: the classifier to attack; returns logits ``(N, K)``.
        eps: a cap on the L2 norm of the perturbation (an example beyond it is not kept),
            ``float("inf")`` (default) for none.
        c: the weight of the margin loss (torchattacks' default 1).
        kappa: the confidence margin (0).
        steps: Adam steps (50).
        lr: Adam's learning rate (0.01).
        bounds: the input range; required and finite (the change of variables maps onto it).
        loss: not used (the margin loss is part of the method); accepted for the common call shape.
        targeted: if True, ``y`` holds target classes.
        model_mode: see :class:`~robustlab.common.attacks.Attack`.

    Shape:
        x: ``(N, *)``; y: ``(N,)`` class indices; returns ``(N, *)`` like ``x``.

    Reference:
        Carlini, N., Wagner, D. "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017
        (arXiv:1608.04644).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(4, 3)
        >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
        >>> x_adv = CW(model, c=1.0, steps=20, lr=0.05, bounds=(0.0, 1.0))(x, y)
        >>> x_adv.shape
        torch.Size([8, 4])
    """

    citation = "Carlini, N., Wagner, D. Towards Evaluating the Robustness of Neural Networks. IEEE S&P 2017."

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = float("inf"),
        c: float = 1.0,
        kappa: float = 0.0,
        steps: int = 50,
        lr: float = 0.01,
        bounds=None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, eps=eps, bounds=bounds, loss=loss, targeted=targeted, model_mode=model_mode)
        self._check_eps()
        if bounds is None or not all(isinstance(b, Tensor) and bool(torch.isfinite(b).all())
                                     or isinstance(b, (int, float)) and math.isfinite(b) for b in bounds):
            raise ValueError(f"CW needs finite bounds (low, high) for its tanh change of variables, got {bounds!r}; "
                             "pass e.g. bounds=(0.0, 1.0) for images")
        if not c > 0:
            raise ValueError(f"c must be > 0, got {c}")
        if not kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {kappa}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.c, self.kappa, self.steps, self.lr = float(c), float(kappa), int(steps), float(lr)

    def margin(self, logits: Tensor, y: Tensor) -> Tensor:
        """f6 per sample, ``(N,)``: ``max(Z_y - max_{k != y} Z_k, -kappa)`` (targeted: the reverse difference)."""
        label = logits.gather(1, y.view(-1, 1)).squeeze(1)
        other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
        diff = other - label if self.targeted else label - other
        return diff.clamp(min=-self.kappa)

    def perturb(self, x: Tensor, y: Tensor, *, loss: LossFn | None = None, x_init: Tensor | None = None) -> Tensor:
        if x_init is not None:
            raise ValueError("CW starts from x; x_init is not supported")
        x = x.detach()
        lo, hi = self._bounds_like(x)
        span = hi - lo

        def to_input(w: Tensor) -> Tensor:
            return lo + span * (torch.tanh(w) + 1) / 2

        w = torch.atanh(((x - lo) / span * 2 - 1) * _SHRINK).detach().requires_grad_(True)
        best = x.clone()
        best_l2 = torch.full((len(x),), float("inf"), device=x.device, dtype=x.dtype)
        cap = float(self.eps) ** 2 if math.isfinite(float(self.eps)) else float("inf")
        view = (-1,) + (1,) * (x.ndim - 1)
        opt = torch.optim.Adam([w], lr=self.lr)
        prev = float("inf")
        with self._attack_mode():
            for step in range(self.steps):
                x_adv = to_input(w)
                l2 = (x_adv - x).flatten(1).pow(2).sum(1)
                logits = self.model(x_adv)
                cost = l2.sum() + self.c * self.margin(logits, y).sum()
                opt.zero_grad()
                cost.backward()
                opt.step()
                pred = logits.detach().argmax(1)
                hit = (pred == y) if self.targeted else (pred != y)
                better = hit & (l2.detach() < best_l2) & (l2.detach() <= cap)
                best_l2 = torch.where(better, l2.detach(), best_l2)
                best = torch.where(better.view(view), x_adv.detach(), best)
                if step % max(self.steps // 10, 1) == 0:
                    if cost.item() > prev:
                        break
                    prev = cost.item()
        if lo is not None:
            best = torch.clamp(best, lo, hi)
        return best.detach()
