"""Gradient times input: the gradient of the selected output, multiplied element-wise by the input."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.attribution.base import Attribution, Target

__all__ = ["GradientTimesInput"]


class GradientTimesInput(Attribution):
    """The gradient of the target output times the input (Captum's ``InputXGradient``).

    A first-order Taylor term: for a linear model the attributions sum to the output minus the bias. The
    attribution is relative to an all-zero input, so it is meaningful where zero is a reference (one-hot DNA,
    centred signals), less so for unnormalized images.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, *)`` like ``x``.

    Reference:
        Shrikumar, A., Greenside, P., Shcherbina, A., Kundaje, A. "Not Just a Black Box: Learning Important
        Features Through Propagating Activation Differences", arXiv:1605.01713, 2016.
    """

    def __init__(self, model: nn.Module, *, model_mode: str = "eval") -> None:
        super().__init__(model, model_mode=model_mode)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        with self._model_mode():
            grad = self._input_gradient(x, target)
        return grad.mul_(x)
