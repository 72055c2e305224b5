"""MNIST and Fashion-MNIST: 28 x 28 grey images in ten classes, 60,000 for training and 10,000 for testing, read
from the four IDX files each corpus is published as.

Where the files come from, in this order (:func:`dataset_path`):

1. a folder passed as ``data_dir``;
2. the folder named by the corpus' environment variable (``ROBUSTLAB_MNIST``, ``ROBUSTLAB_FASHION_MNIST``);
3. the robustlab cache (``robustlab.common.data.data_dir("vision", name)``), where missing files are downloaded
   from the official sites (and their mirrors, tried in order) with :func:`robustlab.common.data.download`.

A folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each gzipped (``.gz``, as published) or not.

Checksums are of the UNCOMPRESSED IDX content (SHA-256), not of the ``.gz`` files: the same content is gzipped
differently by different sources (Debian's ``dataset-fashion-mnist`` package re-gzips the images without the file
name in the header, rebuilt copies of MNIST use another compression level), and only the content is what the
loaders read. The hashes below were computed from copies whose uncompressed MD5s equal the ones the authors
publish (Fashion-MNIST) and torchvision checks (MNIST). A download is refused (and nothing left in the cache)
unless it is a gzip stream whose content has the expected hash; :func:`check_files` checks a folder the same way.
Files already in the cache were checked when they were written and are not hashed again.

Importing this module loads NumPy only; torch loads in :func:`to_tensor`.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robustlab.common.errors import ConfigError, DataError, DownloadError

__all__ = ["DATASETS", "MEAN_STD", "SPLITS", "ImageCorpus", "check_files", "dataset_path", "load_images", "load_unit",
           "to_tensor"]

SPLITS: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
"""The (images, labels) IDX file of each split, without the ``.gz`` suffix."""


@dataclass(frozen=True)
class ImageCorpus:
    """One corpus of IDX images: where it is published, its content hashes and its normalisation.

    Attributes:
        name: the key in :data:`DATASETS`.
        title: the corpus' name in messages.
        env_var: the environment variable naming a local folder of the four files.
        mirrors: base URLs of the ``.gz`` files, tried in order.
        sha256: SHA-256 of each file's uncompressed content, by file name (without ``.gz``).
        classes: the class names, by label.
        mean: mean pixel value of the training images in [0, 1] (all 60,000, all pixels).
        std: their standard deviation.
        licence: the licence the corpus is distributed under.
        citation: the reference to cite.
    """

    name: str
    title: str
    env_var: str
    mirrors: tuple[str, ...]
    sha256: dict[str, str]
    classes: tuple[str, ...]
    mean: float
    std: float
    licence: str
    citation: str


DATASETS: dict[str, ImageCorpus] = {
    "mnist": ImageCorpus(
        name="mnist",
        title="MNIST",
        env_var="ROBUSTLAB_MNIST",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's copy (torchvision tries it first)
            "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow's copy
            "http://yann.lecun.com/exdb/mnist/",  # the original site (now often refuses downloads)
        ),
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        classes=tuple(str(d) for d in range(10)),
        mean=0.1307,
        std=0.3081,
        licence="CC BY-SA 3.0",
        citation=("LeCun, Y., Bottou, L., Bengio, Y., Haffner, P. Gradient-based learning applied to document "
                  "recognition. Proceedings of the IEEE 86(11):2278-2324, 1998. Data: LeCun, Y., Cortes, C., "
                  "Burges, C. J. C., The MNIST database of handwritten digits."),
    ),
    "fashion_mnist": ImageCorpus(
        name="fashion_mnist",
        title="Fashion-MNIST",
        env_var="ROBUSTLAB_FASHION_MNIST",
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # the authors' (their README's links)
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
        mean=0.2860,
        std=0.3530,
        licence="MIT",
        citation=("Xiao, H., Rasul, K., Vollgraf, R. Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
                  "Learning Algorithms. arXiv:1708.07747, 2017."),
    ),
}
"""The corpora by name."""

MEAN_STD: dict[str, tuple[float, float]] = {name: (c.mean, c.std) for name, c in DATASETS.items()}
"""``(mean, std)`` of each corpus' training pixels in [0, 1], which :func:`to_tensor` normalises with."""

_CHUNK = 1 << 20


