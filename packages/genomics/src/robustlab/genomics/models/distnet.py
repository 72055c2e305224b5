"""DistNet: the deep CNN of Koo et al. (2019), whose small pools let deeper layers assemble partial motifs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from robustlab.genomics.models._blocks import check_positive_int, conv_block, dense_head, dropout_rates

__all__ = ["DistNet"]


class DistNet(nn.Sequential):
    """Deep CNN with small pools: first-layer filters tend to learn partial (distributed) motif features.

    Five hidden layers, as in the authors' Keras code for the "CNN-dist" of the same synthetic task (four
    convolutions and a dense layer; the units 24/32/48/64/96 and dropout 0.1 to 0.5 are one per hidden layer):

    1. ``conv1``: 24 filters of width 19, same padding; activation; no pooling.
    2. ``conv2``: 32 filters of width 7, same padding; ReLU; max pool 4.
    3. ``conv3``: 48 filters of width 7, no padding; ReLU; max pool 4.
    4. ``conv4``: 64 filters of width 3, no padding; ReLU; max pool 3 (the last partial window kept).
    5. ``dense``: 96 units, ReLU; then ``output``: ``num_tasks`` logits.

    For ``length=200``: 200 → 200 → 50 → 44 → 11 → 9 → 3 positions, 192 features into the dense layer.

    The regularized variant of the paper is ``DistNet(dropout=DistNet.paper_dropout, batch_norm=True)`` with L2
    ``1e-6`` as the optimizer's weight decay; the standard variant (the default) has neither.

    Args:
        num_tasks: number of outputs.
        length: input sequence length (at least 72).
        dropout: dropout after each hidden layer: one rate for all, or five rates (conv1 to conv4, dense);
            0 disables it.
        batch_norm: batch normalization after each convolution and the dense layer (before the activation).
        activation: first-layer activation, ``"relu"`` (the paper) or ``"exponential"``.

    Shape:
        input ``(N, 4, length)`` one-hot DNA; output ``(N, num_tasks)`` logits.

    Reference:
        Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. "Robust Neural Networks are More Interpretable
        for Genomics", bioRxiv 657437, 2019.
    """

    citation = (
        "Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. Robust Neural Networks are More Interpretable "
        "for Genomics. bioRxiv 657437, 2019. doi:10.1101/657437"
    )
    paper_dropout = (0.1, 0.2, 0.3, 0.4, 0.5)
    """Dropout rates of the regularized variant (conv1 to conv4, dense)."""

    def __init__(
        self,
        num_tasks: int = 1,
        *,
        length: int = 200,
        dropout: float | Sequence[float] = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        check_positive_int("num_tasks", num_tasks, "DistNet")
        check_positive_int("length", length, "DistNet")
        after3 = (length // 4 - 6) // 4
        if after3 < 3:
            raise ValueError(
                f"DistNet: length must be at least 72 (pools of 4, 4, 3 and two unpadded convs), got {length}"
            )
        positions = -(-(after3 - 2) // 3)
        p = dropout_rates(dropout, 5, "DistNet")
        bn = bool(batch_norm)
        super().__init__(
            OrderedDict(
                conv_block(1, 4, 24, 19, same=True, batch_norm=bn, act=activation, dropout=p[0])
                + conv_block(2, 24, 32, 7, same=True, batch_norm=bn, act="relu", dropout=p[1], pool=4)
                + conv_block(3, 32, 48, 7, same=False, batch_norm=bn, act="relu", dropout=p[2], pool=4)
                + conv_block(
                    4, 48, 64, 3, same=False, batch_norm=bn, act="relu", dropout=p[3], pool=3, ceil_pool=True
                )
                + dense_head(64 * positions, 96, num_tasks, batch_norm=bn, dropout=p[4])
            )
        )
