"""Attribution methods: ``Method(model, *, ...)(x, target) -> attributions`` of the shape of ``x``.

The class-activation-map methods (:class:`GradCAM`, :class:`GradCAMPlusPlus`, :class:`SmoothGradCAMPlusPlus`)
explain one layer's feature maps and return them upsampled to ``x`` and repeated over its channels.

``target`` is an int (one class for the whole batch), a LongTensor ``(N,)`` (one class per sample) or None for
models with one output per sample. Every method runs the model in eval mode by default, restores each
submodule's own mode afterwards and takes gradients with respect to the input only (the CAM methods: with
respect to the explained layer's output), so parameters' ``.grad`` are left alone. ``__all__`` lists the methods (the contract tests run over it); the base class is
:class:`robustlab.common.attribution.base.Attribution`.
"""

from robustlab.common.attribution.expected_gradients import ExpectedGradients
from robustlab.common.attribution.grad_cam import GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from robustlab.common.attribution.gradient_times_input import GradientTimesInput
from robustlab.common.attribution.integrated_gradients import IntegratedGradients
from robustlab.common.attribution.saliency import Saliency
from robustlab.common.attribution.smooth_grad import SmoothGrad

__all__ = [
    "Saliency",
    "GradientTimesInput",
    "IntegratedGradients",
    "SmoothGrad",
    "ExpectedGradients",
    "GradCAM",
    "GradCAMPlusPlus",
    "SmoothGradCAMPlusPlus",
]
