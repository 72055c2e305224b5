"""Fixtures of the robustlab.seismic tests: the real PNW and IPOC folders, and their trace sets preprocessed once per
session (cached in a temporary folder)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pnw_root():
    """../shared/data/seismic/pnw_eq_vs_explosion (skipped outside CI when missing)."""
    from robustlab.common.testing import shared_data

    return shared_data("seismic", "pnw_eq_vs_explosion")


@pytest.fixture(scope="session")
def ipoc_root():
    """../shared/data/seismic/ipoc_source_region (skipped outside CI when missing)."""
    from robustlab.common.testing import shared_data

    return shared_data("seismic", "ipoc_source_region")


@pytest.fixture(scope="session")
def seismic_data_dir(tmp_path_factory):
    """The session's robustlab data folder for the seismic tests (``$ROBUSTLAB_DATA`` while they run)."""
    return tmp_path_factory.mktemp("seismic-data")


@pytest.fixture(autouse=True)
def _seismic_data_dir(seismic_data_dir, monkeypatch):
    """Commands and recipes run by the tests cache their traces in the session's folder, shared with the fixtures
    below: the traces are preprocessed once per session, and nothing is written to the user's cache."""
    monkeypatch.setenv("ROBUSTLAB_DATA", str(seismic_data_dir))


@pytest.fixture(autouse=True)
def _no_local_copies(monkeypatch):
    """The loaders' local-copy variables are unset: the tests of the cache and download paths must not read a
    user's copy; tests that want one set it."""
    monkeypatch.delenv("ROBUSTLAB_PNW_EQ_VS_EXPLOSION", raising=False)
    monkeypatch.delenv("ROBUSTLAB_IPOC_SOURCE_REGION", raising=False)


@pytest.fixture(scope="session")
def pnw_traces(pnw_root, seismic_data_dir):
    """The PNW trace set (labelled + unreviewed, default PreprocessConfig), cached in the session's data folder
    (``data_dir("seismic", "traces")`` under it, so commands run by the tests find it)."""
    from robustlab.seismic.data.pnw import load_pnw

    return load_pnw(pnw_root, cache_dir=seismic_data_dir / "seismic" / "traces", progress=False)


@pytest.fixture(scope="session")
def ipoc_traces(ipoc_root):
    """The 200 IPOC traces (IPOC_CONFIG)."""
    from robustlab.seismic.data.ipoc import load_ipoc

    return load_ipoc(ipoc_root)
