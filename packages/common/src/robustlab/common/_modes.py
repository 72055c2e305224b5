"""Running a model in a given train/eval mode and restoring every submodule's own flag afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

MODES = ("eval", "train", "keep")


@contextmanager
def model_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put ``model`` in ``"eval"`` or ``"train"`` mode (``"keep"``: leave it) and restore each submodule's flag.

    Restoring per submodule matters: a model in train mode may hold a submodule deliberately in eval mode
    (frozen batch norm), which ``model.train(was_training)`` would lose.
    """
    if mode == "keep" or not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
