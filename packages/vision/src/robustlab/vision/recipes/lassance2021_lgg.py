"""``lassance2021_lgg``: latent geometry graphs (Lassance, Gripon & Ortega, Algorithms 2021) against their plain
counterparts on MNIST and Fashion-MNIST.

The paper builds, for each batch, similarity graphs of the samples' intermediate representations (latent geometry
graphs, LGG) and constrains them in three ways; each is a regime of :mod:`robustlab.common.regimes.lgg` and is set
here against its plain counterpart, trained on the same split from the same initialization:

- graph knowledge distillation (:class:`~robustlab.common.regimes.lgg.GraphDistillation`) vs Hinton's knowledge
  distillation (:class:`~robustlab.common.regimes.KnowledgeDistillation`), both from the same teacher (trained
  first in the run with cross-entropy);
- graph classification loss (:class:`~robustlab.common.regimes.lgg.GraphClassification`: cross-entropy plus the
  weight of the edges between classes on the embedding's graph) vs cross-entropy;
- graph smoothness (:class:`~robustlab.common.regimes.lgg.GraphSmoothness`: cross-entropy plus the variation of
  the label signal's smoothness between consecutive ReLU layers, the paper's robustness method) vs cross-entropy.

One run is one data set and seed; it trains the teacher and the five students (every student from the same
initial weights). Scored on the same ``n_test`` test images: clean accuracy, accuracy under Gaussian noise
(``noise_std``, one draw per run shared by every model, clipped to [0, 1]) and under L-inf PGD (``pgd_eps``,
``pgd_steps`` steps of ``pgd_eps / 5``, no random start, bounds (0, 1)). The claims are decided with
:func:`robustlab.common.metrics.paired_claim`, paired by seed and test image: graph KD beats KD on clean accuracy
(the distillation section's measure), the graph classification loss beats cross-entropy on clean accuracy (the
classification section's measure), graph smoothness beats cross-entropy under noise and under PGD (the
robustness section's measures); the other comparisons are listed as measured, without a claim.

The protocol follows the authors' code: GitHub ``cadurosar/graph_kd`` at commit
a8cfe5ec832996b58343041f6dbd3d0d1c16b042 (``utils.representations_to_adj``, ``utils.do_gkd``, ``studentGKD.py``:
cosine graphs with zeroed diagonal, symmetric normalization, no k-NN (k = batch size), summed squared difference
averaged over three layers (the outputs of the three groups of blocks), weight 25, plus cross-entropy) and
``cadurosar/laplacian_networks`` at commit 27f6f2d7145426b38f578e9c1beecae3e7392f1b (``cifar_10/gsp.py``,
``cifar10.py``, ``train_scripts/R.sh``, ``test_gaussian_noise.py``, ``test_pgd_deepfool.py``: the Laplacian of
the complete cosine graph of every ReLU output, one-hot labels, power m = 2, weight gamma^m = 1e-4, mean of the
absolute differences between consecutive layers, batches of 100, inputs in [0, 1]; Gaussian noise of std 0.1 on
[0, 1] images; PGD (foolbox's ``ProjectedGradientDescentAttack``) with step eps / 5, 20 iterations, no random
start). No code of the classification section was
found among the authors' repositories; it follows the issue's description (edges between classes penalized) and
Bontonou et al. 2019's graph smoothness loss.

Departures (each for a reason):

- data: MNIST / Fashion-MNIST instead of CIFAR-10 (no CIFAR here), a seeded subset of ``n_train`` training and
  ``n_test`` test images (CPU time); no crop/flip augmentation (digits and garments are not mirror-symmetric);
- networks: small CNNs (:class:`~robustlab.common.models.SmallCNN`, the teacher wider than the students) instead
  of WideResNet-28-1 -> WRN-28-0.5 (distillation) and PreActResNet-18 (robustness); the graph layers are the
  three ReLU outputs ``"1"``, ``"4"``, ``"8"`` (after each convolution and the hidden linear layer), the analogue
  of the authors' three block groups and of their ReLU outputs; the classification graph is the embedding's
  (``"8"``);
- training: Adam (learning rate ``lr``) for ``epochs`` epochs instead of SGD 0.1 with steps over 200 (GKD) or 100
  (Laplacian) epochs; one batch size (``batch_size`` = 100, the Laplacian runs'; the GKD runs used 128);
- KD: Hinton's divergence with ``t**2`` and ``alpha`` weighting (the core's regime; the authors' HKD adds the
  un-scaled KL to the cross-entropy); no KD term in graph KD (as the authors' GKD runs, hkd = 0);
- robustness budgets: Gaussian noise of std ``noise_std`` drawn per image (the authors' std 0.1 is one pattern
  added to every CIFAR image) and PGD ``pgd_eps`` chosen for 28x28 grey images, where the authors' CIFAR eps of
  0.01 changes almost no prediction; both fixed before any LGG result was seen;
- the classification loss is ``trace(Y^T L Y) / N^2`` (see :mod:`robustlab.common.regimes.lgg`) added to the
  cross-entropy with weight ``cls_weight`` = 0.1, set by us (the paper's value could not be read): with weight 1
  the small student's embedding collapsed to dead ReLUs (zero vectors have no edge, so the term is 0) and stayed
  at chance in a first quick run;
- graph smoothness' weight is 1e-5, not the authors' 1e-4: on this network ``sigma`` of the first ReLU layer is
  about 7e4 at initialization (the term ~3 times the cross-entropy), and with 1e-4 the quick student stalled
  (clean accuracy 0.19 against 0.65 for cross-entropy in a first run); 1e-5 brings the term to the
  cross-entropy's scale. Neither weight was tuned on noise or PGD accuracy;
- the quick schedule (8 epochs, Adam 3e-3, students ``SmallCNN(width=8, hidden=64)``, teacher ``width=16,
  hidden=100``, 10 epochs) was set after the first quick run, whose 5 epochs at 1e-3 left even cross-entropy at
  0.65 clean accuracy on Fashion-MNIST. On 2,000 images the teacher is hardly better than a student trained with
  cross-entropy (0.78 clean accuracy for both in one quick run), so the distillation rows compare what the two
  losses transfer from an equally good network, not from a stronger one.

Paper numbers: the paper's tables (CIFAR-10) could not be read in this session (only its abstract and related
work were reachable), so no published number is shown beside ours; ``PaperNumbers`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes.base import Paper, PaperNumbers, Recipe, Table, mean_std_cell, seed_everything

__all__ = ["CLAIMS", "LABELS", "LGGProfile", "METHODS", "PAPER_NUMBERS", "PROFILES", "RECIPE", "grid", "run",
           "summarize"]

DATASETS = ("mnist", "fashion_mnist")
METHODS = ("ce", "graph_classification", "graph_smoothness", "kd", "graph_kd")
"""The students, in table order (the teacher is trained first in every run)."""
LABELS = {"teacher": "teacher (CE, wider)", "ce": "cross-entropy", "graph_classification": "LGG classification",
          "graph_smoothness": "LGG robustness (smoothness)", "kd": "KD (Hinton)", "graph_kd": "LGG KD"}
METRICS = ("clean", "noise", "pgd")
METRIC_LABELS = {"clean": "clean acc", "noise": "Gaussian-noise acc", "pgd": "PGD acc"}
CLAIMS = (("graph_kd", "kd", "clean"), ("graph_classification", "ce", "clean"),
          ("graph_smoothness", "ce", "noise"), ("graph_smoothness", "ce", "pgd"))
"""``(LGG method, counterpart, metric)``: the paper's claims, each "the LGG method scores higher"."""
MEASURED = (("graph_kd", "kd", "noise"), ("graph_kd", "kd", "pgd"), ("graph_classification", "ce", "noise"),
            ("graph_classification", "ce", "pgd"), ("graph_smoothness", "ce", "clean"))
