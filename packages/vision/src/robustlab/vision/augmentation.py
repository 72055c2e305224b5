"""Classic augmentation of grey image patches: flips, rotations and intensity changes, drawn afresh every epoch.

The baseline that GAN augmentation has to beat in ``robustlab vision train`` and the recipe
``gopal_gan_augmentation``. Works on float batches in ``[0, 1]`` on any device; the random draws
come from the generator given (or torch's global stream, which :func:`robustlab.common.recipes.seed_everything`
seeds), so a seeded run is repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

from robustlab.common.errors import ConfigError

__all__ = ["ClassicAugment", "AugmentedDataset"]


@dataclass(frozen=True)
class ClassicAugment:
    """Random dihedral transform, small rotation, gamma, contrast and brightness, per sample.

    Mammogram patches have no preferred orientation (left and right breasts, craniocaudal and mediolateral
    views), so all eight flips/quarter turns are label-preserving; the small rotation (bilinear, reflected at the
    border so that no black corners appear) and the intensity changes mimic positioning and exposure.

    Args:
        flips: apply one of the 8 dihedral transforms (flips and quarter turns), uniformly.
        max_rotation: a further rotation uniform in ``[-max_rotation, max_rotation]`` degrees; 0 turns it off.
        gamma: ``x ** g`` with ``log g`` uniform in ``[-log gamma, log gamma]``; 1 turns it off.
        contrast: scale the deviation from the patch mean by a factor uniform in ``[1 - contrast, 1 + contrast]``.
        brightness: add a shift uniform in ``[-brightness, brightness]``.

    Shape:
        ``(N, C, H, W)`` floats in ``[0, 1]`` with ``H == W`` (quarter turns), returned alike, clamped to
        ``[0, 1]``.
    """

    flips: bool = True
    max_rotation: float = 15.0
    gamma: float = 1.25
    contrast: float = 0.1
    brightness: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_rotation <= 180.0:
            raise ConfigError(f"max_rotation must be in [0, 180] degrees, got {self.max_rotation}")
        if not self.gamma >= 1.0:
            raise ConfigError(f"gamma must be >= 1 (1 turns it off), got {self.gamma}")
        if not 0.0 <= self.contrast < 1.0:
            raise ConfigError(f"contrast must be in [0, 1), got {self.contrast}")
        if not 0.0 <= self.brightness <= 1.0:
            raise ConfigError(f"brightness must be in [0, 1], got {self.brightness}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
            raise ConfigError(f"ClassicAugment takes square (N, C, H, W) batches, got shape {tuple(x.shape)}")
        n = len(x)

        def uniform(lo: float, hi: float) -> Tensor:
            return torch.rand(n, generator=generator).mul_(hi - lo).add_(lo).to(x.device)

        out = x
        if self.flips:
            codes = torch.randint(8, (n,), generator=generator).tolist()
            out = torch.stack([_dihedral(s, c) for s, c in zip(out, codes)])
        if self.max_rotation > 0:
            angle = uniform(-self.max_rotation, self.max_rotation) * (math.pi / 180.0)
            cos, sin = torch.cos(angle), torch.sin(angle)
            zero = torch.zeros_like(cos)
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            grid = F.affine_grid(theta.to(out.dtype), list(out.shape), align_corners=False)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        view = (n,) + (1,) * (x.ndim - 1)
        if self.gamma > 1.0:
            g = torch.exp(uniform(-math.log(self.gamma), math.log(self.gamma))).view(view)
            out = out.clamp(0.0, 1.0).pow(g)
        if self.contrast > 0:
            c = uniform(1.0 - self.contrast, 1.0 + self.contrast).view(view)
            mean = out.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
            out = (out - mean) * c + mean
        if self.brightness > 0:
            out = out + uniform(-self.brightness, self.brightness).view(view)
        return out.clamp(0.0, 1.0)


def _dihedral(x: Tensor, code: int) -> Tensor:
    """One of the 8 symmetries of the square: ``code % 4`` quarter turns, then a left-right flip if ``code >= 4``."""
    out = torch.rot90(x, code % 4, dims=(-2, -1))
    return torch.flip(out, dims=(-1,)) if code >= 4 else out


class AugmentedDataset(Dataset):
    """A dataset of batch dicts whose ``"x"`` is augmented afresh at every access (one sample at a time).

    Args:
        base: a dataset of dicts with ``"x"`` ``(C, H, W)`` floats in ``[0, 1]`` (e.g.
            :class:`~robustlab.common.data.ArrayDataset`).
        augment: the transform, called on a batch of one.
    """

    def __init__(self, base: Dataset, augment: ClassicAugment) -> None:
        self.base = base
        self.augment = augment

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i) -> dict:
        sample = dict(self.base[i])
        sample["x"] = self.augment(sample["x"].unsqueeze(0))[0]
        return sample
