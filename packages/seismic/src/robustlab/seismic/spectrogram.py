"""Spectrograms of waveforms as an ``nn.Module``: a short-time Fourier transform, a mel filter bank, a log.

:class:`Spectrogram` maps waveforms ``(N, C, L)`` to spectrograms ``(N, C, F, T)`` with batched
``torch.stft`` calls (all ``N * C`` traces at once, in chunks of 128). It is differentiable, so a model that holds it
(:class:`~robustlab.seismic.models.spectrogram_cnn.SpectrogramCNN`) takes waveforms and VAT, EAAT and attacks
perturb the waveform, not the spectrogram. :func:`spectrograms` computes the same arrays without gradients for
caching.

Conventions (librosa's, so that ``librosa.stft``/``librosa.feature.melspectrogram`` with the same settings give
the same numbers, checked in ``tests/seismic/test_spectrogram.py``):

- the window is a periodic Hann window of ``n_fft`` samples (``scipy.signal.get_window("hann", n_fft)``), hop
  ``hop_length``; ``center=True`` pads ``n_fft // 2`` samples on both sides, with zeros by default
  (``pad_mode="constant"``, librosa >= 0.10's default and ``scipy.signal.stft(boundary="zeros")``), so a trace of
  ``L`` samples has ``T = 1 + L // hop_length`` frames; frame ``t`` is centred on sample ``t * hop_length``;
- the STFT is not scaled (``scipy.signal.stft`` divides by the window's sum: multiply its output by
  ``window.sum()`` to compare); ``power=2`` gives ``|X|^2``;
- ``n_mels=None``: the STFT bins whose frequency ``k * rate / n_fft`` lies within ``[fmin, fmax]`` (at 20 Hz,
  ``n_fft=128``, 1-8 Hz: bins 7..51, F = 45, 0.156 Hz apart);
  ``n_mels=M``: ``librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=M, fmin=fmin, fmax=fmax)`` (Slaney mel scale,
  Slaney area normalisation; below 1 kHz that scale is linear, so at seismic rates the filters are evenly spaced
  triangles) applied to the power spectrum, as ``librosa.feature.melspectrogram(S=power)`` does;
- ``log=True``: ``log10(S + eps)``.

Defaults suit the project's traces (20 Hz, 100 s, 2000 samples, band-passed 1-8 Hz): 6.4 s windows, 1.6 s hop,
63 frames.

Examples::

    >>> import torch
    >>> spec = Spectrogram(rate=20.0, n_mels=32)
    >>> spec(torch.randn(4, 1, 2000)).shape
    torch.Size([4, 1, 32, 63])
    >>> Spectrogram().n_bins, Spectrogram().n_frames(2000)
    (45, 63)

Import cost: torch and NumPy; librosa is imported when a mel filter bank is built.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError

__all__ = ["PAD_MODES", "Spectrogram", "spectrograms"]

PAD_MODES = ("constant", "reflect")
"""How ``center=True`` pads the trace ends: zeros (librosa's and scipy's default) or a mirror image."""


class Spectrogram(nn.Module):
    """Batched, differentiable (log-)power or log-mel spectrogram of waveforms.

    All ``N * C`` traces go through one ``torch.stft`` call, in chunks of :attr:`chunk` traces when there are more
    (at 4,000 samples one call over 1,000 traces runs 2-3 times slower than chunks of 128, whose intermediate arrays
    stay in cache; a training batch is one chunk).

    Args:
        rate: sampling rate of the input (Hz).
        n_fft: window length in samples (also the FFT length).
        hop_length: samples between frames.
        n_mels: number of mel bands; None keeps the linear STFT bins within ``[fmin, fmax]``.
        fmin, fmax: the frequency range kept (Hz), ``0 <= fmin < fmax <= rate / 2``.
        log: return ``log10(S + eps)`` rather than ``S``.
        eps: the floor added before the log.
        power: exponent of the magnitude (2: power, 1: amplitude).
        center: pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred on sample ``t * hop_length``.
        pad_mode: ``"constant"`` (zeros) or ``"reflect"`` for the centre padding.

    Shape:
        input ``(N, C, L)`` (or ``(N, L)``, read as ``C = 1``), float; output ``(N, C, F, T)`` with
        ``F = n_bins`` and ``T = n_frames(L)``.

    Attributes:
        frequencies: NumPy array ``(F,)``: the bins' frequencies, or the mel bands' centre frequencies (Hz).
        n_bins: ``F``.
    """

    chunk: int = 128
    """Traces per ``torch.stft`` call."""

    def __init__(self, rate: float = 20.0, n_fft: int = 128, hop_length: int = 32, n_mels: int | None = None,
                 fmin: float = 1.0, fmax: float = 8.0, log: bool = True, eps: float = 1e-6, *,
                 power: float = 2.0, center: bool = True, pad_mode: str = "constant") -> None:
        super().__init__()
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ConfigError(f"Spectrogram: rate must be a finite number > 0 (Hz), got {rate!r}")
        for name, value in (("n_fft", n_fft), ("hop_length", hop_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Spectrogram: {name} must be an int >= 1, got {value!r}")
        if n_fft < 2:
            raise ConfigError(f"Spectrogram: n_fft must be >= 2, got {n_fft}")
        if n_mels is not None and (isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1):
            raise ConfigError(f"Spectrogram: n_mels must be None or an int >= 1, got {n_mels!r}")
        nyquist = rate / 2
        if not (0 <= fmin < fmax <= nyquist + 1e-9):
            raise ConfigError(f"Spectrogram: need 0 <= fmin < fmax <= rate / 2 = {nyquist:g} Hz, got fmin={fmin!r}, "
                              f"fmax={fmax!r}")
        if not (eps > 0):
            raise ConfigError(f"Spectrogram: eps must be > 0 (the floor before log10), got {eps!r}")
        if not (power > 0):
            raise ConfigError(f"Spectrogram: power must be > 0 (2: power, 1: amplitude), got {power!r}")
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"Spectrogram: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.rate, self.n_fft, self.hop_length, self.n_mels = float(rate), n_fft, hop_length, n_mels
        self.fmin, self.fmax, self.log, self.eps = float(fmin), float(fmax), bool(log), float(eps)
        self.power, self.center, self.pad_mode = float(power), bool(center), pad_mode
        freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
        if n_mels is None:
            keep = np.flatnonzero((freqs >= fmin - 1e-9) & (freqs <= fmax + 1e-9))
            if keep.size == 0:
                raise ConfigError(f"Spectrogram: no STFT bin lies within [{fmin:g}, {fmax:g}] Hz at rate={rate:g} Hz, "
                                  f"n_fft={n_fft} (bins are {rate / n_fft:g} Hz apart); widen the band or raise n_fft")
            self._lo, self._hi = int(keep[0]), int(keep[-1]) + 1
            self.frequencies = freqs[self._lo:self._hi]
            self.mel = None
        else:
            import librosa

            with warnings.catch_warnings():  # librosa warns of empty filters; the check below raises instead
                warnings.simplefilter("ignore", UserWarning)
                fb = librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
            empty = np.flatnonzero(fb.max(axis=1) == 0)
            if empty.size:
                raise ConfigError(f"Spectrogram: {empty.size} of the n_mels={n_mels} mel filters within "
                                  f"[{fmin:g}, {fmax:g}] Hz hold no STFT bin at n_fft={n_fft} ({rate / n_fft:g} Hz "
                                  "apart); lower n_mels or raise n_fft")
            nz = np.flatnonzero(fb.max(axis=0) > 0)  # the bins any filter uses: the rest are never computed on
            self._lo, self._hi = int(nz[0]), int(nz[-1]) + 1
            # kept in double precision (a float64 input gets float64 filters; float32 inputs a cast copy)
            self.register_buffer("mel", torch.as_tensor(fb[:, self._lo:self._hi], dtype=torch.float64),
                                 persistent=False)
            self.frequencies = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]
        self.n_bins = len(self.frequencies)

    def extra_repr(self) -> str:
        return (f"rate={self.rate:g}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}, "
                f"fmin={self.fmin:g}, fmax={self.fmax:g}, log={self.log}")

    def n_frames(self, length: int) -> int:
        """The number of frames ``T`` of a trace of ``length`` samples."""
        if self.center:
            return 1 + length // self.hop_length
        if length < self.n_fft:
            raise ValueError(f"Spectrogram: a trace of {length} samples is shorter than n_fft={self.n_fft} "
                             "(center=False)")
        return 1 + (length - self.n_fft) // self.hop_length

    def _transform(self, flat: Tensor, window: Tensor) -> Tensor:
        """``(B, L)`` traces to ``(B, F, T)``: one ``torch.stft`` call."""
        z = torch.stft(flat, self.n_fft, hop_length=self.hop_length, window=window, center=self.center,
                       pad_mode=self.pad_mode, normalized=False, onesided=True, return_complex=True)
        z = z[:, self._lo:self._hi]  # only the bins kept or used by a mel filter
        s = torch.view_as_real(z).square().sum(-1)  # |X|^2, smooth everywhere (|X| is not at 0)
        if self.power != 2.0:
            s = (s + torch.finfo(s.dtype).tiny).pow(self.power / 2)
        if self.mel is not None:
            mel = self.mel if self.mel.dtype == s.dtype else self.mel.to(s.dtype)
            s = torch.matmul(mel, s)
        if self.log:
            s = torch.log10(s + self.eps)
        return s

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2:
            x = x[:, None]
        if x.ndim != 3:
            raise ValueError(f"Spectrogram takes waveforms (N, C, L), got shape {tuple(x.shape)}")
        n, c, length = x.shape
        if self.center and self.pad_mode == "reflect" and length <= self.n_fft // 2:
            raise ValueError(f"Spectrogram: reflect padding needs traces longer than n_fft // 2 = {self.n_fft // 2} "
                             f"samples, got {length}")
        flat = x.reshape(n * c, length)
        window = torch.hann_window(self.n_fft, periodic=True, dtype=flat.dtype, device=flat.device)
        if len(flat) <= self.chunk:
            s = self._transform(flat, window)
        else:
            s = torch.cat([self._transform(part, window) for part in flat.split(self.chunk)])
        return s.reshape(n, c, s.shape[-2], s.shape[-1])


def spectrograms(x: np.ndarray | Tensor, *, rate: float = 20.0, n_fft: int = 128, hop_length: int = 32,
                 n_mels: int | None = None, fmin: float = 1.0, fmax: float = 8.0, log: bool = True,
                 eps: float = 1e-6, batch_size: int = 4096, **kwargs) -> np.ndarray:
    """The spectrograms of waveforms ``x (N, C, L)`` as a float32 array ``(N, C, F, T)``, without gradients.

    The arguments are :class:`Spectrogram`'s; ``batch_size`` traces are transformed per ``torch.stft`` call (to bound
    memory). For caching spectrograms beside a trace set, or for a model that takes them precomputed.

    Examples::

        >>> import numpy as np
        >>> spectrograms(np.zeros((3, 1, 2000), np.float32), n_mels=16).shape
        (3, 1, 16, 63)
    """
    spec = Spectrogram(rate, n_fft, hop_length, n_mels, fmin, fmax, log, eps, **kwargs)
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x)
    if t.ndim == 2:
        t = t[:, None]
    if not t.is_floating_point():
        t = t.float()
    out = []
    with torch.no_grad():
        for start in range(0, len(t), batch_size):
            out.append(spec(t[start:start + batch_size]).float().cpu().numpy())
    if not out:
        return np.zeros((0, t.shape[1], spec.n_bins, spec.n_frames(t.shape[-1])), np.float32)
    return np.concatenate(out)
