"""robustlab.genomics.data.fasta: FASTA + label tables, BED intervals on a genome, and their error messages."""

import gzip

import numpy as np
import pytest

from robustlab.common.errors import DataError
from robustlab.genomics.data.fasta import read_bed_dataset, read_fasta_dataset
from robustlab.genomics.data.onehot import decode

FASTA = ">s1 first record\nACGTACGT\n>s2\nAAAACCCC\n>s3\nacgtNNRY\n"
CHR1 = "ACGTACGTAACCGGTTAAAACCCCGGGGTTTTACGTACGTAACCGGTTAA"  # 50 bases
CHR2 = "GGGGGGGGGGCCCCCCCCCC"  # 20 bases
GENOME = f">chr1 test\n{CHR1[:25]}\n{CHR1[25:]}\n>chr2\n{CHR2}\n"


def write(path, text):
    path.write_text(text)
    return path


def revcomp(s):
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


@pytest.fixture
def fasta(tmp_path):
    return write(tmp_path / "seqs.fa", FASTA)


@pytest.fixture
def genome(tmp_path):
    return write(tmp_path / "genome.fa", GENOME)


# -- FASTA + table --------------------------------------------------------------------------------------------


def test_fasta_with_csv_labels_in_fasta_order(fasta, tmp_path):
    labels = write(tmp_path / "labels.csv", "id,bound,signal\ns3,0,0.5\ns1,1,2.5\ns2,1,-1\n")
    ds = read_fasta_dataset(fasta, labels)
    assert ds.ids == ("s1", "s2", "s3") and ds.label_names == ("bound", "signal")
    assert ds.x.shape == (3, 4, 8) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [[1, 2.5], [1, -1], [0, 0.5]])
    assert decode(ds.x) == ["ACGTACGT", "AAAACCCC", "ACGTNNRY"]
    np.testing.assert_allclose(ds.x[2, :, 4], 0.25)
    assert len(ds) == 3 and len(ds.to_dataset()) == 3


def test_tsv_labels_custom_id_and_columns(fasta, tmp_path):
    labels = write(tmp_path / "labels.tsv", "name\ta\tb\ns1\t1\t10\ns2\t2\t20\ns3\t3\t30\n")
    ds = read_fasta_dataset(fasta, labels, id_column="name", label_columns=["b"])
    np.testing.assert_array_equal(ds.y, [[10], [20], [30]])
    with pytest.raises(DataError, match=r"labels.tsv has no id column 'id'; its columns are \['name', 'a', 'b'\]"):
        read_fasta_dataset(fasta, labels)
    with pytest.raises(DataError, match="has no column 'c'"):
        read_fasta_dataset(fasta, labels, id_column="name", label_columns=["c"])


def test_unlabelled_and_gzipped_fasta(tmp_path):
    gz = tmp_path / "seqs.fa.gz"
    with gzip.open(gz, "wt") as f:
        f.write(FASTA)
    ds = read_fasta_dataset(gz)
    assert ds.y.shape == (3, 0) and ds.label_names == ()
    assert ds.ids == ("s1", "s2", "s3")


def test_ids_missing_on_either_side_are_named(fasta, tmp_path):
    extra = write(tmp_path / "extra.csv", "id,y\ns1,1\ns2,0\ns3,1\ns4,0\n")
    with pytest.raises(DataError, match=r"1 id\(s\) of label table .*extra.csv are not in FASTA file .*seqs.fa: 's4'"):
        read_fasta_dataset(fasta, extra)
    fewer = write(tmp_path / "fewer.csv", "id,y\ns1,1\n")
    with pytest.raises(DataError, match=r"2 id\(s\) of FASTA file .*seqs.fa are not in label table .*fewer.csv: 's2', 's3'"):
        read_fasta_dataset(fasta, fewer)


def test_duplicated_ids_are_named(fasta, tmp_path):
    dup_fasta = write(tmp_path / "dup.fa", FASTA + ">s2\nACGTACGT\n>s1\nACGTACGT\n")
    with pytest.raises(DataError, match=r"dup.fa has duplicated ids: 's2', 's1'"):
        read_fasta_dataset(dup_fasta)
    dup_labels = write(tmp_path / "dup.csv", "id,y\ns1,1\ns2,0\ns3,1\ns3,0\n")
    with pytest.raises(DataError, match=r"label table .*dup.csv has duplicated ids: 's3'"):
        read_fasta_dataset(fasta, dup_labels)


def test_ragged_lengths_and_padding(tmp_path):
    ragged = write(tmp_path / "ragged.fa", ">a\nACGTACGT\n>b\nACGTACGT\n>c\nACGTA\n")
    with pytest.raises(DataError) as e:
        read_fasta_dataset(ragged)
    msg = str(e.value)
    assert "ragged.fa" in msg and "'c'" in msg and "length 5" in msg and "'a'" in msg and "length 8" in msg
    ds = read_fasta_dataset(ragged, pad_to=10)
    assert ds.x.shape == (3, 4, 10)
    np.testing.assert_array_equal(ds.x[2].sum(axis=0), [1] * 5 + [0] * 5)


