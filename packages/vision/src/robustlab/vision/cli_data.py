"""``robustlab vision prepare-mias``: mini-MIAS mammograms to a file of patches for the GAN and the classifier.

Reads the folder the user downloaded (``--data`` or ``$ROBUSTLAB_MINI_MIAS``; the licence forbids
redistribution, so robustlab never downloads it), crops lesion-centred and normal-tissue patches
(:func:`robustlab.vision.data.patches.extract_patches`), prints the counts (images, patients, lesions per class,
lesions without location, patches per class) and writes the patches as an NPZ file (atomically) and, optionally,
a preview PNG of patches with their lesion circles outlined in red.

Errors follow the contract of :mod:`robustlab.common.cli`. Imports nothing heavy at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import FiniteFloat, OutputFile

__all__ = ["prepare_mias", "write_preview"]


def write_preview(patches, path: Path, *, per_class: int = 32, columns: int = 16, seed: int = 0) -> Path:
    """A PNG grid of up to ``per_class`` patches of each class (a block of rows per class, drawn at random with
    ``seed``), grey, with the lesion circles' outline in red; written atomically.

    Args:
        patches: a :class:`~robustlab.vision.data.patches.PatchSet`.
        path: the PNG file.
        per_class: patches shown per class.
        columns: patches per row.
        seed: seeds which patches are shown.
    """
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    from robustlab.common.io import atomic_path

    rng = np.random.default_rng(seed)
    s, gap = patches.x.shape[1], 2
    blocks = []
    for c in range(len(patches.classes)):
        idx = np.flatnonzero(patches.y == c)
        idx = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False)) if len(idx) else idx
        rows = max(1, int(np.ceil(len(idx) / columns)))
        block = np.full((rows * (s + gap) + gap, columns * (s + gap) + gap, 3), 40, dtype=np.uint8)
        block[:gap + 1, :, :] = (0, 90, 160) if c else (0, 140, 0)  # a coloured bar above each class
        for k, i in enumerate(idx):
            tile = np.repeat(patches.x[i][:, :, None], 3, axis=2)
            m = patches.mask[i]
            tile[m & ~ndimage.binary_erosion(m, border_value=0)] = (255, 0, 0)
            r, q = divmod(k, columns)
            top, left = gap + r * (s + gap), gap + q * (s + gap)
            block[top:top + s, left:left + s] = tile
        blocks.append(block)
    grid = np.concatenate(blocks, axis=0)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return Path(path)


@click.command("prepare-mias", short_help="mini-MIAS mammograms to lesion and normal-tissue patches (NPZ).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The mini-MIAS folder (Info.txt and mdbNNN.pgm, or PNG copies at another size, in it or a "
                   "subfolder) [default: $ROBUSTLAB_MINI_MIAS]. Not redistributable: download it yourself.")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The folder of the image files [default: the folder under --data holding the most].")
@click.option("--task", type=click.Choice(("abnormal", "malignancy")), default="abnormal", show_default=True,
              help="abnormal: lesion crops vs normal breast tissue; malignancy: benign vs malignant lesion crops.")
@click.option("--size", type=click.IntRange(8, 1024), default=64, show_default=True, help="Patch side, pixels.")
@click.option("--lesion-crops", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Jittered crops per located lesion.")
@click.option("--jitter", type=FiniteFloat(0, 1), default=0.25, show_default=True,
              help="Largest shift of a crop's centre, as a share of half its side.")
@click.option("--context", type=FiniteFloat(0.5, 10), default=2.0, show_default=True,
              help="Crop side over lesion diameter.")
@click.option("--min-side", type=click.IntRange(4, 4096), default=64, show_default=True,
              help="Smallest crop side, pixels of the loaded image.")
@click.option("--normal-ratio", type=FiniteFloat(0, 100), default=1.0, show_default=True,
              help="Normal-tissue crops per lesion crop (task abnormal).")
@click.option("--match-coverage/--no-match-coverage", default=True, show_default=True,
              help="abnormal: each normal crop copies the breast share of a lesion crop (so background at the skin "
                   "line is no cue); --no-match-coverage takes normal crops with at least 90%% breast.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seeds the jitter and the normal crops.")
@click.option("--out", type=OutputFile(), required=True,
              help="The NPZ file to write (x, y, mask, classes, image_id, patient, severity, lesion_class, side, "
                   "centre, skipped).")
@click.option("--preview", type=OutputFile(), default=None,
              help="Also write a PNG grid of patches per class with their lesion circles in red.")
@click.option("--progress/--no-progress", default=False, show_default=True, help="Show progress while reading.")
def prepare_mias(data: Path | None, images: Path | None, task: str, size: int, lesion_crops: int, jitter: float,
                 context: float, min_side: int, normal_ratio: float, match_coverage: bool, seed: int, out: Path,
                 preview: Path | None, progress: bool) -> None:
    """Read mini-MIAS, crop patches for TASK and write them to --out, printing what was read and written."""
    import time
    from collections import Counter

    from robustlab.vision.data.mammograms import load_mias
    from robustlab.vision.data.patches import extract_patches

    start = time.perf_counter()
    records = load_mias(data, images=images, progress=progress)
    loaded = time.perf_counter()
    patches = extract_patches(records, task=task, size=size, lesion_crops=lesion_crops, jitter=jitter,
                              context=context, min_side=min_side, normal_ratio=normal_ratio,
                              match_coverage=match_coverage, seed=seed)
    done = time.perf_counter()
    h, w = records[0].image.shape
    labels = Counter(r.label for r in records)
    lesions = [lesion for r in records for lesion in r.lesions]
    click.echo(f"mini-MIAS: {len(records)} images ({w}x{h} px; "
               + ", ".join(f"{k} {labels[k]}" for k in ("normal", "benign", "malignant")) + f"), "
               f"{len({r.patient for r in records})} patients, read in {loaded - start:.1f} s")
    by_class = Counter(lesion.cls for lesion in lesions)
    by_severity = Counter(lesion.severity for lesion in lesions)
    click.echo(f"lesions: {len(lesions)} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_class.items())) + "; "
               + ", ".join(f"{k} {v}" for k, v in sorted(by_severity.items())) + f"); {patches.skipped} without "
               "location skipped")
    counts = patches.counts()
    click.echo(f"patches ({task}, {size}x{size} px): {len(patches)} ("
               + ", ".join(f"{k} {v}" for k, v in counts.items()) + f") from {len(set(patches.image_id))} images "
               f"of {len(set(patches.patient))} patients, cropped in {done - loaded:.1f} s")
    patches.save_npz(out)
    click.echo(f"wrote {out}")
    if preview is not None:
        write_preview(patches, preview, seed=seed)
        click.echo(f"wrote {preview}")