"""Other comparisons reported with the same test, without a claim of the paper behind them."""
GRAPH_LAYERS = ("1", "4", "8")  # SmallCNN without batch norm: the ReLU after each convolution and the hidden layer
EMBEDDING = "8"

LASSANCE2021 = Paper(
    authors="Lassance, C., Gripon, V., Ortega, A.",
    title="Representing Deep Neural Networks Latent Space Geometries with Graphs",
    venue="Algorithms 14(2), 39 (arXiv:2011.07343)",
    year=2021,
    url="https://doi.org/10.3390/a14020039",
)


@dataclass(frozen=True)
class LGGProfile:
    """Hyperparameters of one profile (see the module docstring for the protocol).

    Attributes:
        datasets: ``"mnist"`` and/or ``"fashion_mnist"``.
        methods: the students (keys of :data:`METHODS`).
        seeds: runs per data set (data draw, initialization, shuffling, noise).
        n_train, n_test: training and test images (seeded subsets).
        width, hidden: the students' SmallCNN (channels of the first convolution, hidden units).
        teacher_width, teacher_hidden: the teacher's.
        epochs, teacher_epochs: training epochs of the students and of the teacher.
        batch_size: batch size (also the number of nodes of each latent graph).
        lr: Adam learning rate.
        kd_temperature, kd_alpha: Hinton KD's temperature and soft-term weight.
        gkd_weight: graph KD's weight (the authors' 25).
        cls_weight: the graph classification term's weight.
        smooth_weight, smooth_power: graph smoothness' weight and Laplacian power (the authors': 1e-4 and 2).
        noise_std: standard deviation of the Gaussian noise on [0, 1] pixels.
        pgd_eps, pgd_steps: the L-inf PGD budget and steps (step size ``pgd_eps / 5``).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...
    """

    datasets: tuple[str, ...] = bounded(("fashion_mnist",), choices=DATASETS, min_len=1, unique=True)
    methods: tuple[str, ...] = bounded(METHODS, choices=METHODS, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    n_train: int = bounded(2000, ge=20)
    n_test: int = bounded(500, ge=10)
    width: int = bounded(8, ge=1)
    hidden: int = bounded(64, ge=2)
    teacher_width: int = bounded(16, ge=1)
    teacher_hidden: int = bounded(100, ge=2)
    epochs: int = bounded(8, ge=1)
    teacher_epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(100, ge=2)
    lr: float = bounded(3e-3, gt=0)
    kd_temperature: float = bounded(4.0, gt=0)
    kd_alpha: float = bounded(0.9, ge=0, le=1)
    gkd_weight: float = bounded(25.0, ge=0)
    cls_weight: float = bounded(0.1, ge=0)
    smooth_weight: float = bounded(1e-5, ge=0)
    smooth_power: int = bounded(2, ge=1)
    noise_std: float = bounded(0.3, ge=0)
    pgd_eps: float = bounded(0.1, gt=0)
    pgd_steps: int = bounded(20, ge=1)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)


