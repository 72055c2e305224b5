"""Saliency maps: the gradient of the selected output with respect to the input."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.attribution.base import Attribution, Target

__all__ = ["Saliency"]


class Saliency(Attribution):
    """The gradient of the target output with respect to the input, in absolute value by default.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        abs: return ``|grad|`` (Simonyan et al., and Captum's default) rather than the signed gradient.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, *)`` like ``x``.

    Reference:
        Simonyan, K., Vedaldi, A., Zisserman, A. "Deep Inside Convolutional Networks: Visualising Image
        Classification Models and Saliency Maps", ICLR Workshop 2014.
    """

    def __init__(self, model: nn.Module, *, abs: bool = True, model_mode: str = "eval") -> None:
        super().__init__(model, model_mode=model_mode)
        self.abs = bool(abs)

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        with self._model_mode():
            grad = self._input_gradient(x, target)
        return grad.abs_() if self.abs else grad
