"""The PNW corpus: tables, folds, the origin of unreviewed files, the local-copy/cache/download paths (offline, with
file:// URLs) and load_pnw's counts and cache."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pandas as pd
import pytest

from robustlab.common.errors import ConfigError, DataError, DownloadError
from robustlab.seismic.data import pnw


def test_tables(pnw_root):
    labels, unl, folds = pnw.read_labels(pnw_root), pnw.read_unlabelled(pnw_root), pnw.read_folds(pnw_root)
    assert len(labels) == 1102 and labels["event_id"].nunique() == 95 and len(unl) == 4436
    assert unl["event_id"].nunique() == 759 and (unl["y"] == -1).all() and (unl["label"] == "").all()
    assert set(labels["y"]) == {0, 1} and (labels["source"] == "labelled").all()
    assert sorted(folds["seed"].unique()) == [0, 1, 2] and len(folds) == 285


def test_unlabelled_origin_convention_holds_on_the_labelled_files(pnw_root):
    """origin = starttime + 50 s: on every labelled file >= 20 Hz that covers its 150 s, within one sample."""
    from obspy import UTCDateTime

    labels = pnw.read_labels(pnw_root)
    full = labels[(labels["sampling_rate"] >= 20) & (labels["npts"] / labels["sampling_rate"] >= 149.9)]
    assert len(full) > 900
    diff = np.array([UTCDateTime(o) - UTCDateTime(s) for o, s in zip(full["origin_time"], full["starttime"])])
    assert np.all(np.abs(diff - pnw.ORIGIN_OFFSET) <= 1 / full["sampling_rate"].to_numpy() + 1e-3)


def test_fold_split(pnw_root):
    folds = pnw.read_folds(pnw_root)
    labels = pnw.read_labels(pnw_root)
    for repeat in range(3):
        tests = []
        for fold in range(5):
            train, test = pnw.fold_split(folds, repeat, fold)
            assert not set(train) & set(test) and len(train) + len(test) == 95
            assert set(labels[labels["event_id"].isin(test)]["label"]) == {"earthquake", "explosion"}
            tests += list(test)
        assert sorted(tests) == sorted(labels["event_id"].unique())
    with pytest.raises(ConfigError, match="repeat 7"):
        pnw.fold_split(folds, 7, 0)
    with pytest.raises(ConfigError, match="fold 5"):
        pnw.fold_split(folds, 0, 5)


def test_table_errors_name_file_and_field(tmp_path):
    (tmp_path / "labels.csv").write_text("file,event_id,label,trace_id\na.mseed,e,earthquake,X.Y..HHZ\n")
    with pytest.raises(DataError, match=r"labels.csv lacks the column\(s\) origin_time"):
        pnw.read_labels(tmp_path)
    (tmp_path / "labels.csv").write_text("file,event_id,label,trace_id,origin_time\na.mseed,e,quarry,X,2020-01-01\n")
    with pytest.raises(DataError, match="row 2 .a.mseed. has label 'quarry'"):
        pnw.read_labels(tmp_path)
    with pytest.raises(DataError, match="unlabelled.csv does not exist"):
        pnw.read_unlabelled(tmp_path)


def test_manifest_rebuilds_the_tables(pnw_root):
    m = pnw._manifest()
    assert len(m) == 1102 + 4436 and m["sha256"].str.fullmatch("[0-9a-f]{64}").all()
    lab = m[m["file"].str.startswith("waveforms/")]
    ref = pd.read_csv(pnw_root / "labels.csv", dtype=str, keep_default_na=False)
    assert lab[list(pnw._LABEL_COLUMNS)].reset_index(drop=True).equals(ref)
    from io import StringIO

    folds = pd.read_csv(StringIO(pnw._folds_csv(lab)))
    key = ["seed", "fold", "event_id"]
    assert folds.sort_values(key).reset_index(drop=True).equals(
        pnw.read_folds(pnw_root).sort_values(key).reset_index(drop=True))


def _fake_upstream(pnw_root, tmp_path, monkeypatch, n_labelled=3, n_unlabelled=2):
    """A folder of a few real files under their upstream names, and the manifest cut to them."""
    m = pnw._manifest()
    small = pd.concat([m[m["file"].str.startswith("waveforms/")].head(n_labelled),
                       m[m["file"].str.startswith("unlabelled/")].head(n_unlabelled)])
    up = tmp_path / "upstream"
    up.mkdir()
    for f in small["file"]:
        shutil.copy(pnw_root / f, up / f.split("/")[-1])
    monkeypatch.setattr(pnw, "_manifest", lambda: small.copy())
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "data"))  # a fresh cache
    return up, small


def test_download_offline_with_file_urls(pnw_root, tmp_path, monkeypatch):
    up, small = _fake_upstream(pnw_root, tmp_path, monkeypatch)
    with pytest.raises(DataError, match="lacks"):
        pnw.pnw_path(download=False)
    folder = pnw.pnw_path(base_url=up.as_uri(), progress=False)
    assert folder == tmp_path / "data" / "seismic" / "pnw"
    for f in small["file"]:
        assert (folder / f).read_bytes() == (pnw_root / f).read_bytes()
    assert len(pnw.read_labels(folder)) == 3 and len(pnw.read_unlabelled(folder)) == 2
    assert pnw.pnw_path(download=False) == folder  # complete: no download
    ts = pnw.load_pnw(progress=False, download=False)
    assert len(ts) + len(ts.report) == 5


def test_download_refuses_a_corrupt_file(pnw_root, tmp_path, monkeypatch):
    up, small = _fake_upstream(pnw_root, tmp_path, monkeypatch, n_labelled=2, n_unlabelled=0)
    bad = up / small["file"].iloc[1].split("/")[-1]
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DownloadError, match="checksum mismatch"):
        pnw.pnw_path(base_url=up.as_uri(), progress=False, unlabelled=False)
    from robustlab.common.data import data_dir

    folder = data_dir("seismic", "pnw")
    assert not (folder / small["file"].iloc[1]).exists() and not (folder / "labels.csv").exists()


def test_local_copy_by_argument_and_env(pnw_root, tmp_path, monkeypatch):
    assert pnw.pnw_path(pnw_root) == pnw_root
    monkeypatch.setenv(pnw.ENV_VAR, str(pnw_root))
    assert pnw.pnw_path(download=False) == pnw_root
    (tmp_path / "copy").mkdir()
    shutil.copy(pnw_root / "labels.csv", tmp_path / "copy")
    shutil.copy(pnw_root / "folds.csv", tmp_path / "copy")
    with pytest.raises(DataError, match=r"lacks 1102 file\(s\): waveforms/"):
        pnw.pnw_path(tmp_path / "copy", unlabelled=False)


def test_load_pnw_counts(pnw_traces):
    ts = pnw_traces
    lab = ts.meta["source"] == "labelled"
    assert lab.sum() == 969 and (~lab).sum() == 3199
    rep = ts.report.groupby(["source", "kind"]).size().to_dict()
    assert rep == {("labelled", "rate"): 117, ("labelled", "truncated"): 11, ("labelled", "gap"): 3,
                   ("labelled", "flat"): 2, ("unreviewed", "rate"): 1204, ("unreviewed", "truncated"): 8,
                   ("unreviewed", "gap"): 14, ("unreviewed", "flat"): 11}
    assert len(ts) + len(ts.report) == 1102 + 4436
    assert ts.x.shape == (4168, 1, 2000) and ts.noise.shape == (4168, 1, 200)
    assert np.isfinite(ts.x).all() and np.allclose(ts.x.std(axis=-1), 1, atol=1e-3)
    assert (ts.meta.loc[lab, "y"] >= 0).all() and (ts.meta.loc[~lab, "y"] == -1).all()
    assert ts.meta["depth_km"][~lab].isna().all() and (ts.meta["sampling_rate"] >= 19.99).all()
    assert ts.meta["station"].str.count(r"\.").eq(1).all()


def test_load_pnw_cache(pnw_root, pnw_traces, seismic_data_dir):
    from robustlab.seismic.preprocessing import PreprocessConfig

    cache = seismic_data_dir / "seismic" / "traces"
    t = time.perf_counter()
    again = pnw.load_pnw(pnw_root, cache_dir=cache, progress=False)
    assert time.perf_counter() - t < 1.0
    assert np.array_equal(again.x, pnw_traces.x)
    pd.testing.assert_frame_equal(again.meta, pnw_traces.meta, check_dtype=False)
    before = set(cache.iterdir())
    other = pnw.load_pnw(pnw_root, cache_dir=cache, progress=False, unlabelled=False,
                         config=PreprocessConfig(window=(0.0, 50.0)))
    assert other.x.shape[-1] == 1000 and len(set(cache.iterdir()) - before) == 1
    broken = next(iter(before))
    broken.write_bytes(b"PK broken")
    with pytest.warns(RuntimeWarning, match="does not read"):
        rebuilt = pnw.load_pnw(pnw_root, cache_dir=cache, progress=False)
    assert np.array_equal(rebuilt.x, pnw_traces.x)
