"""Datasets that yield robustlab batches: dicts with the keys ``x``, ``y``, ``index`` and optional ``mask``, ``meta``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from robustlab.common.errors import DataError

__all__ = ["ArrayDataset", "CycledDataset"]


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


class CycledDataset(Dataset):
    """A dataset shown ``length`` samples long: sample ``i`` is ``data[i % len(data)]``.

    Oversamples a small labelled set against a large unlabelled pool, as semi-supervised practice advises (e.g.
    shadow-ssml's 50/50 labelled/unlabelled batches at small label budgets): with ``length`` the pool's size
    rounded up to whole batches, a shuffled loader over it gives every batch a full share of labelled samples and
    shows each labelled sample about ``length / len(data)`` times per epoch. The samples keep their own
    ``index`` (``data``'s), so per-sample state stays keyed by the underlying sample.

    Args:
        data: a map-style dataset (e.g. :class:`ArrayDataset`), not empty.
        length: the length shown, at least ``len(data)``.

    Examples::

        >>> import torch
        >>> ds = CycledDataset(ArrayDataset(torch.arange(3.0), torch.tensor([0, 1, 0])), 8)
        >>> len(ds), [int(ds[i]["index"]) for i in range(8)]
        (8, [0, 1, 2, 0, 1, 2, 0, 1])
    """

    def __init__(self, data, length: int) -> None:
        if len(data) == 0:
            raise DataError("CycledDataset: the dataset to cycle is empty")
        if not isinstance(length, (int, np.integer)) or length < len(data):
            raise DataError(f"CycledDataset: length must be an int >= len(data) = {len(data)}, got {length!r}")
        self.data, self.length = data, int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i) -> dict:
        i = int(i)
        if not -self.length <= i < self.length:
            raise IndexError(f"CycledDataset: index {i} out of range for length {self.length}")
        return self.data[i % self.length % len(self.data)]


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
