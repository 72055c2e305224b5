"""``kwon2021_onmanifold``: on-manifold adversarial training of compressed models (Kwon & Lee, Future Internet 2021).

Kwon, J., Lee, S. "Improving the Robustness of Model Compression by On-Manifold Adversarial Training", Future
Internet 13(12), 300, 2021 (https://doi.org/10.3390/fi13120300). The authors' code is GitHub ``sanglee/MC-ATON`` at
commit 8393cdb20957bf2fe11633c062aa7979ca389cc4 (``src/mnist_run.ipynb``, ``src/training/vae_train.py``,
``src/training/on_manifold_generation.py``, ``src/training/model_prune.py``). Only the paper's abstract and section
headings could be read here, not its result tables or its Algorithm 1; the protocol follows the code, and the
claim is the abstract's: "on-manifold adversarial training can be effective in building robust classifiers,
especially when the model compression rate is high".

One run is one (data set, seed, training regime) and covers every compression rate:

1. An autoencoder (:class:`robustlab.common.models.Autoencoder`) is trained on the training images
   (reconstruction, mean squared error); its codes define the on-manifold perturbations. The latent budget is
   ``onm_eta`` times each latent dimension's standard deviation over the training codes (the code's ``eta = 0.3``
   is in the units of a VAE's unit-variance latent).
2. A dense base classifier is trained with cross-entropy (the code's ``base_<model>.pt``): every compressed model
   starts from it.
3. Fixed test sets, the same for every regime and rate (the code generates its on-/off-manifold test loaders once,
   against the base classifier): ``clean``; ``on_manifold``, :class:`~robustlab.common.regimes.on_manifold.
   OnManifoldPGD` against the base classifier (latent L-inf PGD, ``onm_steps`` steps, decoded and clamped to
   [0, 1]); ``off_manifold``, pixel-space PGD against the base classifier; ``noisy``, Gaussian noise of standard
   deviation ``noise_std`` clamped to [0, 1] (natural noise, the paper's motivation).
4. For each compression rate, the base classifier is fine-tuned for ``epochs`` epochs with the regime while
   :class:`~robustlab.common.regimes.pruning.GradualPruning` (``inner=`` the regime) prunes every layer but the
   last to the rate: ``standard`` (cross-entropy), ``off_manifold`` (PGD adversarial training,
   :class:`~robustlab.common.regimes.AdversarialTraining`) or ``on_manifold``
   (:class:`~robustlab.common.regimes.on_manifold.OnManifoldAdversarialTraining`, crafted against the model
   being trained through the frozen autoencoder). Rate 0 fine-tunes without pruning.

Scored: accuracy of each compressed model on each test set, and the sparsity reached. The claim "on-manifold AT
helps most at high compression" is decided with :func:`robustlab.common.metrics.paired_claim` per data set: the
per-item gain of on-manifold AT over standard training on the on-manifold test inputs at the highest rate, against
the same gain at the lowest rate, paired by seed and test image. A second claim: on-manifold AT beats standard
training on the on-manifold inputs at the highest rate.

Departures from the authors' code (each for a reason, also in the README):
- compression: unstructured per-layer magnitude pruning on the cubic schedule of Zhu & Gupta (the core's
  ``GradualPruning``, reaching the rate at ``prune_end`` of the fine-tuning steps) instead of the code's structured
  projection (filters and neurons of smallest norm zeroed after every optimizer step, at the final rate from the
  first step; the paper calls it compression by sparse coding); the issue asks for gradual pruning, and the core
  has no structured projection; the last layer stays dense in both;
- autoencoder: a fully connected autoencoder with a deterministic code instead of the code's convolutional VAE
  (latent 128, trained 15 epochs on 32x32 images); CPU time; the latent budget is scaled by the codes' spread so
  it means the same as in a unit-variance latent;
- latent attack: proper PGD (the perturbation accumulates over the steps, step ``2.5 * eps / steps``) where the
  code's loop restarts from ``z`` at every step (``z + alpha * sign(grad)``, so only the last step counts) and
  initializes the perturbation to ``z`` itself; no clamp of the code to [-2, 2] (a VAE's range); no filtering of
  the on-manifold examples by a latent classifier (the code keeps those whose label a classifier on the codes
  still predicts): not applied because its classifier and its threshold are not in the paper text we could read;
- on-manifold training examples are crafted on the fly against the model being trained, half of each batch
  (``onm_fraction``, the batches of Stutz et al.'s on-manifold AT), where the code trains on a set crafted once
  against the base model and filtered (``robust_train``: that set alone);
- off-manifold AT: PGD with ``pgd_eps`` (pixel units, [0, 1]) and ``pgd_steps`` steps of ``2.5 * eps / steps``,
  eps ramped over the first epochs (the core's default); the code's budget does not carry over (its [-1, 1] data
  are clamped to [0, 1] inside its attack and its nominal eps 1.0 is never reached by 7 steps of 0.01);
- model: ``SmallCNN`` (two 3x3 convolutions, 28x28) instead of the code's LeNet (5x5, 64/128 channels, 256/256
  hidden units, 32x32); training and test subsets of ``n_train``/``n_test`` images (CPU time); fine-tuning
  ``epochs`` instead of 15, Adam at ``lr`` (the code: Adam 5e-4/1e-3, weight decay 5e-6);
- rates: ``quick`` runs 0, 50, 90 and 95 %; ``paper`` the code's list (0 to 99.9 %);
- Fashion-MNIST: in the code's data loaders, but its notebook runs MNIST only; ``quick`` and ``paper`` run both; the code's
  other experiments (simulated data of a known distribution, UCI HAR time series) are not vision tables and
  are left out; the introduction's second finding (on-manifold AT uses model capacity more efficiently than
  off-manifold AT) is not decided here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes import Paper, PaperNumbers, Recipe, Table, mean_std_cell, seed_everything

__all__ = ["RECIPE", "PROFILES", "OnManifoldProfile", "REGIMES", "KINDS", "grid", "run", "summarize", "plot",
           "claims"]

DATASETS = ("mnist", "fashion_mnist")
REGIMES = {"standard": "standard", "off_manifold": "off-manifold AT (PGD)", "on_manifold": "on-manifold AT"}
"""Regime ids and display names."""
KINDS = ("clean", "on_manifold", "noisy", "off_manifold")
"""The test inputs, in table order."""
_AUTHORS_RATES = (0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999)  # mnist_run.ipynb, sparsity_ratio_list


@dataclass(frozen=True)
class OnManifoldProfile:
    """Hyperparameters of one profile (budgets in pixel units for images in [0, 1], latent budgets in standard
    deviations of the training codes).

    Attributes:
        datasets: ``"mnist"`` and/or ``"fashion_mnist"``.
        regimes: the training regimes (keys of :data:`REGIMES`).
        rates: compression rates (fractions of each pruned layer's weights set to zero).
        seeds: seeds ``0 .. seeds - 1`` (subsets, initializations, attacks, noise).
        n_train, n_test: images drawn from the official training and test sets.
        width, hidden: ``SmallCNN`` channels of the first convolution and hidden units.
        latent_dim, ae_hidden, ae_epochs: the autoencoder.
        base_epochs: epochs of the dense base classifier.
        epochs: fine-tuning epochs per rate and regime.
        prune_end: fraction of the fine-tuning steps at which the rate is reached.
        prune_frequency: optimizer steps between two mask updates.
        batch_size, lr: training batches and Adam's learning rate.
        onm_eta: latent L-inf budget (per dimension, in standard deviations of the codes), training and test.
        onm_steps: latent PGD steps.
        onm_fraction: fraction of each batch replaced by on-manifold examples in on-manifold AT.
        pgd_eps, pgd_steps: pixel-space PGD of off-manifold AT and of the off-manifold test set.
        noise_std: standard deviation of the Gaussian test noise.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...
    """

    datasets: tuple[str, ...] = bounded(("mnist",), choices=DATASETS, min_len=1, unique=True)
    regimes: tuple[str, ...] = bounded(tuple(REGIMES), choices=tuple(REGIMES), min_len=1, unique=True)
    rates: tuple[float, ...] = bounded((0.0, 0.5, 0.9, 0.95), ge=0, lt=1, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    n_train: int = bounded(1200, ge=16)
    n_test: int = bounded(800, ge=8)
    width: int = bounded(8, ge=1)
    hidden: int = bounded(64, ge=1)
    latent_dim: int = bounded(16, ge=1)
    ae_hidden: tuple[int, ...] = bounded((256,), ge=1)
    ae_epochs: int = bounded(10, ge=1)
    base_epochs: int = bounded(8, ge=1)
    epochs: int = bounded(3, ge=1)
    prune_end: float = bounded(0.5, ge=0, le=1)
    prune_frequency: int = bounded(5, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    onm_eta: float = bounded(0.3, gt=0)
    onm_steps: int = bounded(7, ge=1)
    onm_fraction: float = bounded(0.5, ge=0, le=1)
    pgd_eps: float = bounded(0.1, gt=0)
    pgd_steps: int = bounded(7, ge=1)
    noise_std: float = bounded(0.3, gt=0)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)


PROFILES = {
    # Seconds: a few hundred images, one epoch each, two rates, one seed.
    "smoke": OnManifoldProfile(rates=(0.0, 0.8), seeds=1, n_train=128, n_test=64, width=4, hidden=16, latent_dim=4,
                               ae_hidden=(32,), ae_epochs=1, base_epochs=1, epochs=1, batch_size=32, onm_steps=2,
                               pgd_steps=2, prune_frequency=1),
    # Minutes on 2 cores: MNIST and Fashion-MNIST, four rates, three regimes, five seeds (the fewest for a
    # verdict); 1,200 training images, 8 base epochs and 3 fine-tuning epochs per rate (MNIST alone, 15 runs: 2 min
    # 52 s with --jobs 2 here).
    "quick": OnManifoldProfile(datasets=DATASETS),
    # The code's rates, both data sets, the whole splits and 15 fine-tuning epochs.
    "paper": OnManifoldProfile(datasets=DATASETS, rates=_AUTHORS_RATES, n_train=60000, n_test=10000, width=32,
                               hidden=256, latent_dim=128, ae_hidden=(512, 256), ae_epochs=15, base_epochs=15,
                               epochs=15, prune_frequency=100, batch_size=128, device="auto"),
}


def grid(p: OnManifoldProfile) -> list[dict[str, Any]]:
    """One run per data set, seed and regime; a run covers every rate (the autoencoder and the base model are
    trained once per run, from the seed, so every regime of a seed sees the same ones)."""
    return [{"dataset": d, "seed": s, "regime": r} for d in p.datasets for s in range(p.seeds) for r in p.regimes]


def _key(rate: float) -> str:
    return f"{rate:g}"


def _fit_autoencoder(x, p: OnManifoldProfile, device, seed: int):
    import torch
    from torch.nn import functional as F
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import Autoencoder
    from robustlab.common.regimes import ERM

    torch.manual_seed(seed)
    ae = Autoencoder(tuple(x.shape[1:]), p.latent_dim, hidden=p.ae_hidden, output="sigmoid")
    loader = DataLoader(ArrayDataset(x, x), batch_size=p.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    fit(ae, ERM(loss=F.mse_loss, task="regression"), loader, epochs=p.ae_epochs,
        optimizer=torch.optim.Adam(ae.parameters(), lr=p.lr), device=device, progress=False)
    ae.eval().requires_grad_(False)
    with torch.no_grad():
        codes = ae.encode(x.to(next(ae.parameters()).device))
        recon = float(F.mse_loss(ae.decode(codes), x.to(codes.device)))
    return ae, codes.std(0).clamp_min(1e-6).cpu(), recon


def _setting(spec, p: OnManifoldProfile, device):
    """What every regime of one (data set, seed) shares: data, autoencoder, base model, fixed test inputs."""
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.attacks import PGD
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import SmallCNN
    from robustlab.common.regimes import ERM
    from robustlab.common.regimes.on_manifold import OnManifoldPGD
    from robustlab.vision.data import load_unit

    seed = int(spec["seed"])
    x, y = load_unit(spec["dataset"], "train", p.n_train, seed=seed)
    x_te, y_te = load_unit(spec["dataset"], "test", p.n_test, seed=seed)
    ae, code_std, recon = _fit_autoencoder(x, p, device, seed)
    latent_eps = p.onm_eta * code_std

    torch.manual_seed(seed)
    base = SmallCNN(1, 10, width=p.width, hidden=p.hidden)
    train = DataLoader(ArrayDataset(x, y), batch_size=p.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    fit(base, ERM(), train, epochs=p.base_epochs, optimizer=torch.optim.Adam(base.parameters(), lr=p.lr),
        device=device, progress=False)
    base.eval()
    dev = next(base.parameters()).device
    torch.manual_seed(seed)
    tests = {"clean": x_te}
    onm = OnManifoldPGD(base, ae.to(dev), eps=latent_eps.to(dev), steps=p.onm_steps, bounds=(0.0, 1.0))
    off = PGD(base, eps=p.pgd_eps, steps=p.pgd_steps, bounds=(0.0, 1.0))
    chunks = {"on_manifold": [], "off_manifold": []}
    for i in range(0, len(x_te), 256):
        xb, yb = x_te[i:i + 256].to(dev), y_te[i:i + 256].to(dev)
        chunks["on_manifold"].append(onm(xb, yb).cpu())
        chunks["off_manifold"].append(off(xb, yb).cpu())
    tests.update({k: torch.cat(v) for k, v in chunks.items()})
    g = torch.Generator().manual_seed(seed)
    tests["noisy"] = (x_te + p.noise_std * torch.randn(x_te.shape, generator=g)).clamp(0.0, 1.0)
    return {"train": (x, y), "y_test": y_te, "tests": tests, "ae": ae, "latent_eps": latent_eps, "base": base,
            "recon": recon}


def _regime(name: str, model, s, p: OnManifoldProfile):
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import ERM, AdversarialTraining
    from robustlab.common.regimes.on_manifold import OnManifoldAdversarialTraining

    if name == "standard":
        return ERM()
    if name == "off_manifold":
        return AdversarialTraining(PGD(model, eps=p.pgd_eps, steps=p.pgd_steps, bounds=(0.0, 1.0)))
    if name == "on_manifold":
        return OnManifoldAdversarialTraining(s["ae"], eps=s["latent_eps"], steps=p.onm_steps, bounds=(0.0, 1.0),
                                             fraction=p.onm_fraction)
    raise ValueError(f"unknown regime {name!r}; expected one of {tuple(REGIMES)}")


def run(spec: dict[str, Any], p: OnManifoldProfile) -> dict[str, Any]:
    """Fine-tune the base model with one regime at every rate; accuracy per test set, sparsity, per-item marks."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.metrics import predict
    from robustlab.common.regimes.pruning import GradualPruning

    seed = int(spec["seed"])
    seed_everything(seed)
    device = resolve_device(p.device)
    s = _setting(spec, p, device)
    x, y = s["train"]
    y_te = s["y_test"].numpy()
    metrics: dict[str, Any] = {"ae_recon_mse": s["recon"]}
    for rate in p.rates:
        seed_everything(seed * 1000 + round(rate * 1000))
        model = copy.deepcopy(s["base"]).train()
        regime = _regime(spec["regime"], model, s, p)
        if rate > 0:
            regime = GradualPruning(rate, begin=0.0, end=p.prune_end, frequency=p.prune_frequency,
                                    exclude_last=True, inner=regime)
        train = DataLoader(ArrayDataset(x, y), batch_size=p.batch_size, shuffle=True,
                           generator=torch.Generator().manual_seed(seed))
        fit(model, regime, train, epochs=p.epochs, optimizer=torch.optim.Adam(model.parameters(), lr=p.lr),
            device=device, progress=False)
        layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][:-1]
        zeros = sum(int((m.weight == 0).sum()) for m in layers)
        metrics[f"sparsity@{_key(rate)}"] = zeros / sum(m.weight.numel() for m in layers)
        for kind in KINDS:
            xt = s["tests"][kind]
            _, out = predict(model, DataLoader(ArrayDataset(xt, s["y_test"]), batch_size=512), device=device)
            correct = (out.argmax(1) == y_te).astype(int)
            metrics[f"{kind}@{_key(rate)}"] = float(correct.mean())
            metrics[f"items/{kind}@{_key(rate)}"] = correct.tolist()
    return metrics


