"""A small image CNN of the kind used for MNIST robustness experiments."""

from __future__ import annotations

from torch import nn

from robustlab.common.modelfile import RecordsArgs

__all__ = ["SmallCNN"]


class SmallCNN(RecordsArgs, nn.Sequential):
    """Two 3x3 convolution blocks with max pooling, then two linear layers.

    The architecture of the small MNIST CNNs in Madry et al. (2018) and Wong et al. (2020), with narrower
    widths by default so that CPU experiments take minutes.

    Args:
        in_channels: image channels.
        num_classes: output dimension.
        image_size: side of the (square) input image.
        width: channels of the first convolution (the second has twice as many).
        hidden: width of the hidden linear layer.
        batch_norm: add batch normalization after each convolution.
        embedding_norm: add batch normalization after the hidden linear layer, before its ReLU: the embedding
            (the input of the last layer) then has about unit scale per feature, which distance-based methods
            assume (LDCE's similarity is the inverse of a mean squared distance, as on the authors' ResNet
            features; without it the untrained network's tiny distances make that loss explode).

    Shape:
        input ``(N, in_channels, image_size, image_size)``; output ``(N, num_classes)`` logits.

    Reference:
        Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    """

    citation = (
        "Madry, A., Makelov, A., Schmidt, L., Tsipras, D., Vladu, A. Towards Deep Learning Models Resistant to "
        "Adversarial Attacks. ICLR 2018."
    )

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        *,
        image_size: int = 28,
        width: int = 16,
        hidden: int = 100,
        batch_norm: bool = False,
        embedding_norm: bool = False,
    ) -> None:
        def block(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return layers + [nn.ReLU(), nn.MaxPool2d(2)]

        side = image_size // 4
        super().__init__(
            *block(in_channels, width),
            *block(width, 2 * width),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, hidden),
            *([nn.BatchNorm1d(hidden)] if embedding_norm else []),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
