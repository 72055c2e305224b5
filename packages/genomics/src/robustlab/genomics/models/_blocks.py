"""Layer blocks shared by the genomics CNNs: named so that every variant keeps the same parameter names.

A block is ``conv<i>`` [``bn<i>``] ``act<i>`` [``pool<i>``] [``drop<i>``]; the head is ``flatten``, ``dense``
[``bn_dense``] ``act_dense`` [``drop_dense``] ``output`` (:func:`dense_head`), or ``flatten``, ``output`` where the
last convolution already plays the dense layer's part (:func:`conv_stack`). Batch norm and dropout are left out (not replaced by
identities) when disabled; the convolutions have a bias only without batch norm, as in the authors' Keras code.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = ("relu", "exponential")


class Exponential(nn.Module):
    """``exp(x)``: the first-layer activation of Koo & Ploenzke (2021), offered as an option."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.exp(x)


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "exponential":
        return Exponential()
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def dropout_rates(dropout: float | Sequence[float], n: int, model: str) -> tuple[float, ...]:
    """One rate per hidden layer: a float is used for every layer, a sequence must have ``n`` rates."""
    if isinstance(dropout, bool):
        raise ValueError(f"{model}: dropout must be a float or a sequence of {n} floats, got a bool")
    if isinstance(dropout, (int, float)):
        rates = (float(dropout),) * n
    else:
        rates = tuple(float(p) for p in dropout)
        if len(rates) != n:
            raise ValueError(f"{model}: dropout needs one rate per hidden layer ({n}), got {len(rates)}")
    for p in rates:
        if not (0.0 <= p < 1.0) or math.isnan(p):
            raise ValueError(f"{model}: dropout rates must be in [0, 1), got {p}")
    return rates


def check_positive_int(name: str, value: int, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model}: {name} must be an int >= 1, got {value!r}")
    return value


def conv_block(
    i: int,
    cin: int,
    cout: int,
    kernel: int,
    *,
    same: bool,
    batch_norm: bool,
    act: str,
    dropout: float,
    pool: int = 1,
) -> list[tuple[str, nn.Module]]:
    """Convolution (``same``: zero padding ``(kernel - 1) // 2``, else none), batch norm, activation, pool, dropout."""
    layers: list[tuple[str, nn.Module]] = [
        (
            f"conv{i}",
            nn.Conv1d(cin, cout, kernel, padding=(kernel - 1) // 2 if same else 0, bias=not batch_norm),
        )
    ]
    if batch_norm:
        layers.append((f"bn{i}", nn.BatchNorm1d(cout)))
    layers.append((f"act{i}", activation(act)))
    if pool > 1:
        layers.append((f"pool{i}", nn.MaxPool1d(pool)))
    if dropout > 0:
        layers.append((f"drop{i}", nn.Dropout(dropout)))
    return layers


def dense_head(
    features: int, hidden: int, num_tasks: int, *, batch_norm: bool, dropout: float
) -> list[tuple[str, nn.Module]]:
    """Flatten, a hidden dense layer (batch norm, ReLU, dropout) and the linear output layer (logits)."""
    layers: list[tuple[str, nn.Module]] = [
        ("flatten", nn.Flatten()),
        ("dense", nn.Linear(features, hidden, bias=not batch_norm)),
    ]
    if batch_norm:
        layers.append(("bn_dense", nn.BatchNorm1d(hidden)))
    layers.append(("act_dense", nn.ReLU()))
    if dropout > 0:
        layers.append(("drop_dense", nn.Dropout(dropout)))
    layers.append(("output", nn.Linear(hidden, num_tasks)))
    return layers


def conv_output_length(length: int, layers: Sequence[tuple[int, int, bool, int]]) -> int:
    """Positions left after ``(filters, kernel, same, pool)`` layers: a valid convolution drops ``kernel - 1``, a
    pool floors."""
    for _, kernel, same, pool in layers:
        length = (length if same else length - kernel + 1) // pool
        if length < 1:
            return 0
    return length


def shortest_length(layers: Sequence[tuple[int, int, bool, int]]) -> int:
    """The shortest input that leaves at least one position after ``layers``."""
    length = 1
    while conv_output_length(length, layers) < 1:
        length += 1
    return length


def conv_stack(
    model: str,
    layers: Sequence[tuple[int, int, bool, int]],
    num_tasks: int,
    *,
    length: int,
    dropout: float | Sequence[float],
    batch_norm: bool,
    activation: str,
) -> OrderedDict[str, nn.Module]:
    """Convolution blocks ``(filters, kernel, same, pool)`` on one-hot input, then ``flatten`` and the ``output``
    layer (logits); the last convolution plays the hidden dense layer's part. ``activation`` is the first layer's,
    ReLU follows the others; ``dropout`` is one rate or one per convolution. Checks the arguments, naming
    ``model`` and, for too short an input, the shortest length the layers accept."""
    check_positive_int("num_tasks", num_tasks, model)
    check_positive_int("length", length, model)
    positions = conv_output_length(length, layers)
    if positions < 1:
        raise ValueError(f"{model}: length must be at least {shortest_length(layers)} (its convolutions and pools "
                         f"leave no position for a shorter input), got {length}")
    rates = dropout_rates(dropout, len(layers), model)
    blocks: list[tuple[str, nn.Module]] = []
    channels = 4
    for i, (filters, kernel, same, pool) in enumerate(layers):
        blocks += conv_block(i + 1, channels, filters, kernel, same=same, batch_norm=bool(batch_norm),
                             act=activation if i == 0 else "relu", dropout=rates[i], pool=pool)
        channels = filters
    blocks += [("flatten", nn.Flatten()), ("output", nn.Linear(channels * positions, num_tasks))]
    return OrderedDict(blocks)
