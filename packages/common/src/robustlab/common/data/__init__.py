"""Data utilities: the data/cache folder, batch-dict datasets, grouped splits, verified downloads and file readers.

Corpus readers live in the domain packages; this subpackage holds what they share.
"""

from robustlab.common.data.datasets import ArrayDataset, CycledDataset
from robustlab.common.data.download import download
from robustlab.common.data.idx import read_idx
from robustlab.common.data.paths import ENV_VAR, data_dir
from robustlab.common.data.splits import group_split

__all__ = ["ArrayDataset", "CycledDataset", "ENV_VAR", "data_dir", "download", "group_split", "read_idx"]
