"""Koo et al. (2019): robust training makes the attribution maps of a deep CNN on DNA more interpretable.

Grid: shallow (LocalNet) and deep (DistNet) CNN × the six training variants of :mod:`robustlab.genomics.training`
(regularization × none / Gaussian noise / adversarial) × a small and a large simulated ``koo2019`` data set
(70/10/20 split) × seeds. Per run: test-set classification AUROC/AUPR; the interpretability AUROC/AUPR of saliency
and SmoothGrad maps (gradient × input summed over nucleotides) against the embedded motifs, per positive test
sequence; the fraction of first-layer filters that match a core motif (Tomtom); and how many of the five core
motifs TF-MoDISco recovers from the saliency maps.

The protocol is the authors' code, ``koo-lab/uncovering_regulatory_codes`` at commit 346b36d (2019-05-31):
``code/1_train_all_models.py`` (standard, regularized, noise and regularized + noise: Adam 3e-4, batch 100, at
most 200 epochs, early stopping on validation loss with patience 25, the lowest-validation-loss weights kept),
``code/1_train_all_models_adv.py`` (adversarial and regularized + adversarial: batches of 50 clean sequences plus
their 50 PGD copies, 20 clean then 80 adversarial epochs, the final weights kept; PGD of 20 steps of
``0.1 / (i + 10)``, clipped to ``x ± 0.2`` and ``[0, 1]``, from the clean input, the model in eval mode),
``code/3_interpretability_analysis.py`` (every positive test sequence, every position; a position is a motif
position where the generating PWM's information is > 0; SmoothGrad of 50 copies at noise std 0.1; saliency of the
logit), ``code/helper.py`` and ``code/models/*.py`` (deepomics layers: Glorot-uniform kernels, biases 0.05, L2
``1e-6 * sum(w ** 2)`` over convolution and dense weights and biases added to the loss) and
``code/0_Generate_Synthetic_Dataset.ipynb`` (the negatives' 50 other JASPAR 2016 motifs:
:data:`robustlab.genomics.data.simulate.KOO2019_OTHER_IDS`). Departures, each for a stated reason, are listed in
:data:`DEPARTURES` and printed under the table.

Claims are decided by :func:`robustlab.common.metrics.paired_claim`: per claim, the mean difference over seeds
with its 95% t interval and a paired Wilcoxon signed-rank test on per-sequence interpretability AUROC within each
seed (the same test sequences), Stouffer-combined; "reproduced", "not reproduced" or "undecided at this power".

Torch, numpy and matplotlib are imported inside the functions: listing recipes stays instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes.base import Paper, PaperNumbers, Recipe, Table, mean_std_table

__all__ = ["DEPARTURES", "Koo2019Profile", "PROFILES", "RECIPE", "METRICS"]

AUTHORS_CODE = "koo-lab/uncovering_regulatory_codes at commit 346b36d (2019-05-31)"
"""The authors' code this recipe follows."""

ARCH_LABELS = {"localnet": "LocalNet (shallow)", "distnet": "DistNet (deep)"}
VARIANT_LABELS = {"standard": "standard", "regularized": "regularized", "noise": "Gaussian noise",
                  "regularized+noise": "regularized + noise", "adversarial": "adversarial",
                  "regularized+adversarial": "regularized + adversarial"}
"""The training variants of :data:`robustlab.genomics.training.VARIANTS` (the same keys, in order) and their
display names; listed here so that building a profile does not import torch."""
ROBUST_VARIANTS = tuple(v for v in VARIANT_LABELS if v != "standard")
METHODS = ("saliency", "smoothgrad")
METRICS = ("auroc", "aupr", "saliency_auroc", "saliency_aupr", "smoothgrad_auroc", "smoothgrad_aupr",
           "saliency_auroc_strict", "smoothgrad_auroc_strict", "filter_match", "modisco_core")
