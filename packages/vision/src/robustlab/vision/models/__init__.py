"""The vision models: the CIFAR-style ResNet of He et al. (2016) and the WideResNet of Zagoruyko & Komodakis (2016),
the encoder and the final classifier of LDCE (Liu et al. 2020), and the core's small MNIST CNN. Each takes images
``(N, C, H, W)`` (normalised as :func:`robustlab.vision.data.to_tensor` does), returns logits ``(N, K)``, carries a
``citation`` and records its constructor arguments, so :func:`robustlab.common.modelfile.save_model`/``load_model``
rebuild it. :func:`embedding_layer` names the submodule whose output is the embedding the last linear layer reads
(for :class:`robustlab.common.features.FeatureRecorder` and the LDCE regime).

==============  =================================  =================================================
name            class                              network
==============  =================================  =================================================
``small_cnn``   :class:`~robustlab.common.models.SmallCNN`  2 conv + max pool, 2 linear (embedding ``"8"``)
``resnet32``    :class:`ResNet` (``depth=32``)     3 stages x 5 basic blocks (16/32/64), 0.46 M weights
``wrn40_2``     :class:`WideResNet`                3 groups x 6 pre-activation blocks (32/64/128), dropout 0.3
==============  =================================  =================================================

The conditional DCGAN of the GAN augmentation (:class:`DCGANGenerator` ``G(z, y)`` -> images in ``[-1, 1]``,
:class:`DCGANDiscriminator` ``D(x, y)`` -> logits, spectral norm and a projection head) is exported too; it is not a
classifier, so :func:`build_model` does not build it.

Import cost: torch only.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from robustlab.common.errors import ConfigError
from robustlab.common.models import SmallCNN
from robustlab.vision.models.dcgan import DCGANDiscriminator, DCGANGenerator
from robustlab.vision.models.patch_cnn import PatchCNN
from robustlab.vision.models.resnet import ResNet
from robustlab.vision.models.wide_resnet import WideResNet

__all__ = ["MODELS", "DCGANDiscriminator", "DCGANGenerator", "PatchCNN", "ResNet", "WideResNet", "build_model",
           "embedding_layer"]

MODELS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "small_cnn": (SmallCNN, {}),
    "resnet32": (ResNet, {"depth": 32}),
    "wrn40_2": (WideResNet, {"depth": 40, "widen_factor": 2, "dropout": 0.3}),
}
"""The models by name: the class and the arguments the name fixes."""


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The model called ``name`` in :data:`MODELS`, built with ``kwargs`` (``in_channels``, ``num_classes``, ...).

    Raises:
        ConfigError: an unknown name (with the closest known one), an argument the name fixes (``depth`` of
            ``resnet32``: build :class:`ResNet` itself for another depth), or arguments the class does not take.

    Examples::

        >>> build_model("resnet32", num_classes=4).depth
        32
        >>> build_model("wrn40_2").embedding_dim
        128
    """
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown vision model {name!r}: expected one of {', '.join(MODELS)}{hint}")
    cls, fixed = MODELS[name]
    clash = sorted(k for k in kwargs if k in fixed and kwargs[k] != fixed[k])
    if clash:
        raise ConfigError(f"vision model {name!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; got "
                          f"{', '.join(f'{k}={kwargs[k]!r}' for k in clash)} (build {cls.__name__} directly for "
                          "another one)")
    try:
        return cls(**{**fixed, **kwargs})
    except TypeError as e:
        raise ConfigError(f"vision model {name!r}: {e}") from None


def embedding_layer(model: nn.Module) -> str:
    """The name (in ``model.named_modules()``) of the submodule whose output is the embedding: the model's
    ``embedding_layer`` attribute when it has one (:class:`ResNet`, :class:`WideResNet`: ``"features"``), else, for
    an ``nn.Sequential`` ending with a linear layer (:class:`~robustlab.common.models.SmallCNN`), the module before
    that layer.

    Raises:
        ConfigError: the model has neither.

    Examples::

        >>> embedding_layer(build_model("small_cnn")), embedding_layer(build_model("resnet32"))
        ('8', 'features')
    """
    name = getattr(model, "embedding_layer", None)
    if isinstance(name, str):
        return name
    if isinstance(model, nn.Sequential) and len(model) >= 2 and isinstance(model[-1], nn.Linear):
        return str(len(model) - 2)
    raise ConfigError(f"{type(model).__name__} names no embedding layer: expected an 'embedding_layer' attribute "
                      "or an nn.Sequential ending with a linear layer")
