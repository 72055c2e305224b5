"""Two moons under PGD: the toy experiment of Khalooei, Homayounpour & Amirmazlaghani (2022), with robustlab's regimes.

Rows are training regimes (ERM, Gaussian noise, PGD adversarial training, fast adversarial training, TRADES),
columns clean accuracy and PGD accuracy at several L-inf budgets, mean ± std over seeds. The paper's moons
table (Table 2) holds its AT and AT-LR only, so these rows have no published number to set beside ours (the
recipe ``khalooei2022_lsa`` of robustlab-vision sets AT vs AT-LR beside Table 2); the plot
shows accuracy against eps and one decision boundary per regime.

Torch, scikit-learn and matplotlib are imported inside the functions: listing recipes stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.errors import ConfigError
from robustlab.common.recipes.base import Paper, PaperNumbers, Recipe, Table, mean_std_table, seed_everything

__all__ = ["MoonsProfile", "PAPER", "PROFILES", "RECIPE", "REGIMES"]

REGIMES = {
    "erm": "ERM",
    "gaussian_noise": "Gaussian noise",
    "pgd_at": "PGD-AT",
    "fast_at": "Fast AT",
    "trades": "TRADES",
}
"""Regime ids (table rows) and their display names."""

_EXTENT = (-1.6, 2.6, -1.1, 1.6)  # x0, x1, y0, y1 of the decision-boundary grid, around make_moons' data


@dataclass(frozen=True)
class MoonsProfile:
    """Hyperparameters of the two-moons experiment (lengths in make_moons' own input units, not standardized).

    Attributes:
        n_train: training samples, drawn by ``make_moons`` with the run's seed.
        n_test: test samples, from the same draw.
        noise: ``make_moons`` noise (standard deviation of the Gaussian added to the points).
        hidden: hidden widths of the ReLU MLP (2 inputs, 2 logits).
        epochs: training epochs.
        batch_size: training batch size.
        lr: Adam learning rate.
        regimes: which regimes to run (keys of :data:`REGIMES`), the table's rows.
        train_eps: L-inf budget of PGD-AT, fast AT and TRADES (ramped up over the first 30% of the epochs).
        train_steps: PGD steps of PGD-AT and of TRADES' inner maximization (step ``2.5 * eps / steps``).
        noise_std: standard deviation of the Gaussian-noise regime.
        trades_beta: weight of TRADES' robustness term.
        eval_eps: L-inf budgets of the PGD evaluation.
        eval_steps: PGD steps of the evaluation (random start, step ``2.5 * eps / steps``).
        seeds: runs per regime, with seeds ``0 .. seeds - 1`` (data draw, initialization, shuffling, attacks).
        boundary_resolution: side of the grid on which the decision boundary is stored for the plot (0: none,
            else at least 2: the plot draws its 0.5 contour).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.

    Every field declares its range (:func:`robustlab.common.config.bounded`); a value outside it raises
    :class:`~robustlab.common.errors.ConfigError` naming the field, the value and the range.
    """

    n_train: int = bounded(1000, ge=2)
    n_test: int = bounded(1000, ge=1)
    noise: float = bounded(0.1, ge=0)
    hidden: tuple[int, ...] = bounded((64, 64), ge=1)  # () is a linear model
    epochs: int = bounded(100, ge=1)
    batch_size: int = bounded(128, ge=1)
    lr: float = bounded(3e-3, gt=0)
    regimes: tuple[str, ...] = bounded(tuple(REGIMES), choices=tuple(REGIMES), min_len=1, unique=True)
    train_eps: float = bounded(0.2, ge=0)
    train_steps: int = bounded(10, ge=1)
    noise_std: float = bounded(0.2, ge=0)
    trades_beta: float = bounded(6.0, ge=0)
    eval_eps: tuple[float, ...] = bounded((0.05, 0.1, 0.2, 0.3), gt=0, unique=True)  # () measures clean only
    eval_steps: int = bounded(20, ge=1)
    seeds: int = bounded(3, ge=1)
    boundary_resolution: int = bounded(50, ge=0)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)
        if self.boundary_resolution == 1:
            raise ConfigError("boundary_resolution must be 0 (no boundary) or >= 2, got 1")


PROFILES = {
    # Seconds: a handful of points, one epoch, one seed, two budgets.
    "smoke": MoonsProfile(n_train=64, n_test=64, epochs=1, batch_size=32, train_steps=3, eval_eps=(0.1, 0.3),
                          eval_steps=5, seeds=1, boundary_resolution=8),
    # About half a minute for the 15 runs on one CPU thread.
    "quick": MoonsProfile(),
    # The paper does not give (in the text we could read) the sample size, width or schedule of its moons runs:
    # this is the quick protocol scaled up (data, epochs, seeds, attack steps, budgets), not a transcription.
    "paper": MoonsProfile(n_train=5000, n_test=5000, epochs=200, train_steps=20, eval_steps=100,
                          eval_eps=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3), seeds=10, boundary_resolution=100,
                          device="auto"),
}


def grid(profile: MoonsProfile) -> list[dict[str, Any]]:
    """One run per regime and seed."""
    return [{"regime": r, "seed": s} for r in profile.regimes for s in range(profile.seeds)]


def _make_regime(name: str, model, p: MoonsProfile):
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import (
        ERM,
        TRADES,
        AdversarialTraining,
        FastAdversarialTraining,
        GaussianNoise,
    )

    if name == "erm":
        return ERM()
    if name == "gaussian_noise":
        return GaussianNoise(p.noise_std)
    if name == "pgd_at":
        return AdversarialTraining(PGD(model, eps=p.train_eps, steps=p.train_steps))
    if name == "fast_at":
        return FastAdversarialTraining(p.train_eps)
    if name == "trades":
        return TRADES(PGD(model, eps=p.train_eps, steps=p.train_steps), beta=p.trades_beta)
    raise ValueError(f"unknown regime {name!r}")


def _data(seed: int, p: MoonsProfile):
    from sklearn.datasets import make_moons

    x, y = make_moons(p.n_train + p.n_test, noise=p.noise, random_state=seed)
    x = x.astype("float32")
    return (x[: p.n_train], y[: p.n_train]), (x[p.n_train:], y[p.n_train:])


def run(spec: dict[str, Any], p: MoonsProfile) -> dict[str, Any]:
    """Train one regime with one seed and measure clean and PGD accuracy on the test points."""
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.attacks import PGD
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.metrics import robust_accuracy
    from robustlab.common.models import MLP

    seed = int(spec["seed"])
    seed_everything(seed)
    (x_tr, y_tr), (x_te, y_te) = _data(seed, p)
    device = resolve_device(p.device)
    model = MLP(2, 2, hidden=p.hidden)
    regime = _make_regime(spec["regime"], model, p)
    train = DataLoader(ArrayDataset(x_tr, y_tr), batch_size=p.batch_size, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    fit(model, regime, train, epochs=p.epochs, optimizer=torch.optim.Adam(model.parameters(), lr=p.lr),
        device=device, progress=False)

    test = DataLoader(ArrayDataset(x_te, y_te), batch_size=max(1, len(x_te)))
    torch.manual_seed(seed)  # PGD's random starts
    metrics: dict[str, Any] = {"clean": robust_accuracy(model, test, lambda x, y: x)}
    for eps in p.eval_eps:
        attack = PGD(model, eps=eps, steps=p.eval_steps)
        metrics[f"pgd@{eps:g}"] = robust_accuracy(model, test, attack)
    if p.boundary_resolution > 0:
        metrics["boundary"] = _boundary(model, p.boundary_resolution, device)
    return metrics


def _boundary(model, resolution: int, device) -> dict[str, Any]:
    """P(class 1) on a ``resolution`` x ``resolution`` grid over :data:`_EXTENT` (rows: y from low to high)."""
    import torch

    x0, x1, y0, y1 = _EXTENT
    xs, ys = torch.linspace(x0, x1, resolution), torch.linspace(y0, y1, resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).to(device)
    model.eval()
    with torch.no_grad():
        p1 = torch.softmax(model(points), 1)[:, 1].reshape(resolution, resolution).cpu()
    return {"extent": list(_EXTENT), "p1": [[round(float(v), 3) for v in row] for row in p1]}


PAPER = Paper(
    authors="Khalooei, M., Homayounpour, M. M., Amirmazlaghani, M.",
    title="Layer-wise Regularized Adversarial Training using Layers Sustainability Analysis (LSA) framework",
    venue="arXiv:2202.02626",
    year=2022,
    url="https://arxiv.org/abs/2202.02626",
)
"""The paper of this recipe and of robustlab-vision's ``khalooei2022_lsa``."""

PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Khalooei et al. (2022), the moons experiment",
    missing=(
        "the paper's numeric table for Moon (Table 2) has rows for its AT and AT-LR only, and ERM, Gaussian noise, "
        "fast AT and TRADES are not among them, so no cell here has a published counterpart; the AT vs AT-LR "
        "comparison with Table 2 beside it is the recipe khalooei2022_lsa (robustlab-vision)"
    ),
)


