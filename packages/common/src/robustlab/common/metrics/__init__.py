"""Metrics: pure functions of labels and scores (numpy arrays or tensors), and of ``(model, loader, attack)``.

Classification metrics follow scikit-learn's definitions and the ECG literature's names (sensitivity, positive
predictivity); regression metrics (MAE, RMSE, R²) follow scikit-learn's, averaged uniformly over outputs;
robustness metrics run any ``attack(x, y) -> x_adv`` over a loader; localization metrics score an attribution map
against a ground-truth mask; generative metrics compare a generator's samples with real ones in a feature space;
:func:`paired_claim` decides a paper's "A scores higher than B" from seeded runs (interval across seeds, paired
test within them).
"""

from robustlab.common.metrics.claims import PairedClaim, paired_claim, seed_interval, unpaired_claim
from robustlab.common.metrics.classification import (
    accuracy,
    aupr,
    auroc,
    balanced_accuracy,
    confusion_matrix,
    macro_f1,
    per_class_report,
)
from robustlab.common.metrics.generative import frechet_distance, nearest_neighbour_check, precision_recall
from robustlab.common.metrics.localization import energy_in_mask, localization_auroc
from robustlab.common.metrics.regression import mae, r2, rmse
from robustlab.common.metrics.robustness import attack_success_rate, predict, robust_accuracy

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "confusion_matrix",
    "per_class_report",
    "macro_f1",
    "auroc",
    "aupr",
    "mae",
    "rmse",
    "r2",
    "predict",
    "robust_accuracy",
    "attack_success_rate",
    "PairedClaim",
    "paired_claim",
    "seed_interval",
    "unpaired_claim",
    "localization_auroc",
    "energy_in_mask",
    "frechet_distance",
    "precision_recall",
    "nearest_neighbour_check",
]
