"""CNN-k: the two-convolution family of Koo & Eddy (2019), first-layer max-pool size k with fixed total pooling."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from robustlab.common.modelfile import RecordsArgs
from robustlab.genomics.models._blocks import check_positive_int, conv_block, dense_head, dropout_rates

__all__ = ["CNNk"]

POOL_SIZES = (1, 2, 4, 10, 25, 50, 100)


class CNNk(RecordsArgs, nn.Sequential):
    """CNN-k: first-layer pool ``k``, second-layer pool ``100 // k``, so the total downsampling is always 100.

    Koo & Eddy vary only the first layer's max-pool size: small ``k`` lets the second layer assemble motifs from
    partial first-layer features (distributed representations); large ``k`` leaves it no spatial detail to do so,
    and first-layer filters learn whole motifs (localist representations). The second pool is chosen so that
    every model sees the same number of positions at the dense layer. Layers, as in the paper and the authors'
    code (``code/models/cnn_<k>.py`` of ``p-koo/learning_sequence_motifs``):

    1. ``conv1``: 30 filters of width 19, same padding; activation; max pool ``k``.
    2. ``conv2``: 128 filters of width 5, same padding; ReLU; max pool ``100 // k``.
    3. ``dense``: 512 units, ReLU.
    4. ``output``: ``num_tasks`` logits (12 for the multi-task ``koo_eddy2019`` data).

    For ``length=200`` every ``k`` gives 2 positions, 256 features into the dense layer. The paper trains every
    CNN-k with batch norm, dropout ``paper_dropout`` and L2 ``1e-6``: ``CNNk(pool=k, dropout=CNNk.paper_dropout,
    batch_norm=True)`` with that weight decay on the optimizer. The default here, as for the other models, is
    the unregularized network.

    Args:
        num_tasks: number of outputs.
        pool: the first-layer max-pool size ``k``, one of 1, 2, 4, 10, 25, 50, 100 (the paper's values;
            they all divide 100). The default 25 is one of the paper's localist settings.
        length: input sequence length (at least 100).
        dropout: dropout after each hidden layer: one rate for all, or three rates (conv1, conv2, dense);
            0 disables it.
        batch_norm: batch normalization after each convolution and the dense layer (before the activation).
        activation: first-layer activation, ``"relu"`` (the paper) or ``"exponential"``.

    Raises:
        ValueError: ``pool`` is not one of the paper's values, or ``length`` is too short.

    Shape:
        input ``(N, 4, length)`` one-hot DNA; output ``(N, num_tasks)`` logits.

    Reference:
        Koo, P. K., Eddy, S. R. "Representation learning of genomic sequence motifs with convolutional neural
        networks", PLoS Computational Biology 15(12): e1007560, 2019.
    """

    citation = (
        "Koo, P. K., Eddy, S. R. Representation learning of genomic sequence motifs with convolutional neural "
        "networks. PLoS Computational Biology 15(12): e1007560, 2019. doi:10.1371/journal.pcbi.1007560"
    )
    pool_sizes = POOL_SIZES
    """The first-layer pool sizes ``k`` of the paper."""
    paper_dropout = (0.1, 0.1, 0.5)
    """Dropout rates of the paper (conv1, conv2, dense)."""

    def __init__(
        self,
        num_tasks: int = 1,
        *,
        pool: int = 25,
        length: int = 200,
        dropout: float | Sequence[float] = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
    ) -> None:
        check_positive_int("num_tasks", num_tasks, "CNNk")
        check_positive_int("length", length, "CNNk")
        if isinstance(pool, bool) or not isinstance(pool, int) or pool not in POOL_SIZES:
            raise ValueError(f"CNNk: pool must be one of {POOL_SIZES} (the paper's k), got {pool!r}")
        pool2 = 100 // pool
        positions = length // pool // pool2
        if positions < 1:
            raise ValueError(f"CNNk: length must be at least 100 (total pooling 100), got {length}")
        p = dropout_rates(dropout, 3, "CNNk")
        bn = bool(batch_norm)
        super().__init__(
            OrderedDict(
                conv_block(1, 4, 30, 19, same=True, batch_norm=bn, act=activation, dropout=p[0], pool=pool)
                + conv_block(2, 30, 128, 5, same=True, batch_norm=bn, act="relu", dropout=p[1], pool=pool2)
                + dense_head(128 * positions, 512, num_tasks, batch_norm=bn, dropout=p[2])
            )
        )
        self.pool = pool
