"""The preprocessing chain: config validation, every skip reason on synthetic traces, agreement with a plain ObsPy
chain on real traces, and the TraceSet (subset, reason counts, NPZ round trip)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from robustlab.common.errors import ConfigError, DataError
from robustlab.seismic.preprocessing import SKIP_KINDS, PreprocessConfig, SkipTrace, preprocess_trace

ORIGIN = "2020-01-01T00:00:50"


def _trace(rate=100.0, seconds=150.0, start="2020-01-01T00:00:00", seed=0, data=None):
    from obspy import Trace, UTCDateTime

    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    if data is None:
        t = np.arange(n) / rate
        data = rng.normal(size=n) * 50 + 1000 + 3 * t + 400 * np.sin(2 * np.pi * 3 * t) * (t > 60)
    return Trace(data=np.asarray(data), header={"sampling_rate": rate, "starttime": UTCDateTime(start),
                                                "network": "XX", "station": "STA", "channel": "HHZ"})


@pytest.mark.parametrize("kwargs, field", [
    ({"rate": 0}, "rate"), ({"freqmin": 9.0}, "freqmin"), ({"freqmax": 10.0}, "freqmax"), ({"corners": 0}, "corners"),
    ({"window": (10.0, 0.0)}, "window"), ({"taper": 0.7}, "taper"), ({"max_gap": -1}, "max_gap"),
    ({"normalize": "minmax"}, "normalize"), ({"margin": -1.0}, "margin"), ({"min_rate": 10.0}, "min_rate"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        PreprocessConfig(**kwargs)


def test_config_defaults_and_round_trip():
    c = PreprocessConfig()
    assert (c.n_samples, c.n_noise, c.rate, c.window, c.noise_window) == (2000, 200, 20.0, (0.0, 100.0), (-10.0, 0.0))
    assert PreprocessConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="bogus"):
        PreprocessConfig.from_dict({**c.to_dict(), "bogus": 1})


@pytest.mark.parametrize("rate", [100.0, 50.0, 40.0, 125.0, 200.0, 20.0, 19.99994])
def test_output_shapes_and_normalisation(rate):
    sig, noise = preprocess_trace(_trace(rate=rate), ORIGIN)
    assert sig.shape == (2000,) and noise.shape == (200,) and sig.dtype == np.float32
    assert abs(sig.mean()) < 1e-4 and abs(sig.std() - 1) < 1e-4
    assert noise.std() > 1  # filtered counts, not normalised by the signal window


def test_3hz_tone_survives_and_lands_in_the_window():
    sig, _ = preprocess_trace(_trace(), ORIGIN)
    f = np.fft.rfftfreq(1400, 1 / 20)
    spec = np.abs(np.fft.rfft(sig[400:1800]))
    assert abs(f[np.argmax(spec)] - 3.0) < 0.05  # the tone starts 60 s after the file's start = 10 s after origin
    assert sig[:150].std() < sig[300:].std() / 3


@pytest.mark.parametrize("make, kind, text", [
    (lambda: _trace(rate=1.0), "rate", "rate below 20 Hz"),
    (lambda: _trace(data=np.zeros(0)), "empty", "empty"),
    (lambda: _trace(data=np.r_[np.ones(7000), np.nan, np.ones(7999)]), "not finite", "NaN/inf"),
    (lambda: _trace(start="2020-01-01T00:01:10"), "truncated", "truncated: covers"),
    (lambda: _trace(seconds=120.0), "truncated", "covers 70.00 of 100 s"),
    (lambda: _trace(data=np.full(15000, 7.0)), "flat", "flat line"),
    (lambda: _trace(start="2020-01-01T00:00:45"), "truncated", "noise window"),
])
def test_skip_reasons(make, kind, text):
    with pytest.raises(SkipTrace, match=text) as e:
        preprocess_trace(make(), ORIGIN, file="a.mseed")
    assert e.value.kind == kind and kind in SKIP_KINDS
    assert "a.mseed" in str(e.value) and "a.mseed" not in e.value.reason
    assert isinstance(e.value, DataError)


def _plain(trace, origin, rate=20.0):
    """The plain ObsPy chain of the issue (detrend, taper, band-pass, FFT resample without a spectral window, trim)."""
    from obspy import UTCDateTime

    tr = trace.copy()
    tr.detrend("demean")
    tr.detrend("linear")
    tr.taper(max_percentage=0.05, type="hann")
    tr.filter("bandpass", freqmin=1.0, freqmax=8.0, corners=4, zerophase=True)
    tr.resample(rate, window="boxcar")
    o = UTCDateTime(origin)
    tr.trim(o, o + 100 - 0.5 / rate, nearest_sample=True)
    return tr.data


@pytest.mark.parametrize("rate, min_cor", [(100.0, 0.999), (40.0, 0.999), (50.0, 0.9)])
def test_agrees_with_the_plain_obspy_chain_on_real_traces(pnw_root, rate, min_cor):
    """Ours (span cut with a 20 s margin on the output grid, polyphase resampling) vs detrend/taper/filter/FFT
    resample/trim of the whole file: the same samples in the window's first 90 s (the last seconds differ by the
    tapers' lengths). At 50 Hz (up 2 / down 5) the polyphase filter's transition band at 10 Hz lets a little more
    through than the FFT's brick wall: some traces correlate at ~0.93 only."""
    from robustlab.seismic.data.pnw import read_labels
    from robustlab.seismic.data.traces import read_trace

    labels = read_labels(pnw_root)
    rows = labels[labels["sampling_rate"] == rate].head(6)
    cors = []
    for file, tid, origin in zip(rows["file"], rows["trace_id"], rows["origin_time"]):
        tr = read_trace(pnw_root / file, tid)
        try:
            ours, _ = preprocess_trace(tr, origin, PreprocessConfig(normalize="none"))
        except SkipTrace:
            continue
        plain = _plain(tr, origin)[:1800]
        cors.append(np.corrcoef(ours[:1800], plain)[0, 1])
        if rate != 50.0:
            assert np.std(ours[:1800]) == pytest.approx(np.std(plain), rel=0.01)
    assert len(cors) >= 4 and min(cors) > min_cor, cors