"""Table columns: test classification AUROC/AUPR; interpretability AUROC/AUPR per attribution method by the
authors' rule (the primary metric); interpretability AUROC by the strict rule (information > 0.1 bit, uninformative
motif columns left out); the fraction of first-layer filters that match a core motif; the core motifs (of 5)
TF-MoDISco recovers from the saliency maps."""

DEPARTURES = (
    "PyTorch instead of TensorFlow 1 / deepomics: the same layers, initialization (Glorot-uniform, biases 0.05) "
    "and optimizer; batch norm keeps PyTorch's momentum 0.1 and eps 1e-5.",
    "The data come from robustlab's vectorised simulator with its own seed (the notebook's draws cannot be replayed "
    "outside its Python 2 session): the same motif counts (3-7, probabilities .50/.25/.17/.05/.03), the same core "
    "and other motifs, uniform background; gaps are rounded on their cumulative sum instead of redrawn until they "
    "add up. The small (10,000) and large (30,000) sets are the paper's sizes; the code at 346b36d simulates 10,000.",
    "The validation loss that picks the kept weights leaves out the L2 term (deepomics adds 1e-6 * sum(w ** 2), "
    "about 1e-4, to it).",
    "AUPR is average precision; the authors integrate the precision-recall curve with the trapezoidal rule "
    "(AUROC is the same statistic either way). The primary metric is AUROC.",
    "Five seeds per cell and a paired test decide each claim; the authors trained one model per cell and show "
    "distributions over test sequences.",
    "The attack runs the model in eval mode: batch norm on running statistics, as the authors' is_train=False, and "
    "dropout off, where the authors' dropout (its keep probability fed separately) stayed on during the attack of "
    "the regularized + adversarial model.",
)
"""Where the recipe departs from the authors' protocol, and why."""


@dataclass(frozen=True)
class Koo2019Profile:
    """Hyperparameters of the Koo et al. (2019) grid (defaults: the authors' protocol).

    Attributes:
        n_small, n_large: sequences simulated for the small and large data set (split 70/10/20).
        datasets: which sizes to run, ``"small"`` and/or ``"large"``.
        archs: ``"localnet"`` and/or ``"distnet"``.
        variants: training variants (see :data:`robustlab.genomics.training.VARIANTS`).
        localnet_variants: the variants LocalNet runs (None: all of ``variants``).
        length: sequence length.
        data_seed: seed of the simulation (the same data for every model and seed).
        split_seed: seed of the 70/10/20 split.
        epochs, patience: the non-adversarial variants train at most ``epochs`` epochs, stop after ``patience``
            epochs without a lower validation loss (None: never) and keep the lowest-validation-loss weights.
        adv_epochs, adv_warmup: the adversarial variants train ``adv_epochs`` epochs, the first ``adv_warmup``
            clean, and keep the final weights.
        batch_size: batch of the non-adversarial variants.
        adv_batch_size: clean sequences per adversarial batch (their PGD copies are appended: twice as many).
        lr: Adam learning rate.
        l2: the regularized variants' ``l2 * sum(w ** 2)`` added to the loss.
        noise_std: the noise variants' standard deviation.
        adv_eps, adv_steps: the PGD budget (L-inf, clipped to [0, 1]) and its steps; the step sizes are the
            authors' ``0.1 / (i + 10)``, merged into ``adv_steps`` steps of the same total (0.1133) when fewer.
        n_interpret: most positive test sequences whose maps are scored (0: all).
        smoothgrad_samples, smoothgrad_std: SmoothGrad's noisy copies and noise (one-hot units).
        seeds: runs per cell on the small set, seeds ``0 .. seeds - 1``.
        seeds_large: runs per cell on the large set (None: ``seeds``).
        modisco_seeds: runs with seed below this also run TF-MoDISco on their saliency maps (0: none).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.

    Every field declares its range (:func:`robustlab.common.config.bounded`); a value outside it raises
    :class:`~robustlab.common.errors.ConfigError` naming the field, the value and the range.
    """

    n_small: int = bounded(10000, ge=20)  # 20 sequences leave 4 test ones after the 70/10/20 split
    n_large: int = bounded(30000, ge=20)
    datasets: tuple[str, ...] = bounded(("small", "large"), choices=("small", "large"), min_len=1, unique=True)
    archs: tuple[str, ...] = bounded(("localnet", "distnet"), choices=tuple(ARCH_LABELS), min_len=1, unique=True)
    variants: tuple[str, ...] = bounded(tuple(VARIANT_LABELS), choices=tuple(VARIANT_LABELS), min_len=1,
                                        unique=True)
    localnet_variants: tuple[str, ...] | None = bounded(None, choices=tuple(VARIANT_LABELS), min_len=1, unique=True)
    length: int = bounded(200, ge=200)  # the shortest input LocalNet and DistNet accept
    data_seed: int = bounded(0, ge=0)
    split_seed: int = bounded(2019, ge=0)
    epochs: int = bounded(200, ge=1)
    patience: int | None = bounded(25, ge=1)
    adv_epochs: int = bounded(100, ge=1)
    adv_warmup: int = bounded(20, ge=0)
    batch_size: int = bounded(100, ge=1)
    adv_batch_size: int = bounded(50, ge=1)
    lr: float = bounded(3e-4, gt=0)
    l2: float = bounded(1e-6, ge=0)
    noise_std: float = bounded(0.1, ge=0)
    adv_eps: float = bounded(0.2, ge=0)
    adv_steps: int = bounded(20, ge=1)
    n_interpret: int = bounded(0, ge=0)  # 0: all positives
    smoothgrad_samples: int = bounded(50, ge=1)
    smoothgrad_std: float = bounded(0.1, ge=0)
    seeds: int = bounded(5, ge=1)
    seeds_large: int | None = bounded(None, ge=1)
    modisco_seeds: int = bounded(5, ge=0)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)

    def seeds_for(self, dataset: str) -> int:
        """Runs per cell on ``dataset``."""
        return self.seeds_large if dataset == "large" and self.seeds_large is not None else self.seeds

    def variants_for(self, arch: str) -> tuple[str, ...]:
        """The variants ``arch`` runs."""
        if arch == "localnet" and self.localnet_variants is not None:
            return tuple(v for v in self.variants if v in self.localnet_variants)
        return self.variants


