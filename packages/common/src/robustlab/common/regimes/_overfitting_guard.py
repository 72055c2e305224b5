"""Detection of catastrophic overfitting: robust accuracy under PGD collapsing while FGSM accuracy holds."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from robustlab.common._modes import model_mode
from robustlab.common.attacks import PGD
from robustlab.common.regimes.base import FitState


class CatastrophicOverfittingGuard:
    """Measure PGD accuracy on a fixed check batch after every epoch; on a collapse, roll back and stop.

    Single-step adversarial training can overfit to its own attack within an epoch: FGSM accuracy climbs while
    PGD accuracy falls to near zero (Wong et al. 2020, section 5). The guard keeps a copy of the weights with
    the best PGD accuracy; when accuracy falls more than ``max_drop`` below that best, it restores those weights
    and asks the engine to stop (the remedy of Wong et al.: early stopping on a PGD check).
    """

    def __init__(self, *, eps, bounds, steps: int, size: int, max_drop: float, remedy: str) -> None:
        if remedy not in ("restore", "warn"):
            raise ValueError(f"remedy must be 'restore' or 'warn', got {remedy!r}")
        self.eps, self.bounds, self.steps, self.size = eps, bounds, steps, size
        self.max_drop, self.remedy = max_drop, remedy
        self.best_acc = -1.0
        self.best_epoch = -1
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.detected_epoch = -1
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _check_batch(self, state: FitState) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            loader = state.val_loader if state.val_loader is not None else state.train_loader
            xs, ys, n = [], [], 0
            for batch in loader:
                x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch[:2]
                xs.append(x)
                ys.append(y)
                n += len(x)
                if n >= self.size:
                    break
            self._batch = (torch.cat(xs)[: self.size], torch.cat(ys)[: self.size])
        x, y = self._batch
        return x.to(state.device), y.to(state.device)

    def check(self, model: nn.Module, state: FitState) -> tuple[float, str | None]:
        """Return the PGD accuracy on the check batch and a stop reason if training collapsed."""
        x, y = self._check_batch(state)
        attack = PGD(model, eps=self.eps, alpha=self.eps / 4, steps=self.steps, bounds=self.bounds)
        with torch.random.fork_rng(devices=[]):  # the check must not shift the training's random stream
            torch.manual_seed(0)
            x_adv = attack(x, y)
        with torch.no_grad(), model_mode(model, "eval"):
            acc = (model(x_adv).argmax(1) == y).float().mean().item()
        if acc > self.best_acc:
            self.best_acc, self.best_epoch = acc, state.epoch
            self.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return acc, None
        if self.best_acc - acc <= self.max_drop:
            return acc, None
        self.detected_epoch = state.epoch
        msg = (
            f"catastrophic overfitting at epoch {state.epoch}: PGD-{self.steps} accuracy on the check batch fell "
            f"from {self.best_acc:.3f} (epoch {self.best_epoch}) to {acc:.3f}"
        )
        if self.remedy == "warn":
            warnings.warn(msg + "; training goes on (remedy='warn')", RuntimeWarning, stacklevel=2)
            return acc, None
        model.load_state_dict(self.best_weights)
        return acc, msg + f"; weights restored to epoch {self.best_epoch} and training stopped"

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
