"""Data for robustlab.genomics: one-hot DNA, transcription-factor motifs, simulated data sets, FASTA readers.

- ``onehot``: strings to ``(N, 4, L)`` float32 arrays (channels A, C, G, T) with a documented IUPAC policy.
- ``motifs``: the ``Motif`` record, JASPAR/MEME readers, JASPAR releases from pyjaspar or the JASPAR site.
- ``simulate``: the koo2019 and koo_eddy2019 synthetic data sets with their ground truth.
- ``fasta``: FASTA plus labels (CSV/TSV by id, or BED intervals on a genome) as one-hot arrays.

Importing this package loads NumPy only; Biopython, pyjaspar and torch load when a function needs them.
"""

from robustlab.genomics.data.fasta import SequenceDataset, read_bed_dataset, read_fasta_dataset
from robustlab.genomics.data.motifs import (
    JASPAR_URLS,
    KOO2019_CORE_MOTIFS,
    KOO_EDDY2019_MOTIFS,
    Motif,
    fetch_jaspar,
    jaspar_motifs,
    read_motifs,
)
from robustlab.genomics.data.onehot import ALPHABET, decode, one_hot
from robustlab.genomics.data.simulate import (
    KOO2019_MOTIF_COUNTS,
    KOO_EDDY2019_MOTIF_COUNTS,
    SimulatedDataset,
    koo2019_other_motifs,
    simulate_koo2019,
    simulate_koo_eddy2019,
)

__all__ = [
    "ALPHABET",
    "JASPAR_URLS",
    "KOO2019_CORE_MOTIFS",
    "KOO2019_MOTIF_COUNTS",
    "KOO_EDDY2019_MOTIFS",
    "KOO_EDDY2019_MOTIF_COUNTS",
    "Motif",
    "SequenceDataset",
    "SimulatedDataset",
    "decode",
    "fetch_jaspar",
    "jaspar_motifs",
    "koo2019_other_motifs",
    "one_hot",
    "read_bed_dataset",
    "read_fasta_dataset",
    "read_motifs",
    "simulate_koo2019",
    "simulate_koo_eddy2019",
]
