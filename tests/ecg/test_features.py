"""Hand-crafted beat features: names and shapes, agreement with PyWavelets and scipy.stats per row, the QRS rule on
synthetic beats of known width and against NeuroKit2 on real MIT-BIH beats, finite values on odd windows."""

from __future__ import annotations

import numpy as np
import pytest

from robustlab.common.errors import ConfigError, DataError
from robustlab.ecg import features as F
from robustlab.ecg.features import (
    FEATURE_GROUPS,
    RR_FEATURES,
    feature_names,
    handcrafted_features,
    qrs_bounds,
)

FS, R, L = 360, 360, 720
COUNTS = {"rr": 8, "qrs": 7, "wavelet": 23, "hos": 10}


def _beats(n=64, seed=0):
    """Gaussian QRS complexes of random width and height on a little noise, R at column R, and their RR rows."""
    rng = np.random.default_rng(seed)
    t = np.arange(L)[None, :] - R
    sigma = rng.uniform(4, 15, (n, 1))
    x = rng.uniform(0.5, 2.0, (n, 1)) * np.exp(-0.5 * (t / sigma) ** 2) + 0.01 * rng.standard_normal((n, L))
    return x.astype(np.float32), rng.uniform(0.3, 1.5, (n, 8)).astype(np.float32)


def _gaussian(sigma, amp=1.0, n=1):
    t = np.arange(L) - R
    return np.tile(amp * np.exp(-0.5 * (t / sigma) ** 2), (n, 1))


def test_names_and_shapes():
    x, rr = _beats()
    feats, names = handcrafted_features(x, fs=FS, r_index=R, rr=rr)
    assert feats.dtype == np.float32 and feats.shape == (64, sum(COUNTS.values())) == (64, 48)
    assert names == feature_names() and len(set(names)) == len(names)
    assert np.isfinite(feats).all()
    for g in FEATURE_GROUPS:
        assert len(feature_names((g,))) == COUNTS[g]
    assert feature_names(("rr",)) == list(RR_FEATURES)
    assert feature_names(("qrs",)) == ["qrs_width", "qrs_on", "qrs_off", "r_amp", "q_amp", "s_amp", "qrs_pp"]
    assert feature_names(("hos",))[:2] == ["skew_0", "skew_1"] and feature_names(("wavelet",))[-1] == "wt_a3_22"
    # Groups come in the order asked; one group's columns are those of the full call.
    part, part_names = handcrafted_features(x, fs=FS, r_index=R, groups=("hos", "qrs"))
    assert part_names == feature_names(("hos", "qrs"))
    idx = [names.index(k) for k in part_names]
    np.testing.assert_array_equal(part, feats[:, idx])


def test_rr_pass_through():
    x, rr = _beats()
    feats, names = handcrafted_features(x, fs=FS, r_index=R, rr=rr, groups=("rr",))
    np.testing.assert_array_equal(feats, rr)
    assert names == list(RR_FEATURES)


def test_wavelet_equals_pywt_per_row():
    import pywt

    x, _ = _beats(16)
    feats, _ = handcrafted_features(x, fs=FS, r_index=R, groups=("wavelet",))
    for i in range(len(x)):
        ref = pywt.wavedec(x[i, R - 90:R + 90].astype(np.float64), "db1", level=3)[0]
        np.testing.assert_allclose(feats[i], ref, rtol=1e-5, atol=1e-6)
    db4, names = handcrafted_features(x, fs=FS, r_index=R, groups=("wavelet",), wavelet="db4", level=4)
    assert db4.shape[1] == len(names) == len(pywt.wavedec(np.zeros(180), "db4", level=4)[0])


def test_hos_equals_scipy_per_row():
    from scipy import stats

    x, _ = _beats(16)
    x[:, R - 90:R + 90] += np.random.default_rng(1).exponential(0.1, (16, 180)).astype(np.float32)  # skewed
    feats, _ = handcrafted_features(x, fs=FS, r_index=R, groups=("hos",))
    for i in range(len(x)):
        parts = [x[i, R - 90 + 36 * k:R - 90 + 36 * (k + 1)].astype(np.float64) for k in range(5)]
        ref = [stats.skew(p) for p in parts] + [stats.kurtosis(p) for p in parts]
        np.testing.assert_allclose(feats[i], ref, rtol=1e-4, atol=1e-5)


def _expected_half_width(sigma, k):
    """Where the slope of a Gaussian of this sigma (samples, widened by the 5-sample smoothing: its variance adds
    (5**2 - 1) / 12 = 2 samples**2) falls to k times its largest value, outside its inflection points."""
    from scipy.optimize import brentq

    s = np.sqrt(sigma**2 + 2.0)
    return brentq(lambda t: (t / s) * np.exp(0.5 - 0.5 * (t / s) ** 2) - k, s, 10 * s)


