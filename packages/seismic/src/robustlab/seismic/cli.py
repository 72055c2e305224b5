"""The ``robustlab seismic`` command group (registered through the ``robustlab.cli`` entry point).

``prepare`` builds and caches the PNW (and IPOC) trace sets and prints what was kept and skipped; ``train`` trains
the 1D CNN or the spectrogram CNN, supervised or semi-supervised, on the PNW events (holding out one test fold of
``folds.csv`` when asked) and writes a model file carrying its preprocessing and out-of-distribution calibration;
``predict`` classifies the events of any folder of miniSEED/SAC files; ``reproduce linville2020`` runs the recipe.

Errors follow the contract of :mod:`robustlab.common.cli` (exit 2 for a bad option or value, 1 for bad data, no
traceback). Imports nothing heavy at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputDir, RobustlabGroup, check_run_folder

__all__ = ["seismic"]

_SEED_MAX = 2**32 - 1
_DATA_HELP = ("The PNW earthquake/explosion folder (labels.csv, folds.csv, waveforms/, unlabelled/) [default: "
              "$ROBUSTLAB_PNW_EQ_VS_EXPLOSION, else the robustlab cache, downloaded when missing].")
_CALIBRATION_SHARE = 0.1
"""Share of the unreviewed events held out of training to calibrate the out-of-distribution threshold."""
_OOD_REFERENCE_MAX = 4000


@click.group(cls=RobustlabGroup, short_help="Seismic event classification with semi-supervised learning.")
def seismic() -> None:
    """Earthquake/explosion (and source-region) classification of seismic traces, supervised or semi-supervised
    (mean teacher, VAT, EAAT: Linville et al. 2021)."""


def _pnw(data: Path | None, progress: bool, unlabelled: bool = True):
    from robustlab.seismic.data.pnw import load_pnw

    return load_pnw(data, unlabelled=unlabelled, progress=progress)


def _reasons(traces) -> str:
    """Skipped traces counted by reason kind (rate, gap, truncated, flat, ...)."""
    counts = traces.reason_counts()
    return ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"


@seismic.command(short_help="Build and cache the PNW (and IPOC) trace sets; print counts and skip reasons.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--dataset", type=click.Choice(("pnw", "ipoc", "all")), default="pnw", show_default=True,
              help="Which trace sets to build.")
@click.option("--ipoc-data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The IPOC source-region folder (SeisBench layout) [default: $ROBUSTLAB_IPOC_SOURCE_REGION, else "
                   "the robustlab cache].")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def prepare(data: Path | None, dataset: str, ipoc_data: Path | None, progress: bool) -> None:
    """Read and preprocess every trace once (ObsPy: merge, detrend, taper, band-pass 1-8 Hz, 20 Hz, 100 s from the
    origin, z-score) and cache the result; print the traces kept per class and source, and those skipped by
    reason."""
    import time

    if dataset in ("pnw", "all"):
        t = time.perf_counter()
        ts = _pnw(data, progress)
        meta = ts.meta
        lab = meta[meta["y"] >= 0]
        unrev = meta[meta["y"] < 0]
        counts = lab["label"].value_counts()
        click.echo(f"PNW: {len(lab)} labelled traces of {lab['event_id'].nunique()} events ("
                   + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in ("earthquake", "explosion"))
                   + f"), {len(unrev)} unreviewed traces of {unrev['event_id'].nunique()} events, in "
                   f"{time.perf_counter() - t:.1f} s; skipped {len(ts.report)}: {_reasons(ts)}")
    if dataset in ("ipoc", "all"):
        from robustlab.seismic.data.ipoc import IPOC_CLASSES, load_ipoc

        t = time.perf_counter()
        ts = load_ipoc(ipoc_data)
        meta = ts.meta
        parts = []
        for split in sorted(meta["split"].unique()) if "split" in meta else ["all"]:
            m = meta if split == "all" else meta[meta["split"] == split]
            per = m["y"].value_counts()
            parts.append(f"{split} {len(m)} (" + ", ".join(f"{c} {int(per.get(i, 0))}"
                                                          for i, c in enumerate(IPOC_CLASSES)) + ")")
        click.echo(f"IPOC: {len(ts)} three-component traces: " + "; ".join(parts)
                   + f", in {time.perf_counter() - t:.1f} s; skipped {len(ts.report)}: {_reasons(ts)}")


@seismic.command(short_help="Train the 1D or spectrogram CNN, supervised or semi-supervised (resumable).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--model", "model_name", type=click.Choice(("cnn", "spec")), default="spec", show_default=True,
              help="spec: 2D CNN on log-mel spectrograms (the linville2020 recipe's network, chosen on inner "
                   "validation splits); cnn: ConvNetQuake on waveforms.")
@click.option("--regime", type=click.Choice(("supervised", "mean_teacher", "vat", "eaat")), default="supervised",
              show_default=True, help="Supervised, or a semi-supervised regime of the core.")
@click.option("--regularizer-only", is_flag=True,
              help="The regime's consistency on the labelled traces only (no unlabelled data).")
@click.option("--labelled-fraction", type=FiniteFloat(0, 1, min_open=True), default=1.0, show_default=True,
              help="Share of the training events whose labels are used (per class, seeded); the others join the "
                   "unlabelled pool with the unreviewed events.")
@click.option("--repeat", type=click.IntRange(min=0), default=None,
              help="Hold out a test fold of folds.csv: its repeat (seed column); with --fold.")
@click.option("--fold", type=click.IntRange(min=0), default=None, help="The test fold held out; with --repeat.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Epochs (the last kept).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Labelled traces per batch (and as many unlabelled ones).")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--consistency-weight", type=FiniteFloat(min=0), default=3.0, show_default=True,
              help="Weight of the consistency term (shadow-ssml: 2-4x the class loss).")
@click.option("--max-unlabelled", type=click.IntRange(min=1), default=None,
              help="Most unlabelled traces used (a seeded draw) [default: all].")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
              help="Seed of the labelled draw, initialization, shuffling and noise.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder for model.pt, metrics.json, the checkpoints, run.json and the metric logs.")
@click.option("--resume", is_flag=True, help="Continue the run in --out with the same options.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def train(data: Path | None, model_name: str, regime: str, regularizer_only: bool, labelled_fraction: float,
          repeat: int | None, fold: int | None, epochs: int, batch_size: int, lr: float, consistency_weight: float,
          max_unlabelled: int | None, seed: int, device: str, out: Path, resume: bool, progress: bool) -> None:
    """Train on the PNW events (all of them, or all but the test fold --fold of repeat --repeat) and write
    --out/model.pt, a model file that `seismic predict` rebuilds with its preprocessing and out-of-distribution
    calibration, and --out/metrics.json (the test fold's trace and event figures when a fold is held out).

    A tenth of the unreviewed events is held out of training to calibrate the out-of-distribution threshold. A
    killed run continues with the same command plus --resume.
    """
    import time

    import numpy as np

    from robustlab.common.errors import ConfigError
    from robustlab.common.io import atomic_write_json
    from robustlab.common.modelfile import save_model
    from robustlab.seismic.evaluation import (
        CLASSES,
        OODScore,
        binary_metrics,
        event_labels,
        event_probabilities,
    )
    from robustlab.seismic.pipeline import model_preprocessing
    from robustlab.seismic.training import SeismicTrainConfig, fit_classifier, labelled_events, predict_proba

    if (repeat is None) != (fold is None):
        raise click.UsageError("--repeat and --fold go together: give both to hold out a test fold, or neither to "
                               "train on every event")
    config = SeismicTrainConfig(model=model_name, regime=regime, regularizer_only=regularizer_only, epochs=epochs,
                                batch_size=batch_size, lr=lr, consistency_weight=consistency_weight,
                                max_unlabelled=max_unlabelled, device=device)
    options = {**config.as_dict(), "labelled_fraction": labelled_fraction, "repeat": repeat, "fold": fold,
               "seed": seed, "data": str(data) if data else "default"}
    options.pop("device")
    resuming = check_run_folder(out, "seismic train", options, resume=resume)
    t0 = time.perf_counter()
    ts = _pnw(data, progress)
    meta = ts.meta
    y_all = meta["y"].to_numpy()
    events = meta["event_id"].astype(str).to_numpy()
    labelled = y_all >= 0
    test_events: set[str] = set()
    if fold is not None:
        from robustlab.seismic.data.pnw import fold_split, pnw_path, read_folds

        folds = read_folds(pnw_path(data, download=False) if data is None else data)
        pairs = sorted({(int(s), int(f)) for s, f in zip(folds["seed"], folds["fold"])})
        if (repeat, fold) not in pairs:
            raise ConfigError(f"--repeat {repeat} --fold {fold} is not in folds.csv; it holds repeats "
                              f"{sorted({s for s, _ in pairs})} and folds {sorted({f for _, f in pairs})}")
        _, test_ids = fold_split(folds, repeat, fold)
        test_events = {str(e) for e in test_ids}
    is_test = np.isin(events, list(test_events)) & labelled
    train_lab = labelled & ~is_test
    chosen = labelled_events(events[train_lab], y_all[train_lab], labelled_fraction, seed)
    is_l = train_lab & np.isin(events, chosen)
    unrev = ~labelled
    unrev_events = np.unique(events[unrev])
    rng = np.random.default_rng(seed)
    n_cal = int(round(_CALIBRATION_SHARE * len(unrev_events)))
    cal_events = rng.choice(unrev_events, n_cal, replace=False) if n_cal else np.array([], dtype=str)
    is_cal = unrev & np.isin(events, cal_events)
    is_pool = (train_lab & ~is_l) | (unrev & ~is_cal)
    x = ts.x
    click.echo(f"PNW: {int(is_l.sum())} labelled training traces of {len(chosen)} events "
               f"({labelled_fraction:g} of {len(np.unique(events[train_lab]))}), {int(is_pool.sum())} unlabelled "
               f"in the pool, {int(is_test.sum())} test traces of {len(test_events)} events, {int(is_cal.sum())} "
               f"unreviewed traces of {n_cal} events held out for the OOD calibration", err=True)
    model, result = fit_classifier(x[is_l], y_all[is_l], x[is_pool], config=config, seed=seed,
                                   n_classes=len(CLASSES), model_kwargs={"rate": float(ts.config.rate)}, out_dir=out,
                                   resume=resuming, progress=progress)
    # the OOD reference: the traces the model trained on (capped, seeded); the threshold: held-out unreviewed ones
    reference = np.flatnonzero(is_l | is_pool)
    if len(reference) > _OOD_REFERENCE_MAX:
        reference = np.sort(rng.choice(reference, _OOD_REFERENCE_MAX, replace=False))
    calibration = np.flatnonzero(is_cal) if is_cal.any() else np.flatnonzero(is_l)
    ood = OODScore.calibrate(model, x[reference], x[calibration])
    metrics: dict = {"n_labelled": int(is_l.sum()), "n_labelled_events": int(len(chosen)),
                     "n_unlabelled": int(min(is_pool.sum(), max_unlabelled or is_pool.sum())), "n_test": int(is_test.sum()),
                     "ood_calibration": "held-out unreviewed events" if is_cal.any() else "labelled training traces",
                     "epochs_run": len(result.history), "seconds": round(time.perf_counter() - t0, 2)}
    if is_test.any():
        p = predict_proba(model, x[is_test])[:, 1]
        ev, p_ev = event_probabilities(p, events[is_test])
        _, y_ev = event_labels(y_all[is_test], events[is_test])
        metrics["trace"] = binary_metrics(y_all[is_test], p)
        metrics["event"] = binary_metrics(y_ev, p_ev)
        metrics["test_ood_flag_rate"] = float(ood.flag(ood(model, x[is_test])).mean())
    pre = model_preprocessing(ts.config, classes=CLASSES, ood=ood.to_dict(), channels=int(x.shape[1]))
    save_model(model.cpu(), out / "model.pt", preprocessing=pre,
               metadata={"command": "seismic train", **options, "metrics": _jsonable(metrics),
                         "labelled_events": [str(e) for e in chosen], "test_events": sorted(test_events)})
    atomic_write_json(out / "metrics.json", _jsonable({"options": options, **metrics}))
    line = f"{model_name} ({regime}{', labelled only' if regularizer_only else ''}): {len(result.history)} epochs"
    if "event" in metrics:
        line += (f"; test fold {repeat}/{fold}: event balanced accuracy {metrics['event']['balanced_accuracy']:.3f}, "
                 f"explosion F1 {metrics['event']['explosion_f1']:.3f}; trace balanced accuracy "
                 f"{metrics['trace']['balanced_accuracy']:.3f}")
    click.echo(line + f" -> {out / 'model.pt'}, {out / 'metrics.json'}")


def _jsonable(obj):
    import math

    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and type(obj).__module__ == "numpy":
        return _jsonable(obj.item())
    return obj


@seismic.command(short_help="Classify the events of any folder of miniSEED/SAC files: CSVs of probabilities.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="model.pt written by `robustlab seismic train`.")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--catalog", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV with origin_time and file and/or event_id: windows from the origin; without it, from a "
                   "STA/LTA P pick.")
@click.option("--threshold", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="Explosion probability from which an event or trace is called an explosion.")
@click.option("--out", type=OutputDir(), required=True, help="Folder for traces.csv, events.csv and skipped.csv.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def predict(model_path: Path, folder: Path, catalog: Path | None, threshold: float, out: Path, progress: bool) -> None:
    """Explosion probability of every usable vertical trace in FOLDER (one channel per station and event: HH >
    EH > BH > others; other rates resampled to the model's) and of every event (the mean of its traces), with an
    out-of-distribution flag, and a report of every file or trace skipped and why."""
    from robustlab.seismic.pipeline import predict_folder

    pred = predict_folder(model_path, folder, catalog=catalog, out=out, threshold=threshold, progress=progress)
    reasons = pred.skipped["reason"].map(_reason_kind).value_counts() if len(pred.skipped) else None
    skipped = ", ".join(f"{n} {k}" for k, n in reasons.items()) if reasons is not None else "none"
    flagged = int(pred.traces["ood_flag"].sum()) if len(pred.traces) else 0
    click.echo(f"{len(pred.traces)} traces of {len(pred.events)} events classified (window from "
               f"{'the catalog origin' if pred.window_from == 'origin' else 'an STA/LTA P pick'}; {flagged} flagged "
               f"out of distribution); skipped {len(pred.skipped)}: {skipped} -> "
               + ", ".join(str(p) for p in pred.files))


def _reason_kind(reason: str) -> str:
    """A reason's first words, to count them (``"gap of 3.2 s > 1.0 s"`` -> ``"gap"``)."""
    head = str(reason).split(":")[0].split(" (")[0]
    return " ".join(head.split()[:4])


def _add_recipe_commands() -> None:
    from robustlab.common.cli import merge_command, reproduce_command

    seismic.add_command(reproduce_command(package="robustlab.seismic"))
    seismic.add_command(merge_command(package="robustlab.seismic"))


_add_recipe_commands()
