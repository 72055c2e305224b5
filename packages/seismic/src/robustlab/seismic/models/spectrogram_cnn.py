"""A small 2D CNN on log-mel spectrograms that it computes itself from waveforms (Linville, Pankow & Draelos 2019).

Import cost: torch only (librosa when the mel filter bank is built).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs
from robustlab.seismic.spectrogram import Spectrogram

__all__ = ["SpectrogramCNN"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"SpectrogramCNN: {name} must be an int >= 1, got {value!r}")
    return value


class InstanceStandardize(nn.Module):
    """``(s - mean) / (std + eps)`` over the last two axes (frequency, time) of each spectrogram, per channel.

    The log-spectrogram's overall level only shifts every value of a z-scored trace alike; standardising each one
    leaves the network the spectrogram's shape (which bands, when) and keeps the inputs near unit scale without
    batch statistics.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, s: Tensor) -> Tensor:
        mean = s.mean(dim=(-2, -1), keepdim=True)
        std = s.std(dim=(-2, -1), keepdim=True, unbiased=False)
        return (s - mean) / (std + self.eps)


class SpectrogramCNN(RecordsArgs, nn.Module):
    """Waveforms to a log-mel :class:`~robustlab.seismic.spectrogram.Spectrogram`, then a small 2D CNN.

    Layers: ``Spectrogram(rate, n_fft, hop_length, n_mels, fmin, fmax)`` (log10 mel power, ``(N, C, n_mels, T)``:
    32 x 63 for 100 s at 20 Hz), a per-spectrogram standardisation (:class:`InstanceStandardize`), then for each
    width of ``channels`` a 3 x 3 convolution (same padding), [batch norm,] ReLU and a 2 x 2 max-pool; a global
    average pool gives the embedding (the last width), dropout, and a linear layer the logits.

    Linville, Pankow & Draelos (2019) discriminate quarry blasts from earthquakes in Utah with a CNN on spectrograms
    of the three-component waveforms (and an LSTM on the same input); the widths and depths here are ours, sized for
    single-channel 100 s windows at 20 Hz and one CPU thread. The spectrogram is computed inside the network (not
    cached) so that VAT, EAAT and attacks perturb the waveform.

    Args:
        in_channels: components ``C`` (each gets its own spectrogram; they are the CNN's input channels).
        n_classes: outputs ``K``.
        rate: sampling rate of the input (Hz).
        n_mels: mel bands.
        n_fft, hop_length, fmin, fmax: the spectrogram's (see :class:`~robustlab.seismic.spectrogram.Spectrogram`).
        channels: filters of each convolution block.
        dropout: dropout before the linear layer.
        batch_norm: batch norm after each convolution (off by default, as in ConvNetQuake: batch statistics and the
            perturbed forward passes of VAT/EAAT do not mix well).
        n_samples: samples per window ``L`` expected, checked when given; None (the default) accepts any length of
            at least ``(2^len(channels) - 1) * hop_length`` samples (the global average pool makes the network
            length-free).

    Shape:
        input ``(N, in_channels, L)`` waveforms (``L = n_samples`` when given); output ``(N, n_classes)`` logits; :meth:`embed` gives the
        ``(N, embedding_dim)`` values the linear layer ``head`` reads.

    Reference:
        Linville, L., Pankow, K., Draelos, T. "Deep learning models augment analyst decisions for event
        discrimination", Geophysical Research Letters 46(7):3643-3651, 2019.

    Examples::

        >>> import torch
        >>> model = SpectrogramCNN()
        >>> model(torch.randn(2, 1, 2000)).shape, tuple(model.spectrogram(torch.randn(2, 1, 2000)).shape)
        (torch.Size([2, 2]), (2, 1, 32, 63))
    """

    citation = (
        "Linville, L., Pankow, K., Draelos, T. Deep learning models augment analyst decisions for event "
        "discrimination. Geophysical Research Letters 46(7):3643-3651, 2019. doi:10.1029/2018GL081119"
    )

    def __init__(self, in_channels: int = 1, n_classes: int = 2, rate: float = 20.0, n_mels: int = 32, *,
                 n_fft: int = 128, hop_length: int = 32, fmin: float = 1.0, fmax: float = 8.0,
                 channels: Sequence[int] = (16, 32, 64), dropout: float = 0.3, batch_norm: bool = False,
                 n_samples: int | None = None) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("n_classes", n_classes), ("n_mels", n_mels)):
            _positive_int(name, value)
        if n_samples is not None:
            _positive_int("n_samples", n_samples)
        widths = tuple(channels)
        if not widths:
            raise ConfigError(f"SpectrogramCNN: channels needs at least one width, got {channels!r}")
        for w in widths:
            _positive_int("channels", w)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ConfigError(f"SpectrogramCNN: dropout must be in [0, 1), got {dropout!r}")
        if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
            raise ConfigError(f"SpectrogramCNN: rate must be a finite number > 0 (Hz), got {rate!r}")
        self.spectrogram = Spectrogram(rate, n_fft, hop_length, n_mels, fmin, fmax, log=True)
        self.min_frames = 2 ** len(widths)
        self.min_samples = (self.min_frames - 1) * hop_length
        frames, bands = self.spectrogram.n_frames(n_samples or self.min_samples), n_mels
        if min(frames, bands) < self.min_frames:
            raise ConfigError(f"SpectrogramCNN: {len(widths)} 2 x 2 pools need spectrograms of at least "
                              f"{2 ** len(widths)} x {2 ** len(widths)}; n_mels={n_mels} and {frames} frames "
                              f"(n_samples={n_samples}, hop_length={hop_length}) give {bands} x {frames}")
        self.in_channels, self.n_classes, self.n_samples, self.rate = in_channels, n_classes, n_samples, float(rate)
        self.num_classes = n_classes
        layers: list[nn.Module] = [InstanceStandardize()]
        cin = in_channels
        for w in widths:
            layers.append(nn.Conv2d(cin, w, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(w))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            cin = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.embedding_dim = cin
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, n_classes))

    def _check(self, x: Tensor) -> None:
        length = self.n_samples if self.n_samples is not None else f"L >= {self.min_samples}"
        if (x.ndim != 3 or x.shape[1] != self.in_channels
                or (self.n_samples is not None and x.shape[2] != self.n_samples) or x.shape[2] < self.min_samples):
            raise ValueError(f"SpectrogramCNN takes waveforms of shape (N, {self.in_channels}, {length}), "
                             f"got {tuple(x.shape)}")

    def embed(self, x: Tensor) -> Tensor:
        """The ``(N, embedding_dim)`` features before the final linear layer."""
        self._check(x)
        return self.body(self.spectrogram(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))
