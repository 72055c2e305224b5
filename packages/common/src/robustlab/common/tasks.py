"""What a regime needs to know about the prediction task: its loss, how two predictions differ, what is correct.

Three tasks cover robustlab's domains:

- ``"multiclass"``: logits ``(N, K)``, targets class indices ``(N,)``; an unlabelled sample has the target
  :data:`UNLABELED` (``-1``), as in shadow-ssml and ``CrossEntropyLoss(ignore_index=-1)``.
- ``"multilabel"``: logits ``(N, L)``, targets 0/1 rows ``(N, L)`` (binary tasks are ``L = 1``); an unlabelled
  sample has a row of NaN.
- ``"regression"``: outputs ``(N, D)`` or ``(N,)``, real targets of the same shape; an unlabelled sample has NaN.

Regimes that compare two predictions (TRADES, mean teacher, VAT, EAAT, distillation) take the comparison from the
task, so that the same regime serves class, multi-label and regression problems; regimes that need a notion of
"correct" (the fast-AT overfitting guard) refuse a regression task with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from robustlab.common.errors import ConfigError

__all__ = ["TASKS", "UNLABELED", "Task", "get_task"]

UNLABELED = -1
"""The class-index target of an unlabelled sample (multi-label and regression targets use NaN)."""

TASKS = ("multiclass", "multilabel", "regression")

_DIVERGENCES = ("kl", "mse")


@dataclass(frozen=True)
class Task:
    """A prediction task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see the module docstring).

    Every loss here is a plain function of ``(logits, targets)``; the summed and per-sample forms serve attacks
    (whose gradients must not shrink with the batch) and sample selection (co-teaching).
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ConfigError(f"unknown task {self.name!r}; choose from {', '.join(TASKS)}")

    @property
    def has_classes(self) -> bool:
        """True when predictions can be right or wrong (class and multi-label tasks)."""
        return self.name != "regression"

    # -- labels ---------------------------------------------------------------------------------------------------
    def labeled(self, y: Tensor) -> Tensor:
        """A boolean ``(N,)`` mask of the labelled samples of ``y``."""
        if self.name == "multiclass":
            return y != UNLABELED if not y.is_floating_point() else ~torch.isnan(y.reshape(len(y), -1)).any(1)
        y = y.reshape(len(y), -1)
        return ~torch.isnan(y).all(dim=1)

    # -- losses ---------------------------------------------------------------------------------------------------
    def per_sample_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The loss of each sample, ``(N,)``; unlabelled samples get 0."""
        if self.name == "multiclass":
            if y.is_floating_point():  # class probabilities (soft labels)
                return F.cross_entropy(logits, y, reduction="none")
            return F.cross_entropy(logits, y, ignore_index=UNLABELED, reduction="none")
        y = y.to(logits.dtype).reshape(logits.shape)
        known = ~torch.isnan(y)
        y0 = torch.where(known, y, torch.zeros_like(y))
        if self.name == "multilabel":
            elem = F.binary_cross_entropy_with_logits(logits, y0, reduction="none")
        else:
            elem = (logits - y0) ** 2
        elem = elem * known
        if elem.ndim == 1:
            return elem
        return elem.reshape(len(elem), -1).sum(1) / known.reshape(len(known), -1).sum(1).clamp_min(1)

    def loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The mean loss over the labelled samples (a zero that keeps the graph when there are none).

        Multi-class: cross entropy ignoring :data:`UNLABELED`; multi-label: binary cross entropy on logits;
        regression: mean squared error. On fully labelled batches these equal ``F.cross_entropy``,
        ``F.binary_cross_entropy_with_logits`` and ``F.mse_loss``.
        """
        if self.name == "multiclass":
            if y.is_floating_point():  # class probabilities (soft labels)
                return F.cross_entropy(logits, y)
            # no host sync: a batch without labelled samples selects a zero that keeps the graph
            mean = F.cross_entropy(logits, y, ignore_index=UNLABELED)
            return torch.where((y != UNLABELED).any(), mean, logits.sum() * 0.0)
        y = y.to(logits.dtype).reshape(logits.shape)
        known = ~torch.isnan(y)
        if bool(known.all()):
            if self.name == "multilabel":
                return F.binary_cross_entropy_with_logits(logits, y)
            return F.mse_loss(logits, y)
        if not bool(known.any()):
            return logits.sum() * 0.0
        if self.name == "multilabel":
            return F.binary_cross_entropy_with_logits(logits[known], y[known])
        return F.mse_loss(logits[known], y[known])

    def attack_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The summed loss that attacks ascend (per-sample gradients do not shrink with the batch)."""
        return self.per_sample_loss(logits, y).sum()

    # -- comparing two predictions --------------------------------------------------------------------------------
    def divergence(self, target: Tensor, logits: Tensor, *, kind: str = "kl", temperature: float = 1.0,
                   reduction: str = "sum") -> Tensor:
        """How far ``logits`` is from ``target``, summed over the batch (divide by N for a mean) or per sample.

        Args:
            target: the reference prediction (detach it when it should not receive gradients).
            logits: the prediction that is pulled towards ``target``.
            kind: ``"kl"``: KL(target ‖ prediction) of the softmax (multi-class) or of each label's Bernoulli
                (multi-label); ``"mse"``: squared difference of the probabilities, divided by the number of
                classes (multi-class, as in Tarvainen & Valpola's and shadow-ssml's ``softmax_mse_loss``) or
                labels. Regression compares the outputs by squared difference for both kinds.
            temperature: logits are divided by it first (distillation).
            reduction: ``"sum"`` over the batch, or ``"none"``: one value per sample.

        Shape:
            target, logits: ``(N, K)``; returns a scalar, or ``(N,)`` with ``reduction="none"``.
        """
        if kind not in _DIVERGENCES:
            raise ConfigError(f"unknown divergence {kind!r}; choose from {', '.join(_DIVERGENCES)}")
        if reduction not in ("sum", "none"):
            raise ConfigError(f"reduction must be 'sum' or 'none', got {reduction!r}")
        if temperature != 1.0:
            target, logits = target / temperature, logits / temperature
        scale = 1.0
        if self.name == "regression":
            elem = (logits - target) ** 2
        elif self.name == "multiclass":
            if kind == "kl":
                elem = F.kl_div(F.log_softmax(logits, dim=1), F.softmax(target, dim=1), reduction="none")
            else:
                elem = F.mse_loss(F.softmax(logits, dim=1), F.softmax(target, dim=1), reduction="none")
                scale = logits.shape[1]
        elif kind == "kl":
            p, log_p, log_1mp = torch.sigmoid(target), F.logsigmoid(target), F.logsigmoid(-target)
            log_q, log_1mq = F.logsigmoid(logits), F.logsigmoid(-logits)
            elem = p * (log_p - log_q) + (1 - p) * (log_1mp - log_1mq)
        else:
            elem = F.mse_loss(torch.sigmoid(logits), torch.sigmoid(target), reduction="none")
            scale = logits[0].numel() if logits.ndim > 1 else 1
        if reduction == "none":
            elem = elem.reshape(len(elem), -1).sum(1)
        else:
            elem = elem.sum()
        return elem / scale if scale != 1.0 else elem

    # -- right or wrong -------------------------------------------------------------------------------------------
    def correct(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-sample correctness as floats in ``[0, 1]`` (multi-label: the fraction of labels right).

        Raises:
            ConfigError: for a regression task, which has no notion of a correct prediction.
        """
        if self.name == "regression":
            raise ConfigError("a regression task has no correct/incorrect predictions (no accuracy)")
        if self.name == "multiclass":
            if y.is_floating_point() or y.ndim != 1:
                raise ConfigError(
                    f"the task is 'multiclass' but the targets have shape {tuple(y.shape)} and dtype {y.dtype}; "
                    "pass task='multilabel' for 0/1 rows or task='regression' for real values"
                )
            return (logits.argmax(1) == y).float()
        y = y.reshape(logits.shape)
        return ((logits > 0) == (y > 0.5)).float().reshape(len(y), -1).mean(1)


def get_task(task: str | Task) -> Task:
    """A :class:`Task` from its name (or the task itself)."""
    return task if isinstance(task, Task) else Task(task)