PAPER = Paper(
    authors="Kwon, J., Lee, S.",
    title="Improving the Robustness of Model Compression by On-Manifold Adversarial Training",
    venue="Future Internet 13(12), 300",
    year=2021,
    url="https://doi.org/10.3390/fi13120300",
)

PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Kwon & Lee (2021), Future Internet 13(12), 300",
    missing=("only the paper's abstract and section headings could be read here (not its result tables), so no "
             "number of it is set beside ours; its claim, from the abstract, is checked below"),
)


def _runs(results) -> dict[tuple[str, str], dict[int, dict[str, Any]]]:
    """``(dataset, regime) -> seed -> metrics and extras`` of the runs with metrics."""
    out: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in results:
        if "metrics" in r:
            spec = r["spec"]
            out.setdefault((spec["dataset"], spec["regime"]), {})[int(spec["seed"])] = {
                **r.get("extras", {}), **r["metrics"]}
    return out


def claims(results, p: OnManifoldProfile) -> dict[str, Any]:
    """Per data set, the paired claims: ``"<dataset>: gain grows"`` (on-manifold AT's per-item gain over
    standard training on the on-manifold inputs is larger at the highest rate than at the lowest) and
    ``"<dataset>: gain at top"`` (on-manifold AT above standard on those inputs at the highest rate)."""
    import numpy as np

    from robustlab.common.metrics import paired_claim

    runs = _runs(results)
    lo, hi = _key(min(p.rates)), _key(max(p.rates))
    out = {}
    for d in p.datasets:
        onm, std = runs.get((d, "on_manifold"), {}), runs.get((d, "standard"), {})
        seeds = sorted(set(onm) & set(std))

        def gain(rate, s, onm=onm, std=std):
            key = f"items/on_manifold@{rate}"
            return np.asarray(onm[s][key], float) - np.asarray(std[s][key], float)

        if not seeds or lo == hi:
            continue
        out[f"{d}: gain grows"] = paired_claim({s: gain(hi, s) for s in seeds}, {s: gain(lo, s) for s in seeds})
        key = f"items/on_manifold@{hi}"
        out[f"{d}: gain at top"] = paired_claim({s: np.asarray(onm[s][key], float) for s in seeds},
                                                {s: np.asarray(std[s][key], float) for s in seeds})
    return out


