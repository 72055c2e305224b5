"""The training variants of Koo et al. (2019) as a small explicit API over the core engine.

The variants follow the authors' code (``koo-lab/uncovering_regulatory_codes`` at commit 346b36d,
``code/1_train_all_models.py``, ``code/1_train_all_models_adv.py`` and the ``deepomics`` layers they build on):

- ``standard``: plain empirical risk minimization.
- ``regularized``: dropout (the model's ``paper_dropout``) + batch normalization + L2 ``1e-6 * sum(w ** 2)`` over
  the convolution and dense weights and biases, added to the loss (deepomics' ``l2``; batch norm is not
  penalized), all three together.
- ``noise``: Gaussian input noise ``N(0, 0.1)`` added to every training input, fresh each epoch.
- ``adversarial``: each clean batch of 50 plus its 50 PGD copies (``mode="append"``) after 20 clean epochs; PGD
  takes 20 signed-gradient steps of ``0.1 / (i + 10)`` (0.113 in all) from the clean input, no random start,
  clipped to ``x ± 0.2`` and to ``[0, 1]``, the model in eval mode (the authors' ``perturb`` sets
  ``is_train=False``: batch norm on running statistics; their dropout stays on during the attack, ours is off, a
  stated departure).
- ``regularized+noise`` and ``regularized+adversarial``: the regularized network trained with noise or
  adversarially, as the authors also did.

Which weights are kept (``TrainConfig.keep="auto"``) follows the authors too: the adversarial variants keep their
final weights (100 epochs); the others keep the weights of the lowest validation loss (early stopping with
patience 25 of at most 200 epochs in the authors' runs). Weights are initialized as in deepomics: Glorot-uniform
kernels and biases of 0.05 (``init="glorot"``).

Every variant trains through the core's :func:`robustlab.common.training.train` (one ``fit`` call: seeded
loaders, Adam) with a binary cross-entropy on logits, which serves the binary ``(N, 1)`` task and the multi-label
``(N, 12)`` task alike.

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

__all__ = [
    "ARCHS", "KOO2019_STEP_SIZES", "VARIANTS", "TrainConfig", "adv_step_sizes", "build_model", "build_regime",
    "classification_metrics", "glorot_init", "train", "variant_parts",
]

VARIANTS = ("standard", "regularized", "noise", "regularized+noise", "adversarial", "regularized+adversarial")
"""The training variants of the paper: the authors' grid of regularization × (none, noise, adversarial)."""

ARCHS = ("localnet", "distnet", "cnnk")
"""Architecture names accepted by :func:`build_model`."""

KOO2019_STEP_SIZES = tuple(0.1 / (i + 10) for i in range(20))
"""The authors' PGD step sizes, ``0.1 / (i + 10)`` for ``i = 0 .. 19`` (0.1133 in all)."""


def variant_parts(variant: str) -> tuple[bool, str]:
    """``(regularized, kind)`` of ``variant``: whether the network is the regularized one, and ``"erm"``,
    ``"noise"`` or ``"adversarial"``."""
    _check_variant(variant)
    regularized = variant.startswith("regularized")
    rest = variant.removeprefix("regularized").lstrip("+")
    return regularized, {"": "erm", "standard": "erm"}.get(rest, rest)


