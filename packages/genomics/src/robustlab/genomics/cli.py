"""The ``robustlab genomics`` command group (registered through the ``robustlab.cli`` entry point).

Imports nothing heavy at module level: torch, numpy and Biopython load inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["genomics"]

_TASKS = ("koo2019", "koo_eddy2019")


@click.group(short_help="Robust CNNs on DNA and the interpretability of their attribution maps.")
def genomics() -> None:
    """Robust CNNs on DNA sequences and how interpretable their attribution maps are (Koo et al. 2019)."""


@genomics.command(short_help="Simulate a synthetic data set with ground truth (NPZ).")
@click.option("--task", type=click.Choice(_TASKS), required=True,
              help="koo2019: binary, core motifs vs core + 50 others; koo_eddy2019: 12-way multi-label.")
@click.option("--n", "n", type=click.IntRange(min=1), default=None,
              help="Number of sequences [default: 10000 for koo2019, 25000 for koo_eddy2019].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the generator.")
@click.option("--length", type=click.IntRange(min=1), default=200, show_default=True, help="Sequence length.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), required=True,
              help="The NPZ file to write (atomically).")
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
    try:
        data.save_npz(out)
    except OSError as e:
        raise click.ClickException(f"cannot write {out}: {e}") from None
    targets = f"{int(data.y.sum())} positive" if task == "koo2019" else f"{data.y.shape[1]} targets"
    click.echo(
        f"{task}: {len(data)} sequences of length {data.length} ({targets}), {len(data.motif_names)} motifs, "
        f"{data.n_motifs.mean():.2f} embedded per sequence, seed {seed} -> {out}"
    )
