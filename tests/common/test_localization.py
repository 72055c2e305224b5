"""Tests of robustlab.common.metrics.localization: per-sample AUROC and energy of maps against masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from robustlab.common.metrics.localization import energy_in_mask, localization_auroc


def circles(n: int = 5, size: int = 16, seed: int = 0) -> np.ndarray:
    """Boolean disc masks of random centres and radii, ``(n, size, size)``."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    out = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        r, c, radius = rng.uniform(3, size - 3), rng.uniform(3, size - 3), rng.uniform(2, 4)
        out[i] = (rows - r) ** 2 + (cols - c) ** 2 <= radius**2
    return out


def noisy_maps(masks: np.ndarray, seed: int = 1, signal: float = 1.0) -> np.ndarray:
    """Maps that are higher inside the mask plus noise, with ties (rounded), ``(n, 3, size, size)``."""
    rng = np.random.default_rng(seed)
    base = signal * masks[:, None] + rng.normal(size=(len(masks), 3, *masks.shape[1:]))
    return np.round(base, 1)  # ties, to exercise the half-credit rule


def test_auroc_matches_sklearn_per_sample_with_ties_and_channels():
    masks = circles()
    maps = noisy_maps(masks)
    ours = localization_auroc(maps, masks)
    mean = maps.mean(1)
    expected = [roc_auc_score(masks[i].ravel(), mean[i].ravel()) for i in range(len(masks))]
    assert ours.shape == (len(masks),) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)
    assert (ours > 0.6).all()  # the maps carry signal: the check is not a comparison of two 0.5s
    # (N, H, W) maps and tensors give the same scores
    np.testing.assert_allclose(localization_auroc(torch.from_numpy(mean), torch.from_numpy(masks)), ours,
                               atol=1e-12)


def test_auroc_extremes_and_undefined_samples():
    masks = circles(n=4)
    masks[2] = False  # a normal image: no lesion
    masks[3] = True
    perfect = masks.astype(float) * 2.0 - 1.0
    out = localization_auroc(perfect, masks)
    assert out[0] == 1.0 and out[1] == 1.0 and np.isnan(out[2]) and np.isnan(out[3])
    assert localization_auroc(-perfect[:2], masks[:2]).tolist() == [0.0, 0.0]
    assert localization_auroc(np.zeros((2, 16, 16)), masks[:2]).tolist() == [0.5, 0.5]  # constant map: chance
    assert np.array_equal(localization_auroc(perfect, masks.astype(np.uint8)), out, equal_nan=True)


def test_energy_in_mask():
    masks = circles(n=4)
    masks[3] = False
    area = masks.reshape(4, -1).mean(1)
    ones = np.ones((4, 16, 16))
    out = energy_in_mask(ones, masks)
    np.testing.assert_allclose(out[:3], area[:3], atol=1e-12)  # constant map: the mask's area fraction
    assert np.isnan(out[3])  # empty mask
    inside = np.where(masks, 1.0, -5.0)  # negative mass outside is clipped away
    assert energy_in_mask(inside, masks)[:3].tolist() == [1.0, 1.0, 1.0]
    # 1 on each mask pixel, a total of 1 spread over the outside: the share is k / (k + 1), k the mask's area
    outside = 1.0 / (~masks).reshape(4, -1).sum(1)[:, None, None]
    spread = np.where(masks, 1.0, outside)
    k = masks.reshape(4, -1).sum(1)
    np.testing.assert_allclose(energy_in_mask(spread, masks)[:3], (k / (k + 1.0))[:3], atol=1e-12)
    assert np.isnan(energy_in_mask(-ones, masks)).all()  # no positive mass anywhere
    # channels averaged before clipping
    two = np.stack([ones, -ones + 2 * masks], axis=1)  # mean: masks (1 inside, 0 outside)
    assert energy_in_mask(two, masks)[:3].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("maps", "masks", "match"),
    [
        (np.zeros((2, 8, 8)), np.zeros((2, 8, 7), bool), r"maps of shape \(2, 8, 8\) do not fit masks"),
        (np.zeros((2, 8, 8)), np.full((2, 8, 8), 2), "masks must be boolean"),
        (np.full((2, 8, 8), np.nan), np.zeros((2, 8, 8), bool), "first in sample 0"),
        (np.zeros(8), np.zeros(8, bool), r"masks must have shape \(N, H, W\)"),
        (np.zeros((0, 8, 8)), np.zeros((0, 8, 8), bool), "empty"),
    ],
)
@pytest.mark.parametrize("fn", [localization_auroc, energy_in_mask])
def test_bad_input_is_a_clear_value_error(fn, maps, masks, match):
    with pytest.raises(ValueError, match=match):
        fn(maps, masks)
