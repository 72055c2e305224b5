"""robustlab.seismic: seismic event classification with semi-supervised learning.

Subpackages: ``data`` (trace folders with a labels CSV and the SeisBench WaveformDataset layout, each indexed by a
pandas metadata frame; the Pacific Northwest earthquake/explosion and IPOC source-region corpora), ``models`` (a 1D
CNN on waveforms, a 2D CNN on spectrograms); modules ``preprocessing`` (the ObsPy chain with a report of what was
dropped), ``spectrogram`` (STFT and log-mel as ``nn.Module``), ``features`` (waveform, noise and station baselines),
``training`` (supervised and semi-supervised training through the core), ``evaluation`` (trace and event metrics,
out-of-distribution score), ``pipeline`` (``predict`` on any folder of miniSEED/SAC files). Importing does nothing
else.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab-seismic")
except PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = ["__version__"]
