"""The ``robustlab vision`` command group (registered through the ``robustlab.cli`` entry point).

``prepare`` finds MNIST or Fashion-MNIST (a named folder, its environment variable, or the cache, downloaded and
checked when missing) and prints the class counts of each split; ``find-noisy`` flags the labels of a CSV file
that look wrong, by confident learning on out-of-sample predicted probabilities (cleanlab, Northcutt et al. 2021)
or by LDCE's label distribution on embeddings with a trusted subset (Liu et al. 2020).

Errors follow the contract of :mod:`robustlab.common.cli` (exit 2 for a bad option or value, 1 for bad data, no
traceback). Imports nothing heavy at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputFile, RobustlabGroup

__all__ = ["vision"]

_DATASETS = ("mnist", "fashion_mnist")
_FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
            "low_normalized_margin", "low_self_confidence")
"""cleanlab's ``filter_by`` methods (``cleanlab.filter.find_label_issues``)."""
_DEFAULT_THRESHOLD = 0.5


@click.group(cls=RobustlabGroup, short_help="MNIST/Fashion-MNIST, ResNet/WideResNet, noisy-label detection.")
def vision() -> None:
    """Image classification under label noise: MNIST and Fashion-MNIST, the CIFAR-style ResNet-32 and
    WideResNet-40-2 of LDCE (Liu et al. 2020), and finding wrong labels (confident learning or LDCE)."""


@vision.command(short_help="Find (download) MNIST or Fashion-MNIST and print the class counts of each split.")
@click.option("--dataset", type=click.Choice((*_DATASETS, "all")), default="all", show_default=True,
              help="Which corpus.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder holding the four IDX files (gzipped or not) [default: $ROBUSTLAB_MNIST or "
                   "$ROBUSTLAB_FASHION_MNIST, else the robustlab cache, downloaded when missing]; one corpus only.")
@click.option("--check", is_flag=True, help="Also check every file's content against its published SHA-256.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show download progress.")
def prepare(dataset: str, data: Path | None, check: bool, progress: bool) -> None:
    """Resolve each corpus' folder (downloading into the cache what it lacks, each file checked against the SHA-256
    of its published content), read both splits and print the folder and the images per class."""
    import numpy as np

    from robustlab.common.errors import ConfigError
    from robustlab.vision.data import DATASETS, check_files, dataset_path, load_images

    names = list(_DATASETS) if dataset == "all" else [dataset]
    if data is not None and len(names) > 1:
        raise ConfigError("--data names the folder of one corpus: add --dataset mnist or --dataset fashion_mnist")
    for name in names:
        folder = dataset_path(name, data, progress=progress)
        if check:
            check_files(name, folder)
        click.echo(f"{DATASETS[name].title}: {folder}" + (" (content checked)" if check else ""))
        for split in ("train", "test"):
            images, labels = load_images(name, split, folder)
            counts = np.bincount(labels, minlength=len(DATASETS[name].classes))
            click.echo(f"  {split}: {len(images)} images of {images.shape[1]}x{images.shape[2]}; per class "
                       + " ".join(str(int(c)) for c in counts))


@vision.command("find-noisy", short_help="Flag labels that look wrong: confident learning or LDCE.")
@click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="CSV with a 'label' column (integer classes 0..K-1), optionally 'id' and 'trusted' (1 for rows "
                   "whose label is known to be right, else 0).")
@click.option("--probs", "probs_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Out-of-sample predicted probabilities (N, K), .npy or .csv, one row per label row: confident "
                   "learning (cleanlab).")
@click.option("--features", "features_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Embeddings (N, D), .npy or .csv, one row per label row: LDCE's label distribution "
                                 "with the trusted rows as support (needs the 'trusted' column).")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A robustlab model file whose predicted probabilities on --images go to confident learning "
                   "(they must be out-of-sample: the model must not have been trained on these images).")
@click.option("--images", "images_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Images for --model, .npy: uint8 (N, H, W) or (N, 1, H, W) pixels, normalised for --dataset, or "
                   "float32 (N, C, H, W) used as they are.")
@click.option("--dataset", type=click.Choice(_DATASETS), default=None,
              help="Whose mean and std normalise uint8 --images [default: the model file's preprocessing].")
@click.option("--threshold", type=FiniteFloat(0, 1), default=None,
              help=f"--features: flag a label whose confidence is below this [default: {_DEFAULT_THRESHOLD}].")
