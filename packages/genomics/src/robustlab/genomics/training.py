"""The four training variants of Koo et al. (2019) as a small explicit API over the core engine.

- ``standard``: plain empirical risk minimization.
- ``regularized``: dropout (the model's ``paper_dropout``) + batch normalization + L2 ``1e-6`` (as Adam's
  weight decay), all three together.
- ``noise``: Gaussian input noise ``N(0, 0.1)`` added to every training batch.
- ``adversarial``: PGD (L-inf, ``eps=0.2``, no random start) on half of every batch after clean warm-up epochs.
  One-hot DNA is attacked in its own units and each step is clipped to ``[0, 1]``, as in the authors' code (an
  observed nucleotide can only go down, the other three only up).

Every variant trains through the core's :func:`robustlab.common.training.train` (one ``fit`` call: seeded loaders,
Adam, the best epoch by validation AUROC) with a binary cross-entropy on logits, which serves the binary
``(N, 1)`` task and the multi-label ``(N, 12)`` task alike.

Reference:
    Koo, P. K., Qian, S., Kaplun, G., Volf, V., Kalimeris, D. "Robust Neural Networks are More Interpretable for
    Genomics", bioRxiv 657437, 2019.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ARCHS", "VARIANTS", "TrainConfig", "build_model", "build_regime", "classification_metrics", "train"]

VARIANTS = ("standard", "regularized", "noise", "adversarial")
"""The training variants of the paper."""

ARCHS = ("localnet", "distnet", "cnnk")
"""Architecture names accepted by :func:`build_model`."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run.

    Attributes:
        epochs: training epochs.
        batch_size: training batch size.
        lr: Adam learning rate.
        weight_decay: L2 of the regularized variant (Adam's weight decay); the other variants use none.
        noise_std: standard deviation of the Gaussian input noise of the ``noise`` variant.
        adv_eps: L-inf budget of the ``adversarial`` variant, in one-hot units.
        adv_steps: PGD steps (step size ``2.5 * eps / steps``).
        adv_bounds: the range each attacked input is clipped to (None: unbounded).
        adv_warmup_epochs: clean epochs before the attack starts (then the full budget, no further ramp).
        adv_fraction: fraction of each batch made adversarial.
        patience: early-stopping patience on validation AUROC; None trains every epoch (``best.pt`` and the
            restored weights still follow validation AUROC).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-6
    noise_std: float = 0.1
    adv_eps: float = 0.2
    adv_steps: int = 20
    adv_bounds: tuple[float, float] | None = (0.0, 1.0)
    adv_warmup_epochs: int = 20
    adv_fraction: float = 0.5
    patience: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "adv_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.adv_warmup_epochs < 0:
            raise ValueError(f"TrainConfig.adv_warmup_epochs must be >= 0, got {self.adv_warmup_epochs}")
        if not 0.0 <= self.adv_fraction <= 1.0:
            raise ValueError(f"TrainConfig.adv_fraction must be in [0, 1], got {self.adv_fraction}")
        if self.lr <= 0 or self.weight_decay < 0 or self.noise_std < 0 or self.adv_eps < 0:
            raise ValueError("TrainConfig: lr must be > 0 and weight_decay, noise_std, adv_eps >= 0")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"TrainConfig.patience must be >= 1 or None, got {self.patience}")


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def build_model(arch: str, variant: str, *, num_tasks: int = 1, length: int = 200) -> nn.Module:
    """The network of ``arch`` for ``variant``: the regularized variant gets the paper's dropout and batch norm.

    Args:
        arch: ``"localnet"`` (shallow), ``"distnet"`` (deep) or ``"cnnk"`` (CNN-k with its default pool).
        variant: one of :data:`VARIANTS`.
        num_tasks: outputs (1 binary, 12 multi-label).
        length: sequence length.
    """
    from robustlab.genomics.models import CNNk, DistNet, LocalNet

    _check_variant(variant)
    classes = {"localnet": LocalNet, "distnet": DistNet, "cnnk": CNNk}
    if arch not in classes:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    cls = classes[arch]
    if variant == "regularized":
        return cls(num_tasks, length=length, dropout=cls.paper_dropout, batch_norm=True)
    return cls(num_tasks, length=length)


