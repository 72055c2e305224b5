"""The IPOC source-region corpus: the preprocessed traces, and the SHA-256-checked download (offline, file://)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from robustlab.common.errors import DataError, DownloadError
from robustlab.seismic.data import ipoc


def test_ipoc_traces(ipoc_traces):
    ts = ipoc_traces
    assert ts.x.shape == (200, 3, 1200) and ts.noise.shape == (200, 3, 0) and ts.x.dtype == np.float32
    assert len(ts.report) == 0 and ts.classes == ipoc.IPOC_CLASSES
    assert ts.meta["label"].value_counts().to_dict() == {"ID": 174, "UP": 16, "P2": 6, "P3": 3, "P1": 1}
    assert np.array_equal(ts.y, [ipoc.IPOC_CLASSES.index(v) for v in ts.meta["label"]])
    assert ts.meta["split"].value_counts().to_dict() == {"train": 120, "test": 60, "dev": 20}
    flat = ts.x.reshape(200, -1)
    assert np.allclose(flat.mean(1), 0, atol=1e-4) and np.allclose(flat.std(1), 1, atol=1e-3)
    assert (ts.meta["station"] == "CX.PB01").all() and ts.meta["depth_km"].notna().all()
    assert ts.meta["event_id"].nunique() == 200


def test_ipoc_filters_the_band(ipoc_traces, ipoc_root):
    """The stored traces hold energy below 1 Hz; the preprocessed ones little (band-pass 1-8 Hz)."""
    spec = np.abs(np.fft.rfft(ipoc_traces.x[:, 0, 100:1100], axis=-1)) ** 2
    f = np.fft.rfftfreq(1000, 1 / 20)
    assert spec[:, f < 0.5].sum() < 0.01 * spec.sum()


def test_ipoc_download_offline(ipoc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="lacks chunks"):
        ipoc.ipoc_path(download=False)
    folder = ipoc.ipoc_path(base_url=ipoc_root.as_uri(), progress=False)
    assert folder == tmp_path / "data" / "seismic" / "ipoc"
    assert all((folder / f).read_bytes() == (ipoc_root / f).read_bytes() for f in ipoc.FILES)
    assert len(ipoc.load_ipoc(download=False)) == 200


def test_ipoc_download_refuses_a_changed_file(ipoc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "data"))
    up = tmp_path / "up"
    shutil.copytree(ipoc_root, up)
    with open(up / "metadata1.csv", "a") as f:
        f.write("\n")
    with pytest.raises(DownloadError, match="checksum mismatch"):
        ipoc.ipoc_path(base_url=up.as_uri(), progress=False)
    assert not (tmp_path / "data" / "seismic" / "ipoc" / "metadata1.csv").exists()


def test_ipoc_local_copy(ipoc_root, tmp_path, monkeypatch):
    monkeypatch.setenv(ipoc.ENV_VAR, str(ipoc_root))
    assert ipoc.ipoc_path(download=False) == ipoc_root
    with pytest.raises(DataError, match="lacks chunks"):
        ipoc.ipoc_path(tmp_path)
    with pytest.raises(DataError, match="does not resample"):
        ipoc.load_ipoc(ipoc_root, config=ipoc.PreprocessConfig(rate=40.0, window=(0.0, 30.0)))
