"""``hartmann2021_patterns``: how binary ReLU activation patterns evolve during training (Hartmann, Franzen &
Brodehl, Frontiers in Artificial Intelligence 2021), for a plain CNN and a residual network on MNIST and
Fashion-MNIST.

The authors' code is public: GitHub ``JGU-VC/activation-pattern-analysis`` at commit
14da42ad541ee4faf35d360a6e871fd44decd33d (``actpat_modules/activations/activation_stats`` counts the patterns,
``actpat_modules/activations/DS-act-stats`` computes the measures; ``experiments/measures.sh`` runs them for
``resnet20``, ``convnet20`` (the same network without shortcuts) and ``toynet20`` on CIFAR-10 with
``sotacifar10.multistep``: SGD lr 0.1, momentum 0.9, weight decay 1e-4, batch 128, 200 epochs, learning rate /10 at
epochs 100 and 150). Their definitions, followed by :mod:`robustlab.common.analysis.activation_patterns`: a
pattern is the sign vector of a ReLU layer's channels at one position (per sample and pixel for convolutions);
per layer, the entropy of the distribution of patterns over the training data (bits), relative to
``min(channels, log2 points)``; between two measurements, the Jaccard index of the sets of patterns
(``JI(last,current)``) and its count-weighted version (``wJI``).

One run trains one network (``small_cnn``: robustlab's SmallCNN, two convolutions and a hidden linear layer, three
``nn.ReLU``; ``resnet8``/``resnet14``: robustlab.vision's CIFAR ResNet of He et al., depth 8 or 14, whose ReLUs
are functional: recorded at the stem's and each block's first batch norm, whose sign is the ReLU's, and at each
block's output) on one data set with one seed, with an
:class:`~robustlab.common.analysis.activation_patterns.ActivationPatternRecorder` on every ReLU site as a
callback of ``fit``. Per epoch and layer: relative entropy, Jaccard and weighted Jaccard to the previous epoch,
number of patterns; per epoch the test accuracy. The table gives the final epoch's values of the first and last
ReLU layer and their mean over layers; the plot their evolution per layer for both networks.

Departures from the authors' protocol (each for a reason):
- data: MNIST and Fashion-MNIST (the issue's data; CIFAR-10 and Tiny ImageNet are not available here), a seeded
  subset of ``n_train`` training images, no augmentation (the authors flip and crop CIFAR);
- networks: SmallCNN and ResNet-8 instead of convnet20/resnet20/toynet20 (CPU minutes; the plain-versus-residual
  contrast is kept); ``paper`` runs ResNet-20 (the authors' resnet20 on one input channel) beside the plain CNN,
  whose counterpart convnet20 (resnet20 without shortcuts) robustlab does not have;
- schedule: ``epochs`` epochs with the learning rate /10 at 50 % and 75 % of them (the authors' 100 and 150 of
  200); lr 0.05 in ``smoke``/``quick``, half the authors' 0.1, because SmallCNN has no batch norm (set once
  before any run, not tuned on results; ``paper`` uses 0.1);
- measurement: the patterns of the epoch's own training forward passes, pooled (the authors run a separate pass
  over the whole unaugmented training set, in training mode on a copy of the network, at each measuring point),
  and exact counts instead of fixed-size hash tables; measured once per epoch (the authors every 0.5 to 1 epoch
  in ``measures.sh``, much more often early);
- no claims: the paper states its findings (bottom-up convergence of layers in most networks; intermediate dips
  of entropy in conventional CNNs, not in residual networks) as curve shapes on CIFAR-10, with no printed number
  and no test; the table and plot show ours, no verdict is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes.base import Paper, PaperNumbers, Recipe, Table, mean_std_table, seed_everything

__all__ = ["DATASETS", "MODELS", "PROFILES", "PatternsProfile", "RECIPE", "grid", "resnet_relu_layers", "run"]

DATASETS = ("mnist", "fashion_mnist")
MODELS = ("small_cnn", "resnet8", "resnet14", "resnet20")
"""``small_cnn``: the plain CNN; ``resnetD``: robustlab.vision's ResNet of depth D."""

HARTMANN2021 = Paper(
    authors="Hartmann, D., Franzen, D., Brodehl, S.",
    title="Studying the Evolution of Neural Activation Patterns During Training of Feed-Forward ReLU Networks",
    venue="Frontiers in Artificial Intelligence 4:642374",
    year=2021,
    url="https://doi.org/10.3389/frai.2021.642374",
)


