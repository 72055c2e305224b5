"""MNIST and Fashion-MNIST: the shared copies against the published content hashes, the loaders' counts and
normalisation, where the files are looked for (argument, environment variable, cache), and the checked download
(offline, file:// URLs: tiny synthetic corpora with their own hashes, then the real files)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import shutil

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError, DataError, DownloadError
from robustlab.vision.data.images import (
    DATASETS,
    MEAN_STD,
    SPLITS,
    check_files,
    dataset_path,
    load_images,
    to_tensor,
)

STEMS = [stem for pair in SPLITS.values() for stem in pair]


def _idx(array: np.ndarray) -> bytes:
    """``array`` (uint8) as IDX bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny MNIST-shaped corpus (gzipped IDX files in ``tmp_path/up``) that DATASETS["mnist"] is patched to
    expect: returns the folder and the arrays."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(12, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5], dtype=np.uint8),
    }
    up = tmp_path / "up"
    up.mkdir()
    hashes = {}
    for stem, a in arrays.items():
        raw = _idx(a)
        (up / f"{stem}.gz").write_bytes(gzip.compress(raw, mtime=0))
        hashes[stem] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], sha256=hashes))
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    return up, arrays


def test_datasets_describe_both_corpora():
    assert set(DATASETS) == {"mnist", "fashion_mnist"} and set(MEAN_STD) == set(DATASETS)
    for name, corpus in DATASETS.items():
        assert corpus.name == name and corpus.env_var == f"ROBUSTLAB_{name.upper()}"
        assert sorted(corpus.sha256) == sorted(STEMS) and all(len(h) == 64 for h in corpus.sha256.values())
        assert len(corpus.classes) == 10 and corpus.citation and corpus.licence and corpus.mirrors
        assert all(m.startswith(("https://", "http://")) and m.endswith("/") for m in corpus.mirrors)


def test_download_into_the_cache(tiny, tmp_path):
    up, arrays = tiny
    with pytest.raises(DataError, match=r"cache .* lacks train-images-idx3-ubyte.*download=True.*ROBUSTLAB_MNIST"):
        dataset_path("mnist", download=False)
    folder = dataset_path("mnist", mirrors=[up.as_uri()], progress=False)
    assert folder == tmp_path / "cache" / "vision" / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    x, y = load_images("mnist", "test", download=False)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x, arrays["t10k-images-idx3-ubyte"]) and y.tolist() == [3, 1, 4, 1, 5]
    # a second call finds the cache complete and asks nothing of the (now empty) source
    shutil.rmtree(up)
    assert dataset_path("mnist", mirrors=[up.as_uri()]) == folder


def test_download_accepts_another_gzip_of_the_same_content(tiny):
    """The hash is of the content: a source that compresses differently (as Debian's Fashion-MNIST) is accepted."""
    up, arrays = tiny
    stem = "train-images-idx3-ubyte"
    (up / f"{stem}.gz").write_bytes(gzip.compress(_idx(arrays[stem]), compresslevel=1, mtime=12345))
    folder = dataset_path("mnist", mirrors=[up.as_uri()], progress=False)
    assert np.array_equal(load_images("mnist", "train", folder)[0], arrays[stem])


def test_download_refuses_changed_content(tiny, tmp_path):
    up, arrays = tiny
    changed = arrays["t10k-labels-idx1-ubyte"].copy()
    changed[0] = 9
    (up / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(changed)))
    with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte.*SHA-256 of the uncompressed content"):
        dataset_path("mnist", mirrors=[up.as_uri()], progress=False)
    cache = tmp_path / "cache" / "vision" / "mnist"
    assert not (cache / "t10k-labels-idx1-ubyte.gz").exists()
    assert all(not p.name.startswith(".") for p in cache.iterdir()), "a temporary file was left behind"


def test_download_refuses_what_is_not_gzip(tiny):
    up, _ = tiny
    (up / "train-labels-idx1-ubyte.gz").write_bytes(b"<!DOCTYPE html><title>Forbidden</title>")
    with pytest.raises(DownloadError, match="an HTML page titled 'Forbidden'"):
        dataset_path("mnist", mirrors=[up.as_uri()], progress=False)
    (up / "train-labels-idx1-ubyte.gz").write_bytes(_idx(np.zeros(12, np.uint8)))  # not compressed
    with pytest.raises(DownloadError, match="magic number"):
        dataset_path("mnist", mirrors=[up.as_uri()], progress=False)


def test_download_tries_the_next_mirror(tiny, tmp_path):
    up, _ = tiny
    empty = tmp_path / "empty"
    empty.mkdir()
    assert dataset_path("mnist", mirrors=[empty.as_uri(), up.as_uri()], progress=False).is_dir()
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(DownloadError, match=r"any of its 2 source\(s\).*empty.*; .*empty"):
        dataset_path("mnist", mirrors=[empty.as_uri(), empty.as_uri()], progress=False)


