"""Hand-crafted features of seismic traces and the baselines built on them (scikit-learn), vectorised over traces.

- :func:`waveform_features`: of the signal window (``x (N, C, L)``, z-scored, 100 s from the origin at 20 Hz), per
  component, the :data:`WAVEFORM_FEATURES`: Welch band-power shares in 1-8 Hz, a low/high spectral ratio, the
  dominant and centroid frequencies and the bandwidth, the envelope's peak time, peak/median ratio and centroid time,
  the energy share of four parts of the window, and the trace's and envelope's kurtosis and skew. Shares, ratios,
  times and moments: scale-free, as the z-scored traces are.
- :func:`noise_features`: of the pre-origin noise window (``noise (N, C, Ln)``, band-passed counts, not normalised),
  the :data:`NOISE_FEATURES`: the log standard deviation (instrument gain and site noise: a station fingerprint) and
  band-power shares. They feed the noise-only baseline, never a model.
- :func:`station_codes`: one-hot station identity (the station-only baseline).
- :func:`baseline_probabilities`: fit one of the :data:`BASELINES` on training rows and return the test rows'
  probabilities (explosion = class 1), seeded. The recipe calls it per fold. Depth is never used.

Definitions (``rate`` Hz, ``L`` samples per component):

- Welch PSD: ``scipy.signal.welch(x, fs=rate, nperseg=min(256, L))`` (Hann, 50 % overlap, mean removed); a band's
  power is the sum of the PSD over the bins ``lo <= f < hi`` (the last band of a list includes ``hi``);
  ``band_share_lo_hi = log10(P_band / P_[1, 8])``; ``log_ratio_low_high = log10(P_[1, 3) / P_[4, 8])``;
  ``dominant_freq`` = the bin of largest PSD within 1-8 Hz; ``centroid_freq`` and ``bandwidth`` = the PSD-weighted
  mean and standard deviation of the frequency within 1-8 Hz.
- Envelope: ``|scipy.signal.hilbert(x)|`` smoothed by a centred moving average of :data:`ENVELOPE_SMOOTH_S` (edges
  repeat the end values, ``scipy.ndimage.uniform_filter1d(mode="nearest")``); ``env_peak_time`` = the time of its
  maximum (s from the window start); ``log_env_peak_median`` = ``log10(max / median)``; ``env_centroid_time`` =
  ``sum(t env^2) / sum(env^2)`` (s).
- ``energy_share_a_b``: ``log10`` of the share of ``sum(x^2)`` in the fraction ``[a, b)`` of the window (0-10 %,
  10-30 %, 30-60 %, 60-100 %: 0-10 s, 10-30 s, 30-60 s, 60-100 s of a 100 s window).
- ``kurtosis``, ``skew`` (of ``x``), ``env_kurtosis``: ``scipy.stats`` (Fisher, biased: scipy's defaults).
- ``peak_*``: the band shares and the low/high ratio as above, of the :data:`PEAK_WINDOW_S` (25.6 s) window centred
  on the smoothed envelope's maximum (shifted to lie inside the trace): the event's spectrum rather than the whole
  window's, most of which is noise for a small event; ``log_peak_energy_ratio`` = ``log10`` of that window's mean
  square over the whole trace's (an SNR proxy: 0 for stationary noise).
- Logs take ``max(value, 1e-12)``; a flat component gives finite values (moments 0).

With several components the names are prefixed ``c0_``, ``c1_``, ... (:func:`waveform_feature_names`).

Import cost: NumPy only; scipy and scikit-learn are imported by the functions that use them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlab.common.errors import ConfigError, DataError

__all__ = [
    "BASELINES",
    "ENERGY_PARTS",
    "ENVELOPE_SMOOTH_S",
    "PEAK_WINDOW_S",
    "NOISE_BANDS",
    "NOISE_FEATURES",
    "WAVEFORM_BANDS",
    "WAVEFORM_FEATURES",
    "baseline_model",
    "baseline_probabilities",
    "noise_feature_names",
    "noise_features",
    "station_codes",
    "waveform_feature_names",
    "waveform_features",
]

WAVEFORM_BANDS = ((1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 6.0), (6.0, 8.0))
"""The bands (Hz) of the waveform band-power shares, within the 1-8 Hz pass band."""
NOISE_BANDS = ((1.0, 2.0), (2.0, 4.0), (4.0, 8.0))
"""The bands (Hz) of the noise band-power shares (10 s of noise: coarser bands)."""
ENERGY_PARTS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0))
"""Fractions of the window whose energy shares are features."""
ENVELOPE_SMOOTH_S = 1.0
"""Width (s) of the moving average that smooths the envelope."""
PEAK_WINDOW_S = 25.6
"""Length (s) of the window around the envelope's peak whose spectrum gives the ``peak_*`` features."""
_LOW, _HIGH, _BAND = (1.0, 3.0), (4.0, 8.0), (1.0, 8.0)
_TINY = 1e-12


