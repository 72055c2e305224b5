"""``robustlab vision train``: a patch classifier on prepared patches, with classic or GAN augmentation.

Registered on the ``robustlab vision`` group by :mod:`robustlab.vision.cli`. Imports nothing heavy at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputDir

__all__ = ["train"]

_AUGMENT = ("none", "classic", "gan", "classic+gan")


@click.command("train", short_help="Train a patch classifier (real, classic or GAN augmentation); scores held-out "
                                   "patients.")
@click.option("--patches", "patches_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The NPZ that `robustlab vision prepare-mias` writes (patches, labels, lesion masks, patients).")
@click.option("--augment", type=click.Choice(_AUGMENT), default="none", show_default=True,
              help="classic: flips, quarter turns, small rotations, gamma, contrast, brightness each epoch; gan: add "
                   "--ratio synthetic patches per real one from --gan-model.")
@click.option("--gan-model", "gan_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The generator.pt of `robustlab vision train-gan`, trained with the same --holdout and --seed "
                   "(it records its training patients; one that saw a held-out patient is refused).")
@click.option("--ratio", type=FiniteFloat(0, None, min_open=True), default=1.0, show_default=True,
              help="Synthetic patches per real training patch (class shares kept).")
@click.option("--holdout", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.25, show_default=True,
              help="Share of the patients held out for scoring (both breasts of a woman on one side).")
@click.option("--steps", type=click.IntRange(min=1), default=600, show_default=True, help="Adam steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Training batch.")
@click.option("--lr", type=FiniteFloat(0, None, min_open=True), default=1e-3, show_default=True, help="Learning rate.")
@click.option("--width", type=click.IntRange(min=1), default=16, show_default=True,
              help="Channels of the first convolution block.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the split, the initialization, the batches and the augmentation.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder: model.pt, report.json, gradcam.png, checkpoints.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show training progress.")
def train(patches_path: Path, augment: str, gan_path: Path | None, ratio: float, holdout: float, steps: int,
          batch_size: int, lr: float, width: int, seed: int, device: str, out: Path, resume: bool,
          progress: bool) -> None:
    """Train a PatchCNN on the patches of --patches, hold out --holdout of the patients, and write --out/model.pt
    (a model file that rebuilds without options), --out/report.json (AUROC, balanced accuracy, under Gaussian
    noise and PGD, Grad-CAM and Smooth Grad-CAM++ localization against the lesion circles) and --out/gradcam.png.

    A killed run continues with the same command plus --resume.
    """
    import json

    import numpy as np

    from robustlab.common.cli import check_run_folder
    from robustlab.common.errors import ConfigError, DataError
    from robustlab.common.io import atomic_write_text
    from robustlab.common.modelfile import save_model
    from robustlab.vision.augmentation import ClassicAugment
    from robustlab.vision.data.patches import PatchSet, holdout_split
    from robustlab.vision.mammography import (
        evaluate_patch_classifier,
        synthetic_counts,
        train_patch_classifier,
    )

    if ("gan" in augment) != (gan_path is not None):
        raise ConfigError("--gan-model goes with --augment gan or classic+gan (and only with them)")
    patches = PatchSet.load_npz(patches_path)
    classes = list(patches.classes)
    if len(set(patches.patient.tolist())) < 2:
        raise DataError(f"--patches {patches_path} holds the patches of one patient; a held-out score needs two")
    options = {"patches": str(patches_path), "augment": augment, "gan_model": str(gan_path) if gan_path else None,
               "ratio": ratio, "holdout": holdout, "steps": steps, "batch_size": batch_size, "lr": lr,
               "width": width, "seed": seed}
    resuming = check_run_folder(out, "vision train", options, resume=resume, checkpoint="train/last.pt",
                                may_grow=("steps",))
    train_idx, test_idx = holdout_split(patches.patient, patches.y, holdout, seed=seed)
    for name, idx in (("training", train_idx), ("held-out", test_idx)):
        missing = sorted(set(range(len(classes))) - set(patches.y[idx].tolist()))
        if missing:
            raise DataError(f"--patches {patches_path}: the {name} patients have no patch of class "
                            f"{', '.join(classes[c] for c in missing)}; change --holdout or --seed")
    x, y = patches.x[train_idx], patches.y[train_idx]
    synthetic = None
    if gan_path is not None:
        synthetic = _synthetic(gan_path, classes, x.shape[-1], synthetic_counts(y, ratio, len(classes)), seed,
                               set(patches.patient[test_idx].tolist()))
    model = train_patch_classifier(x, y, num_classes=len(classes),
                                   augment=ClassicAugment() if "classic" in augment else None, synthetic=synthetic,
                                   steps=steps, batch_size=batch_size, lr=lr, width=width, seed=seed, device=device,
                                   out_dir=out / "train", resume=resuming, progress=progress)
    scores = evaluate_patch_classifier(model, patches.x[test_idx], patches.y[test_idx], masks=patches.mask[test_idx],
                                       seed=seed)
    report = {k: v for k, v in scores.items() if not isinstance(v, list)}
    report.update({"n_train": int(len(train_idx)), "n_synthetic": 0 if synthetic is None else int(len(synthetic[1])),
                   "n_test": int(len(test_idx)), "test_patients": sorted(set(patches.patient[test_idx].tolist())),
                   "classes": classes})
    save_model(model.cpu(), out / "model.pt",
               preprocessing={"kind": "mammogram_patches", "classes": classes, "patch_size": int(x.shape[-1]),
                              "scale": "pixels / 255"},
               metadata={"command": "vision train", **options, **{k: v for k, v in report.items()
                                                                  if isinstance(v, (int, float))}})
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, default=float) + "\n")
    _gradcam_figure(model, patches.x[test_idx], patches.y[test_idx], patches.mask[test_idx], classes,
                    out / "gradcam.png")
    click.echo(f"held-out {len(test_idx)} patches of {len(report['test_patients'])} patients: AUROC "
               f"{report['auroc']:.3f}, balanced accuracy {report['balanced_accuracy']:.3f} (noise "
               f"{report['noise_balanced_accuracy']:.3f}, PGD {report['pgd_balanced_accuracy']:.3f}); Grad-CAM "
               f"localization AUROC {report['gradcam_auroc']:.3f} -> {out / 'model.pt'}")
    if np.isnan(report["gradcam_auroc"]):
        click.echo("no held-out patch has a lesion mask: the localization scores are n/a", err=True)


def _synthetic(gan_path: Path, classes: list[str], size: int, counts, seed: int, held_out: set[str]):
    import numpy as np

    from robustlab.common.errors import CheckpointError
    from robustlab.common.modelfile import load_model
    from robustlab.vision.gan import generate

    loaded = load_model(gan_path)
    pre = loaded.preprocessing
    if pre.get("kind") != "gan":
        raise CheckpointError(f"--gan-model {gan_path} is not a generator written by `robustlab vision train-gan`")
    if list(pre.get("classes", [])) != classes or int(pre.get("image_size", -1)) != size:
        raise CheckpointError(f"--gan-model {gan_path} makes {pre.get('image_size')}-px patches of classes "
                              f"{pre.get('classes')}; --patches holds {size}-px patches of {classes}")
    seen = loaded.metadata.get("train_patients")
    if seen is None:
        click.echo(f"--gan-model {gan_path} does not record its training patients: the held-out score is only held "
                   "out if the GAN never saw them", err=True)
    elif held_out & set(seen):
        from robustlab.common.errors import ConfigError

        raise ConfigError(f"--gan-model {gan_path} was trained on {len(held_out & set(seen))} of the "
                          f"{len(held_out)} patients this run holds out (e.g. {sorted(held_out & set(seen))[0]}): "
                          "train the GAN with the same --holdout and --seed as this command")
    labels = np.concatenate([np.full(int(n), c, np.int64) for c, n in enumerate(counts)])
    return generate(loaded.model, labels, seed=seed, latent_dim=int(pre["latent_dim"])), labels


def _gradcam_figure(model, x, y, masks, classes, path: Path, n: int = 8) -> None:
    """Held-out lesion patches, their lesion circles and Grad-CAM maps of their class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from robustlab.common.attribution import GradCAM
    from robustlab.common.io import atomic_path
    from robustlab.vision.mammography import to_unit

    share = masks.reshape(len(masks), -1).mean(1)
    idx = np.flatnonzero((share > 0) & (share < 1))[:n]
    if not len(idx):
        return
    maps = GradCAM(model, layer=model.features)(to_unit(x[idx]), torch.as_tensor(y[idx]))[:, 0].numpy()
    fig, axes = plt.subplots(2, len(idx), figsize=(1.6 * len(idx), 3.4), squeeze=False)
    for j, i in enumerate(idx):
        for row in (0, 1):
            ax = axes[row][j]
            ax.imshow(x[i], cmap="gray", vmin=0, vmax=255)
            ax.contour(masks[i], levels=[0.5], colors="lime", linewidths=0.8)
            if row == 1:
                ax.imshow(maps[j], cmap="jet", alpha=0.45)
            ax.set_axis_off()
        axes[0][j].set_title(classes[int(y[i])], fontsize=7)
    fig.suptitle("held-out lesion patches (green: lesion circle) and Grad-CAM", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
