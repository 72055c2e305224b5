"""A class-conditional DCGAN (Radford et al. 2016) for square grey-level (or colour) images of 16 to 256 pixels.

The generator concatenates a learned label embedding to the noise (Mirza & Osindero 2014) and upsamples with
transposed convolutions, batch norm and ReLU to a Tanh image in ``[-1, 1]``; the discriminator mirrors it with
strided convolutions and LeakyReLU(0.2), without batch norm, spectral norm on every convolution and linear layer
(Miyato et al. 2018: the stabilizer this package states), and the class enters by projection (Miyato & Koyama
2018): ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>``. Both are called as the core GAN regime calls them with
``conditional=True``: ``G(z, y)`` and ``D(x, y)``.

Import cost: torch only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]

_MAX_MULT = 8  # DCGAN's widest layer: 8 x width channels (512 for width 64)


def _int(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return value


def _image_size(owner: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (16, 32, 64, 128, 256):
        raise ConfigError(f"{owner}: image_size must be a power of two from 16 to 256, got {value!r}")
    return value


def _widths(image_size: int, width: int) -> list[tuple[int, int]]:
    """``(resolution, channels)`` of the hidden feature maps, from 4x4 up to ``image_size / 2``: DCGAN's layout
    (``width`` channels at half the image size, doubling per halving, at most ``8 * width``)."""
    steps = int(math.log2(image_size)) - 2  # 4 -> image_size
    return [(4 * 2**i, width * min(_MAX_MULT, image_size // (8 * 2**i))) for i in range(steps)]


class DCGANGenerator(RecordsArgs, nn.Module):
    """The conditional DCGAN generator: ``G(z, y)`` -> an image in ``[-1, 1]``.

    ``[z, embed(y)]`` is read as a ``1 x 1`` map, a 4x4 transposed convolution makes a ``4 x 4`` map, and each
    further transposed convolution (kernel 4, stride 2) doubles the side; batch norm and ReLU follow every layer
    but the last, which has ``channels`` outputs and Tanh. Weights are initialised as Radford et al. (normal, std
    0.02; batch-norm scales around 1).

    Args:
        latent_dim: the size of ``z``.
        num_classes: the number of classes ``y`` indexes.
        image_size: the side of the square images, a power of two from 16 to 256.
        channels: image channels (1: grey levels).
        width: channels of the last hidden map (at half the image size); twice as many per halving of the side,
            at most ``8 * width`` (DCGAN: 64).
        embedding_dim: size of the learned label embedding concatenated to ``z``.

    Shape:
        z: ``(N, latent_dim)``; y: ``(N,)`` class indices; output ``(N, channels, image_size, image_size)``.

    Reference:
        Radford, A., Metz, L., Chintala, S. "Unsupervised Representation Learning with Deep Convolutional
        Generative Adversarial Networks", ICLR 2016; Mirza, M., Osindero, S. "Conditional Generative Adversarial
        Nets", arXiv:1411.1784, 2014.
    """

    citation = ("Radford, A., Metz, L., Chintala, S. Unsupervised Representation Learning with Deep Convolutional "
                "Generative Adversarial Networks. ICLR 2016.")

    def __init__(self, latent_dim: int = 100, num_classes: int = 2, image_size: int = 64, channels: int = 1,
                 width: int = 64, embedding_dim: int = 50) -> None:
        super().__init__()
        owner = "DCGANGenerator"
        self.latent_dim = _int(owner, "latent_dim", latent_dim)
        self.num_classes = _int(owner, "num_classes", num_classes)
        self.image_size = _image_size(owner, image_size)
        self.channels = _int(owner, "channels", channels)
        _int(owner, "width", width)
        _int(owner, "embedding_dim", embedding_dim)
        self.embed = nn.Embedding(num_classes, embedding_dim)
        widths = _widths(image_size, width)
        layers: list[nn.Module] = []
        cin = latent_dim + embedding_dim
        for i, (_, cout) in enumerate(widths):
            conv = (nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False) if i == 0
                    else nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))
            layers += [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers += [nn.ConvTranspose2d(cin, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"DCGANGenerator: z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        if y.shape != (len(z),):
            raise ValueError(f"DCGANGenerator: y must have shape ({len(z)},), got {tuple(y.shape)}")
        h = torch.cat([z, self.embed(y).to(z.dtype)], 1)
        return self.net(h[:, :, None, None])


class DCGANDiscriminator(RecordsArgs, nn.Module):
    """The conditional DCGAN discriminator with spectral norm and a projection head: ``D(x, y)`` -> ``(N,)`` logits.

    Strided 4x4 convolutions (stride 2) halve the side from ``image_size`` to 4, each followed by LeakyReLU(0.2)
    and no batch norm (the GAN regime passes real and fake samples in one batch; spectral norm is the
    normalization); ``phi(x)`` is the flattened ``4 x 4`` map. The logit is ``psi(phi(x)) + <embed(y), phi(x)>``
    (a linear layer plus the projection on the class embedding), every convolution, the linear layer and the
    embedding spectrally normalized (one power iteration per training forward, PyTorch's parametrization).

    Args:
        num_classes: the number of classes ``y`` indexes.
        image_size: the side of the square images, a power of two from 16 to 256.
        channels: image channels.
        width: channels of the first convolution (at half the image size); twice as many per halving, at most
            ``8 * width``.
        spectral_norm: spectral normalization of every layer (Miyato et al. 2018); False gives the plain network
            (for comparisons).

    Shape:
        x: ``(N, channels, image_size, image_size)``; y: ``(N,)`` class indices; output ``(N,)`` logits.

    Reference:
        Miyato, T., Kataoka, T., Koyama, M., Yoshida, Y. "Spectral Normalization for Generative Adversarial
        Networks", ICLR 2018; Miyato, T., Koyama, M. "cGANs with Projection Discriminator", ICLR 2018.
    """

    citation = ("Miyato, T., Kataoka, T., Koyama, M., Yoshida, Y. Spectral Normalization for Generative "
                "Adversarial Networks. ICLR 2018; Miyato, T., Koyama, M. cGANs with Projection Discriminator. "
                "ICLR 2018.")

    def __init__(self, num_classes: int = 2, image_size: int = 64, channels: int = 1, width: int = 64,
                 spectral_norm: bool = True) -> None:
        super().__init__()
        owner = "DCGANDiscriminator"
        self.num_classes = _int(owner, "num_classes", num_classes)
        self.image_size = _image_size(owner, image_size)
        self.channels = _int(owner, "channels", channels)
        _int(owner, "width", width)
        def sn(layer: nn.Module) -> nn.Module:  # DCGAN's initialization, then the normalization of its weight
            nn.init.normal_(layer.weight, 0.0, 0.02)
            return _spectral_norm(layer) if spectral_norm else layer

        widths = _widths(image_size, width)[::-1]  # image_size / 2 down to 4
        layers: list[nn.Module] = []
        cin = channels
        for _, cout in widths:
            layers += [sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = cin * 16
        self.linear = sn(nn.Linear(self.feature_dim, 1))
        self.embed = sn(nn.Embedding(num_classes, self.feature_dim))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        size = (self.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != size:
            raise ValueError(f"DCGANDiscriminator: x must have shape (N, {', '.join(map(str, size))}), got "
                             f"{tuple(x.shape)}")
        if y.shape != (len(x),):
            raise ValueError(f"DCGANDiscriminator: y must have shape ({len(x)},), got {tuple(y.shape)}")
        phi = self.features(x)
        return self.linear(phi).squeeze(1) + (self.embed(y).to(phi.dtype) * phi).sum(1)

