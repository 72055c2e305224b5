"""Training regimes: ``regime(model, batch) -> loss`` with optional hooks and checkpointable state.

One engine (:func:`robustlab.common.engine.fit`) runs every regime; a new regime is a small file here that
subclasses :class:`robustlab.common.regimes.base.Regime`. ``__all__`` lists the regimes themselves (the contract
tests run over it); schedules live in :mod:`robustlab.common.regimes.schedules`.

- supervised and robust: ``ERM``, ``GaussianNoise``, ``AdversarialTraining``, ``FastAdversarialTraining``,
  ``TRADES``;
- semi-supervised (labelled + unlabelled data, each with a labelled-only variant ``use_unlabeled=False``):
  ``MeanTeacher``, ``VAT``, ``EAAT``;
- robust with more than one attack or layer: ``DiversityAdversarialTraining`` (the clean batch plus the examples of
  several attacks crafted on a frozen source network; Kwon & Lee 2021), ``ATLR`` (adversarial loss plus weighted
  relative errors of the most vulnerable layers; Khalooei et al. 2022), ``OnManifoldAdversarialTraining`` (PGD in a
  frozen autoencoder's latent code, decoded; Kwon & Lee 2021, Stutz et al. 2019);
- latent geometry graphs (Lassance et al. 2021): ``GraphDistillation`` (match a frozen teacher's graphs),
  ``GraphClassification`` (between-class edge weight), ``GraphSmoothness`` (layer-to-layer variation of the label
  smoothness);
- distillation from a frozen teacher: ``KnowledgeDistillation``, ``ARD``;
- noisy labels: ``CoTeaching``, ``LDCE`` (label confidences estimated against trusted data) and
  ``LossCorrection`` (forward correction / GLC, and LDCE's hard and soft variants);
- compression: ``GradualPruning``; generative: ``GAN``.
"""

from robustlab.common.regimes.adversarial_training import AdversarialTraining
from robustlab.common.regimes.ard import ARD
from robustlab.common.regimes.atlr import ATLR
from robustlab.common.regimes.co_teaching import CoTeaching
from robustlab.common.regimes.distillation import KnowledgeDistillation
from robustlab.common.regimes.diversity import DiversityAdversarialTraining
from robustlab.common.regimes.eaat import EAAT
from robustlab.common.regimes.erm import ERM
from robustlab.common.regimes.fast_adversarial_training import FastAdversarialTraining
from robustlab.common.regimes.gan import GAN
from robustlab.common.regimes.gaussian_noise import GaussianNoise
from robustlab.common.regimes.ldce import LDCE
from robustlab.common.regimes.lgg import GraphClassification, GraphDistillation, GraphSmoothness
from robustlab.common.regimes.loss_correction import LossCorrection
from robustlab.common.regimes.mean_teacher import MeanTeacher
from robustlab.common.regimes.on_manifold import OnManifoldAdversarialTraining
from robustlab.common.regimes.pruning import GradualPruning
from robustlab.common.regimes.trades import TRADES
from robustlab.common.regimes.vat import VAT

__all__ = [
    "ERM", "GaussianNoise", "AdversarialTraining", "FastAdversarialTraining", "TRADES",
    "MeanTeacher", "VAT", "EAAT", "KnowledgeDistillation", "ARD", "CoTeaching", "LDCE", "LossCorrection",
    "GradualPruning", "GAN", "DiversityAdversarialTraining", "ATLR", "OnManifoldAdversarialTraining",
    "GraphDistillation", "GraphClassification", "GraphSmoothness",
]
