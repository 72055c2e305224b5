"""Realistic ECG perturbations: stated SNR, spectra, repeatability, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.ecg.perturb import (
    PERTURBATIONS,
    ElectrodeMotion,
    MuscleNoise,
    Powerline,
    measured_snr,
    perturb,
)

FS = 360.0
NAMES = sorted(PERTURBATIONS)


def _ecg_like(n=8, c=2, seconds=2.0, fs=FS, seed=0):
    """Gaussian 'QRS' spikes at about 75 bpm on a small offset plus a little white noise, in mV."""
    g = torch.Generator().manual_seed(seed)
    length = int(seconds * fs)
    t = torch.arange(length) / fs
    x = torch.zeros(n, c, length)
    for k, centre in enumerate(torch.arange(0.3, seconds, 0.8)):
        x += (1.0 + 0.1 * k) * torch.exp(-0.5 * ((t - centre) / 0.012) ** 2)
    return x + 0.2 + 0.02 * torch.randn(n, c, length, generator=g)


def _power_spectrum(noise):
    """Power per rfft bin of a Hann-windowed noise, summed over windows and channels, and the bins' Hz."""
    length = noise.shape[-1]
    w = torch.hann_window(length, periodic=False, dtype=torch.float64)
    p = torch.fft.rfft(noise.double() * w, dim=-1).abs().square().sum(dim=(0, 1))
    return p, torch.fft.rfftfreq(length, d=1 / FS, dtype=torch.float64)


def test_names_are_the_contracts():
    assert set(PERTURBATIONS) == {"baseline_wander", "muscle", "electrode_motion", "powerline50", "powerline60"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("snr_db", [-6.0, 0.0, 6.0, 12.0, 24.0])
def test_measured_snr_is_the_stated_one(name, snr_db):
    x = _ecg_like()
    y = perturb(x, name, snr_db, fs=FS, seed=3)
    snr = measured_snr(x, y)
    assert snr.shape == (8, 2)
    assert torch.allclose(snr, torch.full_like(snr, snr_db), atol=0.05), snr
    assert not torch.equal(x, y)


def test_measured_snr_by_hand():
    x = torch.tensor([[[1.0, -1.0, 1.0, -1.0]]]) + 5.0  # centred power 1
    noise = torch.tensor([[[0.1, 0.1, -0.1, -0.1]]])  # power 0.01: 20 dB
    assert measured_snr(x, x + noise).item() == pytest.approx(20.0, abs=1e-4)


@pytest.mark.parametrize("freq", [50.0, 60.0])
def test_powerline_peak_is_at_its_frequency(freq):
    x = _ecg_like(seconds=10.0)
    noise = perturb(x, f"powerline{int(freq)}", 0.0, fs=FS) - x
    p, f = _power_spectrum(noise)
    assert f[p.argmax()].item() == pytest.approx(freq, abs=0.11)
    near = (f - freq).abs() <= 1.0
    assert p[near].sum() / p.sum() > 0.99


def test_powerline_harmonics_add_peaks_below_nyquist():
    x = _ecg_like(seconds=10.0)
    noise = Powerline(0.0, FS, freq=60.0, harmonics=(0.5, 0.25, 0.1))(x) - x  # 120, 180 (= Nyquist: left out)
    p, f = _power_spectrum(noise)
    share = {h: p[(f - h).abs() <= 1.0].sum() / p.sum() for h in (60.0, 120.0, 180.0)}
    assert share[120.0] == pytest.approx(0.25 / 1.25, abs=0.02)  # amplitude 0.5: a quarter of the fundamental's power
    assert share[60.0] > 0.75 and share[180.0] < 1e-3


def test_baseline_wander_power_lies_below_1_hz():
    x = _ecg_like(seconds=30.0)
    noise = perturb(x, "baseline_wander", 0.0, fs=FS) - x
    p, f = _power_spectrum(noise)
    assert p[f < 1.0].sum() / p.sum() > 0.95


def test_muscle_noise_lies_in_its_band():
    x = _ecg_like(seconds=10.0)
    noise = perturb(x, "muscle", 0.0, fs=FS) - x
    p, f = _power_spectrum(noise)
    assert p[f > 15.0].sum() / p.sum() > 0.98
    assert p[f > 160.0].sum() / p.sum() < 0.02  # the upper edge clipped to 0.45 fs = 162 Hz
    assert MuscleNoise(fs=250.0).band == (20.0, 112.5)


def test_electrode_motion_is_low_frequency_with_transients():
    x = _ecg_like(n=16, seconds=10.0)
    smooth = ElectrodeMotion(0.0, FS, rate=0.0)(x) - x
    p, f = _power_spectrum(smooth)
    assert p[(f >= 0.4) & (f <= 10.5)].sum() / p.sum() > 0.98
    jumpy = ElectrodeMotion(0.0, FS, rate=2.0)(x) - x
    p, f = _power_spectrum(jumpy)
    assert p[f < 15.0].sum() / p.sum() > 0.9
    # A step shows as a sample-to-sample jump far above the smooth part's, relative to each window's power.
    rel = lambda n: (n.diff(dim=-1).abs().amax(dim=-1) / n.std(dim=-1)).median()  # noqa: E731
    assert rel(jumpy) > 3 * rel(smooth)


@pytest.mark.parametrize("name", NAMES)
def test_repeatable_with_a_seed_and_different_across_seeds(name):
    x = _ecg_like()
    a = perturb(x, name, 6.0, fs=FS, seed=1)
    module = PERTURBATIONS[name](snr_db=6.0, fs=FS, seed=1)
    assert torch.equal(a, module(x)) and torch.equal(a, module(x))
    assert not torch.allclose(a, perturb(x, name, 6.0, fs=FS, seed=2))
    rebuilt = type(module)(**module.model_args)  # the recorded arguments rebuild the same noise
    assert torch.equal(a, rebuilt(x))


@pytest.mark.parametrize("name", NAMES)
def test_windows_and_channels_get_their_own_noise(name):
    x = _ecg_like(n=2, c=2)
    x[1] = x[0]
    x[:, 1] = x[:, 0]
    noise = perturb(x, name, 6.0, fs=FS) - x
    assert not torch.allclose(noise[0], noise[1]) and not torch.allclose(noise[:, 0], noise[:, 1])


@pytest.mark.parametrize("name", NAMES)
def test_gradient_flows_as_through_an_addition(name):
    x = _ecg_like().requires_grad_(True)
    perturb(x, name, 0.0, fs=FS).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    x.grad = None
    w = torch.randn_like(x)
    (perturb(x, name, 0.0, fs=FS) * w).sum().backward()
    assert torch.allclose(x.grad, w)


@pytest.mark.parametrize("name", NAMES)
def test_flat_windows_get_no_noise_and_dtype_device_are_kept(name):
    x = _ecg_like(n=3).double()
    x[1] = 0.7
    y = perturb(x, name, 10.0, fs=FS)
    assert y.dtype == torch.float64 and y.device == x.device
    assert torch.isfinite(y).all() and torch.equal(y[1], x[1])
    assert torch.isinf(measured_snr(x, y)[1]).all()


def test_errors():
    x = _ecg_like()
    with pytest.raises(ConfigError, match="unknown perturbation 'hum'"):
        perturb(x, "hum", 10.0, fs=FS)
    with pytest.raises(ConfigError, match="snr_db"):
        MuscleNoise(snr_db=math.inf)
    with pytest.raises(ConfigError, match="freq"):
        Powerline(freq=200.0, fs=360.0)
    with pytest.raises(ConfigError, match="band"):
        MuscleNoise(fs=40.0)
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        MuscleNoise()(x[0])
