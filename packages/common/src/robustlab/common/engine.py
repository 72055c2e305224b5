"""The one training loop: :func:`fit` and :func:`evaluate`, with checkpoints, resume, early stopping and DDP.

Every regime (ERM, noise injection, adversarial and fast adversarial training, TRADES, mean teacher, VAT, EAAT,
distillation, co-teaching, GANs, pruning) runs through :func:`fit`; what differs between them lives in the
regime (``regime(model, batch) -> loss``, its networks, optimizers, step and hooks: see
:mod:`robustlab.common.regimes.base`), never in a second loop.

Batches are dicts: ``x``, ``y``, and optionally ``index`` (the sample's position in its dataset, served by
:class:`~robustlab.common.data.ArrayDataset`; per-sample state is keyed by it), ``mask``, ``meta``, and
``unlabeled`` (the batch of the unlabelled loader, a dict with ``x`` and ``index``).

Files written to ``out_dir`` (each atomically: a temporary file, then a rename):

- ``last.pt``: model, the regime's networks, optimizers, scheduler, AMP scaler, regime state, the random states
  (global and each loader's own generator), epoch, early-stopping state and the metric history, after every
  epoch; ``fit(..., resume=True)`` continues from it, bit-identically on the CPU.
- ``best.pt``: the model, networks and regime state of the best epoch on the monitored validation metric.
- ``metrics.jsonl`` and ``metrics.csv``: one row per epoch; ``lr`` is the learning rate the epoch trained with (of
  the ``"model"`` optimizer's first parameter group, at the epoch's first step).

A run that diverges (the loss grows by orders of magnitude, the weights stop being finite) stops with a
:class:`~robustlab.common.errors.DivergenceError` before the checkpoint of that epoch is written, or warns
(:class:`DivergenceCheck`).

Callbacks (``fit(..., callbacks=[...])``) observe training without being a regime: objects with any of
``on_fit_start(model, state)``, ``on_epoch_start(model, state)``, ``on_epoch_end(model, state)`` (may return a dict
of numbers, added to the epoch's log) and ``on_fit_end(model, state)``, each called after the regime's hook of the
same name (``on_fit_end`` also after an error). An analysis that hooks intermediate layers (activation patterns:
:mod:`robustlab.common.analysis.activation_patterns`) uses them to know where epochs begin and end, without
changing the model or the regime. A callback's own state is not checkpointed.

Progress: a tqdm bar on a terminal, a few plain lines per epoch when stderr is a file (see
:mod:`robustlab.common.progress`; ``ROBUSTLAB_PROGRESS=bar|lines|off`` forces a mode).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from robustlab.common._distributed import Distributed
from robustlab.common.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from robustlab.common.errors import CheckpointError, ConfigError, DivergenceError
from robustlab.common.io import atomic_write_text, unwritable_reason
from robustlab.common.modes import model_mode
from robustlab.common.progress import LineProgress
from robustlab.common.progress import progress as progress_display
from robustlab.common.progress import write as write_line
from robustlab.common.regimes.base import FitState, Regime, StepContext

__all__ = ["EarlyStopping", "DivergenceCheck", "DIVERGENCE_ACTIONS", "FitResult", "fit", "evaluate", "load_best",
           "model_device", "resolve_device", "to_device", "as_batch", "BATCH_KEYS", "EPOCH_LENGTHS", "CALLBACK_HOOKS"]

BATCH_KEYS = ("x", "y", "index", "mask", "meta", "unlabeled")
"""The keys a batch dict may have: inputs, targets, the sample's dataset index, a per-sample mask, a dict of
metadata, and the batch of the unlabelled loader."""

CALLBACK_HOOKS = ("on_fit_start", "on_epoch_start", "on_epoch_end", "on_fit_end")
"""The methods a callback of :func:`fit` may have (each optional): see the module docstring."""

EPOCH_LENGTHS = ("labeled", "unlabeled")
"""Which loader sets the length of an epoch when there are two; the other one cycles."""

MetricFn = Callable[[Tensor, Tensor], float]

DIVERGENCE_ACTIONS = ("stop", "warn", "off")
"""What :func:`fit` does when training diverges (see :class:`DivergenceCheck`)."""


@dataclass(frozen=True)
class EarlyStopping:
    """Stop when a validation metric has not improved for ``patience`` epochs.

    Args:
        monitor: a key of the epoch log, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        mode: ``"min"`` or ``"max"``.
        patience: epochs without improvement before stopping.
        min_delta: smallest change that counts as an improvement.
    """

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 5
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping.mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 1:
            raise ConfigError(f"EarlyStopping.patience must be >= 1, got {self.patience}")

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@dataclass(frozen=True)
class DivergenceCheck:
    """Stop (or warn) when training diverges.

    Training has diverged when

    - a step's training loss (the value the regime's ``train_step`` returns) is more than ``factor`` times its
      reference in absolute value, or is not finite. The reference is the mean absolute loss of the run's first
      ``reference_steps`` steps (fewer when the first epoch is shorter), i.e. the loss at the start of training,
      not its running minimum: a loss that falls to ~0 and jitters back up never comes near it. While the
      reference is being measured, each step is compared with the mean of the steps before it, with ``factor``
      squared while that is one step (a single small batch's loss may be far below the typical one), so a loss
      that explodes at step 2 is caught there and kept out of the reference. The reference is checkpointed, so a
      resumed run uses the same one. The reference is at least ``min_reference``, so a run that starts near a
      loss of 0 (fine-tuning a trained model, adversarial training after clean warm-up epochs, a student
      initialized from its teacher) may rise to ``factor * min_reference`` (100 by default) before it counts as
      diverged; a loss whose scale is far below 1 by design wants a smaller ``min_reference``.
    - a parameter of the model or of the regime's trainable networks is NaN or infinite at the end of an epoch
      (after the regime's ``on_epoch_end``, before validation).

    Args:
        action: ``"stop"``: raise :class:`~robustlab.common.errors.DivergenceError` (single process: at the step
            the loss diverges; under ``torchrun``: at the end of that epoch, on process 0's decision); the
            checkpoint of the diverged epoch is not written, so ``out_dir`` keeps the last good epoch and a resume
            starts from there. ``"warn"``: one ``RuntimeWarning`` (at the end of the epoch), training goes on and
            :attr:`FitResult.diverged` says what happened. ``"off"``: no check. A NaN or infinite loss always
            stops the run with :class:`~robustlab.common.errors.NonFiniteLossError`.
        factor: how many times the reference the loss must exceed (default 1e4: four orders of magnitude).
        reference_steps: how many steps at the start of the run make the reference.
        min_reference: the smallest reference (an absolute loss level).
    """

    action: str = "stop"
    factor: float = 1e4
    reference_steps: int = 10
    min_reference: float = 1e-2

    def __post_init__(self) -> None:
        if self.action not in DIVERGENCE_ACTIONS:
            raise ConfigError(f"DivergenceCheck.action must be one of {', '.join(DIVERGENCE_ACTIONS)}, "
                              f"got {self.action!r}")
        if not (isinstance(self.factor, (int, float)) and math.isfinite(self.factor) and self.factor > 1):
            raise ConfigError(f"DivergenceCheck.factor must be a finite number > 1, got {self.factor!r}")
        if not isinstance(self.reference_steps, int) or self.reference_steps < 1:
            raise ConfigError(f"DivergenceCheck.reference_steps must be an int >= 1, got {self.reference_steps!r}")
        if not (isinstance(self.min_reference, (int, float)) and math.isfinite(self.min_reference)
                and self.min_reference >= 0):
            raise ConfigError(f"DivergenceCheck.min_reference must be a finite number >= 0, got "
                              f"{self.min_reference!r}")


def _divergence_check(divergence: str | DivergenceCheck | None) -> DivergenceCheck | None:
    """``fit``'s ``divergence`` argument as a check, or None for no check."""
    if isinstance(divergence, DivergenceCheck):
        return divergence if divergence.action != "off" else None
    if divergence is None:
        return None
    if not isinstance(divergence, str) or divergence not in DIVERGENCE_ACTIONS:
        raise ConfigError(f"divergence must be one of {', '.join(DIVERGENCE_ACTIONS)} or a DivergenceCheck, "
                          f"got {divergence!r}")
    return DivergenceCheck(action=divergence) if divergence != "off" else None


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict of metrics per epoch (resumed epochs included).
        best_epoch: the epoch (1-based) with the best monitored value, or None without validation.
        best_value: that value.
        stop_reason: why training ended before ``epochs`` (early stopping, a regime's request), else None.
        out_dir: where checkpoints and logs were written, or None.
        eval_model: the network validation used (the regime's ``eval_model``: the EMA teacher of a mean
            teacher, else the model).
        diverged: with ``divergence="warn"``, what diverged and when (e.g. ``"the training loss is 6.5e+29, more
            than 10000 times its reference 0.693 ... at epoch 2/5, step 3/8 (regime ERM)"``); None otherwise.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stop_reason: str | None = None
    out_dir: Path | None = None
    eval_model: nn.Module | None = None
    diverged: str | None = None

    @property
    def last(self) -> dict[str, float]:
        """The metrics of the last epoch run."""
        return self.history[-1] if self.history else {}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def as_batch(batch: Any) -> dict:
    """A batch as a dict: dicts pass through (every key kept, ``index`` included), ``(x, y, ...)`` tuples become
    ``{"x": x, "y": y}``, an ``(x,)`` tuple or a bare tensor (unlabelled data) ``{"x": x}``."""
    if isinstance(batch, Mapping):
        return batch  # type: ignore[return-value]
    if isinstance(batch, Tensor):
        return {"x": batch}
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return {"x": batch[0], "y": batch[1]}
    if isinstance(batch, (tuple, list)) and len(batch) == 1:
        return {"x": batch[0]}
    raise TypeError(f"a batch must be a dict with 'x' and 'y' or an (x, y) tuple, got {type(batch).__name__}")


def to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) batch to ``device``."""
    if isinstance(obj, Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device, non_blocking) for v in obj)
    return obj


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    *,
    loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Loss, accuracy (for class-index targets) and ``metrics`` of ``model`` over ``loader``, in eval mode.

    Args:
        model: the network; its train/eval mode is restored afterwards.
        loader: yields batch dicts (or ``(x, y)`` tuples).
        loss: ``loss(logits, y) -> scalar`` (mean over the batch); default cross entropy.
        metrics: ``name -> fn(logits, y) -> float``, called once on all logits and targets (on the CPU).
        device: where to run; default the model's device.

    Returns:
        ``{"loss": ..., "accuracy": ..., **metrics}``.
    """
    loss = loss or nn.functional.cross_entropy
    device = model_device(model) if device is None else resolve_device(device)
    total, n = 0.0, 0
    logits_all, y_all = [], []
    with model_mode(model, "eval"):
        for batch in loader:
            batch = to_device(as_batch(batch), device)
            x, y = batch["x"], batch["y"]
            logits = model(x)
            total += float(loss(logits, y)) * len(x)
            n += len(x)
            logits_all.append(logits.float().cpu())
            y_all.append(y.cpu())
    if n == 0:
        raise ConfigError("evaluate: the loader yielded no samples")
    logits, y = torch.cat(logits_all), torch.cat(y_all)
    out = {"loss": total / n}
    if y.ndim == 1 and not y.is_floating_point() and logits.ndim == 2:
        out["accuracy"] = (logits.argmax(1) == y).float().mean().item()
    for name, fn in (metrics or {}).items():
        out[name] = float(fn(logits, y))
    return out


def _write_logs(out_dir: Path, history: list[dict[str, float]]) -> None:
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in history))
    keys: list[str] = []
    for r in history:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(history)
    atomic_write_text(out_dir / "metrics.csv", buf.getvalue())


def _loader_generators(loader) -> list[torch.Generator]:
    """The distinct ``torch.Generator`` objects a loader draws from (its own, its sampler's)."""
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    found: list[torch.Generator] = []
    for g in (getattr(loader, "generator", None), getattr(sampler, "generator", None),
              getattr(getattr(batch_sampler, "sampler", None), "generator", None)):
        if isinstance(g, torch.Generator) and all(g is not h for h in found):
            found.append(g)
    return found


def _cycle(loader, what: str) -> Iterator[Any]:
    """The batches of ``loader``, starting a new pass (reshuffled) whenever one ends."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError(f"the {what} loader yielded no batches")


def _check_callbacks(callbacks: Sequence[Any] | None) -> list[Any]:
    """``fit``'s callbacks as a list; each must have at least one method of :data:`CALLBACK_HOOKS`."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, Sequence) or isinstance(callbacks, (str, bytes)):
        callbacks = [callbacks]
    for i, cb in enumerate(callbacks):
        if not any(callable(getattr(cb, h, None)) for h in CALLBACK_HOOKS):
            raise ConfigError(f"callbacks[{i}] ({type(cb).__name__}) has none of the callback methods "
                              f"{', '.join(CALLBACK_HOOKS)}")
    return list(callbacks)


def _clone(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().clone()
    if isinstance(obj, Mapping):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj)
    return obj


def fit(
    model: nn.Module,
    regime: Regime,
    train_loader,
    *,
    val_loader=None,
    unlabeled_loader=None,
    epoch_length: str = "labeled",
    optimizer: torch.optim.Optimizer | None = None,
    epochs: int = 1,
    scheduler=None,
    scheduler_interval: str = "epoch",
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    early_stopping: EarlyStopping | None = None,
    restore_best: bool | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    device: str | torch.device = "auto",
    amp: bool | str = "auto",
    grad_clip: float | None = None,
    progress: bool = True,
    divergence: str | DivergenceCheck | None = "stop",
    callbacks: Sequence[Any] = (),
) -> FitResult:
    """Train ``model`` with ``regime`` for ``epochs`` epochs.

    Args:
        model: the network (moved to ``device``).
        regime: turns a batch into a loss and may own networks, optimizers and its step, see
            :mod:`robustlab.common.regimes.base`.
        train_loader: yields batch dicts ``{"x", "y", optional "index", "mask", "meta"}`` (or ``(x, y)``
            tuples). Under ``torchrun`` its batch size is the global batch, split across the processes.
        val_loader: evaluated after every epoch by the regime's ``validate`` (metrics prefixed ``val_``).
        unlabeled_loader: a second loader of unlabelled data for semi-supervised regimes; its batch reaches the
            regime as ``batch["unlabeled"]`` (a dict with ``x`` and, from an ArrayDataset, ``index``). Sharded
            and reshuffled like the training loader.
        epoch_length: with two loaders, which one sets the epoch: ``"labeled"`` (default; the unlabelled loader
            cycles) or ``"unlabeled"`` (the labelled loader cycles, e.g. few labels and much unlabelled data).
            Each epoch starts a new pass of both loaders, so an epoch's batches depend only on the random state
            at its start (what the checkpoint stores).
        optimizer: the model's optimizer; default Adam (learning rate 1e-3) over the model and the regime's
            trainable networks. A regime may add optimizers of its own (``configure_optimizers``).
        epochs: total epochs (a resumed run counts the epochs already done).
        scheduler: a learning-rate scheduler of the ``"model"`` optimizer, or a dict of schedulers by optimizer
            name (a regime may add its own through ``configure_schedulers``); stepped every epoch or every step
            (``scheduler_interval``) and checkpointed.
        out_dir: where checkpoints and logs go; None keeps everything in memory.
        resume: continue from ``out_dir/last.pt`` if it exists (bit-identical on the CPU).
        early_stopping: stop when a validation metric stops improving; also picks the metric that ``best.pt``
            tracks (default ``val_loss``, lower is better).
        restore_best: load the best epoch's weights (model, networks, regime state) at the end; default True
            when ``early_stopping`` is given.
        metrics: extra validation metrics, ``name -> fn(logits, y)``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...
        amp: mixed precision; ``"auto"`` uses it on CUDA (bfloat16 where supported, else float16 with a
            gradient scaler) and not on the CPU.
        grad_clip: clip the gradient norm of each optimizer's parameters to this value.
        progress: show progress (main process only): a tqdm bar when stderr is a terminal, else a few plain lines
            per epoch (at 25, 50 and 75 % of the steps: step, running loss, elapsed time, ETA) besides the line
            of each epoch's metrics; ``ROBUSTLAB_PROGRESS=bar|lines|off`` forces a mode.
        divergence: what to do when training diverges (the loss grows to more than 1e4 times its value at the
            start, or a weight is no longer finite): ``"stop"`` (default) raises :class:`DivergenceError`,
            ``"warn"`` warns once and sets :attr:`FitResult.diverged`, ``"off"`` (or None) does not check; a
            :class:`DivergenceCheck` sets the factor and the reference too. A NaN or infinite loss stops the run
            whatever this says (:class:`NonFiniteLossError`: its gradients would make every weight NaN).
        callbacks: objects with any of the methods of :data:`CALLBACK_HOOKS`, called in the order given after the
            regime's hook of the same name, with the unwrapped model and the :class:`FitState`; the dict an
            ``on_epoch_end`` returns (numbers) joins the epoch's log. Their state is not checkpointed.

    Returns:
        A :class:`FitResult` with the metric history and the best epoch.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite (whatever ``divergence`` says; under ``torchrun``
            in the process that computed it); the message names epoch and step, and the files already in
            ``out_dir`` are those of the last completed epoch.
        DivergenceError: (``divergence="stop"``) the loss grew by orders of magnitude over its reference, or a
            weight is no longer finite; the message names the epoch (and the step), the value and the reference,
            and the files already in ``out_dir`` are those of the last good epoch (the diverged epoch's are not
            written). The model in memory holds the diverged weights.
        ConfigError: ``out_dir`` already holds a run and ``resume`` is False, or the arguments do not fit.
        CheckpointError: ``last.pt`` cannot be read or does not fit the model.
    """
    return _Run(model, regime, train_loader, val_loader=val_loader, unlabeled_loader=unlabeled_loader,
                epoch_length=epoch_length, optimizer=optimizer, epochs=epochs, scheduler=scheduler,
                scheduler_interval=scheduler_interval, out_dir=out_dir, resume=resume,
                early_stopping=early_stopping, restore_best=restore_best, metrics=metrics, device=device,
                amp=amp, grad_clip=grad_clip, progress=progress, divergence=divergence, callbacks=callbacks).run()


class _Run:
    """One call of :func:`fit`: set-up, resume, the epochs, best tracking, checkpoints and clean-up."""

    def __init__(self, model: nn.Module, regime: Regime, train_loader, *, val_loader, unlabeled_loader,
                 epoch_length: str, optimizer, epochs: int, scheduler, scheduler_interval: str, out_dir,
                 resume: bool, early_stopping: EarlyStopping | None, restore_best: bool | None, metrics,
                 device, amp, grad_clip: float | None, progress: bool,
                 divergence: str | DivergenceCheck | None, callbacks: Sequence[Any] = ()) -> None:
        if epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {epochs}")
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if epoch_length not in EPOCH_LENGTHS:
            raise ConfigError(f"epoch_length must be one of {EPOCH_LENGTHS}, got {epoch_length!r}")
        if epoch_length == "unlabeled" and unlabeled_loader is None:
            raise ConfigError("epoch_length='unlabeled' needs an unlabeled_loader")
        if not isinstance(regime, Regime):
            raise ConfigError(f"regime must be a robustlab Regime, got {type(regime).__name__}")
        self.watch = _divergence_check(divergence)
        self.callbacks = _check_callbacks(callbacks)
        # the divergence reference: the mean |loss| of the run's first steps (checkpointed), its running sum and
        # count while it is measured, and what this epoch's steps found: (what, where) or None
        self.reference: float | None = None
        self.ref_sum, self.ref_n = 0.0, 0
        self.diverging: tuple[str, str] | None = None
        self.out = Path(out_dir) if out_dir is not None else None
        if resume and self.out is None:
            raise ConfigError("resume=True needs an out_dir to resume from")
        reason = unwritable_reason(self.out, folder=True) if self.out is not None else None
        if reason:  # found before the first epoch is computed, not after it
            raise ConfigError(f"out_dir: {reason}")
        if self.out is not None and not resume and (self.out / "last.pt").exists():
            raise ConfigError(
                f"{self.out} already holds a run (last.pt); pass resume=True to continue it, or choose another "
                "out_dir"
            )
        self.model, self.regime, self.epochs, self.progress = model, regime, epochs, progress
        self.loaders = {"train": train_loader, "unlabeled": unlabeled_loader}
        self.val_loader, self.epoch_length, self.metrics = val_loader, epoch_length, metrics
        self.optimizer, self.scheduler, self.scheduler_interval = optimizer, scheduler, scheduler_interval
        self.resume, self.grad_clip = resume, grad_clip
        self.device = resolve_device(device)
        self.ddp = Distributed(self.device)
        if self.ddp.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.use_amp = self.device.type == "cuda" if amp == "auto" else bool(amp)
        cuda_bf16 = self.device.type != "cuda" or torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if cuda_bf16 else torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp and self.amp_dtype == torch.float16)
        self.stopper = early_stopping
        self.monitor = early_stopping or EarlyStopping()  # what best.pt tracks
        self.restore_best = early_stopping is not None if restore_best is None else restore_best
        self.result = FitResult(out_dir=self.out)
        self.start_epoch, self.bad_epochs = 0, 0
        self.best_in_memory: dict[str, Any] | None = None  # the best state when there is no out_dir
        self.state = FitState(epochs=epochs, device=self.device, val_loader=val_loader, dist=self.ddp)
        self.train_model: nn.Module = model
        self.set_up = False

    # -- the whole run --------------------------------------------------------------------------------------------
    def run(self) -> FitResult:
        failed = True
        try:
            self._prepare()
            rng = self._resume() if self.resume and (self.out / "last.pt").exists() else None
            self.regime.on_fit_start(self.model, self.state)
            self._call("on_fit_start")
            if rng is not None:  # last, so that nothing above shifts the random stream of the resumed epochs
                set_rng_state(rng)
            start = self.epochs if self.result.stop_reason is not None else self.start_epoch
            for epoch in range(start, self.epochs):
                sums = self._train_epoch(epoch)
                self._end_epoch(epoch, sums)
                if self.result.stop_reason:
                    if self.progress and self.ddp.main:
                        _write_line(f"stopped: {self.result.stop_reason}")
                    break
            self.ddp.barrier()  # best.pt is written by the main process
            self._restore_best()
            self.result.eval_model = self.regime.eval_model(self.model)
            failed = False
        finally:
            self._close(failed)
        return self.result

    def _prepare(self) -> None:
        """Set the regime up, move every network, shard the loaders, wrap for DDP, build the optimizers."""
        model, regime, state = self.model, self.regime, self.state
        regime.setup(model, state)
        self.set_up = True
        model.to(self.device)
        for net in regime.networks.values():
            net.to(self.device)
        self.loaders["train"] = self.ddp.shard(self.loaders["train"], seed=0)
        if self.loaders["unlabeled"] is not None:
            self.loaders["unlabeled"] = self.ddp.shard(self.loaders["unlabeled"], seed=1, what="unlabeled")
        if self.ddp.world > 1:
            self.train_model = self._ddp_wrap(model)
            regime._wrapped = {k: self._ddp_wrap(v) for k, v in regime.trainable_networks.items()}
            for net in regime.networks.values():  # an EMA teacher copied before the model was broadcast
                self.ddp.broadcast_state(net)
        self.optimizers = regime.configure_optimizers(model, self.optimizer)
        if not self.optimizers or not all(isinstance(o, torch.optim.Optimizer) for o in self.optimizers.values()):
            raise ConfigError(f"{type(regime).__name__}.configure_optimizers must return a non-empty dict of "
                              f"optimizers, got {self.optimizers!r}")
        self._check_networks_are_optimized()
        self.schedulers = self._schedulers()
        primary = self.loaders["unlabeled" if self.epoch_length == "unlabeled" else "train"]
        self.steps = len(primary)
        state.steps_per_epoch, state.global_step = self.steps, 0
        state.train_loader, state.unlabeled_loader = self.loaders["train"], self.loaders["unlabeled"]
        self.ctx = StepContext(optimizers=self.optimizers, scaler=self.scaler, device=self.device,
                               amp_dtype=self.amp_dtype, use_amp=self.use_amp, grad_clip=self.grad_clip,
                               state=state, describe=self._describe_step)

    def _check_networks_are_optimized(self) -> None:
        covered = {id(p) for opt in self.optimizers.values() for g in opt.param_groups for p in g["params"]}
        for name, net in self.regime.trainable_networks.items():
            if any(p.requires_grad and id(p) not in covered for p in net.parameters()):
                raise ConfigError(f"the trainable network {name!r} of {type(self.regime).__name__} has parameters in "
                                  f"no optimizer ({sorted(self.optimizers)}): it would never train")

    def _schedulers(self) -> dict[str, Any]:
        given = self.scheduler
        schedulers = dict(given) if isinstance(given, Mapping) else ({} if given is None else {"model": given})
        schedulers.update(self.regime.configure_schedulers(self.optimizers))
        for name, sched in schedulers.items():
            if name not in self.optimizers:
                raise ConfigError(f"a scheduler follows the optimizer {name!r}, which {type(self.regime).__name__} "
                                  f"does not have (it has {sorted(self.optimizers)})")
            if getattr(sched, "optimizer", self.optimizers[name]) is not self.optimizers[name]:
                raise ConfigError(f"the scheduler given for {name!r} steps another optimizer than the run's {name!r}")
        return schedulers

    def _step_schedulers(self, interval: str) -> None:
        if self.scheduler_interval == interval:
            for sched in self.schedulers.values():
                sched.step()

    def _ddp_wrap(self, module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _close(self, failed: bool) -> None:
        first: Exception | None = None
        try:
            if self.set_up:
                ends = [(type(self.regime).__name__, self.regime.on_fit_end)]
                ends += [(type(cb).__name__, cb.on_fit_end) for cb in self.callbacks if hasattr(cb, "on_fit_end")]
                for who, end in ends:  # every one runs (a callback removes its hooks), the first error is raised
                    try:
                        end(self.model, self.state)
                    except Exception as e:
                        if not failed and first is None:
                            first = e
                            continue
                        warnings.warn(f"{who}.on_fit_end failed after an earlier error: {e!r}", RuntimeWarning,
                                      stacklevel=2)
                if first is not None:
                    raise first
        finally:
            self.regime._wrapped = {}
            self.train_model = self.model  # the DDP reducers go before their process group
            self.ddp.close(synchronize=not failed)

    def _call(self, hook: str) -> list[Any]:
        """Call ``hook`` on every callback that has it; their return values in order."""
        return [getattr(cb, hook)(self.model, self.state) for cb in self.callbacks if hasattr(cb, hook)]

    # -- resume ---------------------------------------------------------------------------------------------------
    def _resume(self) -> dict[str, Any]:
        """Load ``last.pt`` into everything the run holds; returns the random state to restore last."""
        path = self.out / "last.pt"
        ckpt = self._load_snapshot(load_checkpoint(path), path)
        states = ckpt.get("optimizers") or {"model": ckpt.get("optimizer")}
        for name, opt in self.optimizers.items():
            if states.get(name) is None:
                raise CheckpointError(f"checkpoint {path} has no state for the optimizer {name!r}")
            opt.load_state_dict(states[name])
        saved = ckpt.get("schedulers") or ({"model": ckpt["scheduler"]} if ckpt.get("scheduler") else {})
        for name, sched in self.schedulers.items():
            if saved.get(name) is not None:
                sched.load_state_dict(saved[name])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        for which, saved in (ckpt.get("loaders") or {}).items():
            gens = _loader_generators(self.loaders.get(which))
            if len(gens) == len(saved):
                for g, s in zip(gens, saved):
                    g.set_state(s)
        self.start_epoch = int(ckpt["epoch"])
        self.state.global_step = self.start_epoch * self.steps
        self.result.history = list(ckpt.get("history", []))
        es = ckpt.get("early_stopping", {})
        self.result.best_value, self.result.best_epoch = es.get("best_value"), es.get("best_epoch")
        self.bad_epochs = int(es.get("bad_epochs", 0))
        self.result.stop_reason = ckpt.get("stop_reason")
        div = ckpt.get("divergence") or {}  # absent from older checkpoints: the reference is measured again
        self.reference, self.result.diverged = div.get("reference"), div.get("diverged")
        return ckpt["rng"]

    def _snapshot(self) -> dict[str, Any]:
        """The trained state that ``best.pt`` keeps: model, networks, regime state."""
        return {"model": self.model.state_dict(),
                "networks": {k: v.state_dict() for k, v in self.regime.networks.items()},
                "regime": self.regime.state_dict()}

    def _load_snapshot(self, payload: dict[str, Any], path: Path | None) -> dict[str, Any]:
        where = f"checkpoint {path}" if path is not None else "the best state kept in memory"
        return _load_trained_state(self.model, self.regime, payload, where)

    # -- one epoch ------------------------------------------------------------------------------------------------
    def _batches(self) -> Iterator[dict]:
        """The epoch's batches; with an unlabelled loader each carries its batch under ``"unlabeled"``."""
        train, unlabeled = self.loaders["train"], self.loaders["unlabeled"]
        if unlabeled is None:
            for b in train:
                yield as_batch(b)
        elif self.epoch_length == "labeled":
            other = _cycle(unlabeled, "unlabeled")
            for b in train:
                yield {**as_batch(b), "unlabeled": as_batch(next(other))}
        else:
            labeled = _cycle(train, "training")
            for u in unlabeled:
                yield {**as_batch(next(labeled)), "unlabeled": as_batch(u)}

    def _describe_step(self) -> str:
        return f"{self._where()}; {self._files()}"

    def _where(self, end_of_epoch: bool = False) -> str:
        s, regime = self.state, type(self.regime).__name__
        if end_of_epoch:
            return f"the end of epoch {s.epoch + 1}/{s.epochs} (regime {regime})"
        return f"epoch {s.epoch + 1}/{s.epochs}, step {s.step + 1}/{s.steps_per_epoch} (regime {regime})"

    def _files(self) -> str:
        """What ``out_dir`` holds while the current epoch runs."""
        if self.out is None:
            return "nothing was written"
        if self.state.epoch == 0:
            return f"no epoch was completed: nothing was written to {self.out}"
        return f"the files in {self.out} are those of epoch {self.state.epoch}"

    # -- divergence -----------------------------------------------------------------------------------------------
    def _watch_loss(self, value: float) -> None:
        """Compare a step's loss (a Python float: no device sync) with the reference, measuring it first."""
        check, size = self.watch, abs(value)
        if check is None or self.diverging is not None or self.result.diverged is not None:
            return
        if self.reference is not None:
            ref, factor = max(self.reference, check.min_reference), check.factor
        else:  # measuring: the steps so far; against a single step, squared (one tiny batch loss is no scale)
            ref = max(self.ref_sum / self.ref_n, check.min_reference) if self.ref_n else None
            factor = check.factor if self.ref_n >= 2 else check.factor ** 2
        if not math.isfinite(size) or (ref is not None and ref > 0 and size > factor * ref):
            what = (f"the training loss is {value:.4g}" if ref is None or not math.isfinite(size) else
                    f"the training loss is {value:.4g}, more than {factor:g} times its reference {ref:.4g} (the "
                    "mean absolute loss at the start of training)")
            self.diverging = (what, self._where())
            if check.action == "stop" and self.ddp.world == 1:  # under DDP process 0 decides at the epoch's end
                self._diverged(*self.diverging)
            return
        if self.reference is None:
            self.ref_sum, self.ref_n = self.ref_sum + size, self.ref_n + 1
            if self.ref_n >= min(check.reference_steps, self.steps):
                self.reference = self.ref_sum / self.ref_n

    def _nonfinite_weight(self) -> str | None:
        """The name of a parameter (model, trainable networks) that holds a NaN or an infinity, else None; one
        device sync per device when all are finite."""
        named: dict[int, tuple[str, Tensor]] = {}
        for prefix, net in (("model", self.model), *self.regime.trainable_networks.items()):
            for name, p in net.named_parameters():
                named.setdefault(id(p), (f"{prefix}.{name}", p))
        by_device: dict[torch.device, list[Tensor]] = {}
        with torch.no_grad():
            for _, p in named.values():
                by_device.setdefault(p.device, []).append(torch.isfinite(p).all())
            if all(bool(torch.stack(flags).all()) for flags in by_device.values()):
                return None
            return next(name for name, p in named.values() if not bool(torch.isfinite(p).all()))

    def _check_divergence(self) -> None:
        """At the end of an epoch: what its steps found, else the weights; process 0 decides under DDP."""
        if self.watch is None or self.result.diverged is not None:
            return
        found, self.diverging = self.diverging, None
        if found is None:
            bad = self._nonfinite_weight()
            if bad is not None:
                found = (f"the weights are no longer finite ({bad} holds NaN or infinite values)",
                         self._where(end_of_epoch=True))
        found = self.ddp.broadcast_object(found)
        if found is not None:
            self._diverged(*found)

    def _diverged(self, what: str, where: str) -> None:
        if self.watch is not None and self.watch.action == "stop":
            raise DivergenceError(f"training diverged: {what} at {where}; {self._files()}")
        self.result.diverged = f"{what} at {where}"
        if self.ddp.main:
            warnings.warn(f"training diverged: {what} at {where}; training goes on (divergence='warn'), but what it "
                          "produces is not a meaningful result", RuntimeWarning, stacklevel=6)

    def _train_epoch(self, epoch: int) -> tuple[float, int, dict[str, float], float, float]:
        state, regime = self.state, self.regime
        state.epoch, state.step = epoch, 0
        self.ddp.release()  # the collectives of the previous epoch have completed
        for loader in self.loaders.values():
            if isinstance(getattr(loader, "sampler", None), DistributedSampler):
                loader.sampler.set_epoch(epoch)
        regime.on_epoch_start(self.model, state)
        self._call("on_epoch_start")
        self.train_model.train()
        for net in regime.trainable_networks.values():
            net.train()
        lead = self.optimizers.get("model") or next(iter(self.optimizers.values()))
        lr = lead.param_groups[0]["lr"]  # what the epoch trains with (at its first step)
        t0 = time.perf_counter()
        loss_sum, n_seen, extra = 0.0, 0, {}
        # a bar on a terminal; in a log file a line at 25, 50 and 75 % (the epoch's metrics line follows)
        shown = self.progress and self.ddp.main
        bar = progress_display(self._batches(), total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}",
                               enabled=shown, unit="step", points=(0.25, 0.5, 0.75), leave=False, dynamic_ncols=True)
        # the running loss: every step for lines (each shows the loss at its step), 50 times an epoch for a bar,
        # never when nothing is shown
        refresh = (1 if isinstance(bar, LineProgress) else max(1, self.steps // 50)) if shown else 0
        for step, batch in enumerate(bar):
            state.step = step
            batch = to_device(batch, self.device, non_blocking=True)
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            self.ctx.stepped.clear()
            value = float(regime.train_step(self.ctx, self.train_model, batch))
            self._watch_loss(value)
            if self.ctx.stepped:
                self.scaler.update()
            self._step_schedulers("step")
            state.global_step += 1
            regime.on_step_end(self.model, state)
            bs = len(batch["x"])
            loss_sum += value * bs
            n_seen += bs
            for k, v in regime.step_metrics.items():
                extra[k] = extra.get(k, 0.0) + v * bs
            if refresh and step % refresh == 0:
                bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", refresh=False)
        bar.close()
        self._step_schedulers("epoch")
        return loss_sum, n_seen, extra, t0, lr

    def _end_epoch(self, epoch: int, sums: tuple[float, int, dict[str, float], float, float]) -> None:
        """Log the epoch, check for divergence, validate, track the best epoch, decide whether to stop, write the
        files."""
        loss_sum, n_seen, extra, t0, lr = sums
        total = self.ddp.all_sum([loss_sum, float(n_seen), *extra.values()])
        record: dict[str, float] = {"epoch": epoch + 1, "train_loss": total[0] / total[1]}
        record.update({f"train_{k}": v / total[1] for k, v in zip(extra, total[2:])})
        record.update(self.regime.on_epoch_end(self.model, self.state))
        for logged in self._call("on_epoch_end"):
            record.update(logged or {})
        if self.ddp.world > 1:  # every process validates and checkpoints the same buffers (batch-norm statistics)
            for net in (self.model, *self.regime.networks.values()):
                self.ddp.broadcast_state(net)
        self._check_divergence()  # before validation and before this epoch's files are written
        if self.val_loader is not None:
            val = self.regime.validate(self.model, self.val_loader, metrics=self.metrics, device=self.device)
            record.update({f"val_{k}": v for k, v in val.items()})
        record["lr"] = lr
        record["seconds"] = time.perf_counter() - t0
        # the decisions below are process 0's, so that every process stops at the same epoch
        record, regime_stop = self.ddp.broadcast_object((record, self.regime.stop_reason))
        self.result.history.append(record)
        improved = self._track_best(epoch, record)
        if regime_stop:
            self.result.stop_reason = regime_stop
        elif self.stopper is not None and self.bad_epochs >= self.stopper.patience:
            self.result.stop_reason = (
                f"early stopping: {self.stopper.monitor} did not improve for {self.stopper.patience} epochs "
                f"(best {self.result.best_value:.6g} at epoch {self.result.best_epoch})"
            )
        self._save(epoch, improved)
        if self.progress and self.ddp.main:
            shown = {k: v for k, v in record.items() if k not in ("epoch", "lr", "seconds")}
            _write_line(f"epoch {epoch + 1}/{self.epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))

    def _track_best(self, epoch: int, record: dict[str, float]) -> bool:
        monitor, result = self.monitor, self.result
        if monitor.monitor not in record:
            if self.stopper is not None:
                raise ConfigError(
                    f"EarlyStopping.monitor {monitor.monitor!r} is not among the logged metrics {sorted(record)}"
                )
            return False
        if not self.regime.best_eligible(self.state):
            return False
        value = record[monitor.monitor]
        if not monitor.improved(value, result.best_value):
            self.bad_epochs += 1
            return False
        result.best_value, result.best_epoch, self.bad_epochs = value, epoch + 1, 0
        if self.out is None and self.restore_best:
            self.best_in_memory = _clone(self._snapshot())
        return True

    def _save(self, epoch: int, improved: bool) -> None:
        if self.out is None or not self.ddp.main:
            return
        result = self.result
        _write_logs(self.out, result.history)
        if improved:
            save_checkpoint(self.out / "best.pt", {**self._snapshot(), "epoch": epoch + 1,
                                                   self.monitor.monitor: result.best_value})
        save_checkpoint(self.out / "last.pt", {
            **self._snapshot(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": epoch + 1,
            "history": result.history,
            "early_stopping": {"best_value": result.best_value, "best_epoch": result.best_epoch,
                               "bad_epochs": self.bad_epochs},
            "stop_reason": result.stop_reason,
            "divergence": {"reference": self.reference, "diverged": result.diverged},
            "rng": rng_state(),
            "loaders": {k: [g.get_state() for g in _loader_generators(v)] for k, v in self.loaders.items()
                        if v is not None},
        })

    def _restore_best(self) -> None:
        if not self.restore_best:
            return
        if self.out is not None and (self.out / "best.pt").exists():
            path = self.out / "best.pt"
            self._load_snapshot(load_checkpoint(path), path)
        elif self.best_in_memory is not None:
            self._load_snapshot(self.best_in_memory, None)


def _write_line(text: str) -> None:
    """One line to stderr: through tqdm on a terminal (so that a bar is not broken), plainly in a log file."""
    write_line(text)


def _load_trained_state(model: nn.Module, regime: Regime | None, payload: dict[str, Any], where: str
                        ) -> dict[str, Any]:
    """Load a checkpoint's model weights, the regime's networks and its state (what ``best.pt`` keeps)."""
    try:
        model.load_state_dict(payload["model"])
        for name, net in (regime.networks if regime is not None else {}).items():
            if name not in payload.get("networks", {}):
                raise CheckpointError(f"{where} has no weights for the network {name!r}")
            net.load_state_dict(payload["networks"][name])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{where} does not fit {type(model).__name__}: {e}") from e
    if regime is not None:
        extra = set(payload.get("networks", {})) - set(regime.networks)
        if extra:
            raise CheckpointError(f"{where} holds networks {sorted(extra)} that {type(regime).__name__} does not "
                                  "have")
        if "regime" in payload:
            regime.load_state_dict(payload["regime"] or {})
    return payload


def load_best(model: nn.Module, out_dir: str | os.PathLike, *, regime: Regime | None = None) -> dict[str, Any]:
    """Load ``out_dir/best.pt`` into ``model`` (and, given ``regime``, its networks and state); returns the
    checkpoint's fields.

    With a regime, its ``setup`` runs first (a fresh mean teacher creates its teacher, pruning re-parametrizes
    the model), so a new regime object of the same kind restores what training left.
    """
    path = Path(out_dir) / "best.pt"
    payload = load_checkpoint(path)
    if regime is not None:
        regime.setup(model, FitState())
    return _load_trained_state(model, regime, payload, f"checkpoint {path}")
