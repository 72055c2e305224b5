"""Diversity adversarial training: the model learns from the clean batch and from the examples several attacks
craft on a fixed source (local) network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from robustlab.common.attacks.base import Attack, cross_entropy_sum
from robustlab.common.errors import ConfigError
from robustlab.common.regimes.base import Regime

__all__ = ["DiversityAdversarialTraining"]


class DiversityAdversarialTraining(Regime):
    """Train on ``[x, a_1(x), ..., a_k(x)]`` with the labels repeated, each attack ``a_i`` run on a frozen source.

    Kwon & Lee's Algorithm 1: a local model ``M_L``, trained beforehand and never updated, crafts adversarial
    examples of the training data with FGSM, I-FGSM, DeepFool and CW; the target model is trained on the
    original data plus all those examples with their original labels, ``(X, Y) + (X*, Y)``. Here every batch
    becomes the clean samples followed by each attack's version of them, and the loss is the task's loss over
    the ``(k + 1) * N`` samples in one forward pass (each example weighs the same, as in the union of the data
    sets). The source is a network the regime owns (``trainable=False``: moved to the device and saved in every
    checkpoint, never in the optimizer, its parameters' ``requires_grad`` off); the attacks run it in their
    ``model_mode`` (eval by default), so it does not change.

    Crafting once: the source is fixed and the attacks are deterministic (no random start), so a sample's
    examples are the same at every epoch. With ``cache=True`` they are crafted the first time a sample is seen
    and reused afterwards, keyed by the batch's ``"index"`` (as :class:`~robustlab.common.data.ArrayDataset`
    yields it): the precomputed set of the paper at the cost of one crafting pass. The cache lives on the CPU and
    is not checkpointed: after a resume it is rebuilt, to the same values for attacks that treat each sample on its
    own (FGSM, BIM, DeepFool); CW's early stop is decided on the batch's summed cost (as in Carlini & Wagner's code
    and torchattacks), so a CW example can differ with the batch it was crafted in. Use ``cache=False`` with
    attacks that draw random starts, or when the source may change. :meth:`craft` crafts a whole data set offline.

    Args:
        source: the fixed local network the examples are crafted on (frozen by the regime).
        attacks: the attacks, built on ``source`` (or with ``model=None``: they are given the source), as a
            sequence (named by class, ``fgsm``, ``bim``, ...) or a mapping ``name -> attack``.
        cache: reuse each sample's examples after the first crafting (needs the ``"index"`` batch key).
        loss: ``loss(logits, y) -> scalar``; default the task's loss. An attack left at its default loss (class
            cross entropy) gets the task's summed loss for a multi-label or regression task.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``; minimal-norm attacks (DeepFool, CW) need
            classes and are refused for the other two.

    Shape:
        batch ``x``: ``(N, *)``; ``y``: the task's targets; the loss is over ``(k + 1) * N`` samples.

    Reference:
        Kwon, H., Lee, J. "Diversity Adversarial Training against Adversarial Attack on Deep Neural Networks",
        Symmetry 13(3):428, 2021. https://doi.org/10.3390/sym13030428

    Examples::

        >>> import torch
        >>> from robustlab.common.attacks import BIM, FGSM
        >>> from robustlab.common.models import MLP
        >>> source, model = MLP(2, 3), MLP(2, 3)
        >>> regime = DiversityAdversarialTraining(source, [FGSM(None, eps=0.1), BIM(None, eps=0.1, steps=3)])
        >>> regime(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,))}).ndim
        0
        >>> sorted(regime.names), any(p.requires_grad for p in source.parameters())
        (['bim', 'fgsm'], False)
    """

    citation = ("Kwon, H., Lee, J. Diversity Adversarial Training against Adversarial Attack on Deep Neural Networks. "
                "Symmetry 13(3):428, 2021.")

    def __init__(self, source: nn.Module, attacks: Sequence[Attack] | Mapping[str, Attack], *, cache: bool = False,
                 loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        self.add_network("source", source, trainable=False)
        if isinstance(attacks, Mapping):
            named = dict(attacks)
        else:
            named = {}
            for a in attacks:
                base = type(a).__name__.lower()
                name, n = base, 1
                while name in named:
                    n += 1
                    name = f"{base}{n}"
                named[name] = a
        if not named:
            raise ConfigError("DiversityAdversarialTraining needs at least one attack")
        for name, a in named.items():
            if not isinstance(a, Attack):
                raise ConfigError(f"attack {name!r} must be a robustlab Attack, got {type(a).__name__}")
            if a.model is None:
                a.model = source
            elif a.model is not source:
                raise ConfigError(f"attack {name!r} must be built on the source network (the fixed local model), "
                                  "not on another one; build it with model=None to have it bound to the source")
            if self.task.name != "multiclass":
                if getattr(a, "minimal", False):
                    raise ConfigError(f"attack {name!r} ({type(a).__name__}) looks for a flipped class and needs a "
                                      f"multiclass task, got {self.task.name!r}")
                if a.loss is cross_entropy_sum:
                    a.loss = self.task.attack_loss
        self.attacks = named
        self.cache = bool(cache)
        self._store: dict[int, Tensor] = {}

    @property
    def names(self) -> list[str]:
        """The attacks' names, in the order their examples follow the clean batch."""
        return list(self.attacks)

    @property
    def source(self) -> nn.Module:
        """The frozen source (local) network."""
        return self.networks["source"]

    def examples(self, x: Tensor, y: Tensor) -> Tensor:
        """Every attack's examples of ``x``, stacked: ``(k, N, *)``, in the order of :attr:`names`."""
        return torch.stack([a(x, y) for a in self.attacks.values()])

    def craft(self, x: Tensor, y: Tensor, *, batch_size: int = 256) -> dict[str, Tensor]:
        """Craft a whole data set offline, in batches, on the source's device: ``name -> x_adv`` on ``x``'s device.

        Shape:
            x: ``(N, *)``; returns tensors ``(N, *)``.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        dev = next(iter(self.source.parameters()), torch.empty(0)).device
        parts = [self.examples(x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)).to(x.device)
                 for i in range(0, len(x), batch_size)]
        out = torch.cat(parts, 1)
        return {name: out[j] for j, name in enumerate(self.attacks)}

    def _cached(self, x: Tensor, y: Tensor, index: Tensor) -> Tensor:
        keys = [int(i) for i in index.reshape(-1).tolist()]
        missing = [j for j, k in enumerate(keys) if k not in self._store]
        if missing:
            sel = torch.as_tensor(missing, device=x.device)
            fresh = self.examples(x[sel], y[sel]).detach().cpu()
            for col, j in enumerate(missing):
                self._store[keys[j]] = fresh[:, col]
        return torch.stack([self._store[k] for k in keys], 1).to(x.device)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        if batch.get("unlabeled") is not None:
            raise ConfigError("DiversityAdversarialTraining trains on labelled batches only (its attacks need the "
                              "labels); fit it without an unlabeled_loader")
        x, y = batch["x"], batch["y"]
        if self.cache:
            if "index" not in batch:
                raise ConfigError("cache=True keys the crafted examples by the batch's 'index' (ArrayDataset yields "
                                  "it); this batch has none: use such a dataset or cache=False")
            adv = self._cached(x, y, batch["index"])
        else:
            adv = self.examples(x, y)
        k = adv.shape[0]
        x_all = torch.cat([x, adv.reshape(k * x.shape[0], *x.shape[1:])])
        y_all = torch.cat([y] * (k + 1))
        self.step_metrics = {"adv_fraction": k / (k + 1)}
        return self.loss(model(x_all), y_all)
