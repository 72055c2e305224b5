"""Localization scores of attribution maps against ground-truth masks (numpy arrays or tensors), one per sample.

Each image is its own problem: its pixels are the samples, the mask (e.g. a lesion circle) the labels and the
map (e.g. a Grad-CAM heat map upsampled to the image) the scores. :func:`localization_auroc` asks whether the
map ranks the pixels inside the mask above those outside (the ground-truth interpretability score of the
genomics package, per image); :func:`energy_in_mask` asks what share of the map's positive mass falls inside the
mask (Score-CAM's energy-based pointing game). Samples where a score is undefined get NaN, so that a batch
mixing normal images (no lesion) and abnormal ones can be scored at once and summarized with ``np.nanmean``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy
from robustlab.common.metrics.classification import _binary_auroc

__all__ = ["localization_auroc", "energy_in_mask"]


def localization_auroc(maps: Any, masks: Any) -> np.ndarray:
    """Per-sample AUROC of the map's pixel values against the mask: how well the map ranks the mask's pixels first.

    The AUROC of sample ``n`` is the probability that a random pixel inside ``masks[n]`` has a higher map value
    than a random pixel outside it, ties counting one half (the rank formula of
    :func:`robustlab.common.metrics.auroc`; equal to scikit-learn's ``roc_auc_score(masks[n].ravel(),
    maps[n].ravel())``). 0.5 is chance, 1 a map that separates the mask perfectly. A map constant over the image
    scores 0.5. A sample whose mask is all True or all False (e.g. a normal image) has no AUROC: NaN.

    Args:
        maps: attribution maps, higher = more important; channels (dim 1) are averaged when ``maps`` has one
            dimension more than ``masks``. Must be finite.
        masks: ground truth, True inside the region (bool, or 0/1 integers).

    Returns:
        ``(N,)`` float64 array, NaN where undefined.

    Raises:
        ValueError: shapes do not fit, the mask is not binary, or a map holds NaN or infinite values (the
            message names the first such sample).

    Shape:
        maps: ``(N, H, W)`` or ``(N, C, H, W)`` (any spatial rank: ``(N, *S)`` or ``(N, C, *S)``); masks:
        ``(N, H, W)`` (``(N, *S)``).

    Reference:
        Hanley, J. A. and McNeil, B. J. "The meaning and use of the area under a receiver operating
        characteristic (ROC) curve", Radiology 1982.
    """
    m, k = _maps_and_masks(maps, masks)
    out = np.full(len(m), np.nan)
    for i in range(len(m)):
        positives = int(k[i].sum())
        if 0 < positives < k.shape[1]:
            out[i] = _binary_auroc(k[i].astype(np.int64), m[i])
    return out


def energy_in_mask(maps: Any, masks: Any) -> np.ndarray:
    """Per-sample share of the map's positive mass that lies inside the mask (energy-based pointing game).

    ``sum_{p in mask} max(L_p, 0) / sum_p max(L_p, 0)`` for each sample: 1 when all the positive attribution
    falls in the mask, the mask's area fraction for a constant positive map. Wang et al. score ReLU'd Grad-CAM /
    Score-CAM maps, which are nonnegative; negative values are clipped here so that signed maps have the same
    meaning. Undefined (NaN) where the mask is empty (nothing to point at, e.g. a normal image) or the map has no
    positive mass.

    Args:
        maps: attribution maps; channels (dim 1) are averaged when ``maps`` has one dimension more than
            ``masks``. Must be finite.
        masks: ground truth, True inside the region (bool, or 0/1 integers).

    Returns:
        ``(N,)`` float64 array in [0, 1], NaN where undefined.

    Raises:
        ValueError: as :func:`localization_auroc`.

    Shape:
        maps: ``(N, H, W)`` or ``(N, C, H, W)`` (any spatial rank); masks: ``(N, H, W)``.

    Reference:
        Wang, H., Wang, Z., Du, M., Yang, F., Zhang, Z., Ding, S., Mardziel, P., Hu, X. "Score-CAM: Score-Weighted
        Visual Explanations for Convolutional Neural Networks", CVPR Workshops 2020.
    """
    m, k = _maps_and_masks(maps, masks)
    positive = np.clip(m, 0.0, None)
    total = positive.sum(1)
    inside = np.where(k, positive, 0.0).sum(1)
    out = np.full(len(m), np.nan)
    defined = (total > 0) & k.any(1)
    out[defined] = inside[defined] / total[defined]
    return out


def _maps_and_masks(maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(N, P)`` float64 maps (channels averaged) and ``(N, P)`` bool masks, after the shape and value checks."""
    m = to_numpy(maps)
    k = to_numpy(masks)
    if k.ndim < 2:
        raise ValueError(f"masks must have shape (N, H, W) (or (N, *spatial)), got shape {k.shape}")
    if m.ndim == k.ndim + 1:
        m = m.astype(np.float64).mean(1)
    if m.shape != k.shape:
        raise ValueError(
            f"maps of shape {to_numpy(maps).shape} do not fit masks of shape {k.shape}: expected maps {k.shape} "
            f"or (N, C, *{k.shape[1:]}) (channels are averaged)"
        )
    if len(k) == 0:
        raise ValueError("maps and masks are empty")
    if k.dtype != bool:
        if not (np.issubdtype(k.dtype, np.integer) or np.issubdtype(k.dtype, np.floating)) or not np.isin(
            k, (0, 1)
        ).all():
            raise ValueError(f"masks must be boolean (or 0/1), got dtype {k.dtype} with values "
                             f"{np.unique(k)[:5].tolist()}")
        k = k.astype(bool)
    m = m.astype(np.float64, copy=False).reshape(len(m), -1)
    finite = np.isfinite(m).all(1)
    if not finite.all():
        raise ValueError(f"maps hold NaN or infinite values (first in sample {int(np.flatnonzero(~finite)[0])})")
    return m, k.reshape(len(k), -1)
