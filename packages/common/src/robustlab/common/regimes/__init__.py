"""Training regimes: ``regime(model, batch) -> loss`` with optional hooks and checkpointable state.

One engine (:func:`robustlab.common.engine.fit`) runs every regime; a new regime is a small file here that
subclasses :class:`robustlab.common.regimes.base.Regime`. ``__all__`` lists the regimes themselves (the contract
tests run over it); schedules live in :mod:`robustlab.common.regimes.schedules`.
"""

from robustlab.common.regimes.adversarial_training import AdversarialTraining
from robustlab.common.regimes.erm import ERM
from robustlab.common.regimes.fast_adversarial_training import FastAdversarialTraining
from robustlab.common.regimes.gaussian_noise import GaussianNoise
from robustlab.common.regimes.trades import TRADES

__all__ = ["ERM", "GaussianNoise", "AdversarialTraining", "FastAdversarialTraining", "TRADES"]
