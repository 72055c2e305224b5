"""robustlab.genomics: robust CNNs on DNA and how interpretable their attribution maps are.

Subpackages: ``data`` (motifs, one-hot encoding, FASTA readers, simulated datasets with ground truth),
``models`` (the shallow, deep and CNN-k networks), ``interpret`` (interpretability scores, filter-motif matching,
logos). Importing does nothing else.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab-genomics")
except PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = ["__version__"]