def adv_step_sizes(steps: int, schedule: str = "koo2019", eps: float = 0.2) -> tuple[float, ...]:
    """PGD step sizes for ``steps`` steps.

    ``"koo2019"``: the authors' 20 steps of ``0.1 / (i + 10)``; fewer steps merge consecutive ones (the 20 sizes
    split into ``steps`` runs of near-equal length, each run summed), so the total perturbation stays 0.1133 and
    the first steps stay the largest; more than 20 steps continue the series. ``"madry"``: ``steps`` equal steps
    of ``2.5 * eps / steps`` (Madry et al.), which reach the full ``eps``.
    """
    if steps < 1:
        raise ValueError(f"adv_step_sizes: steps must be >= 1, got {steps}")
    if schedule == "madry":
        return (2.5 * eps / steps,) * steps
    if schedule != "koo2019":
        raise ValueError(f"adv_step_sizes: schedule must be 'koo2019' or 'madry', got {schedule!r}")
    if steps >= len(KOO2019_STEP_SIZES):
        return tuple(0.1 / (i + 10) for i in range(steps))
    import numpy as np

    runs = np.array_split(np.arange(len(KOO2019_STEP_SIZES)), steps)
    return tuple(float(sum(KOO2019_STEP_SIZES[i] for i in run)) for run in runs)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (defaults: the authors' learning rate, L2, noise, attack and warm-up; the
    koo2019 recipe sets epochs, batch size and patience per variant as the authors' two scripts do).

    Attributes:
        epochs: training epochs (the most, with early stopping).
        batch_size: training batch size of the clean data (an appended adversarial batch doubles it).
        lr: Adam learning rate.
        l2: coefficient of the regularized variants' ``l2 * sum(w ** 2)`` over convolution and dense weights and
            biases, added to the loss; the other variants use none.
        noise_std: standard deviation of the Gaussian input noise of the noise variants.
        adv_eps: L-inf budget of the adversarial variants, in one-hot units.
        adv_steps: PGD steps.
        adv_schedule: PGD step sizes, ``"koo2019"`` or ``"madry"`` (see :func:`adv_step_sizes`).
        adv_bounds: the range each attacked input is clipped to (None: unbounded).
        adv_warmup_epochs: clean epochs before the attack starts (then the full budget, no further ramp).
        adv_mode: ``"append"`` the adversarial copies to the clean batch, or ``"replace"`` part of it.
        adv_fraction: fraction of each batch attacked (and appended or replaced).
        patience: early-stopping patience on ``monitor``; None trains every epoch.
        monitor: ``"val_loss"`` (lower is better) or ``"val_auroc"``: picks the best epoch.
        keep: the weights the model holds at the end: ``"best"`` by ``monitor``, ``"last"``, or ``"auto"`` (the
            authors' rule: last for the adversarial variants, best for the others).
        init: ``"glorot"`` (Glorot-uniform kernels, biases 0.05, as deepomics) or ``"torch"`` (PyTorch's default).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
    """

    epochs: int = 100
    batch_size: int = 100
    lr: float = 3e-4
    l2: float = 1e-6
    noise_std: float = 0.1
    adv_eps: float = 0.2
    adv_steps: int = 20
    adv_schedule: str = "koo2019"
    adv_bounds: tuple[float, float] | None = (0.0, 1.0)
    adv_warmup_epochs: int = 20
    adv_mode: str = "append"
    adv_fraction: float = 1.0
    patience: int | None = None
    monitor: str = "val_loss"
    keep: str = "auto"
    init: str = "glorot"
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "adv_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.adv_warmup_epochs < 0:
            raise ValueError(f"TrainConfig.adv_warmup_epochs must be >= 0, got {self.adv_warmup_epochs}")
        if not 0.0 <= self.adv_fraction <= 1.0:
            raise ValueError(f"TrainConfig.adv_fraction must be in [0, 1], got {self.adv_fraction}")
        if self.lr <= 0 or self.l2 < 0 or self.noise_std < 0 or self.adv_eps < 0:
            raise ValueError("TrainConfig: lr must be > 0 and l2, noise_std, adv_eps >= 0")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"TrainConfig.patience must be >= 1 or None, got {self.patience}")
        choices = {"adv_schedule": ("koo2019", "madry"), "adv_mode": ("append", "replace"),
                   "monitor": ("val_loss", "val_auroc"), "keep": ("auto", "best", "last"), "init": ("glorot", "torch")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def keep_for(self, variant: str) -> str:
        """``"best"`` or ``"last"``: the weights ``variant`` keeps (``keep="auto"``: last for adversarial ones)."""
        if self.keep != "auto":
            return self.keep
        return "last" if variant_parts(variant)[1] == "adversarial" else "best"


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def glorot_init(model: nn.Module, *, bias: float = 0.05) -> nn.Module:
    """Glorot-uniform kernels and constant biases for every convolution and linear layer, as deepomics does
    (``init.GlorotUniform`` with fans from the kernel's receptive field, ``init.Constant(0.05)``); batch norm
    keeps scale 1 and shift 0. Draws from torch's global generator; returns ``model``."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)
    return model


def build_model(arch: str, variant: str, *, num_tasks: int = 1, length: int = 200, init: str = "torch") -> nn.Module:
    """The network of ``arch`` for ``variant``: the regularized variants get the paper's dropout and batch norm.

    Args:
        arch: ``"localnet"`` (shallow), ``"distnet"`` (deep) or ``"cnnk"`` (CNN-k with its default pool).
        variant: one of :data:`VARIANTS`.
        num_tasks: outputs (1 binary, 12 multi-label).
        length: sequence length.
        init: ``"torch"`` (PyTorch's default initialization) or ``"glorot"`` (:func:`glorot_init`).
    """
    from robustlab.genomics.models import CNNk, DistNet, LocalNet

    regularized, _ = variant_parts(variant)
    classes = {"localnet": LocalNet, "distnet": DistNet, "cnnk": CNNk}
    if arch not in classes:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if init not in ("torch", "glorot"):
        raise ValueError(f"init must be 'torch' or 'glorot', got {init!r}")
    cls = classes[arch]
    model = (cls(num_tasks, length=length, dropout=cls.paper_dropout, batch_norm=True) if regularized
             else cls(num_tasks, length=length))
    return glorot_init(model) if init == "glorot" else model


def _bce(logits: Tensor, y: Tensor) -> Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))


def build_regime(variant: str, model: nn.Module, config: TrainConfig):
    """The core regime of ``variant``, with a binary cross-entropy on logits (binary or multi-label targets)."""
    from robustlab.common.attacks import PGD
    from robustlab.common.regimes import ERM, AdversarialTraining, GaussianNoise
    from robustlab.common.regimes.schedules import EpsRamp

    _, kind = variant_parts(variant)
    if kind == "erm":
        return ERM(loss=_bce, task="multilabel")
    if kind == "noise":
        return GaussianNoise(config.noise_std, loss=_bce, task="multilabel")
    # The authors ascend the batch's mean loss; only the gradient's sign counts for L-inf steps, so the sum does.
    alpha = adv_step_sizes(config.adv_steps, config.adv_schedule, config.adv_eps)
    attack = PGD(model, eps=config.adv_eps, alpha=alpha, steps=config.adv_steps, random_start=False,
                 bounds=config.adv_bounds, loss=nn.BCEWithLogitsLoss(reduction="sum"))
    return AdversarialTraining(attack, fraction=config.adv_fraction, mode=config.adv_mode,
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
        ``(model, FitResult)``; with a validation set the model holds the weights ``config.keep_for(variant)``
        names (the best epoch by ``config.monitor``, or the last); ``FitResult.best_epoch`` is the best epoch
        either way.
    """
    from robustlab.common.recipes.base import seed_everything
    from robustlab.common.training import TrainConfig as FitConfig
    from robustlab.common.training import l2_param_groups
    from robustlab.common.training import train as train_task

    seed_everything(seed)
    x, y = train_ds.x, train_ds.y
    if y.ndim != 2 or y.shape[1] < 1:
        raise ValueError(f"train: targets must have shape (N, T) with T >= 1, got {y.shape}")
    model = build_model(arch, variant, num_tasks=y.shape[1], length=x.shape[2], init=config.init)
    regime = build_regime(variant, model, config)
    regularized, _ = variant_parts(variant)
    optimizer = torch.optim.Adam(l2_param_groups(model, config.l2 if regularized else 0.0), lr=config.lr)
    fit_config = FitConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, patience=config.patience,
                           monitor=config.monitor, restore=config.keep_for(variant), device=config.device)
    result = train_task(model, regime, (x, y), None if valid_ds is None else (valid_ds.x, valid_ds.y),
                        task="multilabel", config=fit_config, optimizer=optimizer, metrics={"auroc": _val_auroc},
                        out_dir=out_dir, resume=resume, seed=seed, progress=progress)
    return model, result
