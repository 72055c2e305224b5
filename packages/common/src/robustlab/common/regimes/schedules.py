"""Schedules for the strength of a perturbation over training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EpsRamp", "ScheduledBudget"]


@dataclass(frozen=True)
class EpsRamp:
    """Clean warm-up epochs, then a linear ramp of the attack budget from 0 to its full value.

    Training at the full budget from the first step can leave a network at chance (PGD adversarial training on
    MNIST at eps 0.3 is the classic case); a short ramp avoids it.

    Args:
        warmup_epochs: epochs of clean training before any perturbation.
        ramp_epochs: epochs over which the budget grows linearly (per step) after the warm-up; ``"auto"`` ramps
            over the first 30% of the epochs that follow the warm-up (at least one epoch when there are two or
            more; none when only one epoch follows the warm-up).

    Reference:
        Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training Verifiably Robust Models",
        2018 (eps ramp-up); Goodfellow et al. 2015 and Kurakin et al. 2017 (mixing clean warm-up and attacks).
    """

    warmup_epochs: int = 0
    ramp_epochs: int | str = "auto"

    def __post_init__(self) -> None:
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
        if self.ramp_epochs != "auto" and (not isinstance(self.ramp_epochs, int) or self.ramp_epochs < 0):
            raise ValueError(f"ramp_epochs must be 'auto' or an int >= 0, got {self.ramp_epochs!r}")

    def resolved_ramp_epochs(self, epochs: int) -> int:
        """The ramp length in epochs for a run of ``epochs`` epochs."""
        if self.ramp_epochs != "auto":
            return int(self.ramp_epochs)
        rest = epochs - self.warmup_epochs
        return 0 if rest <= 1 else max(1, round(0.3 * rest))

    def factor(self, epoch: int, step: int, steps_per_epoch: int, epochs: int) -> float:
        """The fraction of the full budget in force at ``(epoch, step)``: 0 in warm-up, then up to 1."""
        if epoch < self.warmup_epochs:
            return 0.0
        ramp = self.resolved_ramp_epochs(epochs)
        if ramp == 0:
            return 1.0
        done = (epoch - self.warmup_epochs) * steps_per_epoch + step + 1
        return min(1.0, done / (ramp * steps_per_epoch))


class ScheduledBudget:
    """A mixin for regimes whose attack budget follows an :class:`EpsRamp` (adversarial training, ARD).

    The regime sets ``self.attack`` and ``self.schedule`` (an :class:`EpsRamp`, or None: the full budget always),
    then calls :meth:`_init_budget`. The hooks scale the attack's ``eps`` (and its step size ``alpha``, a number
    or a per-step tuple) by the schedule's factor: at every epoch's start, after every step for the next one,
    and back to the full budget at the end of the fit. ``self._factor`` is the factor in force: at 0 the regime
    skips the attack (the batch is clean) rather than run it at budget 0.
    """

    attack: Any
    schedule: EpsRamp | None

    def _init_budget(self) -> None:
        self._full = (self.attack.eps, getattr(self.attack, "alpha", None))
        self._factor = 1.0

    def _set_factor(self, factor: float) -> None:
        eps, alpha = self._full
        self._factor = factor
        self.attack.eps = eps * factor
        if isinstance(alpha, tuple):  # a step-size schedule scales step by step
            self.attack.alpha = tuple(a * factor for a in alpha)
        elif alpha is not None:
            self.attack.alpha = alpha * factor

    def on_epoch_start(self, model: Any, state: Any) -> None:
        if self.schedule is not None:
            self._set_factor(self.schedule.factor(state.epoch, 0, state.steps_per_epoch, state.epochs))

    def on_step_end(self, model: Any, state: Any) -> None:
        if self.schedule is not None:  # the budget of the next step; the next epoch's start sets its own
            self._set_factor(self.schedule.factor(state.epoch, state.step + 1, state.steps_per_epoch, state.epochs))

    def on_fit_end(self, model: Any, state: Any) -> None:
        if self.schedule is not None:
            self._set_factor(1.0)
