"""Trace features and baselines: names and shapes, agreement with a plain per-trace computation (scipy.signal.welch,
hilbert, np.convolve, scipy.stats on each row), finite values on odd traces, station codes, and the four baselines
(separable data, seeds, multiclass columns, errors), plus real PNW traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlab.common.errors import ConfigError, DataError
from robustlab.seismic.features import (
    BASELINES,
    ENERGY_PARTS,
    NOISE_BANDS,
    NOISE_FEATURES,
    WAVEFORM_BANDS,
    WAVEFORM_FEATURES,
    baseline_probabilities,
    noise_feature_names,
    noise_features,
    station_codes,
    waveform_feature_names,
    waveform_features,
)

RATE = 20.0


def _traces(n=12, c=1, length=2000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(length) / RATE
    x = rng.standard_normal((n, c, length))
    for i in range(n):
        f0, start = rng.uniform(1.5, 7), rng.uniform(5, 60)
        x[i] += 4 * np.exp(-0.5 * ((t - start) / 4) ** 2) * np.sin(2 * np.pi * f0 * t)
    return (x / x.std(-1, keepdims=True)).astype(np.float32)


def _shares(f, p, bands):
    total = p[(f >= 1) & (f <= 8)].sum()
    out = []
    for i, (lo, hi) in enumerate(bands):
        m = (f >= lo) & ((f <= hi) if i == len(bands) - 1 else (f < hi))
        out.append(np.log10(max(p[m].sum() / total, 1e-12)))
    return out


def _row_features(row, rate=RATE):
    """The waveform features of one trace, the plain way."""
    from scipy import signal, stats

    row = row.astype(np.float64)
    f, p = signal.welch(row, fs=rate, nperseg=min(256, len(row)))
    band = (f >= 1) & (f <= 8)
    fb, pb = f[band], p[band]
    low = p[(f >= 1) & (f < 3)].sum()
    high = p[(f >= 4) & (f <= 8)].sum()
    centroid = np.sum(fb * pb) / pb.sum()
    width = round(rate)
    env = np.abs(signal.hilbert(row))
    padded = np.r_[np.full(width // 2, env[0]), env, np.full(width - 1 - width // 2, env[-1])]
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    t = np.arange(len(row)) / rate
    energy = row ** 2
    parts = [np.log10(max(energy[round(a * len(row)):round(b * len(row))].sum() / energy.sum(), 1e-12))
             for a, b in ENERGY_PARTS]
    n_peak = min(len(row), 512)
    start = min(max(int(np.argmax(smooth)) - n_peak // 2, 0), len(row) - n_peak)
    peak = row[start:start + n_peak]
    fp, pp = signal.welch(peak, fs=rate, nperseg=min(256, n_peak))
    peak_ratio = np.log10(pp[(fp >= 1) & (fp < 3)].sum()) - np.log10(pp[(fp >= 4) & (fp <= 8)].sum())
    return np.array([
        *_shares(f, p, WAVEFORM_BANDS), np.log10(low) - np.log10(high), fb[np.argmax(pb)], centroid,
        np.sqrt(np.sum((fb - centroid) ** 2 * pb) / pb.sum()),
        t[np.argmax(smooth)], np.log10(smooth.max()) - np.log10(np.median(smooth)),
        np.sum(t * smooth ** 2) / np.sum(smooth ** 2), *parts,
        stats.kurtosis(row), stats.skew(row), stats.kurtosis(smooth),
        *_shares(fp, pp, WAVEFORM_BANDS), peak_ratio, np.log10(np.mean(peak ** 2) / np.mean(energy))])


def test_names_and_shapes():
    x = _traces()
    feats = waveform_features(x, RATE)
    assert feats.dtype == np.float32 and feats.shape == (12, len(WAVEFORM_FEATURES)) == (12, 26)
    assert waveform_feature_names() == list(WAVEFORM_FEATURES)
    assert len(set(WAVEFORM_FEATURES)) == len(WAVEFORM_FEATURES)
    np.testing.assert_array_equal(waveform_features(x[:, 0], RATE), feats)  # (N, L) = one component
    x3 = _traces(n=4, c=3, length=1200)
    f3 = waveform_features(x3, RATE)
    names = waveform_feature_names(3)
    assert f3.shape == (4, 78) and names[0] == "c0_band_share_1_2" and names[-1] == "c2_log_peak_energy_ratio"
    np.testing.assert_allclose(f3[:, 26:52], waveform_features(x3[:, 1], RATE), rtol=1e-6)
    nf = noise_features(x[..., :200] * 300, RATE)
    assert nf.shape == (12, len(NOISE_FEATURES)) and noise_feature_names(2)[len(NOISE_FEATURES)] == "c1_log_std"


def test_waveform_features_match_a_per_trace_computation():
    x = _traces(n=10)
    ours = waveform_features(x, RATE)
    ref = np.stack([_row_features(r) for r in x[:, 0]])
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    # the features describe what they say: a trace's burst frequency and time come out
    assert np.all(np.abs(ours[:, WAVEFORM_FEATURES.index("dominant_freq")] - ours[:, 7]) < 1.5)


def test_known_burst():
    t = np.arange(2000) / RATE
    x = np.exp(-0.5 * ((t - 40) / 3) ** 2) * np.sin(2 * np.pi * 5.0 * t) + 0.01 * np.random.default_rng(0) \
        .standard_normal(2000)
    f = dict(zip(WAVEFORM_FEATURES, waveform_features(x[None, None], RATE)[0]))
    assert abs(f["dominant_freq"] - 5.0) < 0.1 and abs(f["env_peak_time"] - 40) < 0.5
    assert abs(f["env_centroid_time"] - 40) < 1 and f["band_share_4_6"] > -0.05 and f["log_ratio_low_high"] < -2
    assert f["energy_share_0.3_0.6"] > -0.01  # 40 s of 100 s
    assert f["peak_band_share_4_6"] > -0.01 and f["log_peak_energy_ratio"] > 0.5


def test_noise_features_match_a_per_trace_computation():
    from scipy import signal

    rng = np.random.default_rng(3)
    noise = rng.standard_normal((8, 1, 200)) * rng.uniform(10, 1e4, (8, 1, 1))
    ours = noise_features(noise, RATE)
    for i, row in enumerate(noise[:, 0]):
        f, p = signal.welch(row, fs=RATE, nperseg=128)
        band = (f >= 1) & (f <= 8)
        ref = [np.log10(row.std()), *_shares(f, p, NOISE_BANDS), f[band][np.argmax(p[band])]]
        np.testing.assert_allclose(ours[i], ref, rtol=1e-5, atol=1e-5)


def test_odd_traces_give_finite_features():
    x = np.zeros((3, 1, 2000), np.float32)
    x[1, 0, 1000] = 1.0  # a spike
    x[2] = 5.0  # a constant
    assert np.isfinite(waveform_features(x, RATE)).all()
    assert np.isfinite(noise_features(x[..., :200], RATE)).all()
    assert np.isfinite(waveform_features(_traces(n=2, length=100), RATE)).all()  # shorter than a Welch segment


def test_bad_inputs():
    x = _traces(n=3)
    x[2, 0, 5] = np.nan
    with pytest.raises(DataError, match="row 2"):
        waveform_features(x, RATE)
    with pytest.raises(DataError, match="shape"):
        waveform_features(np.zeros((2, 1, 1, 10)), RATE)
    with pytest.raises(ConfigError, match="Nyquist"):
        noise_features(np.zeros((2, 1, 10)), 10.0)
    with pytest.raises(ConfigError, match="rate"):
        waveform_features(np.zeros((2, 1, 10)), 0)


def test_station_codes():
    meta = pd.DataFrame({"station": ["UW.B", "UW.A", "UW.B"]})
    codes = station_codes(meta)
    np.testing.assert_array_equal(codes, [[0, 1], [1, 0], [0, 1]])
    np.testing.assert_array_equal(station_codes(["UW.C", "UW.A"], stations=["UW.A", "UW.B"]), [[0, 0], [1, 0]])
    with pytest.raises(DataError, match="'station' column"):
        station_codes(pd.DataFrame({"sta": ["a"]}))


def _baseline_data(n=120, seed=0):
    """Waveforms whose burst frequency, noise level and station follow the class (as the PNW shortcuts do)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 4 == 0).astype(int)  # 1 in 4: explosions are the minority
    t = np.arange(2000) / RATE
    x = rng.standard_normal((n, 1, 2000)) * 0.5
    for i in range(n):
        x[i, 0] += 3 * np.exp(-0.5 * ((t - 30) / 4) ** 2) * np.sin(2 * np.pi * (2.0 if y[i] == 0 else 6.0) * t)
    noise = rng.standard_normal((n, 1, 200)) * np.where(y == 1, 1000.0, 30.0)[:, None, None]
    station = np.where(y == 1, rng.choice(["UW.X", "UW.Y"], n), rng.choice(["UW.A", "UW.B", "UW.C"], n))
    meta = pd.DataFrame({"station": station})
    return (x / x.std(-1, keepdims=True)).astype(np.float32), noise.astype(np.float32), meta, y