def summarize(results: list[dict[str, Any]], p: OnManifoldProfile) -> Table:
    """One row per data set, regime and rate: accuracy on each kind of test input and the sparsity reached."""
    runs = _runs(results)
    header = ["dataset", "regime", "rate", "runs", *KINDS, "sparsity"]
    rows, records = [], []
    for d in p.datasets:
        for name in p.regimes:
            group = runs.get((d, name), {})
            if not group:
                continue
            for rate in p.rates:
                k = _key(rate)
                cells = [d, REGIMES[name], f"{rate:.1%}", str(len(group))]
                rec: dict[str, Any] = {"dataset": d, "regime": name, "rate": rate, "runs": len(group)}
                for col in (*KINDS, "sparsity"):
                    values = [float(m[f"{col}@{k}"]) for m in group.values() if f"{col}@{k}" in m]
                    cells.append(mean_std_cell(values))
                    rec[f"{col}_mean"] = sum(values) / len(values) if values else ""
                rows.append(cells)
                records.append(rec)
    notes = ["Ours: mean ± sample standard deviation over seeds; accuracy on fixed test inputs (on-/off-manifold "
             "examples crafted once against the dense standard model, as the authors' code does).",
             f"Paper ({PAPER_NUMBERS.source}): n/r, {PAPER_NUMBERS.missing}."]
    for what, c in claims(results, p).items():
        text = ("on-manifold AT's accuracy gain over standard training on the on-manifold inputs is larger at the "
                "highest rate than at the lowest (gain at the highest minus gain at the lowest)"
                if what.endswith("grows") else
                "on-manifold AT is more accurate than standard training on the on-manifold inputs at the highest "
                "rate")
        notes.append(f"Claim ({what}): {text}: {c.verdict} ({c.summary()}).")
    notes.append(
        f"Protocol: {p.n_train} training / {p.n_test} test images; SmallCNN(width {p.width}, hidden {p.hidden}) "
        f"trained {p.base_epochs} epochs, then fine-tuned {p.epochs} epochs per rate while pruned (cubic schedule "
        f"to {p.prune_end:.0%} of the steps, last layer dense); autoencoder latent {p.latent_dim}; on-manifold "
        f"budget {p.onm_eta:g} code std per dimension, {p.onm_steps} steps; PGD eps {p.pgd_eps:g}, "
        f"{p.pgd_steps} steps; Gaussian noise std {p.noise_std:g}.")
    return Table(header=header, rows=rows, records=records, notes=notes)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against the compression rate per regime (mean ± std over seeds), one panel per test input kind
    and data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = _runs(results)
    datasets = sorted({d for d, _ in runs})
    fig, axes = plt.subplots(len(datasets), len(KINDS), figsize=(3.2 * len(KINDS), 2.8 * len(datasets)),
                             squeeze=False)
    for i, d in enumerate(datasets):
        for j, kind in enumerate(KINDS):
            ax = axes[i][j]
            for name in REGIMES:
                group = runs.get((d, name))
                if not group:
                    continue
                keys = sorted({k.split("@", 1)[1] for m in group.values() for k in m
                               if k.startswith(f"{kind}@")}, key=float)
                rates = [float(k) for k in keys]
                vals = np.array([[m.get(f"{kind}@{k}", math.nan) for k in keys] for m in group.values()], float)
                mean = np.nanmean(vals, 0)
                std = np.nanstd(vals, 0, ddof=1) if len(vals) > 1 else np.zeros_like(mean)
                line, = ax.plot(rates, mean, marker="o", label=REGIMES[name])
                ax.fill_between(rates, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            ax.set_title(f"{d}: {kind.replace('_', '-')}", fontsize=9)
            ax.set_xlabel("compression rate")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RECIPE = Recipe(
    name="kwon2021_onmanifold",
    paper=PAPER,
    table="Accuracy on clean, on-manifold-perturbed, noisy and off-manifold-perturbed test images against the "
          "compression rate, for standard, off-manifold (PGD) and on-manifold adversarial training",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="regime",
    row_labels=REGIMES,
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