PROFILES = {
    # Seconds: a few hundred sequences, one epoch (the adversarial ones: one clean, one with a 2-step PGD), one
    # seed, a handful of maps, SmoothGrad of 4 copies, TF-MoDISco off.
    "smoke": Koo2019Profile(n_small=200, n_large=300, epochs=1, adv_epochs=2, adv_warmup=1, adv_steps=2,
                            n_interpret=8, smoothgrad_samples=4, seeds=1, modisco_seeds=0),
    # Under 20 minutes on this project's 2-core CPU (make demo: two one-thread workers): the authors' protocol with
    # fewer epochs and PGD steps, on the cells that fit: five seeds of LocalNet standard (claim 1) and of DistNet
    # standard, regularized, noise and adversarial (claim 2: the paper's three robust training methods) on the small
    # set. The combined variants (regularized + noise, regularized + adversarial) and the large set are left to the
    # paper profile. At most 15 epochs (the authors: 200 with patience 25); adversarial 3 clean + 9 adversarial
    # epochs (the authors: 20 + 80); PGD-2 of the authors' step sizes merged in tens (the same 0.1133 in all);
    # every positive test sequence scored, as the authors; TF-MoDISco on seed 0.
    "quick": Koo2019Profile(datasets=("small",), variants=("standard", "regularized", "noise", "adversarial"),
                            localnet_variants=("standard",), epochs=15, adv_epochs=12, adv_warmup=3, adv_steps=2,
                            modisco_seeds=1),
    # The authors' protocol: 10,000 / 30,000 sequences, five seeds of every cell, device auto.
    "paper": Koo2019Profile(device="auto"),
}


def _cell(dataset: str, arch: str, variant: str) -> str:
    return f"{dataset}/{arch}/{variant}"