PROFILES = {
    # Seconds: a few hundred images, one epoch, every method once.
    "smoke": LGGProfile(seeds=1, n_train=200, n_test=50, width=2, hidden=8, teacher_width=4, teacher_hidden=16,
                        epochs=1, teacher_epochs=1, batch_size=50, pgd_steps=3),
    # Minutes on a 2-core CPU: MNIST and Fashion-MNIST, 5 seeds (the fewest for a verdict), every method
    # (Fashion-MNIST alone: 2 min 56 s with --jobs 2 here).
    "quick": LGGProfile(datasets=DATASETS),
    # The authors' schedule length (100 epochs) and smoothness weight on both data sets and the whole splits (a GPU).
    "paper": LGGProfile(datasets=DATASETS, seeds=10, n_train=60000, n_test=10000, width=16, hidden=100,
                        teacher_width=32, teacher_hidden=200, epochs=100, teacher_epochs=100, lr=1e-3,
                        smooth_weight=1e-4, device="auto"),
}


def grid(p: LGGProfile) -> list[dict[str, Any]]:
    """One run per data set and seed."""
    return [{"dataset": d, "seed": s} for d in p.datasets for s in range(p.seeds)]


def _regime(method: str, teacher, p: LGGProfile):
    from robustlab.common.regimes import ERM, KnowledgeDistillation
    from robustlab.common.regimes.lgg import GraphClassification, GraphDistillation, GraphSmoothness

    if method == "ce":
        return ERM()
    if method == "graph_classification":
        return GraphClassification(layers=EMBEDDING, weight=p.cls_weight)
    if method == "graph_smoothness":
        return GraphSmoothness(layers=GRAPH_LAYERS, weight=p.smooth_weight, power=p.smooth_power)
    if method == "kd":
        return KnowledgeDistillation(teacher, temperature=p.kd_temperature, alpha=p.kd_alpha)
    return GraphDistillation(teacher, layers=GRAPH_LAYERS, weight=p.gkd_weight)


