"""Training a channel model on beats: the inter-patient validation split, class balance and the core's regimes.

Everything goes through :func:`robustlab.common.training.train` (the one engine): this module only chooses what
an ECG run needs:

- **validation by patient**: :func:`validation_split` holds out whole records of the training set
  (:func:`robustlab.common.data.group_split`, class-stratified), so the epoch kept is chosen on patients the
  model never saw, as the DS2 test patients; nothing is ever selected on DS2;
- **class balance**: the N class outnumbers S and F by 50 to 100 times. The training set keeps at most
  ``max_n`` N beats (a seeded draw), and the loss weighs the classes by
  :func:`robustlab.common.losses.class_weights` (``power`` softens the balanced weights);
- **robust training** from the core, in physical units: ``"noise"`` adds Gaussian noise of ``noise_std`` mV,
  ``"adversarial"`` trains on PGD examples within ``adv_eps`` mV (L-inf, unbounded: ECG has no valid range), the
  attack differentiating through the model's own preprocessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.config import bounded, check_values

__all__ = ["REGIMES", "ChannelTrainConfig", "balance_n", "train_channel", "validation_split"]

REGIMES = ("erm", "noise", "adversarial")
"""The training regimes of ``ecg train`` and the recipe: plain, Gaussian noise (mV), PGD adversarial (mV)."""


@dataclass(frozen=True)
class ChannelTrainConfig:
    """Hyperparameters of a channel model's training run (every field declares its range).

    Attributes:
        epochs: training epochs (the epoch with the best validation macro-F1 is kept).
        batch_size: training batch size.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        patience: stop after this many epochs without a better validation macro-F1 (None: never).
        max_n: most N beats kept for training (a seeded draw; 0 keeps every beat).
        class_power: exponent of the balanced class weights (0: unweighted loss, 1: scikit-learn's "balanced").
        regime: ``"erm"``, ``"noise"`` or ``"adversarial"``.
        noise_std: the noise regime's standard deviation, in mV.
        adv_eps, adv_steps: the adversarial regime's L-inf budget (mV) and PGD steps (step size
            ``2.5 * eps / steps``, random start).
        adv_warmup: clean epochs before the adversarial ones.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
    """

    epochs: int = bounded(20, ge=1)
    batch_size: int = bounded(128, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    patience: int | None = bounded(5, ge=1)
    max_n: int = bounded(15000, ge=0)
    class_power: float = bounded(0.5, ge=0, le=2)
    regime: str = bounded("erm", choices=REGIMES)
    noise_std: float = bounded(0.05, ge=0)
    adv_eps: float = bounded(0.02, ge=0)
    adv_steps: int = bounded(3, ge=1)
    adv_warmup: int = bounded(1, ge=0)
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)

    def regime_params(self) -> dict[str, Any]:
        """The options of :func:`robustlab.common.training.build_regime` for ``regime`` (without the loss)."""
        if self.regime == "noise":
            return {"std": self.noise_std}
        if self.regime == "adversarial":
            return {"eps": self.adv_eps, "steps": self.adv_steps, "alpha": 2.5 * self.adv_eps / self.adv_steps,
                    "random_start": True, "warmup_epochs": self.adv_warmup, "ramp_epochs": 0}
        return {}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_split(records: Any, y: Any, *, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, validation)`` with whole records on each side, about ``fraction`` of the beats held out,
    class proportions kept close (:func:`robustlab.common.data.group_split` with ``stratify=y``)."""
    from robustlab.common.data import group_split

    if not 0 < fraction < 1:
        raise ValueError(f"validation_split: fraction must be in (0, 1), got {fraction}")
    train_idx, val_idx = group_split(np.asarray(records), (1 - fraction, fraction), seed=seed, stratify=np.asarray(y))
    return train_idx, val_idx


def balance_n(y: np.ndarray, max_n: int, *, seed: int, n_class: int = 0) -> np.ndarray:
    """Indices keeping every beat of the other classes and at most ``max_n`` of class ``n_class`` (a seeded draw
    without replacement, in the original order); ``max_n=0`` keeps all."""
    y = np.asarray(y)
    idx = np.arange(len(y))
    normal = idx[y == n_class]
    if max_n == 0 or len(normal) <= max_n:
        return idx
    keep = np.random.default_rng(seed).choice(normal, size=max_n, replace=False)
    return np.sort(np.concatenate([idx[y != n_class], keep]))


def train_channel(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    num_classes: int,
    config: ChannelTrainConfig = ChannelTrainConfig(),
    seed: int = 0,
    model_kwargs: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
):
    """Train the channel model ``name`` (:data:`robustlab.ecg.models.CHANNEL_MODELS`) on beat windows.

    Args:
        name: ``"cnn"``, ``"resnet"``, ``"bigru"`` or ``"cnn_lstm"``.
        x_train, y_train: windows ``(N, L)`` or ``(N, C, L)`` in mV and class indices, already balanced by the
            caller if wanted (:func:`balance_n`).
        x_val, y_val: validation beats from other patients (:func:`validation_split`).
        num_classes: classes of the output.
        config: see :class:`ChannelTrainConfig`.
        seed: seeds the initialization and the shuffling.
        model_kwargs: further arguments of :func:`robustlab.ecg.models.build_channel_model` (``fs``,
            ``window``, ``r_index``...).
        out_dir, resume, progress: see :func:`robustlab.common.engine.fit`.

    Returns:
        ``(model, result)``: the model (eval mode, holding the best validation epoch's weights) and the
        engine's :class:`~robustlab.common.engine.FitResult`.
    """
    import torch

    from robustlab.common.losses import WeightedCrossEntropy, class_weights
    from robustlab.common.training import TrainConfig, train
    from robustlab.ecg.models import build_channel_model

    x_train, x_val = _as_signals(x_train), _as_signals(x_val)
    kwargs = {"in_channels": x_train.shape[1], "window": x_train.shape[2], **(model_kwargs or {})}
    torch.manual_seed(seed)
    model = build_channel_model(name, num_classes=num_classes, **kwargs)
    weights = class_weights(y_train, num_classes, how="balanced" if config.class_power > 0 else "none",
                            power=config.class_power or 1.0)
    params = {**config.regime_params(), "loss": WeightedCrossEntropy(weights)}
    tc = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                     weight_decay=config.weight_decay, patience=config.patience, monitor="val_macro_f1",
                     device=config.device)
    result = train(model, config.regime, (torch.from_numpy(x_train), torch.from_numpy(np.asarray(y_train, np.int64))),
                   (torch.from_numpy(x_val), torch.from_numpy(np.asarray(y_val, np.int64))), config=tc,
                   regime_params=params, seed=seed, out_dir=out_dir, resume=resume, progress=progress)
    model.eval()
    return model, result


def _as_signals(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise ValueError(f"beat windows must have shape (N, L) or (N, C, L), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{int((~np.isfinite(x)).sum())} samples of the beat windows are NaN or infinite")
    return x


def epochs_summary(history: list[dict[str, float]]) -> dict[str, Any]:
    """The validation curve of a run (macro-F1 and loss per epoch), rounded for a run record."""
    out: dict[str, Any] = {}
    for key in ("val_macro_f1", "val_loss", "train_loss", "loss"):
        if history and key in history[0]:
            out[key] = [round(float(h[key]), 5) if math.isfinite(float(h[key])) else None for h in history]
    return out
