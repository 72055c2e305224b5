"""A small all-convolutional classifier of grey image patches (mammogram regions of interest)."""

from __future__ import annotations

from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["PatchCNN"]


class PatchCNN(RecordsArgs, nn.Module):
    """Four 3x3 convolution blocks (batch norm, ReLU; max pooling after the first three), global average pooling,
    dropout and a linear layer.

    The last block, ``features``, keeps a spatial map (``image_size / 8`` on a side) that Grad-CAM reads; the
    global average pool over it is the embedding (``embedding_dim = 8 * width`` features) that the GAN quality
    measures use (:meth:`embed`). Narrow, so that a CPU trains one on a few hundred patches in seconds.

    Args:
        in_channels: image channels (1 for mammograms).
        num_classes: output dimension.
        width: channels of the first block; the blocks have ``width, 2 width, 4 width, 8 width``.
        dropout: dropout before the linear layer.

    Shape:
        input ``(N, in_channels, S, S)`` with ``S`` divisible by 8 (pixels in ``[0, 1]``); output ``(N,
        num_classes)`` logits.
    """

    citation = ("robustlab's patch classifier for the GAN-augmentation study of Gopal, Gandhimaruthian & Ali's review "
                "(EurekaSelect article 102383); a plain VGG-style CNN (Simonyan & Zisserman, ICLR 2015) with batch "
                "normalization (Ioffe & Szegedy, ICML 2015).")

    def __init__(self, in_channels: int = 1, num_classes: int = 2, *, width: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ConfigError(f"PatchCNN width must be an int >= 1, got {width!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"PatchCNN dropout must be in [0, 1), got {dropout!r}")

        def block(cin: int, cout: int, pool: bool) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                       nn.ReLU(inplace=False)]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

        self.blocks = nn.Sequential(block(in_channels, width, True), block(width, 2 * width, True),
                                    block(2 * width, 4 * width, True))
        self.features = block(4 * width, 8 * width, False)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * width, num_classes))
        self.embedding_dim = 8 * width

    def embed(self, x: Tensor) -> Tensor:
        """The globally pooled ``features`` map, ``(N, 8 * width)``."""
        return self.pool(self.features(self.blocks(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))