@click.option("--num-classes", type=click.IntRange(min=2), default=None,
              help="--features: the number of classes K [default: the largest label + 1].")
@click.option("--filter-by", type=click.Choice(_FILTERS), default="prune_by_noise_rate", show_default=True,
              help="--probs / --model: cleanlab's method (cleanlab.filter.find_label_issues).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="--model: images per forward pass.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="--model: cpu, cuda, cuda:N or auto.")
@click.option("--out", type=OutputFile(), required=True,
              help="CSV to write: id (or row), label, trusted (when given), score, flagged (1 = looks wrong).")
def find_noisy(labels_path: Path, probs_path: Path | None, features_path: Path | None, model_path: Path | None,
               images_path: Path | None, dataset: str | None, threshold: float | None, num_classes: int | None,
               filter_by: str, batch_size: int, device: str, out: Path) -> None:
    """Flag the rows of --labels whose label looks wrong, and write every row with its score.

    With --probs (or --model and --images), confident learning (Northcutt et al. 2021, cleanlab's
    find_label_issues): the score is cleanlab's label quality (self-confidence, the predicted probability of the
    given label). With --features, LDCE (Liu et al. 2020): each row's label distribution is the softmax over classes
    of 1 / (mean squared distance to the trusted rows of the class), the score its label's share, flagged when below
    --threshold. Rows marked trusted are never flagged (in either method). Prints how many rows were flagged.

    LDCE's similarity 1 / distance has no temperature (as in the authors' code), so its scores depend on the
    embeddings' scale: the 0.5 threshold suits an encoder trained with LDCE's prototype loss (mean squared
    distances within a class well below 1); for other embeddings (raw pixels, a plain classifier's penultimate
    layer) most scores sit near 1 / K, so rank by the score or choose --threshold.
    """
    import numpy as np

    from robustlab.common.errors import ConfigError

    sources = [name for name, p in (("--probs", probs_path), ("--features", features_path),
                                    ("--model", model_path)) if p is not None]
    if not sources:  # the one file given is read first, so that a bad one is named before the missing options
        _read_labels(labels_path, need_trusted=False)
    if len(sources) != 1:
        raise ConfigError("give exactly one of --probs, --features or --model (with --images); got "
                          + (", ".join(sources) or "none"))
    if (model_path is None) != (images_path is None):
        raise ConfigError("--model and --images go together")
    if features_path is None:
        for name, value in (("--threshold", threshold), ("--num-classes", num_classes)):
            if value is not None:
                raise ConfigError(f"{name} applies to --features only (confident learning chooses its own "
                                  "thresholds)")
    elif filter_by != "prune_by_noise_rate":
        raise ConfigError("--filter-by applies to --probs and --model only")
    if dataset is not None and model_path is None:
        raise ConfigError("--dataset applies to --model and --images only")

    table = _read_labels(labels_path, need_trusted=features_path is not None)
    labels = table["label"].to_numpy(np.int64)
    trusted = table["trusted"].to_numpy(bool) if "trusted" in table else np.zeros(len(labels), bool)
    if features_path is not None:
        features = _read_matrix(features_path, "--features", len(labels), labels_path)
        scores, flagged, method = _ldce(features, labels, trusted, labels_path,
                                        _DEFAULT_THRESHOLD if threshold is None else threshold, num_classes)
    else:
        if model_path is not None:
            probs = _model_probs(model_path, images_path, dataset, len(labels), labels_path, batch_size, device)
            where = f"the probabilities of --model {model_path}"
        else:
            probs = _read_matrix(probs_path, "--probs", len(labels), labels_path)
            where = f"--probs {probs_path}"
        scores, flagged, method = _confident_learning(probs, labels, where, filter_by, labels_path)
    flagged &= ~trusted
    _write(out, table, scores, flagged)
    pool = int((~trusted).sum())
    share = f" ({100 * flagged.sum() / pool:.1f}%)" if pool else ""
    click.echo(f"flagged {int(flagged.sum())} of {pool} {'untrusted ' if trusted.any() else ''}labels{share} by "
               f"{method}; wrote {out}")


# -- reading --------------------------------------------------------------------------------------------------


