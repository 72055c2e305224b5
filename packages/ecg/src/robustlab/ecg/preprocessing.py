"""ECG preprocessing as ``nn.Module``s: attacks, attributions and realistic perturbations differentiate through them.

Every module takes signals of shape ``(N, C, L)`` in millivolts and keeps ``C``; the filters work on any length
``L`` (a whole 30-minute record or a 2-second window), so the same module removes the baseline of a record when
beats are extracted and of a window inside a model. The modules record their arguments
(:class:`~robustlab.common.modelfile.RecordsArgs`): a model file that holds them rebuilds them without flags.

- :class:`BaselineRemoval`: the signal minus its baseline, estimated by two cascaded moving averages of 200 ms and
  600 ms (de Chazal et al. 2004 estimate it with median filters of these widths; a mean is differentiable
  everywhere, a median is not). Computed through cumulative sums: linear in ``L``, whatever the window.
- :class:`BandPass`: a zero-phase linear-phase FIR band-pass (``scipy.signal.firwin`` taps as a buffer, applied
  by ``conv1d`` with reflected edges).
- :class:`Normalize`: per-window z-score, or a fixed affine scale.
- :class:`Crop` and :class:`Decimate`: the part of a window a model looks at, and its time resolution (a
  low-pass average pool, so a decimated channel sees no aliased high frequencies).

Import cost: torch only; scipy is imported when a :class:`BandPass` is built.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["BandPass", "BaselineRemoval", "Crop", "Decimate", "Normalize", "moving_average", "remove_baseline"]


def _check_signal(x: Tensor, what: str) -> None:
    if x.ndim != 3:
        raise ValueError(f"{what} takes signals of shape (N, C, L), got {tuple(x.shape)}")


def moving_average(x: Tensor, width: int) -> Tensor:
    """The centred moving average of ``width`` samples (odd) along the last axis, edges padded by replication.

    Linear in the length through a cumulative sum (in float64 for a 30-minute record to keep its precision).
    """
    if width < 1 or width % 2 == 0:
        raise ValueError(f"moving_average needs an odd width >= 1, got {width}")
    if width == 1:
        return x
    half = width // 2
    padded = F.pad(x, (half, half), mode="replicate") if x.shape[-1] > 1 else x.expand(*x.shape[:-1], width)
    c = torch.cumsum(padded.double(), dim=-1)
    c = F.pad(c, (1, 0))
    out = (c[..., width:] - c[..., :-width]) / width
    return out.to(x.dtype)


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k if k % 2 else k + 1


class BaselineRemoval(RecordsArgs, nn.Module):
    """Subtract the baseline: two cascaded centred moving averages (``widths_s``, default 200 and 600 ms).

    Args:
        fs: sampling rate of the signal (Hz).
        widths_s: the widths of the cascaded averages in seconds (each rounded to an odd number of samples).

    Shape:
        ``(N, C, L)`` -> ``(N, C, L)``.
    """

    def __init__(self, fs: float = 360.0, widths_s: tuple[float, ...] = (0.2, 0.6)) -> None:
        super().__init__()
        if not (fs > 0 and math.isfinite(fs)):
            raise ConfigError(f"BaselineRemoval: fs must be a finite number > 0, got {fs!r}")
        if not widths_s or any(not (w > 0) for w in widths_s):
            raise ConfigError(f"BaselineRemoval: widths_s must be positive seconds, got {widths_s!r}")
        self.fs = float(fs)
        self.widths = tuple(_odd(w * fs) for w in widths_s)

    def baseline(self, x: Tensor) -> Tensor:
        """The estimated baseline, same shape as ``x``."""
        _check_signal(x, "BaselineRemoval")
        b = x
        for w in self.widths:
            b = moving_average(b, w)
        return b

    def forward(self, x: Tensor) -> Tensor:
        return x - self.baseline(x)


def remove_baseline(signal: np.ndarray, fs: float, widths_s: tuple[float, ...] = (0.2, 0.6)) -> np.ndarray:
    """:class:`BaselineRemoval` on a NumPy signal ``(L,)`` or ``(L, C)`` (WFDB's layout); float32, same shape."""
    a = np.asarray(signal, dtype=np.float32)
    one = a.ndim == 1
    t = torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1).T))[None]
    with torch.no_grad():
        out = BaselineRemoval(fs, widths_s)(t)[0].T.numpy()
    return out[:, 0] if one else out


