"""Analyses of trained or training networks, layer by layer: what an attack does to each layer's representation
(layer sustainability, Khalooei et al. 2022) and how binary activation patterns evolve during training (Hartmann
et al. 2021). They read intermediate layers through :class:`robustlab.common.features.FeatureRecorder`, so any
domain's model works unchanged.

Importing this package imports nothing heavy.
"""

__all__: list[str] = []
