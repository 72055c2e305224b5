"""Fuzzing the readers of robustlab.common (IDX, checkpoints, TOML run files) and robustlab.common.testing.fuzz.

Every reader, given random bytes or a mutated valid file, returns a valid result or raises a robustlab error
naming the file; each class of bad input named in the issue also has a readable test of its own.
"""

from __future__ import annotations

import doctest
import gzip
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from robustlab.common.checkpoint import load_checkpoint, save_checkpoint
from robustlab.common.config import load_toml
from robustlab.common.data import read_idx
from robustlab.common.errors import CheckpointError, ConfigError, DataError
from robustlab.common.testing import fuzz
from robustlab.common.testing.fuzz import (
    HTML_ERROR_PAGE,
    array_mutations,
    check_reader,
    fuzz_settings,
    mutations,
    write_input,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _idx(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


IDX_IMAGES = _idx(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3), 0x08)
IDX_FLOATS = _idx(np.array([[0.5, -1.0], [2.0, 3.5]], dtype=">f4"), 0x0D)
TOML = b'epochs = 12\neps = [0.1, 0.2]\nname = "toml run"\n\n[optim]\nlr = 0.05\nmomentum = 0.9\n'


# -- the fuzz module itself -----------------------------------------------------------------------------------


def test_check_reader_passes_results_and_named_errors_and_fails_the_rest(folder):
    path = write_input(folder / "probe.bin", b"x")
    assert check_reader(lambda p: p.read_bytes(), path) == b"x"

    def named(p):
        raise DataError(f"{p} is bad")

    assert check_reader(named, path) is None

    def anonymous(p):
        raise DataError("something is bad")

    with pytest.raises(AssertionError, match=r"(?s)without naming probe\.bin.*input: b'x'"):
        check_reader(anonymous, path)

    def escapes(p):
        raise KeyError("deep inside")

    with pytest.raises(AssertionError, match=r"let KeyError escape on probe\.bin") as e:
        check_reader(escapes, path)
    assert isinstance(e.value.__cause__, KeyError)  # chained, so Hypothesis tells failures apart
    write_input(path, None)
    assert not path.exists()
    with pytest.raises(AssertionError, match=r"\(missing file\)"):
        check_reader(escapes, path)


@fuzz_settings(max_examples=100)
@given(data=mutations(b">a\nACGT\n>b\nAC 1.5\n", missing=True))
def test_mutations_are_bytes_or_missing(data):
    assert data is None or isinstance(data, bytes)


def test_mutations_cover_the_classes_of_bad_input():
    """Each class can be drawn (find() searches until an example matches)."""
    from hypothesis import find

    valid = b">a 1\nACGT\n>b 2\nACGG\n"
    strategy = mutations(valid)
    options = fuzz_settings(max_examples=2000)
    assert find(strategy, lambda b: b == b"", settings=options) == b""
    assert find(strategy, lambda b: b == HTML_ERROR_PAGE, settings=options) == HTML_ERROR_PAGE
    assert b"nan" in find(strategy, lambda b: b"nan" in b.lower(), settings=options).lower()
    record_twice = b">a 1\nACGT\n>a 1\nACGT\n>b 2\nACGG\n"
    assert find(strategy, lambda b: b == record_twice, settings=options) == record_twice
    assert find(strategy, lambda b: 0 < len(b) < len(valid) and valid.startswith(b), settings=options)
    assert find(strategy, lambda b: b"\r\n" in b, settings=options)


@fuzz_settings(max_examples=60)
@given(arrays=array_mutations({"x": np.ones((3, 2), np.float32), "idx": np.array([0, 5, 9])}))
def test_array_mutations_change_one_field(arrays):
    assert set(arrays) <= {"x", "idx"}
    assert all(isinstance(a, np.ndarray) for a in arrays.values())


def test_fuzz_module_example_runs():
    result = doctest.testmod(fuzz, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted and result.failed == 0


# -- IDX ------------------------------------------------------------------------------------------------------


@fuzz_settings(max_examples=100)
@given(data=st.one_of(mutations(IDX_IMAGES), mutations(IDX_FLOATS)), compressed=st.booleans())
def test_read_idx_fuzzed(folder, data, compressed):
    path = folder / ("fuzzed-images-idx3-ubyte" + (".gz" if compressed else ""))
    write_input(path, gzip.compress(data) if compressed else data)
    out = check_reader(read_idx, path)
    assert out is None or isinstance(out, np.ndarray)


@fuzz_settings(max_examples=60)
@given(data=mutations(gzip.compress(IDX_IMAGES)))
def test_read_idx_fuzzed_gzip_stream(folder, data):
    check_reader(read_idx, write_input(folder / "fuzzed-stream-idx3-ubyte.gz", data))


@pytest.mark.parametrize("data, match", [
    (b"", "not an IDX file"),
    (HTML_ERROR_PAGE, r"not an IDX file .*HTML page"),
    (b"\x00\x00\x07" + IDX_IMAGES[3:], r"bad magic number 00000703"),  # an unknown type code
    (IDX_IMAGES[:-5], "truncated or corrupt"),
    (b"\x00\x00\x08\x03" + b"\xff" * 12, "truncated or corrupt"),  # a declared size of 2**96 bytes
    (b"\x00\x00\x08\xff" + b"\x00" * 4, "truncated or corrupt"),  # 255 dimensions, header cut short
])
def test_read_idx_bad_files_name_the_file(tmp_path, data, match):
    path = write_input(tmp_path / "bad-idx3-ubyte", data)
    with pytest.raises(DataError, match=match) as e:
        read_idx(path)
    assert "bad-idx3-ubyte" in str(e.value)


def test_read_idx_corrupt_gzip_stream_names_the_file(tmp_path):
    data = bytearray(gzip.compress(IDX_IMAGES * 50))
    data[len(data) // 2] ^= 0xFF  # a flipped bit inside the deflate stream
    data[-8] ^= 0xFF  # and a wrong CRC
    path = write_input(tmp_path / "flipped.gz", bytes(data))
    with pytest.raises(DataError, match=r"flipped\.gz"):
        read_idx(path)
    path = write_input(tmp_path / "cut.gz", gzip.compress(IDX_IMAGES)[:-10])
    with pytest.raises(DataError, match=r"cut\.gz"):
        read_idx(path)


# -- checkpoints ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_bytes(folder):
    path = save_checkpoint(folder / "valid.pt", {"epoch": 3, "model": {"w": torch.arange(6.0).reshape(2, 3)},
                                                 "history": [0.5, 0.25], "name": "run"})
    return path.read_bytes()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's, on corrupt files
@fuzz_settings(max_examples=80)
@given(data=st.data())
def test_load_checkpoint_fuzzed(folder, checkpoint_bytes, data):
    path = write_input(folder / "fuzzed.pt", data.draw(mutations(checkpoint_bytes)))
    out = check_reader(load_checkpoint, path)
    assert out is None or out["format"] == "robustlab-checkpoint"


@pytest.fixture(scope="module")
def model_file_bytes(folder):
    from robustlab.common.modelfile import save_model
    from robustlab.common.models import MLP

    return save_model(MLP(3, 2, hidden=(4,)), folder / "model.pt", preprocessing={"scale": 2.0}).read_bytes()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@fuzz_settings(max_examples=60)
@given(data=st.data())
def test_load_model_fuzzed(folder, model_file_bytes, data):
    from robustlab.common.modelfile import load_model

    path = write_input(folder / "fuzzed-model.pt", data.draw(mutations(model_file_bytes)))
    out = check_reader(load_model, path)
    assert out is None or out.model(torch.zeros(1, 3)).shape == (1, 2)


@fuzz_settings(max_examples=60)
@given(field=st.sampled_from(["class", "args", "preprocessing", "metadata", "weights"]),
       value=st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.integers(), max_size=3),
                       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                       st.sampled_from([  # valid JSON or class paths with values the class refuses
                           '{"in_features": -1, "num_classes": 2}', '{"in_features": 3, "num_classes": 2, '
                           '"hidden": [1e9]}', '{"in_features": 3, "num_classes": 2, "hidden": [4], "x": 1}', "[]",
                           "{}", '"x"', "robustlab.common.modelfile:torch.nn.Identity",
                           "robustlab.common.models:SmallCNN", "robustlab.common.models.mlp:MLP.__base__"])))
def test_load_model_with_damaged_fields(folder, model_file_bytes, field, value):
    """A readable file whose fields are replaced by other values: only CheckpointError, naming the file."""
    from robustlab.common.checkpoint import read_payload
    from robustlab.common.modelfile import load_model

    path = write_input(folder / "damaged-model.pt", model_file_bytes)
    payload = read_payload(path)
    payload[field] = value
    torch.save(payload, path)
    check_reader(load_model, path, errors=(CheckpointError,))


class _Evil:
    def __reduce__(self):
        return (print, ("never",))


@pytest.mark.parametrize("case", ["empty", "truncated", "html", "foreign", "pickled object", "random"])
def test_load_checkpoint_bad_files_name_the_file_and_never_suggest_unsafe_loading(tmp_path, checkpoint_bytes,
                                                                                 case):
    path = tmp_path / f"{case.replace(' ', '-')}.pt"
    if case == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    elif case == "pickled object":
        torch.save({"format": "robustlab-checkpoint", "obj": _Evil()}, path)
    else:
        write_input(path, {"empty": b"", "truncated": checkpoint_bytes[: len(checkpoint_bytes) // 2],
                           "html": HTML_ERROR_PAGE, "random": bytes(range(256)) * 4}[case])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert path.name in msg
    assert "weights_only" not in msg and "trust" not in msg, msg


# -- TOML -----------------------------------------------------------------------------------------------------


@fuzz_settings(max_examples=100)
@given(data=mutations(TOML))
def test_load_toml_fuzzed(folder, data):
    out = check_reader(load_toml, write_input(folder / "fuzzed-run.toml", data))
    assert out is None or isinstance(out, dict)


@pytest.mark.parametrize("data, match", [
    (b"\xff\xfe not utf-8 = 1\n", "UTF-8"),
    (HTML_ERROR_PAGE, "not valid TOML"),
    (TOML[: TOML.index(b"0.2]")], "not valid TOML"),  # truncated inside an array
    (b"[optim]\nlr = 1\n[optim]\nlr = 2\n", "not valid TOML"),  # a duplicated table
    (b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested"),
])
def test_load_toml_bad_files_name_the_file(tmp_path, data, match):
    path = write_input(tmp_path / "bad-run.toml", data)
    with pytest.raises(ConfigError, match=match) as e:
        load_toml(path)
    assert "bad-run.toml" in str(e.value)


def test_load_toml_empty_file_and_nan_are_read_as_written(tmp_path):
    """TOML has nan and inf literals; the fields' checks (apply_overrides) judge them, not the reader."""
    assert load_toml(write_input(tmp_path / "empty.toml", b"")) == {}
    assert math.isnan(load_toml(write_input(tmp_path / "nan.toml", b"lr = nan\n"))["lr"])
    with pytest.raises(ConfigError, match="folder.toml"):
        load_toml((tmp_path / "folder.toml").mkdir() or tmp_path / "folder.toml")
