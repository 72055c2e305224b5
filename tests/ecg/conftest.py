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
def beats_cache(tmp_path_factory):
    """The session's beat cache folder."""
    return tmp_path_factory.mktemp("ecg-beats")


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