def _bce(logits: Tensor, y: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))


def build_regime(variant: str, model: nn.Module, config: TrainConfig):
    """The core regime of ``variant``, with a binary cross-entropy on logits (binary or multi-label targets)."""
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import ERM, AdversarialTraining, GaussianNoise
    from robustlab.common.regimes.schedules import EpsRamp

    _check_variant(variant)
    if variant in ("standard", "regularized"):
        return ERM(loss=_bce, task="multilabel")
    if variant == "noise":
        return GaussianNoise(config.noise_std, loss=_bce, task="multilabel")
    # The attack maximizes the summed loss (the gradient's sign is all that counts for L-inf steps).
    attack = PGD(model, eps=config.adv_eps, steps=config.adv_steps, random_start=False, bounds=config.adv_bounds,
                 loss=nn.BCEWithLogitsLoss(reduction="sum"))
    return AdversarialTraining(attack, fraction=config.adv_fraction,
                               schedule=EpsRamp(warmup_epochs=config.adv_warmup_epochs, ramp_epochs=0),
                               loss=_bce, task="multilabel")


def classification_metrics(logits: Any, y: Any) -> dict[str, float]:
    """Test-set AUROC and AUPR (macro over tasks) of logits against 0/1 targets; NaN where undefined."""
    import numpy as np

    from robustlab.common.metrics import aupr, auroc

    s = np.asarray(logits.detach().cpu() if isinstance(logits, Tensor) else logits, dtype=np.float64)
    t = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y, dtype=np.float64)
    if s.ndim == 2 and s.shape[1] == 1:
        s, t = s[:, 0], t[:, 0]
    out = {}
    for name, fn in (("auroc", auroc), ("aupr", aupr)):
        try:
            out[name] = float(fn(t, s))
        except ValueError:  # a single class in the set
            out[name] = float("nan")
    return out


def _val_auroc(logits: Tensor, y: Tensor) -> float:
    value = classification_metrics(logits, y)["auroc"]
    return value if value == value else 0.5  # NaN (one class only) would break the comparison


def train(
    arch: str,
    variant: str,
    train_ds,
    valid_ds,
    config: TrainConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool = False,
):
    """Train ``arch`` with ``variant`` on ``train_ds`` (validated on ``valid_ds``) through the core engine.

    Args:
        arch, variant: see :func:`build_model`.
        train_ds, valid_ds: ``SimulatedDataset`` or ``SequenceDataset`` (anything with ``x`` ``(N, 4, L)`` and
            ``y`` ``(N, T)``); ``valid_ds`` may be None.
        config: the hyperparameters.
        out_dir: where the engine writes ``last.pt``, ``best.pt`` and the metric logs; None keeps them in memory.
        seed: seeds the initialization, the shuffling, the noise and the attacks.
        resume: continue the run in ``out_dir`` from its ``last.pt`` (bit-identical on the CPU).
        progress: show the engine's progress bar.

    Returns:
        ``(model, FitResult)``; with a validation set the model holds the weights of its best validation AUROC.
    """
    from robustlab.common.recipes.base import seed_everything
    from robustlab.common.training import TrainConfig as FitConfig
    from robustlab.common.training import train as train_task

    seed_everything(seed)
    x, y = train_ds.x, train_ds.y
    if y.ndim != 2 or y.shape[1] < 1:
        raise ValueError(f"train: targets must have shape (N, T) with T >= 1, got {y.shape}")
    model = build_model(arch, variant, num_tasks=y.shape[1], length=x.shape[2])
    regime = build_regime(variant, model, config)
    decay = config.weight_decay if variant == "regularized" else 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=decay)
    fit_config = FitConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, patience=config.patience,
                           monitor="val_auroc", device=config.device)
    result = train_task(model, regime, (x, y), None if valid_ds is None else (valid_ds.x, valid_ds.y),
                        task="multilabel", config=fit_config, optimizer=optimizer, metrics={"auroc": _val_auroc},
                        out_dir=out_dir, resume=resume, seed=seed, progress=progress)
    return model, result
