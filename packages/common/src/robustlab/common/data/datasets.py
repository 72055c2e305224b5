"""Datasets that yield robustlab batches: dicts with the keys ``x``, ``y``, ``index`` and optional ``mask``, ``meta``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from robustlab.common.errors import DataError

__all__ = ["ArrayDataset"]


class ArrayDataset(Dataset):
    """Index-aligned arrays served as sample dicts.

    Args:
        x: inputs, first dimension the sample index.
        y: targets (class indices, multi-label 0/1 rows, or regression values), same length as ``x``; None for
            unlabelled data (samples then have no ``"y"``).
        mask: optional per-sample tensor (e.g. a ground-truth motif mask), served under ``"mask"``.
        meta: optional mapping of further per-sample arrays, served as a ``"meta"`` dict.

    Shape:
        sample: ``{"x": x[i], "y": y[i], "index": i, ...}``; the default collate function stacks them (``index``
        becomes an int64 tensor, the key by which per-sample state is kept). Given a list of indices (a loader
        with a batch sampler and ``batch_size=None``), the sample is the whole batch and ``index`` a tensor.
    """

    def __init__(self, x, y=None, *, mask=None, meta: Mapping[str, object] | None = None) -> None:
        self.x = _as_tensor(x, "x")
        self.y = None if y is None else _as_tensor(y, "y")
        n = len(self.x)
        if self.y is not None and len(self.y) != n:
            raise DataError(f"ArrayDataset: 'y' has {len(self.y)} samples but 'x' has {n}")
        self.mask = None if mask is None else _as_tensor(mask, "mask")
        if self.mask is not None and len(self.mask) != n:
            raise DataError(f"ArrayDataset: 'mask' has {len(self.mask)} samples but 'x' has {n}")
        self.meta = {k: _as_tensor(v, f"meta[{k!r}]") for k, v in (meta or {}).items()}
        for k, v in self.meta.items():
            if len(v) != n:
                raise DataError(f"ArrayDataset: meta[{k!r}] has {len(v)} samples but 'x' has {n}")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i) -> dict:
        index = i if isinstance(i, int) else torch.as_tensor(i, dtype=torch.int64)
        sample = {"x": self.x[i], "index": index}
        if self.y is not None:
            sample["y"] = self.y[i]
        if self.mask is not None:
            sample["mask"] = self.mask[i]
        if self.meta:
            sample["meta"] = {k: v[i] for k, v in self.meta.items()}
        return sample


def _as_tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    arr = np.asarray(a)
    if arr.dtype == object:
        raise DataError(f"ArrayDataset: {name!r} must be a numeric array, got dtype object")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.float64:
        t = t.float()
    return t