def _read_labels(path: Path, *, need_trusted: bool):
    """The labels table: 'label' as int64 (>= 0), 'trusted' as bool when present, 'id' as text when present."""
    import numpy as np
    import pandas as pd

    from robustlab.common.errors import DataError

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"--labels {path} does not read as CSV: {type(e).__name__}: {e}") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "label" not in table:
        raise DataError(f"--labels {path} lacks the column 'label' (it has {', '.join(table.columns) or 'none'})")
    if need_trusted and "trusted" not in table:
        raise DataError(f"--labels {path} lacks the column 'trusted' that --features needs (1 for the rows whose "
                        "label is known to be right: LDCE's support set; 0 for the others)")
    if not len(table):
        raise DataError(f"--labels {path} has no rows")
    labels = np.empty(len(table), np.int64)
    for i, value in enumerate(table["label"]):
        text = value.strip()
        if not (text.isdigit() and text.isascii()):
            raise DataError(f"--labels {path}: row {i + 1} (line {i + 2}) has label {value!r}; expected an integer "
                            "class index >= 0")
        labels[i] = int(text)
    out = pd.DataFrame({"label": labels})
    if "id" in table:
        out.insert(0, "id", table["id"].to_numpy())
    if "trusted" in table:
        flags = table["trusted"].str.strip()
        bad = ~flags.isin(("0", "1"))
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            raise DataError(f"--labels {path}: row {i + 1} (line {i + 2}) has trusted {table['trusted'].iloc[i]!r}; "
                            "expected 0 or 1")
        out["trusted"] = (flags == "1").to_numpy()
    return out


