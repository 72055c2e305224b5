"""``liu2020_ldce``: learning with noisy labels and a small trusted set (Liu, Xu, Zhang & Geng, IJCAI 2020).

The protocol of the authors' code, GitHub ``palm-ml/PDLE`` at commit e325db61244bb2efd8d3d6341c5265f511d182b0
(``PDLE/run.py``: ``detect.py``, then ``genC.py``, then ``main.py``), on Fashion-MNIST and MNIST instead of
CIFAR-10/100 (CIFAR is not available here). One run is one setting (data set, noise, trusted fraction, seed) and
trains every method on the same split:

1. Split (``utils.prepare_data``): ``n_train`` training images drawn from the official training set (seeded);
   the first ``trusted`` fraction keeps its true labels (every class present), the rest is the noisy set, its
   labels corrupted through the transition matrix (``utils.NoisyData``: ``symmetric`` = the authors' ``unif``,
   ``random_pair`` = their ``flip``; ``pair`` = the next class, Han et al. 2018). A validation set of ``n_val``
   further training images is corrupted the same way (noisy like the training set); the test set is the official
   one, clean.
2. ``ldce`` (``detect.py``): the :class:`~robustlab.common.regimes.LDCE` regime trains an encoder (the same
   network as the classifiers; its penultimate layer is the embedding) on the noisy set with trusted query
   batches and 5-shot support sets; its per-sample confidences (running average, alpha 0.6) split the noisy set
   into detected (>= 0.5) and untrusted.
3. ``genC.py``: a network trained with cross-entropy on the noisy set only; its mean softmax over the trusted
   samples of each true class is GLC's corruption matrix (:func:`~robustlab.common.label_noise.estimate_corruption`);
   its softmax over the noisy set gives Patrini's anchor estimate for the forward-correction baseline.
4. The final classifiers (``main.py``), all on trusted + noisy: ``ce`` (cross-entropy on the labels as given),
   ``forward`` (forward correction with the anchor estimate; trusted samples with cross-entropy), ``glc`` (Gold
   Loss Correction), ``ldce`` (``train_cdd_hard``: trusted CE, detected beta*GLC + (1-beta)*CE, untrusted GLC),
   ``ldce_soft`` (``train_cdd_soft``), ``coteaching`` (Han et al. 2018, the core's regime, forget rate = the noise
   rate) and ``cleanlab`` (confident learning, ``cleanlab.filter.find_label_issues`` on out-of-sample
   probabilities from k-fold cross-validation, then cross-entropy without the flagged samples).

The pieces are shared with robustlab-ecg's MIT-BIH table: :mod:`robustlab.common.recipes.noisy_labels`.

Scored: clean test accuracy at the final epoch (as the authors report) and at the epoch of best accuracy on the
noisy validation set; for the methods that flag samples (``ldce``, ``cleanlab``) the precision and recall of the
flagged set against the true noise mask of the noisy set. The claims "LDCE beats cross-entropy / cleanlab" are
decided with :func:`robustlab.common.metrics.paired_claim`, paired by seed and test image.

Departures from the authors' code (each for a reason, also in the README):
- data: Fashion-MNIST/MNIST (28x28 grey), not CIFAR-10/100; a subset of ``n_train`` training images (CPU time;
  fewer images also memorize sooner); no flip/crop augmentation (their CIFAR transforms; digits and garments
  are not mirror-symmetric classes);
- networks (``smoke``/``quick``): a small CNN with batch-normalized convolutions and a batch-normalized
  embedding (``SmallCNN(width=8, batch_norm=True, embedding_norm=True)``) for the encoder and every classifier
  instead of ResNet-32 (encoder) and WRN-40-2 (classifiers), which take hours per run on a CPU (the ``paper``
  profile uses them, ``encoder``/``model``); the embedding is normalized because LDCE's similarity, the inverse
  of a mean squared distance, assumes the unit-scale features of the authors' ResNet (on the plain small CNN the
  untrained network's tiny distances made the encoder's loss diverge);
- schedule: the authors' SGD (momentum 0.9, nesterov, weight decay 5e-4; milestones at 60/80/90 % of the
  epochs, gamma 0.2 for the classifiers; encoder weight decay 1e-4 and one step at 60 %) over ``epochs`` epochs
  instead of 100, with ``lr`` 0.05 in ``quick`` (set once for the small CNN, not tuned on any result; 0.1, the
  authors', in ``paper``);
- Co-teaching's forget rate reaches the noise rate after ``coteaching_gradual`` epochs (10 of 200 in Han et
  al.; scaled to the shorter schedule);
- cleanlab's probabilities come from ``cv_folds``-fold cross-validation (cleanlab's default is 5; fewer for CPU
  time), each fold model taken at its best validation epoch; the trusted samples are never removed;
- beta = 0.6 as ``PDLE/run.py``, the script that runs the three phases end to end (``run_PDLE.py``, which runs
  the last phase alone, says 0.1);
- LDCE's support and query samples are not augmented (the authors apply their training transform); the label
  distribution covers all classes (the authors' ``n_way`` sub-tasks are all classes for 10 classes, their default);
- ``quick`` runs the authors' random pair flip; the next-class pair flip (Han et al.) is in ``paper``;
- one run trains every method on one split, so that all methods share the noisy labels and the trusted set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.errors import ConfigError
from robustlab.common.recipes import PaperNumbers, Recipe, Table, seed_everything
from robustlab.common.recipes.noisy_labels import LIU2020, METHODS, NoisyLabelTraining, parse_noise

__all__ = ["RECIPE", "PROFILES", "LDCEProfile", "grid", "run", "summarize"]

NOISE_KINDS = ("symmetric", "pair", "random_pair")
DATASETS = ("fashion_mnist", "mnist")


@dataclass(frozen=True)
class LDCEProfile(NoisyLabelTraining):
    """The hyperparameters of one profile; ``noises`` are ``"kind:rate"`` strings (kinds: ``symmetric``,
    ``pair`` (next class), ``random_pair`` (the authors' flip))."""

    datasets: tuple[str, ...] = bounded(("fashion_mnist",), choices=DATASETS, min_len=1, unique=True)
    noises: tuple[str, ...] = bounded(("symmetric:0.4", "symmetric:0.6", "random_pair:0.4"), min_len=1, unique=True)
    trusted: tuple[float, ...] = bounded((0.1,), gt=0, lt=1, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    claim_seeds: int = bounded(5, ge=1)  # seeds of the claimed cells (Fashion-MNIST, symmetric 40/60 %, 10 %)
    methods: tuple[str, ...] = bounded(METHODS, choices=METHODS, min_len=1, unique=True)
    n_train: int = bounded(3000, ge=20)
    n_val: int = bounded(600, ge=10)
    n_test: int = bounded(10000, ge=10)
    model: str = bounded("small_cnn", choices=("small_cnn", "resnet32", "wrn40_2"))  # every classifier
    encoder: str = bounded("small_cnn", choices=("small_cnn", "resnet32", "wrn40_2"))  # LDCE's encoder
    width: int = bounded(8, ge=1)  # small_cnn: channels of the first convolution
    epochs: int = bounded(16, ge=1)

    def __post_init__(self) -> None:
        check_values(self)
        for text in self.noises:
            kind, rate = parse_noise(text)
            if kind not in NOISE_KINDS or not 0.0 <= rate < 1.0:
                raise ConfigError(f"noises: {text!r} must be 'kind:rate' with kind one of {NOISE_KINDS} and rate "
                                  "in [0, 1)")


PROFILES = {
    # Seconds: a few hundred images, two epochs, every method once.
    "smoke": LDCEProfile(noises=("symmetric:0.4",), seeds=1, claim_seeds=1, n_train=300, n_val=60,
                         n_test=200, epochs=2, width=4, batch_size=32, query_batch_size=16, noisy_batch_size=32,
                         coteaching_gradual=1),
    # Minutes on a 2-core CPU: Fashion-MNIST, symmetric 40/60 % and the authors' random pair flip at 40 %, 10 %
    # trusted, every method, 5 seeds (the fewest for a verdict), 16 epochs of a small CNN on 3,000 images (enough
    # for cross-entropy to memorize: its final accuracy falls clearly below its best).
    "quick": LDCEProfile(),
    # The authors' grid on both data sets, their encoder network and 100 epochs (a GPU).
    "paper": LDCEProfile(datasets=DATASETS,
                         noises=("symmetric:0.2", "symmetric:0.4", "symmetric:0.6", "symmetric:0.8",
                                 "random_pair:0.2", "random_pair:0.4", "pair:0.2", "pair:0.4"),
                         trusted=(0.1, 0.05, 0.01), seeds=5, claim_seeds=5, n_train=50000,
                         n_val=10000, model="wrn40_2", encoder="resnet32", epochs=100, lr=0.1, cv_folds=5,
                         coteaching_gradual=10, device="auto"),
}


def _claimed(dataset: str, noise: str, trusted: float) -> bool:
    kind, rate = parse_noise(noise)
    return dataset == "fashion_mnist" and kind == "symmetric" and rate in (0.4, 0.6) and math.isclose(trusted, 0.1)


def grid(p: LDCEProfile) -> list[dict[str, Any]]:
    """One run per data set, noise, trusted fraction and seed (``claim_seeds`` seeds for the claimed cells)."""
    runs = []
    for d in p.datasets:
        for noise in p.noises:
            for t in p.trusted:
                n = max(p.seeds, p.claim_seeds) if _claimed(d, noise, t) else p.seeds
                runs += [{"dataset": d, "noise": noise, "trusted": t, "seed": s} for s in range(n)]
    return runs


def run(spec: dict[str, Any], p: LDCEProfile) -> dict[str, Any]:
    """Every method of ``p.methods`` on one split (:func:`robustlab.common.recipes.noisy_labels.run_methods`)."""
    from robustlab.common.label_noise import transition_matrix
    from robustlab.common.recipes.noisy_labels import make_split, run_methods
    from robustlab.vision.data.images import load_images, to_tensor
    from robustlab.vision.models import build_model, embedding_layer

    seed = int(spec["seed"])
    seed_everything(seed)
    name = spec["dataset"]
    images, labels = load_images(name, "train")
    test_images, test_labels = load_images(name, "test")
    kind, rate = parse_noise(spec["noise"])
    C = transition_matrix(kind, rate, int(labels.max()) + 1, seed=seed)
    split = make_split(images, labels, test_images, test_labels, C=C, rate=rate, n_train=p.n_train, n_val=p.n_val,
                       n_test=p.n_test, trusted=float(spec["trusted"]), seed=seed,
                       to_tensor=lambda a: to_tensor(a, name))

    def factory(name):
        def make():
            # small_cnn: batch norm in the convolutions and before the embedding's ReLU (unit-scale embedding)
            kwargs = {"width": p.width, "batch_norm": True, "embedding_norm": True} if name == "small_cnn" else {}
            model = build_model(name, in_channels=1, num_classes=split.num_classes, **kwargs)
            return model, embedding_layer(model)
        return make

    return run_methods(split, factory(p.model), p, seed=seed, device=p.device, make_encoder=factory(p.encoder))


def _setting(spec) -> str:
    kind, rate = parse_noise(spec["noise"])
    return f"{spec['dataset']} {kind} {rate:.0%}, {float(spec['trusted']):.0%} trusted"


def _targets(setting: str) -> tuple[str, ...]:
    """The issue's targets: LDCE at least GLC and cleanlab at pair flip 40 % and symmetric 60 %."""
    return ("glc", "cleanlab") if ("pair 40%" in setting or "symmetric 60%" in setting) else ()


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Liu et al. (2020), CIFAR-10/100 with WRN-40-2, 100 epochs",
    missing=("the paper reports CIFAR-10/100 only; this recipe runs its protocol on Fashion-MNIST and MNIST, so no "
             "cell has a published counterpart (the anchors measured on this data are in the README)"),
)


def summarize(results: list[dict[str, Any]], p: LDCEProfile) -> Table:
    """One row per setting and method; under it the paired claims, the memorization check and the targets."""
    from robustlab.common.recipes.noisy_labels import summarize_methods

    protocol = (f"Protocol: {p.n_train} training images ({p.model}, {p.epochs} epochs, SGD lr {p.lr:g}), {p.n_val} "
                f"noisy validation images, {p.n_test} clean test images; beta {p.beta:g}, alpha {p.alpha:g}, "
                f"threshold {p.threshold:g}, {p.n_shot}-shot support; cleanlab on {p.cv_folds}-fold out-of-sample "
                "probabilities.")
    return summarize_methods(results, setting=_setting, targets=_targets, protocol=protocol,
                             paper_note=f"Paper ({PAPER_NUMBERS.source}): n/r, {PAPER_NUMBERS.missing}.")


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Accuracy per setting and method, and the validation curves of cross-entropy and LDCE."""
    from robustlab.common.recipes.noisy_labels import plot_methods

    plot_methods(results, path, setting=_setting)


RECIPE = Recipe(
    name="liu2020_ldce",
    paper=LIU2020,
    table="LDCE against cross-entropy, forward correction, GLC, Co-teaching and cleanlab under symmetric and pair "
          "noise with a trusted subset (the authors' CIFAR protocol on Fashion-MNIST and MNIST)",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="noise",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
