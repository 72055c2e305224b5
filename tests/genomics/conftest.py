"""Fixtures of the genomics tests."""

from __future__ import annotations

import numpy as np
import pytest


def _planted_motif(n: int, seed: int, length: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A separable task: random one-hot DNA ``(n, 4, length)``; half the sequences (label 1) carry one copy of a
    fixed 10-mer. Returns ``(x, y)`` with ``y`` of shape ``(n,)``, float32."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, (n, length))
    y = rng.random(n) < 0.5
    motif = np.array([2, 2, 2, 1, 2, 2, 2, 2, 1, 3])  # GGGCGGGGCT, SP1-like
    starts = rng.integers(0, length - len(motif), n)
    for i in np.flatnonzero(y):
        idx[i, starts[i] : starts[i] + len(motif)] = motif
    x = np.ascontiguousarray(np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1))
    return x, y.astype(np.float32)


@pytest.fixture(scope="session")
def planted_motif():
    """``planted_motif(n, seed, length=200) -> (x, y)``: the separable planted-motif task (see _planted_motif)."""
    return _planted_motif
