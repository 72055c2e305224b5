"""Detection of catastrophic overfitting: robust accuracy under PGD collapsing while FGSM accuracy holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robustlab.common.attacks import FGSM, PGD
from robustlab.common.errors import ConfigError
from robustlab.common.modes import model_mode
from robustlab.common.regimes.base import FitState
from robustlab.common.tasks import Task, get_task


@dataclass(frozen=True)
class GuardReport:
    """One check: accuracies on the check batch and, when training collapsed, why."""

    pgd_acc: float
    fgsm_acc: float
    collapse: str | None


class CatastrophicOverfittingGuard:
    """Measure FGSM and PGD accuracy on a fixed check batch; flag catastrophic overfitting.

    Single-step adversarial training can overfit to its own attack: FGSM accuracy climbs while PGD accuracy falls
    to near zero (Wong et al. 2020, section 5). Two signatures are flagged:

    - a drop: PGD accuracy falls more than ``max_drop`` below the best seen so far (the check of Wong et al.);
    - a gap: FGSM accuracy exceeds PGD accuracy by more than ``max_gap``. A model that resists the single-step
      attack it trains against but not a multi-step one is masking gradients; this catches a collapse that happens
      within the first epoch, before any good accuracy was seen.

    The guard keeps a copy of the weights of the best healthy check (highest PGD accuracy, no signature).

    Both attacks ascend the task's summed loss (:meth:`~robustlab.common.tasks.Task.attack_loss`) and accuracy is
    the task's (:meth:`~robustlab.common.tasks.Task.correct`: for multi-label tasks the fraction of labels
    right), over the labelled samples of the check batch. A regression task has no accuracy to guard and is
    refused.
    """

    def __init__(self, *, eps, bounds, steps: int, size: int, max_drop: float, max_gap: float,
                 task: str | Task = "multiclass") -> None:
        self.task = get_task(task)
        if not self.task.has_classes:
            raise ConfigError(
                f"the catastrophic-overfitting guard measures accuracy, which a {self.task.name!r} task does not "
                "have"
            )
        self.eps, self.bounds, self.steps, self.size = eps, bounds, steps, size
        self.max_drop, self.max_gap = max_drop, max_gap
        self.best_acc = -1.0
        self.best_epoch = -1
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.detected_epoch = -1
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _check_batch(self, state: FitState) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            loader = state.val_loader if state.val_loader is not None else state.train_loader
            xs, ys = _first_samples(loader, self.size)
            x, y = torch.cat(xs)[: self.size], torch.cat(ys)[: self.size]
            known = self.task.labeled(y)
            if not bool(known.any()):
                raise ConfigError("the catastrophic-overfitting guard's check batch has no labelled sample")
            self._batch = (x[known], y[known])
        x, y = self._batch
        return x.to(state.device), y.to(state.device)

    def check_targets(self, y: torch.Tensor) -> None:
        """Raise :meth:`Task.correct`'s ConfigError now if ``y`` has no notion of a correct prediction (multi-class
        targets that are 0/1 rows, probabilities or real values), rather than after an epoch of training."""
        if self.task.name == "multiclass" and (y.is_floating_point() or y.ndim != 1):
            self.task.correct(torch.zeros(len(y), 1, device=y.device), y)

    def check(self, model: nn.Module, state: FitState) -> GuardReport:
        """Measure the check batch after an epoch and report a collapse, if any."""
        x, y = self._check_batch(state)
        self.check_targets(y)
        loss = None if self.task.name == "multiclass" else self.task.attack_loss  # multi-class: as before
        pgd = PGD(model, eps=self.eps, alpha=self.eps / 4, steps=self.steps, bounds=self.bounds, loss=loss)
        fgsm = FGSM(model, eps=self.eps, bounds=self.bounds, loss=loss)
        with torch.random.fork_rng(devices=[]):  # the check must not shift the training's random stream
            torch.manual_seed(0)
            x_pgd, x_fgsm = pgd(x, y), fgsm(x, y)
        with torch.no_grad(), model_mode(model, "eval"):
            pgd_acc = self.task.correct(model(x_pgd), y).mean().item()
            fgsm_acc = self.task.correct(model(x_fgsm), y).mean().item()
        collapse = None
        if self.best_acc - pgd_acc > self.max_drop:
            collapse = (f"PGD-{self.steps} accuracy on the check batch fell from {self.best_acc:.3f} "
                        f"(epoch {self.best_epoch + 1}) to {pgd_acc:.3f}")
        elif fgsm_acc - pgd_acc > self.max_gap:
            collapse = (f"FGSM accuracy on the check batch is {fgsm_acc:.3f} but PGD-{self.steps} accuracy only "
                        f"{pgd_acc:.3f}")
        if collapse is None and pgd_acc > self.best_acc:
            self.best_acc, self.best_epoch = pgd_acc, state.epoch
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if collapse is not None:
            self.detected_epoch = state.epoch
            collapse = f"catastrophic overfitting at epoch {state.epoch + 1}: {collapse}"
        return GuardReport(pgd_acc, fgsm_acc, collapse)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_acc": self.best_acc,
            "best_epoch": self.best_epoch,
            "detected_epoch": self.detected_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_acc = state["best_acc"]
        self.best_epoch = state["best_epoch"]
        self.detected_epoch = state["detected_epoch"]
        self.best_weights = state["best_weights"]


def _first_samples(loader, size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The inputs and targets of the first ``size`` samples of ``loader``, drawn without moving any random state
    the training reads (the global one and the loader's own generators), so that a resumed run, which draws its
    check batch again, stays bit-identical."""
    from robustlab.common.engine import _loader_generators

    generators = _loader_generators(loader)
    saved = [g.get_state() for g in generators]
    xs, ys, n = [], [], 0
    with torch.random.fork_rng(devices=[]):
        try:
            for batch in loader:
                x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch[:2]
                xs.append(x)
                ys.append(y)
                n += len(x)
                if n >= size:
                    break
        finally:
            for g, st in zip(generators, saved):
                g.set_state(st)
    return xs, ys
