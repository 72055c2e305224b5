"""From a WFDB record to a model's input: the lead, the sampling rate, the R peaks, the beat windows, the features.

One path serves ``ecg evaluate``, ``ecg predict`` and the model files: a model file's ``preprocessing`` names its
sampling rate, lead, window and feature groups (:func:`beat_preprocessing`), and :func:`model_input` turns windows
and RR features into what the model takes (a packed tensor for an MRR, :class:`robustlab.ecg.models.mrr.MRRNet`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.errors import DataError

__all__ = ["LEAD_FALLBACK", "RecordBeats", "beat_features", "beat_preprocessing", "model_input", "record_beats",
           "subset_features"]

LEAD_FALLBACK = ("MLII", "II", "ML2", "V5", "V1", "I")
"""Leads tried in order when the model's lead is absent: MIT-BIH's modified limb lead II first, then standard lead
II (the lead MLII approximates), then the chest leads MIT-BIH pairs with it."""


def beat_preprocessing(*, classes, fs: float, before: int, after: int, lead: str, feature_groups=None,
                       baseline_widths_s=(0.2, 0.6)) -> dict[str, Any]:
    """The ``preprocessing`` of a beat model's file: all :func:`record_beats` and :func:`model_input` need."""
    return {"input": "beat windows (N, 1, before + after) in mV centred on the R peak, baseline removed on the "
                     "whole record", "kind": "beats", "classes": list(classes), "fs": float(fs), "before": int(before),
            "after": int(after), "lead": lead, "baseline_widths_s": list(baseline_widths_s),
            "features": None if feature_groups is None else {"groups": list(feature_groups)}}


@dataclass
class RecordBeats:
    """The beats of one record, ready for a model.

    Attributes:
        record: the record name; path: its header.
        fs: the rate of ``signal`` and ``windows`` (the model's); fs_record: the record's own.
        lead: the lead used, and ``lead_note``: why (asked, or the fallback).
        signal: the whole lead, resampled, baseline removed (mV).
        sample: R-peak positions at ``fs``; windows ``(M, before + after)``; rr ``(M, 8)``.
        symbol: the annotated beat symbols, or None when the peaks were detected.
        detector: ``"annotations (<ext>)"`` or the detector used.
        report: counts (beats found, beats too close to the edges left out).
    """

    record: str
    path: Path
    fs: float
    fs_record: float
    lead: str
    lead_note: str
    signal: np.ndarray
    sample: np.ndarray
    windows: np.ndarray
    rr: np.ndarray
    symbol: np.ndarray | None
    detector: str
    report: dict[str, Any] = field(default_factory=dict)


def record_beats(path: str | Path, *, fs: float, lead: str, before: int, after: int, annotations: str = "atr",
                 detector: str = "auto", fallback: tuple[str, ...] = LEAD_FALLBACK,
                 baseline_widths_s=(0.2, 0.6)) -> RecordBeats:
    """Read any WFDB record and cut its beats for a model trained at ``fs`` on ``lead``.

    The lead is chosen by name, else the first of ``fallback`` present (an error lists the leads present). A
    record at another rate is resampled to ``fs`` (``wfdb.processing.resample_sig``). R peaks come from the beat
    annotations ``<record>.<annotations>`` when the file exists (``detector="auto"`` or ``"annotations"``), else
    from wfdb's XQRS detector (``detector="xqrs"``), or NeuroKit2's (``"neurokit"``).

    Raises:
        DataError: no usable lead, too few beats, a record shorter than one window (all naming the record).
    """
    from wfdb import processing

    from robustlab.ecg.data.mitdb import SYMBOL_TO_CLASS, beat_windows
    from robustlab.ecg.data.records import read_annotations, read_record, record_base

    if detector not in ("auto", "annotations", "xqrs", "neurokit"):
        raise ValueError(f"detector must be auto, annotations, xqrs or neurokit, got {detector!r}")
    base = record_base(path)
    rec = read_record(base)
    raw, used = rec.lead(lead, fallback=tuple(f for f in fallback if f != lead))
    note = "as asked" if used == lead else f"{lead} absent, fallback {used} (leads: {', '.join(rec.leads)})"
    raw = raw.astype(np.float64)
    invalid = np.isnan(raw)
    if invalid.all():
        raise DataError(f"record {rec.name} ({rec.path}): lead {used} holds no valid sample")
    filled = raw if not invalid.any() else np.interp(np.arange(len(raw)), np.flatnonzero(~invalid), raw[~invalid])
    ann_file = base.parent / f"{base.name}.{annotations}"
    symbol = None
    if detector in ("auto", "annotations") and ann_file.is_file():
        ann = read_annotations(base, annotations)
        beats = np.isin(ann.symbol, list(SYMBOL_TO_CLASS))
        order = np.argsort(ann.sample[beats], kind="stable")
        peaks, symbol = ann.sample[beats][order], ann.symbol[beats][order]
        how = f"annotations ({annotations})"
    elif detector == "annotations":
        raise DataError(f"record {rec.name}: no annotation file {ann_file} (use --detector xqrs or neurokit)")
    else:
        peaks, how = _detect(filled, rec.fs, "neurokit" if detector == "neurokit" else "xqrs", rec.name)
    if not math.isclose(rec.fs, fs):
        signal, _ = processing.resample_sig(filled, rec.fs, fs)
        peaks = np.round(np.asarray(peaks) * fs / rec.fs).astype(np.int64)
        if invalid.any():  # a resampled sample is invalid where its nearest original sample was
            nearest = np.clip(np.round(np.arange(len(signal)) * rec.fs / fs).astype(np.int64), 0, len(raw) - 1)
            signal[invalid[nearest]] = np.nan
    else:
        signal = raw
    peaks = np.asarray(peaks, dtype=np.int64)
    if len(peaks) < 2:
        raise DataError(f"record {rec.name} ({rec.path}): {len(peaks)} beat(s) found ({how}); at least 2 are needed "
                        "for RR intervals")
    windows, rr, keep, filtered, dropped = beat_windows(signal, peaks, fs, before=before, after=after,
                                                        record=rec.name, baseline_widths_s=tuple(baseline_widths_s))
    if not len(keep):
        raise DataError(f"record {rec.name} ({rec.path}): none of its {len(peaks)} beats has a whole window of "
                        f"{before + after} valid samples around it ({dropped['edge']} too close to the edges, "
                        f"{dropped['invalid_samples']} touching invalid samples)")
    report = {"beats": int(len(peaks)), "kept": int(len(keep)), "dropped_at_edges": dropped["edge"],
              "dropped_invalid_samples": dropped["invalid_samples"]}
    return RecordBeats(record=rec.name, path=rec.path, fs=float(fs), fs_record=float(rec.fs), lead=used,
                       lead_note=note, signal=filtered, sample=peaks[keep], windows=windows, rr=rr,
                       symbol=None if symbol is None else symbol[keep], detector=how, report=report)