class _Set:  # duck-typed TraceSet
    def __init__(self, x, noise, meta):
        self.x, self.noise, self.meta = x, noise, meta


@pytest.mark.parametrize("kind", BASELINES)
def test_baselines_separate_and_are_seeded(kind):
    x, noise, meta, y = _baseline_data()
    xt, nt, mt, yt = _baseline_data(seed=1)
    train, test = _Set(x, noise, meta), _Set(xt, nt, mt)
    p = baseline_probabilities(kind, train, y, test, seed=0)
    assert p.shape == (len(yt),) and np.all((p >= 0) & (p <= 1))
    assert ((p > 0.5) == yt).mean() > 0.95
    np.testing.assert_array_equal(p, baseline_probabilities(kind, train, y, test, seed=0))
    if kind == "station":
        p2 = baseline_probabilities(kind, meta, y, mt)
    elif kind == "noise":
        p2 = baseline_probabilities(kind, noise, y, nt)
    else:
        p2 = baseline_probabilities(kind, waveform_features(x), y, waveform_features(xt), seed=0)
    np.testing.assert_allclose(p2, p)


def test_random_forest_seed_matters_and_multiclass_columns():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 3], 30)  # class 2 absent from training
    X = rng.standard_normal((90, 4)) + np.eye(4)[y] * 3
    a = baseline_probabilities("features_rf", X, y, X[:10], seed=0, n_classes=5)
    b = baseline_probabilities("features_rf", X, y, X[:10], seed=1, n_classes=5)
    assert a.shape == (10, 5) and np.allclose(a.sum(1), 1) and (a[:, [2, 4]] == 0).all()
    assert not np.array_equal(a, b)
    lr = baseline_probabilities("features", X, y, X[:10])
    assert lr.shape == (10, 4)


