"""The wide residual network of Zagoruyko & Komodakis (2016): WRN-d-k, pre-activation blocks with dropout.

Import cost: torch only.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["WideResNet"]


class _WideBlock(nn.Module):
    """BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3 with an identity shortcut, or a 1x1 convolution of the activated
    input when the shape changes (the paper's "B(3,3)" block as in its reference code)."""

    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.equal = cin == cout and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        activated = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(activated)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        return out + (x if self.shortcut is None else self.shortcut(activated))


class WideResNet(RecordsArgs, nn.Module):
    """WRN-``depth``-``widen_factor``: a 3x3 convolution (16 filters), three groups of ``n = (depth - 4) / 6``
    pre-activation blocks with ``16k``, ``32k`` and ``64k`` filters (the second and third start with stride 2),
    batch norm and ReLU, global average pooling and one linear layer. WRN-40-2 with dropout 0.3 (the defaults) is
    the final classifier Liu et al. (2020) train with the corrected loss (palm-ml/PDLE@e325db6, ``main.py``:
    ``WideResNet(depth=40, num_classes, widen_factor=2, dropRate=0.3)``, the implementation of Hendrycks et al.'s
    GLC code). Convolutions are initialised normal with standard deviation ``sqrt(2 / (3 * 3 * out_channels))``
    (He-normal over the fan-out), batch norms at 1 and 0, the linear layer's bias at 0, as there.

    The embedding, the ``(N, 64k)`` values the linear layer reads, is the output of the submodule named
    ``features`` (global average pooling and flatten; :attr:`embedding_layer`); :meth:`embed` returns it.

    Departures: one input channel by default (MNIST, Fashion-MNIST), and adaptive average pooling (the reference
    code pools an 8 x 8 map, so takes 32 x 32 images only; 28 x 28 images leave 7 x 7 maps).

    Args:
        depth: layers with weights, ``6n + 4`` (16, 22, 28, 40, ...).
        widen_factor: ``k``, the width multiplier.
        dropout: dropout between the two convolutions of each block.
        in_channels: image channels.
        num_classes: outputs ``K``.

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, num_classes)`` logits; :meth:`embed` ``(N, 64 * widen_factor)``.

    Reference:
        Zagoruyko, S., Komodakis, N. "Wide Residual Networks", BMVC 2016.

    Examples::

        >>> import torch
        >>> model = WideResNet(depth=10, widen_factor=1)
        >>> model(torch.randn(2, 1, 28, 28)).shape, model.embedding_dim
        (torch.Size([2, 10]), 64)
    """

    citation = ("Zagoruyko, S., Komodakis, N. Wide Residual Networks. Proceedings of the British Machine Vision "
                "Conference (BMVC) 2016, pp. 87.1-87.12. doi:10.5244/C.30.87")
    embedding_layer = "features"
    """The name of the submodule whose output is the embedding."""

    def __init__(self, depth: int = 40, widen_factor: int = 2, dropout: float = 0.3, in_channels: int = 1,
                 num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (("depth", depth), ("widen_factor", widen_factor), ("in_channels", in_channels),
                            ("num_classes", num_classes)):
            _positive_int(name, value)
        if depth < 10 or (depth - 4) % 6:
            raise ConfigError(f"WideResNet: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40), got {depth}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ConfigError(f"WideResNet: dropout must be in [0, 1), got {dropout!r}")
        n = (depth - 4) // 6
        self.depth, self.widen_factor, self.dropout = depth, widen_factor, float(dropout)
        self.in_channels, self.num_classes = in_channels, num_classes
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        groups, cin = [], 16
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(_WideBlock(cin, width, 2 if (i > 0 and j == 0) else 1, self.dropout))
                cin = width
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[-1])
        self.features = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embedding_dim = widths[-1]
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"WideResNet takes images of shape (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """The ``(N, 64 * widen_factor)`` embedding (the output of ``features``) the final linear layer reads."""
        self._check(x)
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.features(F.relu(self.bn(out)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"WideResNet: {name} must be an int >= 1, got {value!r}")
    return value
