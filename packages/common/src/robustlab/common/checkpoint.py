"""Checkpoints: written atomically, loaded with ``weights_only=True`` (loading never executes code)."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustlab.common.errors import CheckpointError
from robustlab.common.io import atomic_write

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_weights", "rng_state", "set_rng_state"]

FORMAT = "robustlab-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts) to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    return atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a robustlab checkpoint without executing code.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds something other than plain tensors and
            containers, or is not a robustlab checkpoint. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        size = path.stat().st_size
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} ({size} bytes) cannot be read: it is truncated, corrupt, or holds objects other "
            f"than tensors and plain containers ({first})"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a robustlab checkpoint (no format={FORMAT!r} field)")
    return payload


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> dict[str, Any]:
    """Load the model weights of a checkpoint into ``model``; returns the whole checkpoint.

    Raises:
        CheckpointError: as :func:`load_checkpoint`, or when the weights do not fit ``model`` (the message lists
            missing and unexpected keys or the mismatching shapes).
    """
    payload = load_checkpoint(path)
    if "model" not in payload:
        raise CheckpointError(f"checkpoint {path} has no 'model' field")
    try:
        model.load_state_dict(payload["model"], strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: {e}") from e
    return payload


def rng_state() -> dict[str, Any]:
    """Every random state a CPU or CUDA run consumes, as tensors and plain containers."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