def _band_name(lo: float, hi: float) -> str:
    return f"{lo:g}_{hi:g}"


WAVEFORM_FEATURES = (
    *(f"band_share_{_band_name(*b)}" for b in WAVEFORM_BANDS),
    "log_ratio_low_high", "dominant_freq", "centroid_freq", "bandwidth",
    "env_peak_time", "log_env_peak_median", "env_centroid_time",
    *(f"energy_share_{a:g}_{b:g}" for a, b in ENERGY_PARTS),
    "kurtosis", "skew", "env_kurtosis",
    *(f"peak_band_share_{_band_name(*b)}" for b in WAVEFORM_BANDS), "peak_log_ratio_low_high",
    "log_peak_energy_ratio",
)
"""The names of :func:`waveform_features`' columns for one component."""

NOISE_FEATURES = ("log_std", *(f"band_share_{_band_name(*b)}" for b in NOISE_BANDS), "dominant_freq")
"""The names of :func:`noise_features`' columns for one component."""

BASELINES = ("station", "noise", "features", "features_rf")
"""The kinds :func:`baseline_probabilities` fits: one-hot station + LR, noise features + LR, waveform features + LR,
waveform features + random forest."""


def _prefixed(names: Sequence[str], n_channels: int) -> list[str]:
    if n_channels == 1:
        return list(names)
    return [f"c{c}_{n}" for c in range(n_channels) for n in names]


def waveform_feature_names(n_channels: int = 1) -> list[str]:
    """The column names of :func:`waveform_features` for ``n_channels`` components."""
    return _prefixed(WAVEFORM_FEATURES, n_channels)


def noise_feature_names(n_channels: int = 1) -> list[str]:
    """The column names of :func:`noise_features` for ``n_channels`` components."""
    return _prefixed(NOISE_FEATURES, n_channels)


