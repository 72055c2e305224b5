"""Trace folders: index_folder (headers only, labels joined, unreadable files listed) and read_trace's gap policy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.seismic.data.traces import index_folder, read_trace
from robustlab.seismic.preprocessing import SkipTrace


def _segment(start, seconds=20.0, rate=100.0, loc=""):
    from obspy import Trace, UTCDateTime

    n = int(seconds * rate)
    return Trace(data=np.arange(n, dtype=np.float64),
                 header={"sampling_rate": rate, "starttime": UTCDateTime(start), "network": "XX", "station": "STA",
                         "location": loc, "channel": "HHZ"})


def _write(path, *traces):
    from obspy import Stream

    Stream(list(traces)).write(str(path), format="MSEED")
    return path


def test_gap_policy(tmp_path):
    t0 = "2020-01-01T00:00:00"
    small = _write(tmp_path / "small.mseed", _segment(t0), _segment("2020-01-01T00:00:20.5"))
    tr = read_trace(small)
    assert tr.stats.npts == 4050 and np.isfinite(tr.data).all()
    big = _write(tmp_path / "big.mseed", _segment(t0), _segment("2020-01-01T00:00:23.21"))
    with pytest.raises(SkipTrace, match=r"big.mseed: gap of 3.21 s > 1.0 s") as e:
        read_trace(big)
    assert e.value.kind == "gap" and isinstance(e.value, DataError)
    assert read_trace(big, max_gap=5.0).stats.npts == 2321 + 2000


def test_trace_id_selection(tmp_path):
    f = _write(tmp_path / "two.mseed", _segment("2020-01-01", loc="00"), _segment("2020-01-01", loc="10"))
    assert read_trace(f).id == "XX.STA.00.HHZ"
    assert read_trace(f, "XX.STA.10.HHZ").stats.location == "10"
    with pytest.raises(SkipTrace, match="no trace XX.STA.20.HHZ in the file .it holds XX.STA.00.HHZ, XX.STA.10.HHZ"):
        read_trace(f, "XX.STA.20.HHZ")


@pytest.mark.parametrize("content, text", [(b"", "empty file"), (b"net,sta\n1,2\n", "not miniSEED/SAC")])
def test_unreadable_files(tmp_path, content, text):
    (tmp_path / "x.mseed").write_bytes(content)
    with pytest.raises(SkipTrace, match=text) as e:
        read_trace(tmp_path / "x.mseed")
    assert e.value.kind == "unreadable" and "x.mseed" in str(e.value)
    with pytest.raises(SkipTrace, match="missing file"):
        read_trace(tmp_path / "nope.mseed")


def test_sac_files_read(tmp_path):
    _segment("2020-01-01").write(str(tmp_path / "a.sac"), format="SAC")
    assert read_trace(tmp_path / "a.sac").stats.npts == 2000


def test_index_folder_real_files_with_labels(pnw_root, tmp_path):
    from robustlab.seismic.data.pnw import read_labels

    labels = read_labels(pnw_root)
    multi = labels[labels["n_traces_in_file"] > 1]["file"].iloc[0]
    picked = list(dict.fromkeys(list(labels["file"].iloc[:4]) + [multi]))
    for f in picked:
        (tmp_path / "w").mkdir(exist_ok=True)
        shutil.copy(pnw_root / f, tmp_path / "w")
    (tmp_path / "w" / "junk.mseed").write_text("hello")
    (tmp_path / "w" / "notes.txt").write_text("ignored")
    frame = index_folder(tmp_path / "w", labels)
    assert len(frame) == len(picked) and frame.attrs["skipped"] == [{"file": "junk.mseed", "reason": frame.attrs["skipped"][0]["reason"]}]
    assert "not miniSEED/SAC" in frame.attrs["skipped"][0]["reason"]
    sel = labels.set_index(labels["file"].map(lambda f: f.split("/")[-1]))
    for _, row in frame.iterrows():
        ref = sel.loc[row["file"]]
        assert row["first_trace_id"] == ref["trace_id"] and row["label"] == ref["label"]
        assert row["sampling_rate"] == ref["sampling_rate"] and row["n_traces"] == ref["n_traces_in_file"]
        assert row["event_id"] == ref["event_id"]
    assert frame.loc[frame["file"] == multi.split("/")[-1], "trace_ids"].iloc[0].count(";") >= 1


def test_index_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        index_folder(tmp_path / "nope")
    import pandas as pd

    _write(tmp_path / "a.mseed", _segment("2020-01-01"))
    with pytest.raises(DataError, match="lack the column 'file'"):
        index_folder(tmp_path, pd.DataFrame({"name": ["a.mseed"]}))
    frame = index_folder(tmp_path)
    assert frame["trace_id"].tolist() == ["XX.STA..HHZ"] and frame["npts"].tolist() == [2000]
