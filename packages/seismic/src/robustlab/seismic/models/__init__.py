"""The seismic models: a 1D CNN on waveforms (:class:`ConvNetQuake`, Perol et al. 2018) and a 2D CNN on log-mel
spectrograms it computes itself (:class:`SpectrogramCNN`, after Linville et al. 2019). Both take z-scored waveforms
``(N, C, L)`` (100 s at 20 Hz: ``L = 2000``; ``C = 1`` vertical, 3 for ZNE), return logits ``(N, K)``, have
``embed(x) -> (N, embedding_dim)`` (the values the final linear layer ``head`` reads), carry a ``citation`` and
record their constructor arguments, so :func:`robustlab.common.modelfile.save_model`/``load_model`` rebuild them.

=========  ===========================  ===============================================
name       class                        network
=========  ===========================  ===============================================
``cnn``    :class:`ConvNetQuake`        8 conv1d (k 3, stride 2, 32 filters) + ReLU, flatten, linear
``spec``   :class:`SpectrogramCNN`      log-mel (32 x 63), 3 conv2d blocks (16/32/64), average pool, linear
=========  ===========================  ===============================================

Import cost: torch only.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from robustlab.common.errors import ConfigError
from robustlab.seismic.models.convnetquake import ConvNetQuake
from robustlab.seismic.models.spectrogram_cnn import SpectrogramCNN

__all__ = ["MODELS", "ConvNetQuake", "SpectrogramCNN", "build_model"]

MODELS: dict[str, type[nn.Module]] = {"cnn": ConvNetQuake, "spec": SpectrogramCNN}
"""The models by the name ``robustlab seismic train --model`` takes."""


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The model called ``name`` in :data:`MODELS`, built with ``kwargs``.

    Raises:
        ConfigError: an unknown name (with the closest known one) or arguments the class does not take.

    Examples::

        >>> build_model("cnn", in_channels=3, n_samples=1200).in_channels
        3
    """
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown seismic model {name!r}: expected one of {sorted(MODELS)}{hint}")
    try:
        return MODELS[name](**kwargs)
    except TypeError as e:
        raise ConfigError(f"seismic model {name!r}: {e}") from None
