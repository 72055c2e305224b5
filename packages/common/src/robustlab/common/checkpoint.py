"""Checkpoints: written atomically, loaded with ``weights_only=True`` (loading never executes code)."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustlab.common.errors import CheckpointError
from robustlab.common.io import atomic_write

__all__ = ["FORMAT", "save_checkpoint", "load_checkpoint", "load_weights", "read_payload", "rng_state", "set_rng_state"]

FORMAT = "robustlab-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, numbers, strings, lists and dicts) to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    return atomic_write(path, lambda f: torch.save(payload, f))


def read_payload(path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure as a :class:`CheckpointError` naming the file.

    Loading never executes code: a file holding other objects than tensors and plain containers is refused, and
    the message never suggests loading it with ``weights_only=False`` (for a malicious file, that is how its code
    would run).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder; expected a file (e.g. {path / 'best.pt'})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a corrupt file lets out many kinds (RuntimeError, UnpicklingError, struct.error, ...)
        raise CheckpointError(_unreadable(path, e)) from None


def _unreadable(path: Path, e: BaseException) -> str:
    """Why ``path`` cannot be read: what its first bytes look like and torch's reason, without torch's advice."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        return f"checkpoint {path} cannot be read: {err.strerror or err}"
    what = f"checkpoint {path} ({size} bytes)"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if size == 0:
        return f"{what} is empty"
    if stripped.startswith(b"<"):  # <!DOCTYPE html>, <html>, <?xml ...
        return f"{what} is an HTML or XML page, not a checkpoint (a failed download?)"
    text = str(e)
    if isinstance(e, pickle.UnpicklingError) and "GLOBAL" in text:
        # torch's line goes on to advise allowlisting the global: that advice is left out
        blocked = next((ln.strip().split(". ")[0].rstrip(".") for ln in text.splitlines() if "GLOBAL" in ln), "")
        return (f"{what} holds Python objects other than tensors and plain containers, which robustlab never "
                f"loads (loading them could run code the file carries): {blocked}. Save a model with "
                "robustlab.common.modelfile.save_model or its state_dict with torch.save")
    if not head.startswith((b"PK\x03\x04", b"\x80")):
        return f"{what} is not a PyTorch file (it starts with {head[:16]!r}; expected a zip archive)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
    reason = lines[0].split(". ")[0] if lines else type(e).__name__
    return f"{what} is truncated or corrupt ({type(e).__name__}: {reason})"


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a robustlab checkpoint without executing code.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, holds something other than plain tensors and
            containers, or is not a robustlab checkpoint. The message names the file.
    """
    path = Path(path)
    payload = read_payload(path, map_location=map_location)
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
