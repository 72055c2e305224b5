"""DistNet: the deep CNN of Koo et al. (2019), whose small pools let deeper layers assemble partial motifs."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from robustlab.common.modelfile import RecordsArgs
from robustlab.genomics.models._blocks import conv_stack, shortest_length

__all__ = ["DistNet"]

# (filters, kernel, same padding, pool) of conv1 .. conv5
_LAYERS = ((24, 7, True, 1), (32, 6, False, 3), (48, 6, False, 4), (64, 4, False, 3), (96, 4, False, 1))


class DistNet(RecordsArgs, nn.Sequential):
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
        super().__init__(conv_stack("DistNet", _LAYERS, num_tasks, length=length, dropout=dropout,
                                    batch_norm=batch_norm, activation=activation))
