"""Data for robustlab.vision: MNIST and Fashion-MNIST from their IDX files.

- ``images``: :data:`DATASETS` (the corpora: mirrors, content hashes, classes, mean and std, citation),
  :func:`dataset_path` (a named folder, ``$ROBUSTLAB_MNIST`` / ``$ROBUSTLAB_FASHION_MNIST``, or the cache filled by a
  checked download), :func:`load_images` (uint8 images and int64 labels of a split), :func:`to_tensor` (normalised
  float32 ``(N, 1, 28, 28)``), :func:`check_files` (a folder against the published content).

Importing this package loads NumPy only.
"""

from robustlab.vision.data.images import (
    DATASETS,
    MEAN_STD,
    SPLITS,
    ImageCorpus,
    check_files,
    dataset_path,
    load_images,
    to_tensor,
)

__all__ = ["DATASETS", "MEAN_STD", "SPLITS", "ImageCorpus", "check_files", "dataset_path", "load_images",
           "to_tensor"]
