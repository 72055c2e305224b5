"""``khalooei2022_lsa``: layer sustainability analysis and layer-wise regularized adversarial training (AT-LR).

Khalooei, Homayounpour & Amirmazlaghani (2022), arXiv:2202.02626, on two moons (their model A, an MLP) and MNIST
(model B, a CNN): accuracy under FGSM of growing budget for normal training, adversarial training (AT) and AT-LR,
and the per-layer relative error of each trained model. The authors' code, GitHub ``khalooei/LSA`` at commit
e4f9e8ee08bf315aca30273a35d2b88acaf5e020, holds the LSA measure only
(``LayerSustainabilityAnalysis/layersustainabilityanalysis.py``: forward hooks on the ReLU/ELU/LeakyReLU modules,
relative error ``||phi(x) - phi(x')||_F / ||phi(x)||_F`` over the whole batch tensor); its README gives the AT-LR
objective and its ``presentation-public.pdf`` prints the paper's Algorithms 1-3, Table 1 (architectures), Table 2
(Moon) and Table 3 (MNIST). There is no public training code; the protocol below follows those.

One run is one data set and seed and trains, from the same initialization and batch order:

1. ``normal``: cross-entropy (the paper's Algorithm 2, step 1: standard training);
2. LSA on the normal model (:func:`robustlab.common.analysis.layers.layer_sustainability`): relative error of
   every activation layer under PGD at the training budget, on ``n_lsa`` held-out training samples; the MVL
   list by Algorithm 1 (:func:`~robustlab.common.analysis.layers.vulnerable_layers`, cut-off ``eta``; at least
   one layer);
3. ``at``: PGD adversarial training on the adversarial batch only (Madry et al.; the paper's base AT);
4. ``atlr``: :class:`robustlab.common.regimes.atlr.ATLR` with the same attack and the MVL list, weight ``gamma``
   per layer (Algorithm 3).

Scored on the test set: accuracy under FGSM at every budget of ``eval_eps`` (the paper's tables: 0, 0.1, ..., 0.5)
with the per-item correctness kept, and the per-layer relative error of each model under PGD at the training
budget (the plot, as the paper's per-layer figures). The claim "AT-LR beats AT at the larger budgets" is
decided with :func:`robustlab.common.metrics.paired_claim`, paired by seed and test item, at every budget of at
least ``claim_eps``.

Departures (each for a reason; also in the README):
- the paper's training settings (training eps, steps, epochs, optimizer, data sizes, moon noise, the weights
  gamma and the cut-off eta) are not in anything public we could read: training eps 0.3 on both data sets (the
  middle of the evaluation grid; MNIST's customary budget), PGD with ``train_steps`` steps, Adam, gamma 1 and
  eta 1 (with the highest layer taken when none passes) were set once, before any result, not tuned;
- MNIST's base attack is PGD, not APGD (AT-APGD in Table 3): robustlab has no APGD; Moon's base is AT-PGD, as
  in Table 2's AT-PGD rows;
- networks: model A is ``linear(100)-ELU x3-Linear(1)``; here ``MLP(2, 2, hidden)`` with ReLU and two logits
  (robustlab's MLP; cross-entropy instead of a sigmoid output). Model B has three 5x5 convolutions (16, 32, 64)
  and 4 ReLU layers; here ``SmallCNN`` (two 3x3 convolutions of ``width`` and ``2 * width`` channels, a hidden
  layer of ``hidden``; 3 ReLU layers), narrower in ``quick`` for CPU time;
- data: make_moons (noise ``noise``, not standardized: budgets in its units) as the core recipe
  ``khalooei2022_moons``; MNIST subsets in [0, 1] (``robustlab.vision.data.load_unit``);
- the MVL list comes from held-out training samples, not from the test set (Algorithm 2 attacks D_test): the
  layers to regularize are then not chosen on the data that scores them;
- LSA of the trained models uses PGD at the training budget (the paper's figures do not print the budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.errors import ConfigError
from robustlab.common.recipes.base import PaperNumbers, Recipe, Table, mean_std_table, seed_everything
from robustlab.common.recipes.khalooei2022_moons import PAPER

__all__ = ["LSAProfile", "PAPER_NUMBERS", "PROFILES", "RECIPE", "REGIMES", "grid", "run", "summarize", "plot"]

DATASETS = ("moons", "mnist")
REGIMES = {"normal": "Normal", "at": "AT (PGD)", "atlr": "AT-LR (PGD, MVL layers)"}
"""Regime ids and display names; every run trains all three."""

_MNIST_TRAIN, _MNIST_TEST = 60000, 10000


@dataclass(frozen=True)
class LSAProfile:
    """Hyperparameters of the LSA / AT-LR experiment.

    Attributes:
        datasets: ``"moons"`` and/or ``"mnist"``.
        seeds: runs per data set, seeds ``0 .. seeds - 1`` (data draw, initialization, batch order, attacks).
        eval_eps: FGSM budgets of the evaluation (0 is clean); the paper's tables: 0, 0.1, ..., 0.5.
        claim_eps: the claim is decided at every evaluation budget of at least this ("the larger perturbations").
        train_steps: PGD steps of the training attack (step ``2.5 * eps / steps``, random start) and of LSA.
        gamma: the weight of each MVL layer's relative error in AT-LR.
        eta: Algorithm 1's cut-off in standard deviations (at least one layer is always taken).
        n_lsa: held-out training samples on which LSA picks the MVL list.
        moons_*: two moons: sample sizes, make_moons noise, MLP widths, epochs, batch, Adam learning rate, eps.
        mnist_*: MNIST: sample sizes, SmallCNN width and hidden units, epochs, batch, Adam learning rate, eps.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
    """

    datasets: tuple[str, ...] = bounded(DATASETS, choices=DATASETS, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    eval_eps: tuple[float, ...] = bounded((0.0, 0.1, 0.2, 0.3, 0.4, 0.5), ge=0, min_len=1, unique=True)
    claim_eps: float = bounded(0.4, ge=0)
    train_steps: int = bounded(7, ge=1)
    gamma: float = bounded(1.0, ge=0)
    eta: float = bounded(1.0)
    n_lsa: int = bounded(500, ge=2)
    moons_train: int = bounded(1000, ge=2)
    moons_test: int = bounded(1000, ge=1)
    moons_noise: float = bounded(0.1, ge=0)
    moons_hidden: tuple[int, ...] = bounded((100, 100, 100), ge=1, min_len=1)
    moons_epochs: int = bounded(60, ge=1)
    moons_batch: int = bounded(128, ge=1)
    moons_lr: float = bounded(3e-3, gt=0)
    moons_eps: float = bounded(0.3, gt=0)
    mnist_train: int = bounded(5000, ge=10)
    mnist_test: int = bounded(1000, ge=1)
    mnist_width: int = bounded(8, ge=1)
    mnist_hidden: int = bounded(64, ge=1)
    mnist_epochs: int = bounded(5, ge=1)
    mnist_batch: int = bounded(64, ge=1)
    mnist_lr: float = bounded(1e-3, gt=0)
    mnist_eps: float = bounded(0.3, gt=0, le=1)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)
        if not any(e >= self.claim_eps for e in self.eval_eps):
            raise ConfigError(f"claim_eps {self.claim_eps:g} is above every budget of eval_eps {self.eval_eps}: "
                              "no budget to decide the claim at")
        if "mnist" in self.datasets and self.mnist_train + self.n_lsa > _MNIST_TRAIN:
            raise ConfigError(f"mnist_train + n_lsa = {self.mnist_train + self.n_lsa} exceeds MNIST's {_MNIST_TRAIN} "
                              "training images (the LSA samples are held out of the training set)")
        if self.mnist_test > _MNIST_TEST:
            raise ConfigError(f"mnist_test must be at most {_MNIST_TEST} (MNIST's test set), got {self.mnist_test}")


PROFILES = {
    # Seconds: a few hundred points and images, one seed, one or two epochs.
    "smoke": LSAProfile(seeds=1, eval_eps=(0.0, 0.3), claim_eps=0.3, train_steps=2, n_lsa=32, moons_train=128,
                        moons_test=64, moons_hidden=(16, 16), moons_epochs=2, moons_batch=64, mnist_train=128,
                        mnist_test=64, mnist_width=4, mnist_hidden=16, mnist_epochs=1, mnist_batch=64),
    # Minutes on a 2-core CPU: both data sets, 5 seeds (the fewest for a verdict), the paper's FGSM grid. One MNIST
    # run took 108 s of CPU time with 6,000 images (about 90 s at 5,000) and a moons run about 15 s, one thread each
    # (measured on a loaded machine): 10 runs, about 4.5 minutes with --jobs 2.
    "quick": LSAProfile(),
    # Closer to the paper: model B's widths, the MNIST training set (less the 1,000 LSA images), more epochs and
    # attack steps (a GPU).
    "paper": LSAProfile(seeds=5, train_steps=20, n_lsa=1000, moons_train=5000, moons_test=5000, moons_epochs=200,
                        mnist_train=59000, mnist_test=10000, mnist_width=16, mnist_hidden=100, mnist_epochs=20,
                        mnist_batch=128, device="auto"),
}


def grid(p: LSAProfile) -> list[dict[str, Any]]:
    """One run per data set and seed (each trains the three regimes)."""
    return [{"dataset": d, "seed": s} for d in p.datasets for s in range(p.seeds)]


def _data(dataset: str, seed: int, p: LSAProfile):
    """``(train, lsa, test)`` pairs of tensors, and the input bounds."""
    import torch

    if dataset == "moons":
        from robustlab.common.recipes.khalooei2022_moons import MoonsProfile
        from robustlab.common.recipes.khalooei2022_moons import _data as moons

        (x, y), (xt, yt) = moons(seed, MoonsProfile(n_train=p.moons_train + p.n_lsa, n_test=p.moons_test,
                                                    noise=p.moons_noise))
        x, xt = torch.from_numpy(x), torch.from_numpy(xt)
        y, yt = torch.from_numpy(y).long(), torch.from_numpy(yt).long()
        n = p.moons_train
        return (x[:n], y[:n]), (x[n:], y[n:]), (xt, yt), None
    from robustlab.vision.data import load_unit

    x, y = load_unit("mnist", "train", p.mnist_train + p.n_lsa, seed=seed)
    xt, yt = load_unit("mnist", "test", p.mnist_test, seed=seed)
    n = p.mnist_train
    return (x[:n], y[:n]), (x[n:], y[n:]), (xt, yt), (0.0, 1.0)


def _model(dataset: str, p: LSAProfile):
    from robustlab.common.models import MLP, SmallCNN

    if dataset == "moons":
        return MLP(2, 2, hidden=p.moons_hidden)
    return SmallCNN(1, 10, width=p.mnist_width, hidden=p.mnist_hidden)


def _settings(dataset: str, p: LSAProfile) -> dict[str, Any]:
    if dataset == "moons":
        return {"eps": p.moons_eps, "epochs": p.moons_epochs, "batch": p.moons_batch, "lr": p.moons_lr}
    return {"eps": p.mnist_eps, "epochs": p.mnist_epochs, "batch": p.mnist_batch, "lr": p.mnist_lr}


def run(spec: dict[str, Any], p: LSAProfile) -> dict[str, Any]:
    """Normal training, LSA and its MVL list, AT and AT-LR on one data set and seed; FGSM accuracies and LSA."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.analysis.layers import default_layers, layer_sustainability, vulnerable_layers
    from robustlab.common.attacks import FGSM, PGD
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.metrics import predict
    from robustlab.common.regimes import ERM, AdversarialTraining
    from robustlab.common.regimes.atlr import ATLR

    dataset, seed = spec["dataset"], int(spec["seed"])
    if dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    seed_everything(seed)
    (x, y), (x_lsa, y_lsa), (x_te, y_te), bounds = _data(dataset, seed, p)
    s = _settings(dataset, p)
    device = resolve_device(p.device)
    init = _model(dataset, p)
    layers = default_layers(init)

    def pgd(model):
        return PGD(model, eps=s["eps"], steps=p.train_steps, alpha=2.5 * s["eps"] / p.train_steps, bounds=bounds)

    def train(make_regime):
        model = copy.deepcopy(init)
        loader = DataLoader(ArrayDataset(x, y), batch_size=s["batch"], shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)  # the attacks' random starts
        fit(model, make_regime(model), loader, epochs=s["epochs"],
            optimizer=torch.optim.Adam(model.parameters(), lr=s["lr"]), device=device, progress=False)
        return model

    models = {"normal": train(lambda m: ERM())}
    torch.manual_seed(seed)
    lsa_normal = layer_sustainability(models["normal"], (x_lsa, y_lsa), pgd(models["normal"]), device=device)
    mvl = vulnerable_layers(lsa_normal, eta=p.eta, at_least=1)
    models["at"] = train(lambda m: AdversarialTraining(pgd(m)))
    models["atlr"] = train(lambda m: ATLR(pgd(m), layers=mvl, weights=p.gamma))

    test = DataLoader(ArrayDataset(x_te, y_te), batch_size=500)
    metrics: dict[str, Any] = {}
    items: dict[str, dict[str, list[int]]] = {}
    lsa: dict[str, list[float]] = {}
    for name, model in models.items():
        items[name] = {}
        for eps in p.eval_eps:
            torch.manual_seed(seed)
            attack = None if eps == 0 else FGSM(model, eps=eps, bounds=bounds)
            yy, out = predict(model, test, attack=attack, device=device)
            correct = (out.argmax(1) == yy).astype(int)
            metrics[f"{name}/{_column(eps)}"] = float(correct.mean())
            items[name][_column(eps)] = correct.tolist()
        torch.manual_seed(seed)
        lsa[name] = [float(v) for v in layer_sustainability(model, (x_te, y_te), pgd(model), device=device).errors]
    return {**metrics, "mvl_size": float(len(mvl)), "mvl": mvl, "layers": layers,
            "lsa_normal_heldout": lsa_normal.as_dict(), "lsa": lsa, "items": items}


