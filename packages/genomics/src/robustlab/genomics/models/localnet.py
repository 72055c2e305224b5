"""LocalNet: the shallow CNN of Koo et al. (2019), whose wide first-layer pooling fosters whole-motif filters."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustlab.common.modelfile import RecordsArgs
from robustlab.genomics.models._blocks import conv_stack, shortest_length

__all__ = ["LocalNet"]

_LAYERS = ((24, 19, True, 50), (96, 4, False, 1))  # (filters, kernel, same padding, pool) of conv1 and conv2


class LocalNet(RecordsArgs, nn.Sequential):
    """Shallow CNN with wide first-layer max pooling (pool 50), so first-layer filters learn whole motifs.

    Layers, as in the authors' code for the paper (``code/models/LocalNet.py`` of the study's repository):

    1. ``conv1``: 24 filters of width 19, same padding; activation; max pool 50.
    2. ``conv2``: 96 filters of width 4, no padding; ReLU. For ``length=200`` it spans the 4 pooled positions
       and acts as the hidden dense layer.
    3. ``output``: ``num_tasks`` logits.

    For ``length=200``: 200 → 4 → 1 position, 96 features into the output layer; longer inputs leave more
    positions, which are flattened.

    The regularized variant of the paper is ``LocalNet(dropout=LocalNet.paper_dropout, batch_norm=True)`` with L2
    ``1e-6`` as the optimizer's weight decay; the standard variant (the default) has neither.

    Args:
        num_tasks: number of outputs (1 for the binary ``koo2019`` task, 12 for ``koo_eddy2019``).
        length: input sequence length (at least 200).
        dropout: dropout after each hidden layer: one rate for all, or two rates (conv1, conv2); 0 disables it.
        batch_norm: batch normalization after each convolution (before the activation).
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
    paper_dropout = (0.2, 0.5)
    """Dropout rates of the regularized variant (conv1, conv2)."""
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
        super().__init__(conv_stack("LocalNet", _LAYERS, num_tasks, length=length, dropout=dropout,
                                    batch_norm=batch_norm, activation=activation))