def test_baseline_errors():
    X = np.zeros((4, 2))
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline_probabilities("depth", X, [0, 1, 0, 1], X)
    with pytest.raises(DataError, match="at least two"):
        baseline_probabilities("features", X, [0, 0, 0, 0], X)
    with pytest.raises(DataError, match="4 training rows but 3 labels"):
        baseline_probabilities("features", X, [0, 1, 0], X)
    with pytest.raises(DataError, match="class indices"):
        baseline_probabilities("features", X, [0, 1, -1, 1], X)


def test_real_traces():
    from robustlab.common.testing import shared_data
    from robustlab.seismic.data.pnw import read_labels
    from robustlab.seismic.preprocessing import PreprocessConfig, preprocess_files

    root = shared_data("seismic", "pnw_eq_vs_explosion")
    frame = read_labels(root)
    frame = frame[frame["sampling_rate"] >= 20].head(24)
    traces = preprocess_files(frame, root, PreprocessConfig(), progress=False)
    wf = waveform_features(traces.x, 20.0)
    nf = noise_features(traces.noise, 20.0)
    assert np.isfinite(wf).all() and np.isfinite(nf).all() and len(wf) == len(traces) >= 16
    ref = np.stack([_row_features(r) for r in traces.x[:4, 0]])
    np.testing.assert_allclose(wf[:4], ref, rtol=1e-4, atol=1e-4)
    assert station_codes(traces.meta).sum(1).tolist() == [1.0] * len(traces)
