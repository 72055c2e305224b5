"""Layer sustainability analysis (LSA): how far an attack moves each layer's representation, and which layers move most.

For a layer :math:`\\phi_l`, a clean input :math:`x` and its perturbed version :math:`\\hat x`, Khalooei et al.
(2022) compare the two representations by the relative error

.. math:: CM(\\phi_l(x), \\phi_l(\\hat x)) =
          \\lVert \\phi_l(x) - \\phi_l(\\hat x) \\rVert_F / \\lVert \\phi_l(x) \\rVert_F.

:func:`layer_sustainability` measures it for every chosen layer over a data set, both as the authors' code does
(``LayerSustainabilityAnalysis.representation_comparisons``: the Frobenius norms of the whole batch tensor, so
one number per layer) and per sample (the :math:`CM(\\phi_l(x_m), \\phi_l(\\hat x_m))` over which the paper's
mean :math:`\\mu` and standard deviation :math:`\\sigma` run). :func:`vulnerable_layers` applies the paper's
Algorithm 1 to them: layer :math:`l` is among the most vulnerable layers (the MVL list) when its relative error
exceeds :math:`\\mu + \\eta\\sigma`. :func:`relative_error` is the differentiable measure itself, shared with
the layer-wise regularized adversarial training of :class:`robustlab.common.regimes.atlr.ATLR`.

Layers are read through :class:`robustlab.common.features.FeatureRecorder`, by name, so any domain's model works.
By default (:func:`default_layers`) they are the activation modules (``ReLU``, ``ELU``, ``LeakyReLU``), the
authors' "probes": each follows one learnable (convolution or linear) layer, and the paper's plots number them
as the learnable layers 0, 1, 2, ...

Reference:
    Khalooei, M., Homayounpour, M. M., Amirmazlaghani, M. "Layer-wise Regularized Adversarial Training using Layers
    Sustainability Analysis (LSA) framework", arXiv:2202.02626, 2022. Code: github.com/khalooei/LSA at commit
    e4f9e8ee08bf315aca30273a35d2b88acaf5e020 (``LayerSustainabilityAnalysis/layersustainabilityanalysis.py``).

matplotlib is imported inside :func:`plot_layer_errors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder
from robustlab.common.modes import model_mode

__all__ = ["ACTIVATIONS", "LayerErrors", "default_layers", "layer_sustainability", "plot_layer_errors",
           "relative_error", "vulnerable_layers"]

ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ELU, nn.LeakyReLU)
"""The module types whose outputs LSA reads by default: the authors' ``selected_probs`` ("ReLU", "ELU",
"LeakyReLU")."""

_TINY = 1e-12


def default_layers(model: nn.Module) -> list[str]:
    """The names (``model.named_modules()``) of the model's activation modules (:data:`ACTIVATIONS`), in order.

    Raises:
        ConfigError: the model has none (an activation applied as a function, ``F.relu``, has no module to hook):
            pass ``layers`` by name then.
    """
    names = [name for name, m in model.named_modules() if name and isinstance(m, ACTIVATIONS)]
    if not names:
        kinds = ", ".join(a.__name__ for a in ACTIVATIONS)
        raise ConfigError(f"{type(model).__name__} has no activation module ({kinds}) for the default LSA layers; "
                          "pass layers=[names from model.named_modules()]")
    return names


def _modules_of(names: Sequence[str]) -> list[str]:
    """The module names behind layer names (``"relu#1"`` is the second call of ``"relu"``), once each, in order."""
    return list(dict.fromkeys(name.partition("#")[0] for name in names))


def _call_sites(outputs: Mapping[str, list], names: Sequence[str]) -> dict[str, Any]:
    """The recorded outputs (a ``keep="all"`` recorder's) of each layer name, one entry per call site.

    A module that ran once is its own name; one that ran ``k > 1`` times in the forward pass (one ``nn.ReLU``
    applied after several layers) gives ``k`` layers ``"name#0"`` ... ``"name#{k-1}"``, in call order, and
    ``"name#i"`` names one of them.

    Raises:
        ConfigError: a layer that did not run (or ran fewer than ``i + 1`` times).
    """
    out: dict[str, Any] = {}
    for name in names:
        base, _, idx = name.partition("#")
        runs = outputs.get(base) or []
        if idx:
            if not idx.isdigit() or int(idx) >= len(runs):
                raise ConfigError(f"layer {name!r} did not run in the forward pass ({base!r} ran {len(runs)} "
                                  "time(s); 'name#i' is its call i, from 0)")
            out[name] = runs[int(idx)]
        elif not runs:
            raise ConfigError(f"layer {name!r} did not run in the forward pass")
        elif len(runs) == 1:
            out[name] = runs[0]
        else:
            out.update({f"{name}#{i}": t for i, t in enumerate(runs)})
    return out


def relative_error(clean: Tensor, perturbed: Tensor, *, per_sample: bool = False) -> Tensor:
    """``||clean - perturbed||_F / ||clean||_F``: whole-tensor (the authors' code) or one value per sample.

    Differentiable in both arguments. A zero denominator (every clean activation zero, e.g. a dead ReLU) is
    replaced by 1e-12, so identical zero tensors give 0.

    Args:
        clean: a layer's output on the clean inputs.
        perturbed: the same layer's output on the perturbed inputs.
        per_sample: one value per sample (norms over every dimension but the first) instead of one for the batch.

    Returns:
        A scalar, or ``(N,)`` with ``per_sample``.

    Raises:
        ConfigError: the shapes differ.

    Shape:
        clean, perturbed: ``(N, *)``.

    Examples::

        >>> import torch
        >>> round(float(relative_error(torch.tensor([[3.0, 4.0]]), torch.tensor([[3.0, 3.0]]))), 4)
        0.2
    """
    if not isinstance(clean, Tensor) or not isinstance(perturbed, Tensor):
        raise ConfigError(f"relative_error compares two tensors, got {type(clean).__name__} and "
                          f"{type(perturbed).__name__} (a layer returning a tuple cannot be compared)")
    if clean.shape != perturbed.shape:
        raise ConfigError(f"relative_error: clean and perturbed representations differ in shape: "
                          f"{tuple(clean.shape)} vs {tuple(perturbed.shape)}")
    diff = (clean - perturbed).float()
    ref = clean.float()
    if per_sample:
        dims = tuple(range(1, clean.ndim))
        num = diff.pow(2).sum(dims).sqrt() if dims else diff.abs()
        den = ref.pow(2).sum(dims).sqrt() if dims else ref.abs()
    else:
        num, den = diff.pow(2).sum().sqrt(), ref.pow(2).sum().sqrt()
    return num / den.clamp_min(_TINY)


@dataclass(frozen=True)
class LayerErrors:
    """The relative errors of :func:`layer_sustainability`.

    Attributes:
        layers: the layer names, in the order given.
        errors: ``(L,)``: per layer, ``||Phi(X) - Phi(X')||_F / ||Phi(X)||_F`` over the whole data set (the
            authors' code computes this on one batch; here the squared norms are summed over every batch).
        per_sample: ``(N, L)``: per sample and layer, the relative error of that sample's representation.
    """

    layers: tuple[str, ...]
    errors: np.ndarray
    per_sample: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """``(L,)``: per layer, the mean over samples of the per-sample relative error."""
        return self.per_sample.mean(0)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: ``{"layers": [...], "errors": [...], "mean": [...]}``."""
        return {"layers": list(self.layers), "errors": [float(v) for v in self.errors],
                "mean": [float(v) for v in self.mean]}


def _batches(data: Any, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if len(x) != len(y):
            raise ConfigError(f"layer_sustainability: x has {len(x)} samples and y {len(y)}")
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    for batch in data:
        if isinstance(batch, Mapping):
            yield batch["x"], batch["y"]
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2:
            yield batch[0], batch[1]
        else:
            raise ConfigError("layer_sustainability: the data yields neither dicts with 'x' and 'y' nor (x, y) pairs, "
                              f"got {type(batch).__name__}")


def layer_sustainability(
    model: nn.Module,
    data: Any,
    attack: Callable[[Tensor, Tensor], Tensor],
    *,
    layers: Sequence[str] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> LayerErrors:
    """Relative error of each layer's representation between clean inputs and ``attack(x, y)`` (LSA).

    The model runs in eval mode (every submodule's mode is restored afterwards, so one held in eval mode stays
    there); the recorder's hooks are removed on return, also after an error. A module that runs more than once
    per forward pass (one ``nn.ReLU`` reused after several layers) is one layer per call site, ``"name#0"``,
    ``"name#1"``, ... in call order (the authors' hook records every call); ``layers`` may name one of them.

    Args:
        model: the trained network.
        data: a loader yielding batch dicts (``"x"``, ``"y"``) or ``(x, y)`` pairs, or a pair of tensors ``(x, y)``.
        attack: ``attack(x, y) -> x_perturbed``: an attack built on ``model`` (``PGD(model, eps=...)``) or any
            perturbation (statistical noise, as in the paper's comparisons).
        layers: names from ``model.named_modules()`` (or ``"name#i"``, call ``i`` of a reused module); default
            :func:`default_layers` (the activation modules).
        batch_size: batch size when ``data`` is a pair of tensors.
        device: where to run; default the device of the model's parameters.

    Returns:
        :class:`LayerErrors` (its ``layers`` one per call site).

    Raises:
        ConfigError: an unknown layer name (the message lists close names), no activation module for the default,
            a layer that returns a non-tensor, or empty data.

    Shape:
        x: ``(N, *)``; y: ``(N, *)`` as the attack expects.

    Reference:
        Khalooei et al., arXiv:2202.02626 (2022), Eq. (11) and Algorithm 2.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> x, y = torch.randn(16, 2), torch.randint(0, 2, (16,))
        >>> res = layer_sustainability(model, (x, y), lambda x, y: x + 0.1)
        >>> res.layers, res.per_sample.shape
        (('1', '3'), (16, 2))
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    names = list(layers) if layers is not None else default_layers(model)
    if not names:
        raise ConfigError("layers must name at least one layer (or be None for the activation modules)")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    sites: list[str] | None = None  # the layers, one per call site, known after the first batch
    diff2 = ref2 = np.zeros(0)
    per_sample: list[np.ndarray] = []
    with model_mode(model, "eval"), FeatureRecorder(model, _modules_of(names), detach=True, keep="all") as rec:
        for x, y in _batches(data, batch_size):
            x, y = x.to(device), y.to(device)
            x_adv = attack(x, y).detach()
            with torch.no_grad():
                rec.clear()
                model(x)
                clean = _call_sites(rec.outputs, names)
                rec.clear()
                model(x_adv)
                adv = _call_sites(rec.outputs, names)
            if sites is None:
                sites = list(clean)
                diff2, ref2 = np.zeros(len(sites)), np.zeros(len(sites))
            if list(clean) != sites or list(adv) != sites:
                raise ConfigError(f"layer_sustainability: the layers' call sites changed between passes: {sites} "
                                  f"then {list(clean)} and {list(adv)}")
            cols = []
            for j, name in enumerate(sites):
                c, a = clean[name], adv[name]
                relative_error(c, a)  # checks the shapes and types
                diff2[j] += float((c - a).double().pow(2).sum())
                ref2[j] += float(c.double().pow(2).sum())
                cols.append(relative_error(c, a, per_sample=True).cpu().double().numpy())
            per_sample.append(np.stack(cols, 1))
    if not per_sample:
        raise ConfigError("layer_sustainability: the data yielded no batch")
    errors = np.sqrt(diff2) / np.maximum(np.sqrt(ref2), _TINY)
    return LayerErrors(layers=tuple(sites), errors=errors, per_sample=np.concatenate(per_sample, 0))


def vulnerable_layers(
    errors: LayerErrors | Mapping[str, float],
    *,
    eta: float = 1.0,
    at_least: int = 0,
) -> list[str]:
    """The most vulnerable layers (the MVL list) by the paper's Algorithm 1.

    With :class:`LayerErrors`, :math:`\\mu` and :math:`\\sigma` are the mean and (population) standard deviation
    of the per-sample relative errors over every sample and layer (the paper's Eq. 12), and layer ``l`` is
    vulnerable when its mean per-sample error exceeds :math:`\\mu + \\eta\\sigma`. With a mapping
    ``name -> error`` (one number per layer), :math:`\\mu` and :math:`\\sigma` run over the layers.

    The paper tunes :math:`\\eta` by hand per network ("tune the proper cut-off threshold"); ``at_least``
    automates the one case that tuning always resolves: when no layer passes, the ``at_least`` layers of highest
    error are returned instead.

    Args:
        errors: :class:`LayerErrors` or ``name -> relative error``.
        eta: the cut-off in standard deviations (may be negative).
        at_least: the fewest layers returned (0: the list may be empty).

    Returns:
        Layer names in the model's order (Algorithm 1 sorts the list of layer indices).

    Raises:
        ConfigError: no layer, a non-finite ``eta``, a negative ``at_least`` or one above the number of layers.

    Examples::

        >>> vulnerable_layers({"a": 0.2, "b": 0.9, "c": 0.3}, eta=0.5)
        ['b']
    """
    if isinstance(errors, LayerErrors):
        names, values = list(errors.layers), errors.mean
        mu, sigma = float(errors.per_sample.mean()), float(errors.per_sample.std())
    elif isinstance(errors, Mapping):
        names, values = list(errors), np.asarray([float(v) for v in errors.values()])
        mu, sigma = (float(values.mean()), float(values.std())) if len(values) else (0.0, 0.0)
    else:
        raise ConfigError(f"errors must be LayerErrors or a mapping name -> error, got {type(errors).__name__}")
    if not names:
        raise ConfigError("vulnerable_layers needs at least one layer")
    if not math.isfinite(eta):
        raise ConfigError(f"eta must be finite, got {eta}")
    if not 0 <= at_least <= len(names):
        raise ConfigError(f"at_least must be in [0, {len(names)}] (the number of layers), got {at_least}")
    picked = [i for i, v in enumerate(values) if v - mu > eta * sigma]
    if len(picked) < at_least:
        picked = sorted(np.argsort(-values, kind="stable")[:at_least].tolist())
    return [names[i] for i in picked]


def plot_layer_errors(
    curves: Mapping[str, LayerErrors | Sequence[float]] | LayerErrors,
    path: str | Path,
    *,
    title: str = "Layer sustainability: relative error per layer",
    labels: Sequence[str] | None = None,
    ax: Any = None,
) -> None:
    """Relative error against layer index, one line per curve (a model or a perturbation), as the paper's figures.

    Args:
        curves: ``label -> LayerErrors`` (its whole-set ``errors`` are drawn) or ``label -> errors``, or one
            :class:`LayerErrors`.
        path: the PNG written (ignored when ``ax`` is given: the caller saves its figure).
        title: the axes' title.
        labels: tick labels of the layers; default the layer names of the first :class:`LayerErrors`, else indices.
        ax: draw into these matplotlib axes instead of a new figure.
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(curves, LayerErrors):
        curves = {"relative error": curves}
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
    for label, curve in curves.items():
        values = np.asarray(curve.errors if isinstance(curve, LayerErrors) else curve, dtype=float)
        if labels is None and isinstance(curve, LayerErrors):
            labels = list(curve.layers)
        ax.plot(np.arange(len(values)), values, "-o", label=label)
    if labels is not None:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels], fontsize=7)
    ax.set_xlabel("layer")
    ax.set_ylabel("relative error")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    if own:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
