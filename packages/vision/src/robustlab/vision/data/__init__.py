"""Data for robustlab.vision: MNIST and Fashion-MNIST from their IDX files; mammograms (mini-MIAS, or any folder of
images with a labels CSV) and their patches.

- ``images``: :data:`DATASETS` (the corpora: mirrors, content hashes, classes, mean and std, citation),
  :func:`dataset_path` (a named folder, ``$ROBUSTLAB_MNIST`` / ``$ROBUSTLAB_FASHION_MNIST``, or the cache filled by a
  checked download), :func:`load_images` (uint8 images and int64 labels of a split), :func:`to_tensor` (normalised
  float32 ``(N, 1, 28, 28)``), :func:`load_unit` (a seeded subset in ``[0, 1]``,
  the scale of attack budgets), :func:`check_files` (a folder against the published content).
- ``mammograms``: :func:`load_mias` (the folder the user downloaded, or ``$ROBUSTLAB_MINI_MIAS``: never shipped nor
  downloaded), :func:`parse_info`, :func:`read_pgm`, :func:`read_image_folder` (images + labels CSV),
  :class:`ImageRecord`, :class:`Lesion`, :func:`breast_mask`, :func:`lesion_mask`.
- ``patches``: :func:`extract_patches` (lesion-centred and normal-tissue crops) into a :class:`PatchSet`,
  :func:`patient_folds` and :func:`subsample_patients` (splits by patient).

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
    load_unit,
    to_tensor,
)
from robustlab.vision.data.mammograms import (
    ImageRecord,
    Lesion,
    breast_mask,
    lesion_mask,
    load_mias,
    parse_info,
    read_image_folder,
    read_pgm,
)
from robustlab.vision.data.patches import PatchSet, extract_patches, patient_folds, subsample_patients

__all__ = ["DATASETS", "MEAN_STD", "SPLITS", "ImageCorpus", "ImageRecord", "Lesion", "PatchSet", "breast_mask",
           "check_files", "dataset_path", "extract_patches", "lesion_mask", "load_images", "load_mias", "load_unit",
           "parse_info", "patient_folds", "read_image_folder", "read_pgm", "subsample_patients", "to_tensor"]
