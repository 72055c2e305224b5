"""Tests of robustlab.vision.mammography: training with real, classic and synthetic patches, the scores (accuracy,
noise, PGD, Grad-CAM localization against lesion masks) and the GAN quality summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustlab.common.errors import ConfigError, DataError
from robustlab.vision.augmentation import ClassicAugment
from robustlab.vision.mammography import (
    embed,
    evaluate_patch_classifier,
    gan_quality,
    synthetic_counts,
    to_unit,
    train_patch_classifier,
)


def blobs(n: int, side: int = 16, seed: int = 0):
    """Grey noise patches; class 1 has a bright disc somewhere, its mask the disc; class 0 has none."""
    rng = np.random.default_rng(seed)
    x = rng.integers(60, 120, size=(n, side, side)).astype(np.uint8)
    y = np.arange(n) % 2
    masks = np.zeros((n, side, side), bool)
    yy, xx = np.mgrid[:side, :side]
    for i in np.flatnonzero(y == 1):
        cy, cx = rng.integers(4, side - 4, size=2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 9
        x[i][disc] = 230
        masks[i] = disc
    return x, y, masks


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    x, y, _ = blobs(96, side=32)
    return train_patch_classifier(x, y, steps=60, batch_size=16, width=4, lr=3e-3, seed=0)


def test_to_unit_scales_and_checks():
    out = to_unit(np.full((2, 8, 8), 255, np.uint8))
    assert out.shape == (2, 1, 8, 8) and out.dtype == torch.float32 and float(out.max()) == 1.0
    with pytest.raises(DataError, match="uint8"):
        to_unit(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(DataError, match="shape"):
        to_unit(np.zeros((2, 3, 8, 8), np.uint8))


def test_synthetic_counts_keep_the_class_shares():
    assert synthetic_counts([0] * 30 + [1] * 10, 2.0, 2).tolist() == [60, 20]
    assert synthetic_counts([1, 1], 1.0, 3).tolist() == [0, 2, 0]
    with pytest.raises(ConfigError, match="ratio"):
        synthetic_counts([0, 1], -1.0, 2)


def test_a_trained_classifier_separates_and_looks_at_the_lesion(trained):
    x, y, masks = blobs(64, side=32, seed=1)
    scores = evaluate_patch_classifier(trained, x, y, masks=masks, pgd_steps=3, cam_samples=4, seed=0)
    assert scores["auroc"] > 0.95 and scores["balanced_accuracy"] > 0.85
    # the Grad-CAM and Smooth Grad-CAM++ maps of the disc patches peak on the disc
    assert scores["gradcam_auroc"] > 0.7 and scores["sgcampp_auroc"] > 0.7
    assert len(scores["gradcam_items"]) == int(y.sum()) and len(scores["correct"]) == len(y)
    assert 0 <= scores["pgd_balanced_accuracy"] <= scores["balanced_accuracy"] + 1e-9
    # a stronger attack does not help the classifier
    strong = evaluate_patch_classifier(trained, x, y, masks=masks, pgd_eps=16 / 255, pgd_steps=5, seed=0)
    assert strong["pgd_balanced_accuracy"] <= scores["pgd_balanced_accuracy"] + 1e-9
    # seeded: the same call gives the same numbers
    again = evaluate_patch_classifier(trained, x, y, masks=masks, pgd_steps=3, cam_samples=4, seed=0)
    assert again == scores


def test_without_masks_the_localization_is_nan(trained):
    x, y, _ = blobs(8, side=32, seed=2)
    scores = evaluate_patch_classifier(trained, x, y, pgd_steps=1)
    assert math.isnan(scores["gradcam_auroc"]) and scores["gradcam_items"] == []
    with pytest.raises(DataError, match="masks"):
        evaluate_patch_classifier(trained, x, y, masks=np.zeros((8, 4, 4), bool))


def test_training_is_seeded_and_synthetic_patches_are_appended():
    torch.set_num_threads(1)
    x, y, _ = blobs(32)
    a = train_patch_classifier(x, y, steps=4, batch_size=8, width=2, seed=5)
    b = train_patch_classifier(x, y, steps=4, batch_size=8, width=2, seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    aug = train_patch_classifier(x, y, steps=4, batch_size=8, width=2, seed=5, augment=ClassicAugment())
    assert not torch.equal(aug.head[1].weight, a.head[1].weight)
    syn = train_patch_classifier(x, y, steps=4, batch_size=8, width=2, seed=5, synthetic=(x[:8], y[:8]))
    assert not torch.equal(syn.head[1].weight, a.head[1].weight)
    with pytest.raises(DataError, match="synthetic"):
        train_patch_classifier(x, y, steps=1, width=2, synthetic=(x[:4, :8, :8], y[:4]))
    with pytest.raises(DataError, match="labels"):
        train_patch_classifier(x, y[:-1], steps=1, width=2)
    with pytest.raises(DataError, match="classes"):
        train_patch_classifier(x, y + 1, steps=1, width=2)


def test_gan_quality_flags_copies_and_not_fresh_samples(trained):
    x, y, _ = blobs(80, side=32, seed=3)
    train, test = x[:40], x[40:]
    copies = gan_quality(trained, train, test, train[:20].copy())
    assert copies["copy_share"] == 1.0 and copies["nn_ratio"] == 0.0
    fresh = gan_quality(trained, train, test, blobs(20, side=32, seed=9)[0])
    assert fresh["copy_share"] < 0.5 and fresh["nn_ratio"] > 0.5
    assert fresh["fd_real"] >= 0 and 0 <= fresh["precision"] <= 1 and 0 <= fresh["recall"] <= 1
    assert embed(trained, train).shape == (40, trained.embedding_dim)
