"""Small reference models shared by tests, benchmarks and toy recipes; domain models live in their packages."""

from robustlab.common.models.autoencoder import Autoencoder
from robustlab.common.models.mlp import MLP
from robustlab.common.models.small_cnn import SmallCNN

__all__ = ["Autoencoder", "MLP", "SmallCNN"]
