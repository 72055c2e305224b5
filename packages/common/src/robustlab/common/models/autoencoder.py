"""A small fully connected autoencoder: the approximate data manifold of on-manifold adversarial examples."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs

__all__ = ["Autoencoder"]

_OUTPUTS = ("sigmoid", "identity")


class Autoencoder(RecordsArgs, nn.Module):
    """An MLP encoder to a ``latent_dim`` code and a mirrored MLP decoder back to the input's shape.

    The decoder's image ``{decode(z)}`` approximates the data manifold: perturbing the code ``z = encode(x)`` and
    decoding it gives an input that stays near the data (Stutz, Hein & Schiele 2019 use a VAE-GAN the same way;
    Kwon & Lee 2021 a VAE). It works for any input shape (images, ECG windows, one-hot DNA flattened), since it
    flattens from dim 1; ``output="sigmoid"`` suits inputs in ``[0, 1]`` (pixels), ``"identity"`` unbounded ones
    (standardized signals). Train it on reconstruction (``forward`` returns the reconstruction), e.g. with
    :class:`robustlab.common.regimes.ERM` and ``loss=mse_loss`` on batches whose ``y`` is ``x``.

    Args:
        in_shape: the shape of one input, e.g. ``(1, 28, 28)`` or ``(4,)``.
        latent_dim: size of the code.
        hidden: widths of the encoder's hidden layers (the decoder uses them in reverse).
        output: ``"sigmoid"`` (reconstructions in ``(0, 1)``) or ``"identity"``.

    Shape:
        ``forward``: ``(N, *in_shape)`` -> ``(N, *in_shape)``; ``encode``: ``(N, *in_shape)`` -> ``(N, latent_dim)``;
        ``decode``: ``(N, latent_dim)`` -> ``(N, *in_shape)``.

    Examples::

        >>> import torch
        >>> ae = Autoencoder((1, 28, 28), latent_dim=16, hidden=(64,))
        >>> z = ae.encode(torch.rand(3, 1, 28, 28))
        >>> z.shape, ae.decode(z).shape
        (torch.Size([3, 16]), torch.Size([3, 1, 28, 28]))
    """

    citation = ("Hinton, G. E., Salakhutdinov, R. R. Reducing the Dimensionality of Data with Neural Networks. "
                "Science 313(5786), 504-507, 2006.")

    def __init__(self, in_shape: Sequence[int], latent_dim: int = 32, *, hidden: Sequence[int] = (256,),
                 output: str = "sigmoid") -> None:
        super().__init__()
        shape = tuple(int(s) for s in in_shape)
        if not shape or any(s < 1 for s in shape):
            raise ConfigError(f"Autoencoder: in_shape must be a non-empty shape of positive sizes, got {in_shape!r}")
        if latent_dim < 1 or any(int(h) < 1 for h in hidden):
            raise ConfigError(f"Autoencoder: latent_dim and hidden widths must be >= 1, got {latent_dim} and "
                              f"{tuple(hidden)}")
        if output not in _OUTPUTS:
            raise ConfigError(f"Autoencoder: output must be one of {_OUTPUTS}, got {output!r}")
        self.in_shape, self.latent_dim = shape, int(latent_dim)
        features = math.prod(shape)
        widths = [features, *(int(h) for h in hidden)]
        enc: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Linear(a, b), nn.ReLU()]
        enc.append(nn.Linear(widths[-1], self.latent_dim))
        dec: list[nn.Module] = []
        back = [self.latent_dim, *reversed(widths[1:])]
        for a, b in zip(back[:-1], back[1:]):
            dec += [nn.Linear(a, b), nn.ReLU()]
        dec.append(nn.Linear(back[-1], features))
        if output == "sigmoid":
            dec.append(nn.Sigmoid())
        dec.append(nn.Unflatten(1, shape))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        """The code of ``x``: ``(N, *in_shape)`` -> ``(N, latent_dim)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """The input a code stands for: ``(N, latent_dim)`` -> ``(N, *in_shape)``."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction ``decode(encode(x))``."""
        return self.decode(self.encode(x))
