"""The regime contract: ``regime(model, batch) -> loss``, plus what a regime may own and override.

What the engine (:func:`robustlab.common.engine.fit`) does with a regime, in order:

1. ``setup(model, state)``: before any optimizer is built and before weights load on resume. A regime that
   changes the model's structure (pruning's ``weight_orig``/``weight_mask``) or creates networks (an EMA
   teacher copied from the model) does it here.
2. Networks: every network the regime registered with :meth:`Regime.add_network` is moved to the device and
   saved in ``last.pt`` and ``best.pt``; the trainable ones are also wrapped in DDP under ``torchrun``, clipped,
   and put into the default optimizer.
3. Optimizers: ``configure_optimizers(model, optimizer)`` names them (default: one, ``"model"``).
4. Resume: weights, networks, optimizers, scheduler, scaler, regime state, loader and global random states.
5. ``on_fit_start``; then per epoch ``on_epoch_start``, per batch ``train_step`` and ``on_step_end``,
   ``on_epoch_end``, validation through ``validate`` (by default of ``eval_model(model)``); ``on_fit_end``
   always runs, also after an error.

A regime that needs more than one optimizer or more than one backward per batch (a GAN) overrides
:meth:`Regime.train_step` and drives the :class:`StepContext` the engine hands it: backward with the AMP scaler
and the non-finite check, clipping, named optimizers, the device, and collectives that are no-ops on one process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError, NonFiniteLossError
from robustlab.common.tasks import Task, get_task

__all__ = ["FitState", "Regime", "StepContext", "all_inputs", "labeled_part", "unwrap"]


class _SingleProcess:
    """Collectives of a single process: identities."""

    world = 1
    rank = 0

    def all_reduce(self, t: Tensor) -> Tensor:
        return t.detach()

    def all_gather(self, t: Tensor) -> Tensor:
        return t.detach()


@dataclass
class FitState:
    """What the engine tells a regime's hooks about where training stands.

    Attributes:
        epoch: the current epoch, counted from 0.
        epochs: the number of epochs the run is set to.
        step: the step within the epoch, counted from 0.
        steps_per_epoch: optimizer steps in one epoch.
        global_step: optimizer steps taken since the start of training (resumes included).
        device: where the model lives.
        val_loader: the validation loader, or None.
        train_loader: the (labelled) training loader, as this process reads it.
        unlabeled_loader: the unlabelled loader, or None.
        dist: the process group's collectives (use :meth:`all_gather` and :meth:`all_reduce`).
    """

    epoch: int = 0
    epochs: int = 1
    step: int = 0
    steps_per_epoch: int = 1
    global_step: int = 0
    device: torch.device = torch.device("cpu")
    val_loader: Any = None
    train_loader: Any = None
    unlabeled_loader: Any = None
    dist: Any = field(default_factory=_SingleProcess, repr=False)

    @property
    def progress(self) -> float:
        """Fraction of training done, in ``[0, 1]``, at step granularity."""
        total = max(1, self.epochs * self.steps_per_epoch)
        return min(1.0, self.global_step / total)

    @property
    def world_size(self) -> int:
        """Number of training processes (1 without ``torchrun``)."""
        return self.dist.world

    def all_gather(self, t: Tensor) -> Tensor:
        """``t`` of every process concatenated along dim 0 (rank order), detached; ``t`` detached on one process.

        Per-sample state (a confidence per training sample, kept by the ``index`` batch key) is updated from
        every process's share of the batch: gather the indices and the values, then update.
        """
        return self.dist.all_gather(t)

    def all_reduce(self, t: Tensor) -> Tensor:
        """The sum of ``t`` over the processes, detached; ``t`` detached on one process."""
        return self.dist.all_reduce(t)


class StepContext:
    """The engine's side of one training step, handed to :meth:`Regime.train_step`.

    Attributes:
        optimizers: the run's optimizers by name (``"model"`` is the default one).
        device: where the model lives.
        state: the :class:`FitState` (epoch, step, collectives).
    """

    def __init__(self, *, optimizers: dict[str, torch.optim.Optimizer], scaler, device: torch.device,
                 amp_dtype: torch.dtype, use_amp: bool, grad_clip: float | None, state: FitState,
                 describe: Callable[[], str]) -> None:
        self.optimizers = optimizers
        self.device = device
        self.state = state
        self._scaler = scaler
        self._amp = (amp_dtype, use_amp)
        self._clip = grad_clip
        self._describe = describe
        self.stepped: set[str] = set()

    def autocast(self) -> AbstractContextManager:
        """Mixed precision for the forward passes (a no-op where AMP is off)."""
        dtype, enabled = self._amp
        return torch.autocast(self.device.type, dtype=dtype, enabled=enabled)

    def zero_grad(self, name: str | None = None) -> None:
        """Zero the gradients of one optimizer's parameters (all optimizers when ``name`` is None)."""
        for opt in ([self.optimizers[name]] if name else self.optimizers.values()):
            opt.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor, *, what: str = "training loss", retain_graph: bool = False) -> float:
        """Check ``loss`` is finite, then backward through the AMP scaler; returns its value.

        Raises:
            NonFiniteLossError: naming ``what``, the epoch and the step; nothing reaches the weights.
        """
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the {what} is {value} at {self._describe()}")
        self._scaler.scale(loss).backward(retain_graph=retain_graph)
        return value

    def step(self, name: str = "model") -> None:
        """Clip the gradients of optimizer ``name``'s parameters (if ``grad_clip``) and step it."""
        if name not in self.optimizers:
            raise ConfigError(f"no optimizer named {name!r}; this run has {sorted(self.optimizers)}")
        opt = self.optimizers[name]
        if self._clip is not None:
            self._scaler.unscale_(opt)
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self._clip)
        self._scaler.step(opt)
        self.stepped.add(name)

    def update_scaler(self) -> None:
        """Update the AMP scaler now, between two steps of one optimizer in the same batch (a GAN's
        ``d_steps > 1``); a no-op without float16 AMP. The engine updates it once after every step anyway."""
        if self._scaler.is_enabled():
            self._scaler.update()

    def all_gather(self, t: Tensor) -> Tensor:
        """See :meth:`FitState.all_gather`."""
        return self.state.all_gather(t)

    def all_reduce(self, t: Tensor) -> Tensor:
        """See :meth:`FitState.all_reduce`."""
        return self.state.all_reduce(t)


