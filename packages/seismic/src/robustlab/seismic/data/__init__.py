"""Data for robustlab.seismic: trace folders and SeisBench WaveformDatasets, each indexed by a pandas frame; the
Pacific Northwest earthquake/explosion and IPOC source-region corpora as preprocessed trace sets.

- ``traces``: :func:`index_folder` (a folder of miniSEED/SAC files plus a labels CSV, headers only) and
  :func:`read_trace` (one trace id of a file, segments merged by the gap policy).
- ``seisbench``: :class:`WaveformDataset` (metadata CSV + HDF5 buckets, read with h5py).
- ``pnw``: :func:`load_pnw` (labelled + unreviewed traces, cached), :func:`pnw_path` (local copy or download),
  the labels, the unreviewed list and the folds.
- ``ipoc``: :func:`load_ipoc` (200 three-component traces of CX.PB01, five source-region classes).

Importing this package loads NumPy only; ObsPy, pandas, SciPy and h5py load when data is read.
"""

from robustlab.seismic.data.ipoc import IPOC_CLASSES, IPOC_CONFIG, ipoc_path, load_ipoc
from robustlab.seismic.data.pnw import (
    CLASSES,
    fold_split,
    load_pnw,
    pnw_path,
    read_folds,
    read_labels,
    read_unlabelled,
)
from robustlab.seismic.data.seisbench import WaveformDataset
from robustlab.seismic.data.traces import index_folder, read_trace

__all__ = ["CLASSES", "IPOC_CLASSES", "IPOC_CONFIG", "WaveformDataset", "fold_split", "index_folder", "ipoc_path",
           "load_ipoc", "load_pnw", "pnw_path", "read_folds", "read_labels", "read_trace", "read_unlabelled"]
