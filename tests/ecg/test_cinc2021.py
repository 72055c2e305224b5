"""PhysioNet/CinC 2021 records: labels from the '# Dx:' codes, merged equivalent classes, resampling, crop/pad, errors
and the download path (offline, file:// URLs)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from robustlab.common.errors import DataError, DownloadError
from robustlab.ecg.data.cinc2021 import (
    STANDARD_LEADS,
    cinc2021_path,
    equivalent_classes,
    load_cinc2021,
    read_dx_mapping,
)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def cinc(cinc_root):
    return load_cinc2021(cinc_root, download=False)


def _dx(path):
    """The codes of a header's '# Dx:' line, read as text."""
    line = next(ln for ln in path.read_text().splitlines() if ln.startswith("# Dx:"))
    return set(line.split(":", 1)[1].strip().split(","))


def test_labels_match_the_dx_codes(cinc, cinc_root):
    import csv

    with open(cinc_root / "dx_mapping_scored.csv") as f:
        scored = {row["SNOMEDCTCode"] for row in csv.DictReader(f)}
    same = {"59118001": "713427006", "63593006": "284470004", "17338001": "427172004", "164909002": "733534002"}
    assert cinc.x.shape == (50, 12, 5000) and cinc.x.dtype == np.float32 and cinc.leads == STANDARD_LEADS
    assert cinc.y.shape == (50, len(cinc.classes)) and set(np.unique(cinc.y)) == {0.0, 1.0}
    assert list(cinc.record) == sorted(p.stem for p in cinc_root.glob("*.hea"))
    for i, name in enumerate(cinc.record):
        expected = {same.get(c, c) for c in _dx(cinc_root / f"{name}.hea")} & scored
        assert {c for c, v in zip(cinc.classes, cinc.y[i]) if v} == expected, name
    assert cinc.report["no_scored_label"] == int((cinc.y.sum(1) == 0).sum()) > 0
    assert cinc.report["unscored_codes"]["55827005"] == sum("55827005" in _dx(p) for p in cinc_root.glob("*.hea"))


def test_equivalent_classes_are_merged(cinc, cinc_root):
    rbbb = [p.stem for p in cinc_root.glob("*.hea") if "59118001" in _dx(p)]
    assert rbbb  # the sample has RBBB records: they count as CRBBB
    assert "59118001" not in cinc.classes and "713427006" in cinc.classes
    col = cinc.classes.index("713427006")
    assert all(cinc.y[list(cinc.record).index(r), col] == 1 for r in rbbb)
    assert cinc.abbreviations[col] == "CRBBB"
    merged = equivalent_classes(cinc_root / "dx_mapping_scored.csv")
    assert merged == {"59118001": "713427006", "63593006": "284470004", "17338001": "427172004",
                      "164909002": "733534002"}  # the 4th pair from the CSV's Notes


def test_signals_match_the_record_in_mv(cinc, cinc_root):
    import wfdb

    ref = wfdb.rdrecord(str(cinc_root / cinc.record[3]))
    np.testing.assert_allclose(cinc.x[3], ref.p_signal.T, atol=1e-5)


def test_resampled_shape_and_values(cinc, cinc_root):
    from scipy.signal import resample_poly

    low = load_cinc2021(cinc_root, fs=250, classes=["426783006", "59118001"])
    assert low.x.shape == (50, 12, 2500) and low.fs == 250 and low.report["resampled"] == {"500": 50}
    assert low.classes == ("426783006", "713427006")  # a merged code is replaced by its representative
    np.testing.assert_allclose(low.x[0], resample_poly(cinc.x[0], 1, 2, axis=1), atol=1e-5)
    odd = load_cinc2021(cinc_root, fs=360, seconds=10)
    assert odd.x.shape == (50, 12, 3600) and odd.report["cropped"] == odd.report["padded"] == 0


def test_crop_and_pad_are_counted(cinc, cinc_root):
    long = load_cinc2021(cinc_root, seconds=12, leads=["II", "V1"])
    assert long.x.shape == (50, 2, 6000) and long.report["padded"] == 50
    assert long.report["padded_samples"] == 50 * 1000 and not long.x[:, :, 5000:].any()
    np.testing.assert_array_equal(long.x[:, :, :5000], cinc.x[:, [1, 6]])
    short = load_cinc2021(cinc_root, seconds=4)
    assert short.x.shape == (50, 12, 2000) and short.report["cropped"] == 50 and short.report["padded"] == 0
    np.testing.assert_array_equal(short.x, cinc.x[:, :, :2000])


