"""Integrated gradients: the path integral of the gradient from a baseline to the input."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.attribution.base import Attribution, Target, _check_positive_int, _tiles

__all__ = ["IntegratedGradients"]

_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


class IntegratedGradients(Attribution):
    """The gradient integrated along the straight path from a baseline to the input, times ``x - baseline``.

    ``IG(x) = (x - b) * integral_0^1 grad f(b + a (x - b)) da``, approximated by a quadrature with ``steps``
    points. All ``N * steps`` points go through the model in one batched forward and backward pass (or in
    blocks of at most ``internal_batch_size`` points), and the gradients are summed with one weighted
    reduction. The points and weights are Captum's: ``gausslegendre`` is the Gauss-Legendre rule on ``[0, 1]``,
    ``riemann_trapezoid`` puts ``steps`` points on ``linspace(0, 1)`` with half weights at both ends, and
    ``riemann_left``/``right``/``middle`` put them at the left ends, right ends or middles of ``steps`` equal
    intervals. Captum's trapezoid weights are ``1/steps`` (halved at the ends) on points spaced
    ``1/(steps - 1)`` apart, so they sum to ``(steps - 1)/steps``: its attributions are the trapezoid rule's times
    ``(steps - 1)/steps``, and completeness holds only to ``O(1/steps)``. Kept for agreement with Captum;
    prefer ``gausslegendre``, which is exact to float precision for smooth models at a few dozen steps.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        steps: number of quadrature points (``>= 1`` for Gauss-Legendre, ``>= 2`` for the Riemann rules).
        method: ``"gausslegendre"`` (default), ``"riemann_trapezoid"``, ``"riemann_left"``, ``"riemann_right"``
            or ``"riemann_middle"``.
        internal_batch_size: the most points per forward pass (bounds memory); None puts them all in one pass.
            Blocks hold whole steps for every sample (``internal_batch_size // N`` steps), or, when it is below
            ``N``, one step for ``internal_batch_size`` samples (Captum would raise it to ``N`` instead).
        multiply_by_inputs: multiply the integrated gradient by ``x - baseline`` (IG proper, whose attributions
            sum to ``f(x) - f(baseline)``); False returns the path-averaged gradient.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; baselines: None (zeros), a float, or a
        tensor broadcastable to ``x`` (e.g. ``(N, *)`` or ``(1, *)``); returns ``(N, *)`` like ``x``.

    Reference:
        Sundararajan, M., Taly, A., Yan, Q. "Axiomatic Attribution for Deep Networks", ICML 2017.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        multiply_by_inputs: bool = True,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, model_mode=model_mode)
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        self.steps = _check_positive_int("steps", steps, minimum=1 if method == "gausslegendre" else 2)
        self.method = method
        self.internal_batch_size = _check_positive_int(
            "internal_batch_size", internal_batch_size, optional=True
        )
        self.multiply_by_inputs = bool(multiply_by_inputs)
        self._alphas, self._weights = _quadrature(method, self.steps)

    def __call__(self, x: Tensor, target: Target = None, baselines: Tensor | float | None = None) -> Tensor:
        """Integrated gradients of the selected output(s) from ``baselines`` (default zeros) to ``x``."""
        x = self._check_x(x)
        target = self._check_target(target, x)
        baseline = _broadcast_baselines(baselines, x)
        diff = x - baseline
        alphas = self._alphas.to(device=x.device, dtype=x.dtype)
        weights = self._weights.to(device=x.device, dtype=x.dtype)
        n, shape = x.shape[0], x.shape[1:]
        ones = (1,) * x.ndim
        total = torch.zeros_like(x)
        with self._model_mode():
            for rows, cols in _tiles(n, self.steps, self.internal_batch_size):
                # Points in step-major order, built with one broadcast op: (s, n, *) = b + alpha * (x - b).
                points = torch.addcmul(baseline[rows], alphas[cols].view(-1, *ones), diff[rows])
                s, m = points.shape[:2]
                t = target[rows].repeat(s) if isinstance(target, Tensor) else target
                grad = self._input_gradient(points.reshape(s * m, *shape), t)
                # The weighted sum over the steps in one reduction: (s,) @ (s, m * d).
                total[rows] += (weights[cols] @ grad.reshape(s, -1)).view(m, *shape)
        return total.mul_(diff) if self.multiply_by_inputs else total


def _quadrature(method: str, steps: int) -> tuple[Tensor, Tensor]:
    """The points ``alpha`` in ``[0, 1]`` and weights of the quadrature rule ``method`` (Captum's conventions).

    Returns:
        ``(alphas, weights)``, two float64 tensors of shape ``(steps,)``.
    """
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return torch.from_numpy(0.5 * (nodes + 1.0)), torch.from_numpy(0.5 * w)
    weights = torch.full((steps,), 1.0 / steps, dtype=torch.float64)
    if method == "riemann_trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        return torch.linspace(0.0, 1.0, steps, dtype=torch.float64), weights
    start, end = {
        "riemann_left": (0.0, 1.0 - 1.0 / steps),
        "riemann_right": (1.0 / steps, 1.0),
        "riemann_middle": (0.5 / steps, 1.0 - 0.5 / steps),
    }[method]
    return torch.linspace(start, end, steps, dtype=torch.float64), weights


def _broadcast_baselines(baselines: Tensor | float | None, x: Tensor) -> Tensor:
    """The baseline as a (possibly stride-0) view of ``x``'s shape, dtype and device."""
    if baselines is None:
        return x.new_zeros(()).expand_as(x)
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return x.new_full((), float(baselines)).expand_as(x)
    if not isinstance(baselines, Tensor):
        raise ValueError(f"baselines must be None, a float or a tensor, got {type(baselines).__name__}")
    try:
        fits = torch.broadcast_shapes(baselines.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(
            f"baselines of shape {tuple(baselines.shape)} do not broadcast to x of shape {tuple(x.shape)}"
        )
    return baselines.detach().to(device=x.device, dtype=x.dtype).expand_as(x)