class BandPass(RecordsArgs, nn.Module):
    """A linear-phase FIR band-pass (or low-pass with ``low=None``, high-pass with ``high=None``).

    Args:
        fs: sampling rate (Hz).
        low, high: the pass band's edges in Hz (None: no edge on that side).
        taps: filter length (odd); longer gives sharper edges.

    Shape:
        ``(N, C, L)`` -> ``(N, C, L)``; edges reflected (a signal shorter than ``taps // 2 + 1`` samples is
        padded by replication instead).
    """

    def __init__(self, fs: float = 360.0, low: float | None = 0.5, high: float | None = 40.0, taps: int = 101) -> None:
        super().__init__()
        from scipy.signal import firwin

        nyq = fs / 2
        if low is None and high is None:
            raise ConfigError("BandPass needs low, high or both")
        if (low is not None and not 0 < low < nyq) or (high is not None and not 0 < high < nyq) or (
                low is not None and high is not None and low >= high):
            raise ConfigError(f"BandPass: need 0 < low < high < fs/2 = {nyq:g} Hz, got low={low}, high={high}")
        if taps < 3 or taps % 2 == 0:
            raise ConfigError(f"BandPass: taps must be odd and >= 3, got {taps}")
        if low is not None and high is not None:
            h = firwin(taps, [low, high], pass_zero=False, fs=fs)
        elif low is not None:
            h = firwin(taps, low, pass_zero=False, fs=fs)
        else:
            h = firwin(taps, high, fs=fs)
        self.register_buffer("taps", torch.tensor(h[::-1].copy(), dtype=torch.float32).view(1, 1, -1))

    def forward(self, x: Tensor) -> Tensor:
        _check_signal(x, "BandPass")
        n, c, length = x.shape
        half = self.taps.shape[-1] // 2
        flat = x.reshape(n * c, 1, length)
        mode = "reflect" if length > half else "replicate"
        y = F.conv1d(F.pad(flat, (half, half), mode=mode), self.taps.to(x.dtype))
        return y.reshape(n, c, length)


class Normalize(RecordsArgs, nn.Module):
    """``"zscore"``: each window and channel to mean 0, standard deviation 1 (``eps`` keeps flat windows finite);
    ``"scale"``: ``(x - shift) / scale`` with fixed numbers (millivolts in, model units out)."""

    def __init__(self, mode: str = "zscore", shift: float = 0.0, scale: float = 1.0, eps: float = 0.01) -> None:
        super().__init__()
        if mode not in ("zscore", "scale"):
            raise ConfigError(f"Normalize: mode must be 'zscore' or 'scale', got {mode!r}")
        if not scale > 0 or not eps > 0:
            raise ConfigError(f"Normalize: scale and eps must be > 0, got {scale}, {eps}")
        self.mode, self.shift, self.scale, self.eps = mode, float(shift), float(scale), float(eps)

    def forward(self, x: Tensor) -> Tensor:
        _check_signal(x, "Normalize")
        if self.mode == "scale":
            return (x - self.shift) / self.scale
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / (std + self.eps)


class Crop(RecordsArgs, nn.Module):
    """Samples ``start .. start + length`` of the last axis (the part of a stored window a model looks at)."""

    def __init__(self, start: int, length: int) -> None:
        super().__init__()
        if start < 0 or length < 1:
            raise ConfigError(f"Crop: need start >= 0 and length >= 1, got {start}, {length}")
        self.start, self.length = int(start), int(length)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] < self.start + self.length:
            raise ValueError(f"Crop({self.start}, {self.length}) needs windows of at least {self.start + self.length} "
                             f"samples, got {x.shape[-1]}")
        return x[..., self.start:self.start + self.length]


class Decimate(RecordsArgs, nn.Module):
    """Lower the sampling rate by an integer ``factor``: the mean of each ``factor`` samples (a low-pass, then
    every ``factor``-th sample); ``factor=1`` is the identity."""

    def __init__(self, factor: int = 1) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"Decimate: factor must be >= 1, got {factor}")
        self.factor = int(factor)

    def forward(self, x: Tensor) -> Tensor:
        return x if self.factor == 1 else F.avg_pool1d(x, self.factor, self.factor)