def _corpus(name: str) -> ImageCorpus:
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), list(DATASETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown vision dataset {name!r}: expected one of {', '.join(sorted(DATASETS))}{hint}")
    return DATASETS[name]


def _locate(folder: Path, stem: str) -> Path | None:
    """``folder/stem.gz`` or ``folder/stem`` (the first that is a file), else None."""
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _content_sha256(path: Path) -> str:
    """SHA-256 of a file's content, decompressed when it is a ``.gz`` file."""
    h = hashlib.sha256()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_files(name: str, folder: str | os.PathLike) -> None:
    """Check that ``folder`` holds the four IDX files of ``name`` (gzipped or not) with the published content.

    Args:
        name: a key of :data:`DATASETS`.
        folder: the folder to check.

    Raises:
        ConfigError: an unknown corpus name.
        DataError: a file is missing, does not decompress, or its content's SHA-256 differs (the message names the
            file and both hashes).

    Examples::

        >>> import tempfile
        >>> check_files("mnist", tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustlab.common.errors.DataError: MNIST folder ... lacks train-images-idx3-ubyte(.gz), ...
    """
    corpus, folder = _corpus(name), Path(folder)
    _require_files(corpus, folder, f"{corpus.title} folder {folder}")
    for stem, expected in corpus.sha256.items():
        path = _locate(folder, stem)
        try:
            actual = _content_sha256(path)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{corpus.title} file {path} cannot be read: {type(e).__name__}: {e}") from None
        if actual != expected:
            raise DataError(f"{corpus.title} file {path} is not the published {stem}: the SHA-256 of its "
                            f"content is {actual}, expected {expected}")


def _require_files(corpus: ImageCorpus, folder: Path, what: str) -> None:
    missing = [f"{stem}(.gz)" for stem in corpus.sha256 if _locate(folder, stem) is None]
    if missing:
        raise DataError(f"{what} lacks {', '.join(missing)}; expected the four IDX files of {corpus.title} "
                        "(gzipped or not)")


def dataset_path(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True,
                 progress: bool = True, mirrors: Sequence[str] | None = None) -> Path:
    """The folder holding the four IDX files of ``name``; the cache is filled by a checked download when needed.

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"`` (:data:`DATASETS`).
        data_dir: a folder holding the four files (checked for presence, never downloaded into). None: the folder
            of the corpus' environment variable (``ROBUSTLAB_MNIST``, ``ROBUSTLAB_FASHION_MNIST``) when it is
            set, else the cache ``robustlab.common.data.data_dir("vision", name)``.
        download: download the files the cache lacks (else a DataError says how to get them).
        progress: show download progress.
        mirrors: base URLs to download from, tried in order for each file (``file://`` URLs work: the tests use
            them); default the corpus' ``mirrors``.

    Returns:
        The folder.

    Raises:
        ConfigError: an unknown corpus name.
        DataError: the named folder lacks a file (naming the files, and the environment variable when it named the
            folder), or the cache lacks one and ``download`` is False.
        DownloadError: every mirror failed for a file (each mirror's error is named), e.g. because the content's
            hash differs; the cache then holds no such file.
    """
    from robustlab.common.data import data_dir as cache_dir
    from robustlab.common.data import download as fetch

    corpus = _corpus(name)
    source = ""
    if data_dir is None and os.environ.get(corpus.env_var):
        data_dir, source = os.environ[corpus.env_var], f" (from ${corpus.env_var})"
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"{corpus.title} folder {folder}{source} does not exist or is not a folder")
        _require_files(corpus, folder, f"{corpus.title} folder {folder}{source}")
        return folder
    folder = cache_dir("vision", name)
    missing = [stem for stem in corpus.sha256 if _locate(folder, stem) is None]
    if not missing:
        return folder
    if not download:
        raise DataError(f"the {corpus.title} cache {folder} lacks {', '.join(missing)}; call with download=True, "
                        f"or pass data_dir (or set ${corpus.env_var}) to a folder holding the four IDX files")
    bases = tuple(mirrors) if mirrors is not None else corpus.mirrors
    if not bases:
        raise ConfigError("mirrors must name at least one base URL")
    for stem in missing:
        errors = []
        for base in bases:
            url = (base if base.endswith("/") else base + "/") + f"{stem}.gz"
            try:
                fetch(url, folder / f"{stem}.gz", magic=b"\x1f\x8b", validate=_validator(corpus, stem),
                      progress=progress)
                break
            except DownloadError as e:
                errors.append(str(e))
        else:
            raise DownloadError(f"{corpus.title} {stem}.gz could not be downloaded from any of its "
                                f"{len(bases)} source(s): " + "; ".join(errors))
    return folder


def _validator(corpus: ImageCorpus, stem: str):
    """A ``download(validate=...)`` check: the gzip stream decompresses to the published content."""
    expected = corpus.sha256[stem]

    def validate(path: Path) -> None:
        with gzip.open(path, "rb") as f:
            h = hashlib.sha256()
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        if h.hexdigest() != expected:
            raise ValueError(f"the SHA-256 of the uncompressed content is {h.hexdigest()}, expected {expected} "
                             f"({corpus.title} {stem})")

    return validate


