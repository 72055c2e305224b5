"""Adversarially robust distillation (ARD): a student pulled towards a robust teacher's clean predictions from
its own adversarial examples."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.attacks.base import Attack
from robustlab.common.errors import ConfigError
from robustlab.common.regimes.base import unwrap
from robustlab.common.regimes.distillation import KnowledgeDistillation
from robustlab.common.regimes.schedules import EpsRamp, ScheduledBudget

__all__ = ["ARD"]


class ARD(ScheduledBudget, KnowledgeDistillation):
    """``alpha * t**2 * KL(teacher(x) / t || student(x + delta) / t) + (1 - alpha) * CE(student(x), y)``.

    ``delta`` is found by ``attack`` on the student (not the teacher): it ascends the student's summed task
    loss on the true labels (cross entropy for class tasks; the attack's own loss is not used). The frozen
    teacher sees the clean input only, in eval mode without gradients. The divergence is the task's
    (:meth:`~robustlab.common.tasks.Task.divergence`, ``kind="kl"``), so multi-label tasks use the Bernoulli KL
    of each label and regression the squared difference of the outputs (extensions; the paper is multi-class).

    Following the authors' code (``goldblum/AdversariallyRobustDistillation``, commit ``779ade3``, ``main.py``):

    - the attack is L-inf PGD with a uniform random start in the ball, 10 steps of ``2/255`` within
      ``eps = 8/255`` on CIFAR images in ``[0, 1]``, ascending the summed cross entropy of the student on the
      true labels, with the student in train mode (its ``net.train()`` covers the attack): build it as
      ``PGD(student, eps=8/255, alpha=2/255, steps=10, bounds=(0, 1), model_mode="train")``;
    - the forward passes run in the authors' order: the attack, the student on ``x + delta``, the teacher on
      ``x`` (in eval mode), the student on ``x``. The clean pass runs even when ``alpha = 1`` (the default,
      where the cross-entropy term has weight 0): in train mode it updates batch-norm statistics, as theirs does;
    - the KL is ``nn.KLDivLoss()`` with its default reduction, the mean over all ``N * K`` logits (not per
      sample): ``kl_reduction="mean"`` here; ``"batchmean"`` divides by ``N`` instead;
    - ``temperature=30`` and ``alpha=1`` are their defaults. Their training used SGD (learning rate 0.1,
      momentum 0.9, weight decay 2e-4, batch 128, 200 epochs, learning rate times 0.1 at epochs 100 and 150)
      with a TRADES WideResNet-34-10 teacher and a MobileNetV2 student: that is the caller's ``fit`` set-up.

    Departures: robustlab's PGD clamps the random start into the input bounds before the first gradient (the
    authors clamp only after each step); samples without a label (:data:`~robustlab.common.tasks.UNLABELED`,
    NaN rows) have no loss for the attack to ascend and keep the random start; a batch from an unlabelled loader
    is refused, since the attack needs labels.

    Args:
        teacher: the (adversarially trained) network to distil; frozen by the regime.
        attack: an attack built on the student (its loss is replaced by the task's summed loss). An attack built
            without a model (``model=None``) is given the student at the first call.
        temperature: ``t`` (30 in the authors' code).
        alpha: weight of the distillation term (1 in the authors' code: no cross entropy).
        kl_reduction: ``"mean"`` (default, over the ``N * K`` logits, as the authors) or ``"batchmean"``.
        loss: the clean loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        schedule: an optional :class:`~robustlab.common.regimes.schedules.EpsRamp` for the attack's budget (and
            step size), as :class:`~robustlab.common.regimes.AdversarialTraining` uses it; None (default, as the
            authors' code) attacks at the full budget from the first step. An extension, for comparisons in which
            the adversarially trained baselines ramp their budget. While the factor is 0 (clean warm-up) no
            attack runs: the student sees the clean batch in both terms.

    Shape:
        batch ``x``: ``(N, *)``; ``y``: the task's targets; the student and the teacher return ``(N, K)``.

    Reference:
        Goldblum, M., Fowl, L., Feizi, S., Goldstein, T. "Adversarially Robust Distillation", AAAI 2020
        (arXiv:1905.09747). Code: https://github.com/goldblum/AdversariallyRobustDistillation (commit
        779ade36d612bddb0a5a705fdd74efe7571a1381, ``main.py``).

    Examples::

        >>> import torch
        >>> from robustlab.common.attacks import PGD
        >>> from robustlab.common.models import MLP
        >>> teacher, student = MLP(2, 3, hidden=(32,)), MLP(2, 3, hidden=(4,))
        >>> attack = PGD(student, eps=0.1, alpha=0.025, steps=10, model_mode="train")
        >>> regime = ARD(teacher, attack, temperature=30.0, alpha=1.0)
        >>> regime(student, {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,))}).ndim
        0
    """

    citation = ("Goldblum, M., Fowl, L., Feizi, S., Goldstein, T. Adversarially Robust Distillation. "
                "AAAI 2020.")

    def __init__(self, teacher: nn.Module, attack: Attack, *, temperature: float = 30.0, alpha: float = 1.0,
                 kl_reduction: str = "mean", loss=None, task="multiclass", schedule: EpsRamp | None = None) -> None:
        super().__init__(teacher, temperature=temperature, alpha=alpha, kl_reduction=kl_reduction, loss=loss,
                         task=task)
        self.attack = attack
        self._check_attack()
        self.schedule = schedule
        self._init_budget()

    def _check_attack(self) -> None:
        if self.attack.model is not None and unwrap(self.attack.model) is self.teacher:
            raise ConfigError("ARD's attack must be built on the student, not on the teacher: delta maximizes the "
                              "student's loss")

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        if batch.get("unlabeled") is not None:
            raise ConfigError("ARD trains on labelled batches only (its attack ascends the loss on the labels); "
                              "fit it without an unlabeled_loader or use KnowledgeDistillation")
        if self.attack.model is None:
            self.attack.model = unwrap(model)
        self._check_attack()
        x, y = batch["x"], batch["y"]
        # clean warm-up (factor 0): no attack at budget 0, the batch itself
        x_adv = self.attack.perturb(x, y, loss=self.task.attack_loss) if self._factor > 0 else x
        adv_logits = model(x_adv)
        soft = self.soft_loss(self.teacher_logits(x), adv_logits)
        hard = self.loss(model(x), y)
        self.step_metrics = {"soft_loss": soft.item(), "hard_loss": hard.item()}
        return self.alpha * soft + (1.0 - self.alpha) * hard
