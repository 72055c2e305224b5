"""Exponential averaging adversarial training (EAAT): a mean teacher whose student sees virtual adversarial
inputs."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.regimes._ema import EMATeacherRegime
from robustlab.common.regimes.vat import _VirtualAdversarial

__all__ = ["EAAT"]


class EAAT(_VirtualAdversarial, EMATeacherRegime):
    """``loss(s(x_l + r_adv), y_l) + w * D(t(x + n), s(x + r_adv)) / N``: an EMA teacher on noisy inputs, the
    student on its virtual adversarial inputs.

    The teacher ``t`` is the mean teacher's (:class:`~robustlab.common.regimes.mean_teacher.MeanTeacher`): a
    copy of the model updated after every optimizer step as ``a * t + (1 - a) * s``, ``a = min(1 - 1 / (step +
    1), alpha)``, run without gradients in train mode on ``x + N(0, teacher_noise^2)``, and the network that
    validation uses. The student ``s`` runs on ``x + r_adv``, ``r_adv`` the virtual adversarial perturbation of
    the student (:func:`~robustlab.common.regimes.vat.virtual_adversarial_perturbation`, with the consistency
    divergence in the power iteration and ``flip_correction`` as in shadow-ssml). That one student pass gives the
    supervised loss (labelled samples; shadow-ssml also computes it on the perturbed input) and the consistency
    term (every input, or the labelled ones with ``use_unlabeled=False``), ``D`` the task's divergence.

    Departure from shadow-ssml: ``r_adv`` is computed once per step and the student's logits serve both terms;
    shadow-ssml's ``EAAT`` computes a second perturbation, from a new random direction, and a second student pass
    for the consistency term. Its EMA update also runs at the start of the next step's loss, with a step count
    one higher (``min(1 - 1 / (step + 2), alpha)`` after step ``step``; the last step's update never happens);
    here it runs after every optimizer step with the decay of the mean teacher's authors. The power iteration
    and the flip correction use the KL order of VAT's LDS (see
    :func:`~robustlab.common.regimes.vat.virtual_adversarial_perturbation`), and batch-norm running statistics
    are updated by the student's pass on ``x + r_adv`` only.

    Args:
        alpha: the teacher's EMA decay.
        teacher_noise: std of the Gaussian noise on the teacher's input (0 disables it).
        xi: the power iteration's finite-difference step.
        eps: the L2 norm of ``r_adv`` per sample.
        power_iter: power iterations (1 as in VAT).
        flip_correction: keep ``r_adv`` or ``-r_adv`` per sample, whichever changes the prediction more.
        consistency: ``"kl"`` (default, as shadow-ssml's EAAT) or ``"mse"``; also the power iteration's divergence.
        weight: weight ``w`` of the consistency term.
        rampup_epochs: ramp ``w`` up over these epochs (0: constant).
        use_unlabeled: False: the consistency covers the labelled samples only; unlabelled inputs are ignored.
        loss: the supervised loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Shape:
        batch ``x``: ``(N, *)`` (and ``batch["unlabeled"]["x"]``: ``(M, *)``); the model returns ``(N, K)``.

    Reference:
        Linville, L., Anderson, D., Michalenko, J., Galasso, J., Draelos, T. "Semisupervised Learning for
        Seismic Monitoring Applications", Seismological Research Letters 92(1):388-395, 2021.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 2, hidden=(10, 10))
        >>> regime = EAAT(alpha=0.8, xi=1e-4, eps=0.3)
        >>> batch = {"x": torch.randn(16, 2), "y": torch.tensor([0, 1] + [-1] * 14)}
        >>> regime(model, batch).ndim, sorted(regime.step_metrics)
        (0, ['class_loss', 'consistency'])
    """

    citation = ("Linville, L., Anderson, D., Michalenko, J., Galasso, J., Draelos, T. Semisupervised Learning for "
                "Seismic Monitoring Applications. Seismological Research Letters 92(1):388-395, 2021.")

    def __init__(self, *, alpha: float = 0.999, teacher_noise: float = 0.1, xi: float = 1e-6, eps: float = 1.0,
                 power_iter: int = 1, flip_correction: bool = True, consistency: str = "kl", weight: float = 1.0,
                 rampup_epochs: float = 0.0, use_unlabeled: bool = True, loss=None, task="multiclass") -> None:
        super().__init__(alpha=alpha, consistency=consistency, weight=weight, rampup_epochs=rampup_epochs,
                         use_unlabeled=use_unlabeled, loss=loss, task=task)
        if not teacher_noise >= 0:
            raise ConfigError(f"teacher_noise must be >= 0, got {teacher_noise}")
        self.teacher_noise = float(teacher_noise)
        self._set_perturbation(xi, eps, power_iter, flip_correction)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = self._split(batch)
        if len(x) == 0:
            return self._empty(model)
        target = self._teacher_logits(model, x, self.teacher_noise)
        logits = model(x + self.perturbation(model, x))
        return self._combine(logits, y, self.task.divergence(target, logits, kind=self.consistency))