@dataclass(frozen=True)
class PatternsProfile:
    """Hyperparameters of one profile.

    Attributes:
        datasets: ``mnist`` and/or ``fashion_mnist``.
        models: networks (:data:`MODELS`).
        seeds: runs per network and data set (seeds ``0 .. seeds - 1``: subset, initialization, shuffling).
        n_train: training images (a seeded subset of the official training split).
        n_test: test images (a seeded subset of the official test split) for the accuracy per epoch.
        epochs: training epochs (the learning rate /10 at 50 % and 75 % of them).
        batch_size: training batch size.
        lr, momentum, weight_decay: SGD.
        width: SmallCNN's first convolution's channels (the second has twice as many).
        hidden: SmallCNN's hidden linear layer.
        pattern: ``"channels"`` (a position's channel vector, the authors') or ``"sample"``.
        device: ``cpu``, ``cuda``, ``auto``...
    """

    datasets: tuple[str, ...] = bounded(DATASETS, choices=DATASETS, min_len=1, unique=True)
    models: tuple[str, ...] = bounded(("small_cnn", "resnet8"), choices=MODELS, min_len=1, unique=True)
    seeds: int = bounded(2, ge=1)
    n_train: int = bounded(7000, ge=16)
    n_test: int = bounded(2000, ge=10)
    epochs: int = bounded(10, ge=2)
    batch_size: int = bounded(128, ge=2)
    lr: float = bounded(0.05, gt=0)
    momentum: float = bounded(0.9, ge=0, lt=1)
    weight_decay: float = bounded(1e-4, ge=0)
    width: int = bounded(16, ge=1)
    hidden: int = bounded(100, ge=1)
    pattern: str = bounded("channels", choices=("channels", "sample"))
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)


PROFILES = {
    # Seconds: a few hundred MNIST images, two epochs (the second has a similarity to the first), both networks.
    "smoke": PatternsProfile(datasets=("mnist",), seeds=1, n_train=256, n_test=128, epochs=2, batch_size=64,
                             width=8, hidden=32),
    # Minutes on a 2-core CPU: both data sets and networks, 2 seeds, 10 epochs of 7,000 images (a SmallCNN and a
    # ResNet-8 run together took 121 s of one thread, so the 8 runs about 8 minutes of one thread, 4 with --jobs 2).
    "quick": PatternsProfile(),
    # The authors' schedule (SGD 0.1, 200 epochs, /10 at 100 and 150, batch 128) on the full training sets, with
    # the deeper residual network (ResNet-20, their resnet20) beside the plain CNN.
    "paper": PatternsProfile(models=("small_cnn", "resnet20"), seeds=3, n_train=60000, n_test=10000, epochs=200,
                             lr=0.1, device="auto"),
}


def grid(p: PatternsProfile) -> list[dict[str, Any]]:
    """One run per data set, network and seed."""
    return [{"dataset": d, "model": m, "seed": s} for d in p.datasets for m in p.models for s in range(p.seeds)]


def resnet_relu_layers(model) -> list[str]:
    """The ReLU sites of robustlab.vision's ``ResNet`` (it applies ``F.relu``), by module name: ``bn1`` (the stem's
    pre-activation), then per block ``layerS.B.bn1`` (its first ReLU's pre-activation) and ``layerS.B`` (its
    output, a ReLU's)."""
    names = ["bn1"]
    for stage in ("layer1", "layer2", "layer3"):
        for i in range(len(getattr(model, stage))):
            names += [f"{stage}.{i}.bn1", f"{stage}.{i}"]
    return names


def _model(name: str, p: PatternsProfile):
    if name == "small_cnn":
        from robustlab.common.models import SmallCNN

        return SmallCNN(width=p.width, hidden=p.hidden), None
    from robustlab.vision.models import ResNet

    model = ResNet(depth=int(name.removeprefix("resnet")))
    return model, resnet_relu_layers(model)


