"""Mean teacher: a student pulled towards the predictions of an exponential moving average of its own weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.regimes._ema import EMATeacherRegime

__all__ = ["MeanTeacher"]


class MeanTeacher(EMATeacherRegime):
    """``loss(s(x_l + n), y_l) + w * D(t(x + n'), s(x + n)) / N``, the teacher ``t`` an EMA of the student ``s``.

    The teacher is a deep copy of the model made in :meth:`setup` (or on the first call outside
    :func:`~robustlab.common.engine.fit`), registered as the network ``"teacher"`` (not trainable: moved to the
    device and saved in every checkpoint, never in the optimizer). After every optimizer step its parameters
    become ``a * teacher + (1 - a) * student`` with ``a = min(1 - 1 / (step + 1), alpha)`` (the authors' code);
    its buffers (batch-norm statistics) come from its own forward passes, which run without gradients in train
    mode (dropout acts as noise, as in shadow-ssml). Validation, ``best.pt`` and prediction use the teacher
    (:meth:`eval_model`). The student and the teacher see the inputs with Gaussian noise of std ``noise``, drawn
    separately; one student pass gives both the supervised loss (labelled samples) and the consistency term
    (every input, or the labelled ones with ``use_unlabeled=False``), ``D`` the task's divergence
    (:meth:`~robustlab.common.tasks.Task.divergence`, ``"mse"`` of the probabilities by default as in the paper).

    Departures from shadow-ssml's ``MT``: it runs the student twice per step (the supervised loss and the
    consistency term each on their own noise draw) where one pass serves both here, and its EMA update runs at
    the start of the next step's loss with a step count one higher (see
    :class:`~robustlab.common.regimes.eaat.EAAT`).

    Outside ``fit``, call :meth:`update_teacher` after each optimizer step; ``load_best(model, out_dir,
    regime=MeanTeacher())`` restores a saved teacher into a fresh regime.

    Args:
        alpha: the EMA decay (0.999, as shadow-ssml; the paper uses 0.99 during its ramp-up, then 0.999).
        noise: std of the Gaussian input noise of student and teacher (0 disables it).
        consistency: ``"mse"`` (the paper, shadow-ssml's default) or ``"kl"``.
        weight: weight ``w`` of the consistency term.
        rampup_epochs: ramp ``w`` up over these epochs as ``exp(-5 (1 - t)^2)`` (the paper's schedule; 0:
            constant).
        use_unlabeled: False: the consistency covers the labelled samples only and unlabelled inputs are
            ignored (separates the regularizer's gain from the unlabelled data's).
        loss: the supervised loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Shape:
        batch ``x``: ``(N, *)`` (and ``batch["unlabeled"]["x"]``: ``(M, *)``); the model returns ``(N, K)``.

    Reference:
        Tarvainen, A., Valpola, H. "Mean teachers are better role models: Weight-averaged consistency targets
        improve semi-supervised deep learning results", NeurIPS 2017.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 3)
        >>> regime = MeanTeacher(alpha=0.99, noise=0.1)
        >>> batch = {"x": torch.randn(8, 2), "y": torch.tensor([0, 2, 1, -1, -1, 0, -1, 1])}  # -1: unlabelled
        >>> loss = regime(model, batch)
        >>> loss.backward()
        >>> regime.update_teacher(model)  # fit calls it after every optimizer step
        0.5
        >>> regime.eval_model(model) is regime.teacher, sorted(regime.step_metrics)
        (True, ['class_loss', 'consistency'])
    """

    citation = ("Tarvainen, A., Valpola, H. Mean teachers are better role models: Weight-averaged consistency "
                "targets improve semi-supervised deep learning results. NeurIPS 2017.")

    def __init__(self, *, alpha: float = 0.999, noise: float = 0.1, consistency: str = "mse", weight: float = 1.0,
                 rampup_epochs: float = 0.0, use_unlabeled: bool = True, loss=None, task="multiclass") -> None:
        super().__init__(alpha=alpha, consistency=consistency, weight=weight, rampup_epochs=rampup_epochs,
                         use_unlabeled=use_unlabeled, loss=loss, task=task)
        if not noise >= 0:
            raise ConfigError(f"noise must be >= 0, got {noise}")
        self.noise = float(noise)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = self._split(batch)
        if len(x) == 0:
            return self._empty(model)
        target = self._teacher_logits(model, x, self.noise)
        logits = model(x + self.noise * torch.randn_like(x) if self.noise > 0 else x)
        return self._combine(logits, y, self.task.divergence(target, logits, kind=self.consistency))