def test_a_named_folder_is_read_in_place(tiny, tmp_path, monkeypatch):
    up, arrays = tiny
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv("ROBUSTLAB_MNIST", str(up))
    assert dataset_path("mnist") == up  # the environment variable, never downloaded into
    assert not (tmp_path / "cache").exists()
    with pytest.raises(DataError, match=r"folder .*other lacks train-images-idx3-ubyte\(\.gz\), "):
        dataset_path("mnist", other)  # the argument first
    monkeypatch.setenv("ROBUSTLAB_MNIST", str(other))
    with pytest.raises(DataError, match=r"\(from \$ROBUSTLAB_MNIST\) lacks"):
        dataset_path("mnist")
    with pytest.raises(DataError, match="does not exist"):
        dataset_path("mnist", tmp_path / "missing")
    # uncompressed files are read as well
    for stem, a in arrays.items():
        (other / stem).write_bytes(_idx(a))
    check_files("mnist", other)
    assert np.array_equal(load_images("mnist", "train")[1], arrays["train-labels-idx1-ubyte"])


def test_check_files_names_a_changed_file(tiny):
    up, arrays = tiny
    check_files("mnist", up)
    (up / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(arrays["t10k-images-idx3-ubyte"] // 2)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is not the published .* expected "):
        check_files("mnist", up)
    (up / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="cannot be read"):
        check_files("mnist", up)


def test_load_images_refuses_bad_files(tiny, tmp_path):
    up, arrays = tiny
    (up / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.array([1, 2, 10, 3, 4], np.uint8))))
    with pytest.raises(DataError, match="label 10 at position 2 is not a class"):
        load_images("mnist", "test", up)
    (up / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.array([1, 2], np.uint8))))
    with pytest.raises(DataError, match="holds 2 labels but .* holds 5 images"):
        load_images("mnist", "test", up)
    (up / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros((5, 2), np.uint8))))
    with pytest.raises(DataError, match=r"expected uint8 \(N,\)"):
        load_images("mnist", "test", up)
    with pytest.raises(ConfigError, match="unknown split 'valid'"):
        load_images("mnist", "valid", up)
    with pytest.raises(ConfigError, match="did you mean 'fashion_mnist'"):
        load_images("fashion-mnist", "test", up)


def test_to_tensor():
    x = np.array([[[0, 255]]], dtype=np.uint8)
    mean, std = MEAN_STD["fashion_mnist"]
    t = to_tensor(x, "fashion_mnist")
    assert t.shape == (1, 1, 1, 2) and t.dtype == torch.float32
    assert torch.allclose(t.flatten(), torch.tensor([-mean / std, (1 - mean) / std]))
    assert torch.equal(to_tensor(torch.from_numpy(x)[:, None], "fashion_mnist"), t)
    with pytest.raises(DataError, match="uint8"):
        to_tensor(x.astype(np.float32), "mnist")
    with pytest.raises(DataError, match=r"\(N, H, W\) or \(N, 1, H, W\)"):
        to_tensor(np.zeros((2, 3, 4, 4), np.uint8), "mnist")
    with pytest.raises(ConfigError, match="unknown vision dataset"):
        to_tensor(x, "cifar10")


# -- the real files -------------------------------------------------------------------------------------------

EXPECTED = {  # images per class in the training and test splits
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
              [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
}


@pytest.fixture(params=["mnist", "fashion_mnist"])
def real(request):
    return request.param, request.getfixturevalue(f"{request.param}_root")


@pytest.mark.realdata
def test_shared_copies_hold_the_published_content(real):
    check_files(*real)


@pytest.mark.realdata
def test_load_images_counts_and_normalisation(real, monkeypatch):
    name, root = real
    monkeypatch.setenv(DATASETS[name].env_var, str(root))
    for split, counts in zip(("train", "test"), EXPECTED[name]):
        x, y = load_images(name, split, download=False)
        assert x.shape == (sum(counts), 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
        assert np.bincount(y).tolist() == counts
    t = to_tensor(x[:5000], name)
    mean, std = MEAN_STD[name]
    train = load_images(name, "train", download=False)[0].astype(np.float64) / 255
    assert abs(train.mean() - mean) < 1e-4 and abs(train.std() - std) < 1e-4
    assert abs(float(t.mean())) < 0.05 and abs(float(t.std()) - 1) < 0.05


@pytest.mark.realdata
def test_mnist_first_test_labels(mnist_root):
    assert load_images("mnist", "test", mnist_root)[1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


@pytest.mark.realdata
def test_real_download_offline(real, tmp_path, monkeypatch):
    """The real files through the download path: MNIST's rebuilt train-images gzip and Fashion-MNIST's re-gzipped
    images (PROVENANCE.md) pass the content check."""
    name, root = real
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "cache"))
    folder = dataset_path(name, mirrors=[root.as_uri()], progress=False)
    assert folder == tmp_path / "cache" / "vision" / name
    assert all((folder / f"{s}.gz").read_bytes() == (root / f"{s}.gz").read_bytes() for s in STEMS)

