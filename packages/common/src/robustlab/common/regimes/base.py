"""The regime contract: ``regime(model, batch) -> loss`` plus optional hooks and checkpointable state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["FitState", "Regime", "unwrap"]


@dataclass
class FitState:
    """What the engine tells a regime's hooks about where training stands.

    Attributes:
        epoch: the current epoch, counted from 0.
        epochs: the number of epochs the run is set to.
        step: the step within the epoch, counted from 0.
        steps_per_epoch: optimizer steps in one epoch.
        global_step: optimizer steps taken since the start of training (resumes included).
        device: where the model lives.
        val_loader: the validation loader, or None.
        train_loader: the training loader.
    """

    epoch: int = 0
    epochs: int = 1
    step: int = 0
    steps_per_epoch: int = 1
    global_step: int = 0
    device: torch.device = torch.device("cpu")
    val_loader: Any = None
    train_loader: Any = None

    @property
    def progress(self) -> float:
        """Fraction of training done, in ``[0, 1]``, at step granularity."""
        total = max(1, self.epochs * self.steps_per_epoch)
        return min(1.0, self.global_step / total)


class Regime:
    """Base class of the training regimes.

    A regime turns a batch into a loss: ``loss = regime(model, batch)``. The engine owns the loop, the optimizer
    and checkpointing; a regime owns what is particular to it (an attack, a schedule, extra networks, per-sample
    state) and exposes that state through :meth:`state_dict` / :meth:`load_state_dict`, which the engine stores in
    every checkpoint. Hooks are called by the engine with the unwrapped model (not the DDP wrapper) and a
    :class:`FitState`; all are optional.

    Attributes:
        step_metrics: filled by ``__call__`` with scalars to average into the epoch log (e.g. the eps in force).
        stop_reason: set by a hook to ask the engine to stop after this epoch; the reason is logged and returned.
    """

    def __init__(self, *, loss: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        self.loss = loss or F.cross_entropy
        self.step_metrics: dict[str, float] = {}
        self.stop_reason: str | None = None

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        raise NotImplementedError

    # -- hooks --------------------------------------------------------------------------------------------------
    def on_fit_start(self, model: nn.Module, state: FitState) -> None:
        """Before the first epoch (also when resuming, after the regime's state is restored)."""

    def on_epoch_start(self, model: nn.Module, state: FitState) -> None:
        """At the start of every epoch."""

    def on_step_end(self, model: nn.Module, state: FitState) -> None:
        """After every optimizer step (EMA teachers update here)."""

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        """After every epoch's validation; returns extra metrics for the log."""
        return {}

    def on_fit_end(self, model: nn.Module, state: FitState) -> None:
        """After the last epoch, or when training stops early."""

    # -- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers and strings only: checkpoints load with ``weights_only=True``."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("step_metrics", "stop_reason")}
        return f"{type(self).__name__}({', '.join(f'{k}={_short(v)}' for k, v in params.items())})"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper, or the model itself."""
    return getattr(model, "module", model)


def _short(v: Any) -> str:
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)
