"""Realistic ECG noise at a stated signal-to-noise ratio, as ``nn.Module``s, for robustness evaluation.

Each perturbation takes signals ``x (N, C, L)`` in millivolts and returns ``x + noise``. The noise of every window
and channel is drawn, scaled to unit power, then to the power the SNR asks for:

    noise power = signal power / 10 ** (snr_db / 10),

where the signal power is the mean square of the window's channel after its mean is removed, and the noise is
made zero-mean over each window and channel, so that its power is its mean square (:func:`measured_snr` gives
back ``snr_db`` to float precision). A flat window (power 0) gets no noise. The noise is drawn from a
``torch.Generator`` seeded by the module's ``seed``: the same call on the same shape gives the same noise, and a
different seed gives different noise. The noise does not depend on ``x`` through the gradient (the scale is
computed without it): the output differentiates as ``x`` plus a constant.

The models (``fs`` the sampling rate; any length ``L``; spectra shaped in the Fourier domain, so exact):

- :class:`BaselineWander`: the sum of ``components`` sinusoids with frequencies uniform in ``band`` (0.05-0.5
  Hz, respiration and body movement), uniform phases and Rayleigh amplitudes, drawn per window and channel.
- :class:`MuscleNoise` (EMG): Gaussian noise band-limited to ``band`` (20-150 Hz; the upper edge clipped to
  0.45 ``fs``, below Nyquist), stationary over the window.
- :class:`ElectrodeMotion`: Gaussian noise band-limited to ``band`` (0.5-10 Hz: electrode motion overlaps the
  ECG's own band, which is why it is the hardest to filter) plus transients: at a Poisson ``rate`` of events a
  second, a step of Gaussian height (``step_scale`` times the band-limited noise's standard deviation) that
  decays exponentially with time constant ``tau_s`` (a jump of the electrode-skin potential that relaxes).
- :class:`Powerline`: a sinusoid at ``freq`` (50 or 60 Hz) with a uniform random phase per window and channel,
  plus optional ``harmonics`` (relative amplitudes of 2 ``freq``, 3 ``freq`` ..., each with its own phase;
  those at or above Nyquist are left out).

The MIT-BIH Noise Stress Test Database (nstdb: real baseline wander 'bw', muscle artefact 'ma' and electrode
motion 'em' records, Moody et al. 1984) is the field's standard source of such noise. The synthetic models stand
in for it here: nothing is downloaded, the spectra are stated rather than those of three particular recordings,
any length, rate and number of windows is drawn without repeating a record, and powerline hum (absent from
nstdb) is covered. Noise taken from nstdb records is not offered.

Reference:
    Moody, G. B., Muldrow, W. E., Mark, R. G. (1984). A noise stress test for arrhythmia detectors.
    Computers in Cardiology 11, 381-384.

Import cost: torch only.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["PERTURBATIONS", "BaselineWander", "ElectrodeMotion", "MuscleNoise", "Perturbation", "Powerline",
           "measured_snr", "perturb"]


def _check_signal(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 3:
        raise ValueError(f"{what} takes signals of shape (N, C, L) as a torch.Tensor, got "
                         f"{tuple(x.shape) if hasattr(x, 'shape') else type(x).__name__}")


def _centred_power(x: Tensor) -> Tensor:
    """Mean square after the mean is removed, per window and channel: ``(N, C, L) -> (N, C, 1)``."""
    return (x - x.mean(dim=-1, keepdim=True)).square().mean(dim=-1, keepdim=True)


def measured_snr(clean: Tensor, noisy: Tensor) -> Tensor:
    """The SNR of ``noisy`` against ``clean`` in dB, per window and channel.

    Args:
        clean, noisy: signals of the same shape ``(N, C, L)``.

    Returns:
        ``(N, C)``: ``10 log10(P(clean) / P(noisy - clean))``, each power the mean square after the mean is removed
        (computed in float64, returned in ``clean``'s dtype); ``+inf`` where no noise was added, ``-inf`` for a
        flat ``clean`` with noise.
    """
    _check_signal(clean, "measured_snr")
    if noisy.shape != clean.shape:
        raise ValueError(f"measured_snr: clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} differ in shape")
    c = clean.detach().double()
    ps = _centred_power(c)[..., 0]
    pn = _centred_power(noisy.detach().double() - c)[..., 0]
    return (10 * (torch.log10(ps) - torch.log10(pn))).to(clean.dtype)


def _band_limited(shape: tuple[int, ...], fs: float, low: float, high: float, g: torch.Generator) -> Tensor:
    """White Gaussian noise with the Fourier bins outside ``[low, high]`` Hz set to zero (float64)."""
    length = shape[-1]
    spec = torch.fft.rfft(torch.randn(shape, generator=g, dtype=torch.float64), dim=-1)
    f = torch.fft.rfftfreq(length, d=1.0 / fs, dtype=torch.float64)
    return torch.fft.irfft(spec * ((f >= low) & (f <= high)), n=length, dim=-1)


class Perturbation(RecordsArgs, nn.Module):
    """Base class: ``forward(x) = x + noise`` scaled to ``snr_db``; subclasses draw the unscaled noise.

    Args:
        snr_db: the signal-to-noise ratio in dB (any finite number; lower is noisier).
        fs: sampling rate of the signals (Hz).
        seed: seed of the ``torch.Generator`` the noise is drawn from.

    Shape:
        ``(N, C, L)`` -> ``(N, C, L)``.
    """

    def __init__(self, snr_db: float = 10.0, fs: float = 360.0, seed: int = 0) -> None:
        super().__init__()
        name = type(self).__name__
        if not (isinstance(snr_db, numbers.Real) and math.isfinite(snr_db)):
            raise ConfigError(f"{name}: snr_db must be a finite number of dB, got {snr_db!r}")
        if not (isinstance(fs, numbers.Real) and math.isfinite(fs) and fs > 0):
            raise ConfigError(f"{name}: fs must be a finite number of Hz > 0, got {fs!r}")
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ConfigError(f"{name}: seed must be an int, got {seed!r}")
        self.snr_db, self.fs, self.seed = float(snr_db), float(fs), int(seed)

    def draw(self, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
        """The unscaled noise, float64 of ``shape``, on the CPU."""
        raise NotImplementedError

    def noise(self, x: Tensor) -> Tensor:
        """The noise ``forward`` adds to ``x`` (no gradient), same shape, dtype and device."""
        _check_signal(x, type(self).__name__)
        g = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            n = self.draw(tuple(x.shape), g)
            n = n - n.mean(dim=-1, keepdim=True)
            pn = n.square().mean(dim=-1, keepdim=True)
            xd = x.detach().double().cpu()
            flat = xd.amax(dim=-1, keepdim=True) == xd.amin(dim=-1, keepdim=True)  # power 0 but for rounding
            ps = torch.where(flat, 0.0, _centred_power(xd))
            scale = torch.sqrt(ps / 10 ** (self.snr_db / 10) / pn)
            n = torch.where(pn > 0, n * torch.nan_to_num(scale, nan=0.0, posinf=0.0), torch.zeros_like(n))
        return n.to(device=x.device, dtype=x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.noise(x)

    def extra_repr(self) -> str:
        return f"snr_db={self.snr_db:g}, fs={self.fs:g}, seed={self.seed}"


def _check_band(name: str, band: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(b) for b in band)
    if not 0 <= low < high:
        raise ConfigError(f"{name}: band must be (low, high) Hz with 0 <= low < high, got {band!r}")
    return low, high


class BaselineWander(Perturbation):
    """Baseline wander: ``components`` sinusoids at frequencies uniform in ``band`` Hz (see the module docstring).

    Args:
        snr_db, fs, seed: see :class:`Perturbation`.
        band: the frequency range of the sinusoids (Hz).
        components: how many sinusoids are summed.
    """

    def __init__(self, snr_db: float = 10.0, fs: float = 360.0, seed: int = 0,
                 band: tuple[float, float] = (0.05, 0.5), components: int = 3) -> None:
        super().__init__(snr_db, fs, seed)
        self.band = _check_band("BaselineWander", band)
        if not (isinstance(components, int) and components >= 1):
            raise ConfigError(f"BaselineWander: components must be an int >= 1, got {components!r}")
        self.components = components

    def draw(self, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
        k = (*shape[:2], self.components, 1)
        low, high = self.band
        freq = low + (high - low) * torch.rand(k, generator=g, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(k, generator=g, dtype=torch.float64)
        amp = torch.sqrt(-2 * torch.log1p(-torch.rand(k, generator=g, dtype=torch.float64)))  # Rayleigh(1)
        t = torch.arange(shape[-1], dtype=torch.float64) / self.fs
        return (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(dim=2)


class MuscleNoise(Perturbation):
    """Muscle (EMG) noise: Gaussian noise band-limited to ``band`` Hz, the upper edge clipped to 0.45 ``fs``.

    Args:
        snr_db, fs, seed: see :class:`Perturbation`.
        band: the pass band (Hz).
    """

    def __init__(self, snr_db: float = 10.0, fs: float = 360.0, seed: int = 0,
                 band: tuple[float, float] = (20.0, 150.0)) -> None:
        super().__init__(snr_db, fs, seed)
        low, high = _check_band("MuscleNoise", band)
        high = min(high, 0.45 * fs)
        if low >= high:
            raise ConfigError(f"MuscleNoise: band {band!r} lies above 0.45 fs = {0.45 * fs:g} Hz")
        self.band = (low, high)

    def draw(self, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
        return _band_limited(shape, self.fs, *self.band, g)


class ElectrodeMotion(Perturbation):
    """Electrode motion: band-limited Gaussian noise plus decaying steps at random times (module docstring).

    Args:
        snr_db, fs, seed: see :class:`Perturbation`.
        band: the pass band of the continuous part (Hz), the upper edge clipped to 0.45 ``fs``.
        rate: the mean number of steps a second (Poisson).
        step_scale: the standard deviation of a step's height, in units of the continuous part's standard
            deviation.
        tau_s: the time constant (s) of a step's exponential decay.
    """

    def __init__(self, snr_db: float = 10.0, fs: float = 360.0, seed: int = 0,
                 band: tuple[float, float] = (0.5, 10.0), rate: float = 0.5, step_scale: float = 3.0,
                 tau_s: float = 0.3) -> None:
        super().__init__(snr_db, fs, seed)
        low, high = _check_band("ElectrodeMotion", band)
        self.band = (low, min(high, 0.45 * fs))
        if not (rate >= 0 and step_scale >= 0 and tau_s > 0):
            raise ConfigError(f"ElectrodeMotion: need rate >= 0, step_scale >= 0, tau_s > 0, got {rate}, "
                              f"{step_scale}, {tau_s}")
        self.rate, self.step_scale, self.tau_s = float(rate), float(step_scale), float(tau_s)

    def draw(self, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
        length = shape[-1]
        smooth = _band_limited(shape, self.fs, *self.band, g)
        sd = smooth.std(dim=-1, keepdim=True)
        # Events: one per sample with probability rate / fs (a Poisson process sampled at fs).
        events = torch.rand(shape, generator=g, dtype=torch.float64) < self.rate / self.fs
        heights = torch.randn(shape, generator=g, dtype=torch.float64) * self.step_scale * sd
        kernel = torch.exp(-torch.arange(length, dtype=torch.float64) / (self.tau_s * self.fs))
        n = 2 * length  # linear, not circular, convolution of the impulses with the decay
        steps = torch.fft.irfft(torch.fft.rfft(events * heights, n=n) * torch.fft.rfft(kernel, n=n), n=n)
        return smooth + steps[..., :length]


class Powerline(Perturbation):
    """Powerline hum: a sinusoid at ``freq`` Hz with a random phase, plus optional harmonics.

    Args:
        snr_db, fs, seed: see :class:`Perturbation`.
        freq: the mains frequency (Hz), 50 or 60 (any frequency below ``fs / 2`` is accepted).
        harmonics: relative amplitudes of ``2 freq``, ``3 freq``, ... (the fundamental has amplitude 1).
    """

    def __init__(self, snr_db: float = 10.0, fs: float = 360.0, seed: int = 0, freq: float = 50.0,
                 harmonics: tuple[float, ...] = ()) -> None:
        super().__init__(snr_db, fs, seed)
        if not (0 < freq < fs / 2):
            raise ConfigError(f"Powerline: freq must lie in (0, fs/2 = {fs / 2:g}) Hz, got {freq!r}")
        if any(not (a >= 0) for a in harmonics):
            raise ConfigError(f"Powerline: harmonics must be amplitudes >= 0, got {harmonics!r}")
        self.freq, self.harmonics = float(freq), tuple(float(a) for a in harmonics)

    def draw(self, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
        t = torch.arange(shape[-1], dtype=torch.float64) / self.fs
        out = torch.zeros(shape, dtype=torch.float64)
        for k, amp in enumerate((1.0, *self.harmonics), start=1):
            phase = 2 * math.pi * torch.rand((*shape[:2], 1), generator=g, dtype=torch.float64)
            if k * self.freq < self.fs / 2:
                out += amp * torch.sin(2 * math.pi * k * self.freq * t + phase)
        return out


PERTURBATIONS: dict[str, Callable[..., Perturbation]] = {
    "baseline_wander": BaselineWander,
    "muscle": MuscleNoise,
    "electrode_motion": ElectrodeMotion,
    "powerline50": functools.partial(Powerline, freq=50.0),
    "powerline60": functools.partial(Powerline, freq=60.0),
}
"""Name -> constructor ``(snr_db, fs, seed, **options) -> Perturbation`` (the powerline entries bind ``freq``)."""


def perturb(x: Tensor, name: str, snr_db: float, *, fs: float, seed: int = 0, **options) -> Tensor:
    """``x`` plus the noise :data:`PERTURBATIONS` ``[name]`` draws at ``snr_db``.

    Args:
        x: signals ``(N, C, L)`` in mV.
        name: a key of :data:`PERTURBATIONS`.
        snr_db: the signal-to-noise ratio (dB).
        fs: sampling rate (Hz).
        seed: seed of the noise.
        **options: further arguments of the perturbation's constructor (e.g. ``harmonics``).

    Returns:
        ``x + noise``, same shape, dtype and device.

    Raises:
        ConfigError: an unknown name or a bad argument.
    """
    if name not in PERTURBATIONS:
        raise ConfigError(f"unknown perturbation {name!r}; known: {sorted(PERTURBATIONS)}")
    return PERTURBATIONS[name](snr_db=snr_db, fs=fs, seed=seed, **options)(x)
