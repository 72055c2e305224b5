"""WFDB record and annotation readers: the real MIT-BIH files, and broken copies of them that must fail naming the
record."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.ecg.data.records import (
    alignment_ratio,
    cut_windows,
    find_records,
    read_annotations,
    read_record,
)

pytestmark = pytest.mark.realdata


def _copy(src, dst, name, exts=("hea", "dat", "atr"), as_name=None):
    for ext in exts:
        shutil.copy(src / f"{name}.{ext}", dst / f"{as_name or name}.{ext}")


def test_read_record_matches_wfdb_and_picks_leads_by_name(mitdb_root):
    import wfdb

    ref = wfdb.rdrecord(str(mitdb_root / "114"))
    assert ref.sig_name == ["V5", "MLII"]  # record 114 has its leads swapped
    rec = read_record(mitdb_root / "114.hea")
    assert rec.name == "114" and rec.fs == 360 and rec.leads == ("V5", "MLII") and rec.units == ("mV", "mV")
    assert rec.signal.dtype == np.float32 and rec.signal.shape == (650000, 2)
    np.testing.assert_allclose(rec.signal, ref.p_signal, atol=1e-6)
    mlii, used = rec.lead("MLII")
    assert used == "MLII"
    np.testing.assert_array_equal(mlii, rec.signal[:, 1])
    only = read_record(mitdb_root / "114", leads=["MLII"])
    assert only.leads == ("MLII",)
    np.testing.assert_array_equal(only.signal[:, 0], mlii)
    _, used = read_record(mitdb_root / "102").lead("MLII", fallback=("V2", "V5"))
    assert used == "V2"  # 102 has V5 and V2, no MLII: the first fallback present, in the order given


def test_unknown_lead_lists_the_leads_present(mitdb_root):
    with pytest.raises(DataError, match=r"record 102 .*no lead 'MLII'.*V5, V2"):
        read_record(mitdb_root / "102", leads=["MLII"])
    rec = read_record(mitdb_root / "104")
    with pytest.raises(DataError, match=r"record 104 .*no lead 'MLII' or 'II'; its leads are V5, V2"):
        rec.lead("MLII", fallback=("II",))


def test_read_annotations_matches_rdann(mitdb_root):
    import wfdb

    ref = wfdb.rdann(str(mitdb_root / "208"), "atr")
    ann = read_annotations(mitdb_root / "208")
    assert ann.record == "208" and ann.fs == 360 and len(ann) == len(ref.sample)
    np.testing.assert_array_equal(ann.sample, ref.sample)
    assert ann.sample.dtype == np.int64 and list(ann.symbol) == ref.symbol and ann.aux == ref.aux_note


def test_find_records(mitdb_root, tmp_path):
    found = find_records(mitdb_root)
    assert len(found) == 48 and found[0].name == "100.hea" and found[-1].name == "234.hea"
    with pytest.raises(DataError, match="holds no WFDB header"):
        find_records(tmp_path)


def test_missing_dat_names_the_record(mitdb_root, tmp_path):
    _copy(mitdb_root, tmp_path, "100", exts=("hea", "atr"))
    with pytest.raises(DataError, match=r"record 100: signal file .*100\.dat .* does not exist"):
        read_record(tmp_path / "100")


def test_truncated_dat_disagrees_with_its_header(mitdb_root, tmp_path):
    _copy(mitdb_root, tmp_path, "100", exts=("hea", "atr"))
    data = (mitdb_root / "100.dat").read_bytes()
    (tmp_path / "100.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"record 100: .*975000 bytes, which hold 325000 samples.*says 650000 "
                                        r"samples.*truncated"):
        read_record(tmp_path / "100")
    (tmp_path / "100.dat").write_bytes(data + b"\0" * 30)
    with pytest.raises(DataError, match="longer than its header says"):
        read_record(tmp_path / "100")


def test_missing_header_and_annotation_file(mitdb_root, tmp_path):
    with pytest.raises(DataError, match=r"record 999: header file .*999\.hea does not exist"):
        read_record(tmp_path / "999")
    _copy(mitdb_root, tmp_path, "100", exts=("hea", "dat"))
    with pytest.raises(DataError, match=r"record 100: annotation file .*100\.atr does not exist"):
        read_annotations(tmp_path / "100")


def test_annotation_file_of_another_record(mitdb_root, tmp_path):
    """A copied .atr reads (WFDB takes the record name from the file name): its beats do not sit on the QRS."""
    from robustlab.ecg.data.mitdb import extract_beats
    from robustlab.ecg.preprocessing import remove_baseline

    _copy(mitdb_root, tmp_path, "100", exts=("hea", "dat"))
    shutil.copy(mitdb_root / "101.atr", tmp_path / "100.atr")
    with pytest.raises(DataError, match=r"record 100: the beat annotations of .*100\.atr do not sit on the QRS "
                                        r"complexes.*another record"):
        extract_beats(tmp_path, ["100"])
    # the same signal with its own annotations passes with a wide margin
    x = remove_baseline(read_record(mitdb_root / "100", leads=["MLII"]).signal[:, 0], 360)
    own = read_annotations(mitdb_root / "100").sample
    other = read_annotations(tmp_path / "100").sample
    assert alignment_ratio(x, own, 360) > 5 > 1.5 > alignment_ratio(x, other, 360)


def test_short_record_with_a_long_records_annotations(mitdb_root, tmp_path):
    import wfdb

    from robustlab.ecg.data.mitdb import extract_beats

    rec = read_record(mitdb_root / "100")
    wfdb.wrsamp("100", fs=360, units=list(rec.units), sig_name=list(rec.leads),
                p_signal=rec.signal[:500].astype(np.float64), fmt=["212", "212"], adc_gain=[200, 200],
                baseline=[1024, 1024], write_dir=str(tmp_path))
    assert read_record(tmp_path / "100").signal.shape == (500, 2)
    with pytest.raises(DataError, match=r"record 100 has 500 samples, shorter than one window of 720"):
        extract_beats(tmp_path, ["100"], check_alignment=False)  # checked before the annotations are read
    shutil.copy(mitdb_root / "100.atr", tmp_path / "100.atr")
    with pytest.raises(DataError, match=r"record 100: annotation file .* outside the record's 500 samples"):
        read_annotations(tmp_path / "100")


def test_cut_windows_centres_and_edges():
    signal = np.arange(100, dtype=np.float32)
    windows, kept = cut_windows(signal, np.array([3, 10, 50, 95, 96]), 5, 5, record="r")
    assert kept.tolist() == [False, True, True, True, False]
    assert windows.shape == (3, 10) and windows[:, 5].tolist() == [10, 50, 95]
    np.testing.assert_array_equal(windows[0], np.arange(5, 15))
    with pytest.raises(DataError, match="record r has 100 samples, shorter than one window of 101"):
        cut_windows(signal, np.array([50]), 50, 51, record="r")
