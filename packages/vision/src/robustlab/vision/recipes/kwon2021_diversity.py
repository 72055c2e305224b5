"""``kwon2021_diversity``: diversity adversarial training against transferred attacks (Kwon & Lee, Symmetry 2021).

The protocol of the paper's Algorithm 1, on MNIST and Fashion-MNIST. One run is one data set and seed and trains
every network of the comparison on the same data:

1. A local (source) model ``M_L`` is trained on the training images and then fixed.
2. A separate holdout model (another initialization, trained on another draw of training images, a wider
   hidden layer) stands for the attacker's network: the evaluation examples are crafted on it with FGSM,
   I-FGSM (:class:`~robustlab.common.attacks.BIM`), DeepFool and CW-L2 on ``n_test`` test images, and
   transferred to the target models (the defender never sees the holdout model).
3. Three target models of one architecture and one initialization: ``none`` (clean training), ``single``
   (adversarial training with one attack, FGSM, whose examples come from the local model) and ``diversity``
   (:class:`~robustlab.common.regimes.diversity.DiversityAdversarialTraining`: the clean images plus the FGSM,
   I-FGSM, DeepFool and CW examples of the local model, with their labels). The examples are crafted once per
   training image, in the first epoch, and reused (``cache=True``): the local model is fixed and the attacks
   deterministic, so this is the precomputed set ``(X, Y) + (X*, Y)`` of Algorithm 1.

Scored per target: clean test accuracy on the ``n_test`` images, and per attack the attack success rate (ASR):
the fraction of the holdout model's adversarial examples of the ``n_test`` images that the target misclassifies
(the same items for every target, so the comparison is paired). ``asr_mean`` averages the four attacks. The
claim "diversity AT lowers the mean ASR compared with no defence" is decided per data set with
:func:`robustlab.common.metrics.paired_claim`, paired by seed and test image (per image: the share of the four
attacks whose example fools the target).

Authors' code: none public that we could find (searched GitHub code, issues, documentation and web pages for the
title, the authors and "diversity adversarial training"); the paper used TensorFlow. Only part of the article
could be read here (the abstract, the attack descriptions and Algorithm 1 of the stored MDPI page; the
experiment-setup sections and the tables were not in the stored copy), so the networks, budgets, attack
parameters, epochs and the single-attack baseline below are ours, chosen before any result was seen. Departures
(each also in the README):

- budgets: FGSM and I-FGSM at L-inf ``eps`` 0.3 (MNIST) and 0.1 (Fashion-MNIST), the literature's values on
  inputs in ``[0, 1]``; I-FGSM 10 steps of ``2.5 * eps / 10``; DeepFool uncapped (overshoot 0.02, all ten
  classes as candidates) with the overshoot on the accumulated perturbation (``accumulate=True``: the
  original Algorithm 2 and cleverhans, the TensorFlow library of the time; torchattacks lengthens each clipped
  step instead); CW-L2 uncapped with one constant ``c`` (no binary search, as torchattacks) and ``kappa = 0``;
- the single-attack baseline is FGSM adversarial training with the local model's FGSM examples (the classic
  baseline, Goodfellow et al.; the paper's baseline could not be read);
- networks: small CNNs (:class:`~robustlab.common.models.SmallCNN`) for local, holdout and targets, the holdout
  with a different hidden width, initialization and training draw; ``quick`` trains on ``n_train`` images for a
  few epochs and evaluates ``n_test`` test images (CPU time), DeepFool with ``deepfool_steps`` < 50 (10 in
  ``quick``: on the quick holdout model it then fools about a quarter of the test images white-box, reported as
  ``holdout/whitebox_deepfool``; 50 steps cost five times as much) and CW with
  ``cw_steps`` Adam steps at a larger learning rate than torchattacks' 0.01 (at 0.01, 100 steps fool 16 % of
  the MNIST test images in our cross-check);
- the paper's figures (ASR lowered by 27.2 and 24.3 points on average over the attacks, clean accuracy 98.7 %
  and 91.5 %) are from its abstract; their exact definition of "on average" (over attacks, against which
  baseline) could not be read: we set our drop of the mean ASR from ``none`` to ``diversity`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes.base import Paper, PaperNumbers, Recipe, Table, mean_std_cell, seed_everything

__all__ = ["ATTACKS", "DEFENCES", "DiversityProfile", "PROFILES", "RECIPE", "grid", "run", "summarize"]

DATASETS = ("mnist", "fashion_mnist")
ATTACKS = ("fgsm", "bim", "deepfool", "cw")
"""The four attacks of the paper: FGSM, I-FGSM (BIM), DeepFool, CW-L2."""
DEFENCES = {"none": "no defence", "single": "single-attack AT (FGSM)", "diversity": "diversity AT"}
"""Target models (table rows) and their display names."""


@dataclass(frozen=True)
class DiversityProfile:
    """Hyperparameters of one profile.

    Attributes:
        datasets: ``"mnist"`` and/or ``"fashion_mnist"``.
        seeds: runs per data set (seeds ``0 .. seeds - 1``); 5 is the fewest for a verdict.
        n_train: training images of the local model and of every target (a seeded draw).
        n_holdout: training images of the holdout model (another seeded draw).
        n_test: test images that are attacked and scored.
        width: channels of the first convolution of every SmallCNN.
        hidden: hidden width of the local and target models; the holdout's is ``holdout_hidden``.
        holdout_hidden: hidden width of the holdout model.
        epochs: training epochs of every model.
        batch_size: clean images per batch (diversity AT adds four adversarial copies of each).
        lr: Adam learning rate.
        mnist_eps, fashion_mnist_eps: L-inf budget of FGSM and I-FGSM per data set.
        bim_steps: I-FGSM steps (step ``2.5 * eps / bim_steps``).
        deepfool_steps: the most DeepFool steps (50 in torchattacks).
        cw_c, cw_steps, cw_lr: CW's constant, Adam steps and learning rate.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, ...
    """

    datasets: tuple[str, ...] = bounded(DATASETS, choices=DATASETS, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    n_train: int = bounded(1200, ge=10)
    n_holdout: int = bounded(1200, ge=10)
    n_test: int = bounded(300, ge=10)
    width: int = bounded(8, ge=1)
    hidden: int = bounded(64, ge=1)
    holdout_hidden: int = bounded(128, ge=1)
    epochs: int = bounded(5, ge=1)
    batch_size: int = bounded(64, ge=1)
    lr: float = bounded(2e-3, gt=0)
    mnist_eps: float = bounded(0.3, gt=0, le=1)
    fashion_mnist_eps: float = bounded(0.1, gt=0, le=1)
    bim_steps: int = bounded(10, ge=1)
    deepfool_steps: int = bounded(10, ge=1)
    cw_c: float = bounded(10.0, gt=0)
    cw_steps: int = bounded(30, ge=1)
    cw_lr: float = bounded(0.1, gt=0)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)


PROFILES = {
    # Seconds: one data set, one seed, a few hundred images, one epoch, short attacks.
    "smoke": DiversityProfile(datasets=("mnist",), seeds=1, n_train=128, n_holdout=128, n_test=32, width=4,
                              hidden=32, holdout_hidden=48, epochs=1, bim_steps=3, deepfool_steps=3, cw_steps=5),
    # Minutes on a 2-core CPU: both data sets, 5 seeds (the fewest for a verdict).
    "quick": DiversityProfile(),
    # The full training and test sets, the attacks at torchattacks' step counts, more epochs (a GPU).
    "paper": DiversityProfile(n_train=60000, n_holdout=60000, n_test=10000, width=32, hidden=128,
                              holdout_hidden=256, epochs=20, deepfool_steps=50, cw_steps=100, cw_lr=0.01,
                              device="auto"),
}


def grid(p: DiversityProfile) -> list[dict[str, Any]]:
    """One run per data set and seed; each run trains the local, holdout and the three target models."""
    return [{"dataset": d, "seed": s} for d in p.datasets for s in range(p.seeds)]


def _attacks(model, eps: float, p: DiversityProfile) -> dict[str, Any]:
    from robustlab.common.attacks import BIM, CW, FGSM, DeepFool

    box = (0.0, 1.0)
    return {"fgsm": FGSM(model, eps=eps, bounds=box),
            "bim": BIM(model, eps=eps, steps=p.bim_steps, bounds=box),
            "deepfool": DeepFool(model, steps=p.deepfool_steps, overshoot=0.02, accumulate=True, bounds=box),
            "cw": CW(model, c=p.cw_c, kappa=0.0, steps=p.cw_steps, lr=p.cw_lr, bounds=box)}


def run(spec: dict[str, Any], p: DiversityProfile) -> dict[str, Any]:
    """Train the local, holdout and target models of one data set and seed; score every target."""
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.models import SmallCNN
    from robustlab.common.regimes import ERM
    from robustlab.common.regimes.diversity import DiversityAdversarialTraining
    from robustlab.vision.data.images import load_unit

    seed, name = int(spec["seed"]), spec["dataset"]
    device = resolve_device(p.device)
    eps = p.mnist_eps if name == "mnist" else p.fashion_mnist_eps
    x_tr, y_tr = load_unit(name, "train", p.n_train, seed=seed)
    x_ho, y_ho = load_unit(name, "train", p.n_holdout, seed=10_000 + seed)  # the holdout's own draw
    x_te, y_te = load_unit(name, "test", p.n_test, seed=seed)

    def train(model, regime, x, y, init_seed):
        loader = DataLoader(ArrayDataset(x, y), batch_size=p.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(init_seed))
        fit(model, regime, loader, epochs=p.epochs, optimizer=torch.optim.Adam(model.parameters(), lr=p.lr),
            device=device, progress=False)
        return model.eval()

    def cnn(hidden, init_seed):
        torch.manual_seed(init_seed)
        return SmallCNN(1, 10, width=p.width, hidden=hidden)

    seed_everything(seed)
    local = train(cnn(p.hidden, 3 * seed), ERM(), x_tr, y_tr, 3 * seed)
    holdout = train(cnn(p.holdout_hidden, 3 * seed + 1), ERM(), x_ho, y_ho, 3 * seed + 1)

    # the attacker's examples, crafted once on the holdout model and shown to every target
    x_te_d, y_te_d = x_te.to(device), y_te.to(device)
    crafted = {k: a(x_te_d, y_te_d) for k, a in _attacks(holdout, eps, p).items()}
    metrics: dict[str, Any] = {}
    with torch.no_grad():
        for m, label in ((local, "local"), (holdout, "holdout")):
            metrics[f"{label}/clean"] = (m(x_te_d).argmax(1) == y_te_d).float().mean().item()
        for k, xa in crafted.items():  # white-box success on the holdout itself (the attacks bite)
            metrics[f"holdout/whitebox_{k}"] = (holdout(xa).argmax(1) != y_te_d).float().mean().item()

    for defence in DEFENCES:
        target = cnn(p.hidden, 3 * seed + 2)  # one initialization for the three targets
        if defence == "none":
            regime = ERM()
        else:
            attacks = _attacks(None, eps, p)
            chosen = {"fgsm": attacks["fgsm"]} if defence == "single" else attacks
            regime = DiversityAdversarialTraining(local, chosen, cache=True)
        train(target, regime, x_tr, y_tr, 3 * seed + 2)
        with torch.no_grad():
            metrics[f"{defence}/clean"] = (target(x_te_d).argmax(1) == y_te_d).float().mean().item()
            fooled = torch.stack([(target(crafted[k]).argmax(1) != y_te_d).float() for k in ATTACKS])
        for k, row in zip(ATTACKS, fooled):
            metrics[f"{defence}/asr_{k}"] = row.mean().item()
        metrics[f"{defence}/asr_mean"] = fooled.mean().item()
        metrics[f"{defence}/items"] = [round(v, 4) for v in fooled.mean(0).cpu().tolist()]
    return metrics


PAPER_NUMBERS = PaperNumbers(
    values={("mnist", "diversity/clean"): 0.987, ("fashion_mnist", "diversity/clean"): 0.915,
            ("mnist", "asr_drop"): 0.272, ("fashion_mnist", "asr_drop"): 0.243},
    source="Kwon & Lee (2021), abstract: ASR lowered by 27.2 (MNIST) and 24.3 (Fashion-MNIST) points on average "
           "over the adversarial examples, clean accuracy 98.7 % and 91.5 % with diversity training",
    missing=("the per-attack ASR tables and the baselines' figures could not be read (only the abstract, the "
             "method section and Algorithm 1 of the article were available); no number is read off a plot"),
)

COLUMNS = ("clean", *(f"asr_{k}" for k in ATTACKS), "asr_mean")


def claims(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per data set, :func:`paired_claim` of "diversity AT has a lower mean ASR than no defence", paired by seed
    and test image (per image: the share of the four attacks whose example fools the target)."""
    from robustlab.common.metrics import paired_claim

    out = {}
    for d in DATASETS:
        runs = [r for r in results if r["spec"]["dataset"] == d and "metrics" in r]
        if not runs:
            continue
        a = {int(r["spec"]["seed"]): _value(r, "diversity/items") for r in runs}
        b = {int(r["spec"]["seed"]): _value(r, "none/items") for r in runs}
        out[d] = paired_claim(a, b, higher=False)
    return out


