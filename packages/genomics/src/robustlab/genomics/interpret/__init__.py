"""Interpretability of genomics models: attribution scores against ground truth, filters as motifs, logos.

- :mod:`~robustlab.genomics.interpret.scores`: reduce attribution maps to per-position importance and score
  them (per-sequence AUROC / AUPR) against the embedded-motif mask.
- :mod:`~robustlab.genomics.interpret.filters`: first-layer filters to position probability matrices, and their
  comparison with a motif database by Tomtom (memelite's ``tomtom``, with Benjamini-Hochberg q-values).
- :mod:`~robustlab.genomics.interpret.logos`: sequence logos of attribution maps and score distributions
  (matplotlib and logomaker are imported when a plot is drawn).
"""

from robustlab.genomics.interpret.filters import (
    MotifMatches,
    filter_pwms,
    first_layer_activations,
    fraction_matched,
    match_motifs,
    model_filter_pwms,
    trim_pwm,
)
from robustlab.genomics.interpret.logos import plot_attribution_logo, plot_score_distributions, save_logos
from robustlab.genomics.interpret.scores import (
    interpretability_scores,
    motif_mask,
    reduce_attribution,
    summarize_scores,
)

__all__ = [
    "reduce_attribution",
    "motif_mask",
    "interpretability_scores",
    "summarize_scores",
    "first_layer_activations",
    "filter_pwms",
    "model_filter_pwms",
    "trim_pwm",
    "match_motifs",
    "MotifMatches",
    "fraction_matched",
    "plot_attribution_logo",
    "save_logos",
    "plot_score_distributions",
]
