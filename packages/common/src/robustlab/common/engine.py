"""The one training loop: :func:`fit` and :func:`evaluate`, with checkpoints, resume, early stopping and DDP.

Every regime (ERM, noise injection, adversarial training, TRADES, and the semi-supervised, distillation and
noisy-label regimes of the domain packages) runs through :func:`fit`; what differs between them lives in the
regime (``regime(model, batch) -> loss`` plus hooks), never in a second loop.

Files written to ``out_dir`` (each atomically: a temporary file, then a rename):

- ``last.pt``: model, optimizer, scheduler, AMP scaler, regime state, RNG states, epoch, early-stopping state and
  the metric history, after every epoch; ``fit(..., resume=True)`` continues from it.
- ``best.pt``: the model weights of the best epoch on the monitored validation metric.
- ``metrics.jsonl`` and ``metrics.csv``: one row per epoch.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from robustlab.common.checkpoint import load_weights, rng_state, save_checkpoint, set_rng_state
from robustlab.common.errors import ConfigError, NonFiniteLossError
from robustlab.common.io import atomic_write_text
from robustlab.common.modes import model_mode
from robustlab.common.regimes.base import FitState, Regime

__all__ = ["EarlyStopping", "FitResult", "fit", "evaluate", "load_best", "model_device", "resolve_device", "to_device", "as_batch"]

MetricFn = Callable[[Tensor, Tensor], float]


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


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        history: one dict of metrics per epoch (resumed epochs included).
        best_epoch: the epoch (1-based) with the best monitored value, or None without validation.
        best_value: that value.
        stop_reason: why training ended before ``epochs`` (early stopping, a regime's request), else None.
        out_dir: where checkpoints and logs were written, or None.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stop_reason: str | None = None
    out_dir: Path | None = None

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
    """A batch as a dict: dicts pass through, ``(x, y, ...)`` tuples become ``{"x": x, "y": y}``."""
    if isinstance(batch, Mapping):
        return batch  # type: ignore[return-value]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return {"x": batch[0], "y": batch[1]}
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


class _Distributed:
    """The process group of a ``torchrun`` launch (WORLD_SIZE > 1), or a single process."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.created = False
        self.rank = 0
        # Tensors handed to collectives stay referenced here until the group is gone: otherwise a gloo worker
        # thread may free the last reference and wait for the GIL while the main thread, holding the GIL,
        # destroys the process group and joins that thread (a deadlock at the end of fit).
        self._keep: list[Tensor] = []
        if self.world > 1:
            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                dist.init_process_group(backend)
                self.created = True
            self.rank = dist.get_rank()

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        self._keep.append(t)
        dist.all_reduce(t)
        return t.cpu().tolist()

    def shard(self, loader, seed: int) -> DataLoader:
        """Rebuild ``loader`` so that each process reads its share of every global batch."""
        if self.world == 1 or not isinstance(loader, DataLoader) or isinstance(loader.sampler, DistributedSampler):
            return loader
        if loader.batch_size is None or loader.batch_size % self.world:
            raise ConfigError(
                f"the training loader's batch_size ({loader.batch_size}) is the global batch and must divide by "
                f"the number of processes ({self.world})"
            )
        sampler = DistributedSampler(
            loader.dataset, num_replicas=self.world, rank=self.rank,
            shuffle=isinstance(loader.sampler, RandomSampler), seed=seed, drop_last=loader.drop_last,
        )
        return DataLoader(
            loader.dataset, batch_size=loader.batch_size // self.world, sampler=sampler,
            num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
            drop_last=loader.drop_last, worker_init_fn=loader.worker_init_fn,
        )

    def barrier(self) -> None:
        if self.world > 1:
            self.all_sum([0.0])

    def close(self) -> None:
        if self.created:
            dist.destroy_process_group()
        self._keep.clear()


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


