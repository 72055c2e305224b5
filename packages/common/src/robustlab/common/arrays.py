"""Array inputs: the metric and scoring functions take numpy arrays or torch tensors alike."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_numpy"]


def to_numpy(a: Any) -> np.ndarray:
    """``a`` as a numpy array: tensors are detached and moved to the CPU (torch is not imported here)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)