def test_trace_set_subset_counts_and_npz_round_trip(pnw_traces, tmp_path):
    from robustlab.seismic.preprocessing import TraceSet

    ts = pnw_traces
    assert len(ts) == len(ts.meta) == len(ts.noise) and ts.x.shape[1:] == (1, 2000)
    mask = (ts.meta["source"] == "labelled").to_numpy()
    sub = ts.subset(mask)
    assert len(sub) == mask.sum() and (sub.y >= 0).all() and sub.meta.index.tolist() == list(range(len(sub)))
    assert np.array_equal(ts.subset(np.flatnonzero(mask)).x, sub.x)
    with pytest.raises(DataError, match="boolean mask"):
        ts.subset(mask[:5])
    counts = ts.reason_counts()
    assert counts.sum() == len(ts.report) and set(counts.index) <= set(SKIP_KINDS)
    path = sub.save_npz(tmp_path / "s.npz")
    back = TraceSet.load_npz(path)
    assert np.array_equal(back.x, sub.x) and np.array_equal(back.noise, sub.noise) and back.config == sub.config
    pd.testing.assert_frame_equal(back.meta, sub.meta, check_dtype=False)
    pd.testing.assert_frame_equal(back.report, sub.report, check_dtype=False)
    (tmp_path / "bad.npz").write_text("<html>")
    with pytest.raises(DataError, match="bad.npz"):
        TraceSet.load_npz(tmp_path / "bad.npz")


def test_preprocess_files_names_missing_columns_and_unknown_labels(tmp_path):
    from robustlab.seismic.preprocessing import preprocess_files

    with pytest.raises(DataError, match="origin_time"):
        preprocess_files(pd.DataFrame({"file": ["a.mseed"], "event_id": ["e"]}), tmp_path)
    frame = pd.DataFrame({"file": ["a.mseed"], "event_id": ["e"], "origin_time": [ORIGIN], "label": ["quarry"]})
    with pytest.raises(DataError, match="'quarry'.*a.mseed"):
        preprocess_files(frame, tmp_path)


def test_preprocess_files_reports_every_row(tmp_path):
    from robustlab.seismic.preprocessing import preprocess_files

    _trace().write(str(tmp_path / "good.mseed"), format="MSEED")
    _trace(rate=1.0).write(str(tmp_path / "slow.mseed"), format="MSEED")
    (tmp_path / "junk.mseed").write_text("not a waveform\n")
    frame = pd.DataFrame({"file": ["good.mseed", "slow.mseed", "junk.mseed", "gone.mseed", "good.mseed"],
                          "event_id": list("abcde"), "origin_time": [ORIGIN] * 5,
                          "label": ["earthquake", "explosion", "", "", ""],
                          "trace_id": ["", None, "", "", "XX.OTHER..HHZ"]})
    ts = preprocess_files(frame, tmp_path)
    assert len(ts) == 1 and ts.meta["trace_id"].tolist() == ["XX.STA..HHZ"] and ts.y.tolist() == [0]
    assert ts.meta["station"].tolist() == ["XX.STA"] and ts.meta["sampling_rate"].tolist() == [100.0]
    assert ts.report["kind"].tolist() == ["rate", "unreadable", "unreadable", "missing trace"]
    assert ts.report["event_id"].tolist() == list("bcde")
    assert "no trace XX.OTHER..HHZ" in ts.report["reason"].iloc[3]
