"""Fixtures of the robustlab.vision tests: the real MNIST, Fashion-MNIST and mini-MIAS folders, and a fresh robustlab
cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mnist_root():
    """../shared/data/vision/mnist (skipped outside CI when missing)."""
    from robustlab.common.testing import shared_data

    return shared_data("vision", "mnist")


@pytest.fixture(scope="session")
def fashion_mnist_root():
    """../shared/data/vision/fashion_mnist (skipped outside CI when missing)."""
    from robustlab.common.testing import shared_data

    return shared_data("vision", "fashion_mnist")


@pytest.fixture(scope="session")
def mini_mias_root():
    """../shared/data/vision/mini_mias: Info.txt, labels.csv, image_labels.csv, images_512/ (all 322 at 512 x 512) and
    original_pgm/ (two 1024 x 1024 originals); skipped outside CI when missing."""
    from robustlab.common.testing import shared_data

    return shared_data("vision", "mini_mias")


@pytest.fixture(autouse=True)
def _vision_cache(tmp_path_factory, monkeypatch):
    """Downloads made by the tests land in a temporary cache, never in the user's."""
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path_factory.mktemp("vision-data")))


@pytest.fixture(autouse=True)
def _no_local_copies(monkeypatch):
    """The loaders' local-copy variables are unset: the cache and download tests must not read a user's copy; tests
    that want one set it."""
    monkeypatch.delenv("ROBUSTLAB_MNIST", raising=False)
    monkeypatch.delenv("ROBUSTLAB_FASHION_MNIST", raising=False)
    monkeypatch.delenv("ROBUSTLAB_MINI_MIAS", raising=False)


def write_pgm(path, pixels, *, comment: bytes = b"# synthetic\n") -> None:
    """``pixels`` (uint8 (H, W)) as a binary PGM file."""
    import numpy as np

    h, w = pixels.shape
    path.write_bytes(b"P5\n" + comment + f"{w} {h}\n255\n".encode() + np.asarray(pixels, np.uint8).tobytes())


@pytest.fixture
def synthetic_mias(tmp_path):
    """A mini-MIAS-shaped folder of 8 images of 128 x 128 px (4 women), built here: a grey half-disc breast
    on the left (mean 100, noise), a film label (a bright square) top right, bright discs (220) where Info.txt
    puts the lesions (on the 1024 grid, origin bottom-left), and Info.txt with the real file's quirks (two
    lesions on one image, a calcification without location, a preamble). Returns the folder."""
    import numpy as np

    root = tmp_path / "mias"
    (root / "pgm").mkdir(parents=True)
    info = [
        "mdb001 G CIRC B 200 600 80",  # row (1024 - 600) / 8 = 53, col 25, radius 10
        "mdb002 G NORM ",
        "mdb003 F SPIC M 300 300 64",
        "mdb003 F CIRC B 150 800 40",
        "mdb004 F NORM",
        "mdb005 D CALC M *NOTE 3* ",
        "mdb006 D NORM",
        "mdb007 F MISC M 250 500 72",
        "mdb008 F NORM",
    ]
    text = "      MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY\n\nmdb files are listed below\n1st column: reference\n" \
           + "=" * 40 + "\n\n" + "\n".join(info) + "\n\n" + "=" * 40 + "\n"
    (root / "Info.txt").write_text(text)
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:128, 0:128] + 0.5
    for n in range(1, 9):
        image = np.zeros((128, 128))
        breast = (rows - 64) ** 2 + cols ** 2 <= 60 ** 2
        image[breast] = 100 + rng.normal(0, 5, breast.sum())
        image[4:14, 110:120] = 250  # a film label
        for line in info:
            parts = line.split()
            if parts[0] == f"mdb{n:03d}" and len(parts) == 7:
                x, y, r = (int(v) / 8 for v in parts[4:7])
                image[(rows - (128 - y)) ** 2 + (cols - x) ** 2 <= r ** 2] = 220
        write_pgm(root / "pgm" / f"mdb{n:03d}.pgm", np.clip(image, 0, 255).astype(np.uint8))
    return root
