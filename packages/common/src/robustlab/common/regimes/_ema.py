"""The exponential-moving-average teacher of the mean teacher and EAAT: created from the student, updated after
every optimizer step, run without gradients in train mode, and used for validation."""

from __future__ import annotations

import copy
import weakref

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modes import model_mode
from robustlab.common.regimes._consistency import ConsistencyRegime
from robustlab.common.regimes.base import FitState, unwrap

__all__ = ["EMATeacherRegime", "ema_decay", "ema_update_"]


def ema_decay(alpha: float, step: int) -> float:
    """The decay in force after optimizer step ``step`` (from 1): ``min(1 - 1 / (step + 1), alpha)``.

    Early on the teacher is the plain average of the student's weights so far (its initial weights included),
    as in Tarvainen & Valpola's code.
    """
    return min(1.0 - 1.0 / (step + 1), alpha)


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    """``teacher <- decay * teacher + (1 - decay) * student``, parameter by parameter, in place (buffers are
    left to the teacher's own forward passes)."""
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params):
        raise ConfigError(f"the teacher has {len(t_params)} parameters but the student {len(s_params)}; the "
                          "student's structure changed after the teacher was copied from it")
    for t, s in zip(t_params, s_params):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)


class EMATeacherRegime(ConsistencyRegime):
    """A consistency regime whose target comes from an EMA teacher of the student (a registered network named
    ``"teacher"``, not trainable: the engine moves and checkpoints it, and validates it through
    :meth:`eval_model`).

    Args:
        alpha: the EMA decay (see :func:`ema_decay`).
        **kwargs: those of :class:`~robustlab.common.regimes._consistency.ConsistencyRegime`.
    """

    def __init__(self, *, alpha: float, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self._student: weakref.ref | None = None
        self._updates = 0

    @property
    def teacher(self) -> nn.Module | None:
        """The EMA teacher (None before :meth:`setup` or the first call)."""
        return self._networks.get("teacher")

    def _teacher_for(self, model: nn.Module) -> nn.Module:
        """The teacher of ``model``: a deep copy of it made on first use (again if the model is another one)."""
        student = unwrap(model)
        teacher = self.teacher
        if teacher is None or self._student is None or self._student() is not student:
            teacher = copy.deepcopy(student)
            for p in teacher.parameters():
                p.grad = None
            self.add_network("teacher", teacher, trainable=False)
            self._student = weakref.ref(student)
            self._updates = 0
        return teacher

    def _teacher_logits(self, model: nn.Module, x: Tensor, noise: float) -> Tensor:
        """The teacher's output on ``x + N(0, noise^2)``: no gradients, train mode (its dropout acts as noise
        and its batch-norm statistics come from its own passes), every submodule's mode restored."""
        teacher = self._teacher_for(model)
        with torch.no_grad(), model_mode(teacher, "train"):
            if noise > 0:
                x = x + noise * torch.randn_like(x)
            return teacher(x)

    def update_teacher(self, model: nn.Module, step: int | None = None) -> float:
        """The EMA update after optimizer step ``step`` (default: one more than the last); returns the decay."""
        teacher = self._teacher_for(model)
        step = self._updates + 1 if step is None else int(step)
        decay = ema_decay(self.alpha, step)
        ema_update_(teacher, unwrap(model), decay)
        self._updates = step
        return decay

    # -- what the engine asks -------------------------------------------------------------------------------------
    def setup(self, model: nn.Module, state: FitState) -> None:
        self._teacher_for(model)

    def on_step_end(self, model: nn.Module, state: FitState) -> None:
        super().on_step_end(model, state)
        self.update_teacher(model, state.global_step)

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The teacher: validation, ``best.pt`` selection and prediction use it."""
        return self._teacher_for(model)

    def state_dict(self) -> dict[str, int]:
        return {"ema_updates": self._updates}

    def load_state_dict(self, state: dict) -> None:
        self._updates = int(state.get("ema_updates", 0))
