"""Knowledge distillation: a student trained on a frozen teacher's softened predictions and on the labels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modes import model_mode
from robustlab.common.regimes.base import Regime, all_inputs

__all__ = ["KnowledgeDistillation"]

_REDUCTIONS = ("batchmean", "mean")


class KnowledgeDistillation(Regime):
    """``alpha * t**2 * D(teacher(x) / t, student(x) / t) / N + (1 - alpha) * loss(student(x), y)``.

    The teacher is a frozen network the regime owns (registered with ``trainable=False``: moved to the device
    and saved in every checkpoint with the regime, never in the optimizer); it runs in eval mode without
    gradients. ``D`` is the task's divergence (:meth:`~robustlab.common.tasks.Task.divergence`, ``kind="kl"``):
    the KL divergence of the softmax for class tasks, of each label's Bernoulli for multi-label tasks, and the
    squared difference of the outputs for regression. The ``t**2`` factor keeps the soft term's gradients of the
    same size whatever the temperature (Hinton et al., section 2). The soft term covers every input of the
    batch, the unlabelled loader's too (the teacher labels them); the hard term the labelled samples only.

    Args:
        teacher: the trained network to distil (its ``requires_grad`` flags are turned off).
        temperature: ``t``, the softening of both predictions (Hinton et al. use 1 to 20).
        alpha: weight of the soft (teacher) term; ``1 - alpha`` weighs the task loss on the labels.
        kl_reduction: how the summed divergence is averaged: ``"batchmean"`` (default; divide by the number of
            samples, the KL per sample) or ``"mean"`` (divide by the number of logits, ``N * K``, as
            ``nn.KLDivLoss()``'s old default).
        loss: the hard loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Shape:
        batch ``x``: ``(N, *)``; the student and the teacher return ``(N, K)`` for the same input.

    Reference:
        Hinton, G., Vinyals, O., Dean, J. "Distilling the Knowledge in a Neural Network", NIPS Deep Learning
        Workshop 2014 (arXiv:1503.02531, 2015).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> teacher, student = MLP(2, 3, hidden=(32,)), MLP(2, 3, hidden=(4,))
        >>> regime = KnowledgeDistillation(teacher, temperature=4.0, alpha=0.9)
        >>> regime(student, {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,))}).ndim
        0
        >>> sorted(regime.networks), any(p.requires_grad for p in teacher.parameters())
        (['teacher'], False)
    """

    citation = ("Hinton, G., Vinyals, O., Dean, J. Distilling the Knowledge in a Neural Network. "
                "arXiv:1503.02531, 2015.")

    def __init__(self, teacher: nn.Module, *, temperature: float = 4.0, alpha: float = 0.9,
                 kl_reduction: str = "batchmean", loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        if kl_reduction not in _REDUCTIONS:
            raise ConfigError(f"kl_reduction must be one of {_REDUCTIONS}, got {kl_reduction!r}")
        self.add_network("teacher", teacher, trainable=False)
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.kl_reduction = kl_reduction

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher."""
        return self.networks["teacher"]

    def teacher_logits(self, x: Tensor) -> Tensor:
        """The teacher's output for ``x``: eval mode, no gradients, every submodule's mode restored."""
        teacher = self.teacher
        with torch.no_grad(), model_mode(teacher, "eval"):
            return teacher(x)

    def soft_loss(self, teacher_logits: Tensor, student_logits: Tensor) -> Tensor:
        """``t**2 * D(teacher / t, student / t)``, averaged as ``kl_reduction`` says."""
        t = self.temperature
        total = self.task.divergence(teacher_logits.detach(), student_logits, kind="kl", temperature=t)
        n = student_logits.numel() if self.kl_reduction == "mean" else student_logits.shape[0]
        return t * t * total / max(n, 1)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x_all = all_inputs(batch)
        logits = model(x_all)
        soft = self.soft_loss(self.teacher_logits(x_all), logits)
        hard = self.loss(logits[: len(batch["x"])], batch["y"])
        self.step_metrics = {"soft_loss": soft.item(), "hard_loss": hard.item()}
        return self.alpha * soft + (1.0 - self.alpha) * hard
