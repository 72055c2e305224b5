"""From any WFDB record to a model's input: lead by name with a fallback, resampling, annotated or detected beats."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.ecg.pipeline import model_input, record_beats

pytestmark = pytest.mark.realdata


def test_annotated_record_gives_the_beats_of_the_data_layer(mitdb_root, beats_ds2):
    rb = record_beats(mitdb_root / "100.hea", fs=360.0, lead="MLII", before=360, after=360)
    assert rb.detector == "annotations (atr)" and rb.lead == "MLII" and rb.lead_note == "as asked"
    ours = beats_ds2.subset(np.flatnonzero(beats_ds2.record == "100"))
    # the same beats, windows and RR features as the training set's (both cut from the same baseline-removed lead)
    assert np.array_equal(rb.sample, ours.sample)
    np.testing.assert_allclose(rb.windows, ours.x, atol=1e-5)
    np.testing.assert_allclose(rb.rr, ours.rr, rtol=1e-6)
    assert list(rb.symbol) == list(ours.symbol)


def test_without_annotations_xqrs_finds_the_annotated_beats(mitdb_root, tmp_path):
    for ext in ("hea", "dat"):
        shutil.copy(mitdb_root / f"119.{ext}", tmp_path / f"119.{ext}")
    rb = record_beats(tmp_path / "119.hea", fs=360.0, lead="MLII", before=360, after=360)
    assert rb.detector.startswith("wfdb XQRS") and rb.symbol is None
    truth = record_beats(mitdb_root / "119.hea", fs=360.0, lead="MLII", before=360, after=360).sample
    # each annotated beat has a detected R peak within 50 ms (the field's usual matching window, EC57)
    gap = np.abs(rb.sample[None, :] - truth[:, None]).min(1)
    assert (gap <= 18).mean() > 0.97, np.percentile(gap, [50, 90, 99])
    assert abs(len(rb.sample) - len(truth)) < 0.03 * len(truth)


def test_another_rate_is_resampled_and_a_fallback_lead_is_used(mitdb_root, tmp_path):
    import wfdb
    from wfdb import processing

    rec = wfdb.rdrecord(str(mitdb_root / "100"), channel_names=["MLII"], sampto=360 * 60)
    sig, _ = processing.resample_sig(rec.p_signal[:, 0], 360, 250)
    wfdb.wrsamp("r250", fs=250, units=["mV"], sig_name=["II"], p_signal=sig[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    ann = wfdb.rdann(str(mitdb_root / "100"), "atr", sampto=360 * 60)
    wfdb.wrann("r250", "atr", np.round(ann.sample * 250 / 360).astype(int), symbol=ann.symbol, fs=250,
               write_dir=str(tmp_path))
    rb = record_beats(tmp_path / "r250.hea", fs=360.0, lead="MLII", before=360, after=360)
    assert rb.lead == "II" and "fallback II" in rb.lead_note and rb.fs_record == 250.0 and rb.fs == 360.0
    assert len(rb.signal) == pytest.approx(360 * 60, abs=2)
    orig = record_beats(mitdb_root / "100.hea", fs=360.0, lead="MLII", before=360, after=360)
    keep = orig.sample < 360 * 59
    # the resampled windows match the original ones closely (the same beats, a 250 Hz detour)
    n = min(keep.sum(), len(rb.sample))
    assert np.abs(rb.sample[:n] - orig.sample[:n]).max() <= 2
    corr = np.corrcoef(rb.windows[5:n - 5, 300:420].ravel(), orig.windows[5:n - 5, 300:420].ravel())[0, 1]
    assert corr > 0.95


def test_no_usable_lead_is_an_error_listing_the_leads(tmp_path):
    import wfdb

    wfdb.wrsamp("odd", fs=360, units=["mV"], sig_name=["AVF"], p_signal=np.zeros((3600, 1)), fmt=["16"],
                write_dir=str(tmp_path))
    with pytest.raises(DataError, match="AVF"):
        record_beats(tmp_path / "odd.hea", fs=360.0, lead="MLII", before=360, after=360)


def test_model_input_packs_features_for_an_mrr_only():
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(6, 720)).astype(np.float32) * 0.1
    rr = np.abs(rng.normal(1, 0.1, (6, 8))).astype(np.float32)
    plain = model_input({"features": None}, windows, rr)
    assert tuple(plain.shape) == (6, 1, 720)
    packed = model_input({"features": {"groups": ["rr", "hos"]}, "fs": 360.0, "before": 360}, windows, rr)
    assert packed.shape[-1] == 720 + 4 + 10 and np.allclose(packed[:, 0, :720].numpy(), windows)
    # the RR ratios as they are, the morphology (here HOS) relative to the record's median beat
    np.testing.assert_allclose(packed[:, 0, 720:724].numpy(), rr[:, 4:])
    np.testing.assert_allclose(np.median(packed[:, 0, 724:].numpy(), 0), 0, atol=1e-6)
    two = model_input({"features": {"groups": ["hos"]}, "fs": 360.0, "before": 360}, windows, rr,
                      records=np.array(["a"] * 3 + ["b"] * 3))
    np.testing.assert_allclose(np.median(two[:3, 0, 720:].numpy(), 0), 0, atol=1e-6)
