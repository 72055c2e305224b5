"""Data utilities: the data folder, ArrayDataset and the IDX reader, including their errors."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from robustlab.common.data import ENV_VAR, ArrayDataset, CycledDataset, data_dir, read_idx
from robustlab.common.errors import DataError

# --- data_dir -----------------------------------------------------------------------------------------------


def test_data_dir_honours_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "store"))
    assert ENV_VAR == "ROBUSTLAB_DATA"
    assert data_dir() == tmp_path / "store"
    assert data_dir("mnist", "raw") == tmp_path / "store" / "mnist" / "raw"
    assert not (tmp_path / "store").exists(), "nothing is created unless create=True"


def test_data_dir_falls_back_to_the_xdg_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir("x") == tmp_path / "cache" / "robustlab" / "x"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "robustlab"
    assert list(tmp_path.iterdir()) == []


def test_data_dir_creates_on_request(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "store"))
    path = data_dir("a", "b", create=True)
    assert path.is_dir() and path == tmp_path / "store" / "a" / "b"


# --- ArrayDataset -------------------------------------------------------------------------------------------


def test_array_dataset_serves_dicts_and_collates():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 1, 0])
    mask = np.ones((6, 2), dtype=bool)
    ds = ArrayDataset(x, y, mask=mask, meta={"record": np.arange(6) + 100})
    assert len(ds) == 6
    sample = ds[2]
    assert set(sample) == {"x", "y", "index", "mask", "meta"}
    assert sample["x"].dtype == torch.float32, "float64 arrays become float32"
    assert sample["y"].item() == 0 and sample["index"] == 2 and sample["meta"]["record"].item() == 102
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["x"].shape == (4, 2) and batch["y"].tolist() == [0, 1, 0, 1]
    assert batch["meta"]["record"].tolist() == [100, 101, 102, 103]
    assert set(ArrayDataset(torch.zeros(3, 1), torch.zeros(3))[0]) == {"x", "y", "index"}


def test_cycled_dataset_oversamples_whole_batches_and_keeps_indices():
    ds = CycledDataset(ArrayDataset(np.arange(5.0)[:, None], np.array([0, 1, 0, 1, 1])), 12)
    assert len(ds) == 12
    seen = [int(ds[i]["index"]) for i in range(12)]
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1], "sample i is data[i % len(data)], index kept"
    batches = list(DataLoader(ds, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(b["x"]) for b in batches] == [4, 4, 4], "every batch is whole"
    counts = np.bincount(torch.cat([b["index"] for b in batches]).numpy(), minlength=5)
    assert counts.sum() == 12 and counts.min() >= 2 and counts.max() <= 3, counts
    assert len(list(ds)) == 12, "iteration stops at the end (IndexError past it)"
    assert int(ds[-1]["index"]) == 1
    with pytest.raises(IndexError, match="index 12 out of range for length 12"):
        ds[12]


@pytest.mark.parametrize("length, message", [(3, "length must be an int >= len(data) = 5, got 3"),
                                             (7.5, "got 7.5")])
def test_cycled_dataset_rejects_a_short_length(length, message):
    with pytest.raises(DataError, match=re.escape(message)):
        CycledDataset(ArrayDataset(np.zeros((5, 1))), length)
    with pytest.raises(DataError, match="empty"):
        CycledDataset(ArrayDataset(np.zeros((0, 1))), 4)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"y": np.zeros(5)}, "'y' has 5 samples but 'x' has 4"),
        ({"mask": np.zeros(3)}, "'mask' has 3 samples but 'x' has 4"),
        ({"meta": {"record": np.zeros(2)}}, "meta['record'] has 2 samples but 'x' has 4"),
    ],
)
def test_array_dataset_length_mismatch_names_the_field(kwargs, field):
    options = {"y": np.zeros(4), **kwargs}
    y = options.pop("y")
    with pytest.raises(DataError, match=re.escape(field)):
        ArrayDataset(np.zeros((4, 3)), y, **options)


def test_array_dataset_rejects_object_arrays():
    with pytest.raises(DataError, match="'x' must be a numeric array"):
        ArrayDataset(np.array([[1], "a"], dtype=object), np.zeros(2))


# --- read_idx -----------------------------------------------------------------------------------------------

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
          np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def _idx_bytes(arr: np.ndarray) -> bytes:
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    header = bytes([0, 0, _CODES[big.dtype], arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + big.tobytes()


def test_read_idx_round_trips_uint8(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(_idx_bytes(images))
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (5, 4, 3)
    np.testing.assert_array_equal(out, images)


def test_read_idx_reads_gzip_and_big_endian_types(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx(path), labels)
    for dtype in (">i4", ">f4", ">f8", ">i2", "int8"):
        arr = (np.arange(6).reshape(2, 3) - 2).astype(dtype)
        p = tmp_path / f"a-{dtype.strip('>')}.idx"
        p.write_bytes(_idx_bytes(arr))
        out = read_idx(p)
        assert out.dtype.isnative and out.dtype.kind == arr.dtype.kind and out.dtype.itemsize == arr.dtype.itemsize
        np.testing.assert_array_equal(out, arr)


def test_read_idx_truncated_file_names_the_path(tmp_path):
    path = tmp_path / "truncated-idx3-ubyte"
    path.write_bytes(_idx_bytes(np.zeros((4, 5), dtype=np.uint8))[:-3])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value) and "(4, 5)" in str(info.value)


def test_read_idx_bad_magic_names_the_path(tmp_path):
    path = tmp_path / "not-idx.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(16))
    with pytest.raises(DataError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(short)


def test_read_idx_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz")
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot be read") as info:
        read_idx(bad)
    assert str(bad) in str(info.value)


def test_array_dataset_of_unlabelled_inputs_and_batch_indexing():
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    from robustlab.common.data import ArrayDataset

    ds = ArrayDataset(torch.arange(10.0)[:, None])
    assert set(ds[3]) == {"x", "index"} and ds[3]["index"] == 3
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["index"].tolist() == [0, 1, 2, 3]
    whole = DataLoader(ArrayDataset(torch.randn(6, 2), torch.arange(6)), batch_size=None,
                       sampler=BatchSampler(SequentialSampler(range(6)), batch_size=6, drop_last=False))
    b = next(iter(whole))
    assert isinstance(b["index"], torch.Tensor) and b["index"].tolist() == list(range(6))
    assert torch.equal(b["y"], torch.arange(6))


# --- cache ------------------------------------------------------------------------------------------------------


def test_fingerprint_follows_the_files_and_the_parameters(tmp_path):
    import os

    from robustlab.common.data.cache import fingerprint

    (tmp_path / "a.dat").write_bytes(b"12345")
    key = fingerprint(tmp_path, ["a.dat"], version=1)
    assert key == fingerprint(tmp_path, ["a.dat"], version=1)
    assert key != fingerprint(tmp_path, ["a.dat"], version=2)
    st = (tmp_path / "a.dat").stat()
    os.utime(tmp_path / "a.dat", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert key != fingerprint(tmp_path, ["a.dat"], version=1), "a touched file builds a new entry"
    with pytest.raises(FileNotFoundError):
        fingerprint(tmp_path, ["missing.dat"])


def test_load_or_build_rebuilds_an_entry_that_does_not_read(tmp_path):
    from robustlab.common.data.cache import load_or_build

    def load(p):
        text = p.read_text()
        if not text.startswith("ok:"):
            raise DataError(f"{p} is not a cache entry")
        return text

    path = tmp_path / "entry.txt"
    path.write_text("garbage")
    builds = []
    kwargs = {"load": load, "build": lambda: builds.append(1) or "ok:data", "save": lambda v, p: p.write_text(v),
              "what": "toy set"}
    with pytest.warns(RuntimeWarning, match="the cached toy set .*entry.txt does not read"):
        assert load_or_build(path, **kwargs) == "ok:data"
    assert load_or_build(path, **kwargs) == "ok:data" and len(builds) == 1, "the rebuilt entry is read back"
    assert load_or_build(None, **kwargs) == "ok:data" and len(builds) == 2, "no path: built, nothing saved"

