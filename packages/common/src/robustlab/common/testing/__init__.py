"""Helpers for robustlab's tests and those of the domain packages: shared real data and tiny fixtures.

Imports pytest lazily, so importing this module costs nothing outside a test run.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SHARED_DATA_ENV", "shared_data", "in_ci"]

SHARED_DATA_ENV = "ROBUSTLAB_SHARED_DATA"


def in_ci() -> bool:
    """True when running under CI (``CI`` set to a true value)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def shared_data(*parts: str) -> Path:
    """The path of a real-data folder for tests: ``$ROBUSTLAB_SHARED_DATA`` or ``<repo>/../shared/data``.

    When the folder is missing the test is skipped outside CI, with a message naming the folder; under CI it
    fails, since CI always has the data.
    """
    import pytest

    root = os.environ.get(SHARED_DATA_ENV)
    base = Path(root) if root else _repo_root().parent / "shared" / "data"
    path = base.joinpath(*parts)
    if not path.exists():
        msg = f"real-data folder {path} is missing (set {SHARED_DATA_ENV} to the folder of shared/data)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "packages").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()