def summarize(results: list[dict[str, Any]], p: MoonsProfile) -> Table:
    """Mean ± std over seeds per regime; the paper column states that the paper publishes no number."""
    table = mean_std_table(results, rows="regime", paper=PAPER_NUMBERS, labels=REGIMES)
    protocol = (
        f"Protocol: make_moons noise {p.noise:g}, {p.n_train} train / {p.n_test} test points (not standardized; "
        f"eps in input units), MLP 2-{'-'.join(map(str, p.hidden))}-2, Adam lr {p.lr:g}, {p.epochs} epochs, "
        f"batch {p.batch_size}; PGD-AT, fast AT and TRADES (beta {p.trades_beta:g}) at eps {p.train_eps:g} "
        f"(PGD-{p.train_steps} inner attack, eps ramped over the first 30% of epochs), Gaussian noise std "
        f"{p.noise_std:g}; evaluation PGD-{p.eval_steps} (L-inf, random start) on the test points."
    )
    return Table(header=table.header, rows=table.rows, records=table.records, notes=[*table.notes, protocol])


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against eps per regime (mean ± std band) and one decision boundary per regime (lowest seed)."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: r["index"]):
        groups.setdefault(r["spec"]["regime"], []).append(r)
    k = len(groups)
    fig = plt.figure(figsize=(max(7.0, 2.4 * k), 6.4))
    gs = fig.add_gridspec(2, k, height_ratios=[1.15, 1.0])
    ax = fig.add_subplot(gs[0, :])
    for name, group in groups.items():
        keys = [m for m in group[0]["metrics"] if m == "clean" or m.startswith("pgd@")]
        eps = [0.0 if m == "clean" else float(m.split("@", 1)[1]) for m in keys]
        values = np.array([[r["metrics"][m] for m in keys] for r in group])
        mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(keys))
        line, = ax.plot(eps, mean, marker="o", label=f"{REGIMES.get(name, name)} (n={len(group)})")
        ax.fill_between(eps, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("PGD budget eps (L-inf, input units; 0 = clean)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Two moons: accuracy under PGD per training regime (mean ± std over seeds)", fontsize=10)

    for j, (name, group) in enumerate(groups.items()):
        axb = fig.add_subplot(gs[1, j])
        first = min(group, key=lambda r: r["spec"]["seed"])
        boundary = first.get("extras", {}).get("boundary")
        if boundary:
            p1 = np.asarray(boundary["p1"])
            x0, x1, y0, y1 = boundary["extent"]
            axb.imshow(p1, origin="lower", extent=(x0, x1, y0, y1), cmap="RdBu", vmin=0, vmax=1, aspect="auto",
                       alpha=0.6)
            xs, ys = np.linspace(x0, x1, p1.shape[1]), np.linspace(y0, y1, p1.shape[0])
            axb.contour(xs, ys, p1, levels=[0.5], colors="k", linewidths=1)
            values = first["profile"]["values"]
            pts = MoonsProfile(n_train=values["n_train"], n_test=values["n_test"], noise=values["noise"])
            _, (x_te, y_te) = _data(first["spec"]["seed"], pts)
            x_te, y_te = x_te[:300], y_te[:300]
            axb.scatter(x_te[:, 0], x_te[:, 1], c=y_te, cmap="RdBu", vmin=0, vmax=1, s=4, edgecolors="none")
        axb.set_title(f"{REGIMES.get(name, name)}, seed {first['spec']['seed']}", fontsize=8)
        axb.set_xticks([])
        axb.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RECIPE = Recipe(
    name="khalooei2022_moons",
    paper=PAPER,
    table="Two moons: clean and PGD accuracy per training regime (the paper's toy experiment; its Table 2 holds AT "
          "and AT-LR only)",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="regime",
    row_labels=REGIMES,
    summarize=summarize,
    plot=plot,
    description=(
        "Data: sklearn make_moons with the profile's noise, one draw of n_train + n_test points per seed, the first "
        "n_train for training; inputs are not standardized, so every eps is in make_moons' units (the two moons "
        "span about 3 x 1.5). Model: robustlab.common.models.MLP(2, 2, hidden). Training: robustlab.common.engine.fit "
        "with Adam; regimes from robustlab.common.regimes with their defaults otherwise (PGD-AT on whole batches, "
        "fast AT with its catastrophic-overfitting guard, TRADES with KL inner maximization). Evaluation: "
        "robustlab.common.metrics.robust_accuracy under robustlab.common.attacks.PGD. Every regime at a given seed "
        "sees the same data and initialization. The paper's own method (AT-LR, layer-wise regularization guided by "
        "layer sustainability analysis) is not in robustlab yet and is not a row of this table."
    ),
)
