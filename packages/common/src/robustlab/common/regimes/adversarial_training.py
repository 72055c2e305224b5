"""Adversarial training with any attack, a clean/adversarial mix, clean warm-up and an eps ramp."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.attacks.base import Attack, cross_entropy_sum
from robustlab.common.regimes.base import Regime
from robustlab.common.regimes.schedules import EpsRamp, ScheduledBudget

__all__ = ["AdversarialTraining"]


class AdversarialTraining(ScheduledBudget, Regime):
    """Train on adversarial examples made by ``attack`` for a fraction of every batch.

    The adversarial versions of the first ``round(fraction * N)`` samples of each batch either replace them
    (``mode="replace"``: the batch keeps its size, ``fraction=0.5`` is half clean, half adversarial, as in
    Goodfellow et al.) or are appended to the clean batch (``mode="append"``: ``N + k`` samples, every clean
    sample still seen; ``fraction=1`` is the clean batch and its adversarial copy, as in the code of Koo et al.
    2019). The loss is taken over the whole batch in one forward pass. The attack budget follows ``schedule``: clean warm-up
    epochs, then a linear ramp to the full eps. By default the ramp is on ("auto", see :class:`EpsRamp`),
    because PGD training started at full eps can stay at chance.

    Args:
        attack: the attack that makes the adversarial examples, built on the model being trained.
        fraction: fraction of each batch made adversarial, in ``[0, 1]``.
        mode: ``"replace"`` the attacked samples or ``"append"`` their adversarial copies.
        schedule: an :class:`EpsRamp`; ``EpsRamp(ramp_epochs=0)`` trains at full eps from the first step.
        loss: ``loss(logits, y) -> scalar``; default the task's loss. An attack with its own loss keeps it; one
            left at its default (class cross entropy) gets the task's summed loss (``Task.attack_loss``) for a
            multi-label or regression task.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Reference:
        Madry, A. et al. "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.

    Examples::

        >>> import torch
        >>> from robustlab.common.attacks import PGD
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 2)
        >>> regime = AdversarialTraining(PGD(model, eps=0.1, steps=3), fraction=0.5)
        >>> regime(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 2, (8,))}).ndim
        0
    """

    citation = ("Madry, A., Makelov, A., Schmidt, L., Tsipras, D., Vladu, A. Towards Deep Learning Models Resistant "
                "to Adversarial Attacks. ICLR 2018.")

    def __init__(self, attack: Attack, *, fraction: float = 1.0, mode: str = "replace", schedule: EpsRamp | None = None,
                 loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        if mode not in ("replace", "append"):
            raise ValueError(f"mode must be 'replace' or 'append', got {mode!r}")
        self.mode = mode
        if self.task.name != "multiclass" and getattr(attack, "loss", None) is cross_entropy_sum:
            attack.loss = self.task.attack_loss  # an attack left at its default would ascend class cross entropy
        self.attack = attack
        self.fraction = fraction
        self.schedule = schedule or EpsRamp()
        self._init_budget()

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = batch["x"], batch["y"]
        k = round(self.fraction * x.shape[0]) if self._factor > 0 else 0
        if k:
            x_adv = self.attack(x[:k], y[:k])
            if self.mode == "append":
                x, y = torch.cat([x, x_adv]), torch.cat([y, y[:k]])
            else:
                x = torch.cat([x_adv, x[k:]]) if k < x.shape[0] else x_adv
        eps = self.attack.eps
        self.step_metrics = {
            "eps": float(eps.max()) if isinstance(eps, Tensor) else float(eps),
            "adv_fraction": k / x.shape[0],
        }
        return self.loss(model(x), y)
