"""``gopal_gan_augmentation``: does GAN augmentation help a mammogram-patch classifier trained on few patients?

Gopal, Gandhimaruthian & Ali review how generative adversarial networks are used in mammogram analysis, among
them to augment the training set of a CNN classifier when labelled data is scarce: a GAN synthesizes lesion and
tissue patches that are added to the real ones. The gains the issue cites from the studies it reviews are about +1
to +9 points of accuracy or F1, largest on small training sets (each study on its own data, network and split; we
could read only the review's abstract offline). The review publishes no protocol or code of its own; this recipe
builds that pipeline and measures it on mini-MIAS (Suckling et al. 1994), with the comparisons the issue asks
for:

1. Patches (:func:`robustlab.vision.data.patches.extract_patches`): ``lesion_crops`` jittered crops centred on
   every located abnormality (crop side ``context`` times the lesion diameter, at least ``min_side`` pixels of the
   512-px images), resized to ``patch_size``; for the task ``abnormal`` as many normal-tissue crops from the
   breasts of the normal images, each copying the side and the breast share of a lesion crop (neither the crop's
   scale nor the background at the skin line is a cue); for the task ``malignancy`` the lesion crops labelled
   benign or malignant.
2. Splits: ``folds`` patient-grouped folds (both breasts of a woman on one side), drawn anew for every seed
   (repeated cross-validation: the units of a claim are (seed, fold) pairs with their own test patients); a run
   trains on a fraction ``size`` of its fold's training patients (drawn with the run's seed, every class kept) and
   tests on every patch of the fold's test patients.
3. Conditions, each a :class:`~robustlab.vision.models.patch_cnn.PatchCNN` trained for the same number of optimizer
   steps: ``real`` (real patches only), ``classic`` (flips, quarter turns, small rotations, gamma, contrast and
   brightness drawn afresh each epoch), and ``gan_x<r>`` (real plus ``r`` synthetic patches per real one, class
   shares kept) from a conditional DCGAN (spectral norm in the discriminator, projection conditioning) trained by
   the core's GAN regime on the run's training patches only, for about ``gan_steps`` steps whatever their number
   (Adam 2e-4, betas (0.0, 0.9), as the spectrally normalized GAN: DCGAN's betas collapsed the samples here).
4. Scores on the test patients: AUROC and balanced accuracy; balanced accuracy under Gaussian noise and under
   PGD (L-inf, the core's attack); Grad-CAM and Smooth Grad-CAM++ maps of the lesion patches scored against the
   lesion circles (per-patch AUROC, the genomics package's ground-truth score); GAN quality (Fréchet distance and
   precision/recall in the feature space of the real-only classifier, nearest-neighbour copy check in pixels).

Claims (decided at the smallest training size, paired by (seed, fold) with
:func:`robustlab.common.metrics.paired_claim`, Bonferroni over the claims of a task): GAN augmentation at the
pre-specified ratio ``claim_ratio`` beats real patches alone, and beats classic augmentation, on AUROC and on
balanced accuracy; and whether it moves the Grad-CAM localization score.

Departures (each for a reason, also in the README):
- data: mini-MIAS (322 images, 119 located abnormalities), the one mammogram set here (larger sets such as
  CBIS-DDSM or INbreast plug in through ``read_image_folder``); 512-px copies of the 1024-px originals;
- patches: ``patch_size`` 32 px in ``quick`` (64 in ``paper``; the issue suggests 64 or 128) so that the GAN and
  every classifier train on a CPU in seconds;
- one small CNN trained from scratch (no ImageNet weights: none can be downloaded here, and torchvision is not
  available); a fixed number of optimizer steps per classifier and its last weights (no validation set is
  carved out of a few dozen patients);
- patches are cut once, before the folds: a normal crop copies the side and breast share of a lesion crop drawn
  from all images (geometry only, no pixels), so those two numbers of the training normals can come from a test
  patient's lesion;
- the repeated folds share training patients between units, so the paired intervals across (seed, fold) units
  are somewhat optimistic (Nadeau & Bengio 2003); the verdicts are Bonferroni-corrected but not corrected for
  that;
- the GAN: a conditional DCGAN with spectral norm (our stated stabilizer) trained for ``gan_steps`` steps per
  run, not a tuned progressive or cycle GAN; GAN quality in the real classifier's feature space, not Inception's;
- benign vs malignant runs one seed per fold in ``quick`` (CPU time): its claims are reported without a verdict
  power (3 units; a verdict needs 5);
- the claims are made at one pre-specified ratio (``claim_ratio``), so that picking the best ratio after the
  fact cannot make a gain.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.common.config import bounded, check_values
from robustlab.common.errors import ConfigError
from robustlab.common.recipes import Paper, PaperNumbers, Recipe, Table, seed_everything

__all__ = ["RECIPE", "PROFILES", "GANAugmentationProfile", "grid", "run", "summarize", "conditions"]

TASKS = ("abnormal", "malignancy")
PAPER = Paper(
    authors="Gopal, Gandhimaruthian, Ali",
    title=("Review of generative adversarial networks in mammogram analysis: breast density, microcalcification "
           "synthesis, tumour segmentation and shape, feature extraction and augmentation for classification "
           "(the abstract's subject; the exact title, initials and year could not be checked offline)"),
    venue="Bentham Science (EurekaSelect article 102383)",
    year=0,
    url="http://alpha.eurekaselect.com/article/102383",
)
REVIEW_GAIN = (0.01, 0.09)
"""The gains the review cites for GAN augmentation: +1 to +9 points of accuracy or F1."""


@dataclass(frozen=True)
class GANAugmentationProfile:
    """The hyperparameters of one profile (``sizes``: fractions of a fold's training patients)."""

    tasks: tuple[str, ...] = bounded(TASKS, choices=TASKS, min_len=1, unique=True)
    sizes: tuple[float, ...] = bounded((0.25, 0.5, 1.0), gt=0, le=1, min_len=1, unique=True)
    malignancy_sizes: tuple[float, ...] = bounded((0.25, 1.0), gt=0, le=1, min_len=1, unique=True)
    ratios: tuple[float, ...] = bounded((0.5, 1.0, 2.0), gt=0, min_len=1, unique=True)
    claim_ratio: float = bounded(1.0, gt=0)
    folds: int = bounded(3, ge=2)
    seeds: int = bounded(2, ge=1)
    malignancy_seeds: int = bounded(1, ge=1)
    patch_size: int = bounded(32, choices=(16, 32, 64, 128))
    lesion_crops: int = bounded(4, ge=1)
    context: float = bounded(2.0, ge=1)
    min_side: int = bounded(48, ge=8)
    jitter: float = bounded(0.25, ge=0, le=1)
    width: int = bounded(16, ge=1)
    steps: int = bounded(300, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    gan_steps: int = bounded(600, ge=1)
    gan_width: int = bounded(32, ge=1)
    gan_batch_size: int = bounded(32, ge=1)
    latent_dim: int = bounded(64, ge=1)
    noise_std: float = bounded(0.05, ge=0)
    pgd_eps: float = bounded(2 / 255, ge=0)
    pgd_steps: int = bounded(10, ge=1)
    cam_samples: int = bounded(8, ge=1)
    device: str = bounded("cpu", choices=("cpu", "cuda", "auto"))

    def __post_init__(self) -> None:
        check_values(self)
        if not any(math.isclose(self.claim_ratio, r) for r in self.ratios):
            raise ConfigError(f"claim_ratio {self.claim_ratio:g} must be one of the ratios "
                              f"{', '.join(f'{r:g}' for r in self.ratios)}")


PROFILES = {
    # Seconds: one task, one size, two folds, a few steps.
    "smoke": GANAugmentationProfile(tasks=("abnormal",), sizes=(0.5,), ratios=(1.0,), folds=2, seeds=1,
                                    patch_size=16, lesion_crops=1, min_side=32, width=4, steps=4, batch_size=16,
                                    gan_steps=2, gan_width=8, gan_batch_size=16, latent_dim=8, pgd_steps=2,
                                    cam_samples=2),
    # Minutes on a 2-core CPU, 32-px patches: abnormal vs normal at 25/50/100 % of the training patients with 3
    # patient folds x 2 seeds (6 paired units, the fewest for a verdict is 5); benign vs malignant at 25/100 %
    # with one seed per fold (3 units: reported, no verdict).
    "quick": GANAugmentationProfile(),
    # The full grid at 64 px, 5 folds x 3 seeds, longer training (a GPU).
    "paper": GANAugmentationProfile(sizes=(0.1, 0.25, 0.5, 1.0), malignancy_sizes=(0.1, 0.25, 0.5, 1.0),
                                    ratios=(0.5, 1.0, 2.0, 4.0), folds=5, seeds=3, malignancy_seeds=3, patch_size=64,
                                    lesion_crops=8, min_side=64, width=32, steps=2000, gan_steps=5000, gan_width=64,
                                    latent_dim=100, cam_samples=25, device="auto"),
}


def conditions(p: GANAugmentationProfile) -> list[str]:
    """The training conditions of a run, in table order: ``real``, ``classic``, ``gan_x<ratio>``..."""
    return ["real", "classic"] + [f"gan_x{r:g}" for r in p.ratios]


def _sizes(p: GANAugmentationProfile, task: str) -> tuple[float, ...]:
    return p.sizes if task == "abnormal" else p.malignancy_sizes


def grid(p: GANAugmentationProfile) -> list[dict[str, Any]]:
    """One run per task, training size, patient fold and seed (``malignancy_seeds`` seeds for benign vs
    malignant)."""
    return [{"task": t, "size": s, "fold": f, "seed": seed}
            for t in p.tasks for s in _sizes(p, t) for f in range(p.folds)
            for seed in range(p.seeds if t == "abnormal" else p.malignancy_seeds)]


@functools.lru_cache(maxsize=1)
def _records():
    from robustlab.vision.data.mammograms import load_mias

    return tuple(load_mias())


@functools.lru_cache(maxsize=4)
def _patches(task: str, size: int, lesion_crops: int, context: float, min_side: int, jitter: float):
    from robustlab.vision.data.patches import extract_patches

    return extract_patches(list(_records()), task=task, size=size, lesion_crops=lesion_crops, context=context,
                           min_side=min_side, jitter=jitter, seed=0)


def run(spec: dict[str, Any], p: GANAugmentationProfile) -> dict[str, Any]:
    """Every condition on one split: real, classic, and the GAN's samples at every ratio (one GAN per run)."""
    import numpy as np

    from robustlab.vision.augmentation import ClassicAugment
    from robustlab.vision.data.patches import patient_folds, subsample_patients
    from robustlab.vision.gan import generate, train_gan
    from robustlab.vision.mammography import (
        evaluate_patch_classifier,
        gan_quality,
        synthetic_counts,
        train_patch_classifier,
    )

    task, fold, seed = spec["task"], int(spec["fold"]), int(spec["seed"])
    run_seed = 1000 * seed + fold
    seed_everything(run_seed)
    patches = _patches(task, p.patch_size, p.lesion_crops, p.context, p.min_side, p.jitter)
    k = len(patches.classes)
    train_idx, test_idx = patient_folds(patches.patient, patches.y, p.folds, seed=seed)[fold]
    sub = subsample_patients(train_idx, patches.patient, patches.y, float(spec["size"]), seed=run_seed)
    x, y = patches.x[sub], patches.y[sub]
    xt, yt, mt = patches.x[test_idx], patches.y[test_idx], patches.mask[test_idx]
    train_kw = {"num_classes": k, "steps": p.steps, "batch_size": p.batch_size, "lr": p.lr, "width": p.width,
                "seed": run_seed, "device": p.device}
    eval_kw = {"masks": mt, "noise_std": p.noise_std, "pgd_eps": p.pgd_eps, "pgd_steps": p.pgd_steps,
               "cam_samples": p.cam_samples, "seed": run_seed}

    metrics: dict[str, Any] = {"n_train": int(len(sub)), "n_test": int(len(test_idx)),
                               "train_patients": int(len(set(patches.patient[sub].tolist())))}
    extras: dict[str, Any] = {"test_y": yt.tolist()}

    def record(name: str, model) -> None:
        scores = evaluate_patch_classifier(model, xt, yt, **eval_kw)
        for key in ("auroc", "balanced_accuracy", "noise_balanced_accuracy", "pgd_balanced_accuracy",
                    "gradcam_auroc", "sgcampp_auroc"):
            metrics[f"{name}_{key}"] = scores[key]
        for key in ("correct", "score", "gradcam_items", "sgcampp_items"):
            extras[f"{name}_{key}"] = scores[key]

    real_model = train_patch_classifier(x, y, **train_kw)
    record("real", real_model)
    record("classic", train_patch_classifier(x, y, augment=ClassicAugment(), **train_kw))

    gan_epochs = max(1, math.ceil(p.gan_steps / max(1, len(x) // p.gan_batch_size)))  # incomplete batch dropped
    generator, _, history = train_gan(x, y, num_classes=k, epochs=gan_epochs, batch_size=p.gan_batch_size,
                                      latent_dim=p.latent_dim, width=p.gan_width, seed=run_seed, device=p.device)
    top = synthetic_counts(y, max(p.ratios), k)
    labels = np.concatenate([np.full(n, c, np.int64) for c, n in enumerate(top)])
    fake = generate(generator, labels, seed=run_seed, latent_dim=p.latent_dim)
    for r in p.ratios:
        want = synthetic_counts(y, r, k)
        keep = np.concatenate([np.flatnonzero(labels == c)[:n] for c, n in enumerate(want)])
        record(f"gan_x{r:g}", train_patch_classifier(x, y, synthetic=(fake[keep], labels[keep]), **train_kw))
    rng = np.random.default_rng(run_seed)  # as many fakes as real test patches: the distances depend on the count
    quality = gan_quality(real_model, x, xt, fake[rng.permutation(len(fake))[:len(xt)]])
    metrics.update({f"gan_{key}": value for key, value in quality.items()})
    last = history.last if hasattr(history, "last") else {}
    metrics.update({f"gan_{key}": float(last[key]) for key in ("train_d_real", "train_d_fake") if key in last})
    return {**metrics, **extras}


# -- the table ----------------------------------------------------------------------------------------------------
_COLUMNS = (("auroc", "AUROC"), ("balanced_accuracy", "bal. acc."), ("noise_balanced_accuracy", "noise"),
            ("pgd_balanced_accuracy", "PGD"), ("gradcam_auroc", "Grad-CAM loc."),
            ("sgcampp_auroc", "SG-CAM++ loc."))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    import numpy as np

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _cell(values: list[float]) -> str:
    m, s = _mean_sd(values)
    return "n/a" if math.isnan(m) else f"{m:.3f} ± {s:.3f}"


def _groups(results: list[dict[str, Any]]) -> dict[tuple[str, float], list[dict[str, Any]]]:
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: r.get("index", 0)):
        if "metrics" in r:  # a diverged run has none
            groups.setdefault((r["spec"]["task"], float(r["spec"]["size"])), []).append(r)
    return groups


def _value(r: dict[str, Any], key: str) -> float | None:
    v = r.get("metrics", {}).get(key)
    return None if v is None else float(v)


def _unit(r: dict[str, Any]) -> int:
    return 1000 * int(r["spec"]["seed"]) + int(r["spec"]["fold"])


def summarize(results: list[dict[str, Any]], p: GANAugmentationProfile) -> Table:
    """One row per task, training size and condition (mean ± sd over folds and seeds); under it the GAN's quality,
    the paired claims at the smallest size and the review's gains."""
    from robustlab.common.metrics import paired_claim

    header = ["task", "patients", "condition", "train patches", *(t for _, t in _COLUMNS),
              "bal. acc. gain vs real (pts)", "vs classic (pts)", "review gain (pts)"]
    rows, records, notes = [], [], []
    conds = conditions(p)
    groups = _groups(results)
    for (task, size), group in groups.items():
        base = {ref: _mean_sd([_value(r, f"{ref}_balanced_accuracy") for r in group])[0]
                for ref in ("real", "classic")}
        for cond in conds:
            if not any(f"{cond}_auroc" in r["metrics"] for r in group):
                continue
            n_train = _mean_sd([_value(r, "n_train") for r in group])[0]
            if cond.startswith("gan_x"):
                n_train *= 1 + float(cond[5:])
            mean = _mean_sd([_value(r, f"{cond}_balanced_accuracy") for r in group])[0]
            gain = {ref: "" if cond == ref or (ref == "classic" and not cond.startswith("gan"))
                    else f"{100 * (mean - base[ref]):+.1f}" for ref in ("real", "classic")}
            review = f"+{100 * REVIEW_GAIN[0]:.0f} to +{100 * REVIEW_GAIN[1]:.0f}" if cond.startswith("gan") else ""
            rows.append([task, f"{size:.0%}", cond, f"{n_train:.0f}",
                         *(_cell([_value(r, f"{cond}_{key}") for r in group]) for key, _ in _COLUMNS),
                         gain["real"], gain["classic"], review])
            rec = {"task": task, "size": size, "condition": cond, "n_train": n_train, "runs": len(group)}
            for key, _ in _COLUMNS:
                rec[key], rec[f"{key}_sd"] = _mean_sd([_value(r, f"{cond}_{key}") for r in group])
            rec["balanced_accuracy_gain"] = None if cond == "real" else mean - base["real"]
            rec["balanced_accuracy_gain_vs_classic"] = mean - base["classic"] if cond.startswith("gan") else None
            records.append(rec)
        q = {key: _mean_sd([_value(r, f"gan_{key}") for r in group])
             for key in ("fd", "fd_real", "precision", "recall", "copy_share", "nn_ratio")}
        notes.append(f"GAN quality, {task} at {size:.0%} of the patients (mean ± sd over {len(group)} runs): Fréchet "
                     f"distance of the fakes {q['fd'][0]:.2f} ± {q['fd'][1]:.2f} vs {q['fd_real'][0]:.2f} ± "
                     f"{q['fd_real'][1]:.2f} for real test patches (the floor); precision {q['precision'][0]:.2f}, "
                     f"recall {q['recall'][0]:.2f}; copies {q['copy_share'][0]:.1%}, nearest-neighbour distance "
                     f"ratio {q['nn_ratio'][0]:.2f} (near 0 = copies of training patches).")
    claim = f"gan_x{p.claim_ratio:g}"
    for task in p.tasks:
        sizes = sorted({s for (t, s) in groups if t == task})
        if not sizes:
            continue
        group = groups[(task, sizes[0])]
        tests = [(claim, "real", "auroc"), (claim, "real", "balanced_accuracy"), (claim, "classic", "auroc"),
                 (claim, "classic", "balanced_accuracy")]
        confidence = 1 - 0.05 / len(tests)
        parts = []
        for a, b, key in tests:
            va = {_unit(r): _value(r, f"{a}_{key}") for r in group if _value(r, f"{a}_{key}") is not None}
            vb = {_unit(r): _value(r, f"{b}_{key}") for r in group if _value(r, f"{b}_{key}") is not None}
            c = paired_claim(va, vb, confidence=confidence, alpha=0.05 / len(tests))
            parts.append(f"{a} > {b} on {key.replace('_', ' ')}: {c.summary()}: **{c.verdict}**")
        loc = []
        for key in ("gradcam_auroc", "sgcampp_auroc"):
            va = {_unit(r): _value(r, f"{claim}_{key}") for r in group}
            vb = {_unit(r): _value(r, f"real_{key}") for r in group}
            c = paired_claim({u: v for u, v in va.items() if v is not None and math.isfinite(v)},
                             {u: v for u, v in vb.items() if v is not None and math.isfinite(v)})
            loc.append(f"{key.split('_')[0]} {c.summary()}")
        notes.append(f"Claims, {task} at the smallest size ({sizes[0]:.0%} of the training patients; paired by "
                     f"(seed, fold), {confidence:.2%} intervals, Bonferroni over {len(tests)}): " + "; ".join(parts)
                     + f". Does GAN augmentation move where the classifier looks ({claim} − real, localization "
                     "AUROC against the lesion circles): " + "; ".join(loc) + ".")
    notes.append(f"Review ({PAPER_NUMBERS.source}): {PAPER_NUMBERS.missing}.")
    notes.append(f"Protocol: {p.folds} patient folds x {p.seeds} seeds; {p.patch_size}-px patches; PatchCNN width "
                 f"{p.width}, {p.steps} Adam steps (batch {p.batch_size}, lr {p.lr:g}) for every condition; "
                 f"conditional DCGAN width {p.gan_width}, about {p.gan_steps} steps (batch {p.gan_batch_size}), latent "
                 f"{p.latent_dim}, trained on each run's training patches only; noise sd "
                 f"{p.noise_std:g}, PGD L-inf {p.pgd_eps * 255:.0f}/255 x {p.pgd_steps} steps; gains = balanced accuracy "
                 "minus that of real patches only (or of classic augmentation) at the same size, in points; the "
                 "review's range (as the issue cites it) is of accuracy or F1.")
    return Table(header=header, rows=rows, records=records, notes=notes)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """AUROC and Grad-CAM localization against the share of training patients, one line per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robustlab.common.io import atomic_path

    groups = _groups(results)
    tasks = sorted({t for t, _ in groups}, key=lambda t: TASKS.index(t) if t in TASKS else 99)
    conds = []
    for r in results:
        conds += [k[: -len("_auroc")] for k in r.get("metrics", {}) if k.endswith("_auroc")
                  and not k.endswith(("gradcam_auroc", "sgcampp_auroc")) and k[: -len("_auroc")] not in conds]
    fig, axes = plt.subplots(len(tasks), 2, figsize=(9, 3.2 * len(tasks)), squeeze=False)
    for i, task in enumerate(tasks):
        sizes = sorted(s for t, s in groups if t == task)
        for j, (key, title) in enumerate((("auroc", "AUROC"), ("gradcam_auroc", "Grad-CAM localization AUROC"))):
            ax = axes[i][j]
            for cond in conds:
                stats = [_mean_sd([_value(r, f"{cond}_{key}") for r in groups[(task, s)]]) for s in sizes]
                ax.errorbar([100 * s for s in sizes], [m for m, _ in stats], yerr=[sd for _, sd in stats],
                            marker="o", capsize=2, label=cond)
            ax.set_xlabel("training patients (%)")
            ax.set_title(f"{task}: {title}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


PAPER_NUMBERS = PaperNumbers(
    values={},
    source="Gopal, Gandhimaruthian & Ali, review of GAN augmentation for mammogram classification",
    missing=("a review: the issue cites its studies' gains from GAN augmentation as about +1 to +9 points of accuracy "
             "or F1, largest on small training sets, each measured on its own data, network and split; no cell of "
             "this table has a published counterpart, the range is beside the GAN rows"),
)

RECIPE = Recipe(
    name="gopal_gan_augmentation",
    paper=PAPER,
    table="GAN augmentation vs real-only and classic augmentation of a mammogram-patch classifier at several "
          "training-set sizes, with robustness and Grad-CAM localization",
    profiles=PROFILES,
    grid=grid,
    run=run,
    paper_numbers=PAPER_NUMBERS,
    rows="task",
    summarize=summarize,
    plot=plot,
    description=(__doc__ or "").split("\n\n", 1)[-1],
)
