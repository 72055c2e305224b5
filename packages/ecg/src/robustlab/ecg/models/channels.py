"""The four channel models of the multi-resolution representation (Wang et al. 2020): each learns a vector
representation of the ECG at its own resolution and is trained alone as a classifier.

Every model takes windows ``(N, C, L)`` in millivolts (MIT-BIH beats: ``C = 1``, ``L = 720``, 2 s at 360 Hz with
the annotated R peak at sample 360) and does its own preprocessing as modules
(:mod:`robustlab.ecg.preprocessing`): :class:`~robustlab.ecg.preprocessing.Crop` to the part it looks at,
:class:`~robustlab.ecg.preprocessing.Decimate` to its time resolution, then a per-window, per-lead z-score
(:class:`~robustlab.ecg.preprocessing.Normalize`). An attack whose ``eps`` is in millivolts therefore
differentiates through the preprocessing, and a model file rebuilds the whole chain.

=============  ====================================  ================================  ======================
name           class                                 input (beats, 360 Hz)             record level (500 Hz)
=============  ====================================  ================================  ======================
``cnn``        :class:`ECGCNN` (Acharya 2017)        beat [-0.25 s, +0.45 s], 360 Hz   whole window, 100 Hz
``resnet``     :class:`ECGResNet` (Hannun 2019)      beat [-0.25 s, +0.45 s], 360 Hz   whole window, 100 Hz
``bigru``      :class:`ECGBiGRU` (Yildirim 2018)     beat [-0.25 s, +0.45 s], 90 Hz    whole window, 25 Hz
``cnn_lstm``   :class:`ECGCNNLSTM` (Oh 2018)         whole 2 s window, 120 Hz          whole window, 50 Hz
=============  ====================================  ================================  ======================

Each model has ``forward(x) -> logits (N, K)``, ``embed(x) -> (N, embedding_dim)`` (the representation after the
last hidden layer, which the final linear layer ``head`` maps to the logits) and a ``citation``. They are small
(5k-100k parameters) so that one epoch over the 45,000 beats of MIT-BIH DS1 takes seconds on one CPU thread
(``benchmarks`` of the package measure it). :func:`build_channel_model` builds one by name with the defaults of
the table; its keyword ``beat=False`` gives the record-level variant for the 12-lead PhysioNet/CinC task.

Import cost: torch only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.errors import ConfigError
from robustlab.common.modelfile import RecordsArgs
from robustlab.ecg.preprocessing import Crop, Decimate, Normalize

__all__ = [
    "BEAT_CROP_S",
    "CHANNEL_MODELS",
    "ChannelModel",
    "NormedEmbedding",
    "ECGBiGRU",
    "ECGCNN",
    "ECGCNNLSTM",
    "ECGResNet",
    "build_channel_model",
    "channel_defaults",
]

BEAT_CROP_S = (0.25, 0.45)
"""Seconds before and after the R peak that the beat models look at."""


def _positive_int(model: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{model}: {name} must be an int >= 1, got {value!r}")
    return value


def _widths(model: str, name: str, value: Sequence[int]) -> tuple[int, ...]:
    widths = tuple(value)
    if not widths:
        raise ConfigError(f"{model}: {name} needs at least one width, got {value!r}")
    for w in widths:
        _positive_int(model, name, w)
    return widths


class ChannelModel(nn.Module):
    """What the four channel models share: the input check, the preprocessing ``prep``, ``embed`` and ``head``.

    A subclass builds ``self.body`` (preprocessed windows to the embedding) in its constructor after calling
    :meth:`_setup`, which builds ``prep`` and ``head``.

    Attributes:
        embedding_dim: the size ``D`` of :meth:`embed`.
        num_classes, in_channels, window: the output size and the input shape ``(C, L)`` expected.
        crop: ``(start, length)`` in samples of the stored window, after which ``prep`` decimates by ``factor``.
        rate: the sampling rate the network works at (Hz), ``fs / factor``.
        steps: the number of samples per lead after the preprocessing.
    """

    citation: str = ""
    body: nn.Module

    def _setup(self, *, num_classes: int, in_channels: int, fs: float, window: int, r_index: int,
               crop_s: Sequence[float] | None, rate: float, embedding_dim: int, dropout: float,
               min_steps: int) -> None:
        name = type(self).__name__
        _positive_int(name, "num_classes", num_classes)
        _positive_int(name, "in_channels", in_channels)
        _positive_int(name, "window", window)
        _positive_int(name, "embedding_dim", embedding_dim)
        if not (fs > 0 and math.isfinite(fs)):
            raise ConfigError(f"{name}: fs must be a finite number > 0 (Hz), got {fs!r}")
        if not (rate > 0 and math.isfinite(rate)):
            raise ConfigError(f"{name}: rate must be a finite number > 0 (Hz), got {rate!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        if crop_s is None:
            start, length = 0, window
        else:
            if len(crop_s) != 2 or any(not (s >= 0) for s in crop_s) or sum(crop_s) <= 0:
                raise ConfigError(f"{name}: crop_s must be (seconds before, seconds after) the R peak, both >= 0, "
                                  f"got {crop_s!r}")
            start = r_index - round(crop_s[0] * fs)
            length = round((crop_s[0] + crop_s[1]) * fs)
            if start < 0 or start + length > window:
                raise ConfigError(
                    f"{name}: the crop [-{crop_s[0]} s, +{crop_s[1]} s] around the R peak at sample {r_index} is "
                    f"samples {start}..{start + length} at {fs:g} Hz, outside the window of {window} samples")
        factor = max(1, round(fs / rate))
        steps = length // factor
        if steps < min_steps:
            raise ConfigError(f"{name}: {length} samples decimated by {factor} leave {steps} samples; the network "
                              f"needs at least {min_steps} (a longer window or a higher rate)")
        self.num_classes, self.in_channels, self.window = num_classes, in_channels, window
        self.embedding_dim, self.crop, self.factor = embedding_dim, (start, length), factor
        self.rate, self.steps = fs / factor, steps
        self.prep = nn.Sequential(Crop(start, length), Decimate(factor), Normalize("zscore"))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))

    def _check(self, x: Tensor) -> None:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.window:
            raise ValueError(f"{type(self).__name__} takes windows of shape (N, {self.in_channels}, {self.window}) "
                             f"in mV, got {tuple(x.shape)}")

    def preprocess(self, x: Tensor) -> Tensor:
        """The windows as the network sees them: cropped, decimated, z-scored, ``(N, C, steps)``."""
        self._check(x)
        return self.prep(x)

    def embed(self, x: Tensor) -> Tensor:
        """The representation ``(N, embedding_dim)`` of windows ``(N, C, L)`` in mV (before the final linear layer)."""
        return self.body(self.preprocess(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


class NormedEmbedding(nn.Module):
    """A channel model whose embedding goes through batch normalization (the submodule ``norm``) before its head.

    For distance-based methods: LDCE's similarity (:class:`robustlab.common.regimes.LDCE`) is the inverse of a mean
    squared distance between embeddings, which assumes unit-scale features (the authors' ResNet features are
    batch-normalized); on a channel model's raw embedding the untrained network's tiny distances make that loss
    explode.

    Args:
        inner: a :class:`ChannelModel`.

    Shape:
        as ``inner``.

    Examples::

        >>> import torch
        >>> net = NormedEmbedding(build_channel_model("cnn", num_classes=4))
        >>> net(torch.randn(3, 1, 720)).shape
        torch.Size([3, 4])
    """

    def __init__(self, inner: ChannelModel) -> None:
        super().__init__()
        if not isinstance(inner, ChannelModel):
            raise ConfigError(f"NormedEmbedding wraps a ChannelModel, got {type(inner).__name__}")
        self.inner = inner
        self.norm = nn.BatchNorm1d(inner.embedding_dim)

    def embed(self, x: Tensor) -> Tensor:
        """The normalized embedding ``(N, embedding_dim)``."""
        return self.norm(self.inner.embed(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.inner.head(self.embed(x))


def _conv_stack(in_channels: int, channels: Sequence[int], kernel: int) -> tuple[list[nn.Module], int]:
    """Convolution (no bias), batch norm, ReLU and max-pool by 2 for each width; returns the layers and the last
    width."""
    layers: list[nn.Module] = []
    cin = in_channels
    for cout in channels:
        layers += [nn.Conv1d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                   nn.MaxPool1d(2)]
        cin = cout
    return layers, cin


def _dense(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout), nn.ReLU())


class ECGCNN(RecordsArgs, ChannelModel):
    """A plain 1D CNN on the beat at full resolution: convolution blocks, then two dense layers.

    The network of Acharya et al. (2017), who classify 260-sample MIT-BIH beats at 360 Hz with three convolution
    and max-pool layers followed by dense layers (Kiranyaz et al. 2016 use the same pattern, patient-specific).
    Layers: for each width of ``channels``, a convolution of ``kernel`` (same padding), batch norm, ReLU, max-pool
    2; an average pool to ``positions`` positions (so the dense part does not depend on the length), flatten,
    dense ``hidden`` + ReLU, dense ``embedding_dim`` + ReLU (the embedding), dropout, linear to the logits.

    Departures from the paper: batch norm after each convolution, ReLU rather than leaky ReLU, wider layers
    (8/16/32 filters instead of 5/10/20) and the average pool before the dense layers.

    Args:
        num_classes: number of outputs ``K``.
        in_channels: leads ``C``.
        fs: sampling rate of the input (Hz).
        window: samples per window ``L``.
        r_index: sample of the R peak in the window.
        crop_s: seconds (before, after) the R peak the model looks at; None: the whole window.
        rate: sampling rate the network works at (Hz); the input is decimated by ``round(fs / rate)``.
        channels: filters of each convolution block.
        kernel: convolution width (odd).
        positions: positions kept by the average pool before the dense layers.
        hidden: width of the first dense layer.
        embedding_dim: width of the embedding ``D``.
        dropout: dropout before the final linear layer.

    Shape:
        input ``(N, in_channels, window)`` mV; output ``(N, num_classes)`` logits.

    Reference:
        Acharya, U. R., Oh, S. L., Hagiwara, Y., Tan, J. H., Adam, M., Gertych, A., San Tan, R. "A deep
        convolutional neural network model to classify heartbeats", Computers in Biology and Medicine 89:389-396,
        2017. See also Kiranyaz, S., Ince, T., Gabbouj, M. "Real-time patient-specific ECG classification by 1-D
        convolutional neural networks", IEEE Transactions on Biomedical Engineering 63(3):664-675, 2016.
    """

    citation = (
        "Acharya, U. R., Oh, S. L., Hagiwara, Y., Tan, J. H., Adam, M., Gertych, A., San Tan, R. A deep "
        "convolutional neural network model to classify heartbeats. Computers in Biology and Medicine 89:389-396, "
        "2017. doi:10.1016/j.compbiomed.2017.08.022"
    )

    def __init__(self, num_classes: int = 4, *, in_channels: int = 1, fs: float = 360.0, window: int = 720,
                 r_index: int = 360, crop_s: Sequence[float] | None = BEAT_CROP_S, rate: float = 360.0,
                 channels: Sequence[int] = (8, 16, 32), kernel: int = 5, positions: int = 8, hidden: int = 64,
                 embedding_dim: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        channels = _widths("ECGCNN", "channels", channels)
        for n, v in (("kernel", kernel), ("positions", positions), ("hidden", hidden)):
            _positive_int("ECGCNN", n, v)
        self._setup(num_classes=num_classes, in_channels=in_channels, fs=fs, window=window, r_index=r_index,
                    crop_s=crop_s, rate=rate, embedding_dim=embedding_dim, dropout=dropout,
                    min_steps=2 ** len(channels))
        layers, cin = _conv_stack(in_channels, channels, kernel)
        layers += [nn.AdaptiveAvgPool1d(positions), nn.Flatten(), _dense(cin * positions, hidden),
                   _dense(hidden, embedding_dim)]
        self.body = nn.Sequential(*layers)


class _ResBlock(nn.Module):
    """Hannun et al.'s pre-activation residual block: [BN, ReLU, dropout,] conv (stride), BN, ReLU, dropout, conv;
    the shortcut max-pools by the stride and zero-pads the new channels."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, dropout: float, first: bool) -> None:
        super().__init__()
        pre: list[nn.Module] = [] if first else [nn.BatchNorm1d(cin), nn.ReLU(), nn.Dropout(dropout)]
        self.branch = nn.Sequential(
            *pre,
            nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(cout), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv1d(cout, cout, kernel, padding=kernel // 2, bias=False),
        )
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: Tensor) -> Tensor:
        short = F.max_pool1d(x, self.stride, ceil_mode=True) if self.stride > 1 else x
        if self.extra:
            short = F.pad(short, (0, 0, 0, self.extra))
        return self.branch(x) + short