def run(spec: dict[str, Any], p: PatternsProfile) -> dict[str, Any]:
    """Train one network with the recorder on; the final epoch's statistics and the per-epoch history."""
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.analysis.activation_patterns import ActivationPatternRecorder
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.regimes import ERM
    from robustlab.vision.data import load_unit

    seed = int(spec["seed"])
    seed_everything(seed)
    x, y = load_unit(spec["dataset"], "train", p.n_train, seed=seed)
    xt, yt = load_unit(spec["dataset"], "test", p.n_test, seed=seed)
    g = torch.Generator().manual_seed(seed)
    train = DataLoader(ArrayDataset(x, y), batch_size=p.batch_size, shuffle=True, generator=g)
    test = DataLoader(ArrayDataset(xt, yt), batch_size=512)
    model, layers = _model(spec["model"], p)
    # every training pass (the default records every second one, which keeps the cost of leaving it on within
    # 10 % of an epoch): the recipe's statistics are over the whole epoch's passes
    recorder = ActivationPatternRecorder(model, layers, pattern=p.pattern, every=1)
    opt = torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    milestones = sorted({max(1, p.epochs // 2), max(1, (3 * p.epochs) // 4)})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    result = fit(model, ERM(), train, val_loader=test, optimizer=opt, scheduler=sched, epochs=p.epochs,
                 device=p.device, progress=False, callbacks=[recorder])
    last = recorder.history[-1]["layers"]
    first_name, last_name = recorder.names[0], recorder.names[-1]

    def mean(stat: str) -> float:
        values = [v[stat] for v in last.values() if v[stat] is not None]
        return sum(values) / len(values) if values else float("nan")

    return {
        "accuracy": result.history[-1]["val_accuracy"],
        "rel_entropy/first": last[first_name]["relative_entropy"],
        "rel_entropy/last": last[last_name]["relative_entropy"],
        "rel_entropy/mean": mean("relative_entropy"),
        "jaccard/first": last[first_name]["jaccard"],
        "jaccard/last": last[last_name]["jaccard"],
        "jaccard/mean": mean("jaccard"),
        "weighted_jaccard/mean": mean("weighted_jaccard"),
        "layers": recorder.names,
        "history": recorder.history,
        "accuracy_per_epoch": [r["val_accuracy"] for r in result.history],
        "train_loss_per_epoch": [r["train_loss"] for r in result.history],
    }


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Hartmann et al. (2021), figures of the measures over training (CIFAR-10, Tiny ImageNet)",
    missing=("the paper shows its measures as curves over training on CIFAR-10 and Tiny ImageNet, with no table "
             "of numbers; this recipe runs MNIST and Fashion-MNIST, so no cell has a published counterpart"),
)

COLUMNS = ("accuracy", "rel_entropy/first", "rel_entropy/last", "rel_entropy/mean", "jaccard/first",
           "jaccard/last", "jaccard/mean", "weighted_jaccard/mean")


def _setting(spec: dict[str, Any]) -> str:
    return f"{spec['model']} {spec['dataset']}"


def summarize(results: list[dict[str, Any]], p: PatternsProfile) -> Table:
    """Mean ± std over seeds per network and data set of the final epoch's statistics."""
    rows = [{**r, "spec": {**r["spec"], "setting": _setting(r["spec"])}} for r in results]
    table = mean_std_table(rows, rows="setting", paper=PAPER_NUMBERS, columns=COLUMNS)
    notes = [
        "Statistics of the last epoch: rel_entropy = pattern entropy / min(channels, log2 points); jaccard = "
        "Jaccard index of the sets of patterns of the last two epochs; weighted_jaccard its count-weighted form; "
        "first/last = the first and last ReLU layer, mean = over all ReLU layers.",
        f"Protocol: {p.n_train} training / {p.n_test} test images, SGD lr {p.lr:g} (momentum {p.momentum:g}, weight "
        f"decay {p.weight_decay:g}, /10 at 50 % and 75 % of {p.epochs} epochs), batch {p.batch_size}; patterns "
        f"per {'position (channel vector)' if p.pattern == 'channels' else 'sample'}, pooled over each epoch's "
        "training forward passes.",
        "No claim is decided: the paper's findings are curve shapes (bottom-up convergence, entropy dips in plain "
        "CNNs) with no printed number; see the plot.",
    ]
    return Table(header=table.header, rows=table.rows, records=table.records, notes=[*table.notes, *notes])


def _mean_history(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch, per-layer statistics averaged over the runs of one setting (None where any run has None)."""
    hists = [r["extras"]["history"] for r in group]
    out = []
    for e, row in enumerate(hists[0]):
        layers = {}
        for name, stats in row["layers"].items():
            layers[name] = {}
            for k in stats:
                vals = [h[e]["layers"][name][k] for h in hists if e < len(h)]
                layers[name][k] = None if any(v is None for v in vals) else sum(vals) / len(vals)
        out.append({"epoch": row["epoch"], "layers": layers})
    return out


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Relative entropy and Jaccard to the previous epoch per layer over the epochs, and the test accuracy, for
    every network and data set (mean over seeds)."""
    from robustlab.common.analysis.activation_patterns import plot_pattern_history

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        if "extras" in r and "history" in r["extras"]:
            groups.setdefault(_setting(r["spec"]), []).append(r)
    histories = {k: _mean_history(g) for k, g in groups.items()}
    extra = {}
    for k, g in groups.items():
        accs = [r["extras"]["accuracy_per_epoch"] for r in g]
        extra[k] = {"test accuracy": [sum(v) / len(v) for v in zip(*accs)]}
    plot_pattern_history(histories, path, statistics=("relative_entropy", "jaccard", "weighted_jaccard"),
                         extra=extra, title="Activation patterns per ReLU layer over training (dark: first layer, "
                                            "light: last; mean over seeds)")


RECIPE = Recipe(
    name="hartmann2021_patterns",
    paper=HARTMANN2021,
    table="Entropy of binary ReLU activation patterns and their similarity between epochs, per layer over "
          "training, for a plain CNN and a residual network (the paper's measures, shown there as curves on "
          "CIFAR-10)",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="model",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
