"""The fast gradient sign method (FGSM), optionally from a random start (the fast-AT attack)."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.attacks.base import LossFn
from robustlab.common.attacks.pgd import PGD

__all__ = ["FGSM"]


class FGSM(PGD):
    """One signed-gradient step of size ``alpha`` within the L-inf ball of radius ``eps``.

    Without a random start this is Goodfellow et al.'s FGSM (``alpha = eps``). With ``random_start=True`` it is
    the attack of fast adversarial training: start uniformly in the ball, step ``alpha = 1.25 * eps`` by
    default, project back (Wong et al. 2020).

    Args:
        model: the network to attack.
        eps: L-inf radius in input units.
        alpha: step size; default ``eps`` without and ``1.25 * eps`` with a random start.
        random_start: start from a uniform random point in the ball.
        bounds, loss, targeted, model_mode: see :class:`~robustlab.common.attacks.Attack`.

    Shape:
        x: ``(N, *)``; y: ``(N,)``; returns ``(N, *)`` like ``x``.

    Reference:
        Goodfellow, I., Shlens, J., Szegedy, C. "Explaining and Harnessing Adversarial Examples", ICLR 2015.
        Wong, E., Rice, L., Kolter, J. Z. "Fast is better than free: Revisiting adversarial training", ICLR 2020.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float | Tensor,
        alpha: float | None = None,
        random_start: bool = False,
        bounds=None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(
            model, eps=eps, alpha=alpha, steps=1, norm="linf", random_start=random_start,
            bounds=bounds, loss=loss, targeted=targeted, model_mode=model_mode,
        )

    def step_size(self) -> float | Tensor:
        if self.alpha is not None:
            return self.alpha
        return 1.25 * self.eps if self.random_start else self.eps
