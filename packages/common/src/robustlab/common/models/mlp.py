"""A plain multilayer perceptron."""

from __future__ import annotations

from torch import nn

from robustlab.common.modelfile import RecordsArgs

__all__ = ["MLP"]


class MLP(RecordsArgs, nn.Sequential):
    """Fully connected ReLU network, the model of the two-moons toy experiments.

    Args:
        in_features: input dimension (inputs are flattened from dim 1).
        num_classes: output dimension.
        hidden: widths of the hidden layers.
        dropout: dropout probability after each hidden layer (0 disables it).

    Shape:
        input ``(N, *)`` flattening to ``(N, in_features)``; output ``(N, num_classes)`` logits.
    """

    def __init__(self, in_features: int, num_classes: int, *, hidden=(64, 64), dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