def _read_matrix(path: Path, option: str, rows: int, labels_path: Path):
    """A finite (N, D) float array from .npy or .csv (a header line is allowed); N must equal ``rows``."""
    import numpy as np

    from robustlab.common.errors import DataError

    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{option} {path} does not read as a NumPy .npy array: {type(e).__name__}: {e}") from None
        if not isinstance(a, np.ndarray) or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise DataError(f"{option} {path} holds {getattr(a, 'dtype', type(a).__name__)} values; expected numbers")
    elif suffix == ".csv":
        a = _read_numeric_csv(path, option)
    else:
        raise DataError(f"{option} {path}: expected a .npy or .csv file, got {path.suffix or 'no suffix'}")
    a = a.astype(np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 and option != "--features":
        raise DataError(f"{option} {path} has shape {a.shape}; expected (N, K)")
    if a.ndim > 2:
        a = a.reshape(len(a), -1)
    if len(a) != rows:
        raise DataError(f"{option} {path} has {len(a)} rows but --labels {labels_path} has {rows}; expected one row "
                        "per label, in the same order")
    if not np.isfinite(a).all():
        i, j = np.argwhere(~np.isfinite(a))[0]
        raise DataError(f"{option} {path}: row {i + 1}, column {j + 1} is {a[i, j]}; expected finite values")
    return a


def _read_numeric_csv(path: Path, option: str):
    import numpy as np
    import pandas as pd

    from robustlab.common.errors import DataError

    try:
        cells = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{option} {path} does not read as CSV: {type(e).__name__}: {e}") from None
    values = cells.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    start = 1 if len(values) and values.iloc[0].isna().all() else 0  # a header line
    values, cells = values.iloc[start:], cells.iloc[start:]
    if values.isna().to_numpy().any():
        i, j = np.argwhere(values.isna().to_numpy())[0]
        raise DataError(f"{option} {path}: line {i + start + 1}, column {j + 1} is {cells.iat[i, j]!r}; expected "
                        "a number")
    return values.to_numpy(np.float64)


def _model_probs(model_path: Path, images_path: Path, dataset: str | None, rows: int, labels_path: Path,
                 batch_size: int, device: str):
    """Predicted probabilities of a model file on an .npy of images."""
    import numpy as np
    import torch

    from robustlab.common.errors import ConfigError, DataError
    from robustlab.common.modelfile import load_model
    from robustlab.common.training import predict_proba
    from robustlab.vision.data import to_tensor

    loaded = load_model(model_path, map_location=device)
    try:
        images = np.load(images_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"--images {images_path} does not read as a NumPy .npy array: {type(e).__name__}: "
                        f"{e}") from None
    if len(images) != rows:
        raise DataError(f"--images {images_path} has {len(images)} images but --labels {labels_path} has {rows} "
                        "rows; expected one image per label, in the same order")
    if images.dtype == np.uint8:
        name = dataset or loaded.preprocessing.get("dataset")
        if name not in _DATASETS:
            raise ConfigError(f"--images {images_path} holds uint8 pixels and the model file {model_path} names no "
                              "dataset to normalise them with: add --dataset mnist or --dataset fashion_mnist")
        x = to_tensor(images, name)
    elif np.issubdtype(images.dtype, np.floating):
        if images.ndim != 4:
            raise DataError(f"--images {images_path} holds floats of shape {images.shape}; expected (N, C, H, W)")
        x = torch.from_numpy(images.astype(np.float32))
    else:
        raise DataError(f"--images {images_path} holds {images.dtype}; expected uint8 pixels or float32 inputs")
    try:
        return predict_proba(loaded.model, x, batch_size=batch_size, device=device)
    except (RuntimeError, ValueError) as e:
        raise DataError(f"the model of {model_path} does not take --images {images_path} (shape "
                        f"{tuple(x.shape)}): {str(e).splitlines()[0]}") from None


# -- the two methods ------------------------------------------------------------------------------------------


def _confident_learning(probs, labels, where: str, filter_by: str, labels_path: Path):
    """cleanlab's mask through the core, and cleanlab's self-confidence label quality as the score."""
    import numpy as np
    from cleanlab.rank import get_label_quality_scores

    from robustlab.common.errors import DataError
    from robustlab.common.label_noise import confident_learning_issues

    k = probs.shape[1]
    if labels.max() >= k:
        i = int(np.argmax(labels >= k))
        raise DataError(f"--labels {labels_path}: row {i + 1} has label {labels[i]} but {where} has {k} columns "
                        f"(classes 0 to "
                        f"{k - 1})")
    try:
        flagged = np.asarray(confident_learning_issues(labels, probs, filter_by=filter_by, n_jobs=1), bool)
    except DataError as e:
        raise DataError(f"{where}: {e}") from None
    scores = get_label_quality_scores(labels, probs, method="self_confidence")
    return scores, flagged, f"confident learning (cleanlab, {filter_by})"


def _ldce(features, labels, trusted, labels_path: Path, threshold: float, num_classes: int | None):
    """LDCE's confidences with every trusted row as support; flagged below ``threshold``."""
    import numpy as np

    from robustlab.common.errors import DataError
    from robustlab.common.label_noise import confidence, find_noisy, label_distribution

    k = int(labels.max()) + 1 if num_classes is None else num_classes
    if labels.max() >= k:
        i = int(np.argmax(labels >= k))
        raise DataError(f"--labels {labels_path}: row {i + 1} has label {labels[i]}; --num-classes {k} allows 0 to "
                        f"{k - 1}")
    k = max(k, 2)
    counts = np.bincount(labels[trusted], minlength=k)
    if (counts == 0).any():
        missing = [str(c) for c in np.flatnonzero(counts == 0)]
        raise DataError(f"--labels {labels_path}: no trusted row of class {', '.join(missing)}; LDCE needs at "
                        "least one trusted row (trusted = 1) of every class as its support set")
    distribution = label_distribution(features, features[trusted], labels[trusted], k)
    scores = confidence(distribution, labels).double().numpy()
    flagged = np.asarray(find_noisy(scores, threshold), bool)
    return scores, flagged, f"LDCE (support: {int(trusted.sum())} trusted rows, threshold {threshold:g})"


def _write(out: Path, table, scores, flagged) -> None:
    from robustlab.common.io import atomic_write_text

    report = table.copy()
    if "id" not in report:
        report.insert(0, "row", range(len(report)))
    if "trusted" in report:
        report["trusted"] = report["trusted"].astype(int)
    report["score"] = scores
    report["flagged"] = flagged.astype(int)
    atomic_write_text(out, report.to_csv(index=False, float_format="%.6g"))


def _add_recipe_commands() -> None:
    from robustlab.common.cli import merge_command, reproduce_command
    from robustlab.vision.cli_data import prepare_mias
    from robustlab.vision.cli_gan import sample, train_gan
    from robustlab.vision.cli_train import train

    for command in (prepare_mias, train_gan, sample, train):
        vision.add_command(command)
    vision.add_command(reproduce_command(package="robustlab.vision"))
    vision.add_command(merge_command(package="robustlab.vision"))


_add_recipe_commands()
