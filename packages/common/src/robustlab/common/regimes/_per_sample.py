"""Helpers of the regimes that keep or read a value per training sample by the batch's ``index`` key."""

from __future__ import annotations

from torch import Tensor

from robustlab.common.errors import DataError

__all__ = ["batch_index", "check_range"]


def batch_index(batch: dict, who: str) -> Tensor:
    """The batch's ``index``, flattened to int64; DataError naming ``who`` when the batch has none."""
    index = batch.get("index")
    if index is None:
        raise DataError(f"{who} keeps or reads a value per training sample by the batch key 'index', which this "
                        "batch lacks (ArrayDataset provides it)")
    return index.reshape(-1).long()


def check_range(values: Tensor, high: int, name: str) -> None:
    """DataError naming the first value of ``values`` outside ``[0, high)``, its position and ``name``."""
    bad = (values < 0) | (values >= high)
    if bool(bad.any()):
        pos = int(bad.nonzero()[0])
        raise DataError(f"batch {name!r} holds {int(values[pos])} at position {pos}, outside [0, {high})")