def test_invalid_character_names_record_position_character(tmp_path):
    bad = write(tmp_path / "bad.fa", ">ok\nACGTACGT\n>broken\nACGTAC-T\n")
    with pytest.raises(DataError, match=r"bad.fa: record 'broken' \(index 1\) has the invalid character '-' at position 6"):
        read_fasta_dataset(bad)
    with pytest.raises(DataError, match=r"record 's3' \(index 2\) has the invalid character 'N' at position 4"):
        read_fasta_dataset(write(tmp_path / "n.fa", FASTA), ambiguity="error")


def test_bad_label_values_and_files(fasta, tmp_path):
    labels = write(tmp_path / "labels.csv", "id,y\ns1,1\ns2,yes\ns3,0\n")
    with pytest.raises(DataError, match=r"labels.csv, line 3 \(id 's2'\), column 'y': 'yes' is not a number"):
        read_fasta_dataset(fasta, labels)
    with pytest.raises(DataError, match="unknown type '.json'"):
        read_fasta_dataset(fasta, write(tmp_path / "labels.json", "{}"))
    with pytest.raises(DataError, match="holds no records"):
        read_fasta_dataset(write(tmp_path / "empty.fa", ""))
    with pytest.raises(DataError, match="does not exist"):
        read_fasta_dataset(tmp_path / "missing.fa")


# -- BED ------------------------------------------------------------------------------------------------------


def test_bed_intervals_strands_and_score_labels(genome, tmp_path):
    bed = write(tmp_path / "peaks.bed", "track name=x\n# comment\n"
                "chr1\t0\t10\tpeak1\t1\t+\nchr1\t40\t50\tpeak2\t0\t-\nchr2\t5\t15\tpeak3\t1\t.\n")
    ds = read_bed_dataset(bed, genome)
    assert ds.ids == ("peak1", "peak2", "peak3") and ds.label_names == ("score",)
    np.testing.assert_array_equal(ds.y, [[1], [0], [1]])
    assert decode(ds.x) == [CHR1[0:10], revcomp(CHR1[40:50]), CHR2[5:15]]


def test_bed_label_columns_and_coordinate_ids(genome, tmp_path):
    bed = write(tmp_path / "three.bed", "chr1\t0\t5\nchr2\t0\t5\n")
    ds = read_bed_dataset(bed, genome)
    assert ds.ids == ("chr1:0-5", "chr2:0-5") and ds.y.shape == (2, 0)
    named = write(tmp_path / "named.bed", "chr1 0 5 1 7 + 0.5\nchr1 5 10 0 3 + 1.5\n")
    ds = read_bed_dataset(named, genome, label_columns=["name", 6])
    assert ds.ids == ("chr1:0-5", "chr1:5-10") and ds.label_names == ("name", "6")
    np.testing.assert_array_equal(ds.y, [[1, 0.5], [0, 1.5]])
    with pytest.raises(DataError, match="unknown BED label column 'strand'"):
        read_bed_dataset(named, genome, label_columns=["strand"])


def test_bed_with_label_table(genome, tmp_path):
    bed = write(tmp_path / "p.bed", "chr1\t0\t10\tpeak1\nchr2\t0\t10\tpeak2\n")
    table = write(tmp_path / "p.tsv", "id\tcell_a\tcell_b\npeak2\t1\t0\npeak1\t0\t1\n")
    ds = read_bed_dataset(bed, genome, labels=table)
    np.testing.assert_array_equal(ds.y, [[0, 1], [1, 0]])
    bad_table = write(tmp_path / "q.tsv", "id\tcell_a\npeak1\t1\npeak9\t0\n")
    with pytest.raises(DataError, match=r"label table .*q.tsv are not in BED file .*p.bed: 'peak9'"):
        read_bed_dataset(bed, genome, labels=bad_table)


def test_bed_errors(genome, tmp_path):
    outside = write(tmp_path / "outside.bed", "chr1\t0\t10\nchr2\t15\t25\n")
    with pytest.raises(DataError, match=r"outside.bed, line 2: interval chr2:15-25 lies outside chromosome "
                                         r"'chr2' of length 20"):
        read_bed_dataset(outside, genome)
    unknown = write(tmp_path / "unknown.bed", "chrX\t0\t10\n")
    with pytest.raises(DataError, match=r"line 1: chromosome 'chrX' is not in genome FASTA .*'chr1', 'chr2'"):
        read_bed_dataset(unknown, genome)
    for text, match in [("chr1\t0\n", "at least 3 columns"), ("chr1\ta\t10\n", "must be integers"),
                        ("chr1\t10\t10\n", "empty or negative"), ("chr1\t0\t10\tx\t1\t*\n", "strand")]:
        with pytest.raises(DataError, match=match):
            read_bed_dataset(write(tmp_path / "bad.bed", text), genome)
    dup = write(tmp_path / "dup.bed", "chr1\t0\t10\tp\nchr1\t10\t20\tp\n")
    with pytest.raises(DataError, match="duplicated ids: 'p'"):
        read_bed_dataset(dup, genome)
    ragged = write(tmp_path / "ragged.bed", "chr1\t0\t10\nchr1\t0\t12\n")
    with pytest.raises(DataError, match=r"'chr1:0-12' \(index 1\) has length 12"):
        read_bed_dataset(ragged, genome)
    assert read_bed_dataset(ragged, genome, pad_to=12).x.shape == (2, 4, 12)
    with pytest.raises(DataError, match="genome FASTA .*nogenome.fa does not exist"):
        read_bed_dataset(ragged, tmp_path / "nogenome.fa")