def test_errors_name_the_record(cinc_root, tmp_path):
    with pytest.raises(DataError, match=r"record E07500 .*no lead 'MLII'; its leads are I, II, III, aVR"):
        load_cinc2021(cinc_root, leads=["I", "MLII"])
    with pytest.raises(DataError, match="not scored classes"):
        load_cinc2021(cinc_root, classes=["55827005"])
    for ext in ("hea", "mat"):
        shutil.copy(cinc_root / f"E07500.{ext}", tmp_path / f"E07500.{ext}")
    with pytest.raises(DataError, match="has no dx_mapping_scored.csv"):
        load_cinc2021(tmp_path)
    (tmp_path / "dx_mapping_scored.csv").write_text("Code,Name\n1,x\n")
    with pytest.raises(DataError, match=r"lacks the column\(s\) Dx, SNOMEDCTCode, Abbreviation; its columns are "
                                        r"Code, Name"):
        read_dx_mapping(tmp_path / "dx_mapping_scored.csv")
    shutil.copy(cinc_root / "dx_mapping_scored.csv", tmp_path)
    header = (tmp_path / "E07500.hea").read_text()
    (tmp_path / "E07500.hea").write_text(header.replace("# Dx:", "# Diagnosis:"))
    with pytest.raises(DataError, match=r"record E07500: its header has no '# Dx:' comment"):
        load_cinc2021(tmp_path)
    (tmp_path / "E07500.hea").write_text(header)
    (tmp_path / "E07500.mat").write_bytes((cinc_root / "E07500.mat").read_bytes()[:60000])
    with pytest.raises(DataError, match=r"record E07500: signal file .*E07500\.mat .*truncated"):
        load_cinc2021(tmp_path)


def _fake_physionet(cinc_root, tmp_path, records):
    """A copy of PhysioNet's challenge-2021 layout with its SHA256SUMS.txt, reachable through file:// URLs."""
    site = tmp_path / "site"
    lines = []
    for r in records:
        for ext in ("hea", "mat"):
            rel = f"training/georgia/g1/{r}.{ext}"
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(cinc_root / f"{r}.{ext}", site / rel)
            lines.append(f"{hashlib.sha256((site / rel).read_bytes()).hexdigest()} {rel}")
    other = site / "training/ptb-xl/g1/HR06000.hea"
    other.parent.mkdir(parents=True)
    other.write_text("not downloaded: another source")
    lines.append(f"{'0' * 64} training/ptb-xl/g1/HR06000.hea")
    lines.append(f"{'1' * 64} LICENSE.txt")
    (site / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(cinc_root / "dx_mapping_scored.csv", tmp_path / "mapping.csv")
    return site


def test_download_into_the_cache_offline(cinc_root, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match="holds no records.*download=True"):
        cinc2021_path(download=False)
    site = _fake_physionet(cinc_root, tmp_path, ["E07500", "E07501"])
    urls = {"base_url": site.as_uri() + "/", "mapping_url": (tmp_path / "mapping.csv").as_uri()}
    folder = cinc2021_path(sources=("georgia",), progress=False, **urls)
    assert folder == tmp_path / "data" / "ecg" / "cinc2021"
    got = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert got == ["SHA256SUMS.txt", "dx_mapping_scored.csv", "training/georgia/g1/E07500.hea",
                   "training/georgia/g1/E07500.mat", "training/georgia/g1/E07501.hea",
                   "training/georgia/g1/E07501.mat"]
    data = load_cinc2021(download=False)
    assert list(data.record) == ["E07500", "E07501"] and data.x.shape == (2, 12, 5000)

    (site / "training/georgia/g1/E07501.mat").write_bytes(b"tampered")
    (folder / "training/georgia/g1/E07501.mat").unlink()
    with pytest.raises(DownloadError, match="checksum mismatch"):
        cinc2021_path(sources=("georgia",), progress=False, **urls)
    assert not (folder / "training/georgia/g1/E07501.mat").exists()
    with pytest.raises(DownloadError, match="lists no training record of the sources cpsc_2018"):
        cinc2021_path(sources=("cpsc_2018",), progress=False, **urls)
    with pytest.raises(DownloadError, match="lists no training record"):  # a group of a source, not present
        cinc2021_path(sources=("georgia/g2",), progress=False, **urls)
    (site / "training/georgia/g1/E07501.mat").write_bytes((cinc_root / "E07501.mat").read_bytes())
    assert cinc2021_path(sources=("georgia/g1",), progress=False, **urls) == folder  # a group of a source
