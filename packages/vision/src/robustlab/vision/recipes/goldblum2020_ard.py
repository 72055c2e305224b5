"""``goldblum2020_ard``: adversarially robust distillation from a robust teacher to a smaller student (Goldblum,
Fowl, Feizi & Goldstein, AAAI 2020) on MNIST and Fashion-MNIST.

Code: GitHub ``goldblum/AdversariallyRobustDistillation`` at commit 779ade36d612bddb0a5a705fdd74efe7571a1381
(``main.py``, the only training script: CIFAR-10/100, a TRADES WideResNet-34-10 teacher loaded from a file, a
MobileNetV2 student). The ARD loss, its attack and its forward order are the core's
:class:`~robustlab.common.regimes.ard.ARD` regime, which follows that script (its docstring lists the details:
PGD with a uniform random start on the student in train mode, ascending the student's summed cross entropy on the
true labels; ``t**2 * KLDivLoss()`` with the mean over all ``N * K`` logits; ``temperature = 30``, ``alpha = 1``).

One run is one (data set, seed): it trains the teacher once and then every student from it on the same training
images, and evaluates them all on the same test images, so the rows of one seed are paired item by item:

- ``teacher``: the larger network, PGD adversarial training (Madry et al. 2018; eps ramped over the first 30 % of
  its epochs, as the core's ``AdversarialTraining`` does by default, because PGD training at eps 0.3 from the
  first step can stay at chance);
- ``natural``: the student, cross entropy on clean images (``ERM``);
- ``pgd_at``: the student, PGD adversarial training with the teacher's attack and schedule;
- ``kd``: the student, knowledge distillation from the robust teacher on clean images only
  (``KnowledgeDistillation`` with ARD's temperature, alpha and reduction, so that ``kd`` is ARD without the attack);
- ``ard``: the student, ARD (``ARD(teacher, PGD(student, ..., model_mode="train"), temperature=30, alpha=1,
  kl_reduction="mean")``).

Scored: clean accuracy and PGD-20 accuracy (L-inf, eps 0.3 on MNIST in pixel units ``[0, 1]``, random start,
step ``2.5 * eps / 20``; white box, each network attacked through its own gradients, in eval mode) on ``n_test``
test images, per item, so that the paper's two orderings are decided with
:func:`robustlab.common.metrics.paired_claim` (paired by seed and test image):

(a) the ARD student's PGD accuracy is higher than the PGD-AT student's (the paper: ARD students "decisively
    outperform adversarially trained networks of identical architecture");
(b) clean distillation from the robust teacher keeps part of its robustness: the KD student's PGD accuracy is
    higher than the naturally trained student's.

Networks: :class:`~robustlab.common.models.SmallCNN`; teacher ``width=16, hidden=100`` (162,710 parameters),
student ``width=8, hidden=64`` (52,138 parameters), 3.1 times fewer (the parameter counts are also in each run's
extras and in the table's notes). A student of ``width=4, hidden=32`` (13,242 parameters, 12 times fewer) was
tried first: with 4 epochs on 3,000 images its PGD adversarial training stayed at chance (0.10 clean) and ARD
near it (0.15), which leaves nothing to compare; the paper's students are also large enough to be adversarially trained
(MobileNetV2 for CIFAR).

Departures from the authors' protocol (each for a reason; also in the README):

- data: MNIST (the paper also reports MNIST; the authors' public script covers CIFAR only, so the MNIST set-up is
  ours) and Fashion-MNIST (not in the paper; eps 0.1, the budget usual for Fashion-MNIST, since 0.3 destroys
  garments' textures); a seeded subset of ``n_train`` training and ``n_test`` test images in ``smoke``/``quick``
  (CPU time); no augmentation (the script's crop and flip are CIFAR transforms);
- networks: small CNNs for teacher and student (the paper's MNIST networks could not be read here; CIFAR uses
  WideResNet-34-10 and MobileNetV2, hours per epoch on a CPU);
- teacher: trained in the run by PGD adversarial training (the authors load an externally trained TRADES or
  Madry teacher), with the core's eps ramp;
- ARD's attack budget is ramped like the PGD-AT rows' (``ard_ramp=True``; the authors' script attacks at the full
  budget from the first step, ``ard_ramp=False``), so that ARD and PGD-AT students get the same schedule;
- optimizer: Adam (learning rate ``lr``) for ``epochs`` epochs, the same for every network, instead of SGD 0.1 with
  momentum and steps at epochs 100/150 of 200 (a schedule for long CIFAR runs; Adam converges in few epochs on
  the small CNNs); batch ``batch_size``;
- training attack: ``train_steps`` PGD steps of ``train_alpha`` within ``eps`` (the authors' CIFAR attack is 10
  steps of 2/255 within 8/255; on MNIST the Madry budget 0.3 with 10 steps of 0.075 in ``quick``, 40 steps of 0.01
  in ``paper``), the same for the teacher, the PGD-AT student and ARD; the core's PGD clamps the random start
  into the bounds (the authors clamp after each step only);
- evaluation: the final epoch's networks (the authors print test accuracies every epoch and report no selection
  rule we could read); PGD-20 at ``2.5 * eps / 20`` per step (the paper's MNIST step size could not be read);
- paper numbers: only the abstract and introduction of the paper could be read through the stored pages (the
  tables could not), so no published cell is copied; the table says why for every cell;
- ARD variants (fast ARD, ARD with the teacher's adversarial examples) are not run.

Measured while sizing ``quick`` (seed 0, one run, not a result): teacher 0.914 clean / 0.492 PGD-20, natural
student 0.906 / 0.000, PGD-AT student 0.796 / 0.330, KD student 0.884 / 0.002, ARD student 0.820 / 0.204; with 10
epochs PGD-AT 0.908 / 0.440 and ARD 0.910 / 0.246; ARD without the ramp (the authors' schedule, 5 epochs)
0.760 / 0.128. On these small networks and short schedules ARD stays below PGD-AT. A possible reason, not
tested: the teacher is itself only moderately robust (0.49), close to what the student reaches by PGD-AT alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.recipes import Paper, PaperNumbers, Recipe, Table, mean_std_cell, seed_everything

__all__ = ["RECIPE", "PROFILES", "ARDProfile", "ROWS", "grid", "run", "summarize", "plot", "claims"]

DATASETS = ("mnist", "fashion_mnist")

ROWS = {
    "teacher": "robust teacher (PGD-AT, large)",
    "natural": "student, natural training",
    "pgd_at": "student, PGD-AT",
    "kd": "student, clean KD from the robust teacher",
    "ard": "student, ARD",
}
"""Row key -> label; every run trains the teacher and the students of ``ARDProfile.rows``."""

STUDENTS = ("natural", "pgd_at", "kd", "ard")

CLAIMS = (
    ("ard", "pgd_at", "ARD student's PGD accuracy higher than the PGD-AT student's"),
    ("kd", "natural", "clean KD from the robust teacher keeps part of its robustness: KD student's PGD accuracy "
                      "higher than the naturally trained student's"),
)
"""(row A, row B, claim): A's per-item PGD correctness higher than B's, paired by seed and test image."""


@dataclass(frozen=True)
class ARDProfile:
    """The hyperparameters of one profile (see the module docstring for what each row is)."""

    datasets: tuple[str, ...] = bounded(("mnist",), choices=DATASETS, min_len=1, unique=True)
    seeds: int = bounded(5, ge=1)
    students: tuple[str, ...] = bounded(STUDENTS, choices=STUDENTS, min_len=1, unique=True)
    n_train: int = bounded(3000, ge=10)
    n_test: int = bounded(500, ge=1)
    teacher_width: int = bounded(16, ge=1)
    teacher_hidden: int = bounded(100, ge=1)
    student_width: int = bounded(8, ge=1)
    student_hidden: int = bounded(64, ge=1)
    epochs: int = bounded(5, ge=1)
    batch_size: int = bounded(64, ge=1)
    lr: float = bounded(1e-3, gt=0)
    eps_mnist: float = bounded(0.3, gt=0, le=1)
    eps_fashion_mnist: float = bounded(0.1, gt=0, le=1)
    train_steps: int = bounded(10, ge=1)
    train_alpha: float = bounded(0.075, gt=0)  # on MNIST; scaled by eps / eps_mnist on Fashion-MNIST
    temperature: float = bounded(30.0, gt=0)  # ARD's and KD's (the authors' default)
    alpha: float = bounded(1.0, ge=0, le=1)  # weight of the distillation term (the authors' default: no CE)
    ard_ramp: bool = bounded(True, choices=(True, False))  # ARD's attack budget ramped as the PGD-AT rows' (False: full eps from the start, theirs)
    eval_steps: int = bounded(20, ge=1)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)

    def eps(self, dataset: str) -> float:
        """The L-inf budget of ``dataset`` in pixel units."""
        return self.eps_mnist if dataset == "mnist" else self.eps_fashion_mnist


PROFILES = {
    # Seconds: a few hundred images, one epoch, one seed, short attacks, a narrow student.
    "smoke": ARDProfile(seeds=1, n_train=256, n_test=64, epochs=1, batch_size=64, train_steps=2, train_alpha=0.15,
                        eval_steps=3, student_width=4, student_hidden=32),
    # Minutes on a 2-core CPU: MNIST, 5 seeds (the fewest for a verdict), 5 epochs on 3,000 training images, 500
    # test images. One run (seed 0) took 134 s of one CPU thread (user time, measured on a shared machine): five
    # runs with --jobs 2 are about 5.6 minutes.
    "quick": ARDProfile(),
    # The paper's budget on full MNIST and Fashion-MNIST: 40-step PGD of 0.01 for training (Madry et al.), 100
    # epochs, 5 seeds, the whole test set (a GPU).
    "paper": ARDProfile(datasets=DATASETS, seeds=5, n_train=60000, n_test=10000, epochs=100, batch_size=128,
                        train_steps=40, train_alpha=0.01, device="auto"),
}


def grid(p: ARDProfile) -> list[dict[str, Any]]:
    """One run per data set and seed: the teacher and every student of that seed."""
    return [{"dataset": d, "seed": s} for d in p.datasets for s in range(p.seeds)]


def _pgd(model, p: ARDProfile, dataset: str, *, steps: int, alpha: float | None, mode: str = "eval"):
    from robustlab.common.attacks import PGD

    return PGD(model, eps=p.eps(dataset), alpha=alpha, steps=steps, bounds=(0.0, 1.0), model_mode=mode)


def _train_alpha(p: ARDProfile, dataset: str) -> float:
    return p.train_alpha * p.eps(dataset) / p.eps_mnist


def _regime(row: str, model, teacher, p: ARDProfile, dataset: str):
    from robustlab.common.regimes import ERM, AdversarialTraining, KnowledgeDistillation
    from robustlab.common.regimes.ard import ARD
    from robustlab.common.regimes.schedules import EpsRamp

    alpha = _train_alpha(p, dataset)
    if row == "natural":
        return ERM()
    if row in ("teacher", "pgd_at"):
        return AdversarialTraining(_pgd(model, p, dataset, steps=p.train_steps, alpha=alpha))
    if row == "kd":
        return KnowledgeDistillation(teacher, temperature=p.temperature, alpha=p.alpha, kl_reduction="mean")
    if row == "ard":
        attack = _pgd(model, p, dataset, steps=p.train_steps, alpha=alpha, mode="train")
        return ARD(teacher, attack, temperature=p.temperature, alpha=p.alpha, kl_reduction="mean",
                   schedule=EpsRamp() if p.ard_ramp else None)
    raise ValueError(f"unknown row {row!r}; expected one of {tuple(ROWS)}")


def _network(p: ARDProfile, role: str):
    from robustlab.common.models import SmallCNN

    if role == "teacher":
        return SmallCNN(1, 10, width=p.teacher_width, hidden=p.teacher_hidden)
    return SmallCNN(1, 10, width=p.student_width, hidden=p.student_hidden)


def parameter_count(model) -> int:
    """Trainable parameters of ``model``."""
    return int(sum(t.numel() for t in model.parameters()))


def run(spec: dict[str, Any], p: ARDProfile) -> dict[str, Any]:
    """Train the teacher, then every student from it; clean and PGD accuracy (and per-item correctness) of each."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit, resolve_device
    from robustlab.common.metrics import predict
    from robustlab.vision.data import load_unit

    dataset, seed = spec["dataset"], int(spec["seed"])
    seed_everything(seed)
    device = resolve_device(p.device)
    x_tr, y_tr = load_unit(dataset, "train", p.n_train, seed=seed)
    x_te, y_te = load_unit(dataset, "test", p.n_test, seed=seed)
    test = DataLoader(ArrayDataset(x_te, y_te), batch_size=500)

    def train(row: str, teacher=None):
        torch.manual_seed(seed)  # the same initial student for every student row of a seed
        model = _network(p, "teacher" if row == "teacher" else "student")
        loader = DataLoader(ArrayDataset(x_tr, y_tr), batch_size=p.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        fit(model, _regime(row, model, teacher, p, dataset), loader, epochs=p.epochs,
            optimizer=torch.optim.Adam(model.parameters(), lr=p.lr), device=device, progress=False)
        return model.eval()

    def score(row: str, model) -> None:
        y, out = predict(model, test, device=device)
        clean = (out.argmax(1) == y).astype(np.int8)
        torch.manual_seed(seed)  # the same random starts for every row
        y, out = predict(model, test, attack=_pgd(model, p, dataset, steps=p.eval_steps, alpha=None), device=device)
        adv = (out.argmax(1) == y).astype(np.int8)
        metrics[f"{row}/clean"], metrics[f"{row}/pgd"] = float(clean.mean()), float(adv.mean())
        metrics[f"{row}/items_clean"], metrics[f"{row}/items_pgd"] = clean.tolist(), adv.tolist()
        metrics[f"{row}/parameters"] = [parameter_count(model)]  # a list: an extra, not a table column

    metrics: dict[str, Any] = {}
    teacher = train("teacher")
    score("teacher", teacher)
    for row in p.students:
        score(row, train(row, teacher if row in ("kd", "ard") else None))
    return metrics


PAPER = Paper(
    authors="Goldblum, M., Fowl, L., Feizi, S., Goldstein, T.",
    title="Adversarially Robust Distillation",
    venue="AAAI 2020 (arXiv:1905.09747)",
    year=2020,
    url="https://arxiv.org/abs/1905.09747",
)

PAPER_NUMBERS = PaperNumbers(
    values={},  # keys: ("<dataset>/<row>", "clean" or "pgd20"), e.g. ("mnist/ard", "pgd20"), as fractions
    source="Goldblum et al. (2020), arXiv:1905.09747",
    missing=("only the paper's abstract and introduction could be read through the stored pages here, not its "
             "MNIST and CIFAR-10 tables, so no published number is copied (none is typed from memory); the "
             "networks and schedule also differ (see the recipe's departures)"),
)


def _value(r: dict[str, Any], key: str):
    return r.get("metrics", {}).get(key, r.get("extras", {}).get(key))


def claims(results: list[dict[str, Any]], dataset: str) -> list[tuple[str, Any]]:
    """The paper's two orderings on ``dataset``: ``[(claim text, PairedClaim)]`` for the rows that were run."""
    from robustlab.common.metrics import paired_claim

    out = []
    runs = [r for r in results if "metrics" in r and r["spec"]["dataset"] == dataset]
    for a, b, text in CLAIMS:
        items_a = {int(r["spec"]["seed"]): _value(r, f"{a}/items_pgd") for r in runs}
        items_b = {int(r["spec"]["seed"]): _value(r, f"{b}/items_pgd") for r in runs}
        items_a = {s: v for s, v in items_a.items() if v is not None}
        items_b = {s: v for s, v in items_b.items() if v is not None}
        if items_a and items_b:
            out.append((text, paired_claim(items_a, items_b, higher=True)))
    return out


def summarize(results: list[dict[str, Any]], p: ARDProfile) -> Table:
    """One row per data set and network: clean and PGD-20 accuracy (mean ± sd over seeds) beside the paper's;
    under the table the two paired claims with their verdicts, the parameter counts and the protocol."""
    pgd = f"pgd{p.eval_steps}"
    header = ["dataset", "row", "runs", "clean", "clean (paper)", pgd, f"{pgd} (paper)"]
    rows, records, notes = [], [], []
    ok = [r for r in results if "metrics" in r]
    datasets = [d for d in DATASETS if any(r["spec"]["dataset"] == d for r in ok)]
    for d in datasets:
        runs = sorted((r for r in ok if r["spec"]["dataset"] == d), key=lambda r: int(r["spec"]["seed"]))
        for row, label in ROWS.items():
            have = [r for r in runs if _value(r, f"{row}/clean") is not None]
            if not have:
                continue
            clean = [float(_value(r, f"{row}/clean")) for r in have]
            adv = [float(_value(r, f"{row}/pgd")) for r in have]
            paper = {c: PAPER_NUMBERS.get(f"{d}/{row}", c) for c in ("clean", pgd)}
            rows.append([d, label, str(len(have)), mean_std_cell(clean), _paper_cell(paper["clean"]),
                         mean_std_cell(adv), _paper_cell(paper[pgd])])
            records.append({"dataset": d, "row": row, "runs": len(have),
                            "clean_mean": sum(clean) / len(clean), f"{pgd}_mean": sum(adv) / len(adv),
                            "clean_paper": "" if paper["clean"] is None else paper["clean"],
                            f"{pgd}_paper": "" if paper[pgd] is None else paper[pgd]})
        for text, c in claims(ok, d):
            notes.append(f"Claim ({d}, PGD-{p.eval_steps} accuracy, paired by seed and test image): {text}: {c.summary()}; "
                         f"verdict: {c.verdict}.")
        params = {row: _value(runs[0], f"{row}/parameters") for row in ("teacher", *STUDENTS)}
        counts = {k: v[0] for k, v in params.items() if v}
        if "teacher" in counts and len(counts) > 1:
            student = next(v for k, v in counts.items() if k != "teacher")
            notes.append(f"Parameters ({d}): teacher {counts['teacher']:,}, student {student:,} "
                         f"({counts['teacher'] / student:.1f} times fewer).")
    notes.append("Ours: mean ± sample standard deviation over seeds (3 decimals); accuracies are fractions.")
    notes.append(f"Paper: {PAPER_NUMBERS.source}. n/r, no published number here: {PAPER_NUMBERS.missing}.")
    if any(len(c.seeds) < 5 for d in datasets for _, c in claims(ok, d)):
        notes.append("Fewer than 5 seeds: a verdict other than 'undecided at this power' needs at least 5.")
    eps = ", ".join(f"{d} eps {p.eps(d):g}" for d in datasets)
    notes.append(
        f"Protocol: {p.n_train} training / {p.n_test} test images per seed (seeded subsets; pixels in [0, 1]); "
        f"SmallCNN teacher width {p.teacher_width} hidden {p.teacher_hidden}, student width {p.student_width} "
        f"hidden {p.student_hidden}; Adam lr {p.lr:g}, {p.epochs} epochs, batch {p.batch_size}; training attack "
        f"PGD-{p.train_steps} ({eps}; teacher, PGD-AT student{' and ARD' if p.ard_ramp else ''} with an eps ramp "
        f"over the first 30% of the epochs{'' if p.ard_ramp else ', ARD at the full budget from the start'}); KD and ARD temperature {p.temperature:g}, alpha {p.alpha:g}, KL mean over logits; "
        f"evaluation PGD-{p.eval_steps} (L-inf, random start, step 2.5 eps / {p.eval_steps}), white box, final epoch.")
    return Table(header=header, rows=rows, records=records, notes=notes)


def _paper_cell(value: float | None) -> str:
    return "n/r" if value is None else f"{value:.3f}"


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Bars of clean and PGD-20 accuracy per network (mean ± sd over seeds), one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in results if "metrics" in r]
    datasets = [d for d in DATASETS if any(r["spec"]["dataset"] == d for r in ok)] or ["(none)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, d in zip(axes[0], datasets):
        runs = [r for r in ok if r["spec"]["dataset"] == d]
        rows = [row for row in ROWS if any(_value(r, f"{row}/clean") is not None for r in runs)]
        for j, (metric, name) in enumerate((("clean", "clean"), ("pgd", "PGD-20"))):
            vals = [[float(_value(r, f"{row}/{metric}")) for r in runs if _value(r, f"{row}/{metric}") is not None]
                    for row in rows]
            means = [float(np.mean(v)) for v in vals]
            sds = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in vals]
            ax.bar(np.arange(len(rows)) + (j - 0.5) * 0.38, means, 0.38, yerr=sds, capsize=2, label=name)
        ax.set_xticks(range(len(rows)), rows, rotation=20)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.set_title(f"{d}: robust teacher -> small student", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


RECIPE = Recipe(
    name="goldblum2020_ard",
    paper=PAPER,
    table="a robust (PGD-AT) teacher distilled into a 3x smaller student: natural training, PGD-AT, clean KD and "
          "ARD of the student, clean and PGD-20 accuracy (the paper's MNIST comparison, on small CNNs)",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="dataset",
    row_labels=ROWS,
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
