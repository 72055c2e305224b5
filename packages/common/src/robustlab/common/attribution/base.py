"""What every attribution method shares: the model's mode, the target, and input gradients that leave the
model as it was."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from robustlab.common.modes import MODES
from robustlab.common.modes import input_gradient_context as _input_gradient_context

__all__ = ["Attribution", "Target"]

Target = int | Tensor | None



class Attribution:
    """Base class of the attribution methods: hyperparameters in ``__init__``, data in the call.

    A method is called as ``method(x, target)`` and returns a tensor of the shape of ``x``. Gradients are taken
    with ``torch.autograd.grad`` with respect to the input only, so the parameters' ``.grad`` are never touched,
    and every submodule's own ``training`` flag is restored afterwards.

    Args:
        model: the network to explain; it returns ``(N, C)`` scores, or ``(N,)`` / ``(N, 1)`` (one value per
            sample, e.g. a regression or a binary logit).
        model_mode: ``"eval"`` (default) runs the model in eval mode (dropout off, batch-norm running statistics),
            ``"train"`` in train mode, ``"keep"`` as it is.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, *)`` like ``x``.
    """

    def __init__(self, model: nn.Module, *, model_mode: str = "eval") -> None:
        if not callable(model):
            raise TypeError(f"model must be an nn.Module (or a callable), got {type(model).__name__}")
        if model_mode not in MODES:
            raise ValueError(f"model_mode must be one of {MODES}, got {model_mode!r}")
        self.model = model
        self.model_mode = model_mode

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        """Return the attribution of the selected output(s) to ``x``; same shape as ``x``.

        Args:
            x: a batch of inputs.
            target: the output to explain: an int (the same class for every sample), a LongTensor of shape
                ``(N,)`` (one class per sample), or None when the model returns one value per sample.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        params = {
            k: v for k, v in vars(self).items() if k not in ("model", "generator") and not k.startswith("_")
        }
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    # -- helpers for subclasses -------------------------------------------------------------------------------
    def _model_mode(self):
        """Context: the model in the method's mode, every submodule's own flag and parameters' ``requires_grad`` restored afterwards."""
        return _input_gradient_context(self.model, self.model_mode)

    @staticmethod
    def _check_x(x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch of shape (N, *), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
        return x.detach()

    @staticmethod
    def _check_target(target: Target, x: Tensor) -> int | Tensor | None:
        """Validate ``target`` against the batch; the class range is checked against the model's output."""
        if target is None:
            return None
        if isinstance(target, bool):
            raise ValueError("target must be an int, a LongTensor of shape (N,) or None, got a bool")
        if isinstance(target, int):
            if target < 0:
                raise ValueError(f"target must be >= 0, got {target}")
            return target
        if not isinstance(target, Tensor):
            raise ValueError(
                f"target must be an int, a LongTensor of shape (N,) or None, got {type(target).__name__}"
            )
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
        if target.ndim == 0:
            return Attribution._check_target(int(target), x)
        if target.shape != (x.shape[0],):
            raise ValueError(
                f"target must have shape (N,) = ({x.shape[0]},) to match x, got shape {tuple(target.shape)}"
            )
        if bool((target < 0).any()):
            raise ValueError(f"target must hold class indices >= 0, got min {int(target.min())}")
        return target.to(device=x.device, dtype=torch.long)

    def _input_gradient(self, points: Tensor, target: int | Tensor | None) -> Tensor:
        """The gradient of the selected output, summed over the batch, with respect to ``points`` only."""
        points = points.detach().requires_grad_(True)
        with torch.enable_grad():
            selected = _select(self.model(points), target, points.shape[0])
            (grad,) = torch.autograd.grad(selected.sum(), points, allow_unused=True)
        return torch.zeros_like(points) if grad is None else grad


def _select(out: Tensor, target: int | Tensor | None, n: int) -> Tensor:
    """The output chosen by ``target`` for each of the ``n`` rows of ``out``."""
    if not isinstance(out, Tensor) or out.ndim == 0 or out.shape[0] != n or out.ndim > 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return (N,) or (N, C) outputs; got {shape} for N={n} inputs")
    if out.ndim == 1:
        out = out.unsqueeze(1)
    c = out.shape[1]
    if target is None:
        if c != 1:
            raise ValueError(
                f"target is None but the model returns {c} outputs per sample; pass target= (an int or a "
                f"LongTensor of shape (N,))"
            )
        return out[:, 0]
    if isinstance(target, int):
        if target >= c:
            raise ValueError(f"target={target} is out of range for a model with {c} outputs per sample")
        return out[:, target]
    top = int(target.max())
    if top >= c:
        raise ValueError(f"target holds class {top}, out of range for a model with {c} outputs per sample")
    return out.gather(1, target.unsqueeze(1)).squeeze(1)


def _tiles(n: int, s: int, chunk: int | None) -> Iterator[tuple[slice, slice]]:
    """Cover a grid of ``n`` samples by ``s`` points per sample with blocks of at most ``chunk`` points.

    One block when it all fits; else blocks of every sample by ``chunk // n`` points; else (``chunk < n``)
    blocks of ``chunk`` samples by one point. Yields ``(samples, points)`` slices.
    """
    if chunk is None or chunk >= n * s:
        yield slice(0, n), slice(0, s)
    elif chunk >= n:
        per = chunk // n
        for k in range(0, s, per):
            yield slice(0, n), slice(k, min(k + per, s))
    else:
        for k in range(s):
            for i in range(0, n, chunk):
                yield slice(i, min(i + chunk, n)), slice(k, k + 1)


def _check_positive_int(
    name: str, value: int | None, *, minimum: int = 1, optional: bool = False
) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if optional else ''}, got {value!r}")
    return value
