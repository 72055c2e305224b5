"""robustlab.genomics.data.onehot: round trips, the IUPAC policy, padding and errors naming the record."""

import numpy as np
import pytest
import torch

from robustlab.common.errors import DataError
from robustlab.genomics.data.onehot import ALPHABET, decode, one_hot

# code -> expected (A, C, G, T) column under the default policy
IUPAC_CASES = [
    ("A", (1, 0, 0, 0)), ("C", (0, 1, 0, 0)), ("G", (0, 0, 1, 0)), ("T", (0, 0, 0, 1)),
    ("N", (0.25, 0.25, 0.25, 0.25)),
    ("R", (0.5, 0, 0.5, 0)), ("Y", (0, 0.5, 0, 0.5)), ("S", (0, 0.5, 0.5, 0)),
    ("W", (0.5, 0, 0, 0.5)), ("K", (0, 0, 0.5, 0.5)), ("M", (0.5, 0.5, 0, 0)),
    ("B", (0, 1 / 3, 1 / 3, 1 / 3)), ("D", (1 / 3, 0, 1 / 3, 1 / 3)),
    ("H", (1 / 3, 1 / 3, 0, 1 / 3)), ("V", (1 / 3, 1 / 3, 1 / 3, 0)),
]


def random_sequences(n, length, seed=0):
    rng = np.random.default_rng(seed)
    return ["".join(row) for row in np.array(list(ALPHABET))[rng.integers(0, 4, (n, length))]]


def test_shape_dtype_and_channels():
    x = one_hot(["ACGT", "TTAA"])
    assert x.shape == (2, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0], np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(x[1].argmax(0), [3, 3, 0, 0])


def test_round_trip_random_sequences():
    seqs = random_sequences(300, 57)
    x = one_hot(seqs)
    assert decode(x) == seqs
    np.testing.assert_array_equal(x.sum(axis=1), 1)


@pytest.mark.parametrize(("code", "column"), IUPAC_CASES)
def test_iupac_policy(code, column):
    for c in (code, code.lower()):
        x = one_hot([c])
        np.testing.assert_allclose(x[0, :, 0], column, rtol=0, atol=1e-7)
        assert decode(x) == [code]  # ties decode to the IUPAC code of the tied bases


def test_lowercase_soft_masked_equals_uppercase():
    np.testing.assert_array_equal(one_hot(["acgtnRy"]), one_hot(["ACGTNRY"]))


def test_ambiguity_error_rejects_every_non_acgt():
    one_hot(["ACGTacgt"], ambiguity="error")
    with pytest.raises(DataError, match=r"record 1 has the invalid character 'N' at position 2"):
        one_hot(["ACGT", "ACNT"], ambiguity="error")
    with pytest.raises(DataError, match=r"'r' at position 0"):
        one_hot(["rCGT"], ambiguity="error")


@pytest.mark.parametrize("bad", ["U", "-", ".", "X", "1", " ", "é"])
def test_invalid_character_names_record_position_and_character(bad):
    seq = "ACGTA" + bad + "CG"
    with pytest.raises(DataError) as e:
        one_hot(["ACGTACCG", seq], ids=["first", "second"])
    msg = str(e.value)
    assert "'second'" in msg and "index 1" in msg and "position 5" in msg and repr(bad) in msg


def test_ragged_lengths_error_names_record_and_both_lengths():
    with pytest.raises(DataError) as e:
        one_hot(["ACGT", "ACGT", "ACG"], ids=["a", "b", "c"])
    msg = str(e.value)
    assert "'c'" in msg and "length 3" in msg and "'a'" in msg and "length 4" in msg and "pad_to" in msg


def test_pad_to_pads_with_zero_columns_and_never_truncates():
    x = one_hot(["ACG", "A", ""], pad_to=5)
    assert x.shape == (3, 4, 5)
    np.testing.assert_array_equal(x.sum(axis=1), [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    assert decode(x) == ["ACG", "A", ""]
    with pytest.raises(DataError, match=r"record 'long' \(index 1\) has length 6, longer than pad_to=5"):
        one_hot(["ACG", "ACGTAC"], pad_to=5, ids=["short", "long"])
    with pytest.raises(DataError, match="position 1"):  # invalid characters are still caught when padding
        one_hot(["AXG", "A"], pad_to=4)


def test_inputs_bytes_and_seq_objects():
    from Bio.Seq import Seq

    np.testing.assert_array_equal(one_hot([b"ACGT", Seq("ACGT")]), one_hot(["ACGT", "ACGT"]))


def test_empty_and_bad_arguments():
    assert one_hot([]).shape == (0, 4, 0)
    assert one_hot([], pad_to=7).shape == (0, 4, 7)
    with pytest.raises(TypeError, match=r"one_hot\(\[seq\]\)"):
        one_hot("ACGT")
    with pytest.raises(ValueError, match="ambiguity"):
        one_hot(["ACGT"], ambiguity="zeros")


def test_decode_argmax_single_and_tensor():
    scores = np.array([[[0.1, 0.7, 0.0], [0.2, 0.1, 0.0], [0.6, 0.1, 0.0], [0.1, 0.1, 0.0]]])
    assert decode(scores) == ["GA"]  # trailing all-zero column is padding
    x = one_hot(["ACGTN"])
    assert decode(x[0]) == "ACGTN"
    assert decode(torch.from_numpy(x)) == ["ACGTN"]
    with pytest.raises(DataError, match="shape"):
        decode(np.zeros((2, 3, 5)))


def test_one_hot_is_fast_enough():
    """30,000 sequences of length 200 (the benchmark's size) in well under the 5 s budget."""
    import time

    seqs = random_sequences(30000, 200)
    t0 = time.perf_counter()
    one_hot(seqs)
    assert time.perf_counter() - t0 < 3.0
