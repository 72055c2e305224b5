"""Spectrogram: shapes, agreement with librosa (stft, melspectrogram) and scipy.signal.stft, gradients, the cached
helper, argument checks, real PNW traces.

Tolerances (float32 module against float64 references): power within 1e-5 of each trace's largest value (measured
about 2e-7), log10 values within 1e-3 (measured about 6e-5, at the band's weakest bins); float64 input: within
1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.seismic.spectrogram import Spectrogram, spectrograms

RATE, L = 20.0, 2000


def _traces(n=6, length=L, seed=0, dtype=np.float32):
    """Band-passed (1-8 Hz) white noise with a burst, z-scored: the shape and spectrum of the project's traces."""
    from scipy.signal import butter, sosfiltfilt

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, length))
    x[..., length // 4:length // 2] *= 5
    x = sosfiltfilt(butter(4, [1, 8], btype="band", fs=RATE, output="sos"), x, axis=-1)
    return (x / x.std(-1, keepdims=True)).astype(dtype)


def _librosa_power(x, n_fft=128, hop=32, pad_mode="constant"):
    import librosa

    return np.abs(librosa.stft(x[:, 0].astype(np.float64), n_fft=n_fft, hop_length=hop, window="hann",
                               center=True, pad_mode=pad_mode)) ** 2


def _close_power(ours, ref, rel=1e-5):
    scale = ref.reshape(len(ref), -1).max(1)[:, None, None]
    err = (np.abs(ours - ref) / scale).max()
    assert err <= rel, err


def test_shapes_and_frequencies():
    spec = Spectrogram()
    assert spec.n_bins == 45 and spec.n_frames(L) == 63 and spec.n_frames(4000) == 126
    np.testing.assert_allclose(spec.frequencies[[0, -1]], [7 * RATE / 128, 51 * RATE / 128])
    assert spec(torch.randn(3, 1, L)).shape == (3, 1, 45, 63)
    assert spec(torch.randn(3, L)).shape == (3, 1, 45, 63)  # (N, L) read as one component
    mel = Spectrogram(n_mels=32)
    assert mel(torch.randn(2, 3, 1200)).shape == (2, 3, 32, 1 + 1200 // 32)
    assert 1.0 < mel.frequencies[0] < mel.frequencies[-1] < 8.0 and len(mel.frequencies) == 32
    assert Spectrogram(center=False).n_frames(L) == 1 + (L - 128) // 32
    assert Spectrogram(center=False)(torch.randn(1, 1, L)).shape[-1] == 1 + (L - 128) // 32
    assert "n_mels=32" in repr(mel)


@pytest.mark.parametrize("n_mels", [None, 32])
def test_matches_librosa(n_mels):
    import librosa

    x = _traces()
    power = _librosa_power(x)
    if n_mels is None:
        ref = power[:, 7:52]
    else:
        ref = librosa.feature.melspectrogram(S=power, sr=RATE, n_fft=128, n_mels=n_mels, fmin=1.0, fmax=8.0,
                                             power=2.0)
    ours = Spectrogram(n_mels=n_mels, log=False)(torch.from_numpy(x)).numpy()[:, 0]
    assert ours.shape == ref.shape
    _close_power(ours, ref)
    log = Spectrogram(n_mels=n_mels)(torch.from_numpy(x)).numpy()[:, 0]
    np.testing.assert_allclose(log, np.log10(ref + 1e-6), rtol=0, atol=1e-3)
    # in double precision the two agree to rounding
    ours64 = Spectrogram(n_mels=n_mels, log=False)(torch.from_numpy(x.astype(np.float64))).numpy()[:, 0]
    assert ours64.dtype == np.float64
    _close_power(ours64, ref, rel=1e-9)


def test_amplitude_and_reflect_padding_match_librosa():
    x = _traces(n=3, length=500)
    ref = _librosa_power(x, n_fft=64, hop=16, pad_mode="reflect")
    spec = Spectrogram(n_fft=64, hop_length=16, fmin=0.0, fmax=10.0, log=False, power=1.0, pad_mode="reflect")
    ours = spec(torch.from_numpy(x)).numpy()[:, 0]
    assert ours.shape == ref.shape == (3, 33, 1 + 500 // 16)
    _close_power(ours, np.sqrt(ref))


def test_matches_scipy_stft():
    from scipy.signal import get_window, stft

    x = _traces(n=4, length=4000)
    f, _, z = stft(x[:, 0].astype(np.float64), fs=RATE, window="hann", nperseg=128, noverlap=96, boundary="zeros",
                   padded=True)
    power = np.abs(z * get_window("hann", 128).sum()) ** 2  # scipy scales by 1 / window sum; librosa does not
    spec = Spectrogram(log=False)
    ours = spec(torch.from_numpy(x)).numpy()[:, 0]
    keep = (f >= 1.0) & (f <= 8.0)
    np.testing.assert_allclose(f[keep], spec.frequencies)
    t = spec.n_frames(4000)  # scipy's padded=True adds a last, partly empty frame
    _close_power(ours, power[:, keep, :t])


def test_gradients():
    spec = Spectrogram(rate=20.0, n_fft=16, hop_length=4, n_mels=4, fmin=1.0, fmax=8.0)
    x = torch.randn(2, 1, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(spec, (x,), eps=1e-6, atol=1e-5)
    lin = Spectrogram(rate=20.0, n_fft=16, hop_length=4, log=False, power=1.0)
    assert torch.autograd.gradcheck(lin, (x,), eps=1e-6, atol=1e-5)
    # float32 at the project's shape: finite gradients reach every sample, also of an all-zero trace
    x32 = torch.cat([torch.from_numpy(_traces(n=2)), torch.zeros(1, 1, L)]).requires_grad_()
    Spectrogram(n_mels=32)(x32).sum().backward()
    assert torch.isfinite(x32.grad).all() and (x32.grad[:2].abs() > 0).float().mean() > 0.99


def test_spectrograms_helper_matches_the_module():
    x = _traces(n=5)
    with torch.no_grad():
        ref = Spectrogram(n_mels=16)(torch.from_numpy(x)).numpy()
    out = spectrograms(x, n_mels=16, batch_size=2)
    assert out.dtype == np.float32 and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(spectrograms(x[:, 0], n_mels=16), ref)
    chunked = Spectrogram(n_mels=16)
    chunked.chunk = 2  # 5 traces in 3 torch.stft calls
    with torch.no_grad():
        np.testing.assert_array_equal(chunked(torch.from_numpy(x)).numpy(), ref)
    assert spectrograms(np.zeros((0, 1, L), np.float32)).shape == (0, 1, 45, 63)


@pytest.mark.parametrize("kwargs, match", [
    ({"rate": 0}, "rate"),
    ({"n_fft": 1}, "n_fft"),
    ({"hop_length": 0}, "hop_length"),
    ({"n_mels": 0}, "n_mels"),
    ({"fmin": 8.0, "fmax": 1.0}, "fmin"),
    ({"fmax": 11.0}, "rate / 2"),
    ({"eps": 0.0}, "eps"),
    ({"power": 0.0}, "power"),
    ({"pad_mode": "wrap"}, "pad_mode"),
    ({"n_fft": 8, "fmin": 1.0, "fmax": 2.0}, "no STFT bin"),
    ({"n_fft": 32, "n_mels": 40}, "mel filters"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Spectrogram(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="waveforms"):
        Spectrogram()(torch.randn(2, 1, 1, L))
    with pytest.raises(ValueError, match="shorter than n_fft"):
        Spectrogram(center=False).n_frames(100)


def test_real_traces_match_librosa():
    from robustlab.common.testing import shared_data
    from robustlab.seismic.data.pnw import read_labels
    from robustlab.seismic.preprocessing import PreprocessConfig, preprocess_files

    root = shared_data("seismic", "pnw_eq_vs_explosion")
    frame = read_labels(root)
    frame = frame[frame["sampling_rate"] >= 20].head(12)
    traces = preprocess_files(frame, root, PreprocessConfig(), progress=False)
    assert len(traces) >= 8
    ours = Spectrogram(n_mels=32, log=False)(torch.from_numpy(traces.x)).numpy()[:, 0]
    import librosa

    ref = librosa.feature.melspectrogram(S=_librosa_power(traces.x), sr=RATE, n_fft=128, n_mels=32, fmin=1.0,
                                         fmax=8.0)
    _close_power(ours, ref)
    assert np.isfinite(spectrograms(traces.x, n_mels=32)).all()
