"""Fuzzing the readers of robustlab.genomics: FASTA (+ label tables), BED (+ genome FASTA), JASPAR/MEME motifs, NPZ.

Every reader, given random bytes or a mutated valid file, returns a valid result or raises a robustlab error
naming the file; each class of bad input named in the issue also has a readable test of its own.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustlab.common.errors import DataError
from robustlab.common.testing.fuzz import (
    HTML_ERROR_PAGE,
    array_mutations,
    check_reader,
    fuzz_settings,
    mutations,
    npz_bytes,
    write_input,
)
from robustlab.genomics.data.fasta import SequenceDataset, read_bed_dataset, read_fasta_dataset
from robustlab.genomics.data.motifs import Motif, read_motifs
from robustlab.genomics.data.simulate import SimulatedDataset, simulate_koo2019

FASTA = b">s1 first record\nACGTACGTAC\n>s2\nACGTNNRYAC\n>s3\nacgtacgtac\n"
LABELS_CSV = b"id,bound,signal\ns3,0,0.5\ns1,1,2.5\ns2,1,-1\n"
CHR1 = b"ACGTACGTAACCGGTTAAAACCCCGGGGTTTTACGTACGTAACCGGTTAA"
GENOME = b">chr1 test\n" + CHR1[:25] + b"\n" + CHR1[25:] + b"\n>chr2\nGGGGGGGGGGCCCCCCCCCC\n"
BED = b"track name=peaks\nchr1\t0\t10\tp1\t1.5\t+\nchr2\t5\t15\tp2\t0\t-\nchr1\t20\t30\tp3\t2\t.\n"
LABELS_TSV = b"id\ty\np2\t1\np1\t0\np3\t1\n"

JASPAR = b""">MA0001.1 AGL3
A  [ 0  3 79 40 ]
C  [94 75  4  3 ]
G  [ 1  0  3  4 ]
T  [ 2 19 11 50 ]
>MA9999.1\tToy
10 0
0 10
0 0
0 0
"""

MEME = (Path(__file__).parent / "data" / "toy.meme").read_bytes()  # two motifs, the second without a name

PFM = b"1 2 3\n3 4 5\n5 6 7\n7 8 9\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def valid(folder):
    """The valid companion files, written once (the fuzzed file is written next to them under its own name)."""
    return {name: write_input(folder / name, data) for name, data in
            [("valid.fa", FASTA), ("valid.csv", LABELS_CSV), ("valid-genome.fa", GENOME), ("valid.bed", BED),
             ("valid.tsv", LABELS_TSV)]}


def _result(out, kind):
    assert out is None or isinstance(out, kind)
    return out


# -- FASTA + label table ---------------------------------------------------------------------------------------


@fuzz_settings(max_examples=100)
@given(data=mutations(FASTA), compressed=st.booleans())
def test_read_fasta_dataset_fuzzed(folder, data, compressed):
    path = folder / ("fuzzed-seqs.fa" + (".gz" if compressed else ""))
    write_input(path, gzip.compress(data) if compressed else data)
    ds = _result(check_reader(read_fasta_dataset, path), SequenceDataset)
    if ds is not None:
        assert ds.x.shape[0] == len(ds.ids) == len(set(ds.ids)) and np.isfinite(ds.x).all()


@fuzz_settings(max_examples=40)
@given(data=mutations(gzip.compress(FASTA)))
def test_read_fasta_dataset_fuzzed_gzip_stream(folder, data):
    check_reader(read_fasta_dataset, write_input(folder / "fuzzed-stream.fa.gz", data))


@fuzz_settings(max_examples=80)
@given(data=mutations(LABELS_CSV))
def test_read_fasta_dataset_fuzzed_labels(folder, valid, data):
    path = write_input(folder / "fuzzed-labels.csv", data)
    ds = _result(check_reader(lambda p: read_fasta_dataset(valid["valid.fa"], p), path), SequenceDataset)
    if ds is not None:
        assert np.isfinite(ds.y).all() and ds.y.shape[0] == 3


def test_fasta_duplicated_ids_are_refused_naming_id_and_file(tmp_path):
    path = write_input(tmp_path / "dup.fa", FASTA + b">s2 again\nACGTACGTAC\n")
    with pytest.raises(DataError, match=r"dup\.fa has duplicated ids: 's2'"):
        read_fasta_dataset(path)


@pytest.mark.parametrize("data, match", [
    (b"", "holds no records"),
    (b"\n\n  \n", "holds no records"),
    (HTML_ERROR_PAGE, "is an HTML or XML page"),
    (b"ACGT\n" + FASTA, r"line 1: 'ACGT' comes before the first '>' header"),  # a header line lost
    (b" " + FASTA, r"line 1: '>s1 first record' comes before the first '>' header"),  # not silently skipped
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "cannot be read"),  # wrong magic, binary
    (b">s1\n\n>s2\n\n", "empty sequence"),  # headers without sequences
])
def test_fasta_bad_files_name_the_file(tmp_path, data, match):
    path = write_input(tmp_path / "bad-seqs.fa", data)
    with pytest.raises(DataError, match=match) as e:
        read_fasta_dataset(path)
    assert "bad-seqs.fa" in str(e.value)


def test_truncated_fasta_names_the_cut_record_and_both_apis_fix(tmp_path):
    """A file cut inside its last record has ragged lengths; the hint names the Python argument and the CLI."""
    path = write_input(tmp_path / "cut.fa", FASTA[:-4])
    with pytest.raises(DataError) as e:
        read_fasta_dataset(path)
    msg = str(e.value)
    assert "cut.fa" in msg and "'s3' (index 2) has length 7" in msg and "'s1' (index 0) has length 10" in msg
    assert "read_fasta_dataset(..., pad_to=" in msg  # the Python API's argument, named as such
    assert "robustlab genomics" in msg and "one length" in msg  # the CLI has no padding option
    assert "--pad" not in msg


def test_fasta_label_table_nan_and_bad_encoding_are_refused(tmp_path, valid):
    nan = write_input(tmp_path / "nan.csv", LABELS_CSV.replace(b"2.5", b"nan"))
    with pytest.raises(DataError, match=r"nan\.csv, line 3 \(id 's1'\), column 'signal': 'nan' is not a finite"):
        read_fasta_dataset(valid["valid.fa"], nan)
    latin = write_input(tmp_path / "latin.csv", LABELS_CSV.replace(b"s3", b"s\xe93"))
    with pytest.raises(DataError, match=r"latin\.csv"):
        read_fasta_dataset(valid["valid.fa"], latin)
    empty = write_input(tmp_path / "empty.csv", b"")
    with pytest.raises(DataError, match=r"empty\.csv has no id column"):
        read_fasta_dataset(valid["valid.fa"], empty)


# -- BED + genome FASTA + label table --------------------------------------------------------------------------


@fuzz_settings(max_examples=100)
@given(data=mutations(BED))
def test_read_bed_dataset_fuzzed(folder, valid, data):
    path = write_input(folder / "fuzzed-peaks.bed", data)
    ds = _result(check_reader(lambda p: read_bed_dataset(p, valid["valid-genome.fa"]), path), SequenceDataset)
    if ds is not None:
        assert len(ds.ids) == len(set(ds.ids)) and np.isfinite(ds.y).all()


@fuzz_settings(max_examples=100)
@given(data=mutations(GENOME), compressed=st.booleans())
def test_read_bed_dataset_fuzzed_genome(folder, valid, data, compressed):
    path = folder / ("fuzzed-genome.fa" + (".gz" if compressed else ""))
    write_input(path, gzip.compress(data) if compressed else data)
    _result(check_reader(lambda p: read_bed_dataset(valid["valid.bed"], p), path), SequenceDataset)


@fuzz_settings(max_examples=60)
@given(data=mutations(LABELS_TSV))
def test_read_bed_dataset_fuzzed_labels(folder, valid, data):
    path = write_input(folder / "fuzzed-labels.tsv", data)
    bed, genome = valid["valid.bed"], valid["valid-genome.fa"]
    _result(check_reader(lambda p: read_bed_dataset(bed, genome, labels=p), path), SequenceDataset)


@pytest.mark.parametrize("data, match", [
    (b"", "holds no intervals"),
    (HTML_ERROR_PAGE, "is an HTML or XML page"),
    (BED[:-12], r"line 4: expected at least 3 columns"),  # truncated inside the last line
    (b"chrom\tstart\tend\n" + BED, r"line 1: start and end must be integers"),  # a header the BED has not
    (BED.replace(b"1.5", b"nan"), r"line 2, column 'score': 'nan' is not a finite number"),
    (BED + BED.splitlines(keepends=True)[1], r"duplicated ids: 'p1'"),
    (b"chr1\t0\t10\n\xff\xfe\n", "not UTF-8"),
])
def test_bed_bad_files_name_the_file(tmp_path, valid, data, match):
    path = write_input(tmp_path / "bad-peaks.bed", data)
    with pytest.raises(DataError, match=match) as e:
        read_bed_dataset(path, valid["valid-genome.fa"])
    assert "bad-peaks.bed" in str(e.value)


@pytest.mark.parametrize("data, match", [
    (b"", "holds no records"),
    (HTML_ERROR_PAGE, "is an HTML or XML page"),
    (GENOME.replace(b"ACGTACGTAACC", b"ACGTAC-TAACC", 1), r"invalid character '-'"),  # names the genome too
    (GENOME + b">chr2\nACGT\n", "chr2"),  # a duplicated chromosome
    (GENOME[:40], r"lies outside chromosome 'chr1' of length 28"),  # truncated
    (b"\n\n" + GENOME.replace(b"GGGG", b"GG\xffG"), "not UTF-8"),
])
def test_bed_bad_genome_names_the_genome(tmp_path, valid, data, match):
    path = write_input(tmp_path / "bad-genome.fa", data)
    with pytest.raises(DataError, match=match) as e:
        read_bed_dataset(valid["valid.bed"], path)
    assert "bad-genome.fa" in str(e.value)


# -- JASPAR / MEME / pfm ---------------------------------------------------------------------------------------


@fuzz_settings(max_examples=100)
@given(data=st.one_of(mutations(JASPAR), mutations(MEME), mutations(PFM)),
       fmt=st.sampled_from([None, "jaspar", "meme", "pfm"]))
def test_read_motifs_fuzzed(folder, data, fmt):
    path = write_input(folder / "fuzzed-motifs.txt", data)
    out = check_reader(lambda p: read_motifs(p, format=fmt), path)
    if out is not None:
        assert out and all(isinstance(m, Motif) for m in out)
        assert len({m.matrix_id for m in out}) == len(out)


@pytest.mark.parametrize("cut, match", [
    (JASPAR.rsplit(b"\n", 2)[0] + b"\n", r"line 9: motif MA9999\.1 Toy \(header on line 6\) ends with 3 of its 4 "
                                         r"rows \(A, C, G; T missing\)"),  # the last row lost
    (JASPAR[: JASPAR.index(b"C  [94")], r"line 2: motif MA0001\.1 AGL3 \(header on line 1\) ends with 1 of its 4"),
    (JASPAR[: JASPAR.index(b"4  3 ]")], r"line 3: motif MA0001\.1 AGL3 .*row C has 2 values but row A \(line 2\)"),
    (JASPAR[: JASPAR.index(b"\tToy") + 4] + b"\n", r"line 6: motif MA9999\.1 Toy has no rows"),
])
def test_truncated_jaspar_names_the_motif_and_line(tmp_path, cut, match):
    path = write_input(tmp_path / "cut.jaspar", cut)
    with pytest.raises(DataError, match=match) as e:
        read_motifs(path)
    assert "cut.jaspar" in str(e.value) and "truncated" in str(e.value)


BAD_JASPAR = [
    (b"", "holds no motifs"),
    (HTML_ERROR_PAGE, r"is an HTML or XML page"),
    (b"MA0001.1 AGL3\n" + JASPAR.split(b"\n", 1)[1],  # the first '>' lost: read as a pfm, and said so
     r"line 1: motif bad, row A: 'MA0001.1' is not a number \(read as a single 'pfm' motif"),
    (JASPAR.replace(b"79", b"nan"), r"line 1: motif MA0001\.1 AGL3: counts must be finite"),
    (JASPAR + JASPAR[: JASPAR.index(b">MA9999")], r"line 11: motif ID 'MA0001\.1' repeats that of line 1"),
    (JASPAR.replace(b"T  [ 2 19 11 50 ]", b"T  [ 2 19 11 50 ]\nT  [ 1 1 1 1 ]"), r"line 6: .*fifth row"),
]
BAD_MEME = [
    (MEME[: MEME.rindex(b"  0.000000  1.0")], r"line 12: motif MA9999\.1 Toy .*1 row but w= 2.*truncated"),
    (MEME[: MEME.index(b"letter-probability")], r"line 10: motif MA9999\.1 Toy has no letter-probability"),
    (MEME.replace(b"1.000000", b"nan", 1), r"line 10: motif MA9999\.1 Toy: counts must be finite"),
    (MEME + MEME[MEME.index(b"MOTIF noname"):], r"line 18: motif ID 'noname' repeats that of line 15"),
    (MEME.replace(b"ALPHABET= ACGT", b"ALPHABET= ACDEFGHIKLMNPQRSTVWY"), r"line 3: .*DNA"),
    (MEME.replace(b"0.250000  0.250000  0.250000  0.250000", b"0.25 0.25 0.25"), r"line 17: .*3 values"),
    (MEME.replace(b"MEME version 4", b"MEME version 4\n<html>"), r"line 2: .*<html>"),
]


@pytest.mark.parametrize("name, data, match", [("bad.jaspar", *case) for case in BAD_JASPAR]
                         + [("bad.meme", *case) for case in BAD_MEME])
def test_bad_motif_files_name_the_file_motif_and_line(tmp_path, name, data, match):
    path = write_input(tmp_path / name, data)
    with pytest.raises(DataError, match=match) as e:
        read_motifs(path)
    assert name in str(e.value)


# -- NPZ ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated():
    """A tiny koo2019 data set of three hand-made motifs (no JASPAR release needed)."""
    core = [Motif("MA1.1", "AA", [[9, 9], [0, 0], [1, 0], [0, 1]]),
            Motif("MA2.1", "CG", [[0, 0], [9, 0], [1, 9], [0, 1]])]
    others = [Motif("MA3.1", "TT", [[0, 0, 1], [0, 1, 0], [1, 0, 0], [9, 9, 9]])]
    return simulate_koo2019(6, length=12, core=core, others=others, seed=0)


@pytest.fixture(scope="module")
def npz(simulated, folder):
    return simulated.save_npz(folder / "valid.npz").read_bytes()


@pytest.fixture(scope="module")
def arrays(npz, folder):
    with np.load(folder / "valid.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@fuzz_settings(max_examples=80)
@given(data=st.data())
def test_load_npz_fuzzed_bytes(folder, npz, data):
    path = write_input(folder / "fuzzed-sim.npz", data.draw(mutations(npz)))
    _result(check_reader(SimulatedDataset.load_npz, path), SimulatedDataset)


@fuzz_settings(max_examples=80)
@given(data=st.data())
def test_load_npz_fuzzed_arrays(folder, arrays, data):
    path = write_input(folder / "fuzzed-arrays.npz", npz_bytes(data.draw(array_mutations(arrays))))
    ds = _result(check_reader(SimulatedDataset.load_npz, path), SimulatedDataset)
    if ds is not None:
        assert np.isfinite(ds.x).all() and np.isfinite(ds.y).all() and np.isfinite(ds.pwm_matrix).all()


@pytest.mark.parametrize("field", ["x", "y", "pwm_matrix"])
def test_load_npz_refuses_nan_naming_file_and_field(tmp_path, arrays, field):
    bad = dict(arrays)
    bad[field] = arrays[field].copy()
    bad[field].flat[3] = np.nan
    path = write_input(tmp_path / "nan.npz", npz_bytes(bad))
    with pytest.raises(DataError, match=rf"nan\.npz: '{field}' holds 1 non-finite value"):
        SimulatedDataset.load_npz(path)


@pytest.mark.parametrize("case, match", [
    ("empty", "not a readable NPZ file"),
    ("truncated", "not a readable NPZ file"),
    ("html", "not a readable NPZ file"),
    ("wrong magic", "not a readable NPZ file"),
    ("pickled", "not a readable NPZ file"),
    ("not one-hot", r"'x' is not one-hot"),
    ("motif index beyond", r"'motif_index' must lie in"),
])
def test_load_npz_bad_files_name_the_file(tmp_path, npz, arrays, case, match):
    path = tmp_path / f"{case.replace(' ', '-')}.npz"
    if case in ("not one-hot", "motif index beyond", "pickled"):
        bad = dict(arrays)
        if case == "not one-hot":
            bad["x"] = arrays["x"] * 2
        elif case == "motif index beyond":
            bad["motif_index"] = arrays["motif_index"] + 100
        else:
            bad["motif_names"] = np.array(list(arrays["motif_names"]), dtype=object)
        write_input(path, npz_bytes(bad))
    else:
        write_input(path, {"empty": b"", "truncated": npz[: len(npz) // 2], "html": HTML_ERROR_PAGE,
                           "wrong magic": b"\x00\x01" + npz[2:]}[case])
    with pytest.raises(DataError, match=match) as e:
        SimulatedDataset.load_npz(path)
    assert path.name in str(e.value)
