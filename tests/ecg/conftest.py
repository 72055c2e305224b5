"""Fixtures of the robustlab.ecg tests: the real MIT-BIH and CinC 2021 folders, and the DS1/DS2 beats extracted once
per session (cached in a temporary folder)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def mitdb_root():
    """The 48 MIT-BIH records of ../shared/data/ecg/mitdb (skipped outside CI when missing)."""
    from robustlab.common.testing import shared_data

    return shared_data("ecg", "mitdb")


@pytest.fixture(scope="session")
def cinc_root():
    """The 50-record CinC 2021 sample of ../shared/data/ecg/cinc2021 with its dx_mapping_scored.csv."""
    from robustlab.common.testing import shared_data

    return shared_data("ecg", "cinc2021")


@pytest.fixture(scope="session")
def ecg_data_dir(tmp_path_factory):
    """The session's robustlab data folder for the ECG tests (``$ROBUSTLAB_DATA`` while they run)."""
    return tmp_path_factory.mktemp("ecg-data")


@pytest.fixture(autouse=True)
def _ecg_data_dir(ecg_data_dir, monkeypatch):
    """Commands and recipes run by the tests cache their beats in the session's folder, shared with the fixtures
    below: the beats are extracted once per session, and nothing is written to the user's cache."""
    monkeypatch.setenv("ROBUSTLAB_DATA", str(ecg_data_dir))


@pytest.fixture(scope="session")
def beats_cache(ecg_data_dir):
    """The session's beat cache folder: ``load_beats``'s default, ``data_dir("ecg", "beats")``, under
    ``ecg_data_dir``."""
    return ecg_data_dir / "ecg" / "beats"


def _load(split, root, cache):
    import torch

    from robustlab.ecg.data.mitdb import load_beats

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return load_beats(split, root=root, cache_dir=cache, download=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def beats_ds1(mitdb_root, beats_cache):
    """All beats of DS1 (the five AAMI classes: ``BeatSet.only()`` not applied), default window, lead MLII."""
    return _load("DS1", mitdb_root, beats_cache)


@pytest.fixture(scope="session")
def beats_ds2(mitdb_root, beats_cache):
    """All beats of DS2 (the five AAMI classes), default window, lead MLII."""
    return _load("DS2", mitdb_root, beats_cache)


@pytest.fixture(autouse=True)
def _no_local_copies(monkeypatch):
    """The loaders' local-copy variables ($ROBUSTLAB_MITDB, $ROBUSTLAB_CINC2021) are unset: the tests of the cache
    and download paths must not read a user's copy; tests that want one set it."""
    monkeypatch.delenv("ROBUSTLAB_MITDB", raising=False)
    monkeypatch.delenv("ROBUSTLAB_CINC2021", raising=False)
