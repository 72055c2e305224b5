"""robustlab.vision: image classification under label noise, on MNIST and Fashion-MNIST.

Subpackages: ``data`` (MNIST and Fashion-MNIST from their IDX files: a local folder, or the robustlab cache filled
by a checked download), ``models`` (the CIFAR-style ResNet-32 of He et al. and the WideResNet-40-2 of Zagoruyko &
Komodakis, each with a named embedding layer, and :func:`~robustlab.vision.models.build_model`), ``recipes``
(registered paper tables); module ``cli`` (``robustlab vision find-noisy``: confident learning on predicted
probabilities, or LDCE's label distribution on embeddings with a trusted subset). Importing does nothing else.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab-vision")
except PackageNotFoundError:
    __version__ = "0+unknown"

__all__ = ["__version__"]
