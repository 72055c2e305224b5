"""What the minimal-norm attacks (DeepFool, CW) share: an optional L2 cap and a report of which points flipped."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustlab.common.attacks.base import Attack


class MinimalNormAttack(Attack):
    """An attack that looks for the smallest L2 perturbation that changes the prediction.

    ``eps`` is an optional cap on the L2 norm of the perturbation (``float("inf")``: uncapped); it therefore also
    caps the L-inf norm. The class's ``minimal`` flag tells the contract tests to check that the points reported
    as successful are misclassified, rather than that the loss rose by a margin.
    """

    minimal = True

    def _check_eps(self) -> None:
        if isinstance(self.eps, Tensor):
            raise ValueError(f"{type(self).__name__} takes a float eps (an L2 cap, inf for none), got a tensor")
        if math.isnan(float(self.eps)):
            raise ValueError(f"eps must be a number >= 0 or inf, got {self.eps}")

    def _cap(self, x: Tensor, x_adv: Tensor, b_lo, b_hi) -> Tensor:
        """Project ``x_adv`` onto the L2 ball of radius eps around ``x`` (if finite), then into the bounds.

        Clipping to the bounds after the projection keeps the norm within eps: ``x`` lies in the bounds, so each
        clipped coordinate moves towards ``x``.
        """
        eps = float(self.eps)
        if math.isfinite(eps):
            delta = x_adv - x
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (eps / norms).clamp(max=1.0).view((-1,) + (1,) * (x.ndim - 1))
            x_adv = x + delta
        if b_lo is not None:
            x_adv = torch.clamp(x_adv, b_lo, b_hi)
        return x_adv

    def success(self, x_adv: Tensor, y: Tensor) -> Tensor:
        """Which points of ``x_adv`` the model (in the attack's mode) classifies as the attack wants: not ``y``
        (untargeted) or ``y`` (targeted); a boolean ``(N,)``."""
        with self._attack_mode(), torch.no_grad():
            pred = self.model(x_adv).argmax(1)
        return pred == y if self.targeted else pred != y

    def perturb_and_report(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_adv, success)``: the adversarial examples and which of them reach the attack's goal."""
        x_adv = self.perturb(x, y)
        return x_adv, self.success(x_adv, y)
