"""TRADES: the natural loss plus a divergence between clean and adversarial predictions (KL for class tasks)."""

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
    """``loss(f(x), y) + beta * D(f(x), f(x')) / N``, with ``x'`` maximizing ``D`` within the attack's ball.

    ``D`` is the task's divergence (:meth:`~robustlab.common.tasks.Task.divergence`, ``kind="kl"``), summed over
    the batch: for class tasks ``KL(softmax f(x) || softmax f(x'))`` as in the paper, for multi-label tasks the
    KL of each label's Bernoulli, for regression the squared difference of the outputs. Gradients flow through
    both predictions, as in the reference code. For a multi-class task the computation is the one robustlab has
    always used (``F.kl_div`` of the log-softmax against the clean softmax), so earlier results reproduce
    exactly.

    The inner maximization runs ``attack`` with that same divergence to the clean prediction as its loss, from
    ``x + 0.001 * N(0, 1)`` as in the reference code; ``attack``'s own loss is not used.

    Args:
        attack: an attack built on the trained model (usually ``PGD(model, eps, alpha, steps)``).
        beta: weight of the robustness term (1/lambda in the paper; 6 for MNIST and CIFAR-10 there).
        loss: the natural loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Shape:
        batch ``x``: ``(N, *)``; the model returns ``(N, K)``.

    Reference:
        Zhang, H. et al. "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019.

    Examples::

        >>> import torch
        >>> from robustlab.common.attacks import PGD
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 3)
        >>> regime = TRADES(PGD(model, eps=0.1, steps=3), beta=6.0)
        >>> regime(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,))}).ndim
        0
        >>> multilabel = TRADES(PGD(model, eps=0.1, steps=3), task="multilabel")
        >>> multilabel(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 2, (8, 3)).float()}).ndim
        0
    """

    citation = ("Zhang, H., Yu, Y., Jiao, J., Xing, E. P., El Ghaoui, L., Jordan, M. I. Theoretically Principled "
                "Trade-off between Robustness and Accuracy. ICML 2019.")

    def __init__(self, attack: Attack, *, beta: float = 6.0, loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        self.attack = attack
        self.beta = beta

    def _divergence(self, adv_logits: Tensor, clean_logits: Tensor) -> Tensor:
        """The summed divergence of the adversarial prediction from the clean one (the attack's loss too)."""
        return self.task.divergence(clean_logits, adv_logits, kind="kl")

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = batch["x"], batch["y"]
        if self.task.name == "multiclass":  # the original path, kept bit for bit
            with torch.no_grad(), self.attack._attack_mode():
                p_clean = F.softmax(self.attack.model(x), dim=1)
            x_adv = self.attack.perturb(x, p_clean, loss=_kl_sum, x_init=x + 0.001 * torch.randn_like(x))
            logits = model(x)
            natural = self.loss(logits, y)
            robust = _kl_sum(model(x_adv), F.softmax(logits, dim=1)) / x.shape[0]
        else:
            with torch.no_grad(), self.attack._attack_mode():
                clean = self.attack.model(x)
            x_adv = self.attack.perturb(x, clean, loss=self._divergence, x_init=x + 0.001 * torch.randn_like(x))
            logits = model(x)
            natural = self.loss(logits, y)
            robust = self._divergence(model(x_adv), logits) / x.shape[0]
        self.step_metrics = {"natural_loss": natural.item(), "robust_kl": robust.item()}
        return natural + self.beta * robust
