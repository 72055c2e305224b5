"""The CIFAR-style residual network of He et al. (2016), section 4.2: ResNet-20/32/44/56/110.

Import cost: torch only.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["ResNet"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"ResNet: {name} must be an int >= 1, got {value!r}")
    return value


class _PadShortcut(nn.Module):
    """He et al.'s option A shortcut: subsample by ``stride`` and append zero channels (no parameters)."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels, self.stride = extra_channels, stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; ReLU after the first and after the sum with the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _PadShortcut(cout - cin, stride) if (stride != 1 or cin != cout) else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(RecordsArgs, nn.Module):
    """The residual network He et al. trained on CIFAR-10: a 3x3 convolution (16 filters), three stages of
    ``n = (depth - 2) / 6`` basic blocks with 16, 32 and 64 filters (the second and third start with stride 2),
    global average pooling and one linear layer. ``depth=32`` (n = 5) is ResNet-32, the encoder Liu et al. (2020)
    train in LDCE's confidence-estimation phase (palm-ml/PDLE@e325db6, ``models.py``: ``resnet32`` + a linear
    ``MLP``). Shortcuts that change the shape are the paper's option A (subsampling and zero channels, no
    parameters), as in the authors' code; convolutions are initialised He-normal.

    The embedding, the ``(N, 64)`` values the linear layer reads, is the output of the submodule named
    ``features`` (global average pooling and flatten; :attr:`embedding_layer`), so
    :class:`robustlab.common.features.FeatureRecorder` and the LDCE regime can record it; :meth:`embed` returns it.

    Departures: one input channel by default (MNIST, Fashion-MNIST; the paper and the authors use CIFAR's three),
    and any input side (the pooling adapts; 28 x 28 images leave 7 x 7 maps in the last stage).

    Args:
        depth: layers with weights, ``6n + 2`` (20, 32, 44, 56, 110).
        in_channels: image channels.
        num_classes: outputs ``K``.

    Shape:
        input ``(N, in_channels, H, W)``; output ``(N, num_classes)`` logits; :meth:`embed` ``(N, 64)``.

    Reference:
        He, K., Zhang, X., Ren, S., Sun, J. "Deep Residual Learning for Image Recognition", CVPR 2016.

    Examples::

        >>> import torch
        >>> model = ResNet(depth=32)
        >>> model(torch.randn(2, 1, 28, 28)).shape, model.embedding_dim, model.embedding_layer
        (torch.Size([2, 10]), 64, 'features')
    """

    citation = ("He, K., Zhang, X., Ren, S., Sun, J. Deep Residual Learning for Image Recognition. CVPR 2016, "
                "pp. 770-778. doi:10.1109/CVPR.2016.90")
    embedding_layer = "features"
    """The name of the submodule whose output is the embedding."""

    def __init__(self, depth: int = 32, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (("depth", depth), ("in_channels", in_channels), ("num_classes", num_classes)):
            _positive_int(name, value)
        if depth < 8 or (depth - 2) % 6:
            raise ConfigError(f"ResNet: depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.depth, self.in_channels, self.num_classes = depth, in_channels, num_classes
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, cin = [], 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.features = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.embedding_dim = 64
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet takes images of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """The ``(N, 64)`` embedding (the output of ``features``) the final linear layer reads."""
        self._check(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.features(out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))