def grid(p: Koo2019Profile) -> list[dict[str, Any]]:
    """One run per data set size, architecture, variant and seed."""
    return [{"id": f"{d}_{a}_{v}_seed={s}", "cell": _cell(d, a, v), "dataset": d, "arch": a, "variant": v, "seed": s}
            for d in p.datasets for a in p.archs for v in p.variants_for(a) for s in range(p.seeds_for(d))]


@lru_cache(maxsize=1)
def _jaspar2016() -> tuple[list[Any], list[str]]:
    from robustlab.genomics.data.motifs import jaspar_motifs

    motifs = jaspar_motifs(release=2016)
    return [m.counts for m in motifs], [m.name for m in motifs]


def filter_match(model, x) -> float:
    """Fraction of first-layer filters whose activation PWM (test sequences) matches a core motif in JASPAR 2016."""
    from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS
    from robustlab.genomics.interpret import fraction_matched, match_motifs, model_filter_pwms

    pwms, _ = model_filter_pwms(model, x)
    counts, names = _jaspar2016()
    return fraction_matched(match_motifs(pwms, counts, names, true_names=KOO2019_CORE_MOTIFS))


@lru_cache(maxsize=2)
def _data(n: int, length: int, seed: int, split_seed: int):
    from robustlab.genomics.data.simulate import simulate_koo2019

    return simulate_koo2019(n, seed=seed, length=length).split((0.7, 0.1, 0.2), seed=split_seed)


def _maps(model, x, method) -> Any:
    import torch

    device = next(model.parameters()).device
    xt = torch.as_tensor(x, device=device)
    return torch.cat([method(chunk, 0).detach().cpu() for chunk in xt.split(256)]).numpy()


def _per_sequence(values) -> list[float | None]:
    return [None if not math.isfinite(v) else round(float(v), 6) for v in values]


def interpretability(maps: dict[str, Any], x, pwm_matrix) -> tuple[dict[str, float], dict[str, list]]:
    """Interpretability of each method's maps on sequences ``x``: mean AUROC/AUPR by the authors' rule, mean AUROC
    by the strict rule, and the per-sequence AUROC (authors' rule) for the paired tests."""
    from robustlab.genomics.interpret import interpretability_scores, motif_mask, reduce_attribution

    authors, _ = motif_mask(pwm_matrix, rule="koo2019")
    strict, keep = motif_mask(pwm_matrix, rule="strict")
    out: dict[str, float] = {}
    per_sequence: dict[str, list] = {}
    for name, m in maps.items():
        importance = reduce_attribution(m, x)
        scores = interpretability_scores(importance, authors)
        out[f"{name}_auroc"] = scores["summary"]["auroc"]["mean"]
        out[f"{name}_aupr"] = scores["summary"]["aupr"]["mean"]
        out[f"{name}_auroc_strict"] = interpretability_scores(importance, strict, exclude=~keep)["summary"]["auroc"][
            "mean"]
        per_sequence[f"{name}_auroc"] = _per_sequence(scores["auroc"])
    return out, per_sequence