def _detect(signal: np.ndarray, fs: float, detector: str, name: str) -> tuple[np.ndarray, str]:
    if detector == "neurokit":
        import neurokit2 as nk

        _, info = nk.ecg_peaks(nk.ecg_clean(signal, sampling_rate=int(round(fs))), sampling_rate=int(round(fs)))
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64), "NeuroKit2 ecg_peaks (no beat annotations)"
    import contextlib
    import io

    from wfdb import processing

    with contextlib.redirect_stdout(io.StringIO()):
        peaks = processing.xqrs_detect(sig=signal, fs=fs, verbose=False)
    # XQRS marks the QRS; move each mark to the largest |deviation| within 50 ms, the R peak the windows centre on
    peaks = processing.correct_peaks(signal, np.asarray(peaks, dtype=np.int64), search_radius=int(0.05 * fs),
                                     smooth_window_size=max(3, int(0.15 * fs)), peak_dir="compare")
    peaks = np.unique(peaks[(peaks >= 0) & (peaks < len(signal))])
    return peaks.astype(np.int64), "wfdb XQRS (no beat annotations)"


def model_input(preprocessing: dict[str, Any], windows: np.ndarray, rr: np.ndarray, records: Any = None, *,
                reference: tuple[Any, Any] | None = None):
    """The tensor a beat model of this ``preprocessing`` takes: windows ``(N, 1, L)``, packed with the hand-crafted
    features for an MRR (:func:`robustlab.ecg.features.record_normalize`d over the beats of each of ``records``;
    None: all beats are one record's; ``reference``: raw features and records to take the medians from)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))[:, None]
    feats = preprocessing.get("features")
    if not feats:
        return x
    from robustlab.ecg.models.mrr import MRRNet

    f = beat_features(windows, rr, records, fs=preprocessing["fs"], r_index=preprocessing["before"],
                      groups=tuple(feats["groups"]), reference=reference)
    return MRRNet.pack(x, torch.from_numpy(f))


def beat_features(windows: np.ndarray, rr: np.ndarray, records: Any = None, *, fs: float, r_index: int,
                  groups=("rr", "qrs", "wavelet", "hos"), reference: tuple[Any, Any] | None = None,
                  raw: bool = False) -> np.ndarray:
    """The MRR's hand-crafted features: :func:`~robustlab.ecg.features.handcrafted_features`, then
    :func:`~robustlab.ecg.features.record_normalize` per record (``records`` None: one record), the medians taken
    from ``reference`` (raw features and records, see ``raw``) when given. ``raw=True`` returns the features
    before normalisation (a reference for later calls)."""
    from robustlab.ecg.features import handcrafted_features, record_normalize

    f, names = handcrafted_features(np.asarray(windows, np.float32), fs=fs, r_index=r_index, rr=rr,
                                    groups=tuple(groups))
    if raw:
        return f
    rec = np.zeros(len(f), dtype=np.int64) if records is None else np.asarray(records)
    return record_normalize(f, names, rec, reference=reference)[0]


def subset_features(raw: np.ndarray, records: Any, idx: Any, *, fs: float,
                    groups=("rr", "qrs", "wavelet", "hos")) -> np.ndarray:
    """The record-normalised features of rows ``idx`` of ``raw`` (``beat_features(..., raw=True)`` of a whole beat
    set with its ``records``), each record's medians taken over all of its beats: a training subset (N beats
    capped, classes drawn) is normalised as a whole record is at prediction time."""
    from robustlab.ecg.features import feature_names, record_normalize

    rec = np.asarray(records)
    return record_normalize(raw[idx], feature_names(tuple(groups), fs=fs), rec[idx], reference=(raw, rec))[0]
