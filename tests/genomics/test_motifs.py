"""robustlab.genomics.data.motifs: the Motif record, JASPAR/MEME readers, pyjaspar releases, fetch_jaspar."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from robustlab.common.errors import DataError, DownloadError
from robustlab.genomics.data.motifs import (
    KOO2019_CORE_MOTIFS,
    KOO_EDDY2019_MOTIFS,
    Motif,
    fetch_jaspar,
    jaspar_motifs,
    read_motifs,
)

JASPAR_TEXT = """>MA0001.1 AGL3
A  [ 0  3 79 40 ]
C  [94 75  4  3 ]
G  [ 1  0  3  4 ]
T  [ 2 19 11 50 ]
>MA9999.1\tToy
A [ 10 0 ]
C [ 0 10 ]
G [ 0 0 ]
T [ 0 0 ]
"""

MEME_TEXT = (Path(__file__).parent / "data" / "toy.meme").read_text()  # also fuzzed in test_fuzz_readers.py


@pytest.fixture(scope="module")
def jaspar_dir():
    from robustlab.common.testing import shared_data

    return shared_data("genomics", "jaspar")


# -- Motif ----------------------------------------------------------------------------------------------------


def test_motif_pwm_pseudocount_and_reverse_complement():
    counts = np.array([[8, 0, 1], [0, 10, 1], [2, 0, 1], [0, 0, 7]])
    m = Motif("MA1.1", "X", counts)
    assert m.length == 3 and m.consensus == "ACT"
    np.testing.assert_allclose(m.pwm().sum(axis=0), 1)
    np.testing.assert_allclose(m.pwm()[:, 0], [0.8, 0, 0.2, 0])
    np.testing.assert_allclose(m.pwm(pseudocount=1)[:, 1], [1 / 14, 11 / 14, 1 / 14, 1 / 14])
    rc = m.reverse_complement()
    assert rc.consensus == "AGT"  # reverse complement of ACT
    np.testing.assert_array_equal(rc.counts[:, 0], [7, 1, 1, 1])  # the last column, complemented
    assert rc.reverse_complement() == m and rc != m
    assert not m.counts.flags.writeable
    counts[0, 0] = 99  # the motif keeps its own copy
    assert m.counts[0, 0] == 8


@pytest.mark.parametrize("counts", [np.ones((3, 4)), np.ones(4), -np.ones((4, 2)), np.zeros((4, 2)),
                                    np.full((4, 2), np.nan)])
def test_motif_rejects_bad_counts(counts):
    with pytest.raises(DataError, match="motif MA1.1 X"):
        Motif("MA1.1", "X", counts)


# -- files ----------------------------------------------------------------------------------------------------


def test_read_jaspar_meme_and_pfm_files(tmp_path):
    (tmp_path / "m.jaspar").write_text(JASPAR_TEXT)
    (tmp_path / "m.meme").write_text(MEME_TEXT)
    (tmp_path / "single.pfm").write_text("1 2\n3 4\n5 6\n7 8\n")
    jas = read_motifs(tmp_path / "m.jaspar")
    assert [(m.matrix_id, m.name, m.length) for m in jas] == [("MA0001.1", "AGL3", 4), ("MA9999.1", "Toy", 2)]
    meme = read_motifs(tmp_path / "m.meme")
    assert [(m.matrix_id, m.name) for m in meme] == [("MA9999.1", "Toy"), ("noname", "noname")]
    np.testing.assert_allclose(meme[0].pwm(), jas[1].pwm())
    np.testing.assert_allclose(meme[0].counts, jas[1].counts)  # probabilities x nsites
    (pfm,) = read_motifs(tmp_path / "single.pfm")
    assert pfm.matrix_id == pfm.name == "single"
    np.testing.assert_array_equal(pfm.counts, [[1, 2], [3, 4], [5, 6], [7, 8]])


def test_read_motifs_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_motifs(tmp_path / "missing.jaspar")
    truncated = tmp_path / "truncated.jaspar"
    truncated.write_text(JASPAR_TEXT.rsplit("\n", 2)[0] + "\n")  # the last motif lacks its T row
    with pytest.raises(DataError, match=r"truncated\.jaspar.*2 '>' headers but 1 complete"):
        read_motifs(truncated)
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello world\nthis is not a motif\n")
    with pytest.raises(DataError, match="garbage.txt"):
        read_motifs(garbage)
    ragged = tmp_path / "ragged.jaspar"
    ragged.write_text(">MA1.1 X\nA [1 2]\nC [1]\nG [1 2]\nT [1 2]\n")
    with pytest.raises(DataError, match="ragged.jaspar"):
        read_motifs(ragged)
    empty = tmp_path / "empty.meme"
    empty.write_text("MEME version 4\n\nALPHABET= ACGT\n")
    with pytest.raises(DataError, match="empty.meme"):
        read_motifs(empty)


@pytest.mark.realdata
def test_jaspar_and_meme_files_agree(jaspar_dir):
    jas = read_motifs(jaspar_dir / "pfm_vertebrates.txt")
    meme = read_motifs(jaspar_dir / "JASPAR_CORE_2016_vertebrates.meme")
    assert len(jas) == len(meme) == 519
    by_id = {m.matrix_id: m for m in meme}
    assert set(by_id) == {m.matrix_id for m in jas}
    for m in jas:
        other = by_id[m.matrix_id]
        assert other.name == m.name
        np.testing.assert_allclose(other.pwm(), m.pwm(), atol=1e-5, err_msg=m.matrix_id)


@pytest.mark.realdata
def test_pyjaspar_2016_equals_the_shared_files(jaspar_dir):
    core = read_motifs(jaspar_dir / "koo2019_robust_core5.jaspar")
    assert tuple(m.name for m in core) == KOO2019_CORE_MOTIFS
    db = jaspar_motifs(release=2016, names=KOO2019_CORE_MOTIFS)
    assert [m.matrix_id for m in db] == [m.matrix_id for m in core]
    for a, b in zip(db, core):
        np.testing.assert_array_equal(a.counts, b.counts, err_msg=a.name)

    twelve = read_motifs(jaspar_dir / "koo_eddy2019_12motifs.jaspar")
    assert sorted(m.name for m in twelve) == sorted(KOO_EDDY2019_MOTIFS)
    db12 = {m.name: m for m in jaspar_motifs(release=2016, names=KOO_EDDY2019_MOTIFS)}
    for m in twelve:
        assert db12[m.name] == m

    whole = {m.matrix_id: m for m in read_motifs(jaspar_dir / "pfm_vertebrates.txt")}
    db_all = jaspar_motifs(release=2016)
    assert len(db_all) == len(whole) == 519
    assert all(whole[m.matrix_id] == m for m in db_all)


# -- pyjaspar releases ----------------------------------------------------------------------------------------


def test_jaspar_motifs_selects_by_name_in_order():
    motifs = jaspar_motifs(names=["YY1", "Gabpa"])
    assert [(m.matrix_id, m.name) for m in motifs] == [("MA0095.2", "YY1"), ("MA0062.2", "Gabpa")]
    assert jaspar_motifs(names="SP1")[0].matrix_id == "MA0079.3"


def test_jaspar_motifs_unknown_name_lists_close_matches():
    with pytest.raises(DataError, match=r"'GABPA'.*case-sensitive.*close matches:.*Gabpa"):
        jaspar_motifs(names=["SP1", "GABPA"])


def test_jaspar_motifs_unpackaged_release():
    with pytest.raises(DataError, match=r"JASPAR release 2015 is not packaged.*2014, 2016, 2018"):
        jaspar_motifs(release=2015)


# -- fetch_jaspar ---------------------------------------------------------------------------------------------


def test_fetch_jaspar_offline_with_file_url(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    source = tmp_path / "mirror" / "pfm.txt"
    source.parent.mkdir()
    source.write_text(JASPAR_TEXT)
    motifs = fetch_jaspar(2016, url=source.resolve().as_uri())
    assert [m.name for m in motifs] == ["AGL3", "Toy"]
    cached = tmp_path / "cache" / "jaspar" / "JASPAR2016_CORE_vertebrates_non-redundant_pfms_jaspar.txt"
    assert cached.read_text() == JASPAR_TEXT
    source.unlink()  # the cached copy is reused without touching the URL
    assert [m.name for m in fetch_jaspar(2016, url=source.resolve().as_uri())] == ["AGL3", "Toy"]

    with pytest.raises(DownloadError, match="checksum mismatch"):
        other = tmp_path / "mirror" / "other.txt"
        other.write_text(JASPAR_TEXT)
        fetch_jaspar(2018, url=other.resolve().as_uri(), sha256="0" * 64)
    assert not (tmp_path / "cache" / "jaspar" / "JASPAR2018_CORE_vertebrates_non-redundant_pfms_jaspar.txt").exists()
    with pytest.raises(DataError, match="no download address is known for JASPAR 2010"):
        fetch_jaspar(2010)


HTML_PAGE = "<!DOCTYPE html>\n<html><head><title>JASPAR - maintenance</title></head><body>Back soon</body></html>\n"
CACHED_2016 = ("jaspar", "JASPAR2016_CORE_vertebrates_non-redundant_pfms_jaspar.txt")


def test_fetch_jaspar_refuses_an_html_page_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    page = tmp_path / "mirror" / "pfm_vertebrates.txt"  # a mirror that answers with an error page
    page.parent.mkdir()
    page.write_text(HTML_PAGE)
    url = page.resolve().as_uri()
    cached = tmp_path.joinpath("cache", *CACHED_2016)
    with pytest.raises(DownloadError) as info:
        fetch_jaspar(2016, url=url)
    assert url in str(info.value) and str(cached) in str(info.value)
    assert not cached.exists()
    assert not cached.parent.exists() or list(cached.parent.iterdir()) == []


def test_fetch_jaspar_refuses_a_truncated_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    cut = tmp_path / "cut.txt"
    cut.write_text(JASPAR_TEXT[:60])  # the first motif's header and two of its four rows
    with pytest.raises(DownloadError, match="JASPAR") as info:
        fetch_jaspar(2016, url=cut.resolve().as_uri())
    assert cut.resolve().as_uri() in str(info.value)
    assert not tmp_path.joinpath("cache", *CACHED_2016).exists()


def test_fetch_jaspar_replaces_a_poisoned_cache(tmp_path, monkeypatch):
    from robustlab.common.data.paths import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    cached = tmp_path.joinpath("cache", *CACHED_2016)
    cached.parent.mkdir(parents=True)
    cached.write_text(HTML_PAGE)  # cached by an earlier version from a mirror's error page
    source = tmp_path / "mirror" / "pfm.txt"
    source.parent.mkdir()
    source.write_text(JASPAR_TEXT)
    with pytest.warns(RuntimeWarning) as record:
        motifs = fetch_jaspar(2016, url=source.resolve().as_uri())
    assert [m.name for m in motifs] == ["AGL3", "Toy"]
    assert cached.read_text() == JASPAR_TEXT
    aside = [p for p in cached.parent.iterdir() if p != cached]
    assert len(aside) == 1 and aside[0].read_text() == HTML_PAGE
    assert str(cached) in str(record[0].message) and str(aside[0]) in str(record[0].message)


@pytest.mark.realdata
def test_fetch_jaspar_real_2016_file(jaspar_dir, tmp_path, monkeypatch):
    from robustlab.common.data.download import sha256sum

    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    copy = tmp_path / "pfm_vertebrates.txt"
    shutil.copy(jaspar_dir / "pfm_vertebrates.txt", copy)
    motifs = fetch_jaspar(2016, url=copy.as_uri(), sha256=sha256sum(copy))
    assert len(motifs) == 519
    assert {m.matrix_id for m in motifs} == {m.matrix_id for m in jaspar_motifs(release=2016)}
