"""Where robustlab keeps data and downloads: resolved when asked, never at import."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "data_dir"]

ENV_VAR = "ROBUSTLAB_DATA"


def data_dir(*parts: str, create: bool = False) -> Path:
    """Return the robustlab data/cache folder (or a path inside it).

    The folder is ``$ROBUSTLAB_DATA`` when set, else ``$XDG_CACHE_HOME/robustlab`` (``~/.cache/robustlab``).
    Nothing is created unless ``create=True``.

    Args:
        *parts: path components below the data folder.
        create: create the resulting folder (and its parents).
    """
    root = os.environ.get(ENV_VAR)
    if root:
        base = Path(root).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = Path(cache) / "robustlab"
    path = base.joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
