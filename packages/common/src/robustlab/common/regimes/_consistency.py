"""What the consistency regimes (mean teacher, VAT, EAAT) share: the inputs they regularize, the supervised loss on
the labelled samples, the consistency weight and its ramp-up, frozen running statistics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.regimes.base import FitState, Regime, all_inputs, labeled_part
from robustlab.common.tasks import Task

__all__ = ["ConsistencyRegime", "running_stats_kept"]

_KINDS = ("kl", "mse")


class ConsistencyRegime(Regime):
    """``loss(f(x_l), y_l) + w * D(target, prediction) / N``: the shape of every consistency regime.

    Subclasses compute the summed divergence ``D`` over the ``N`` inputs that :meth:`_split` returns and hand it
    to :meth:`_combine` with the logits whose first rows serve the supervised loss.

    Args:
        consistency: the task's divergence, ``"kl"`` or ``"mse"`` (:meth:`~robustlab.common.tasks.Task.divergence`).
        weight: the consistency weight ``w``.
        rampup_epochs: ``w`` ramps up as ``exp(-5 (1 - t)^2)``, ``t`` the fraction of these epochs done (counted
            per step), as in Laine & Aila's and Tarvainen & Valpola's code; 0 (default) keeps ``w`` constant.
        use_unlabeled: True: the consistency covers every input (labelled, unlabelled of the batch, the
            unlabelled loader's); False: the labelled samples only, unlabelled inputs are ignored.
        loss: the supervised loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
    """

    def __init__(self, *, consistency: str, weight: float, rampup_epochs: float, use_unlabeled: bool,
                 loss=None, task: str | Task = "multiclass") -> None:
        super().__init__(loss=loss, task=task)
        if consistency not in _KINDS:
            raise ConfigError(f"consistency must be one of {_KINDS}, got {consistency!r}")
        if not weight >= 0:
            raise ConfigError(f"weight must be >= 0, got {weight}")
        if not rampup_epochs >= 0:
            raise ConfigError(f"rampup_epochs must be >= 0, got {rampup_epochs}")
        self.consistency = consistency
        self.weight = float(weight)
        self.rampup_epochs = float(rampup_epochs)
        self.use_unlabeled = bool(use_unlabeled)
        self._epochs_done = 0.0

    # -- the batch ------------------------------------------------------------------------------------------------
    def _split(self, batch: dict) -> tuple[Tensor, Tensor]:
        """The inputs to regularize and the targets of their first rows (the rest are unlabelled inputs).

        ``use_unlabeled``: ``batch["x"]`` then the unlabelled loader's inputs, with ``batch["y"]`` (unlabelled
        samples marked as the task says); otherwise the labelled samples of ``batch["x"]`` and their targets.
        """
        if self.use_unlabeled:
            return all_inputs(batch), batch["y"]
        return labeled_part(batch, self.task)

    def _combine(self, logits: Tensor, y: Tensor, divergence: Tensor) -> Tensor:
        """``supervised + w * divergence / N``; fills :attr:`step_metrics` (``class_loss``, ``consistency``).

        Args:
            logits: the outputs whose first ``len(y)`` rows give the supervised loss, ``(N, *)``.
            y: the targets of those rows (unlabelled ones are left out).
            divergence: the consistency divergence summed over the ``N`` inputs.
        """
        logits_y = logits[: len(y)]
        known = self.task.labeled(y)
        if bool(known.all()):
            class_loss = self.loss(logits_y, y)
        elif bool(known.any()):
            class_loss = self.loss(logits_y[known], y[known])
        else:  # no labelled sample: the consistency alone, a zero that keeps the graph
            class_loss = logits.sum() * 0.0
        consistency = divergence / len(logits)
        self.step_metrics = {"class_loss": class_loss.item(), "consistency": consistency.item()}
        return class_loss + self.consistency_weight * consistency

    def _empty(self, model: nn.Module) -> Tensor:
        """The loss of a batch with nothing to train on (no labelled sample in the labelled-only variant): a
        zero that keeps the graph of the model's parameters."""
        self.step_metrics = {"class_loss": 0.0, "consistency": 0.0}
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            return torch.zeros((), requires_grad=True)
        return sum(p.sum() for p in params) * 0.0

    # -- the weight -----------------------------------------------------------------------------------------------
    @property
    def consistency_weight(self) -> float:
        """The consistency weight in force (ramped up over ``rampup_epochs``)."""
        if self.rampup_epochs == 0:
            return self.weight
        t = min(1.0, self._epochs_done / self.rampup_epochs)
        return self.weight * math.exp(-5.0 * (1.0 - t) ** 2)

    def _track(self, state: FitState) -> None:
        self._epochs_done = state.global_step / max(1, state.steps_per_epoch)

    def on_fit_start(self, model: nn.Module, state: FitState) -> None:
        self._track(state)

    def on_step_end(self, model: nn.Module, state: FitState) -> None:
        self._track(state)


@contextmanager
def running_stats_kept(model: nn.Module) -> Iterator[None]:
    """Forward passes in the block leave the running statistics of batch norms unchanged.

    In train mode such a layer still normalizes with the batch's statistics; it only stops updating its running
    mean and variance (``update_batch_stats=False`` of Miyato et al.'s code), by turning ``track_running_stats``
    off for the block.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True
