"""robustlab.common: the shared robust-training core.

Subpackages are imported on demand (``from robustlab.common.attacks import PGD``); importing this package
does nothing else: no folders are created and nothing is downloaded.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustlab-common")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