def fit(
    model: nn.Module,
    regime: Regime,
    train_loader,
    *,
    val_loader=None,
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
) -> FitResult:
    """Train ``model`` with ``regime`` for ``epochs`` epochs.

    Args:
        model: the network (moved to ``device``).
        regime: turns a batch into a loss, see :mod:`robustlab.common.regimes`.
        train_loader: yields batch dicts ``{"x", "y", optional "mask", "meta"}`` (or ``(x, y)`` tuples). Under
            ``torchrun`` its batch size is the global batch, split across the processes.
        val_loader: evaluated after every epoch (metrics prefixed ``val_``).
        optimizer: default Adam with learning rate 1e-3.
        epochs: total epochs (a resumed run counts the epochs already done).
        scheduler: a learning-rate scheduler, stepped every epoch or every step (``scheduler_interval``).
        out_dir: where checkpoints and logs go; None keeps everything in memory.
        resume: continue from ``out_dir/last.pt`` if it exists (bit-identical on the CPU).
        early_stopping: stop when a validation metric stops improving; also picks the metric that ``best.pt``
            tracks (default ``val_loss``, lower is better).
        restore_best: load the best epoch's weights into ``model`` at the end; default True when
            ``early_stopping`` is given.
        metrics: extra validation metrics, ``name -> fn(logits, y)``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:1"``...
        amp: mixed precision; ``"auto"`` uses it on CUDA (bfloat16 where supported, else float16 with a
            gradient scaler) and not on the CPU.
        grad_clip: clip the gradient norm to this value.
        progress: show a progress bar (main process only).

    Returns:
        A :class:`FitResult` with the metric history and the best epoch.

    Raises:
        NonFiniteLossError: the loss became NaN or infinite; the message names epoch and step, and the files
            already in ``out_dir`` are those of the last completed epoch.
        ConfigError: ``out_dir`` already holds a run and ``resume`` is False, or the arguments do not fit.
        CheckpointError: ``last.pt`` cannot be read or does not fit the model.
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if scheduler_interval not in ("epoch", "step"):
        raise ConfigError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ConfigError("resume=True needs an out_dir to resume from")
    if out is not None and not resume and (out / "last.pt").exists():
        raise ConfigError(
            f"{out} already holds a run (last.pt); pass resume=True to continue it, or choose another out_dir"
        )

    device = resolve_device(device)
    ddp = _Distributed(device)
    if ddp.world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    model.to(device)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
    use_amp = device.type == "cuda" if amp == "auto" else bool(amp)
    amp_dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp_dtype == torch.float16)
    stopper = early_stopping
    monitor = stopper or EarlyStopping()  # what best.pt tracks
    if restore_best is None:
        restore_best = early_stopping is not None

    train_loader = ddp.shard(train_loader, seed=0)
    train_model: nn.Module = model
    if ddp.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    result = FitResult(out_dir=out)
    start_epoch, bad_epochs, rng = 0, 0, None
    best_in_memory: dict[str, Tensor] | None = None  # the best weights when there is no out_dir
    if resume and (out / "last.pt").exists():
        ckpt = load_weights(model, out / "last.pt")
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        regime.load_state_dict(ckpt.get("regime") or {})
        start_epoch = int(ckpt["epoch"])
        result.history = list(ckpt.get("history", []))
        es = ckpt.get("early_stopping", {})
        result.best_value, result.best_epoch = es.get("best_value"), es.get("best_epoch")
        bad_epochs = int(es.get("bad_epochs", 0))
        result.stop_reason = ckpt.get("stop_reason")
        rng = ckpt["rng"]

    steps = len(train_loader)
    state = FitState(epoch=start_epoch, epochs=epochs, step=0, steps_per_epoch=steps,
                     global_step=start_epoch * steps, device=device, val_loader=val_loader, train_loader=train_loader)
    regime.on_fit_start(model, state)
    if rng is not None:  # last, so that nothing above shifts the random stream of the resumed epochs
        set_rng_state(rng)
    if result.stop_reason is not None:
        start_epoch = epochs  # the checkpointed run had already stopped

    try:
        for epoch in range(start_epoch, epochs):
            state.epoch, state.step = epoch, 0
            sampler = getattr(train_loader, "sampler", None)
            if isinstance(sampler, DistributedSampler):
                sampler.set_epoch(epoch)
            regime.on_epoch_start(model, state)
            train_model.train()
            t0 = time.perf_counter()
            loss_sum, n_seen, extra = 0.0, 0, {}
            bar = tqdm(train_loader, total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False,
                       disable=not (progress and ddp.main), dynamic_ncols=True)
            refresh = max(1, steps // 50)
            for step, batch in enumerate(bar):
                state.step = step
                batch = to_device(as_batch(batch), device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    loss = regime(train_model, batch)
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"the training loss is {value} at epoch {epoch + 1}/{epochs}, step {step + 1}/{steps} "
                        f"(regime {type(regime).__name__}); "
                        + (f"the files in {out} are those of epoch {epoch}" if out else "nothing was written")
                    )
                scaler.scale(loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None and scheduler_interval == "step":
                    scheduler.step()
                state.global_step += 1
                regime.on_step_end(model, state)
                bs = len(batch["x"])
                loss_sum += value * bs
                n_seen += bs
                for k, v in regime.step_metrics.items():
                    extra[k] = extra.get(k, 0.0) + v * bs
                if step % refresh == 0:
                    bar.set_postfix(loss=f"{loss_sum / n_seen:.4f}", refresh=False)
            bar.close()
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()

            sums = ddp.all_sum([loss_sum, float(n_seen), *extra.values()])
            record: dict[str, float] = {"epoch": epoch + 1, "train_loss": sums[0] / sums[1]}
            record.update({f"train_{k}": v / sums[1] for k, v in zip(extra, sums[2:])})
            record.update(regime.on_epoch_end(model, state))
            if val_loader is not None:
                val = evaluate(model, val_loader, loss=regime.loss, metrics=metrics, device=device)
                record.update({f"val_{k}": v for k, v in val.items()})
            record["lr"] = optimizer.param_groups[0]["lr"]
            record["seconds"] = time.perf_counter() - t0
            result.history.append(record)

            improved = False
            if monitor.monitor in record:
                value = record[monitor.monitor]
                improved = monitor.improved(value, result.best_value)
                if improved:
                    result.best_value, result.best_epoch, bad_epochs = value, epoch + 1, 0
                    if out is None and restore_best:
                        best_in_memory = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    bad_epochs += 1
            elif stopper is not None:
                raise ConfigError(
                    f"EarlyStopping.monitor {stopper.monitor!r} is not among the logged metrics {sorted(record)}"
                )
            if regime.stop_reason:
                result.stop_reason = regime.stop_reason
            elif stopper is not None and bad_epochs >= stopper.patience:
                result.stop_reason = (
                    f"early stopping: {stopper.monitor} did not improve for {stopper.patience} epochs "
                    f"(best {result.best_value:.6g} at epoch {result.best_epoch})"
                )

            if out is not None and ddp.main:
                _write_logs(out, result.history)
                if improved:
                    save_checkpoint(out / "best.pt", {"model": model.state_dict(), "epoch": epoch + 1,
                                                      monitor.monitor: result.best_value})
                save_checkpoint(out / "last.pt", {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "regime": regime.state_dict(),
                    "epoch": epoch + 1,
                    "history": result.history,
                    "early_stopping": {"best_value": result.best_value, "best_epoch": result.best_epoch,
                                       "bad_epochs": bad_epochs},
                    "stop_reason": result.stop_reason,
                    "rng": rng_state(),
                })
            if progress and ddp.main:
                shown = {k: v for k, v in record.items() if k not in ("epoch", "lr", "seconds")}
                tqdm.write(f"epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
            if result.stop_reason:
                if progress and ddp.main:
                    tqdm.write(f"stopped: {result.stop_reason}")
                break
        regime.on_fit_end(model, state)
        ddp.barrier()  # best.pt is written by the main process
        if restore_best and out is not None and (out / "best.pt").exists():
            load_weights(model, out / "best.pt")
        elif restore_best and best_in_memory is not None:
            model.load_state_dict(best_in_memory)
    finally:
        del train_model  # the DDP reducer goes before its process group
        ddp.close()
    return result


def load_best(model: nn.Module, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Load ``out_dir/best.pt`` into ``model``; returns the checkpoint's fields."""
    return load_weights(model, Path(out_dir) / "best.pt")

