"""MIT-BIH beats: AAMI class counts on DS1/DS2 recomputed from the annotations, centred windows, RR features, the
cache, subset/only, and the download path (offline)."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from robustlab.common.errors import DataError, DownloadError
from robustlab.ecg.data import mitdb
from robustlab.ecg.data.mitdb import AAMI_CLASSES, DS1, DS2, PACED, BeatSet, load_beats

pytestmark = pytest.mark.realdata

# AAMI EC57, written out again here so that the test does not read the mapping it checks
_AAMI = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"), "F": "F",
         **dict.fromkeys("/fQ", "Q")}


def _expected(root, records, before=360, after=360):
    """Per-class counts of the beats whose window fits, and the edge drops, straight from rdann and rdheader."""
    import wfdb

    counts, edge = Counter(), 0
    for r in records:
        ann = wfdb.rdann(str(root / r), "atr")
        length = wfdb.rdheader(str(root / r)).sig_len
        for s, sym in zip(ann.sample, ann.symbol):
            if sym in _AAMI:
                if s - before >= 0 and s + after <= length:
                    counts[_AAMI[sym]] += 1
                else:
                    edge += 1
    return {c: counts[c] for c in AAMI_CLASSES}, edge


@pytest.mark.parametrize("split", ["DS1", "DS2"])
def test_class_counts_match_the_annotations(split, mitdb_root, request):
    beats = request.getfixturevalue(f"beats_{split.lower()}")
    counts, edge = _expected(mitdb_root, DS1 if split == "DS1" else DS2)
    assert beats.counts() == counts
    assert beats.report["totals"]["dropped"]["edge"] == edge and edge > 0
    totals = beats.report["totals"]
    assert totals["kept"] == len(beats) == sum(counts.values())
    assert totals["beats"] == totals["kept"] + sum(totals["dropped"].values())
    per_record = beats.report["records"]
    assert sorted(per_record) == sorted(DS1 if split == "DS1" else DS2)
    assert all(e["kept"] == int((beats.record == r).sum()) for r, e in per_record.items())
    assert sum(sum(e["non_beat"].values()) for e in per_record.values()) == totals["non_beat"] > 0
    # the literature's beat totals (de Chazal et al. 2004): 51,021 beats in DS1, 49,712 in DS2
    assert totals["beats"] == (51021 if split == "DS1" else 49712)


def test_paced_records_are_excluded(beats_ds1, beats_ds2):
    records = set(beats_ds1.record) | set(beats_ds2.record)
    assert records == set(DS1) | set(DS2) and not records & set(PACED)
    assert not set(beats_ds1.record) & set(beats_ds2.record)
    assert "/" not in set(beats_ds1.symbol) | set(beats_ds2.symbol)  # paced beats only occur in paced records


def test_windows_are_centred_on_the_r_peak_of_mlii(beats_ds1, mitdb_root):
    import wfdb

    from robustlab.ecg.preprocessing import remove_baseline

    assert beats_ds1.x.shape == (len(beats_ds1), 720) and beats_ds1.x.dtype == np.float32
    assert beats_ds1.r_index == 360 and beats_ds1.lead == "MLII"
    for r in ("114", "201"):  # 114: MLII is the second signal
        rec = wfdb.rdrecord(str(mitdb_root / r))
        x = remove_baseline(rec.p_signal[:, rec.sig_name.index("MLII")], 360)
        mine = beats_ds1.record == r
        samples = beats_ds1.sample[mine]
        np.testing.assert_allclose(beats_ds1.x[mine, beats_ds1.r_index], x[samples], atol=1e-5)
        np.testing.assert_allclose(beats_ds1.x[mine][7], x[samples[7] - 360: samples[7] + 360], atol=1e-5)
        # the other lead would not match
        other = remove_baseline(rec.p_signal[:, 1 - rec.sig_name.index("MLII")], 360)
        assert not np.allclose(beats_ds1.x[mine, 360], other[samples], atol=1e-3)


def test_rr_features_agree_with_the_annotation_samples(beats_ds2, mitdb_root):
    import wfdb

    ann = wfdb.rdann(str(mitdb_root / "233"), "atr")
    s = np.array([p for p, sym in zip(ann.sample, ann.symbol) if sym in _AAMI])
    mine = beats_ds2.record == "233"
    rr, sample = beats_ds2.rr[mine], beats_ds2.sample[mine]
    pos = np.searchsorted(s, sample)
    assert (s[pos] == sample).all() and pos[0] > 0 and pos[-1] < len(s) - 1
    pre, post = (s[pos] - s[pos - 1]) / 360, (s[pos + 1] - s[pos]) / 360
    local = np.array([np.mean(np.diff(s[max(0, i - 10): i + 1])) / 360 for i in pos])
    record = np.mean(np.diff(s)) / 360
    expected = np.stack([pre, post, local, np.full_like(pre, record), pre / record, post / record, local / record,
                         post / pre], axis=1)
    np.testing.assert_allclose(rr, expected, rtol=1e-5)
    assert beats_ds2.rr.shape == (len(beats_ds2), len(mitdb.RR_FEATURES)) and np.isfinite(beats_ds2.rr).all()


def test_rr_features_at_the_record_start():
    rr = mitdb.rr_features(np.array([0, 360, 1080, 1440]), 360)
    np.testing.assert_allclose(rr[:, 0], [1, 1, 2, 1])  # the first beat takes its post_rr as pre_rr
    np.testing.assert_allclose(rr[:, 1], [1, 2, 1, 1])  # the last its pre_rr as post_rr
    np.testing.assert_allclose(rr[:, 2], [1, 1, 3 / 2, 4 / 3])  # the real intervals only
    np.testing.assert_allclose(rr[:, 3], 4 / 3)


def test_only_and_subset(beats_ds1):
    four = beats_ds1.only()
    assert four.classes == ("N", "S", "V", "F") and len(four) == len(beats_ds1) - beats_ds1.counts()["Q"]
    assert four.counts() == {c: beats_ds1.counts()[c] for c in four.classes}
    assert four.report["only"]["dropped"] == {"Q": beats_ds1.counts()["Q"]} and beats_ds1.counts()["Q"] > 0
    assert set(four.symbol) & set("/fQ") == set()
    np.testing.assert_array_equal(np.array(four.classes)[four.y], np.array(AAMI_CLASSES)[beats_ds1.y[beats_ds1.y < 4]])
    sv = beats_ds1.only(("S", "V"))
    assert sv.counts() == {"S": beats_ds1.counts()["S"], "V": beats_ds1.counts()["V"]}
    sub = beats_ds1.subset(np.arange(10, 20))
    assert len(sub) == 10 and sub.report["subset"] == {"from": len(beats_ds1), "kept": 10}
    np.testing.assert_array_equal(sub.x, beats_ds1.x[10:20])
    np.testing.assert_array_equal(sub.sample, beats_ds1.sample[10:20])
    with pytest.raises(DataError, match="unknown beat class"):
        beats_ds1.only(("N", "X"))


def test_cache_round_trip_and_misses(mitdb_root, tmp_path, monkeypatch):
    first = load_beats(["100", "114"], root=mitdb_root, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("*.npz"))
    assert len(files) == 1

    def no_extraction(*args, **kwargs):
        raise AssertionError("extract_beats called although the cache holds the set")

    with monkeypatch.context() as m:
        m.setattr(mitdb, "extract_beats", no_extraction)
        second = load_beats(["100", "114"], root=mitdb_root, cache_dir=tmp_path)
    for name in ("x", "y", "rr", "record", "sample", "symbol"):
        np.testing.assert_array_equal(getattr(second, name), getattr(first, name))
        assert getattr(second, name).dtype == getattr(first, name).dtype
    assert (second.report, second.classes, second.before, second.fs) == (first.report, first.classes, 360, 360)

    shorter = load_beats(["100", "114"], root=mitdb_root, cache_dir=tmp_path, before=90, after=166)
    assert shorter.x.shape[1] == 256 and len(list(tmp_path.glob("*.npz"))) == 2  # a changed parameter misses

    copy = tmp_path / "copy"
    copy.mkdir()
    for ext in ("hea", "dat", "atr"):
        shutil.copy2(mitdb_root / f"100.{ext}", copy / f"100.{ext}")
    load_beats(["100"], root=copy, cache_dir=tmp_path)
    n = len(list(tmp_path.glob("*.npz")))
    (copy / "100.atr").touch()  # a changed file (mtime) misses too
    load_beats(["100"], root=copy, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == n + 1

    files[0].write_bytes(b"not an npz")
    with pytest.warns(RuntimeWarning, match="does not read"):
        again = load_beats(["100", "114"], root=mitdb_root, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.x, first.x)
    assert BeatSet.load_npz(files[0]).counts() == first.counts()  # rewritten


def test_split_and_root_errors(mitdb_root, tmp_path):
    with pytest.raises(DataError, match="unknown MIT-BIH split 'DS3'"):
        load_beats("DS3", root=mitdb_root)
    with pytest.raises(DataError, match="unknown MIT-BIH record"):
        load_beats(["999"], root=mitdb_root)
    with pytest.raises(DataError, match=r"MIT-BIH folder .* lacks 3 file\(s\): 100\.hea, 100\.dat, 100\.atr"):
        load_beats(["100"], root=tmp_path, cache=False)
    assert len(mitdb.split_records("all")) == 44


def _fake_dl_database(source, calls, truncate=False):
    def dl_database(db_dir, dl_dir, records="all", annotators="all", **kwargs):
        assert db_dir == "mitdb" and annotators == ["atr"]
        calls.append(list(records))
        for r in records:
            for ext in ("hea", "dat", "atr"):
                shutil.copy(source / f"{r}.{ext}", f"{dl_dir}/{r}.{ext}")
            if truncate:
                with open(f"{dl_dir}/{r}.dat", "r+b") as f:
                    f.truncate(1000)
    return dl_database


def test_download_into_the_cache_offline(mitdb_root, tmp_path, monkeypatch):
    import wfdb

    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="lacks 6 file.*download=True"):
        mitdb.mitdb_path(records=["100", "101"], download=False)
    calls = []
    monkeypatch.setattr(wfdb, "dl_database", _fake_dl_database(mitdb_root, calls))
    folder = mitdb.mitdb_path(records=["100", "101"], progress=False)
    assert folder == tmp_path / "data" / "ecg" / "mitdb" and calls == [["100", "101"]]
    assert sorted(p.name for p in folder.iterdir()) == ["100.atr", "100.dat", "100.hea", "101.atr", "101.dat",
                                                        "101.hea"]  # no temporary folder left
    assert (folder / "100.dat").read_bytes() == (mitdb_root / "100.dat").read_bytes()
    mitdb.mitdb_path(records=["100", "101"])
    assert len(calls) == 1  # present: not downloaded again
    mitdb.mitdb_path(records=["100", "103"])
    assert calls[-1] == ["103"]  # only the missing record
    beats = load_beats(["100"], cache_dir=tmp_path / "cache")
    assert beats.report["records"]["100"]["kept"] == 2270

    monkeypatch.setattr(wfdb, "dl_database", _fake_dl_database(mitdb_root, calls, truncate=True))
    with pytest.raises(DownloadError, match=r"record 105 downloaded from PhysioNet does not read: .*truncated"):
        mitdb.mitdb_path(records=["105"])
    assert not list(folder.glob("105.*")) and not list(folder.glob(".mitdb-download-*"))

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(wfdb, "dl_database", offline)
    with pytest.raises(DownloadError, match="MIT-BIH records 106 from PhysioNet .* failed: ConnectionError"):
        mitdb.mitdb_path(records=["106"])


def test_beat_windows_leave_out_windows_touching_invalid_samples_and_count_them():
    from robustlab.ecg.data.mitdb import beat_windows, rr_features

    fs = 360.0
    t = np.arange(20 * 360)
    signal = (np.exp(-0.5 * ((t % 360 - 180) / 6.0) ** 2)).astype(np.float32)  # one beat a second
    sample = np.arange(180, len(t), 360)
    signal[5 * 360 + 10] = np.nan  # inside the window of the beats at 5.5 s and 4.5 s, 6.5 s (+-1 s windows)
    windows, rr, keep, filtered, dropped = beat_windows(signal, sample, fs, before=360, after=360, record="x")
    assert dropped == {"edge": 2, "invalid_samples": 2}  # first and last beat at the edges; two touch the NaN
    assert len(windows) == len(sample) - 4 and np.isfinite(windows).all() and np.isfinite(filtered).all()
    assert not set(sample[keep]) & {4 * 360 + 180, 5 * 360 + 180}
    np.testing.assert_array_equal(rr, rr_features(sample, fs)[keep])  # RR over all beats, then selected
    with pytest.raises(DataError, match="record y"):
        beat_windows(np.full(800, np.nan, np.float32), sample[:2], fs, before=360, after=360, record="y")


def test_a_local_copy_named_by_the_environment_is_read_instead_of_the_cache(mitdb_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv(mitdb.ENV_VAR, str(mitdb_root))
    assert mitdb.mitdb_path(download=False) == mitdb_root
    monkeypatch.setenv(mitdb.ENV_VAR, str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path)):
        mitdb.mitdb_path(download=False)
    assert not (tmp_path / "cache").exists()
