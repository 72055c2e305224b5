"""ConvNetQuake (Perol, Gharbi & Denolle 2018): a 1D CNN of stride-2 convolutions on waveforms.

Import cost: torch only.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["POOLS", "ConvNetQuake"]

POOLS = ("flatten", "avg")
"""How the last convolution's output becomes the embedding: flattened (the paper's) or averaged over time."""


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"ConvNetQuake: {name} must be an int >= 1, got {value!r}")
    return value


class ConvNetQuake(RecordsArgs, nn.Module):
    """The ConvNetQuake network: ``layers`` convolutions (kernel 3, stride 2, padding 1, ``channels`` filters,
    ReLU), flattened, dropout, one linear layer to the logits.

    Perol et al. classify 10 s of three-component 100 Hz waveforms (1,000 samples) with 8 such layers of 32 filters,
    which leave 4 time steps x 32 channels = 128 values for the linear layer; they use no batch normalisation and no
    pooling. Here the input is 100 s at 20 Hz (2,000 samples): 8 layers leave ``ceil(2000 / 2^8) = 8`` steps, 256
    values. ``pool="flatten"`` (the default) flattens them as the paper does: the windows start at the origin time,
    so where in the window the energy lies is information the flattening keeps. ``pool="avg"`` averages over time
    instead (global average pooling): the network then accepts any length, at the cost of that position.
    ``batch_norm=True`` adds a batch norm after each convolution (not in the paper, so off by default: the defaults
    are the paper's; batch-norm statistics also interact with the perturbed forward passes of VAT/EAAT). On the PNW
    data no variant (batch norm, average pooling, fewer filters, time-shift augmentation) did better than chance by
    much: on inner validation splits of training events it reached event balanced accuracy 0.49-0.53.

    Departures from the paper: dropout before the linear layer (0.3; the paper regularises with L2 only), a
    single-channel input (vertical component) by default, and no location classes (``n_classes`` event types).

    Args:
        in_channels: components ``C`` (1: vertical; 3: ZNE).
        n_classes: outputs ``K``.
        n_samples: samples per window ``L``.
        channels: filters of each convolution.
        layers: number of stride-2 convolutions (``2^layers <= n_samples``).
        dropout: dropout before the linear layer.
        pool: ``"flatten"`` or ``"avg"`` (see above).
        batch_norm: batch norm after each convolution.
        rate: the sampling rate the model expects (Hz): recorded in the model file for ``predict`` to resample to;
            the network itself does not use it.

    Shape:
        input ``(N, in_channels, n_samples)`` (z-scored waveforms); output ``(N, n_classes)`` logits.
        :meth:`embed` gives the ``(N, embedding_dim)`` values the linear layer ``head`` reads.

    Reference:
        Perol, T., Gharbi, M., Denolle, M. "Convolutional neural network for earthquake detection and location",
        Science Advances 4(2):e1700578, 2018.

    Examples::

        >>> import torch
        >>> model = ConvNetQuake()
        >>> model(torch.randn(2, 1, 2000)).shape, model.embedding_dim
        (torch.Size([2, 2]), 256)
    """

    citation = (
        "Perol, T., Gharbi, M., Denolle, M. Convolutional neural network for earthquake detection and location. "
        "Science Advances 4(2):e1700578, 2018. doi:10.1126/sciadv.1700578"
    )

    def __init__(self, in_channels: int = 1, n_classes: int = 2, n_samples: int = 2000, channels: int = 32,
                 layers: int = 8, dropout: float = 0.3, *, pool: str = "flatten", batch_norm: bool = False,
                 rate: float = 20.0) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("n_samples", n_samples),
                            ("channels", channels), ("layers", layers)):
            _positive_int(name, value)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"ConvNetQuake: dropout must be in [0, 1), got {dropout!r}")
        if pool not in POOLS:
            raise ConfigError(f"ConvNetQuake: pool must be one of {POOLS}, got {pool!r}")
        if 2 ** layers > n_samples:
            raise ConfigError(f"ConvNetQuake: {layers} stride-2 layers need at least 2^{layers} = {2 ** layers} "
                              f"samples, got n_samples={n_samples}")
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ConfigError(f"ConvNetQuake: rate must be a finite number > 0 (Hz), got {rate!r}")
        self.in_channels, self.n_classes, self.n_samples, self.rate = in_channels, n_classes, n_samples, float(rate)
        self.num_classes = n_classes
        body: list[nn.Module] = []
        cin, steps = in_channels, n_samples
        for _ in range(layers):
            body.append(nn.Conv1d(cin, channels, 3, stride=2, padding=1, bias=not batch_norm))
            if batch_norm:
                body.append(nn.BatchNorm1d(channels))
            body.append(nn.ReLU())
            cin, steps = channels, (steps - 1) // 2 + 1
        if pool == "flatten":
            body.append(nn.Flatten())
            self.embedding_dim = channels * steps
        else:
            body += [nn.AdaptiveAvgPool1d(1), nn.Flatten()]
            self.embedding_dim = channels
        self.pool = pool
        self.body = nn.Sequential(*body)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.embedding_dim, n_classes))

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.in_channels or (self.pool == "flatten" and x.shape[2] != self.n_samples):
            length = self.n_samples if self.pool == "flatten" else "L"
            raise ValueError(f"ConvNetQuake takes waveforms of shape (N, {self.in_channels}, {length}), got "
                             f"{tuple(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """The ``(N, embedding_dim)`` features before the final linear layer."""
        self._check(x)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))