def _correct(model, x, y, *, attack=None, device) -> list[int]:
    import numpy as np
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.metrics import predict

    targets, out = predict(model, DataLoader(ArrayDataset(x, y), batch_size=500), attack=attack, device=device)
    return (np.asarray(out).argmax(1) == np.asarray(targets)).astype(int).tolist()


def run(spec: dict[str, Any], p: LGGProfile) -> dict[str, Any]:
    """Train the teacher and every student of ``p.methods`` on one split; score them on the same test images."""
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.attacks import PGD
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.models import SmallCNN
    from robustlab.common.regimes import ERM
    from robustlab.vision.data import load_unit

    seed = int(spec["seed"])
    name = spec["dataset"]
    device = resolve_device(p.device)
    x, y = load_unit(name, "train", p.n_train, seed=seed)
    x_test, y_test = load_unit(name, "test", p.n_test, seed=seed)
    g = torch.Generator().manual_seed(seed + 7919)
    x_noisy = (x_test + p.noise_std * torch.randn(x_test.shape, generator=g)).clamp(0.0, 1.0)

    def train(model, regime, epochs):
        loader = DataLoader(ArrayDataset(x, y), batch_size=p.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(seed))
        opt = torch.optim.Adam(model.parameters(), lr=p.lr)
        fit(model, regime, loader, epochs=epochs, optimizer=opt, device=device, progress=False)
        return model.eval()

    def score(model) -> dict[str, list[int]]:
        attack = PGD(model, eps=p.pgd_eps, alpha=p.pgd_eps / 5, steps=p.pgd_steps, random_start=False,
                     bounds=(0.0, 1.0))
        return {"clean": _correct(model, x_test, y_test, device=device),
                "noise": _correct(model, x_noisy, y_test, device=device),
                "pgd": _correct(model, x_test, y_test, attack=attack, device=device)}

    seed_everything(seed)
    teacher = train(SmallCNN(1, 10, width=p.teacher_width, hidden=p.teacher_hidden), ERM(), p.teacher_epochs)
    items = {"teacher": score(teacher)}
    for method in p.methods:
        seed_everything(seed)  # every student starts from the same weights and sees the same batches
        student = SmallCNN(1, 10, width=p.width, hidden=p.hidden)
        items[method] = score(train(student, _regime(method, teacher, p), p.epochs))
    out: dict[str, Any] = {}
    for method, scores in items.items():
        for metric, values in scores.items():
            out[f"{method}/{metric}"] = sum(values) / len(values)
            out[f"{method}/items_{metric}"] = values
    return out


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Lassance, Gripon & Ortega (2021), CIFAR-10 experiments of sections 4-6",
    missing=("the paper's tables report CIFAR-10 with WideResNet/PreActResNet networks and could not be read in "
             "this session (only the abstract and related work were reachable); this recipe runs on "
             "MNIST/Fashion-MNIST, so no cell would have a published counterpart anyway"),
)