def _column(eps: float) -> str:
    return "clean" if eps == 0 else f"fgsm@{eps:g}"


def _paper(values: dict[str, dict[str, tuple[float, ...]]]) -> dict[tuple[str, str], float]:
    cols = [_column(e) for e in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)]
    return {(f"{d}/{r}", c): v / 100 for d, rows in values.items() for r, vs in rows.items() for c, v in zip(cols, vs)}


PAPER_NUMBERS = PaperNumbers(
    values=_paper({
        # Table 2 (model A on Moon, FGSM): Normal, AT-PGD and AT-PGD-LR-L2 (the layer the paper's Moon LSA finds
        # most vulnerable, its learnable layer 2).
        "moons": {"normal": (97.07, 93.63, 82.5, 76.83, 63.79, 52.35),
                  "at": (86.5, 83.89, 80.87, 76.61, 72.57, 60.02),
                  "atlr": (88.78, 86.93, 81.25, 77.01, 72.81, 66.58)},
        # Table 3 (model B on MNIST, FGSM): Normal, AT-APGD and AT-APGD-LR-L0.
        "mnist": {"normal": (98.82, 82.1, 47.2, 17.87, 6.96, 4.25),
                  "at": (99.36, 98.54, 97.67, 96.97, 71.72, 33.73),
                  "atlr": (98.97, 98.11, 97.36, 97.17, 94.6, 55.52)},
    }),
    source=("Khalooei et al. (2022), Table 2 (Moon, model A) and Table 3 (MNIST, model B), accuracy under FGSM at "
            "eps 0-0.5, as printed on slides 19 and 23 of the authors' presentation-public.pdf (github "
            "khalooei/LSA at e4f9e8e); the arXiv text itself could not be read here. Paper rows: Normal; AT = "
            "AT-PGD (Moon), AT-APGD (MNIST); AT-LR = AT-PGD-LR-L2 (Moon), AT-APGD-LR-L0 (MNIST). Abstract: AT-LR "
            "raises accuracy at the larger perturbations by 16.35 points on Moon and 21.79 on MNIST over its base "
            "AT (MNIST: 55.52 - 33.73 at eps 0.5 in Table 3; the Moon figure is not a difference of the Table 2 "
            "cells printed on the slides)"),
    missing="no other cell is printed (the paper's tables stop at eps 0.5)",
)


