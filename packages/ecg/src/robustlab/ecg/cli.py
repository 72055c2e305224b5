"""The ``robustlab ecg`` command group (registered through the ``robustlab.cli`` entry point).

``prepare`` extracts and caches the MIT-BIH beats; ``train`` trains a channel model or the MRR on DS1 (validation on
held-out DS1 patients) and writes a model file; ``evaluate`` scores a model file on DS2 (AAMI EC57, confusion matrix,
robustness); ``predict`` classifies the beats of any WFDB record; ``reproduce wang2020`` runs the paper's table.

Errors follow the contract of :mod:`robustlab.common.cli` (exit 2 for a bad option or value, 1 for bad data, no
traceback). Imports nothing heavy at module level.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputDir, RobustlabGroup, check_run_folder

__all__ = ["ecg"]

_SEED_MAX = 2**32 - 1
_MODELS = ("cnn", "resnet", "bigru", "cnn_lstm", "mrr")
_CHANNELS = ("cnn", "resnet", "bigru", "cnn_lstm")
_PERTURBATIONS = ("baseline_wander", "muscle", "electrode_motion", "powerline50", "powerline60")
_DATA_HELP = ("The MIT-BIH Arrhythmia Database folder (NNN.hea/.dat/.atr) [default: the robustlab cache, downloaded "
              "from PhysioNet when missing].")


@click.group(cls=RobustlabGroup, short_help="Arrhythmia classification from WFDB records (MIT-BIH, CinC 2021).")
def ecg() -> None:
    """Arrhythmia classification from WFDB records with multi-resolution representations (Wang et al. 2020)."""


def _mitdb(data: Path | None, progress: bool) -> Path:
    from robustlab.ecg.data.mitdb import mitdb_path

    return mitdb_path(data, progress=progress)


@ecg.command(short_help="Extract and cache the MIT-BIH beats; print counts per class and split.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--before", type=click.IntRange(min=0), default=360, show_default=True,
              help="Samples (360 Hz) before the R peak in each window.")
@click.option("--after", type=click.IntRange(min=1), default=360, show_default=True,
              help="Samples from the R peak on in each window.")
@click.option("--lead", default="MLII", show_default=True, help="The lead, by name.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def prepare(data: Path | None, before: int, after: int, lead: str, progress: bool) -> None:
    """Extract the beats of DS1 and DS2 (de Chazal's inter-patient split, paced records left out) and cache them;
    print the beats per AAMI class and split, and what was left out and why."""
    import time

    from robustlab.ecg.data.mitdb import AAMI_CLASSES, load_beats

    root = _mitdb(data, progress)
    for split in ("DS1", "DS2"):
        t = time.perf_counter()
        beats = load_beats(split, root=root, before=before, after=after, lead=lead, progress=progress)
        counts = beats.counts()
        totals = beats.report["totals"]
        left_out = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in totals["dropped"].items() if n) or "none"
        click.echo(f"{split}: {len(beats)} beats from {len(set(beats.record.tolist()))} records ("
                   + ", ".join(f"{c} {counts.get(c, 0)}" for c in AAMI_CLASSES)
                   + f") in {time.perf_counter() - t:.2f} s; of {totals['beats']} beat annotations left out: {left_out} "
                   f"(window past the record's edge, or touching invalid samples); {totals['non_beat']} non-beat "
                   "annotations")


def _train_options(f):
    options = [
        click.option("--model", "model_name", type=click.Choice(_MODELS), default="cnn", show_default=True,
                     help="A channel model, or mrr: the four channel models and an MLP over their embeddings and the "
                          "hand-crafted features."),
        click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help=_DATA_HELP),
        click.option("--regime", type=click.Choice(("erm", "noise", "adversarial")), default="erm",
                     show_default=True, help="Training of the channel models: plain, Gaussian noise, PGD adversarial."),
        click.option("--noise-std", type=FiniteFloat(min=0), default=0.05, show_default=True,
                     help="Noise regime: standard deviation in mV."),
        click.option("--adv-eps", type=FiniteFloat(min=0), default=0.02, show_default=True,
                     help="Adversarial regime: L-inf budget in mV."),
        click.option("--adv-steps", type=click.IntRange(min=1), default=3, show_default=True, help="PGD steps."),
        click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True, help="Epochs."),
        click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True,
                     help="Stop after this many epochs without a better validation macro-F1."),
        click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Batch size."),
        click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=1e-3, show_default=True,
                     help="Adam learning rate."),
        click.option("--max-n", type=click.IntRange(min=0), default=15000, show_default=True,
                     help="Most N beats kept for training (0: all)."),
        click.option("--class-power", type=FiniteFloat(0, 2), default=0.5, show_default=True,
                     help="Exponent of the balanced class weights of the loss (0: unweighted)."),
        click.option("--val-fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.2,
                     show_default=True, help="Share of DS1 beats held out, whole patients, for validation."),
        click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
                     help="Seed of initialization, shuffling and the draw of N beats."),
        click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."),
        click.option("--out", type=OutputDir(), required=True,
                     help="Folder for model.pt, the checkpoints, run.json and the metric logs."),
        click.option("--resume", is_flag=True, help="Continue the run in --out with the same options."),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show training progress."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@ecg.command(short_help="Train a channel model or the MRR on MIT-BIH DS1 (resumable); writes a model file.")
@_train_options
def train(model_name: str, data: Path | None, regime: str, noise_std: float, adv_eps: float, adv_steps: int,
          epochs: int, patience: int, batch_size: int, lr: float, max_n: int, class_power: float, val_fraction: float,
          seed: int, device: str, out: Path, resume: bool, progress: bool) -> None:
    """Train on DS1 (beats N, S, V, F; validation on held-out DS1 patients, never on DS2) and write --out/model.pt,
    a model file that `ecg evaluate` and `ecg predict` rebuild, preprocessing included, with no further options.

    A killed run continues with the same command plus --resume.
    """
    import numpy as np

    from robustlab.common.modelfile import save_model
    from robustlab.ecg.data.mitdb import load_beats
    from robustlab.ecg.evaluation import BEAT_CLASSES, aami_report, predict_proba
    from robustlab.ecg.pipeline import beat_preprocessing
    from robustlab.ecg.training import ChannelTrainConfig, balance_n, train_channel, validation_split

    config = ChannelTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, max_n=max_n,
                                class_power=class_power, regime=regime, noise_std=noise_std, adv_eps=adv_eps,
                                adv_steps=adv_steps, device=device)
    options = {"model": model_name, **config.as_dict(), "val_fraction": val_fraction, "seed": seed,
               "data": str(data) if data else "cache"}
    options.pop("device")
    marker = "cnn/last.pt" if model_name == "mrr" else "last.pt"
    resuming = check_run_folder(out, "ecg train", options, resume=resume, checkpoint=marker)
    ds1 = load_beats("DS1", root=_mitdb(data, progress), progress=progress).only(BEAT_CLASSES)
    tr, va = validation_split(ds1.record, ds1.y, fraction=val_fraction, seed=0)
    tr = tr[balance_n(ds1.y[tr], max_n, seed=seed)]
    train_set, val_set = ds1.subset(tr), ds1.subset(va)
    dropped = ds1.report.get("only", {}).get("dropped", {})
    if dropped:
        click.echo("DS1 beats not of the classes N, S, V, F, left out: "
                   + ", ".join(f"{c} {n}" for c, n in dropped.items()), err=True)
    click.echo(f"DS1: {len(train_set)} training beats, {len(val_set)} validation beats from "
               f"{len(set(val_set.record.tolist()))} held-out records ({', '.join(sorted(set(val_set.record.tolist())))})",
               err=True)
    names = _CHANNELS if model_name == "mrr" else (model_name,)
    models = {}
    for name in names:
        folder = out / name if model_name == "mrr" else out
        if progress and model_name == "mrr":
            click.echo(f"channel model {name} -> {folder}", err=True)
        models[name], result = train_channel(name, train_set.x, train_set.y, val_set.x, val_set.y,
                                             num_classes=len(BEAT_CLASSES), config=config, seed=seed,
                                             out_dir=folder, resume=resuming or (out / name / "last.pt").is_file(),
                                             progress=progress)
    preprocessing = beat_preprocessing(classes=BEAT_CLASSES, fs=ds1.fs, before=ds1.before, after=ds1.after,
                                       lead=ds1.lead)
    if model_name == "mrr":
        from robustlab.ecg.features import FEATURE_GROUPS
        from robustlab.ecg.models.mrr import MRRClassifier, channel_embeddings
        from robustlab.ecg.pipeline import beat_features, subset_features

        raw = beat_features(ds1.x, ds1.rr, fs=ds1.fs, r_index=ds1.r_index, groups=FEATURE_GROUPS, raw=True)
        chans = list(models.values())
        z_val = channel_embeddings(chans, val_set.x[:, None])
        f_val = subset_features(raw, ds1.record, va, fs=ds1.fs, groups=FEATURE_GROUPS)
        clf = MRRClassifier(head="mlp", use_features=True, seed=seed)
        clf.fit(channel_embeddings(chans, train_set.x[:, None]),
                subset_features(raw, ds1.record, tr, fs=ds1.fs, groups=FEATURE_GROUPS), train_set.y,
                z_val, f_val, val_set.y)
        model = clf.to_module(chans)
        preprocessing["features"] = {"groups": list(FEATURE_GROUPS)}
        val_pred = clf.predict(z_val, f_val)
    else:
        model = models[model_name]
        val_pred = predict_proba(model, val_set.x).argmax(1)
    rep = aami_report(val_set.y, val_pred)
    save_model(model.cpu(), out / "model.pt", preprocessing=preprocessing,
               metadata={"command": "ecg train", **options, "val_macro_f1": rep["macro_f1"],
                         "val_records": sorted(set(val_set.record.tolist())), "n_train": int(len(train_set)),
                         "train_counts": {c: int(np.sum(train_set.y == i)) for i, c in enumerate(BEAT_CLASSES)}})
    click.echo(f"{model_name} ({regime}): validation macro-F1 {rep['macro_f1']:.3f} ("
               + ", ".join(f"{c} F1 {rep['per_class'][c]['f1']:.2f}" for c in BEAT_CLASSES)
               + f") -> {out / 'model.pt'}")


def _load_beat_model(path: Path):
    from robustlab.common.errors import CheckpointError
    from robustlab.common.modelfile import load_model

    loaded = load_model(path)
    if loaded.preprocessing.get("kind") != "beats":
        raise CheckpointError(f"{path} is a model file of another kind (its preprocessing names no beat windows); "
                              "give a model file written by `robustlab ecg train`")
    return loaded


@ecg.command(short_help="Score a model file on MIT-BIH DS2: AAMI EC57 figures, confusion matrix, robustness.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="model.pt written by `robustlab ecg train`.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help=_DATA_HELP)
@click.option("--split", type=click.Choice(("DS2", "DS1")), default="DS2", show_default=True,
              help="The records scored (DS2: the inter-patient test set).")
@click.option("--pgd-eps", type=FiniteFloat(min=0), multiple=True, default=(0.01, 0.05), show_default=True,
              help="PGD budgets (L-inf, mV); repeat the option for several.")
@click.option("--pgd-steps", type=click.IntRange(min=1), default=10, show_default=True, help="PGD steps.")
@click.option("--snr", type=FiniteFloat(-20, 60), multiple=True, default=(12.0, 6.0), show_default=True,
              help="SNRs (dB) of the realistic perturbations; repeat for several.")
@click.option("--perturbation", type=click.Choice(_PERTURBATIONS), multiple=True, default=_PERTURBATIONS,
              show_default=True, help="Realistic perturbations scored; repeat for several.")
@click.option("--n-robust", type=click.IntRange(min=0), default=2000, show_default=True,
              help="Class-balanced beats scored under PGD and perturbations (0: none).")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
              help="Seed of the subset, the noise and PGD's random start.")
@click.option("--out", type=OutputDir(), required=True, help="Folder for report.json and confusion.png.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress.")
def evaluate(model_path: Path, data: Path | None, split: str, pgd_eps: tuple[float, ...], pgd_steps: int,
             snr: tuple[float, ...], perturbation: tuple[str, ...], n_robust: int, seed: int, out: Path,
             progress: bool) -> None:
    """Sensitivity, positive predictivity and F1 of N, S, V, F and macro-F1 on --split (inter-patient: the model
    was trained on DS1), the confusion matrix as a PNG, and macro-F1 under PGD and realistic noise."""
    import numpy as np
    import torch

    from robustlab.common.io import atomic_write_json
    from robustlab.ecg.data.mitdb import load_beats
    from robustlab.ecg.evaluation import DE_CHAZAL_2004, aami_report, plot_confusion, robustness
    from robustlab.ecg.pipeline import model_input

    loaded = _load_beat_model(model_path)
    pre, model = loaded.preprocessing, loaded.model.eval()
    classes = tuple(pre["classes"])
    beats = load_beats(split, root=_mitdb(data, progress), before=pre["before"], after=pre["after"],
                       lead=pre["lead"], progress=progress).only(classes)
    if not np.isclose(beats.fs, pre["fs"]):
        raise click.UsageError(f"{model_path} was trained at {pre['fs']} Hz; MIT-BIH is {beats.fs} Hz")

    def scores(x) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([model(c).argmax(1) for c in x.split(1024)]).numpy()

    packed = pre.get("features") is not None
    reference = None
    if packed:  # each record's feature medians over all its clean beats (see robustlab.ecg.features)
        from robustlab.ecg.pipeline import beat_features

        raw = beat_features(beats.x, beats.rr, fs=pre["fs"], r_index=pre["before"], groups=pre["features"]["groups"],
                            raw=True)
        reference = (raw, beats.record)
    rep = aami_report(beats.y, scores(model_input(pre, beats.x, beats.rr, beats.record, reference=reference)), classes)
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(rep["confusion"], classes, out / "confusion.png",
                   title=f"{model_path.name} on {split}: macro-F1 {rep['macro_f1']:.3f}")
    protocol = "inter-patient (trained on DS1)" if split == "DS2" else "training records (DS1): not a test figure"
    report = {"model": str(model_path), "split": split, "protocol": protocol, **rep, "de_chazal_2004": DE_CHAZAL_2004}
    if n_robust:
        from robustlab.common.attacks import PGD
        from robustlab.ecg.evaluation import balanced_subset

        sub = beats.subset(balanced_subset(beats.y, n_robust, seed))

        def inputs(windows: np.ndarray):
            return model_input(pre, windows, sub.rr, sub.record, reference=reference)

        rob = robustness(lambda xs: scores(inputs(xs[:, 0])), sub.x, sub.y,
                         perturbations={p: list(snr) for p in perturbation}, fs=beats.fs, seed=seed, classes=classes)
        y = torch.from_numpy(sub.y.astype(np.int64))
        for eps in pgd_eps:  # white box, end to end (an MRR's hand-crafted features held at their clean values)
            torch.manual_seed(seed)
            x = inputs(sub.x)
            budget = model.eps_mask(eps) if packed else eps
            pgd = PGD(model, eps=budget, steps=pgd_steps, random_start=True)
            adv = torch.cat([pgd(a, b) for a, b in zip(x.split(512), y.split(512))]).detach()
            r = aami_report(sub.y, scores(adv), classes)
            rob[f"pgd@{eps:g}mV_macro_f1"], rob[f"pgd@{eps:g}mV_accuracy"] = r["macro_f1"], r["accuracy"]
        report["robustness"] = rob
        report["robustness_subset"] = {c: int((sub.y == i).sum()) for i, c in enumerate(classes)}
    atomic_write_json(out / "report.json", report)
    pc = rep["per_class"]
    click.echo(f"{split} ({len(beats)} beats): macro-F1 {rep['macro_f1']:.3f}; "
               + "; ".join(f"{c} Se {pc[c]['sensitivity']:.3f} +P {pc[c]['positive_predictivity']:.3f} "
                           f"F1 {pc[c]['f1']:.3f}" for c in classes)
               + f" -> {out / 'report.json'}, {out / 'confusion.png'}")
    if n_robust:
        r = report["robustness"]
        click.echo("robustness (macro-F1): " + ", ".join(f"{k[:-9]} {v:.3f}" for k, v in r.items()
                                                       if k.endswith("_macro_f1")))


@ecg.command(short_help="Classify the beats of any WFDB record (or a folder of them): CSV and a plot.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="model.pt written by `robustlab ecg train`.")
@click.option("--record", "record_path", type=click.Path(exists=True, path_type=Path), required=True,
              help="A WFDB record (its .hea file) or a folder of records.")
@click.option("--lead", default=None, help="The lead, by name [default: the model's, then MLII, II, ML2, V5, V1, I].")
@click.option("--detector", type=click.Choice(("auto", "annotations", "xqrs", "neurokit")), default="auto",
              show_default=True, help="R peaks: the record's beat annotations (.atr) when present (auto), else wfdb's "
                                      "XQRS; or NeuroKit2.")
@click.option("--annotations", default="atr", show_default=True, help="Extension of the beat annotation file.")
@click.option("--plot-start", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="Start (s) of the stretch plotted.")
@click.option("--plot-seconds", type=FiniteFloat(min=1, max=600), default=10.0, show_default=True,
              help="Length (s) of the stretch plotted.")
@click.option("--out", type=OutputDir(), required=True, help="Folder for beats.csv and <record>.png.")
def predict(model_path: Path, record_path: Path, lead: str | None, detector: str, annotations: str, plot_start: float,
            plot_seconds: float, out: Path) -> None:
    """Beat classes and probabilities of the record(s): --out/beats.csv (record, time, sample, class, one probability
    per class, the annotated symbol when known, the lead and detector used) and --out/<record>.png (a stretch with
    the beats coloured by class). Another sampling rate is resampled to the model's; the model file holds
    everything else."""
    import csv
    import io

    import torch

    from robustlab.common.errors import DataError
    from robustlab.common.io import atomic_write_text
    from robustlab.ecg.data.records import find_records
    from robustlab.ecg.pipeline import model_input, record_beats

    loaded = _load_beat_model(model_path)
    pre, model = loaded.preprocessing, loaded.model.eval()
    classes = list(pre["classes"])
    if record_path.is_dir():
        records = find_records(record_path)
        if not records:
            raise DataError(f"{record_path} holds no WFDB record (no .hea file)")
    else:
        records = [record_path]
    rows: list[list] = []
    out.mkdir(parents=True, exist_ok=True)
    for path in records:
        beats = record_beats(path, fs=pre["fs"], lead=lead or pre["lead"], before=pre["before"], after=pre["after"],
                             annotations=annotations, detector=detector,
                             baseline_widths_s=tuple(pre.get("baseline_widths_s", (0.2, 0.6))))
        x = model_input(pre, beats.windows, beats.rr)  # one record: its own feature medians
        with torch.no_grad():
            prob = torch.cat([torch.softmax(model(c), 1) for c in x.split(1024)]).numpy()
        pred = prob.argmax(1)
        for i in range(len(pred)):
            rows.append([beats.record, f"{beats.sample[i] / beats.fs:.3f}", int(beats.sample[i]), classes[pred[i]],
                         *[f"{v:.4f}" for v in prob[i]], "" if beats.symbol is None else str(beats.symbol[i]),
                         beats.lead, beats.detector])
        _plot_record(beats, pred, classes, out / f"{beats.record}.png", plot_start, plot_seconds)
        counts = {c: int((pred == k).sum()) for k, c in enumerate(classes)}
        click.echo(f"{beats.record}: {len(pred)} beats ({beats.detector}; lead {beats.lead}, {beats.lead_note}; "
                   f"{beats.fs_record:g} Hz" + (f" resampled to {beats.fs:g} Hz" if beats.fs_record != beats.fs else "")
                   + f"; {beats.report['dropped_at_edges']} too close to the edges left out): "
                   + ", ".join(f"{c} {n}" for c, n in counts.items()))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["record", "time_s", "sample", "class", *[f"p_{c}" for c in classes], "annotation", "lead",
                     "detector"])
    writer.writerows(rows)
    atomic_write_text(out / "beats.csv", buf.getvalue())
    click.echo(f"{len(rows)} beats of {len(records)} record(s) -> {out / 'beats.csv'}")


_COLOURS = {"N": "#4c72b0", "S": "#dd8452", "V": "#c44e52", "F": "#8172b3", "Q": "#937860"}


def _plot_record(beats, pred, classes, path: Path, start: float, seconds: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from robustlab.common.io import atomic_path

    fs = beats.fs
    a = int(min(start * fs, max(0, len(beats.signal) - 1)))
    b = int(min(len(beats.signal), a + seconds * fs))
    t = np.arange(a, b) / fs
    fig, ax = plt.subplots(figsize=(min(18, 2 + seconds * 1.2), 3))
    ax.plot(t, beats.signal[a:b], lw=0.7, color="black")
    inside = (beats.sample >= a) & (beats.sample < b)
    for k, c in enumerate(classes):
        m = inside & (pred == k)
        if m.any():
            ax.scatter(beats.sample[m] / fs, beats.signal[beats.sample[m]], s=28, color=_COLOURS.get(c, "grey"),
                       label=c, zorder=3)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{beats.lead} (mV)")
    ax.set_title(f"record {beats.record}: beats by predicted class ({beats.detector})", fontsize=9)
    if inside.any():
        ax.legend(fontsize=7, loc="upper right", ncol=len(classes))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _add_recipe_commands() -> None:
    from robustlab.common.cli import merge_command, reproduce_command

    ecg.add_command(reproduce_command(package="robustlab.ecg"))
    ecg.add_command(merge_command(package="robustlab.ecg"))


_add_recipe_commands()
