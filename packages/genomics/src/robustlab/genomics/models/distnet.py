"""DistNet: the deep CNN of Koo et al. (2019), whose small pools let deeper layers assemble partial motifs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from robustlab.genomics.models._blocks import (
    check_positive_int,
    conv_block,
    conv_output_length,
    dropout_rates,
    output_head,
    shortest_length,
)

__all__ = ["DistNet"]

# (kernel, same padding, pool) of conv1 .. conv5
_LAYERS = ((7, True, 1), (6, False, 3), (6, False, 4), (4, False, 3), (4, False, 1))


class DistNet(nn.Sequential):
    """Deep CNN with small pools: first-layer filters tend to learn partial (distributed) motif features.

    Five convolution layers, as in the authors' code for the paper (``code/models/DistNet.py`` of the study's
    repository):

    1. ``conv1``: 24 filters of width 7, same padding; activation; no pooling.
    2. ``conv2``: 32 filters of width 6, no padding; ReLU; max pool 3.
    3. ``conv3``: 48 filters of width 6, no padding; ReLU; max pool 4.
    4. ``conv4``: 64 filters of width 4, no padding; ReLU; max pool 3.
    5. ``conv5``: 96 filters of width 4, no padding; ReLU (for ``length=200`` the hidden dense layer).
    6. ``output``: ``num_tasks`` logits.

    For ``length=200``: 200 → 195 → 65 → 60 → 15 → 12 → 4 → 1 position, 96 features into the output layer.

    The regularized variant of the paper is ``DistNet(dropout=DistNet.paper_dropout, batch_norm=True)`` with L2
    ``1e-6`` as the optimizer's weight decay; the standard variant (the default) has neither.

    Args:
        num_tasks: number of outputs.
        length: input sequence length (at least 200).
        dropout: dropout after each hidden layer: one rate for all, or five rates (conv1 to conv5); 0 disables
            it.
        batch_norm: batch normalization after each convolution (before the activation).
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
    paper_dropout = (0.2, 0.2, 0.3, 0.4, 0.5)
    """Dropout rates of the regularized variant (conv1 to conv5)."""
    shortest = shortest_length(_LAYERS)
    """The shortest input length the network accepts (200)."""

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
        positions = conv_output_length(length, _LAYERS)
        if positions < 1:
            raise ValueError(
                f"DistNet: length must be at least {self.shortest} (four unpadded convolutions and pools of 3, 4, "
                f"3), got {length}"
            )
        p = dropout_rates(dropout, 5, "DistNet")
        bn = bool(batch_norm)
        blocks = []
        channels = (4, 24, 32, 48, 64, 96)
        for i, (kernel, same, pool) in enumerate(_LAYERS):
            blocks += conv_block(i + 1, channels[i], channels[i + 1], kernel, same=same, batch_norm=bn,
                                 act=activation if i == 0 else "relu", dropout=p[i], pool=pool)
        super().__init__(OrderedDict(blocks + output_head(96 * positions, num_tasks)))