def load_images(name: str, split: str = "train", data_dir: str | os.PathLike | None = None, *,
                download: bool = True, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels of one split of ``name``.

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        data_dir, download, progress: where the files are (see :func:`dataset_path`).

    Returns:
        ``(images, labels)``: uint8 pixels ``(N, 28, 28)`` (0 = background, 255 = ink) and int64 labels ``(N,)``
        in ``[0, 10)`` (:attr:`ImageCorpus.classes` names them).

    Raises:
        ConfigError: an unknown corpus or split.
        DataError: a file is missing or not IDX (see :func:`robustlab.common.data.read_idx`), images are not
            ``(N, H, W)`` bytes, labels not ``(N,)`` bytes below the class count, or the counts differ.
        DownloadError: as :func:`dataset_path`.

    Shape:
        images ``(N, 28, 28)`` uint8; labels ``(N,)`` int64.
    """
    from robustlab.common.data import read_idx

    corpus = _corpus(name)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r} of {corpus.title}: expected one of {', '.join(SPLITS)}")
    folder = dataset_path(name, data_dir, download=download, progress=progress)
    image_file, label_file = (_locate(folder, stem) for stem in SPLITS[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{corpus.title} images {image_file} are {images.dtype} of shape {images.shape}; expected "
                        "uint8 (N, H, W)")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{corpus.title} labels {label_file} are {labels.dtype} of shape {labels.shape}; expected "
                        "uint8 (N,)")
    if len(labels) != len(images):
        raise DataError(f"{corpus.title}: {label_file} holds {len(labels)} labels but {image_file} holds "
                        f"{len(images)} images")
    k = len(corpus.classes)
    if len(labels) and int(labels.max()) >= k:
        i = int(np.argmax(labels >= k))
        raise DataError(f"{corpus.title} labels {label_file}: label {int(labels[i])} at position {i} is not a "
                        f"class (expected 0 to {k - 1})")
    return images, labels.astype(np.int64)


def to_tensor(images, name: str):
    """Pixels as the networks take them: float32 ``(N, 1, H, W)``, ``(x / 255 - mean) / std`` with the corpus'
    :data:`MEAN_STD`.

    Args:
        images: uint8 pixels ``(N, H, W)`` or ``(N, 1, H, W)`` (NumPy array or tensor), as :func:`load_images`
            returns them.
        name: the corpus whose mean and standard deviation normalise them.

    Returns:
        A float32 tensor.

    Raises:
        ConfigError: an unknown corpus name.
        DataError: the pixels are not uint8, or not of one of the shapes above.

    Shape:
        input ``(N, H, W)`` or ``(N, 1, H, W)``; output ``(N, 1, H, W)``.

    Examples::

        >>> import numpy as np
        >>> x = to_tensor(np.zeros((2, 28, 28), dtype=np.uint8), "mnist")
        >>> tuple(x.shape), x.dtype, round(float(x[0, 0, 0, 0]), 4)
        ((2, 1, 28, 28), torch.float32, -0.4242)
    """
    import torch

    mean, std = MEAN_STD[_corpus(name).name]
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise DataError(f"to_tensor takes uint8 pixels (0-255, as load_images returns), got {x.dtype}")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"to_tensor takes images of shape (N, H, W) or (N, 1, H, W), got {tuple(x.shape)}")
    return (x.to(torch.float32) / 255.0 - mean) / std


def load_unit(name: str, split: str = "train", n: int | None = None, *, seed: int = 0,
              data_dir: str | os.PathLike | None = None, download: bool = True, progress: bool = False):
    """A seeded subset of one split as float32 pixels in ``[0, 1]``: the input scale of the adversarial-robustness
    literature on MNIST (budgets such as ``eps = 0.3`` are in these units; attack with ``bounds=(0, 1)``).

    Args:
        name: ``"mnist"`` or ``"fashion_mnist"``.
        split: ``"train"`` or ``"test"``.
        n: how many images; ``None`` (or at least the split's size) keeps the whole split in its order.
        seed: the draw of the subset (a permutation of the split, then its first ``n``).
        data_dir, download, progress: where the files are (see :func:`dataset_path`).

    Returns:
        ``(x, y)``: float32 tensor ``(n, 1, 28, 28)`` in ``[0, 1]`` and int64 labels ``(n,)``.

    Raises:
        ConfigError: ``n < 1``, an unknown corpus or split. DataError, DownloadError: as :func:`load_images`.

    Shape:
        x ``(n, 1, 28, 28)``; y ``(n,)``.
    """
    import torch

    if n is not None and n < 1:
        raise ConfigError(f"load_unit needs n >= 1 images (or None for the whole split), got {n}")
    images, labels = load_images(name, split, data_dir, download=download, progress=progress)
    if n is not None and n < len(images):
        pick = np.random.default_rng(seed).permutation(len(images))[:n]
        images, labels = images[pick], labels[pick]
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(np.ascontiguousarray(labels))
