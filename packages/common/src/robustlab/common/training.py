"""From a model, a named regime and data to one :func:`~robustlab.common.engine.fit` call.

Domain packages (genomics, ECG, seismic, vision) train through :func:`train` instead of each writing its own
loaders, optimizer, early stopping and validation metrics: the task (``"multiclass"``, ``"multilabel"``,
``"regression"``) picks the loss, the validation metrics and the metric that chooses the best epoch.

Examples::

    >>> import torch
    >>> from robustlab.common.models import MLP
    >>> from robustlab.common.training import TrainConfig, build_regime, train
    >>> x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    >>> model = MLP(2, 2, hidden=(8,))
    >>> regime = build_regime("adversarial", model, eps=0.1, steps=3)
    >>> result = train(model, regime, (x, y), (x, y), config=TrainConfig(epochs=2, batch_size=16))
    >>> sorted(k for k in result.history[-1] if k.startswith("val_"))
    ['val_accuracy', 'val_balanced_accuracy', 'val_loss', 'val_macro_f1']
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.regimes.base import Regime
from robustlab.common.tasks import Task, get_task

__all__ = ["REGIME_NAMES", "TrainConfig", "build_regime", "l2_param_groups", "predict_proba", "task_metrics", "train"]

REGIME_NAMES = (
    "erm", "noise", "adversarial", "fast_adversarial", "trades",
    "mean_teacher", "vat", "eaat", "knowledge_distillation", "ard", "co_teaching", "gradual_pruning",
)
"""The names :func:`build_regime` takes."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a training run that are not the regime's.

    Attributes:
        epochs: training epochs.
        batch_size: training batch size (the global batch under ``torchrun``).
        lr: learning rate.
        weight_decay: L2 weight decay of the optimizer.
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        momentum: SGD momentum.
        patience: early-stopping patience in epochs; None trains every epoch (the best epoch's weights are still
            restored when there is validation data).
        monitor: the validation metric that picks the best epoch, e.g. ``"val_macro_f1"``; default per task
            (see :func:`task_metrics`).
        restore: with validation data, which weights the model holds at the end: ``"best"`` (the epoch best by
            ``monitor``) or ``"last"`` (the final epoch's; ``best.pt`` is still written).
        unlabeled_batch_size: batch size of the unlabelled loader; default ``batch_size``.
        epoch_length: ``"labeled"`` or ``"unlabeled"``: which loader sets the epoch (see ``fit``).
        val_batch_size: batch size of validation.
        grad_clip: gradient-norm clipping, or None.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
        divergence: ``"stop"`` (raise :class:`~robustlab.common.errors.DivergenceError`), ``"warn"`` or ``"off"``
            when the loss grows by orders of magnitude over its value at the start or a weight is no longer
            finite (see :class:`~robustlab.common.engine.DivergenceCheck`).
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9
    patience: int | None = None
    monitor: str | None = None
    restore: str = "best"
    unlabeled_batch_size: int | None = None
    epoch_length: str = "labeled"
    val_batch_size: int = 512
    grad_clip: float | None = None
    device: str = "cpu"
    divergence: str = "stop"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "val_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"TrainConfig.lr must be a finite number > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.restore not in ("best", "last"):
            raise ConfigError(f"TrainConfig.restore must be 'best' or 'last', got {self.restore!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"TrainConfig.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"TrainConfig.patience must be >= 1 or None, got {self.patience!r}")
        if self.unlabeled_batch_size is not None and self.unlabeled_batch_size < 1:
            raise ConfigError(f"TrainConfig.unlabeled_batch_size must be >= 1, got {self.unlabeled_batch_size!r}")
        if self.divergence not in ("stop", "warn", "off"):
            raise ConfigError(f"TrainConfig.divergence must be 'stop', 'warn' or 'off', got {self.divergence!r}")


def task_metrics(task: str | Task) -> tuple[dict[str, Callable[[Tensor, Tensor], float]], str, str]:
    """The validation metrics of a task, the metric that picks the best epoch, and its direction.

    - multiclass: accuracy (from ``evaluate``), macro-F1, balanced accuracy; best by ``val_macro_f1``.
    - multilabel: macro AUROC and AUPR over the labels (a label with one class only is left out; 0.5 when no
      label is defined); best by ``val_auroc``.
    - regression: MAE, RMSE, R²; best by ``val_rmse`` (lower is better).
    """
    from robustlab.common import metrics as m

    task = get_task(task)
    if task.name == "multiclass":
        return ({"macro_f1": lambda logits, y: m.macro_f1(y, logits.argmax(1)),
                 "balanced_accuracy": lambda logits, y: m.balanced_accuracy(y, logits.argmax(1))},
                "val_macro_f1", "max")
    if task.name == "multilabel":
        return {"auroc": _ranking(m.auroc), "aupr": _ranking(m.aupr)}, "val_auroc", "max"
    return ({"mae": lambda o, y: m.mae(y, o.reshape(y.shape)), "rmse": lambda o, y: m.rmse(y, o.reshape(y.shape)),
             "r2": lambda o, y: m.r2(y, o.reshape(y.shape))}, "val_rmse", "min")


def _ranking(fn: Callable[..., float]) -> Callable[[Tensor, Tensor], float]:
    def metric(logits: Tensor, y: Tensor) -> float:
        import warnings

        import numpy as np

        s, t = logits.double().numpy(), y.double().numpy()
        if s.ndim == 2 and s.shape[1] == 1:
            s, t = s[:, 0], t[:, 0]
        if not np.isfinite(s).all():
            return float("nan")  # a diverged model: never a best epoch
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return float(fn(t, s))
        except ValueError:  # no label has both classes (validated scores and shapes above and by the metric)
            return 0.5

    metric.__name__ = fn.__name__
    return metric


def build_regime(name: str, model: nn.Module, *, task: str | Task = "multiclass", **params: Any) -> Regime:
    """The regime called ``name`` for ``model``, with the task's loss; ``params`` are the regime's options.

    Attack-based regimes (``adversarial``, ``trades``, ``ard``) take the attack's options here: ``eps``,
    ``steps``, ``alpha``, ``bounds``, ``random_start``, ``norm``; ``adversarial`` also ``fraction``,
    ``warmup_epochs`` and ``ramp_epochs`` (its :class:`~robustlab.common.regimes.schedules.EpsRamp`).
    ``knowledge_distillation`` and ``ard`` need ``teacher=``, ``co_teaching`` needs ``peer=``.

    Raises:
        ConfigError: an unknown name (the message lists :data:`REGIME_NAMES`) or options the regime does not take.
    """
    from robustlab.common import regimes as r

    task = get_task(task)
    if name not in REGIME_NAMES:
        raise ConfigError(f"unknown regime {name!r}; choose from {', '.join(REGIME_NAMES)}")
    try:
        if name in ("adversarial", "trades", "ard"):
            # ARD's authors attack the student in train mode (batch-norm statistics update during the attack)
            attack = _attack(model, task, params, mode="train" if name == "ard" else "eval")
            if name == "adversarial":
                from robustlab.common.regimes.schedules import EpsRamp

                schedule = EpsRamp(warmup_epochs=params.pop("warmup_epochs", 0),
                                   ramp_epochs=params.pop("ramp_epochs", "auto"))
                return r.AdversarialTraining(attack, schedule=schedule, task=task, **params)
            return getattr(r, {"trades": "TRADES", "ard": "ARD"}[name])(attack=attack, task=task, **params)
        classes = {"erm": "ERM", "noise": "GaussianNoise", "fast_adversarial": "FastAdversarialTraining",
                   "mean_teacher": "MeanTeacher", "vat": "VAT", "eaat": "EAAT",
                   "knowledge_distillation": "KnowledgeDistillation", "co_teaching": "CoTeaching",
                   "gradual_pruning": "GradualPruning"}
        return getattr(r, classes[name])(task=task, **params)
    except TypeError as e:
        raise ConfigError(f"regime {name!r}: {e}") from None


def _attack(model: nn.Module, task: Task, params: dict[str, Any], *, mode: str):
    from robustlab.common.attacks import PGD

    keys = ("eps", "steps", "alpha", "bounds", "random_start", "norm")
    options = {k: params.pop(k) for k in keys if k in params}
    if "eps" not in options:
        raise ConfigError("an attack-based regime needs eps=")
    return PGD(model, loss=task.attack_loss, model_mode=params.pop("model_mode", mode), **options)


def _dataset(data: Any, what: str):
    from torch.utils.data import Dataset

    from robustlab.common.data import ArrayDataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return ArrayDataset(*data)
    raise ConfigError(f"{what} must be a Dataset or an (x, y) pair of arrays, got {type(data).__name__}")


def _optimizer(model: nn.Module, regime: Regime, config: TrainConfig) -> torch.optim.Optimizer:
    params = regime.trainable_parameters(model)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def l2_param_groups(
    model: nn.Module,
    coefficient: float,
    *,
    penalized: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear),
) -> list[dict[str, Any]]:
    """Optimizer parameter groups that add ``coefficient * sum(w ** 2)`` over the weights and biases of the
    ``penalized`` layers to the loss, and nothing for the other parameters (batch norm, embeddings, ...).

    For an optimizer with coupled L2 (``torch.optim.Adam``/``SGD`` ``weight_decay``, which adds
    ``weight_decay * w`` to the gradient), ``weight_decay = 2 * coefficient`` on those parameters is exactly the
    gradient of the penalty, so the training steps equal those of ``loss + coefficient * sum(w ** 2)`` (the
    reported loss leaves the penalty out). This is the L2 of Keras/TensorFlow code such as ``deepomics``
    (``reg = l2 * reduce_sum(square(params))`` over the convolution and dense layers), as opposed to weight decay on
    every parameter.

    Args:
        model: the network.
        coefficient: the penalty's coefficient, ``>= 0``.
        penalized: the layer types whose parameters are penalized.

    Returns:
        ``[{"params": penalized, "weight_decay": 2 * coefficient}, {"params": others, "weight_decay": 0.0}]``,
        empty groups left out; pass it as the optimizer's first argument.
    """
    if not (coefficient >= 0 and math.isfinite(coefficient)):
        raise ConfigError(f"l2_param_groups: coefficient must be finite and >= 0, got {coefficient}")
    seen: set[int] = set()
    penal: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, penalized):
            for p in module.parameters(recurse=False):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    penal.append(p)
    others = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    groups = [{"params": penal, "weight_decay": 2.0 * coefficient}, {"params": others, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def train(
    model: nn.Module,
    regime: Regime | str,
    train_data,
    val_data=None,
    *,
    task: str | Task = "multiclass",
    config: TrainConfig = TrainConfig(),
    unlabeled_data=None,
    regime_params: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    metrics: Mapping[str, Callable[[Tensor, Tensor], float]] | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = False,
):
    """Train ``model`` with ``regime`` through :func:`~robustlab.common.engine.fit`.

    Args:
        model: the network; trained in place.
        regime: a :class:`~robustlab.common.regimes.base.Regime`, or a name from :data:`REGIME_NAMES` built
            with ``regime_params`` and the task's loss.
        train_data: a Dataset of batch dicts or an ``(x, y)`` pair of arrays; shuffled each epoch by a generator
            seeded with ``seed`` (its state is checkpointed, so a resumed run is bit-identical).
        val_data: validation data, same forms; the best epoch by ``config.monitor`` is restored at the end.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        config: epochs, batch size, optimizer, early stopping, device.
        unlabeled_data: unlabelled data for semi-supervised regimes (a Dataset or an array of inputs).
        regime_params: options of a named regime.
        optimizer: use this optimizer instead of the one ``config`` describes.
        metrics: validation metrics instead of the task's (:func:`task_metrics`).
        out_dir, resume, progress: see ``fit``.
        seed: seeds the shuffling generators (seed the model's initialization before building it).

    Returns:
        The :class:`~robustlab.common.engine.FitResult`; ``result.eval_model`` is the network to predict with.
    """
    from torch.utils.data import DataLoader

    from robustlab.common.engine import EarlyStopping, fit

    task = get_task(task)
    if isinstance(regime, str):
        regime = build_regime(regime, model, task=task, **dict(regime_params or {}))
    elif regime_params:
        raise ConfigError("regime_params is for a named regime; this regime is already built")
    optimizer = optimizer or _optimizer(model, regime, config)
    loader = DataLoader(_dataset(train_data, "train_data"), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    kwargs: dict[str, Any] = {}
    if unlabeled_data is not None:
        if isinstance(unlabeled_data, Tensor) or hasattr(unlabeled_data, "__array__"):
            from robustlab.common.data import ArrayDataset

            unlabeled_data = ArrayDataset(unlabeled_data)  # inputs only; batches keep their index
        kwargs["unlabeled_loader"] = DataLoader(unlabeled_data, batch_size=config.unlabeled_batch_size
                                                or config.batch_size, shuffle=True,
                                                generator=torch.Generator().manual_seed(seed + 1))
        kwargs["epoch_length"] = config.epoch_length
    if val_data is not None:
        default_metrics, monitor, mode = task_metrics(task)
        monitor = config.monitor or monitor
        if config.monitor is not None:
            mode = "min" if monitor.endswith(("loss", "mae", "rmse")) else "max"
        kwargs["val_loader"] = DataLoader(_dataset(val_data, "val_data"), batch_size=config.val_batch_size)
        kwargs["metrics"] = dict(metrics) if metrics is not None else default_metrics
        kwargs["early_stopping"] = EarlyStopping(monitor=monitor, mode=mode, patience=config.patience or config.epochs)
        kwargs["restore_best"] = config.restore == "best"
    return fit(model, regime, loader, optimizer=optimizer, epochs=config.epochs, out_dir=out_dir, resume=resume,
               device=config.device, grad_clip=config.grad_clip, progress=progress, divergence=config.divergence,
               **kwargs)


def predict_proba(model: nn.Module, x: Any, *, batch_size: int = 512, device: str | torch.device | None = None):
    """Class probabilities ``(N, K)`` (softmax of the logits) of a classifier over inputs ``(N, *)``, as a NumPy
    array: eval mode (every submodule's mode restored afterwards), no gradients, in chunks of ``batch_size``.

    Args:
        model: a classifier returning ``(N, K)`` logits.
        x: inputs (array or tensor), cast to float32.
        batch_size: inputs per forward pass.
        device: where to run; default the device of the model's parameters.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> p = predict_proba(MLP(2, 3), torch.randn(5, 2))
        >>> p.shape, bool(abs(p.sum(1) - 1).max() < 1e-6)
        ((5, 3), True)
    """
    import numpy as np

    from robustlab.common.engine import model_device
    from robustlab.common.modes import model_mode

    x = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not isinstance(x, Tensor) else x.float()
    dev = torch.device(device) if device is not None else model_device(model)
    out = []
    with torch.no_grad(), model_mode(model, "eval"):
        for chunk in x.split(batch_size):
            out.append(torch.softmax(model(chunk.to(dev)).float(), 1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
