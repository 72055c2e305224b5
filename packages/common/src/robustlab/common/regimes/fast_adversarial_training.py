"""Fast adversarial training: FGSM from a random start, guarded against catastrophic overfitting."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from robustlab.common.attacks import FGSM
from robustlab.common.regimes._overfitting_guard import CatastrophicOverfittingGuard
from robustlab.common.regimes.adversarial_training import AdversarialTraining
from robustlab.common.regimes.base import FitState, unwrap
from robustlab.common.regimes.schedules import EpsRamp

__all__ = ["FastAdversarialTraining"]


class FastAdversarialTraining(AdversarialTraining):
    """Adversarial training with one FGSM step from a uniform random start (Wong et al. 2020).

    Single-step training can overfit catastrophically: FGSM accuracy stays high while PGD accuracy collapses
    (on MNIST at eps 0.3 with a small CNN, 97.8% under FGSM and 14% under PGD-40). After every epoch this regime
    measures PGD accuracy on a fixed validation batch (the first ``check_size`` validation samples, or training
    samples when there is no validation loader); when it falls more than ``max_drop`` below its best, the weights
    of the best epoch are restored and training stops (``remedy="restore"``), or a warning is raised
    (``remedy="warn"``). The PGD check accuracy is logged as ``pgd_check_acc``.

    Args:
        eps: L-inf budget in input units.
        alpha: FGSM step; default ``1.25 * eps``.
        bounds: valid input range, see :class:`~robustlab.common.attacks.Attack`.
        fraction: fraction of each batch made adversarial.
        schedule: eps warm-up and ramp, see :class:`~robustlab.common.regimes.EpsRamp`.
        check_steps: PGD steps of the per-epoch check (step ``eps / 4``).
        check_size: samples in the check batch.
        max_drop: largest tolerated fall of check accuracy below its best before the remedy applies.
        remedy: ``"restore"`` or ``"warn"``.
        loss: ``loss(logits, y) -> scalar``; default cross entropy.

    Reference:
        Wong, E., Rice, L., Kolter, J. Z. "Fast is better than free: Revisiting adversarial training", ICLR 2020.
    """

    def __init__(
        self,
        eps: float,
        *,
        alpha: float | None = None,
        bounds=None,
        fraction: float = 1.0,
        schedule: EpsRamp | None = None,
        check_steps: int = 10,
        check_size: int = 256,
        max_drop: float = 0.2,
        remedy: str = "restore",
        loss=None,
    ) -> None:
        attack = FGSM(None, eps=eps, alpha=alpha if alpha is not None else 1.25 * eps, random_start=True, bounds=bounds)
        super().__init__(attack, fraction=fraction, schedule=schedule, loss=loss)
        self.guard = CatastrophicOverfittingGuard(
            eps=eps, bounds=bounds, steps=check_steps, size=check_size, max_drop=max_drop, remedy=remedy
        )

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        if self.attack.model is None:
            self.attack.model = unwrap(model)
        return super().__call__(model, batch)

    def on_fit_start(self, model: nn.Module, state: FitState) -> None:
        self.attack.model = model

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        acc, reason = self.guard.check(model, state)
        if reason:
            self.stop_reason = reason
        return {"pgd_check_acc": acc}

    def state_dict(self) -> dict[str, Any]:
        return {"guard": self.guard.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.guard.load_state_dict(state["guard"])
