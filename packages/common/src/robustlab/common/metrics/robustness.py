"""Robustness metrics of a ``(model, loader)`` pair under an attack: any callable ``attack(x, y) -> x_adv``.

The model runs in eval mode and its train/eval mode is restored afterwards. Loaders yield batch dicts
(``{"x", "y", ...}``) or ``(x, y)`` tuples; targets are class indices. Model outputs ``(N, C)`` with ``C >= 2``
are read by argmax, a single logit per sample (``(N,)`` or ``(N, 1)``) as class 1 when positive.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.engine import as_batch, model_device, resolve_device, to_device
from robustlab.common.errors import DataError
from robustlab.common.modes import model_mode

__all__ = ["predict", "robust_accuracy", "attack_success_rate"]

AttackFn = Callable[[Tensor, Tensor], Tensor]


def predict(
    model: nn.Module,
    loader: Iterable,
    *,
    attack: AttackFn | None = None,
    device: str | torch.device | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Targets and model outputs over a loader, on clean inputs or on ``attack(x, y)``.

    The outputs feed the array metrics, e.g. ``auroc(y, softmax(out))`` on adversarial examples.

    Args:
        model: the network; evaluated in eval mode, its mode restored afterwards.
        loader: yields batch dicts with ``"x"`` and ``"y"`` or ``(x, y)`` tuples.
        attack: ``attack(x, y) -> x_adv``, applied to every batch before the model sees it; None for clean
            inputs.
        device: where to run; default the device of the model's parameters.

    Returns:
        ``(y, outputs)``: the targets and the model's outputs (float32) concatenated over the loader.

    Shape:
        y: ``(N, *)`` as the loader yields it; outputs: ``(N, *)`` as the model returns it (e.g. ``(N, C)``).
    """
    y, (out,) = _forward(model, loader, attacks=(attack,), device=device)
    return y, out


def robust_accuracy(
    model: nn.Module, loader: Iterable, attack: AttackFn, *, device: str | torch.device | None = None
) -> float:
    """Accuracy of ``model`` on ``attack(x, y)`` over the loader.

    With the identity attack (``lambda x, y: x``) this is the clean accuracy.

    Args:
        model: the classifier; evaluated in eval mode, its mode restored afterwards.
        loader: yields batch dicts with ``"x"`` and ``"y"`` (class indices) or ``(x, y)`` tuples.
        attack: ``attack(x, y) -> x_adv``, e.g. ``PGD(model, eps=8 / 255)``.
        device: where to run; default the device of the model's parameters.

    Returns:
        The fraction of samples whose adversarial example is classified as their label, in ``[0, 1]``.

    Shape:
        x: ``(B, *)``; y: ``(B,)`` class indices, per batch.

    Reference:
        Madry, A. et al. "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018.
    """
    y, (out,) = _forward(model, loader, attacks=(attack,), device=device)
    return float(np.mean(_labels(out) == _targets(y)))


def attack_success_rate(
    model: nn.Module, loader: Iterable, attack: AttackFn, *, device: str | torch.device | None = None
) -> float:
    """Fraction of the correctly classified samples whose adversarial example is misclassified (untargeted).

    Clean and adversarial predictions come from the same pass over the loader, so shuffling loaders and
    random-start attacks are counted consistently. Samples the model already gets wrong do not count.

    Args:
        model: the classifier; evaluated in eval mode, its mode restored afterwards.
        loader: yields batch dicts with ``"x"`` and ``"y"`` (class indices) or ``(x, y)`` tuples.
        attack: ``attack(x, y) -> x_adv``.
        device: where to run; default the device of the model's parameters.

    Returns:
        ``#(clean correct and adversarial wrong) / #(clean correct)`` in ``[0, 1]``; NaN, with a
        ``RuntimeWarning``, when no sample is classified correctly on clean inputs.

    Shape:
        x: ``(B, *)``; y: ``(B,)`` class indices, per batch.
    """
    y, (clean, adv) = _forward(model, loader, attacks=(None, attack), device=device)
    y = _targets(y)
    ok = _labels(clean) == y
    clean_correct = int(ok.sum())
    flipped = int((ok & (_labels(adv) != y)).sum())
    if clean_correct == 0:
        warnings.warn(
            "attack_success_rate is undefined: no sample is classified correctly on clean inputs; returning NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    return flipped / clean_correct


def _forward(model: nn.Module, loader: Iterable, *, attacks, device) -> tuple[np.ndarray, list[np.ndarray]]:
    """Targets and, for each entry of ``attacks`` (None: clean input), the outputs, over one pass of the loader."""
    device = model_device(model) if device is None else resolve_device(device)
    ys: list[np.ndarray] = []
    outs: list[list[np.ndarray]] = [[] for _ in attacks]
    with model_mode(model, "eval"):  # predictions in eval mode; attacks restore the mode they found
        for batch in loader:
            batch = to_device(as_batch(batch), device)
            x, y = batch["x"], batch["y"]
            for attack, out in zip(attacks, outs):
                if attack is None:
                    x_in = x
                else:
                    with torch.enable_grad():  # attacks need input gradients even under an outer no_grad
                        x_in = attack(x, y)
                with torch.no_grad():
                    out.append(model(x_in).float().cpu().numpy())
            ys.append(y.detach().cpu().numpy())
    if not ys or sum(len(y) for y in ys) == 0:
        raise DataError("the loader yielded no samples")
    return np.concatenate(ys), [np.concatenate(o) for o in outs]


def _labels(out: np.ndarray) -> np.ndarray:
    if out.ndim == 2 and out.shape[1] >= 2:
        return out.argmax(1)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        return (out.reshape(-1) > 0).astype(np.int64)
    raise ValueError(f"expected model outputs (N, C) or a single logit (N,) / (N, 1), got shape {out.shape}")


def _targets(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"robustness metrics need class-index targets of shape (N,), got shape {y.shape}")
    return y