def _by_dataset(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        if "metrics" in r:
            groups.setdefault(str(r["spec"]["dataset"]), []).append(r)
    return groups


def _items(group: list[dict[str, Any]], method: str, metric: str) -> dict[int, list[int]]:
    key = f"{method}/items_{metric}"
    return {int(r["spec"]["seed"]): r["extras"][key] for r in group if key in r.get("extras", {})}


def summarize(results: list[dict[str, Any]], p: LGGProfile) -> Table:
    """One row per data set and model (teacher and students): mean ± sd over seeds of the three accuracies; the
    paired claims and the measured comparisons under the table."""
    from robustlab.common.metrics import paired_claim

    header = ["dataset", "method", "runs"] + [METRIC_LABELS[m] for m in METRICS] + ["paper"]
    rows, records, notes = [], [], []
    for dataset, group in _by_dataset(results).items():
        for method in ("teacher",) + METHODS:
            cols = {m: [float(r["metrics"][f"{method}/{m}"]) for r in group if f"{method}/{m}" in r["metrics"]]
                    for m in METRICS}
            if not cols["clean"]:
                continue
            rows.append([dataset, LABELS[method], str(len(cols["clean"]))]
                        + [mean_std_cell(cols[m]) for m in METRICS] + ["n/r"])
            rec: dict[str, Any] = {"dataset": dataset, "method": method, "runs": len(cols["clean"])}
            for m in METRICS:
                rec[f"{m}_mean"] = sum(cols[m]) / len(cols[m]) if cols[m] else ""
            records.append(rec)
        for kind, pairs in (("claim", CLAIMS), ("measured", MEASURED)):
            for a, b, metric in pairs:
                ia, ib = _items(group, a, metric), _items(group, b, metric)
                if not ia or not ib:
                    continue
                c = paired_claim(ia, ib, higher=True)
                what = f"'{LABELS[a]} beats {LABELS[b]}' on {METRIC_LABELS[metric]}"
                if kind == "claim":
                    notes.append(f"{dataset}: claim {what} (paired by seed and test image, 95 % interval): "
                                 f"{c.mean_a:.3f} vs {c.mean_b:.3f}, {c.summary()} -> {c.verdict}.")
                else:
                    notes.append(f"{dataset}: measured, no claim of the paper: {what}: {c.mean_a:.3f} vs "
                                 f"{c.mean_b:.3f}, {c.summary()}.")
    notes.append(f"Protocol: {p.n_train} training and {p.n_test} test images, students SmallCNN(width={p.width}, "
                 f"hidden={p.hidden}), teacher SmallCNN(width={p.teacher_width}, hidden={p.teacher_hidden}), Adam "
                 f"lr {p.lr:g}, {p.epochs} epochs (teacher {p.teacher_epochs}), batches of {p.batch_size}; graph "
                 f"layers {', '.join(GRAPH_LAYERS)} (classification: {EMBEDDING}); KD t={p.kd_temperature:g}, "
                 f"alpha={p.kd_alpha:g}; graph KD weight {p.gkd_weight:g}; classification weight {p.cls_weight:g}; "
                 f"smoothness weight {p.smooth_weight:g}, power {p.smooth_power}; Gaussian noise std "
                 f"{p.noise_std:g}; PGD L-inf eps {p.pgd_eps:g}, {p.pgd_steps} steps of eps/5, no random start.")
    notes.append(f"Paper ({PAPER_NUMBERS.source}): n/r, not reported: {PAPER_NUMBERS.missing}.")
    return Table(header=header, rows=rows, records=records, notes=notes)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Bars of the three accuracies per model, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_dataset(results)
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(6.5 * max(1, len(groups)), 3.8), squeeze=False)
    for ax, (dataset, group) in zip(axes[0], groups.items()):
        methods = [m for m in ("teacher",) + METHODS if any(f"{m}/clean" in r["metrics"] for r in group)]
        width = 0.8 / max(1, len(methods))
        for i, m in enumerate(methods):
            means = []
            for metric in METRICS:
                v = [float(r["metrics"][f"{m}/{metric}"]) for r in group if f"{m}/{metric}" in r["metrics"]]
                means.append(sum(v) / len(v))
            ax.bar([j + (i - (len(methods) - 1) / 2) * width for j in range(len(METRICS))], means, width,
                   label=LABELS[m])
        ax.set_xticks(range(len(METRICS)), [METRIC_LABELS[m] for m in METRICS])
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(dataset, fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


RECIPE = Recipe(
    name="lassance2021_lgg",
    paper=LASSANCE2021,
    table="latent geometry graph losses (distillation, classification, robustness) against KD and cross-entropy: "
          "clean, Gaussian-noise and PGD accuracy (the authors' CIFAR-10 protocol on MNIST/Fashion-MNIST)",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="dataset",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