def run(spec: dict[str, Any], p: Koo2019Profile) -> dict[str, Any]:
    """Train one cell with one seed; measure classification and interpretability on the test set."""
    import torch

    from robustlab.common.attribution import Saliency, SmoothGrad
    from robustlab.common.engine import resolve_device
    from robustlab.genomics.training import TrainConfig, classification_metrics, train, variant_parts

    n = p.n_small if spec["dataset"] == "small" else p.n_large
    train_ds, valid_ds, test_ds = _data(n, p.length, p.data_seed, p.split_seed)
    seed = int(spec["seed"])
    device = str(resolve_device(p.device))
    adversarial = variant_parts(spec["variant"])[1] == "adversarial"
    config = TrainConfig(epochs=p.adv_epochs if adversarial else p.epochs,
                         batch_size=p.adv_batch_size if adversarial else p.batch_size, lr=p.lr, l2=p.l2,
                         noise_std=p.noise_std, adv_eps=p.adv_eps, adv_steps=p.adv_steps,
                         adv_warmup_epochs=p.adv_warmup, patience=None if adversarial else p.patience,
                         monitor="val_loss", keep="auto", init="glorot", device=device)
    model, result = train(spec["arch"], spec["variant"], train_ds, valid_ds, config, seed=seed)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.as_tensor(c, device=device)).cpu()
                            for c in torch.as_tensor(test_ds.x).split(512)])
    metrics: dict[str, Any] = classification_metrics(logits, test_ds.y)

    positives = test_ds.subset(test_ds.y[:, 0] > 0.5)
    if p.n_interpret:
        positives = positives.subset(slice(0, p.n_interpret))
    torch.manual_seed(seed)  # SmoothGrad's noise
    methods = {"saliency": Saliency(model, abs=False),
               "smoothgrad": SmoothGrad(model, n_samples=p.smoothgrad_samples, std=p.smoothgrad_std,
                                        base="gradient")}
    maps = {name: _maps(model, positives.x, method) for name, method in methods.items()}
    scores, per_sequence = interpretability(maps, positives.x, positives.pwm_matrix)
    metrics.update(scores)
    metrics["filter_match"] = filter_match(model, test_ds.x)
    if seed < p.modisco_seeds:
        from robustlab.genomics.data.motifs import KOO2019_CORE_MOTIFS
        from robustlab.genomics.interpret.modisco import core_motifs_recovered

        found, details = core_motifs_recovered(maps["saliency"], positives.x, KOO2019_CORE_MOTIFS)
        metrics["modisco_core"] = found
        metrics["modisco"] = details
    history = result.history
    metrics.update(
        epochs_trained=len(history), best_epoch=result.best_epoch, kept=config.keep_for(spec["variant"]),
        val_curve={k: [round(float(h[k]), 6) for h in history] for k in ("val_loss", "val_auroc") if history
                   and k in history[0]},
        per_sequence=per_sequence,
    )
    return metrics


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Koo et al. (2019), figures of the synthetic koo2019 experiment",
    missing=(
        "the paper reports this experiment as plots (distributions of per-sequence interpretability AUROC) and "
        "states directions in the text; its figure values could not be read here (bioRxiv 657437 is not "
        "available offline), so the 'paper direction' column gives the direction it reports and no number is set "
        "beside ours."
    ),
)

_DIRECTIONS = {
    ("distnet", "standard"): "interp. AUROC lower than LocalNet standard; test AUROC higher",
    **{("distnet", v): "interp. AUROC higher than DistNet standard (most on small data)" for v in ROBUST_VARIANTS},
    ("localnet", "standard"): "interp. AUROC higher than DistNet standard",
}


def _by_seed(results: list[dict[str, Any]], cell: str, metric: str) -> dict[int, Any]:
    """By seed, the per-sequence scores of ``metric`` of each run of ``cell`` when recorded, else its number."""
    out: dict[int, Any] = {}
    for r in results:
        if r["spec"]["cell"] != cell or metric not in r.get("metrics", {}):
            continue
        per_seq = (r.get("extras") or {}).get("per_sequence", {}).get(metric)
        out[int(r["spec"]["seed"])] = ([math.nan if v is None else v for v in per_seq] if per_seq
                                       else float(r["metrics"][metric]))
    return out


def _numbers(results: list[dict[str, Any]], cell: str, metric: str) -> dict[int, float]:
    return {int(r["spec"]["seed"]): float(r["metrics"][metric]) for r in results
            if r["spec"]["cell"] == cell and metric in r.get("metrics", {})}


def _mean(results: list[dict[str, Any]], cell: str, metric: str) -> float | None:
    values = list(_numbers(results, cell, metric).values())
    return sum(values) / len(values) if values else None


def _check(ours: float | None, ref: float | None, higher: bool) -> str:
    if ours is None or ref is None:
        return "—"
    holds = ours > ref if higher else ours < ref
    return f"{'yes' if holds else 'NO'} ({ours:.3f} vs {ref:.3f})"


