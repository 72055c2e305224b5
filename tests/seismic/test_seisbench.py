"""The SeisBench WaveformDataset reader on the real chunked IPOC folder and on small broken folders."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from robustlab.common.errors import DataError
from robustlab.seismic.data.seisbench import WaveformDataset, parse_trace_name


@pytest.mark.parametrize("name, expected", [
    ("bucket0$3,:3,:1200", ("bucket0", 3, (slice(None, 3), slice(None, 1200)))),
    ("bucket12$0", ("bucket12", 0, ())),
    ("b$7,1,10:20", ("b", 7, (1, slice(10, 20)))),
])
def test_parse_trace_name(name, expected):
    assert parse_trace_name(name) == expected


@pytest.mark.parametrize("name", ["bucket0", "bucket0$x,:3", "$3"])
def test_parse_trace_name_errors(name):
    with pytest.raises(DataError, match="trace_name"):
        parse_trace_name(name)


def test_real_chunked_dataset(ipoc_root):
    import h5py

    with WaveformDataset(ipoc_root) as ds:
        assert len(ds) == 200 and ds.sampling_rate == 20.0 and ds.component_order == "ZNE"
        assert ds.metadata["chunk"].tolist() == ["0"] * 100 + ["1"] * 100
        w = ds.get_waveforms(150)
        assert w.shape == (3, 1200)
        bucket, i, _ = parse_trace_name(ds.metadata["trace_name"].iloc[150])
        with h5py.File(ipoc_root / "waveforms1.hdf5") as h:
            assert np.array_equal(w, h["data"][bucket][i, :3, :1200])
        sizes = {s: len(ds.get_split(s)) for s in ("train", "dev", "test")}
        assert sizes == {"train": 120, "dev": 20, "test": 60}
        test = ds.get_split("test")
        assert np.array_equal(test.get_waveforms(0), ds.get_waveforms(int(np.flatnonzero(ds.metadata["split"] == "test")[0])))
        with pytest.raises(DataError, match="no trace of split 'val'"):
            ds.get_split("val")
        with pytest.raises(DataError, match="out of range"):
            ds.get_waveforms(200)
    assert "SeisBench" in WaveformDataset.citation


def _single(tmp_path, trace_names=("bucket0$0,:3,:100",), columns=("trace_name",)):
    import h5py

    with h5py.File(tmp_path / "waveforms.hdf5", "w") as h:
        h.create_dataset("data/bucket0", data=np.ones((1, 3, 100)))
        h["data_format/component_order"] = "ENZ"
        h["data_format/sampling_rate"] = 100
    pd.DataFrame({c: list(trace_names) for c in columns}).to_csv(tmp_path / "metadata.csv", index=False)
    return tmp_path


def test_unchunked_dataset_and_errors(tmp_path):
    ds = WaveformDataset(_single(tmp_path))
    assert ds.component_order == "ENZ" and ds.sampling_rate == 100.0 and ds.get_waveforms(0).shape == (3, 100)
    ds.close()
    with pytest.raises(DataError, match="metadata.csv lacks the column 'trace_name'"):
        WaveformDataset(_single(tmp_path, columns=("name",)))
    ds = WaveformDataset(_single(tmp_path, trace_names=("bucket9$0,:3,:100",)))
    with pytest.raises(DataError, match=r"waveforms.hdf5 lack the bucket data/bucket9"):
        ds.get_waveforms(0)
    ds.close()
    ds = WaveformDataset(_single(tmp_path, trace_names=("bucket0$5",)))
    with pytest.raises(DataError, match="has 1 rows.*row 5"):
        ds.get_waveforms(0)
    with pytest.raises(DataError, match="no 'split' column"):
        ds.get_split("train")
    ds.close()
    (tmp_path / "waveforms.hdf5").unlink()
    with pytest.raises(DataError, match="lacks waveforms.hdf5"):
        WaveformDataset(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        WaveformDataset(tmp_path / "nope")


def test_chunk_listed_but_missing(ipoc_root, tmp_path):
    for f in ("chunks", "metadata0.csv", "waveforms0.hdf5"):
        shutil.copy(ipoc_root / f, tmp_path)
    with pytest.raises(DataError, match="lacks metadata1.csv .listed as chunk '1'"):
        WaveformDataset(tmp_path)
