"""Adversarial attacks: ``Attack(model, *, eps, ..., bounds, loss)(x, y) -> x_adv``.

Bounds are explicit (``None``, a pair, or per-feature tensors): there is no hidden ``[0, 1]`` clamp, so ECG in
mV, seismic counts and one-hot DNA are attacked in their own units. ``__all__`` lists the attacks (the contract
tests run over it); the base class is :class:`robustlab.common.attacks.base.Attack`. L-inf budget attacks: FGSM,
BIM (I-FGSM), PGD (also L2); minimal-norm L2 attacks, whose ``eps`` is an optional cap: DeepFool, CW.
"""

from robustlab.common.attacks.bim import BIM
from robustlab.common.attacks.cw import CW
from robustlab.common.attacks.deepfool import DeepFool
from robustlab.common.attacks.fgsm import FGSM
from robustlab.common.attacks.pgd import PGD, harmonic_steps

__all__ = ["BIM", "CW", "DeepFool", "FGSM", "PGD", "harmonic_steps"]
