"""Expected gradients: integrated gradients averaged over baselines drawn from a background distribution."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.attribution.base import Attribution, Target, _check_positive_int, _tiles

__all__ = ["ExpectedGradients"]


class ExpectedGradients(Attribution):
    """The Monte-Carlo mean of ``grad f(b + a (x - b)) * (x - b)`` over baselines ``b`` and ``a ~ U(0, 1)``.

    For each input, ``n_samples`` pairs (``b`` drawn uniformly with replacement from ``baselines``, ``a``
    uniform on ``[0, 1]``) are evaluated in one batched pass (or blocks of at most ``internal_batch_size``
    points). In expectation the attributions sum to ``f(x) - E_b[f(b)]``. This is the estimator of Captum's
    ``GradientShap`` with ``stdevs=0``; Captum draws with numpy's global generator, this class with torch's
    (or ``generator``), so the two agree in distribution, not draw for draw.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        n_samples: number of (baseline, alpha) draws per input.
        internal_batch_size: the most points per forward pass (bounds memory); None does all at once.
        generator: a ``torch.Generator`` for the draws, for reproducibility; None uses torch's global generator.
            The draws are made on the generator's device and moved to ``x``'s.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; baselines: ``(M, *)``, reference samples
        with the per-sample shape of ``x``; returns ``(N, *)`` like ``x``.

    Reference:
        Erion, G., Janizek, J. D., Sturmfels, P., Lundberg, S. M., Lee, S.-I. "Improving performance of deep
        learning models with axiomatic attribution priors and expected gradients", Nature Machine
        Intelligence 3, 620-631, 2021.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        n_samples: int = 50,
        internal_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, model_mode=model_mode)
        self.n_samples = _check_positive_int("n_samples", n_samples)
        self.internal_batch_size = _check_positive_int(
            "internal_batch_size", internal_batch_size, optional=True
        )
        self.generator = generator

    def __call__(self, x: Tensor, target: Target = None, baselines: Tensor | None = None) -> Tensor:
        """Expected gradients of the selected output(s) of ``x`` against the reference samples ``baselines``."""
        x = self._check_x(x)
        target = self._check_target(target, x)
        if baselines is None:
            raise ValueError("baselines is required: a tensor (M, *) of reference samples (the background)")
        if (
            not isinstance(baselines, Tensor)
            or baselines.ndim != x.ndim
            or baselines.shape[1:] != x.shape[1:]
        ):
            shape = tuple(baselines.shape) if isinstance(baselines, Tensor) else type(baselines).__name__
            raise ValueError(f"baselines must have shape (M, *{tuple(x.shape[1:])}) to match x, got {shape}")
        if baselines.shape[0] == 0:
            raise ValueError("baselines must hold at least one reference sample, got M=0")
        refs = baselines.detach().to(device=x.device, dtype=x.dtype)
        shape = (x.shape[0], self.n_samples)
        device = self.generator.device if self.generator is not None else x.device
        index = torch.randint(refs.shape[0], shape, generator=self.generator, device=device).to(x.device)
        alpha = torch.rand(shape, generator=self.generator, device=device, dtype=x.dtype).to(x.device)
        return self._estimate(x, target, refs, index, alpha)

    def _estimate(
        self, x: Tensor, target: int | Tensor | None, refs: Tensor, index: Tensor, alpha: Tensor
    ) -> Tensor:
        """The estimate for given draws: ``index`` and ``alpha`` of shape ``(N, n_samples)``."""
        n, s = index.shape
        shape = x.shape[1:]
        ones = (1,) * (x.ndim - 1)
        total = torch.zeros_like(x)
        with self._model_mode():
            for rows, cols in _tiles(n, s, self.internal_batch_size):
                # Sample-major points (m, k, *): ref + alpha * (x - ref).
                ref = refs[index[rows, cols]]
                delta = x[rows].unsqueeze(1) - ref
                points = torch.addcmul(ref, alpha[rows, cols].reshape(*alpha[rows, cols].shape, *ones), delta)
                m, k = points.shape[:2]
                t = target[rows].repeat_interleave(k) if isinstance(target, Tensor) else target
                grad = self._input_gradient(points.reshape(m * k, *shape), t)
                total[rows] += grad.reshape(delta.shape).mul_(delta).sum(dim=1)
        return total.div_(s)
