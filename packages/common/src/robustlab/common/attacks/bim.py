"""The basic iterative method (BIM, I-FGSM): signed-gradient steps clipped to the L-inf ball, no random start."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.attacks.base import LossFn
from robustlab.common.attacks.pgd import PGD

__all__ = ["BIM"]


def kurakin_steps(eps: float, *, levels: int = 255) -> int:
    """Kurakin et al.'s number of steps, ``min(eps + 4, 1.25 * eps)`` with ``eps`` in grey levels, at least 1.

    ``levels`` is how many grey levels one input unit spans (255 for images in ``[0, 1]``); this is the rule
    torchattacks' ``BIM(steps=0)`` applies (``int(min(eps * 255 + 4, 1.25 * eps * 255))``).

    Examples::

        >>> kurakin_steps(8 / 255), kurakin_steps(0.3)
        (10, 80)
    """
    return max(1, int(min(eps * levels + 4, 1.25 * eps * levels)))


class BIM(PGD):
    """``steps`` signed-gradient steps of size ``alpha``, each followed by a clip to the eps ball and the bounds.

    This is L-inf :class:`~robustlab.common.attacks.PGD` started at ``x`` (no random start), the I-FGSM of
    Kurakin et al.; with the same model, inputs and hyperparameters it equals ``torchattacks.BIM`` (which clips
    to ``[0, 1]``: pass ``bounds=(0.0, 1.0)``).

    Args:
        model: the network to attack.
        eps: L-inf radius in input units (a float or a per-feature tensor).
        alpha: step size; default ``2.5 * eps / steps`` (with torchattacks' defaults ``eps = 8/255`` and 10 steps
            this is its default ``alpha = 2/255``). Kurakin et al. step one grey level (``1/255`` on ``[0, 1]``).
        steps: number of steps; ``0`` chooses Kurakin et al.'s rule, :func:`kurakin_steps` of a float ``eps``
            (as torchattacks' ``steps=0``), for inputs whose unit spans 255 grey levels.
        bounds, loss, targeted, model_mode: see :class:`~robustlab.common.attacks.Attack`.

    Shape:
        x: ``(N, *)``; y: ``(N,)`` (or whatever ``loss`` takes); returns ``(N, *)`` like ``x``.

    Reference:
        Kurakin, A., Goodfellow, I., Bengio, S. "Adversarial examples in the physical world", ICLR Workshop 2017
        (arXiv:1607.02533).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(4, 3)
        >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
        >>> x_adv = BIM(model, eps=0.1, steps=5, bounds=(0.0, 1.0))(x, y)
        >>> bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """

    citation = ("Kurakin, A., Goodfellow, I., Bengio, S. Adversarial examples in the physical world. "
                "ICLR Workshop 2017.")

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float | Tensor,
        alpha: float | None = None,
        steps: int = 10,
        bounds=None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        if steps == 0:
            if isinstance(eps, Tensor):
                raise ValueError("steps=0 (Kurakin et al.'s rule) needs a float eps, got a tensor")
            steps = kurakin_steps(float(eps))
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, norm="linf", random_start=False, bounds=bounds,
                         loss=loss, targeted=targeted, model_mode=model_mode)
