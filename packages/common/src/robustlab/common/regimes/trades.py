"""TRADES: the natural loss plus a KL term between clean and adversarial predictions."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.attacks.base import Attack
from robustlab.common.regimes.base import Regime

__all__ = ["TRADES"]


def _kl_sum(logits: Tensor, p_clean: Tensor) -> Tensor:
    return F.kl_div(F.log_softmax(logits, dim=1), p_clean, reduction="sum")


class TRADES(Regime):
    """``loss(f(x), y) + beta * KL(f(x) || f(x'))``, with ``x'`` maximizing the KL term within the attack's ball.

    The inner maximization runs ``attack`` with the KL divergence to the clean prediction as its loss, from
    ``x + 0.001 * N(0, 1)`` as in the reference code; ``attack``'s own loss is not used.

    Args:
        attack: an attack built on the trained model (usually ``PGD(model, eps, alpha, steps)``).
        beta: weight of the robustness term (1/lambda in the paper; 6 for MNIST and CIFAR-10 there).
        loss: the natural loss ``loss(logits, y) -> scalar``; default cross entropy.

    Reference:
        Zhang, H. et al. "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019.
    """

    def __init__(self, attack: Attack, *, beta: float = 6.0, loss=None) -> None:
        super().__init__(loss=loss)
        self.attack = attack
        self.beta = beta

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = batch["x"], batch["y"]
        with torch.no_grad(), self.attack._attack_mode():
            p_clean = F.softmax(self.attack.model(x), dim=1)
        x_adv = self.attack.perturb(x, p_clean, loss=_kl_sum, x_init=x + 0.001 * torch.randn_like(x))
        logits = model(x)
        natural = self.loss(logits, y)
        robust = _kl_sum(model(x_adv), F.softmax(logits, dim=1)) / x.shape[0]
        self.step_metrics = {"natural_loss": natural.item(), "robust_kl": robust.item()}
        return natural + self.beta * robust
