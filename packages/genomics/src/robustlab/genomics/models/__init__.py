"""The genomics CNNs, one file per architecture, each class named as in its paper and carrying ``citation``.

Every model maps one-hot DNA ``(N, 4, length)`` to logits ``(N, num_tasks)`` and takes ``num_tasks``,
``length``, ``dropout`` and ``batch_norm``, so the regularized training variant is a constructor flag. The first
convolution is always the submodule ``conv1`` and its activation ``act1`` (see
:func:`robustlab.genomics.interpret.filters.first_layer_activations`).
"""

from robustlab.genomics.models.cnnk import CNNk
from robustlab.genomics.models.distnet import DistNet
from robustlab.genomics.models.localnet import LocalNet

__all__ = ["LocalNet", "DistNet", "CNNk"]
