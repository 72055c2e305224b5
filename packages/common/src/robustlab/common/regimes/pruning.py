"""Gradual magnitude pruning: layer weights pruned to a target sparsity along a cubic schedule while training."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from robustlab.common.errors import ConfigError
from robustlab.common.regimes._ema import EMATeacherRegime
from robustlab.common.regimes.base import FitState, Regime
from robustlab.common.tasks import get_task

__all__ = ["GradualPruning"]

_DEFAULT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


class GradualPruning(Regime):
    """The task's loss, while the smallest-magnitude weights of each chosen layer are pruned on a cubic schedule.

    Every ``frequency`` optimizer steps from step ``t0`` to step ``t0 + n * dt`` (``dt = frequency``), each
    layer's mask is set to keep all but the ``round(s_t * numel)`` weights of smallest magnitude, with

    ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3``

    (Zhu & Gupta, equation 1): pruning is fast at first, while redundant weights abound, and slows down as fewer
    remain. The step ``t`` counts optimizer steps over the whole run (``FitState.global_step``); ``t0`` and the
    end ``t0 + n * dt`` are ``begin`` and ``end`` given as **fractions of the run's total steps** (``epochs *
    steps_per_epoch``), rounded to the nearest step; the sparsity in force between two updates is that of the
    last update, and at the end step the final sparsity is set whatever ``frequency``. Layers are pruned one by
    one (the same sparsity in each, not a global threshold). The magnitudes are those of the masked weights, so
    a pruned weight stays pruned (the masks only grow), and the training loss is the task's loss of the pruned
    network (as :class:`~robustlab.common.regimes.ERM`).

    The weights are re-parametrized with :mod:`torch.nn.utils.prune` (``custom_from_mask``): each pruned layer
    holds the parameter ``weight_orig`` and the buffer ``weight_mask``, and its ``weight`` is their product,
    recomputed before every forward, so pruned weights are zero in every forward pass and get no gradient. The
    re-parametrization is applied in :meth:`setup` (with an all-ones mask), before the engine builds the
    optimizers and loads ``last.pt`` on resume; the checkpoints therefore hold ``weight_orig`` and
    ``weight_mask``, and the regime's state holds the masks and the sparsity in force. :meth:`best_eligible`
    keeps every epoch before the final sparsity from becoming ``best.pt``. At the end of ``fit`` (after the best
    epoch is restored, if asked) the pruning is made permanent with ``prune.remove`` (a plain ``weight`` with
    zeros) unless ``make_permanent=False``; ``last.pt`` keeps the re-parametrized weights, so a later
    ``fit(..., resume=True)`` works again. To load a checkpoint outside ``fit``, call ``regime.setup(model,
    FitState())`` first and :meth:`remove` afterwards.

    The epoch log has ``sparsity`` (the fraction of pruned weights over all pruned layers at the end of the
    epoch) and ``sparsity_target`` (the schedule's value in force).

    With ``inner``, another regime supplies the training loss while this one prunes: adversarial or on-manifold
    adversarial training of a network being compressed (Ye et al. 2019; Kwon & Lee 2021). The loss is
    ``inner(model, batch)`` (its ``step_metrics`` too); the inner regime's networks, also those its ``setup``
    creates (it runs after the re-parametrization), are registered here as they are there (moved, checkpointed,
    trained or frozen alike); its hooks run before this regime's (so a budget schedule and the masks both
    advance every step); its epoch metrics, its ``stop_reason`` and its state (under ``"inner"``) join this
    regime's; an epoch may become ``best.pt`` only if both allow it; its ``eval_model`` is used. An EMA teacher
    (:class:`~robustlab.common.regimes.MeanTeacher`, :class:`~robustlab.common.regimes.EAAT`) is
    re-parametrized as the model is, gets the model's masks at every update (an average of the pruned student is
    pruned alike) and is made permanent with it. A regime that steps its own optimizers (``train_step`` or
    ``configure_optimizers`` of its own, as GAN training or Co-teaching) cannot be wrapped.

    Args:
        final_sparsity: ``s_f``, the fraction of each layer's weights pruned at the end, in ``[0, 1)``.
        initial_sparsity: ``s_i``, the sparsity set at step ``t0`` (at most ``final_sparsity``).
        begin: ``t0`` as a fraction of the run's total optimizer steps, in ``[0, 1]``.
        end: the step of the final sparsity as a fraction of the total steps, in ``[begin, 1]``.
        frequency: ``dt``, optimizer steps between two updates of the masks (Zhu & Gupta found 100 to 1000
            equally good).
        layers: names of the submodules to prune (as in ``model.named_modules()``); default every ``nn.Linear``,
            ``nn.Conv1d`` and ``nn.Conv2d`` (except the output projection of ``nn.MultiheadAttention``, whose
            weight its parent reads without calling it).
        exclude_last: leave the last of those layers (the classifier, usually) dense.
        make_permanent: remove the re-parametrization at the end of ``fit``.
        loss: ``loss(logits, y) -> scalar``; default the task's loss. Not with ``inner`` (set it there).
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`); with
            ``inner``, the inner regime's task (another one is refused).
        inner: a regime whose loss trains the network being pruned (default: the task's loss on the clean batch).

    Shape:
        batch ``x``: ``(N, *)``, the model's input; ``weight_mask``: the shape of the layer's weight.

    Reference:
        Zhu, M., Gupta, S. "To prune, or not to prune: exploring the efficacy of pruning for model compression",
        ICLR Workshop 2018 (arXiv:1710.01878).

    Examples::

        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from robustlab.common.data import ArrayDataset
        >>> from robustlab.common.engine import fit
        >>> from robustlab.common.models import MLP
        >>> model = MLP(4, 2, hidden=(32,))
        >>> regime = GradualPruning(0.75, begin=0.0, end=0.5, frequency=2)
        >>> regime.sparsity_at(10, total_steps=40), regime.sparsity_at(20, total_steps=40)
        (0.65625, 0.75)
        >>> data = DataLoader(ArrayDataset(torch.randn(64, 4), torch.randint(0, 2, (64,))), batch_size=16)
        >>> result = fit(model, regime, data, epochs=4, progress=False)
        >>> result.last["sparsity"], regime.layer_sparsity(model)
        (0.75, {'1': 0.75, '3': 0.75})
    """

    citation = ("Zhu, M., Gupta, S. To prune, or not to prune: exploring the efficacy of pruning for model "
                "compression. ICLR Workshop 2018, arXiv:1710.01878.")

    def __init__(self, final_sparsity: float = 0.9, *, initial_sparsity: float = 0.0, begin: float = 0.1,
                 end: float = 0.6, frequency: int = 100, layers: Sequence[str] | None = None,
                 exclude_last: bool = False, make_permanent: bool = True, loss=None, task=None,
                 inner: Regime | None = None) -> None:
        if inner is not None:
            if not isinstance(inner, Regime):
                raise ConfigError(f"GradualPruning: inner must be a Regime, got {type(inner).__name__}")
            if loss is not None:
                raise ConfigError("GradualPruning: the loss comes from the inner regime; set it there, not here")
            if task is not None and get_task(task).name != inner.task.name:
                raise ConfigError(f"GradualPruning: task {get_task(task).name!r} differs from the inner regime's "
                                  f"{inner.task.name!r}")
            own = [m for m in ("train_step", "configure_optimizers", "configure_schedulers")
                   if getattr(type(inner), m) is not getattr(Regime, m)]
            if own:
                raise ConfigError(f"GradualPruning: the inner regime {type(inner).__name__} has its own {own}; only "
                                  "regimes that give a loss (one optimizer step per batch) can be wrapped")
            task = inner.task
        super().__init__(loss=loss if inner is None else inner.loss, task=task or "multiclass")
        self.inner = inner
        if inner is not None:
            for name, net in inner.networks.items():
                self.add_network(name, net, trainable=name in inner.trainable_networks)
        if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
            raise ConfigError(f"need 0 <= initial_sparsity <= final_sparsity < 1, got {initial_sparsity} and "
                              f"{final_sparsity}")
        if not 0.0 <= begin <= end <= 1.0:
            raise ConfigError(f"need 0 <= begin <= end <= 1 (fractions of the run's steps), got {begin}, {end}")
        if not isinstance(frequency, int) or frequency < 1:
            raise ConfigError(f"frequency must be an int >= 1 (optimizer steps), got {frequency!r}")
        self.final_sparsity = float(final_sparsity)
        self.initial_sparsity = float(initial_sparsity)
        self.begin, self.end, self.frequency = float(begin), float(end), frequency
        self.layers = None if layers is None else list(layers)
        self.exclude_last = exclude_last
        self.make_permanent = make_permanent
        self._model: nn.Module | None = None
        self._sparsity = 0.0  # the schedule's value the masks were last set to
        self._masks: dict[str, Tensor] = {}

    # -- the schedule ---------------------------------------------------------------------------------------------
    def window(self, total_steps: int) -> tuple[int, int]:
        """``(t0, t_end)``: the steps of the first and of the last mask update in a run of ``total_steps``."""
        t0 = round(self.begin * total_steps)
        return t0, max(t0, round(self.end * total_steps))

    def sparsity_at(self, step: int, *, total_steps: int) -> float:
        """The scheduled sparsity after ``step`` optimizer steps of a run of ``total_steps``: 0 before ``t0``,
        then the cubic schedule at the last update step ``t0 + k * frequency <= step``, ``s_f`` from the end."""
        t0, t_end = self.window(total_steps)
        if step < t0:
            return 0.0
        if step >= t_end:
            return self.final_sparsity
        tk = t0 + (step - t0) // self.frequency * self.frequency
        s_i, s_f = self.initial_sparsity, self.final_sparsity
        if tk == t0:
            return s_i  # exactly, not s_f + (s_i - s_f) in floating point
        return s_f + (s_i - s_f) * (1.0 - (tk - t0) / (t_end - t0)) ** 3

    # -- the layers -----------------------------------------------------------------------------------------------
    def targets(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """The ``(name, module)`` pairs of the layers this regime prunes in ``model``."""
        modules = dict(model.named_modules())
        if self.layers is not None:
            missing = [n for n in self.layers if n not in modules]
            if missing:
                raise ConfigError(f"GradualPruning: the model has no submodules {missing}")
            found = [(n, modules[n]) for n in self.layers]
            bad = [n for n, m in found if not isinstance(getattr(m, "weight", None), Tensor)
                   and not hasattr(m, "weight_orig")]
            if bad:
                raise ConfigError(f"GradualPruning: the layers {bad} have no weight to prune")
        else:
            found = [(n, m) for n, m in modules.items() if isinstance(m, _DEFAULT_TYPES)
                     and not isinstance(m, nn.modules.linear.NonDynamicallyQuantizableLinear)]
        if self.exclude_last:
            found = found[:-1]
        if not found:
            raise ConfigError("GradualPruning: no layer to prune (no nn.Linear, nn.Conv1d or nn.Conv2d)")
        return found

    @torch.no_grad()
    def layer_sparsity(self, model: nn.Module) -> dict[str, float]:
        """The fraction of zero weights of each pruned layer (its effective weight, re-parametrized or not)."""
        out = {}
        for name, m in self.targets(model):
            w = m.weight_orig * m.weight_mask if hasattr(m, "weight_mask") else m.weight
            out[name] = (w == 0).sum().item() / w.numel()
        return out

    @torch.no_grad()
    def _set_masks(self, model: nn.Module, sparsity: float) -> None:
        for name, m in self.targets(model):
            magnitude = (m.weight_orig * m.weight_mask).abs().flatten()
            k = round(sparsity * magnitude.numel())
            mask = torch.ones_like(m.weight_mask)
            if k > 0:
                mask.view(-1)[torch.topk(magnitude, k, largest=False).indices] = 0.0
            m.weight_mask.copy_(mask)  # in place: a DDP wrapper keeps its reference to the buffer
            m.weight = m.weight_orig * m.weight_mask  # what the next forward recomputes
            self._masks[name] = mask.bool()
        self._copy_masks_to_mirrors()
        self._sparsity = sparsity

    def _update(self, model: nn.Module, state: FitState) -> None:
        target = self.sparsity_at(state.global_step, total_steps=state.epochs * state.steps_per_epoch)
        if target != self._sparsity:
            self._set_masks(model, target)

    @torch.no_grad()
    def _copy_masks_to_mirrors(self) -> None:
        if self.inner is None:
            return
        for mirror in self._mirrors():
            for name, m in self.targets(mirror):
                if name in self._masks and hasattr(m, "weight_mask"):
                    m.weight_mask.copy_(self._masks[name])
                    m.weight = m.weight_orig * m.weight_mask

    @torch.no_grad()
    def remove(self, model: nn.Module) -> None:
        """Make the pruning permanent: each pruned layer gets back a plain ``weight`` (the masked one); also in
        the inner regime's EMA teacher, if any."""
        for net in [model, *(self._mirrors() if self.inner is not None else [])]:
            for _, m in self.targets(net):
                if hasattr(m, "weight_orig"):
                    prune.remove(m, "weight")

    # -- what the engine asks -------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        if self.inner is None:
            return self.loss(model(batch["x"]), batch["y"])
        loss = self.inner(model, batch)
        self.step_metrics = dict(self.inner.step_metrics)
        return loss

    def eval_model(self, model: nn.Module) -> nn.Module:
        return model if self.inner is None else self.inner.eval_model(model)

    def setup(self, model: nn.Module, state: FitState) -> None:
        """Re-parametrize the target layers as ``weight_orig * weight_mask`` with all-ones masks (layers already
        re-parametrized keep theirs); on resume the engine then loads the saved weights, masks and state."""
        self._model = model
        for name, m in self.targets(model):
            if not hasattr(m, "weight_orig"):
                prune.custom_from_mask(m, "weight", torch.ones_like(m.weight))
            with torch.no_grad():  # a leaf until the next forward: the model can be deep-copied (an EMA teacher)
                m.weight = m.weight_orig * m.weight_mask
            self._masks[name] = m.weight_mask.bool()
        if self.inner is not None:
            # after the re-parametrization: an EMA teacher copied from the model here has its structure
            self.inner.setup(model, state)
            for name, net in self.inner.networks.items():  # networks the inner setup created or replaced
                self.add_network(name, net, trainable=name in self.inner.trainable_networks)
            for mirror in self._mirrors():
                for name, m in self.targets(mirror):
                    if not hasattr(m, "weight_orig"):
                        prune.custom_from_mask(m, "weight", torch.ones_like(m.weight))
                    with torch.no_grad():
                        m.weight_mask.copy_(self._masks[name])

    def _mirrors(self) -> list[nn.Module]:
        """The inner regime's copies of the model that share its masks: an EMA teacher (mean teacher, EAAT) is
        an average of the pruned student, so its pruned weights are masked as the student's are."""
        teacher = self.inner.teacher if isinstance(self.inner, EMATeacherRegime) else None
        return [] if teacher is None else [teacher]

    def on_fit_start(self, model: nn.Module, state: FitState) -> None:
        if self.inner is not None:
            self.inner._wrapped = self._wrapped  # the DDP wrappers of its trainable networks, during a fit
            self.inner.on_fit_start(model, state)
        self._update(model, state)  # s_i at step 0 when begin is 0; nothing on resume (the state is restored)

    def on_epoch_start(self, model: nn.Module, state: FitState) -> None:
        if self.inner is not None:
            self.inner.on_epoch_start(model, state)

    def on_step_end(self, model: nn.Module, state: FitState) -> None:
        if self.inner is not None:
            self.inner.on_step_end(model, state)
        self._update(model, state)

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        extra = {}
        if self.inner is not None:
            extra = dict(self.inner.on_epoch_end(model, state) or {})
            self.stop_reason = self.inner.stop_reason
        pruned = total = 0
        for _, m in self.targets(model):
            pruned += int((m.weight_mask == 0).sum())
            total += m.weight_mask.numel()
        return {**extra, "sparsity": pruned / total, "sparsity_target": self._sparsity}

    def best_eligible(self, state: FitState) -> bool:
        """True once the final sparsity is in force (and the inner regime, if any, allows it)."""
        inner_ok = self.inner is None or self.inner.best_eligible(state)
        return self._sparsity == self.final_sparsity and inner_ok

    def on_fit_end(self, model: nn.Module, state: FitState) -> None:
        try:
            if self.inner is not None:
                self.inner.on_fit_end(model, state)
                self.inner._wrapped = {}
        finally:
            if self.make_permanent:
                self.remove(model)

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The sparsity in force and each layer's mask (boolean, ``True`` where the weight is kept)."""
        out = {"sparsity": self._sparsity, "masks": {k: v.clone() for k, v in self._masks.items()}}
        if self.inner is not None:
            out["inner"] = self.inner.state_dict()
        return out

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sparsity = float(state.get("sparsity", 0.0))
        self._masks = {k: v.bool().clone() for k, v in (state.get("masks") or {}).items()}
        if self.inner is not None:
            self.inner.load_state_dict(state.get("inner") or {})
        if self._model is None:
            return
        for name, m in self.targets(self._model):
            if name in self._masks and hasattr(m, "weight_mask"):
                m.weight_mask.copy_(self._masks[name])
        self._copy_masks_to_mirrors()