def _value(record: dict[str, Any], key: str) -> Any:
    if key in record.get("metrics", {}):
        return record["metrics"][key]
    return record.get("extras", {}).get(key)


def summarize(results: list[dict[str, Any]], p: DiversityProfile) -> Table:
    """One row per data set and target: clean accuracy and the ASR of every transferred attack; the paper's
    clean accuracy and average ASR drop beside ours; the paired claim in the notes."""
    header = ["dataset", "target", "runs", *COLUMNS, "diversity/clean (paper)", "asr_drop", "asr_drop (paper)"]
    rows, records = [], []
    for d in DATASETS:
        runs = [r for r in results if r["spec"]["dataset"] == d and "metrics" in r]
        if not runs:
            continue
        drops = [_value(r, "none/asr_mean") - _value(r, "diversity/asr_mean") for r in runs]
        for defence, label in DEFENCES.items():
            cells = [d, label, str(len(runs))]
            rec: dict[str, Any] = {"dataset": d, "target": defence, "runs": len(runs)}
            for c in COLUMNS:
                values = [float(_value(r, f"{defence}/{c}")) for r in runs]
                cells.append(mean_std_cell(values))
                rec[f"{c}_mean"] = sum(values) / len(values)
            paper_clean = PAPER_NUMBERS.get(d, "diversity/clean") if defence == "diversity" else None
            paper_drop = PAPER_NUMBERS.get(d, "asr_drop") if defence == "diversity" else None
            cells.append("n/r" if paper_clean is None else f"{paper_clean:.3f}")
            cells.append(mean_std_cell(drops) if defence == "diversity" else "")
            cells.append("n/r" if paper_drop is None else f"{paper_drop:.3f}")
            rec["paper_clean"] = "" if paper_clean is None else paper_clean
            rec["asr_drop_mean"] = sum(drops) / len(drops) if defence == "diversity" else ""
            rec["paper_asr_drop"] = "" if paper_drop is None else paper_drop
            rows.append(cells)
            records.append(rec)
    notes = ["Ours: mean ± sample standard deviation over seeds (3 decimals). ASR: fraction of the holdout model's "
             "adversarial examples of the test images that the target misclassifies (transfer attack). asr_drop: "
             "mean ASR of no defence minus that of diversity AT, per seed.",
             f"Paper: {PAPER_NUMBERS.source}. n/r, not reported: {PAPER_NUMBERS.missing}."]
    for d, c in claims(results).items():
        notes.append(f"Claim ({d}): diversity AT lowers the mean ASR compared with no defence: {c.verdict} "
                     f"(diversity minus none {c.summary()}).")
    notes.append(f"Protocol: {p.n_train} training images (local model and targets), {p.n_holdout} for the holdout "
                 f"model, {p.n_test} test images; SmallCNN width {p.width}, hidden {p.hidden} (holdout "
                 f"{p.holdout_hidden}), Adam lr {p.lr:g}, {p.epochs} epochs, batch {p.batch_size}; FGSM and "
                 f"I-FGSM ({p.bim_steps} steps) at eps {p.mnist_eps:g} (MNIST) / {p.fashion_mnist_eps:g} "
                 f"(Fashion-MNIST), DeepFool {p.deepfool_steps} steps, CW-L2 c {p.cw_c:g}, {p.cw_steps} steps, "
                 f"lr {p.cw_lr:g}.")
    return Table(header=header, rows=rows, records=records, notes=notes)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """ASR per attack and target, one panel per data set (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sets = [d for d in DATASETS if any(r["spec"]["dataset"] == d and "metrics" in r for r in results)]
    fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(5.2 * max(1, len(sets)), 3.6), squeeze=False)
    for ax, d in zip(axes[0], sets):
        runs = [r for r in results if r["spec"]["dataset"] == d and "metrics" in r]
        cols = [*(f"asr_{k}" for k in ATTACKS), "asr_mean", "clean"]
        width = 0.8 / len(DEFENCES)
        for i, (defence, label) in enumerate(DEFENCES.items()):
            vals = np.array([[float(_value(r, f"{defence}/{c}")) for c in cols] for r in runs])
            std = vals.std(0, ddof=1) if len(vals) > 1 else np.zeros(len(cols))
            ax.bar(np.arange(len(cols)) + (i - 1) * width, vals.mean(0), width, yerr=std, capsize=2, label=label)
        ax.set_xticks(range(len(cols)), [c.replace("asr_", "ASR ") for c in cols], rotation=30, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{d}: transferred attacks (n={len(runs)} seeds)", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RECIPE = Recipe(
    name="kwon2021_diversity",
    paper=Paper(authors="Kwon, H., Lee, J.",
                title="Diversity Adversarial Training against Adversarial Attack on Deep Neural Networks",
                venue="Symmetry 13(3):428", year=2021, url="https://doi.org/10.3390/sym13030428"),
    table="Attack success rate of FGSM, I-FGSM, DeepFool and CW examples transferred from a holdout model, and clean "
          "accuracy, for no defence, single-attack AT and diversity AT on MNIST and Fashion-MNIST",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="dataset",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)