@pytest.mark.parametrize("sigma", [4.0, 8.0, 12.0])
@pytest.mark.parametrize("amp", [1.5, -0.6])
def test_qrs_width_of_a_gaussian(sigma, amp):
    """The rule's bounds on a noiseless Gaussian are where its slope crosses the thresholds: within 1.5 samples
    (4 ms) of the analytic points, whatever its height or sign."""
    on, off = qrs_bounds(_gaussian(sigma, amp), fs=FS, r_index=R)
    t_on = _expected_half_width(sigma, F.QRS_THRESHOLD_ON)
    t_off = _expected_half_width(sigma, F.QRS_THRESHOLD_OFF)
    assert abs((R - on[0]) - t_on) <= 1.5 and abs((off[0] - R) - t_off) <= 1.5
    feats, names = handcrafted_features(_gaussian(sigma, amp), fs=FS, r_index=R, groups=("qrs",))
    width = feats[0, names.index("qrs_width")]
    assert width == pytest.approx((t_on + t_off) * 1000 / FS, abs=3 * 1000 / FS)


def test_qrs_amplitudes_of_a_synthetic_qrs():
    t = np.arange(L) - R
    q, r, s = -0.3, 1.2, -0.5
    x = (q * np.exp(-0.5 * ((t + 12) / 3) ** 2) + r * np.exp(-0.5 * (t / 4) ** 2)
         + s * np.exp(-0.5 * ((t - 12) / 3) ** 2))[None]
    feats, names = handcrafted_features(x, fs=FS, r_index=R, groups=("qrs",))
    got = dict(zip(names, feats[0]))
    assert got["r_amp"] == pytest.approx(x[0, R], abs=1e-6)
    assert got["q_amp"] == pytest.approx(x[0, R - 30:R].min(), abs=1e-6)
    assert got["s_amp"] == pytest.approx(x[0, R:R + 30].min(), abs=1e-6)
    assert got["qrs_pp"] == pytest.approx(x[0].max() - x[0].min(), abs=1e-6)
    assert got["qrs_on"] < -12 * 1000 / FS and got["qrs_off"] > 12 * 1000 / FS  # Q and S inside the complex


def test_wider_beats_get_wider_qrs():
    widths = handcrafted_features(np.concatenate([_gaussian(s) for s in (3, 6, 9, 12)]), fs=FS, r_index=R,
                                  groups=("qrs",))[0][:, 0]
    assert np.all(np.diff(widths) > 0)


def test_finite_on_flat_and_odd_windows():
    rng = np.random.default_rng(0)
    odd = np.stack([
        np.zeros(L), np.full(L, 3.0), np.r_[np.zeros(R), np.ones(L - R)],  # flat, offset, step at R
        np.eye(1, L, R)[0] * 5.0, np.eye(1, L, 10)[0] * 5.0,  # a spike at R, a spike far from it
        rng.standard_normal(L) * 1e-12, rng.standard_normal(L) * 100.0,  # tiny and huge noise
        np.sign(np.sin(np.arange(L) / 3.0)),  # a square wave
    ]).astype(np.float32)
    feats, names = handcrafted_features(odd, fs=FS, r_index=R, rr=np.ones((len(odd), 8)))
    assert np.isfinite(feats).all()
    flat = dict(zip(names, feats[0]))
    assert flat["qrs_width"] == 0 and flat["skew_0"] == 0 and flat["kurt_0"] == 0 and flat["wt_a3_0"] == 0


def test_errors_name_what_is_wrong():
    x, rr = _beats(4)
    bad = x.copy()
    bad[2, 5] = np.nan
    with pytest.raises(DataError, match=r"beat windows \[2\]"):
        handcrafted_features(bad, fs=FS, r_index=R, rr=rr)
    with pytest.raises(DataError, match="rr=None"):
        handcrafted_features(x, fs=FS, r_index=R)
    with pytest.raises(DataError, match=r"shape \(4, 8\)"):
        handcrafted_features(x, fs=FS, r_index=R, rr=rr[:, :5])
    with pytest.raises(DataError, match="too short"):
        handcrafted_features(x[:, :400], fs=FS, r_index=R, groups=("hos",))
    with pytest.raises(DataError, match=r"\(N, L\)"):
        handcrafted_features(x[0], fs=FS, r_index=R, groups=("hos",))
    with pytest.raises(ConfigError, match="feature groups"):
        handcrafted_features(x, fs=FS, r_index=R, groups=("rr", "morph"))


