"""Fixtures of the robustlab.vision tests: the real MNIST and Fashion-MNIST folders, and a fresh robustlab cache."""

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
