"""Layer-wise regularized adversarial training (AT-LR): the adversarial loss plus the chosen layers' relative errors."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from robustlab.common.analysis.layers import _call_sites, _modules_of, default_layers, relative_error
from robustlab.common.attacks.base import Attack
from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder
from robustlab.common.regimes.adversarial_training import AdversarialTraining
from robustlab.common.regimes.base import unwrap
from robustlab.common.regimes.schedules import EpsRamp

__all__ = ["ATLR"]


class ATLR(AdversarialTraining):
    """Adversarial training with a layer-wise regularizer on the most vulnerable layers (Khalooei et al. 2022).

    Per batch, ``x_adv = attack(x, y)`` and

    .. math:: J(\\theta, \\hat x, y) + \\sum_{l \\in M} \\gamma_l \\,
              \\lVert \\phi_l(x) - \\phi_l(\\hat x) \\rVert_F / \\lVert \\phi_l(x) \\rVert_F

    (the paper's Algorithm 3 with Eq. 13): the task loss on the adversarial batch plus, for every layer ``l`` of
    the list ``M`` (the MVL list of :func:`robustlab.common.analysis.layers.vulnerable_layers`, or any layers), its
    weight times the relative error between its clean and adversarial outputs on the batch
    (:func:`~robustlab.common.analysis.layers.relative_error`, whole-batch Frobenius norms as in the authors' LSA
    code, or per sample and averaged). The model runs twice, on ``x`` and on ``x_adv``; gradients flow through
    both passes (the regularizer is a function of the parameters through both representations, as the paper
    writes it). The attack's budget follows ``schedule`` exactly as :class:`AdversarialTraining`'s (clean warm-up,
    linear ramp); while the budget is 0 the batch is clean and the regularizer is 0.

    Args:
        attack: the attack that makes ``x_adv``, built on the model being trained (``PGD(model, eps=...)``).
        layers: names from ``model.named_modules()``; default every activation module
            (:func:`~robustlab.common.analysis.layers.default_layers`, resolved on the first batch). A module
            called more than once per forward pass (one reused ``nn.ReLU``) is one layer per call,
            ``"name#0"``, ``"name#1"``, ...; a weight given for ``"name"`` applies to each, ``"name#i"`` names one.
        weights: :math:`\\gamma_l`: one number for every layer, a sequence as long as ``layers``, or a mapping
            ``name -> weight`` (layers missing from it get 0 and are not recorded; with ``layers=None`` its keys
            must be activation modules, checked on the first batch). Non-negative.
        per_sample: the relative error per sample, averaged over the batch, instead of the whole-batch ratio.
        schedule: an :class:`EpsRamp`; ``EpsRamp(ramp_epochs=0)`` trains at full eps from the first step.
        loss: ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Raises:
        ConfigError: a negative or non-finite weight, weights that do not match ``layers``, an empty layer list,
            and on the first batch an unknown layer name or ``weights`` key (the message lists close names).

    Shape:
        batch ``"x"``: ``(N, *)``; ``"y"``: as the task's loss expects.

    Reference:
        Khalooei, M., Homayounpour, M. M., Amirmazlaghani, M. "Layer-wise Regularized Adversarial Training using
        Layers Sustainability Analysis (LSA) framework", arXiv:2202.02626, 2022.

    Examples::

        >>> import torch
        >>> from robustlab.common.attacks import PGD
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 2, hidden=(8, 8))
        >>> regime = ATLR(PGD(model, eps=0.1, steps=3), layers=["2"], weights=0.5)
        >>> loss = regime(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 2, (8,))})
        >>> loss.ndim, sorted(regime.step_metrics)[:2]
        (0, ['adv_fraction', 'eps'])
    """

    citation = ("Khalooei, M., Homayounpour, M. M., Amirmazlaghani, M. Layer-wise Regularized Adversarial Training "
                "using Layers Sustainability Analysis (LSA) framework. arXiv:2202.02626, 2022.")

    def __init__(self, attack: Attack, *, layers: Sequence[str] | None = None,
                 weights: float | Sequence[float] | Mapping[str, float] = 1.0, per_sample: bool = False,
                 schedule: EpsRamp | None = None, loss=None, task="multiclass") -> None:
        super().__init__(attack, fraction=1.0, mode="replace", schedule=schedule, loss=loss, task=task)
        if layers is not None:
            if isinstance(layers, str):
                layers = [layers]
            layers = list(layers)
            if not layers or not all(isinstance(n, str) for n in layers):
                raise ConfigError(f"layers must be a non-empty list of names (or None for the activation modules), "
                                  f"got {layers!r}")
        if isinstance(weights, Mapping):
            if layers is not None and set(weights) - set(layers):
                raise ConfigError(f"weights name layers that are not in layers: {sorted(set(weights) - set(layers))}")
            values = list(weights.values())
        elif isinstance(weights, (int, float)):
            values = [float(weights)]
        else:
            values = [float(w) for w in weights]
            if layers is None or len(values) != len(layers):
                raise ConfigError(f"a sequence of weights needs layers of the same length, got {len(values)} weights "
                                  f"for layers {layers!r}")
        if not all(torch.isfinite(torch.tensor(float(v))) and float(v) >= 0 for v in values):
            raise ConfigError(f"weights must be finite and >= 0, got {weights!r}")
        self.layers = layers
        self.weights = dict(weights) if isinstance(weights, Mapping) else weights
        self.per_sample = bool(per_sample)

    def _weights(self, model: nn.Module) -> dict[str, float]:
        """The layer names (``"name"`` or ``"name#i"``) of positive weight; checks a mapping's keys against the
        model's layers once it is known."""
        layers = self.layers if self.layers is not None else default_layers(model)
        w = self.weights
        if isinstance(w, Mapping):
            if self.layers is None:
                known = set(layers)
                unknown = [k for k in w if k.partition("#")[0] not in known]
                if unknown:
                    named = [n for n, _ in model.named_modules() if n]
                    hints = {k: difflib.get_close_matches(k, [*layers, *named], n=3, cutoff=0.5) for k in unknown}
                    close = "; ".join(f"{k!r}: close names {', '.join(v)}" for k, v in hints.items() if v)
                    raise ConfigError(f"ATLR: weights name layers that are not among the model's activation modules "
                                      f"{layers} (the default layers): {unknown}" + (f" ({close})" if close else "")
                                      + "; pass layers=[...] to use other modules")
                # a reused module's call site named "relu#1" is recorded with the module's other calls
                layers = [*layers, *(k for k in w if "#" in k and k not in layers)]
            out = {n: float(w.get(n, 0.0)) for n in layers}
            out.update({k: float(v) for k, v in w.items() if k in out or "#" in k})
        elif isinstance(w, (int, float)):
            out = {n: float(w) for n in layers}
        else:
            out = dict(zip(layers, (float(v) for v in w)))
        return {n: v for n, v in out.items() if v > 0}

    @staticmethod
    def _site_weights(weights: dict[str, float], sites: list[str]) -> dict[str, float]:
        """The weight of each call site: its own (``"relu#1"``) or its module's (``"relu"``)."""
        return {s: weights.get(s, weights.get(s.partition("#")[0], 0.0)) for s in sites}

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = batch["x"], batch["y"]
        weights = self._weights(unwrap(model))
        attacked = self._factor > 0 and x.shape[0] > 0
        x_adv = self.attack(x, y) if attacked else x
        eps = self.attack.eps
        self.step_metrics = {"eps": float(eps.max()) if isinstance(eps, Tensor) else float(eps),
                             "adv_fraction": 1.0 if attacked else 0.0}
        if not attacked or not weights:
            self.step_metrics["layer_reg"] = 0.0
            return self.loss(model(x_adv), y)
        with FeatureRecorder(unwrap(model), _modules_of(list(weights)), keep="all") as rec:
            model(x)
            clean = _call_sites(rec.outputs, list(weights))
            rec.clear()
            logits = model(x_adv)
            adv = _call_sites(rec.outputs, list(weights))
        # a module called k > 1 times is k layers, "name#0" ... (the authors' hook records every call)
        clean = {k: v for k, v in clean.items() if k in adv}
        reg = x.new_zeros(())
        for name, w in self._site_weights(weights, list(clean)).items():
            if w <= 0:
                continue
            err = relative_error(clean[name], adv[name], per_sample=self.per_sample)
            reg = reg + w * (err.mean() if self.per_sample else err)
            self.step_metrics[f"rel_err/{name}"] = float(err.detach().mean())
        self.step_metrics["layer_reg"] = float(reg.detach())
        return self.loss(logits, y) + reg
