"""``liu2020_ldce_mitdb``: LDCE (Liu, Xu, Zhang & Geng, IJCAI 2020) on MIT-BIH beats with wrong annotations.

Beat labels come from annotators, and annotators confuse neighbouring classes. This recipe applies the authors'
protocol (GitHub ``palm-ml/PDLE`` at commit e325db61244bb2efd8d3d6341c5265f511d182b0; the shared implementation
is :mod:`robustlab.common.recipes.noisy_labels`, also behind robustlab-vision's ``liu2020_ldce``) to the AAMI beat
classes N, S, V, F of MIT-BIH:

- pool: the beats of DS1 (de Chazal's inter-patient training records), at most ``per_class`` of each class drawn
  at random (N is 90 % of the beats; uncapped, the trusted subset would hold a handful of F beats);
- two test sets, each a run of its own (``tests``), clean labels, at most ``n_test / 4`` beats of each class:
  ``DS2`` (the other patients: the standard inter-patient evaluation, where the shift between patients dominates
  the errors) and ``DS1`` (a quarter of each class of DS1 held out before the pool is drawn: the same patients,
  optimistic as an ECG benchmark, but it shows what the label noise alone costs);
- noise: 30 % of every class's labels replaced through a class-conditional matrix of plausible annotator
  confusions (:data:`CONFUSIONS`: N with S and V, S with N, V with F and N, F with V and N); no published matrix
  exists, so this one is ours; the noisy validation set is corrupted the same way;
- a trusted subset of 10 % with true labels (every class present), as the authors;
- network: robustlab-ecg's 1D CNN channel model (Acharya et al. 2017) on the beat at 360 Hz, its embedding
  batch-normalized before the head (LDCE's inverse-distance similarity assumes unit-scale features, as on the
  authors' ResNet); that normalized embedding is LDCE's feature space;
- methods: cross-entropy, GLC, cleanlab filter + retrain, LDCE (hard), the authors' SGD schedule scaled to
  ``epochs``.

Scores: test accuracy and balanced accuracy (the classes stay imbalanced) at the final and the best-validation
epoch; precision and recall of the flagged beats against the true noise mask. The claims "LDCE beats
cross-entropy / cleanlab" are decided with :func:`robustlab.common.metrics.paired_claim` by seed and test beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded
from robustlab.common.recipes.base import PaperNumbers, Recipe, Table, seed_everything
from robustlab.common.recipes.noisy_labels import LIU2020, NoisyLabelTraining

__all__ = ["CONFUSIONS", "PROFILES", "RECIPE", "MitdbNoiseProfile"]

CLASSES = ("N", "S", "V", "F")
CONFUSIONS = {
    "N": {"S": 2 / 3, "V": 1 / 3},
    "S": {"N": 1.0},
    "V": {"F": 1 / 2, "N": 1 / 2},
    "F": {"V": 2 / 3, "N": 1 / 3},
}
"""Where each class's wrong labels go (shares of the noise rate): the class-conditional noise of this recipe."""

METHODS = ("ce", "glc", "cleanlab", "ldce")


