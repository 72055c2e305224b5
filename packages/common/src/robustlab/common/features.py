"""Recording what a model's layers compute: :class:`FeatureRecorder`, a context manager over forward hooks.

Latent-geometry losses (a penalty on the penultimate features), probing, filter motifs (genomics) and
activation statistics all need a layer's output during an ordinary forward pass, without changing the model.
:class:`FeatureRecorder` registers forward hooks on named submodules for the duration of a ``with`` block and
removes them on exit, also after an error.

Forward passes made by an attack or an attribution while it computes input gradients are not recorded by
default: every attack and attribution runs the model inside
:func:`robustlab.common.modes.input_gradient_context`, which enters :func:`attack_pass`, and a recorder stays
silent while that context variable is set (``during_attacks=True`` records them too). A regime that records the
features of its training forward pass therefore sees that pass only, not the ten forward passes of a PGD attack
made in between.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from torch import Tensor, nn

from robustlab.common.errors import ConfigError

__all__ = ["FeatureRecorder", "KEEP", "attack_pass", "in_attack_pass"]

KEEP = ("last", "all")
"""What a recorder keeps of a layer that runs several times: its last output, or every output in order."""

_ATTACK_PASS: ContextVar[bool] = ContextVar("robustlab_attack_pass", default=False)


@contextmanager
def attack_pass() -> Iterator[None]:
    """Mark the block as an attack's or attribution's input-gradient computation (recorders stay silent).

    Entered by :func:`robustlab.common.modes.input_gradient_context`, hence by every attack and attribution;
    a hand-written attack loop can enter it itself. Nests; the previous value is restored on exit.
    """
    token = _ATTACK_PASS.set(True)
    try:
        yield
    finally:
        _ATTACK_PASS.reset(token)


def in_attack_pass() -> bool:
    """True inside :func:`attack_pass` (in this thread or task)."""
    return _ATTACK_PASS.get()


class FeatureRecorder:
    """Record the outputs of some of a model's submodules during forward passes, inside a ``with`` block.

    Args:
        model: the network whose submodules are recorded.
        layers: one layer or a sequence of layers, each a name from ``model.named_modules()`` (``"0.conv"``,
            ``"encoder.layer3"``; ``""`` is the model itself) or a submodule of ``model``.
        detach: record detached tensors (for statistics, motifs). The default keeps the graph, so that a loss
            on the recorded features trains the model through them.
        keep: ``"last"``: ``outputs[name]`` is the layer's last output; ``"all"``: the list of every output since
            the block was entered (or :meth:`clear` was called), in the order the layer ran.
        during_attacks: also record forward passes made inside :func:`attack_pass` (attacks and attributions).

    Attributes:
        names: the qualified names of the recorded layers, in the order given.
        outputs: ``name -> output`` (``keep="last"``; a layer that has not run yet has no entry) or
            ``name -> list of outputs`` (``keep="all"``). It stays readable after the block.

    Raises:
        ConfigError: a name that is not a submodule (the message lists close names), a module that is not part
            of ``model``, a layer given twice, or a ``keep`` that is not in :data:`KEEP`.

    Shape:
        each recorded output has the shape the layer returns (a tuple output is kept as a tuple).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with FeatureRecorder(model, "1") as rec:
        ...     logits = model(torch.randn(3, 4))
        >>> rec.outputs["1"].shape
        torch.Size([3, 8])
        >>> len(model[1]._forward_hooks)  # the hook is gone
        0
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | nn.Module | Sequence[str | nn.Module],
        *,
        detach: bool = False,
        keep: str = "last",
        during_attacks: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model must be an nn.Module, got {type(model).__name__}")
        if keep not in KEEP:
            raise ConfigError(f"keep must be one of {KEEP}, got {keep!r}")
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        elif not isinstance(layers, Sequence) or not layers:
            raise ConfigError(f"layers must be a name, a module or a non-empty sequence of them, got {layers!r}")
        self.model = model
        self.detach = detach
        self.keep = keep
        self.during_attacks = during_attacks
        self._modules = [self._resolve(layer) for layer in layers]
        self.names = [name for name, _ in self._modules]
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"a layer is given twice: {self.names}")
        self.outputs: dict[str, Any] = {}
        self._handles: list[Any] = []
        self.clear()

    def _resolve(self, layer: str | nn.Module) -> tuple[str, nn.Module]:
        named = dict(self.model.named_modules(remove_duplicate=False))
        if isinstance(layer, str):
            if layer in named:
                return layer, named[layer]
            close = difflib.get_close_matches(layer, [n for n in named if n], n=5, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else ""
            some = [n for n in named if n][:12]
            raise ConfigError(
                f"{type(self.model).__name__} has no submodule {layer!r}{hint} (names from model.named_modules(), "
                f"e.g. {', '.join(some)}{', ...' if len(named) > 13 else ''})"
            )
        if isinstance(layer, nn.Module):
            for name, module in named.items():
                if module is layer:
                    return name, module
            raise ConfigError(f"the {type(layer).__name__} given as a layer is not a submodule of "
                              f"{type(self.model).__name__}")
        raise ConfigError(f"a layer is a name or an nn.Module, got {type(layer).__name__}")

    # -- the context ----------------------------------------------------------------------------------------------
    def __enter__(self) -> FeatureRecorder:
        if self._handles:
            raise RuntimeError("this FeatureRecorder is already recording; enter a recorder once at a time")
        self.clear()
        try:
            for name, module in self._modules:
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._remove()

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @property
    def active(self) -> bool:
        """True inside the ``with`` block (the hooks are registered)."""
        return bool(self._handles)

    def clear(self) -> None:
        """Forget what was recorded (e.g. between batches)."""
        self.outputs = {name: [] for name in self.names} if self.keep == "all" else {}

    def _hook(self, name: str):
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if not self.during_attacks and _ATTACK_PASS.get():
                return
            if self.detach:
                output = _detach(output)
            if self.keep == "all":
                self.outputs[name].append(output)
            else:
                self.outputs[name] = output

        return record

    def __repr__(self) -> str:
        return (f"FeatureRecorder(layers={self.names}, detach={self.detach}, keep={self.keep!r}, "
                f"during_attacks={self.during_attacks})")


def _detach(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, tuple):
        return type(output)(*map(_detach, output)) if hasattr(output, "_fields") else tuple(map(_detach, output))
    if isinstance(output, list):
        return [_detach(o) for o in output]
    if isinstance(output, dict):
        return {k: _detach(v) for k, v in output.items()}
    return output
