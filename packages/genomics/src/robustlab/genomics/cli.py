"""The ``robustlab genomics`` command group (registered through the ``robustlab.cli`` entry point).

Errors follow the contract of :mod:`robustlab.common.cli` (exit 2 for a bad option or value, 1 for bad data,
no traceback). ``train`` writes a model file (``model.pt``: class, arguments, weights, preprocessing) that
``attribute`` rebuilds with no further options, and continues a killed run with ``--resume``.

Imports nothing heavy at module level: torch, numpy and Biopython load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from robustlab.common.cli import Device, FiniteFloat, OutputDir, OutputFile, RobustlabGroup, check_run_folder

__all__ = ["genomics"]

_TASKS = ("koo2019", "koo_eddy2019")
_SEED_MAX = 2**32 - 1  # what NumPy's and torch's generators all take


@click.group(cls=RobustlabGroup, short_help="Robust CNNs on DNA and the interpretability of their attribution maps.")
def genomics() -> None:
    """Robust CNNs on DNA sequences and how interpretable their attribution maps are (Koo et al. 2019)."""


@genomics.command(short_help="Simulate a synthetic data set with ground truth (NPZ).")
@click.option("--task", type=click.Choice(_TASKS), required=True,
              help="koo2019: binary, core motifs vs core + 50 others; koo_eddy2019: 12-way multi-label.")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Number of sequences [default: 10000 for koo2019, 25000 for koo_eddy2019].")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
              help="Seed of the generator.")
@click.option("--length", type=click.IntRange(min=1), default=200, show_default=True, help="Sequence length.")
@click.option("--out", type=OutputFile(), required=True, help="The NPZ file to write (atomically).")
def simulate(task: str, n: int | None, seed: int, length: int, out: Path) -> None:
    """Simulate sequences with embedded JASPAR 2016 motifs and write them with their ground truth.

    The NPZ file holds x (N, 4, L) one-hot, y, pwm_matrix (the generating matrix), mask (embedded motif
    positions), the motif records (motif_index, motif_start, motif_strand) and motif_names / motif_ids; read it
    back with robustlab.genomics.data.SimulatedDataset.load_npz.
    """
    if out.suffix.lower() in (".h5", ".hdf5"):
        raise click.BadParameter("HDF5 output is not supported; give a path ending in .npz", param_hint="'--out'")
    from robustlab.common.errors import RobustlabError
    from robustlab.genomics.data.simulate import simulate_koo2019, simulate_koo_eddy2019

    generate = simulate_koo2019 if task == "koo2019" else simulate_koo_eddy2019
    kwargs = {"seed": seed, "length": length}
    if n is not None:
        kwargs["n"] = n
    try:
        data = generate(**kwargs)
    except RobustlabError:
        raise
    except ValueError as e:  # a bad combination of options, e.g. a length too short for the motifs
        raise click.UsageError(str(e)) from None
    data.save_npz(out)
    targets = f"{int(data.y.sum())} positive" if task == "koo2019" else f"{data.y.shape[1]} targets"
    click.echo(
        f"{task}: {len(data)} sequences of length {data.length} ({targets}), {len(data.motif_names)} motifs, "
        f"{data.n_motifs.mean():.2f} embedded per sequence, seed {seed} -> {out}"
    )


_ARCHS = ("localnet", "distnet", "cnnk")
_VARIANTS = ("standard", "regularized", "noise", "regularized+noise", "adversarial", "regularized+adversarial")
_METHODS = ("saliency", "smoothgrad", "gradient_times_input", "integrated_gradients", "expected_gradients")


@genomics.command(short_help="Train a CNN with one of the six training variants of Koo et al. (resumable).")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="An NPZ data set written by `robustlab genomics simulate` (split 70/10/20 here).")
@click.option("--arch", type=click.Choice(_ARCHS), default="localnet", show_default=True, help="The network.")
@click.option("--variant", type=click.Choice(_VARIANTS), default="standard", show_default=True,
              help="standard, regularized (dropout + batch norm + L2), noise (Gaussian inputs), adversarial (PGD).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Training epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True, help="Batch size.")
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--adv-steps", type=click.IntRange(min=1), default=20, show_default=True, help="PGD steps.")
@click.option("--adv-warmup", type=click.IntRange(min=0), default=0, show_default=True,
              help="Clean epochs before adversarial training starts.")
@click.option("--seed", type=click.IntRange(0, _SEED_MAX), default=0, show_default=True,
              help="Seed of initialization and shuffling.")
@click.option("--split-seed", type=click.IntRange(0, _SEED_MAX), default=2019, show_default=True,
              help="Seed of the 70/10/20 split; use one other than the simulation's seed.")
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder for model.pt (the model file of the best epoch), the engine's checkpoints (best.pt, "
                   "last.pt), run.json and the metric logs.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last finished epoch (last.pt), with the same options.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show training progress.")
def train(data: Path, arch: str, variant: str, epochs: int, batch_size: int, lr: float, adv_steps: int,
          adv_warmup: int, seed: int, split_seed: int, device: str, out: Path, resume: bool, progress: bool) -> None:
    """Train ARCH with VARIANT on the train part of --data, report the test AUROC.

    The model keeps the weights of its lowest validation loss, or its final weights for the adversarial variants
    (the rule of the authors' code, koo-lab/uncovering_regulatory_codes at 346b36d).

    Writes --out/model.pt, a model file that `robustlab genomics attribute --model` rebuilds with no further
    options. A killed run continues with the same command plus --resume (bit-identical on the CPU); other
    options than the run's are refused, naming them.
    """
    import torch

    from robustlab.common.data.download import sha256sum
    from robustlab.common.modelfile import save_model
    from robustlab.genomics.data.simulate import SimulatedDataset
    from robustlab.genomics.training import TrainConfig, classification_metrics
    from robustlab.genomics.training import train as train_model

    ds = SimulatedDataset.load_npz(data)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, adv_steps=adv_steps,
                         adv_warmup_epochs=adv_warmup, device=device)
    options = {"data_sha256": sha256sum(data), "arch": arch, "variant": variant, "epochs": epochs,
               "batch_size": batch_size, "lr": lr, "adv_steps": adv_steps, "adv_warmup": adv_warmup, "seed": seed,
               "split_seed": split_seed}
    resuming = check_run_folder(out, "genomics train", options, resume=resume)
    if resume and not resuming:
        click.echo(f"--resume: {out} holds no run yet; starting one", err=True)
    train_ds, valid_ds, test_ds = ds.split((0.7, 0.1, 0.2), seed=split_seed)
    model, result = train_model(arch, variant, train_ds, valid_ds, config, out_dir=out, seed=seed,
                                resume=resuming, progress=progress)
    model.eval()
    dev = next(model.parameters()).device
    with torch.no_grad():
        logits = model(torch.as_tensor(test_ds.x, device=dev)).cpu()
    m = classification_metrics(logits, test_ds.y)
    save_model(model.cpu(), out / "model.pt",
               preprocessing={"input": "one-hot DNA (N, 4, length), rows A, C, G, T", "alphabet": "ACGT",
                              "length": int(ds.length)},
               metadata={"command": "genomics train", **options, "data": str(data), "best_epoch": result.best_epoch,
                         "best_val_loss": result.best_value, "kept": config.keep_for(variant),
                         "test_auroc": m["auroc"], "test_aupr": m["aupr"]})
    click.echo(f"{arch}/{variant}: {len(result.history)} epochs, best epoch {result.best_epoch} (kept: "
               f"{config.keep_for(variant)}), test AUROC "
               f"{m['auroc']:.3f}, AUPR {m['aupr']:.3f} -> {out / 'model.pt'}")


@genomics.command(short_help="Turn a training checkpoint or a plain state dict into a model file.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="best.pt/last.pt of an older `genomics train`, or a file of torch.save(model.state_dict()).")
@click.option("--arch", type=click.Choice(_ARCHS), required=True, help="The network the weights belong to.")
@click.option("--variant", type=click.Choice(_VARIANTS), required=True,
              help="The training variant (regularized models have dropout and batch norm layers).")
@click.option("--num-tasks", type=click.IntRange(min=1), default=1, show_default=True,
              help="Outputs of the network (1 for koo2019, 12 for koo_eddy2019).")
@click.option("--length", type=click.IntRange(min=1), default=200, show_default=True, help="Sequence length.")
@click.option("--out", type=OutputFile(), required=True, help="The model file to write (model.pt).")
def export(checkpoint: Path, arch: str, variant: str, num_tasks: int, length: int, out: Path) -> None:
    """Load the weights of --checkpoint into the named architecture and write it as a model file."""
    from robustlab.common.modelfile import load_state_dict_into, save_model
    from robustlab.genomics.training import build_model

    template = build_model(arch, variant, num_tasks=num_tasks, length=length)
    model = load_state_dict_into(type(template), checkpoint, args=template.model_args)
    save_model(model, out, preprocessing={"input": "one-hot DNA (N, 4, length), rows A, C, G, T",
                                          "alphabet": "ACGT", "length": length},
               metadata={"command": "genomics export", "from": str(checkpoint), "arch": arch, "variant": variant})
    click.echo(f"{arch}/{variant} with {num_tasks} output(s), length {length}: {checkpoint} -> {out}")


def _load_genomics_model(path: Path):
    """The model of a model file, or a clear error for the training checkpoints of older versions."""
    from robustlab.common.checkpoint import FORMAT, read_payload
    from robustlab.common.errors import CheckpointError
    from robustlab.common.modelfile import is_model_file, model_from_payload

    payload = read_payload(path)
    if not is_model_file(payload):
        beside = path.parent / "model.pt"
        if isinstance(payload, dict) and payload.get("format") == FORMAT and beside.is_file():
            hint = f"use {beside}, the model file written beside it"
        else:
            hint = (f"convert it once with 'robustlab genomics export --checkpoint {path} --arch ARCH --variant "
                    "VARIANT --out model.pt' (and --num-tasks/--length when they are not 1/200)")
        raise CheckpointError(f"{path} is not a model file (a training checkpoint or a plain state dict, without the "
                              f"model's class and arguments): {hint}")
    loaded = model_from_payload(payload, path)  # the file is read once
    from robustlab.genomics.models import CNNk, DistNet, LocalNet

    if not isinstance(loaded.model, (LocalNet, DistNet, CNNk)) and loaded.preprocessing.get("alphabet") != "ACGT":
        raise CheckpointError(f"{path} holds a {type(loaded.model).__name__}, not a network of one-hot DNA (its "
                              "preprocessing names no ACGT alphabet): give a model file of `genomics train`")
    return loaded


@genomics.command(short_help="Attribution maps of a trained model for a FASTA file (NPZ plus logo PNGs).")
@click.option("--model", "--checkpoint", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="model.pt written by `robustlab genomics train` (or `genomics export`).")
@click.option("--fasta", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Sequences of one length (the model's).")
@click.option("--method", type=click.Choice(_METHODS), default="saliency", show_default=True,
              help="Attribution method (signed gradients for saliency and SmoothGrad; expected gradients against "
                   "100 random one-hot sequences, as the authors' random baselines).")
@click.option("--target", type=click.IntRange(min=0), default=0, show_default=True, help="The output explained.")
@click.option("--logos", type=click.IntRange(min=0), default=4, show_default=True,
              help="Draw logos of this many first sequences (0: none).")
@click.option("--out", type=OutputDir(), required=True, help="Folder for attributions.npz and logos.png.")
def attribute(model_path: Path, fasta: Path, method: str, target: int, logos: int, out: Path) -> None:
    """Compute attribution maps (N, 4, L) of --method for the sequences of --fasta with a trained model."""
    import numpy as np
    import torch

    from robustlab.common import attribution
    from robustlab.common.errors import DataError
    from robustlab.common.io import atomic_write
    from robustlab.genomics.data.fasta import read_fasta_dataset
    from robustlab.genomics.interpret import save_logos

    loaded = _load_genomics_model(model_path)
    model = loaded.model
    seqs = read_fasta_dataset(fasta)
    n, _, length = seqs.x.shape
    expected = loaded.preprocessing.get("length")
    if expected is not None and length != expected:
        raise DataError(f"the sequences of {fasta} have length {length}; the model {model_path} takes sequences of "
                        f"length {expected}")
    with torch.no_grad():
        num_tasks = int(model(torch.as_tensor(seqs.x[:1])).shape[-1])
    if target >= num_tasks:
        raise click.BadParameter(f"{target} is not an output of {model_path}: the model has {num_tasks} "
                                 f"output{'s' if num_tasks > 1 else ''} (0 to {num_tasks - 1})",
                                 param_hint="'--target'")
    generator = torch.Generator().manual_seed(0)

    def expected_gradients():
        refs = torch.nn.functional.one_hot(torch.randint(0, 4, (100, length), generator=generator), 4)
        refs = refs.permute(0, 2, 1).float()
        eg = attribution.ExpectedGradients(model, n_samples=50, generator=generator)
        return lambda x, t: eg(x, t, baselines=refs)

    methods = {"saliency": lambda: attribution.Saliency(model, abs=False),
               "smoothgrad": lambda: attribution.SmoothGrad(model, n_samples=20, base="gradient"),
               "gradient_times_input": lambda: attribution.GradientTimesInput(model),
               "integrated_gradients": lambda: attribution.IntegratedGradients(model),
               "expected_gradients": expected_gradients}
    torch.manual_seed(0)
    explain = methods[method]()
    maps = torch.cat([explain(c, target).detach() for c in torch.as_tensor(seqs.x).split(256)]).numpy()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "attributions.npz", lambda f: np.savez_compressed(
        f, attributions=maps.astype(np.float32), x=seqs.x, ids=np.array(seqs.ids, dtype=str),
        method=np.array(method)))
    times_input = method in ("saliency", "smoothgrad")
    if logos:
        save_logos(maps, seqs.x if times_input else None, None, out / "logos.png", n=logos,
                   titles=list(seqs.ids[:logos]))
    click.echo(f"{method}: {n} maps of length {length} -> {out / 'attributions.npz'}"
               + (f", {min(logos, n)} logos -> {out / 'logos.png'}" if logos else ""))


@genomics.command(short_help="Interpretability scores of attribution maps against the ground truth.")
@click.option("--attributions", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="attributions.npz written by `robustlab genomics attribute`.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The simulated NPZ data set holding the ground truth of the same sequences, in order.")
@click.option("--positives-only/--all", default=True, show_default=True,
              help="Score only sequences with a positive first target (as the paper).")
@click.option("--rule", type=click.Choice(("koo2019", "strict")), default="koo2019", show_default=True,
              help="Motif positions: koo2019 (the authors' rule: information > 0, every position scored) or strict "
                   "(> 0.1 bit, uninformative motif columns left out).")
@click.option("--logos", type=click.IntRange(min=0), default=4, show_default=True,
              help="Draw logos of this many first scored sequences beside their true motif positions (0: none).")
@click.option("--out", type=OutputDir(), required=True, help="Folder for scores.json, auroc.png and logos.png.")
def score(attributions: Path, data: Path, positives_only: bool, rule: str, logos: int, out: Path) -> None:
    """Per-sequence AUROC/AUPR of the maps (gradient × input summed over nucleotides) against the motif mask."""
    import json

    import numpy as np

    from robustlab.common.errors import DataError
    from robustlab.common.io import atomic_write_text, read_npz
    from robustlab.genomics.data.simulate import SimulatedDataset
    from robustlab.genomics.interpret import (
        interpretability_scores,
        motif_mask,
        plot_score_distributions,
        reduce_attribution,
        save_logos,
    )

    z = read_npz(attributions, required=("attributions", "x"), what="attributions file")
    maps, x = z["attributions"], z["x"]
    method = str(z["method"]) if "method" in z else "attribution"
    if maps.shape != x.shape or maps.ndim != 3 or x.shape[1:2] != (4,):
        raise DataError(f"attributions file {attributions}: 'attributions' {maps.shape} and 'x' {x.shape} must both "
                        "have the shape (N, 4, L)")
    if not np.isfinite(maps).all():
        raise DataError(f"attributions file {attributions}: {int((~np.isfinite(maps)).sum())} attribution values "
                        "are NaN or infinite")
    ds = SimulatedDataset.load_npz(data)
    if ds.x.shape != x.shape or not np.array_equal(ds.x, x):
        raise DataError(f"the sequences of {attributions} are not those of {data} (shapes {x.shape} and "
                        f"{ds.x.shape}, or different bases)")
    how = "grad_times_input" if method in ("saliency", "smoothgrad", "attribution") else "observed"
    importance = reduce_attribution(maps, x, how=how)
    mask, keep = motif_mask(ds.pwm_matrix, rule=rule)
    rows = ds.y[:, 0] > 0.5 if positives_only else np.ones(len(ds), bool)
    if not rows.any():
        raise DataError(f"{data} holds no sequence to score (no positives; --all scores every sequence)")
    s = interpretability_scores(importance[rows], mask[rows], exclude=~keep[rows])
    out.mkdir(parents=True, exist_ok=True)
    report = {"method": method, "reduction": how, "rule": rule, "n_sequences": int(rows.sum()), "n_skipped": s["n_skipped"],
              "summary": s["summary"], "auroc": [None if np.isnan(v) else float(v) for v in s["auroc"]],
              "aupr": [None if np.isnan(v) else float(v) for v in s["aupr"]]}
    atomic_write_text(out / "scores.json", json.dumps(report, indent=1) + "\n")
    plot_score_distributions({method: s["auroc"]}, out / "auroc.png")
    if logos:
        picked = np.flatnonzero(rows)[:logos]
        save_logos(maps[picked], x[picked] if how == "grad_times_input" else None, ds.mask[picked],
                   out / "logos.png", n=len(picked),
                   titles=[f"sequence {i}: AUROC {s['auroc'][k]:.2f}" for k, i in enumerate(picked)])
    summ = s["summary"]
    click.echo(f"{method}: interpretability AUROC {summ['auroc']['mean']:.3f} ± {summ['auroc']['std']:.3f}, AUPR "
               f"{summ['aupr']['mean']:.3f} over {summ['auroc']['n']} sequences -> {out / 'scores.json'}"
               + (f", logos -> {out / 'logos.png'}" if logos else ""))


_MAP_KINDS = ("auto", "gradient", "contribution")


@genomics.command(short_help="Motifs of attribution maps with TF-MoDISco, matched to JASPAR (HTML report).")
@click.option("--attributions", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="attributions.npz written by `robustlab genomics attribute` (maps and one-hot sequences).")
@click.option("--fasta", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The sequences of the maps, in order, for an NPZ without the one-hot sequences 'x'.")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The simulated NPZ data set of the same sequences, in order: the report then says which of the "
                   "motifs embedded in them were recovered.")
@click.option("--positives-only/--all", default=True, show_default=True,
              help="With --data: use only the sequences with a positive first target (as `score`).")
@click.option("--maps", "kind", type=click.Choice(_MAP_KINDS), default="auto", show_default=True,
              help="gradient: plain gradients (saliency, SmoothGrad), given to TF-MoDISco as hypothetical "
                   "contributions with gradient x input as contributions; contribution: maps already x input; "
                   "auto: from the method the NPZ names.")
@click.option("--motifs", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A JASPAR or MEME motif file to match the patterns against, instead of a JASPAR release.")
@click.option("--jaspar-release", type=click.IntRange(2000, 2100), default=2016, show_default=True,
              help="The JASPAR release (CORE vertebrates, packaged with pyjaspar) to match against.")
@click.option("--max-seqlets", type=click.IntRange(min=1), default=2000, show_default=True,
              help="The most seqlets per metacluster (positive, negative).")
@click.option("--window", type=click.IntRange(min=1), default=20, show_default=True,
              help="Width of a seqlet's core (TF-MoDISco's sliding window).")
@click.option("--flank", type=click.IntRange(min=1), default=5, show_default=True,
              help="Bases added to each side of a seqlet's core.")
@click.option("--n-leiden", type=click.IntRange(min=1), default=2, show_default=True,
              help="Leiden clusterings (seeds) per clustering step.")
@click.option("--min-metacluster-size", type=click.IntRange(min=1), default=100, show_default=True,
              help="A metacluster is clustered only with more seqlets than this.")
@click.option("--q", "q", type=FiniteFloat(0, 1, min_open=True), default=0.05, show_default=True,
              help="q-value threshold of a significant Tomtom hit.")
@click.option("--top", type=click.IntRange(min=1), default=3, show_default=True,
              help="Tomtom hits listed per pattern.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="numba threads of TF-MoDISco and Tomtom [default: every core].")
@click.option("--out", type=OutputDir(), required=True,
              help="Folder for report.html, logos/*.png, patterns.json and modisco.h5.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="A line per stage (on stderr).")
def modisco(attributions: Path, fasta: Path | None, data: Path | None, positives_only: bool, kind: str,
            motifs: Path | None, jaspar_release: int, max_seqlets: int, window: int, flank: int, n_leiden: int,
            min_metacluster_size: int, q: float, top: int, threads: int | None, out: Path, progress: bool) -> None:
    """Discover motifs in attribution maps with TF-MoDISco (modisco-lite) and match them to JASPAR with Tomtom.

    Writes --out/report.html (a CWM logo per pattern, seqlet counts, best JASPAR hits with q-values),
    logos/<pattern>.png, patterns.json (the summary, with every pattern's PPM and CWM) and modisco.h5
    (modisco-lite's results file). Shrikumar et al. 2018, arXiv:1811.00416.
    """
    import numpy as np

    from robustlab.common.errors import DataError
    from robustlab.common.io import read_npz
    from robustlab.genomics.interpret.modisco import (
        NoPatternsError,
        maps_kind,
        match_patterns,
        run_modisco,
        write_report,
    )

    def say(line: str) -> None:
        if progress:
            click.echo(line, err=True)

    z = read_npz(attributions, required=("attributions",), what="attributions file")
    maps = z["attributions"]
    if not np.issubdtype(maps.dtype, np.number) or maps.ndim != 3 or maps.shape[1] != 4 or not len(maps):
        raise DataError(f"attributions file {attributions}: 'attributions' must be numeric maps of shape (N, 4, L), "
                        f"got {maps.dtype} {maps.shape}")
    if not np.isfinite(maps).all():
        raise DataError(f"attributions file {attributions}: {int((~np.isfinite(maps)).sum())} values of "
                        "'attributions' are NaN or infinite")
    if fasta is not None:
        from robustlab.genomics.data.fasta import read_fasta_dataset

        x, source = read_fasta_dataset(fasta).x, f"{fasta}"
    elif "x" in z:
        x, source = z["x"], f"'x' of {attributions}"
    else:
        raise DataError(f"attributions file {attributions} holds no one-hot sequences 'x' (it holds "
                        f"{', '.join(map(repr, z))}); give the sequences with --fasta")
    if not np.issubdtype(x.dtype, np.number) or x.shape != maps.shape:
        raise DataError(f"attributions file {attributions}: 'attributions' {maps.shape} and the sequences ({source}) "
                        f"{x.shape} must have the same shape (N, 4, L)")
    x = x.astype(np.float32)
    if not np.isfinite(x).all() or (x < 0).any() or (x > 1).any() or (x.sum(axis=1) > 1 + 1e-5).any():
        raise DataError(f"the sequences ({source}) are not one-hot: values must lie in [0, 1], at most 1 per position")
    n, _, length = x.shape
    if window + 2 * flank > length:
        raise click.UsageError(f"--window {window} and --flank {flank} make seqlets of {window + 2 * flank} bases, "
                               f"longer than the sequences of {attributions} ({length})")
    method = str(z["method"]) if "method" in z and z["method"].ndim == 0 else None
    if kind == "auto":
        kind = maps_kind(method)
    truth = None
    if data is not None:
        from robustlab.genomics.data.simulate import SimulatedDataset

        ds = SimulatedDataset.load_npz(data)
        if ds.x.shape != x.shape or not np.array_equal(ds.x, x):
            raise DataError(f"the sequences of {attributions} are not those of {data} (shapes {x.shape} and "
                            f"{ds.x.shape}, or different bases)")
        rows = ds.y[:, 0] > 0.5 if positives_only else np.ones(n, bool)
        if not rows.any():
            raise DataError(f"{data} holds no positive sequence (--all uses every sequence)")
        maps, x = maps[rows], x[rows]
        embedded = np.unique(ds.motif_index[rows])
        truth = sorted({ds.motif_names[i] for i in embedded[embedded >= 0]})
    if motifs is not None:
        from robustlab.genomics.data.motifs import read_motifs

        database, db_name = read_motifs(motifs), str(motifs)
    else:
        from robustlab.genomics.data.motifs import jaspar_motifs

        database, db_name = jaspar_motifs(release=jaspar_release), f"JASPAR {jaspar_release} CORE vertebrates"
    say(f"TF-MoDISco on {len(maps)} {kind} maps of length {length} ({method or 'method not recorded'}), at most "
        f"{max_seqlets} seqlets per metacluster ...")
    try:
        result = run_modisco(maps, x, kind=kind, max_seqlets=max_seqlets, window=window, flank=flank,
                             n_leiden_runs=n_leiden, min_metacluster_size=min_metacluster_size, threads=threads)
    except NoPatternsError as e:
        raise DataError(f"{attributions}: {e}") from None
    n_pos = sum(p.metacluster == "positive" for p in result.patterns)
    say(f"{len(result)} patterns ({n_pos} positive, {len(result) - n_pos} negative) in {result.seconds:.1f} s; "
        f"Tomtom against {db_name} ({len(database)} motifs) ...")
    matches = match_patterns(result, database, threads=threads)
    summary = write_report(result, matches, out, q=q, top=top, true_names=truth, database=db_name, progress=say)
    best = ", ".join(f"{r['pattern'].replace('_patterns.pattern', '')} {r['best_match']} (q {r['best_q_value']:.2g})"
                     for r in summary["patterns"][:5])
    found = (f"; recovered {len(summary['recovered'])} of the {len(truth)} embedded motifs"
             f"{': ' + ', '.join(summary['recovered']) if summary['recovered'] else ''}") if truth is not None else ""
    click.echo(f"{len(result)} TF-MoDISco patterns from {len(maps)} sequences, best hits {best}"
               f"{', ...' if len(result) > 5 else ''}{found} -> {out / 'report.html'}")


def _add_recipe_commands() -> None:
    from robustlab.common.cli import merge_command, reproduce_command

    genomics.add_command(reproduce_command(package="robustlab.genomics"))
    genomics.add_command(merge_command(package="robustlab.genomics"))


_add_recipe_commands()