def claims(results: list[dict[str, Any]], p: Koo2019Profile) -> list[dict[str, Any]]:
    """Every claim the runs can test, decided by :func:`robustlab.common.metrics.paired_claim`.

    - Claim 1a (per data set): DistNet's standard test AUROC is higher than LocalNet's (per-seed numbers).
    - Claim 1b (per data set and method): DistNet's standard interpretability AUROC is lower than LocalNet's.
    - Claim 2 (per data set, robust variant and method): DistNet's interpretability AUROC is higher with the
      variant than with standard training.
    - Claim 2, small vs large (per robust variant, saliency): that gain is larger on the small data set (the
      per-seed gains of the two sets paired by seed).
    """
    from robustlab.common.metrics import paired_claim, unpaired_claim

    out: list[dict[str, Any]] = []

    def add(name: str, dataset: str, text: str, a: dict, b: dict, higher: bool, metric: str) -> None:
        if not a or not b:
            return
        c = paired_claim(a, b, higher=higher)
        out.append({"claim": name, "dataset": dataset, "statement": text, "metric": metric, **c.as_dict(),
                    "summary": c.summary()})

    for d in p.datasets:
        ls, ds = _cell(d, "localnet", "standard"), _cell(d, "distnet", "standard")
        add("1a", d, "DistNet standard test AUROC higher than LocalNet standard",
            _numbers(results, ds, "auroc"), _numbers(results, ls, "auroc"), True, "auroc")
        for m in METHODS:
            add("1b", d, f"DistNet standard {m} interpretability AUROC lower than LocalNet standard",
                _by_seed(results, ds, f"{m}_auroc"), _by_seed(results, ls, f"{m}_auroc"), False, f"{m}_auroc")
        for v in ROBUST_VARIANTS:
            for m in METHODS:
                add("2", d, f"DistNet {VARIANT_LABELS[v]} {m} interpretability AUROC higher than DistNet standard",
                    _by_seed(results, _cell(d, "distnet", v), f"{m}_auroc"), _by_seed(results, ds, f"{m}_auroc"),
                    True, f"{m}_auroc")
    if {"small", "large"} <= set(p.datasets):
        for v in ROBUST_VARIANTS:
            gain = {}
            for d in ("small", "large"):
                a = _numbers(results, _cell(d, "distnet", v), "saliency_auroc")
                b = _numbers(results, _cell(d, "distnet", "standard"), "saliency_auroc")
                gain[d] = [a[s] - b[s] for s in sorted(a.keys() & b.keys())]  # per seed, paired within a data set
            if gain["small"] and gain["large"]:  # the two sets' runs share nothing: compared unpaired
                c = unpaired_claim(gain["small"], gain["large"], higher=True)
                out.append({"claim": "2 small vs large", "dataset": "both", "metric": "saliency_auroc",
                            "statement": f"DistNet {VARIANT_LABELS[v]} saliency gain larger on the small set",
                            **c.as_dict(), "summary": f"{c.summary()} (Welch, unpaired)"})
    return out


