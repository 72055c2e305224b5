"""LocalNet: the shallow CNN of Koo et al. (2019), whose wide first-layer pooling fosters whole-motif filters."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from robustlab.genomics.models._blocks import check_positive_int, conv_block, dense_head, dropout_rates

__all__ = ["LocalNet"]


class LocalNet(nn.Sequential):
    """Shallow CNN with wide first-layer max pooling (pool 50), so first-layer filters learn whole motifs.

    Layers (as in the authors' Keras code for the "CNN-local" of the same synthetic task):

    1. ``conv1``: 24 filters of width 19, same padding; activation; max pool 50.
    2. ``conv2``: 48 filters of width 3, same padding; ReLU; max pool 2.
    3. ``dense``: 96 units, ReLU.
    4. ``output``: ``num_tasks`` logits.

    For ``length=200``: 200 → 4 → 2 positions, 96 features into the dense layer. The issue describes LocalNet by
    its first layer only; the small second convolution follows the authors' code.

    The regularized variant of the paper is ``LocalNet(dropout=LocalNet.paper_dropout, batch_norm=True)`` with L2
    ``1e-6`` as the optimizer's weight decay; the standard variant (the default) has neither.

    Args:
        num_tasks: number of outputs (1 for the binary ``koo2019`` task, 12 for ``koo_eddy2019``).
        length: input sequence length (at least 100).
        dropout: dropout after each hidden layer: one rate for all, or three rates (conv1, conv2, dense);
            0 disables it.
        batch_norm: batch normalization after each convolution and the dense layer (before the activation).
        activation: first-layer activation, ``"relu"`` (the paper) or ``"exponential"`` (Koo & Ploenzke 2021).

    Shape:
        input ``(N, 4, length)`` one-hot DNA (A, C, G, T rows); output ``(N, num_tasks)`` logits.

    Reference:
        Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. "Robust Neural Networks are More Interpretable
        for Genomics", bioRxiv 657437, 2019.
    """

    citation = (
        "Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. Robust Neural Networks are More Interpretable "
        "for Genomics. bioRxiv 657437, 2019. doi:10.1101/657437"
    )
    paper_dropout = (0.1, 0.2, 0.5)
    """Dropout rates of the regularized variant (conv1, conv2, dense)."""

    def __init__(
        self,
        num_tasks: int = 1,
        *,
        length: int = 200,
        dropout: float | Sequence[float] = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        check_positive_int("num_tasks", num_tasks, "LocalNet")
        check_positive_int("length", length, "LocalNet")
        positions = length // 50 // 2
        if positions < 1:
            raise ValueError(f"LocalNet: length must be at least 100 (pools of 50 and 2), got {length}")
        p = dropout_rates(dropout, 3, "LocalNet")
        bn = bool(batch_norm)
        super().__init__(
            OrderedDict(
                conv_block(1, 4, 24, 19, same=True, batch_norm=bn, act=activation, dropout=p[0], pool=50)
                + conv_block(2, 24, 48, 3, same=True, batch_norm=bn, act="relu", dropout=p[1], pool=2)
                + dense_head(48 * positions, 96, num_tasks, batch_norm=bn, dropout=p[2])
            )
        )
