"""robustlab.ecg: arrhythmia classification from WFDB records with multi-resolution representations.

Subpackages: ``data`` (WFDB records and annotations, MIT-BIH beats with the AAMI classes and the de Chazal
inter-patient split, the PhysioNet/CinC 2021 12-lead records), ``models`` (the four channel models and the
multi-resolution representation); modules ``preprocessing`` (filters as ``nn.Module``), ``features`` (hand-crafted
beat features), ``perturb`` (realistic noise at a stated SNR), ``evaluation`` (AAMI EC57 metrics). Importing does
nothing else.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab-ecg")
except PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = ["__version__"]