def summarize(results: list[dict[str, Any]], p: Koo2019Profile) -> Table:
    """Mean ± std per cell, the paper's reported direction, whether ours goes that way, and each claim's verdict."""
    labels = {_cell(d, a, v): f"{d} · {ARCH_LABELS[a]} · {VARIANT_LABELS[v]}"
              for d in ("small", "large") for a in ARCH_LABELS for v in VARIANT_LABELS}
    base = mean_std_table(results, rows="cell", paper=PAPER_NUMBERS, columns=list(METRICS), labels=labels)
    header = [*base.header[:-1], "paper direction", "ours (saliency interp. AUROC)"]
    rows, records = [], []
    key = "saliency_auroc"
    for cells, rec in zip(base.rows, base.records):
        dataset, arch, variant = rec["cell"].split("/")
        direction = _DIRECTIONS.get((arch, variant), "—")
        ours = _mean(results, rec["cell"], key)
        if (arch, variant) == ("distnet", "standard"):
            measured = _check(ours, _mean(results, _cell(dataset, "localnet", "standard"), key), higher=False)
        elif (arch, variant) == ("localnet", "standard"):
            measured = _check(ours, _mean(results, _cell(dataset, "distnet", "standard"), key), higher=True)
        elif arch == "distnet":
            measured = _check(ours, _mean(results, _cell(dataset, "distnet", "standard"), key), higher=True)
        else:
            measured = "—"
        rows.append([*cells[:-1], direction, measured])
        records.append({**rec, "paper_direction": direction, "measured_direction": measured})

    notes = list(base.notes)
    for c in claims(results, p):
        where = f" ({c['dataset']})" if c["dataset"] != "both" else ""
        notes.append(f"Claim {c['claim']}{where}: {c['statement']} — paper: yes (direction stated; values not read). "
                     f"Ours: {c['mean_a']:.3f} vs {c['mean_b']:.3f}, difference {c['summary']}: "
                     f"**{c['verdict']}** ({len(c['seeds'])} seeds).")
    adv_sizes = ", ".join(f"{a:.4f}" for a in _step_sizes(p.adv_steps))
    notes.append(
        f"Protocol (the authors' code, {AUTHORS_CODE}): koo2019 simulation (length {p.length}, data seed "
        f"{p.data_seed}, split seed {p.split_seed}; the negatives' 50 other motifs as the authors' notebook draws "
        f"them), small {p.n_small} / large {p.n_large} sequences split 70/10/20; Glorot-uniform init, biases 0.05; "
        f"Adam lr {p.lr:g}. Standard, regularized, noise, regularized + noise: batch {p.batch_size}, at most "
        f"{p.epochs} epochs, early stopping on validation loss"
        f"{'' if p.patience is None else f' (patience {p.patience})'}, lowest-validation-loss weights kept. "
        f"Adversarial variants: {p.adv_batch_size} clean sequences + their {p.adv_batch_size} PGD copies per batch, "
        f"{p.adv_warmup} clean + {p.adv_epochs - p.adv_warmup} adversarial epochs, final weights kept; PGD-"
        f"{p.adv_steps}, steps {adv_sizes} (total {sum(_step_sizes(p.adv_steps)):.4f}), L-inf eps {p.adv_eps:g}, "
        f"clipped to [0, 1], no random start, model in eval mode. Regularized: paper dropout + batch norm + L2 "
        f"{p.l2:g}·Σw² in the loss; noise: N(0, {p.noise_std:g}). Interpretability on "
        f"{'all' if not p.n_interpret else f'at most {p.n_interpret}'} positive test sequences: signed gradient of "
        f"the logit × input (summed over nucleotides) of saliency and SmoothGrad ({p.smoothgrad_samples} copies, "
        f"std {p.smoothgrad_std:g}); *_auroc/_aupr (primary): per-sequence AUROC/AUPR over every position, motif "
        f"positions where the generating PWM's information is > 0 (the authors' rule), mean; *_auroc_strict: "
        f"information > 0.1 bit, uninformative motif columns left out. filter_match: fraction of first-layer filters "
        f"(PWMs from test-set activations) whose Tomtom hits in JASPAR 2016 CORE vertebrates (q < 0.05) include a "
        f"core motif. modisco_core: core motifs (of 5) among the TF-MoDISco patterns' Tomtom hits (q < 0.05) on "
        f"seed{'s' if p.modisco_seeds > 1 else ''} < {p.modisco_seeds} (saliency maps)."
    )
    if (p.epochs, p.adv_epochs, p.adv_warmup, p.adv_steps) != (200, 100, 20, 20):
        notes.append(
            f"This profile shortens the authors' protocol: at most {p.epochs} epochs "
            f"(authors: 200, patience 25), adversarial {p.adv_warmup} + {p.adv_epochs - p.adv_warmup} epochs "
            f"(authors: 20 + 80), PGD-{p.adv_steps} (authors: 20 steps, the same total perturbation)"
            f"{'' if not p.n_interpret else f', the first {p.n_interpret} positive test sequences scored (authors: all)'}"
            f". Its models are still improving when training stops, and its verdicts hold at this power only.")
    left_out = [f"the {d} data set" for d in ("small", "large") if d not in p.datasets]
    left_out += [f"{ARCH_LABELS[a]} {VARIANT_LABELS[v]}" for a in ARCH_LABELS if a in p.archs
                 for v in VARIANT_LABELS if v not in p.variants_for(a)]
    if left_out:
        notes.append(f"Cells of the authors' grid this profile does not run (the paper profile does): "
                     f"{', '.join(left_out)}.")
    notes.append("Departures from the authors' protocol: " + " ".join(f"({i}) {d}" for i, d in
                                                                       enumerate(DEPARTURES, 1)))
    return Table(header=header, rows=rows, records=records, notes=notes)