@dataclass(frozen=True)
class MitdbNoiseProfile(NoisyLabelTraining):
    """Hyperparameters of one profile (the training ones as in robustlab-vision's ``liu2020_ldce``)."""

    noise: float = bounded(0.3, ge=0, lt=1)
    trusted: float = bounded(0.1, gt=0, lt=1)
    per_class: int = bounded(1500, ge=2)
    n_train: int = bounded(3200, ge=20)
    n_val: int = bounded(600, ge=10)
    n_test: int = bounded(4000, ge=10)
    tests: tuple[str, ...] = bounded(("DS2", "DS1"), choices=("DS2", "DS1"), min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    methods: tuple[str, ...] = bounded(METHODS, choices=METHODS, min_len=1, unique=True)


PROFILES = {
    "smoke": MitdbNoiseProfile(per_class=60, n_train=160, n_val=40, n_test=80, tests=("DS2",), seeds=1, epochs=2,
                               batch_size=32, query_batch_size=16, noisy_batch_size=32),
    # Minutes: 5 seeds (the claims) x both test sets, 20 epochs on 3,200 DS1 beats.
    "quick": MitdbNoiseProfile(),
    # Every DS1 beat up to 8,000 per class, 100 epochs as the authors, 5-fold cleanlab.
    "paper": MitdbNoiseProfile(per_class=8000, n_train=10000, n_val=2000, n_test=20000, epochs=100, lr=0.1,
                               cv_folds=5, device="auto"),
}


def confusion_matrix_noise(rate: float):
    """The ``(4, 4)`` transition matrix: each class keeps ``1 - rate``, the rest goes by :data:`CONFUSIONS`."""
    import numpy as np

    C = np.eye(len(CLASSES)) * (1 - rate)
    for i, c in enumerate(CLASSES):
        for other, share in CONFUSIONS[c].items():
            C[i, CLASSES.index(other)] += rate * share
    return C


def grid(p: MitdbNoiseProfile) -> list[dict[str, Any]]:
    """One run per test set and seed."""
    return [{"noise": p.noise, "test": t, "seed": s} for t in p.tests for s in range(p.seeds)]


def _capped(y, per_class: int, rng, among=None):
    """Sorted indices of at most ``per_class`` samples of each class, drawn at random (from ``among``)."""
    import numpy as np

    among = np.arange(len(y)) if among is None else np.asarray(among)
    keep = [rng.permutation(among[y[among] == k])[:per_class] for k in range(len(CLASSES))]
    return np.sort(np.concatenate(keep))


def held_out(y, rng, fraction: float = 0.25):
    """``(rest, held)``: a ``fraction`` of each class's indices held out at random (the intra-patient test)."""
    import numpy as np

    held = np.concatenate([rng.permutation(np.flatnonzero(y == k))[: int(round(fraction * (y == k).sum()))]
                           for k in range(len(CLASSES))])
    return np.setdiff1d(np.arange(len(y)), held), np.sort(held)


def run(spec: dict[str, Any], p: MitdbNoiseProfile) -> dict[str, Any]:
    """CE, GLC, cleanlab and LDCE on one draw of DS1 beats, tested on DS2 or on held-out DS1 beats."""
    import numpy as np

    from robustlab.common.recipes.noisy_labels import make_split, run_methods
    from robustlab.ecg.data.mitdb import load_beats
    from robustlab.ecg.models.channels import NormedEmbedding, build_channel_model

    seed = int(spec["seed"])
    seed_everything(seed)
    train = load_beats("DS1").only(CLASSES)
    rng = np.random.default_rng(seed)
    per_test = max(1, p.n_test // len(CLASSES))
    if spec.get("test", "DS2") == "DS1":
        rest, held = held_out(train.y, rng)
        pool, test = _capped(train.y, p.per_class, rng, among=rest), train
        tests = _capped(train.y, per_test, rng, among=held)
    else:
        test = load_beats("DS2").only(CLASSES)
        pool = _capped(train.y, p.per_class, rng)
        tests = _capped(test.y, per_test, rng)
    split = make_split(train.x[pool][:, None, :], train.y[pool], test.x[tests][:, None, :], test.y[tests],
                       C=confusion_matrix_noise(float(spec["noise"])), rate=float(spec["noise"]), n_train=p.n_train,
                       n_val=p.n_val, trusted=p.trusted, seed=seed)
    window, r_index = train.x.shape[1], train.before

    def make_model():
        cnn = build_channel_model("cnn", num_classes=len(CLASSES), window=window, r_index=r_index, fs=train.fs)
        return NormedEmbedding(cnn), "norm"

    return run_methods(split, make_model, p, seed=seed, device=p.device)


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Liu et al. (2020)",
    missing="the paper has no ECG experiment; this table applies its protocol to MIT-BIH beats",
)


def _setting(spec) -> str:
    where = "held-out DS1 beats (same patients)" if spec.get("test", "DS2") == "DS1" else "DS2 (other patients)"
    return f"MIT-BIH, class-conditional {float(spec['noise']):.0%}, tested on {where}"


def summarize(results: list[dict[str, Any]], p: MitdbNoiseProfile) -> Table:
    """Rows per method (accuracy and balanced accuracy on DS2), claims, memorization check and flag scores."""
    from robustlab.common.recipes.noisy_labels import summarize_methods

    protocol = (f"Protocol: {p.n_train} DS1 beats (at most {p.per_class} per class; {p.trusted:.0%} trusted), "
                f"{p.n_val} noisy validation beats, test beats at most {p.n_test // len(CLASSES)} per class (F has "
                f"fewer), 1D CNN with a batch-normalized embedding, {p.epochs} epochs, SGD lr {p.lr:g}; noise matrix "
                f"(shares of the rate): {CONFUSIONS}.")
    return summarize_methods(results, setting=_setting, balanced=True,
                             protocol=protocol, paper_note=f"Paper: n/r, {PAPER_NUMBERS.missing}.")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    from robustlab.common.recipes.noisy_labels import plot_methods

    plot_methods(results, path, setting=_setting)


RECIPE = Recipe(
    name="liu2020_ldce_mitdb",
    paper=LIU2020,
    table="LDCE, cross-entropy, GLC and cleanlab on MIT-BIH beats (N/S/V/F) with 30 % class-conditional label noise",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="noise",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
