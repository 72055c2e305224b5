"""Adversarial attacks: ``Attack(model, *, eps, ..., bounds, loss)(x, y) -> x_adv``.

Bounds are explicit (``None``, a pair, or per-feature tensors): there is no hidden ``[0, 1]`` clamp, so ECG in
mV, seismic counts and one-hot DNA are attacked in their own units. ``__all__`` lists the attacks (the contract
tests run over it); the base class is :class:`robustlab.common.attacks.base.Attack`.
"""

from robustlab.common.attacks.fgsm import FGSM
from robustlab.common.attacks.pgd import PGD, harmonic_steps

__all__ = ["FGSM", "PGD", "harmonic_steps"]