class Regime:
    """Base class of the training regimes.

    A regime turns a batch into a loss: ``loss = regime(model, batch)``. The engine owns the loop, the optimizers
    and checkpointing; a regime owns what is particular to it (an attack, a schedule, extra networks, per-sample
    state) and exposes that state through :meth:`state_dict` / :meth:`load_state_dict`, which the engine stores in
    every checkpoint. Hooks are called by the engine with the unwrapped model (not the DDP wrapper) and a
    :class:`FitState`; all are optional. See the module docstring for the order.

    Args:
        loss: ``loss(logits, y) -> scalar``; default the task's loss (:meth:`Task.loss`).
        task: ``"multiclass"`` (default), ``"multilabel"`` or ``"regression"``, see :mod:`robustlab.common.tasks`.

    Attributes:
        step_metrics: filled by ``__call__`` with scalars to average into the epoch log (e.g. the eps in force).
        stop_reason: set by a hook to ask the engine to stop after this epoch; the reason is logged and returned.
        citation: the reference of the method.
    """

    citation: str | None = None

    def __init__(self, *, loss: Callable[[Tensor, Tensor], Tensor] | None = None,
                 task: str | Task = "multiclass") -> None:
        self.task = get_task(task)
        self.loss = loss or self.task.loss
        self.step_metrics: dict[str, float] = {}
        self.stop_reason: str | None = None
        self._networks: dict[str, nn.Module] = {}
        self._trainable: set[str] = set()
        self._wrapped: dict[str, nn.Module] = {}

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        raise NotImplementedError

    # -- networks -------------------------------------------------------------------------------------------------
    def add_network(self, name: str, module: nn.Module, *, trainable: bool) -> nn.Module:
        """Register a network the regime owns (a peer, a discriminator, an EMA or a frozen teacher).

        The engine moves every registered network to the device and checkpoints it; a trainable one is also put
        into the default optimizer, clipped, and wrapped in DDP under ``torchrun`` (use :meth:`network` in the
        forward passes of training to get the wrapped module). A frozen network gets ``requires_grad=False``.
        """
        if not isinstance(module, nn.Module):
            raise ConfigError(f"network {name!r} must be an nn.Module, got {type(module).__name__}")
        if not name.isidentifier():
            raise ConfigError(f"network names are identifiers, got {name!r}")
        self._networks[name] = module
        (self._trainable.add if trainable else self._trainable.discard)(name)
        if not trainable:
            module.requires_grad_(False)
        return module

    @property
    def networks(self) -> dict[str, nn.Module]:
        """Every registered network by name (unwrapped)."""
        return dict(self._networks)

    @property
    def trainable_networks(self) -> dict[str, nn.Module]:
        """The registered networks that train (unwrapped)."""
        return {k: v for k, v in self._networks.items() if k in self._trainable}

    def network(self, name: str) -> nn.Module:
        """The network ``name`` for a training forward pass: its DDP wrapper during a distributed fit."""
        if name not in self._networks:
            raise ConfigError(f"{type(self).__name__} has no network {name!r}; it has {sorted(self._networks)}")
        return self._wrapped.get(name, self._networks[name])

    # -- what the engine asks -------------------------------------------------------------------------------------
    def configure_optimizers(self, model: nn.Module, optimizer: torch.optim.Optimizer | None
                             ) -> dict[str, torch.optim.Optimizer]:
        """The run's optimizers by name; ``optimizer`` is the one passed to ``fit`` (or None).

        Default: Adam (learning rate 1e-3) over the model's and the trainable networks' parameters, named
        ``"model"``; or ``{"model": optimizer}``, plus, for each trainable network that ``optimizer`` does not
        cover, an optimizer of the same class and hyperparameters named after the network. A regime with
        optimizers of its own (a GAN's discriminator) returns them all.

        Raises:
            ConfigError: ``optimizer`` covers some parameters of a trainable network but not all.
        """
        if optimizer is None:
            return {"model": torch.optim.Adam(self.trainable_parameters(model), lr=1e-3)}
        out = {"model": optimizer}
        covered = {id(p) for g in optimizer.param_groups for p in g["params"]}
        for name, net in self.trainable_networks.items():
            params = [p for p in net.parameters() if p.requires_grad]
            inside = sum(id(p) in covered for p in params)
            if inside and inside < len(params):
                raise ConfigError(f"the optimizer passed to fit covers {inside} of the {len(params)} parameters of "
                                  f"the network {name!r}: cover all of them or none")
            if params and not inside:
                out[name] = type(optimizer)(params, **optimizer.defaults)
        return out

    def configure_schedulers(self, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
        """Learning-rate schedulers of the regime's own optimizers, by optimizer name (default none); the engine
        steps them like ``fit``'s ``scheduler`` and checkpoints them."""
        return {}

    def trainable_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The model's parameters, then those of every trainable network (in registration order)."""
        params = list(model.parameters())
        for net in self.trainable_networks.values():
            params += list(net.parameters())
        return params

    def train_step(self, step: StepContext, model: nn.Module, batch: dict) -> float:
        """One training step; returns the loss value for the epoch log.

        The engine has zeroed every optimizer's gradients and updates the AMP scaler afterwards. The default is
        one forward (``self(model, batch)`` under autocast), one backward, one step of every optimizer (the
        networks' parameters are disjoint, so one backward of a summed loss serves them all).
        """
        with step.autocast():
            loss = self(model, batch)
        value = step.backward(loss)
        for name in step.optimizers:
            step.step(name)
        return value

    def eval_model(self, model: nn.Module) -> nn.Module:
        """The network that validation, ``best.pt`` selection and prediction use (the EMA teacher of a mean
        teacher); default ``model``."""
        return model

    def validate(self, model: nn.Module, loader, *, metrics=None, device=None) -> dict[str, float]:
        """Validation metrics (prefixed ``val_`` in the log); default :func:`robustlab.common.engine.evaluate`
        of :meth:`eval_model` with the regime's loss."""
        from robustlab.common.engine import evaluate

        return evaluate(self.eval_model(model), loader, loss=self.loss, metrics=metrics, device=device)

    def best_eligible(self, state: FitState) -> bool:
        """Whether this epoch may become ``best.pt`` (pruning: only once the final sparsity is reached)."""
        return True

    # -- hooks ----------------------------------------------------------------------------------------------------
    def setup(self, model: nn.Module, state: FitState) -> None:
        """Before the model moves to the device, before DDP wraps it, before optimizers are built and before
        weights load on resume (also in :func:`~robustlab.common.engine.load_best`): change the model's structure
        or create networks here. May be called more than once for one model: keep it idempotent."""

    def on_fit_start(self, model: nn.Module, state: FitState) -> None:
        """Before the first epoch (also when resuming, after the regime's state is restored)."""

    def on_epoch_start(self, model: nn.Module, state: FitState) -> None:
        """At the start of every epoch."""

    def on_step_end(self, model: nn.Module, state: FitState) -> None:
        """After every optimizer step (EMA teachers update here)."""

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        """After every epoch's training, before validation; returns extra metrics for the log."""
        return {}

    def on_fit_end(self, model: nn.Module, state: FitState) -> None:
        """After the last epoch, when training stops early, and after an error (always)."""

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers and strings only: checkpoints load with ``weights_only=True``. Registered networks
        are saved by the engine and need not be included."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("step_metrics", "stop_reason")}
        return f"{type(self).__name__}({', '.join(f'{k}={_short(v)}' for k, v in params.items())})"


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel / DataParallel wrapper, or the model itself."""
    return getattr(model, "module", model)


def labeled_part(batch: dict, task: Task) -> tuple[Tensor, Tensor]:
    """The labelled samples' inputs and targets of a batch (dropping :data:`~robustlab.common.tasks.UNLABELED`)."""
    x, y = batch["x"], batch["y"]
    known = task.labeled(y)
    if bool(known.all()):
        return x, y
    return x[known], y[known]


def all_inputs(batch: dict) -> Tensor:
    """Every input of a batch, labelled then unlabelled (the ``"unlabeled"`` part from a second loader)."""
    extra = batch.get("unlabeled")
    return batch["x"] if extra is None else torch.cat([batch["x"], extra["x"]])


def _short(v: Any) -> str:
    if isinstance(v, Task):
        return repr(v.name)
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)