def _as_traces(x: Any, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2:
        arr = arr[:, None]
    if arr.ndim != 3:
        raise DataError(f"{what}: expected traces of shape (N, C, L) or (N, L), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what}: expected numbers, got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))
        raise DataError(f"{what}: {bad.size} trace(s) hold NaN or inf samples (first: row {int(bad[0])})")
    return arr.astype(np.float64, copy=False)


def _check_rate(rate: float, what: str) -> float:
    if not (isinstance(rate, (int, float, np.floating)) and np.isfinite(rate) and rate > 0):
        raise ConfigError(f"{what}: rate must be a finite number > 0 (Hz), got {rate!r}")
    if rate / 2 < _BAND[1]:
        raise ConfigError(f"{what}: rate {rate:g} Hz has its Nyquist frequency below {_BAND[1]:g} Hz, the top of "
                          "the feature bands")
    return float(rate)


def _band_mask(f: np.ndarray, lo: float, hi: float, last: bool) -> np.ndarray:
    return (f >= lo) & ((f <= hi) if last else (f < hi))


def _log(v: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(v, _TINY))


def _welch(x: np.ndarray, rate: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.signal import welch

    return welch(x, fs=rate, nperseg=min(nperseg, x.shape[-1]), axis=-1)


def _spectral(f: np.ndarray, p: np.ndarray, bands: Sequence[tuple[float, float]]) -> dict[str, np.ndarray]:
    """Band shares and frequency statistics of PSDs ``p (..., F)`` at frequencies ``f``."""
    in_band = _band_mask(f, *_BAND, last=True)
    total = p[..., in_band].sum(-1)
    out = {}
    for i, (lo, hi) in enumerate(bands):
        out[f"band_share_{_band_name(lo, hi)}"] = _log(p[..., _band_mask(f, lo, hi, i == len(bands) - 1)].sum(-1)
                                                       / np.maximum(total, _TINY))
    fb, pb = f[in_band], p[..., in_band]
    out["log_ratio_low_high"] = _log(p[..., _band_mask(f, *_LOW, last=False)].sum(-1)) - _log(
        p[..., _band_mask(f, *_HIGH, last=True)].sum(-1))
    out["dominant_freq"] = fb[np.argmax(pb, axis=-1)]
    weight = pb / np.maximum(total, _TINY)[..., None]
    centroid = (weight * fb).sum(-1)
    out["centroid_freq"] = np.where(total > 0, centroid, fb.mean())
    out["bandwidth"] = np.sqrt(np.maximum((weight * (fb - centroid[..., None]) ** 2).sum(-1), 0.0))
    return out


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy import stats

    with np.errstate(all="ignore"), warnings.catch_warnings():  # a flat trace: scipy warns and returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        k = stats.kurtosis(x, axis=-1)
        s = stats.skew(x, axis=-1)
    return np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)


def waveform_features(x: np.ndarray, rate: float = 20.0) -> np.ndarray:
    """The :data:`WAVEFORM_FEATURES` of each component of the signal windows ``x (N, C, L)``.

    Args:
        x: traces ``(N, C, L)`` (or ``(N, L)``), z-scored, the window starting at the origin time.
        rate: their sampling rate (Hz), at least 16 (the bands reach 8 Hz).

    Returns:
        float32 ``(N, C * len(WAVEFORM_FEATURES))``, components one after the other
        (:func:`waveform_feature_names`).

    Raises:
        DataError: not ``(N, C, L)`` numbers, or NaN/inf samples (naming the first row).

    Examples::

        >>> import numpy as np
        >>> waveform_features(np.random.default_rng(0).standard_normal((3, 1, 2000))).shape
        (3, 26)
    """
    from scipy.ndimage import uniform_filter1d
    from scipy.signal import hilbert

    rate = _check_rate(rate, "waveform_features")
    x = _as_traces(x, "waveform_features")
    n, c, length = x.shape
    f, p = _welch(x, rate, 256)
    cols = _spectral(f, p, WAVEFORM_BANDS)
    env = np.abs(hilbert(x, axis=-1))
    env = uniform_filter1d(env, max(1, round(ENVELOPE_SMOOTH_S * rate)), axis=-1, mode="nearest")
    t = np.arange(length) / rate
    cols["env_peak_time"] = t[np.argmax(env, axis=-1)]
    cols["log_env_peak_median"] = _log(env.max(-1)) - _log(np.median(env, axis=-1))
    e2 = env ** 2
    e2sum = e2.sum(-1)
    cols["env_centroid_time"] = np.where(e2sum > 0, (e2 * t).sum(-1) / np.maximum(e2sum, _TINY), t.mean())
    energy = x ** 2
    total = np.maximum(energy.sum(-1), _TINY)
    for a, b in ENERGY_PARTS:
        cols[f"energy_share_{a:g}_{b:g}"] = _log(energy[..., round(a * length):round(b * length)].sum(-1) / total)
    cols["kurtosis"], cols["skew"] = _moments(x)
    cols["env_kurtosis"], _ = _moments(env)
    # the strongest part of the trace: a window centred on the envelope's peak (inside the trace)
    width = min(length, round(PEAK_WINDOW_S * rate))
    start = np.clip(np.argmax(env, axis=-1) - width // 2, 0, length - width)
    peak = np.take_along_axis(x, start[..., None] + np.arange(width), axis=-1)
    fp, pp = _welch(peak, rate, 256)
    spectral = _spectral(fp, pp, WAVEFORM_BANDS)
    for lo, hi in WAVEFORM_BANDS:
        name = f"band_share_{_band_name(lo, hi)}"
        cols[f"peak_{name}"] = spectral[name]
    cols["peak_log_ratio_low_high"] = spectral["log_ratio_low_high"]
    cols["log_peak_energy_ratio"] = _log((peak ** 2).mean(-1)) - _log(energy.mean(-1))
    out = np.stack([cols[name] for name in WAVEFORM_FEATURES], axis=-1)  # (N, C, F)
    return out.reshape(n, c * len(WAVEFORM_FEATURES)).astype(np.float32)


def noise_features(noise: np.ndarray, rate: float = 20.0) -> np.ndarray:
    """The :data:`NOISE_FEATURES` of each component of the pre-origin noise windows ``noise (N, C, Ln)``.

    Args:
        noise: the noise windows (band-passed, in counts: not normalised), ``(N, C, Ln)`` or ``(N, Ln)``.
        rate: their sampling rate (Hz), at least 16.

    Returns:
        float32 ``(N, C * len(NOISE_FEATURES))`` (:func:`noise_feature_names`): ``log_std`` =
        ``log10(std)``, the Welch band shares of :data:`NOISE_BANDS` (``nperseg = min(128, Ln)``), the dominant
        frequency within 1-8 Hz.

    Examples::

        >>> import numpy as np
        >>> noise_features(np.random.default_rng(0).standard_normal((3, 1, 200)) * 100)[:, 0].round(1)
        array([2., 2., 2.], dtype=float32)
    """
    rate = _check_rate(rate, "noise_features")
    x = _as_traces(noise, "noise_features")
    n, c, _ = x.shape
    f, p = _welch(x, rate, 128)
    cols = _spectral(f, p, NOISE_BANDS)
    cols["log_std"] = _log(x.std(-1))
    out = np.stack([cols[name] for name in NOISE_FEATURES], axis=-1)
    return out.reshape(n, c * len(NOISE_FEATURES)).astype(np.float32)


def _station_column(meta: Any) -> np.ndarray:
    if hasattr(meta, "meta") and hasattr(meta, "x"):  # a TraceSet
        meta = meta.meta
    if hasattr(meta, "columns"):
        if "station" not in meta.columns:
            raise DataError(f"station_codes: the metadata frame has no 'station' column (columns: "
                            f"{list(meta.columns)})")
        return meta["station"].astype(str).to_numpy()
    return np.asarray(meta, dtype=str)


def station_codes(meta: Any, *, stations: Sequence[str] | None = None) -> np.ndarray:
    """One-hot station identity: float32 ``(N, S)``.

    Args:
        meta: a metadata frame with a ``station`` column (``"NET.STA"``), a trace set, or a sequence of station names.
        stations: the columns' stations, in order (the training rows' ones when encoding test rows); default the
            sorted distinct stations of ``meta``. A station not among them gets a row of zeros.

    Examples::

        >>> station_codes(["UW.A", "UW.B", "UW.A"])
        array([[1., 0.],
               [0., 1.],
               [1., 0.]], dtype=float32)
        >>> station_codes(["UW.C"], stations=["UW.A", "UW.B"])
        array([[0., 0.]], dtype=float32)
    """
    names = _station_column(meta)
    cols = sorted(set(names.tolist())) if stations is None else [str(s) for s in stations]
    index = {s: i for i, s in enumerate(cols)}
    out = np.zeros((len(names), len(cols)), np.float32)
    rows = [(r, index[s]) for r, s in enumerate(names) if s in index]
    if rows:
        r, k = zip(*rows)
        out[list(r), list(k)] = 1.0
    return out


def baseline_model(kind: str, *, seed: int = 0) -> Any:
    """The unfitted scikit-learn estimator of a baseline :data:`BASELINES` kind.

    ``"station"``: ``LogisticRegression(class_weight="balanced")`` on the one-hot codes; ``"noise"`` and
    ``"features"``: ``StandardScaler`` then that logistic regression (scikit-learn's default ``C = 1``, set in
    advance: no value was chosen on the test folds); ``"features_rf"``:
    ``RandomForestClassifier(n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1)``.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind not in BASELINES:
        raise ConfigError(f"unknown baseline {kind!r}: expected one of {BASELINES}")
    if kind == "features_rf":
        return RandomForestClassifier(n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
    return lr if kind == "station" else make_pipeline(StandardScaler(), lr)


def _inputs(kind: str, data: Any, rate: float | None, what: str, stations: Sequence[str] | None) -> np.ndarray:
    """The baseline's input matrix from a trace set, a metadata frame, traces or a ready feature matrix."""
    is_traceset = hasattr(data, "x") and hasattr(data, "meta")
    if rate is None:
        rate = float(getattr(getattr(data, "config", None), "rate", 20.0)) if is_traceset else 20.0
    if kind == "station":
        return station_codes(data, stations=stations)
    if is_traceset:
        data = data.noise if kind == "noise" else data.x
    arr = np.asarray(data)
    if arr.ndim == 3:
        feats = noise_features(arr, rate) if kind == "noise" else waveform_features(arr, rate)
        return feats.astype(np.float64)
    if arr.ndim == 2 and np.issubdtype(arr.dtype, np.number):
        return arr.astype(np.float64)
    raise DataError(f"baseline {kind!r}: {what} must be a trace set, traces (N, C, L) or a feature matrix (N, F), "
                    f"got shape {arr.shape}")


def baseline_probabilities(kind: str, train: Any, y: Sequence[int] | np.ndarray, test: Any, *, seed: int = 0,
                           rate: float | None = None, n_classes: int | None = None) -> np.ndarray:
    """Fit the baseline ``kind`` on the training rows and return the test rows' class probabilities.

    Args:
        kind: one of :data:`BASELINES`.
        train, test: what the baseline reads, for the training and test rows: a trace set (``TraceSet``: its
            ``meta`` for ``"station"``, ``noise`` for ``"noise"``, ``x`` otherwise), or for ``"station"`` a metadata
            frame / station names, else traces ``(N, C, L)`` (features computed here) or a feature matrix ``(N, F)``.
        y: training labels, class indices ``0..K-1`` (explosion = 1).
        seed: the estimators' random state.
        rate: the traces' sampling rate (Hz); default the trace set's ``config.rate``, else 20.
        n_classes: ``K``; default ``max(2, max(y) + 1)``.

    Returns:
        For ``K = 2``: float ``(N_test,)``, the probability of class 1 (explosion). Otherwise ``(N_test, K)``,
        column ``k`` = class ``k`` (0 for a class absent from the training rows).

    Raises:
        ConfigError: an unknown kind. DataError: fewer than two classes among ``y``, ``y`` not matching the rows,
        or inputs of the wrong shape.

    Examples::

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.repeat([0, 1], 20)
        >>> X = rng.standard_normal((40, 3)) + y[:, None]
        >>> p = baseline_probabilities("features", X, y, X[:4] * 0 + 3.0)
        >>> p.shape, bool((p > 0.5).all())
        ((4,), True)
    """
    if kind not in BASELINES:
        raise ConfigError(f"unknown baseline {kind!r}: expected one of {BASELINES}")
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise DataError(f"baseline {kind!r}: y must be class indices >= 0 (unlabelled rows removed), got "
                        f"{y.dtype} of shape {y.shape}")
    classes = np.unique(y)
    if classes.size < 2:
        raise DataError(f"baseline {kind!r}: the training rows hold only class(es) {classes.tolist()}; a classifier "
                        "needs at least two")
    k = int(n_classes) if n_classes is not None else max(2, int(y.max()) + 1)
    if int(y.max()) >= k:
        raise DataError(f"baseline {kind!r}: y holds class {int(y.max())} but n_classes={k}")
    stations = sorted(set(_station_column(train).tolist())) if kind == "station" else None
    x_train = _inputs(kind, train, rate, "train", stations)
    x_test = _inputs(kind, test, rate, "test", stations)
    if len(x_train) != len(y):
        raise DataError(f"baseline {kind!r}: {len(x_train)} training rows but {len(y)} labels")
    model = baseline_model(kind, seed=seed)
    model.fit(x_train, y)
    proba = model.predict_proba(x_test)
    out = np.zeros((len(x_test), k))
    out[:, model.classes_.astype(int)] = proba
    return out[:, 1] if k == 2 else out
