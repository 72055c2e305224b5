"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Hypothesis keeps caches under its storage folder (.hypothesis/ in the working directory by default): a temporary
# folder instead, set before any test module imports hypothesis.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "robustlab-hypothesis"))
# numba (memelite, modisco-lite) shares libgomp with torch: a numba thread team left idle spins through torch's later
# work in the same process and slows it several times; one numba thread, set before numba is imported.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """Tiny networks run fastest on one thread and do not stall when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _recipes_in_process(monkeypatch):
    """Recipes run in the test process unless a test asks for workers (``jobs=`` / ``--jobs``): spawning workers
    for every smoke run would cost seconds each."""
    monkeypatch.setenv("ROBUSTLAB_JOBS", "1")


@pytest.fixture(autouse=True)
def _no_job_array(monkeypatch):
    """A test suite run inside a Slurm job array must not shard the recipes the tests run."""
    for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def mnist():
    """Real MNIST from shared/data as float tensors in [0, 1]: (train_x, train_y, test_x, test_y)."""
    from robustlab.common.data import read_idx
    from robustlab.common.testing import shared_data

    root = shared_data("vision", "mnist")

    def load(images, labels):
        x = torch.from_numpy(read_idx(root / images).copy()).float().div_(255).unsqueeze(1)
        return x, torch.from_numpy(read_idx(root / labels).astype("int64"))

    return (*load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            *load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


@pytest.fixture(scope="session")
def mnist_model(mnist):
    """A SmallCNN trained for one epoch on 20,000 MNIST images through the engine (about 96% test accuracy)."""
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import SmallCNN
    from robustlab.common.regimes import ERM

    x, y, _, _ = mnist
    torch.manual_seed(0)
    model = SmallCNN()
    loader = DataLoader(ArrayDataset(x[:20000], y[:20000]), batch_size=32, shuffle=True)
    fit(model, ERM(), loader, epochs=1, progress=False)
    return model.eval()