class ECGResNet(RecordsArgs, ChannelModel):
    """A scaled-down version of the 34-layer residual network of Hannun et al. (2019).

    Hannun et al. map single-lead 200 Hz ECG to rhythm classes with a convolution and 16 pre-activation residual
    blocks (kernel 16, 32·2^k filters doubling every 4 blocks, subsampling by 2 every other block, max-pool
    shortcuts). Here: a stem convolution (stride ``stem_stride``), batch norm, ReLU; one residual block per width
    of ``channels`` (subsampling by 2 in every other block, the channel count growing where the width does, new
    shortcut channels zero-padded as in the paper); batch norm, ReLU, global average pool, dense
    ``embedding_dim`` + ReLU (the embedding), dropout, linear to the logits (the paper classifies every time step;
    one label per window here).

    Args:
        num_classes, in_channels, fs, window, r_index, crop_s, rate, embedding_dim, dropout: as :class:`ECGCNN`.
        channels: width of each residual block (4 blocks by default, instead of 16).
        kernel: convolution width (odd; the paper's is 16).
        stem_stride: stride of the stem convolution.
        block_dropout: dropout inside the blocks (the paper's is 0.2).

    Shape:
        input ``(N, in_channels, window)`` mV; output ``(N, num_classes)`` logits.

    Reference:
        Hannun, A. Y., Rajpurkar, P., Haghpanahi, M., Tison, G. H., Bourn, C., Turakhia, M. P., Ng, A. Y.
        "Cardiologist-level arrhythmia detection and classification in ambulatory electrocardiograms using a deep
        neural network", Nature Medicine 25:65-69, 2019.
    """

    citation = (
        "Hannun, A. Y., Rajpurkar, P., Haghpanahi, M., Tison, G. H., Bourn, C., Turakhia, M. P., Ng, A. Y. "
        "Cardiologist-level arrhythmia detection and classification in ambulatory electrocardiograms using a deep "
        "neural network. Nature Medicine 25:65-69, 2019. doi:10.1038/s41591-018-0268-3"
    )

    def __init__(self, num_classes: int = 4, *, in_channels: int = 1, fs: float = 360.0, window: int = 720,
                 r_index: int = 360, crop_s: Sequence[float] | None = BEAT_CROP_S, rate: float = 360.0,
                 channels: Sequence[int] = (16, 16, 32, 32), kernel: int = 9, stem_stride: int = 2,
                 embedding_dim: int = 32, dropout: float = 0.1, block_dropout: float = 0.0) -> None:
        super().__init__()
        channels = _widths("ECGResNet", "channels", channels)
        _positive_int("ECGResNet", "kernel", kernel)
        _positive_int("ECGResNet", "stem_stride", stem_stride)
        if not 0.0 <= block_dropout < 1.0:
            raise ConfigError(f"ECGResNet: block_dropout must be in [0, 1), got {block_dropout!r}")
        self._setup(num_classes=num_classes, in_channels=in_channels, fs=fs, window=window, r_index=r_index,
                    crop_s=crop_s, rate=rate, embedding_dim=embedding_dim, dropout=dropout,
                    min_steps=stem_stride * 2 ** (len(channels) // 2))
        layers: list[nn.Module] = [
            nn.Conv1d(in_channels, channels[0], kernel, stride=stem_stride, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(channels[0]), nn.ReLU(),
        ]
        cin = channels[0]
        for i, cout in enumerate(channels):
            if cout < cin:
                raise ConfigError(f"ECGResNet: channels must not decrease (the shortcut pads), got {channels!r}")
            layers.append(_ResBlock(cin, cout, kernel, 2 if i % 2 else 1, block_dropout, first=i == 0))
            cin = cout
        layers += [nn.BatchNorm1d(cin), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), _dense(cin, embedding_dim)]
        self.body = nn.Sequential(*layers)


class _LastStates(nn.Module):
    """The final hidden state of a batch-first recurrent layer over ``(N, C, T)`` (both directions concatenated)."""

    def __init__(self, rnn: nn.GRU | nn.LSTM) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.rnn(x.transpose(1, 2))
        if isinstance(h, tuple):  # LSTM: (h, c)
            h = h[0]
        return torch.cat(list(h[-(2 if self.rnn.bidirectional else 1):]), dim=1)


class ECGBiGRU(RecordsArgs, ChannelModel):
    """A bidirectional recurrent network on the beat at a lower time resolution (90 Hz by default).

    Yildirim (2018) classifies MIT-BIH beats with a deep bidirectional LSTM over the beat's samples (or its
    wavelet sub-bands); a bidirectional GRU, cheaper on a CPU, plays that part here. Layers: the decimated,
    z-scored beat as a sequence of ``C``-dimensional steps, ``layers`` bidirectional GRU layers of ``hidden``
    units, the final states of both directions of the last layer (``2 * hidden``), dense ``embedding_dim`` + ReLU
    (the embedding), dropout, linear to the logits.

    Args:
        num_classes, in_channels, fs, window, r_index, crop_s, rate, embedding_dim, dropout: as :class:`ECGCNN`.
        hidden: GRU units per direction.
        layers: stacked GRU layers.

    Shape:
        input ``(N, in_channels, window)`` mV; output ``(N, num_classes)`` logits.

    Reference:
        Yildirim, Ö. "A novel wavelet sequence based on deep bidirectional LSTM network model for ECG signal
        classification", Computers in Biology and Medicine 96:189-202, 2018.
    """

    citation = (
        "Yildirim, Ö. A novel wavelet sequence based on deep bidirectional LSTM network model for ECG signal "
        "classification. Computers in Biology and Medicine 96:189-202, 2018. doi:10.1016/j.compbiomed.2018.03.016"
    )

    def __init__(self, num_classes: int = 4, *, in_channels: int = 1, fs: float = 360.0, window: int = 720,
                 r_index: int = 360, crop_s: Sequence[float] | None = BEAT_CROP_S, rate: float = 90.0,
                 hidden: int = 32, layers: int = 1, embedding_dim: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        _positive_int("ECGBiGRU", "hidden", hidden)
        _positive_int("ECGBiGRU", "layers", layers)
        self._setup(num_classes=num_classes, in_channels=in_channels, fs=fs, window=window, r_index=r_index,
                    crop_s=crop_s, rate=rate, embedding_dim=embedding_dim, dropout=dropout, min_steps=2)
        gru = nn.GRU(in_channels, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.body = nn.Sequential(_LastStates(gru), _dense(2 * hidden, embedding_dim))


class ECGCNNLSTM(RecordsArgs, ChannelModel):
    """A CNN-LSTM over a wider context: the whole 2 s window, the neighbouring beats included, at 120 Hz.

    Oh et al. (2018) classify variable-length MIT-BIH segments with three convolution and max-pool layers whose
    feature sequence feeds an LSTM, followed by dense layers. Layers: for each width of ``channels`` a
    convolution of ``kernel`` (same padding), batch norm, ReLU, max-pool 2; an LSTM of ``hidden`` units over the
    feature sequence, its final state; dense ``embedding_dim`` + ReLU (the embedding), dropout, linear to the
    logits. With the default ``crop_s=None`` it sees the whole window: the preceding and following beats, so the
    rhythm (a premature beat, a compensatory pause) as well as the morphology.

    Departures from the paper: batch norm, wider convolutions (16/32/32 filters instead of 3/6/6), one dense layer
    after the LSTM instead of two.

    Args:
        num_classes, in_channels, fs, window, r_index, crop_s, rate, embedding_dim, dropout: as :class:`ECGCNN`.
        channels: filters of each convolution block.
        kernel: convolution width (odd).
        hidden: LSTM units.

    Shape:
        input ``(N, in_channels, window)`` mV; output ``(N, num_classes)`` logits.

    Reference:
        Oh, S. L., Ng, E. Y. K., San Tan, R., Acharya, U. R. "Automated diagnosis of arrhythmia using combination
        of CNN and LSTM techniques with variable length heart beats", Computers in Biology and Medicine
        102:278-287, 2018.
    """

    citation = (
        "Oh, S. L., Ng, E. Y. K., San Tan, R., Acharya, U. R. Automated diagnosis of arrhythmia using combination of "
        "CNN and LSTM techniques with variable length heart beats. Computers in Biology and Medicine 102:278-287, "
        "2018. doi:10.1016/j.compbiomed.2018.06.002"
    )

    def __init__(self, num_classes: int = 4, *, in_channels: int = 1, fs: float = 360.0, window: int = 720,
                 r_index: int = 360, crop_s: Sequence[float] | None = None, rate: float = 120.0,
                 channels: Sequence[int] = (16, 32, 32), kernel: int = 7, hidden: int = 32,
                 embedding_dim: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        channels = _widths("ECGCNNLSTM", "channels", channels)
        _positive_int("ECGCNNLSTM", "kernel", kernel)
        _positive_int("ECGCNNLSTM", "hidden", hidden)
        self._setup(num_classes=num_classes, in_channels=in_channels, fs=fs, window=window, r_index=r_index,
                    crop_s=crop_s, rate=rate, embedding_dim=embedding_dim, dropout=dropout,
                    min_steps=2 ** len(channels))
        layers, cin = _conv_stack(in_channels, channels, kernel)
        layers += [_LastStates(nn.LSTM(cin, hidden, batch_first=True)), _dense(hidden, embedding_dim)]
        self.body = nn.Sequential(*layers)


CHANNEL_MODELS: dict[str, type[ChannelModel]] = {
    "cnn": ECGCNN,
    "resnet": ECGResNet,
    "bigru": ECGBiGRU,
    "cnn_lstm": ECGCNNLSTM,
}
"""The channel models by name."""

_DEFAULTS = {  # (crop_s, rate) for beats / for record-level windows
    "cnn": ((BEAT_CROP_S, 360.0), (None, 100.0)),
    "resnet": ((BEAT_CROP_S, 360.0), (None, 100.0)),
    "bigru": ((BEAT_CROP_S, 90.0), (None, 25.0)),
    "cnn_lstm": ((None, 120.0), (None, 50.0)),
}


def channel_defaults(name: str, *, beat: bool = True) -> dict[str, Any]:
    """The input geometry :func:`build_channel_model` gives the model ``name``: ``{"crop_s": ..., "rate": ...}``."""
    if name not in CHANNEL_MODELS:
        raise ConfigError(f"unknown channel model {name!r}; choose from {', '.join(CHANNEL_MODELS)}")
    crop_s, rate = _DEFAULTS[name][0 if beat else 1]
    return {"crop_s": crop_s, "rate": rate}


def build_channel_model(name: str, *, num_classes: int, in_channels: int = 1, fs: float = 360.0, window: int = 720,
                        r_index: int = 360, beat: bool = True, **overrides: Any) -> ChannelModel:
    """The channel model ``name`` (a key of :data:`CHANNEL_MODELS`) for windows ``(N, in_channels, window)``.

    Args:
        name: ``"cnn"``, ``"resnet"``, ``"bigru"`` or ``"cnn_lstm"``.
        num_classes: outputs ``K``.
        in_channels: leads.
        fs: sampling rate of the windows (Hz).
        window: samples per window.
        r_index: sample of the R peak (beat windows).
        beat: True: beat windows (the beat models crop [-0.25 s, +0.45 s] around the R peak, the context model
            sees the whole window; rates 360/360/90/120 Hz); False: record-level windows (e.g. 10 s of 12-lead ECG
            at 500 Hz), no crop, stronger decimation (100/100/25/50 Hz) so that the models stay fast.
        overrides: constructor arguments of the class (``rate``, ``crop_s``, widths, ``dropout`` ...).

    Raises:
        ConfigError: an unknown name, or arguments the model cannot take (a crop outside the window...).
    """
    args = {**channel_defaults(name, beat=beat), **overrides}
    try:
        return CHANNEL_MODELS[name](num_classes=num_classes, in_channels=in_channels, fs=fs, window=window,
                                    r_index=r_index, **args)
    except TypeError as e:
        raise ConfigError(f"channel model {name!r}: {e}") from None