def _mitdb_beats(record, minutes=2.0):
    """Baseline-removed MLII of the record's first minutes (read with wfdb), its beats' 2 s windows and symbols."""
    import wfdb

    from robustlab.common.testing import shared_data
    from robustlab.ecg.preprocessing import remove_baseline

    path = shared_data("ecg", "mitdb") / record
    length = int(minutes * 60 * FS)
    rec = wfdb.rdrecord(str(path), sampto=length, channel_names=["MLII"])
    ann = wfdb.rdann(str(path), "atr", sampto=length)
    sig = remove_baseline(rec.p_signal[:, 0], FS)
    symbols = np.asarray(ann.symbol)
    keep = (ann.sample >= R) & (ann.sample < length - R) & np.isin(symbols, list("NLRejAaJSVEF/fQ"))
    peaks = ann.sample[keep]
    return sig, peaks, np.stack([sig[p - R:p + R] for p in peaks]), symbols[keep]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("record", ["100", "119"])
def test_qrs_rule_agrees_with_neurokit2_on_normal_beats(record):
    """NeuroKit2's DWT delineation is the reference on the normal beats of two clean records (2 minutes each):
    the onsets and offsets agree within 12 ms in median and within 20 ms for at least 85% of the beats.
    (On noisy records and ventricular beats NeuroKit2 itself often puts the onset on the P wave, 80-200 ms
    before R: no reference there.)"""
    import warnings

    import neurokit2 as nk

    sig, peaks, x, symbols = _mitdb_beats(record)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, waves = nk.ecg_delineate(sig, rpeaks=peaks, sampling_rate=FS, method="dwt")
    on, off = qrs_bounds(x, fs=FS, r_index=R)
    normal = symbols == "N"
    assert normal.sum() > 90
    for ours, theirs in ((on, waves["ECG_R_Onsets"]), (off, waves["ECG_R_Offsets"])):
        ref = np.asarray(theirs, dtype=float)[normal]
        diff_ms = np.abs(ours[normal] - R + peaks[normal] - ref)[np.isfinite(ref)] * 1000 / FS
        assert len(diff_ms) > 0.9 * normal.sum()
        assert np.median(diff_ms) <= 12.0 and np.mean(diff_ms <= 20.0) >= 0.85, np.percentile(diff_ms, [50, 85])


@pytest.mark.realdata
@pytest.mark.parametrize("record", ["106", "119"])
def test_ventricular_beats_are_wider(record):
    """Physiology as the check where NeuroKit2 is no reference: a normal QRS lasts 50-110 ms here, a ventricular
    one at least 40 ms longer (medians over the record's first 2 minutes)."""
    _, _, x, symbols = _mitdb_beats(record)
    feats, names = handcrafted_features(x, fs=FS, r_index=R, groups=("qrs",))
    width = feats[:, names.index("qrs_width")]
    n, v = np.median(width[symbols == "N"]), np.median(width[symbols == "V"])
    assert 50 <= n <= 110 and v >= n + 40, (n, v)


def test_record_normalize_keeps_the_ratios_and_centres_morphology_per_record():
    from robustlab.ecg.features import RR_RATIOS, record_normalize

    rng = np.random.default_rng(0)
    names = [*RR_FEATURES, "qrs_width", "skew_0"]
    f = rng.normal(size=(9, len(names))).astype(np.float32)
    rec = np.array(["a"] * 4 + ["b"] * 5)
    out, out_names = record_normalize(f, names, rec)
    assert out_names == [*RR_RATIOS, "qrs_width_rel", "skew_0_rel"]
    np.testing.assert_array_equal(out[:, :4], f[:, [names.index(n) for n in RR_RATIOS]])
    for r in "ab":
        m = rec == r
        np.testing.assert_allclose(np.median(out[m, 4:], 0), 0, atol=1e-6)
        np.testing.assert_allclose(out[m, 4:], f[m][:, -2:] - np.median(f[m][:, -2:], 0), rtol=1e-6)
    with pytest.raises(DataError, match="agree"):
        record_normalize(f, names, rec[:3])


def test_record_normalize_takes_the_medians_from_a_reference():
    from robustlab.ecg.features import record_normalize

    names = [*RR_FEATURES, "qrs_width"]
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(20, len(names))).astype(np.float32)
    ref_rec = np.array(["a"] * 10 + ["b"] * 10)
    sub = ref[[0, 1, 12]] + 0.5  # a perturbed subset of the beats
    out, _ = record_normalize(sub, names, ref_rec[[0, 1, 12]], reference=(ref, ref_rec))
    np.testing.assert_allclose(out[:2, -1], sub[:2, -1] - np.median(ref[:10, -1]), rtol=1e-6)
    np.testing.assert_allclose(out[2, -1], sub[2, -1] - np.median(ref[10:, -1]), rtol=1e-6)
    lone, _ = record_normalize(sub, names, np.array(["c", "c", "c"]), reference=(ref, ref_rec))
    np.testing.assert_allclose(np.median(lone[:, -1]), 0, atol=1e-6)  # a record without reference: its own