def _step_sizes(steps: int) -> tuple[float, ...]:
    from robustlab.genomics.training import adv_step_sizes

    return adv_step_sizes(steps)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Interpretability AUROC (saliency and SmoothGrad) per architecture and variant, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    datasets = [d for d in ("small", "large") if any(r["spec"]["dataset"] == d for r in results)] or ["small"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        cells = [(a, v) for a in ARCH_LABELS for v in VARIANT_LABELS
                 if any(r["spec"]["cell"] == _cell(dataset, a, v) for r in results)]
        xs = np.arange(len(cells))
        for k, method in enumerate(("saliency", "smoothgrad")):
            values = [[float(r["metrics"][f"{method}_auroc"]) for r in results
                       if r["spec"]["cell"] == _cell(dataset, a, v)] for a, v in cells]
            means = [np.mean(v) if v else np.nan for v in values]
            stds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
            ax.bar(xs + (k - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=2, label=method)
        ax.set_xticks(xs, [f"{a}\n{v}" for a, v in cells], fontsize=7)
        ax.axhline(0.5, color="0.5", lw=0.8, ls="--")  # a map that ranks motif positions at random
        lowest = np.nanmin([float(r["metrics"][f"{m}_auroc"]) for r in results for m in ("saliency", "smoothgrad")
                            if r["spec"]["dataset"] == dataset] or [0.5])
        ax.set_ylim(min(0.45, lowest - 0.05), 1.0)
        ax.set_ylabel("interpretability AUROC (mean over positives)")
        ax.set_title(f"{dataset} data set", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


RECIPE = Recipe(
    name="koo2019",
    paper=Paper(
        authors="Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D.",
        title="Robust Neural Networks are More Interpretable for Genomics",
        venue="bioRxiv 657437",
        year=2019,
        url="https://doi.org/10.1101/657437",
    ),
    table="Shallow vs deep CNN × six training variants × small/large synthetic data: classification and "
          "interpretability (saliency, SmoothGrad) AUROC/AUPR, filter and TF-MoDISco motif recovery, claim verdicts",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="cell",
    summarize=summarize,
    plot=plot,
    description=(
        f"The authors' protocol ({AUTHORS_CODE}). Data: robustlab.genomics.data.simulate_koo2019 (core motifs SP1, "
        "Gabpa, CEBPB, MAX, YY1 in positives; core plus the authors' 50 other JASPAR 2016 motifs in negatives), one "
        "simulation per size with the profile's data seed, split 70/10/20. Models: LocalNet (shallow) and DistNet "
        "(deep). Training: robustlab.genomics.training (the core engine; BCE on logits). Interpretability: "
        "robustlab.common.attribution Saliency (signed gradient) and SmoothGrad (signed gradient averaged over "
        "noisy copies), times the input and summed over nucleotides, scored per positive test sequence with "
        "robustlab.genomics.interpret.interpretability_scores against motif_mask(pwm_matrix). Filters: "
        "robustlab.genomics.interpret.model_filter_pwms and match_motifs (Tomtom) against JASPAR 2016 (pyjaspar). "
        "Motif discovery: robustlab.genomics.interpret.modisco (TF-MoDISco). Claims: "
        "robustlab.common.metrics.paired_claim."
    ),
)
