"""Data for robustlab.ecg: WFDB records and annotations, MIT-BIH beats, PhysioNet/CinC 2021 12-lead records.

- ``records``: :func:`read_record`, :func:`read_annotations`, :func:`find_records` with checks that name the
  record at fault (missing or truncated signal files, unknown leads, annotations of another record).
- ``mitdb``: R-peak-centred beat windows of the MIT-BIH Arrhythmia Database with their AAMI EC57 class and RR
  features, the de Chazal DS1/DS2 split, a cache keyed by the parameters (:func:`load_beats`).
- ``cinc2021``: the Challenge 2021 record-level multi-label task (:func:`load_cinc2021`).

Importing this package loads NumPy only; wfdb, SciPy and torch load when a function needs them.
"""

from robustlab.ecg.data.cinc2021 import (
    EQUIVALENT_CLASSES,
    STANDARD_LEADS,
    MultiLabelSet,
    cinc2021_path,
    load_cinc2021,
    read_dx_mapping,
)
from robustlab.ecg.data.mitdb import (
    AAMI_CLASSES,
    AAMI_SYMBOLS,
    AFTER,
    BEFORE,
    DS1,
    DS2,
    FS,
    PACED,
    RR_FEATURES,
    BeatSet,
    extract_beats,
    load_beats,
    mitdb_path,
    rr_features,
    split_records,
)
from robustlab.ecg.data.records import Annotations, Record, find_records, read_annotations, read_record

__all__ = [
    "AAMI_CLASSES",
    "AAMI_SYMBOLS",
    "AFTER",
    "BEFORE",
    "DS1",
    "DS2",
    "EQUIVALENT_CLASSES",
    "FS",
    "PACED",
    "RR_FEATURES",
    "STANDARD_LEADS",
    "Annotations",
    "BeatSet",
    "MultiLabelSet",
    "Record",
    "cinc2021_path",
    "extract_beats",
    "find_records",
    "load_beats",
    "load_cinc2021",
    "mitdb_path",
    "read_annotations",
    "read_dx_mapping",
    "read_record",
    "rr_features",
    "split_records",
]
