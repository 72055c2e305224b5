"""Analyses of trained or training networks, layer by layer. They read intermediate layers through
:class:`robustlab.common.features.FeatureRecorder` (forward hooks), so any domain's model works unchanged.

- ``layers``: layer sustainability analysis (Khalooei et al. 2022): :func:`layer_sustainability` (each layer's
  relative error ``||phi(x) - phi(x')|| / ||phi(x)||`` under an attack), :func:`vulnerable_layers` (the most
  vulnerable layers, the paper's Algorithm 1), :func:`plot_layer_errors`; the ``ATLR`` regime trains on them.
- ``activation_patterns``: binary activation patterns of ReLU layers during training (Hartmann et al. 2021):
  :class:`ActivationPatternRecorder` (a ``fit`` callback or a context manager), :func:`pattern_statistics`
  (entropy, Jaccard similarity between epochs), :func:`plot_pattern_history`.

Importing this package imports torch and NumPy, nothing else heavy (matplotlib only inside the plot functions).
"""

from robustlab.common.analysis.activation_patterns import (
    PATTERNS,
    STATISTICS,
    ActivationPatternRecorder,
    pattern_statistics,
    plot_pattern_history,
    relu_layers,
)
from robustlab.common.analysis.layers import (
    ACTIVATIONS,
    LayerErrors,
    default_layers,
    layer_sustainability,
    plot_layer_errors,
    relative_error,
    vulnerable_layers,
)

__all__ = [
    "ACTIVATIONS", "LayerErrors", "default_layers", "layer_sustainability", "plot_layer_errors", "relative_error",
    "vulnerable_layers", "PATTERNS", "STATISTICS", "ActivationPatternRecorder", "pattern_statistics",
    "plot_pattern_history", "relu_layers",
]
