"""Tests of robustlab.vision.augmentation: classic augmentation is label-preserving, bounded and seeded."""

from __future__ import annotations

import pytest
import torch

from robustlab.common.data import ArrayDataset
from robustlab.common.errors import ConfigError
from robustlab.vision.augmentation import AugmentedDataset, ClassicAugment, _dihedral


def test_dihedral_codes_are_the_eight_symmetries_of_the_square():
    x = torch.arange(16.0).reshape(1, 4, 4)
    images = {tuple(_dihedral(x, c).flatten().tolist()) for c in range(8)}
    assert len(images) == 8
    assert torch.equal(_dihedral(x, 0), x)
    assert torch.equal(_dihedral(x, 4), torch.flip(x, dims=(-1,)))


def test_identity_settings_return_the_input():
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    same = ClassicAugment(flips=False, max_rotation=0.0, gamma=1.0, contrast=0.0, brightness=0.0)
    assert torch.equal(same(x), x)


def test_output_is_bounded_shaped_and_seeded():
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    aug = ClassicAugment()
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, x)


def test_flips_only_preserve_the_pixel_multiset():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    out = ClassicAugment(max_rotation=0.0, gamma=1.0, contrast=0.0, brightness=0.0)(x, torch.Generator().manual_seed(0))
    for a, b in zip(out, x):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)


def test_rotation_keeps_a_centred_blob_centred():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((yy - 15.5) ** 2 + (xx - 15.5) ** 2) / 20).reshape(1, 1, 32, 32).repeat(8, 1, 1, 1)
    out = ClassicAugment(flips=False, max_rotation=30.0, gamma=1.0, contrast=0.0, brightness=0.0)(
        blob, torch.Generator().manual_seed(0))
    assert (out - blob).abs().max() < 0.05  # a rotation about the centre leaves an isotropic blob nearly unchanged


@pytest.mark.parametrize("kwargs, match", [({"max_rotation": -1}, "max_rotation"), ({"gamma": 0.5}, "gamma"),
                                           ({"contrast": 1.0}, "contrast"), ({"brightness": 2}, "brightness")])
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ClassicAugment(**kwargs)


def test_non_square_batches_are_refused():
    with pytest.raises(ConfigError, match="square"):
        ClassicAugment()(torch.rand(2, 1, 8, 6))


def test_augmented_dataset_draws_afresh_at_every_access():
    base = ArrayDataset(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
    data = AugmentedDataset(base, ClassicAugment())
    torch.manual_seed(0)
    first, second = data[1], data[1]
    assert first["y"] == 1 and first["x"].shape == (1, 8, 8)
    assert not torch.equal(first["x"], second["x"])
    assert len(data) == 4
