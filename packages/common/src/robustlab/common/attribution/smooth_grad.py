"""SmoothGrad: the gradient map averaged over noisy copies of the input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.attribution.base import Attribution, Target, _check_positive_int

__all__ = ["SmoothGrad"]

_BASES = ("saliency", "gradient")


class SmoothGrad(Attribution):
    """The mean of the gradient (or its absolute value) over ``n_samples`` copies of ``x + N(0, std^2)``.

    The noise is drawn as Captum's ``NoiseTunnel`` draws it (``x.repeat_interleave(k)`` plus ``k`` normal draws
    per sample, in blocks of ``k = internal_batch_size // N`` draws, or all ``n_samples`` at once), so under the
    same torch seed ``SmoothGrad(model, std=s, n_samples=n)`` equals ``NoiseTunnel(Saliency(model))`` with
    ``nt_type="smoothgrad", stdevs=s, nt_samples=n`` (and ``nt_samples_batch_size=internal_batch_size // N``).

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        n_samples: number of noisy copies per input.
        std: standard deviation of the Gaussian noise, absolute, in the units of the input (Smilkov et al. use
            10-20% of the input range).
        base: ``"saliency"`` averages ``|grad|`` (as ``NoiseTunnel(Saliency)``), ``"gradient"`` the signed
            gradient.
        internal_batch_size: the most noisy copies per forward pass (bounds memory); None does all at once.
        generator: a ``torch.Generator`` for the noise (on ``x``'s device); None uses torch's global generator.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, *)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, *)`` like ``x``.

    Reference:
        Smilkov, D., Thorat, N., Kim, B., Viegas, F., Wattenberg, M. "SmoothGrad: removing noise by adding
        noise", arXiv:1706.03825, 2017.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        n_samples: int = 50,
        std: float = 0.15,
        base: str = "saliency",
        internal_batch_size: int | None = None,
        generator: torch.Generator | None = None,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, model_mode=model_mode)
        if base not in _BASES:
            raise ValueError(f"base must be one of {_BASES}, got {base!r}")
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0:
            raise ValueError(f"std must be a float >= 0 (in input units), got {std!r}")
        self.n_samples = _check_positive_int("n_samples", n_samples)
        self.std = float(std)
        self.base = base
        self.internal_batch_size = _check_positive_int(
            "internal_batch_size", internal_batch_size, optional=True
        )
        self.generator = generator

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        n, shape = x.shape[0], x.shape[1:]
        chunk = self.internal_batch_size
        per_block = self.n_samples if chunk is None else max(1, min(self.n_samples, chunk // n))
        total = torch.zeros_like(x)
        with self._model_mode():
            for start in range(0, self.n_samples, per_block):
                k = min(per_block, self.n_samples - start)
                # Sample-major copies, as NoiseTunnel: row i * k + j is sample i with its j-th noise draw.
                noise = torch.randn((n * k, *shape), generator=self.generator, device=x.device, dtype=x.dtype)
                noisy = x.repeat_interleave(k, dim=0).add_(noise.mul_(self.std))
                t = target.repeat_interleave(k) if isinstance(target, Tensor) else target
                if chunk is None or n * k <= chunk:
                    grad = self._input_gradient(noisy, t)
                else:  # fewer points per pass than samples: k == 1, one row per sample
                    grad = torch.cat(
                        [
                            self._input_gradient(
                                noisy[i : i + chunk], t[i : i + chunk] if isinstance(t, Tensor) else t
                            )
                            for i in range(0, n, chunk)
                        ]
                    )
                if self.base == "saliency":
                    grad = grad.abs_()
                total += grad.reshape(n, k, *shape).sum(dim=1)
        return total.div_(self.n_samples)