def _regime_records(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One pseudo-record per run and regime (``setting`` = ``dataset/regime``) for :func:`mean_std_table`."""
    out = []
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        d = r["spec"]["dataset"]
        for regime in REGIMES:
            m = {k.split("/", 1)[1]: v for k, v in r["metrics"].items() if k.startswith(f"{regime}/")}
            out.append({"index": r.get("index", 0) * 10 + list(REGIMES).index(regime),
                        "spec": {"setting": f"{d}/{regime}", "seed": r["spec"]["seed"]}, "metrics": m})
    return out


def claims(results: list[dict[str, Any]], p: LSAProfile) -> list[dict[str, Any]]:
    """AT-LR vs AT per data set and budget of at least ``claim_eps``: :func:`paired_claim` by seed and test item."""
    from robustlab.common.metrics import paired_claim

    out = []
    for d in DATASETS:
        runs = [r for r in results if r["spec"]["dataset"] == d]
        if not runs:
            continue
        for eps in sorted(e for e in p.eval_eps if e >= p.claim_eps):
            col = _column(eps)
            a = {r["spec"]["seed"]: r["extras"]["items"]["atlr"][col] for r in runs}
            b = {r["spec"]["seed"]: r["extras"]["items"]["at"][col] for r in runs}
            c = paired_claim(a, b, higher=True)
            published = [PAPER_NUMBERS.get(f"{d}/{x}", col) for x in ("atlr", "at")]
            gain = None if None in published else published[0] - published[1]
            out.append({"dataset": d, "column": col, "claim": c, "paper_gain": gain})
    return out


def summarize(results: list[dict[str, Any]], p: LSAProfile) -> Table:
    """Mean ± std over seeds per data set and regime beside the paper's cells; the claims and MVL lists below."""
    labels = {f"{d}/{r}": f"{d} {name}" for d in DATASETS for r, name in REGIMES.items()}
    table = mean_std_table(_regime_records(results), rows="setting", paper=PAPER_NUMBERS, labels=labels)
    notes = list(table.notes)
    for c in claims(results, p):
        paper = "" if c["paper_gain"] is None else f" (paper: {c['paper_gain']:+.4f})"
        notes.append(f"Claim, {c['dataset']}: AT-LR beats AT under {c['column']}: {c['claim'].verdict}; AT-LR - AT "
                     f"{c['claim'].summary()}{paper}.")
    for d in DATASETS:
        lists = sorted({tuple(r["extras"]["mvl"]) for r in results if r["spec"]["dataset"] == d})
        if lists:
            layers = next(r["extras"]["layers"] for r in results if r["spec"]["dataset"] == d)
            notes.append(f"MVL lists, {d} (activation layers {layers}, LSA of the normal model, eta {p.eta:g}): "
                         + "; ".join(str(list(m)) for m in lists) + ".")
    notes.append(
        f"Protocol: FGSM evaluation on the test set; training attack PGD-{p.train_steps} (L-inf, random start) at eps "
        f"{p.moons_eps:g} (moons) / {p.mnist_eps:g} (MNIST), eps ramped over the first 30% of epochs, adversarial "
        f"batch only; AT-LR gamma {p.gamma:g} per MVL layer. Moons: make_moons noise {p.moons_noise:g}, "
        f"{p.moons_train} train / {p.n_lsa} LSA / {p.moons_test} test, MLP 2-{'-'.join(map(str, p.moons_hidden))}-2, "
        f"Adam lr {p.moons_lr:g}, {p.moons_epochs} epochs. MNIST: {p.mnist_train} train / {p.n_lsa} LSA / "
        f"{p.mnist_test} test in [0, 1], SmallCNN width {p.mnist_width} hidden {p.mnist_hidden}, Adam lr "
        f"{p.mnist_lr:g}, {p.mnist_epochs} epochs.")
    return Table(header=table.header, rows=table.rows, records=table.records, notes=notes)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Per data set: accuracy against the FGSM budget per regime (mean ± std), and the per-layer relative error
    of each trained model under PGD (mean over seeds; the MVL layers of the lowest seed marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from robustlab.common.analysis.layers import plot_layer_errors

    present = [d for d in DATASETS if any(r["spec"]["dataset"] == d for r in results)]
    fig, axes = plt.subplots(2, max(1, len(present)), figsize=(5.2 * max(1, len(present)), 7.0), squeeze=False)
    for j, d in enumerate(present):
        runs = sorted((r for r in results if r["spec"]["dataset"] == d), key=lambda r: r["spec"]["seed"])
        ax = axes[0, j]
        for regime, name in REGIMES.items():
            keys = [k for k in runs[0]["metrics"] if k.startswith(f"{regime}/")]
            eps = [0.0 if k.endswith("/clean") else float(k.split("@", 1)[1]) for k in keys]
            vals = np.array([[r["metrics"][k] for k in keys] for r in runs])
            mean = vals.mean(0)
            std = vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(len(keys))
            line, = ax.plot(eps, mean, "-o", label=f"{name} (n={len(runs)})")
            ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("FGSM budget eps (L-inf, input units)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(f"{d}: accuracy under FGSM", fontsize=9)
        layers = runs[0]["extras"]["layers"]
        curves = {REGIMES[g]: np.mean([r["extras"]["lsa"][g] for r in runs], 0) for g in REGIMES}
        plot_layer_errors(curves, path, labels=[f"{i}: {n}" for i, n in enumerate(layers)], ax=axes[1, j],
                          title=f"{d}: relative error per activation layer under PGD (mean over seeds)")
        for name in runs[0]["extras"]["mvl"]:
            axes[1, j].axvline(layers.index(name), color="grey", ls=":", lw=1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RECIPE = Recipe(
    name="khalooei2022_lsa",
    paper=PAPER,
    table="Tables 2 and 3: accuracy under FGSM of growing budget for normal training, AT and AT-LR on two moons "
          "and MNIST, with the per-layer relative error (LSA) of each model",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="dataset",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
