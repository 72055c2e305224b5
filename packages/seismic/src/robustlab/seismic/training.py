"""Training a seismic event classifier, supervised or semi-supervised, through the core's one engine.

Everything goes through :func:`robustlab.common.training.train`; this module only chooses what a seismic run
needs:

- **labels per event**: :func:`labelled_events` draws the labelled fraction of the training events, per class and
  seeded, so no event has labelled and unlabelled traces at once; the other training events join the unlabelled
  pool (with the unreviewed events);
- **class balance**: the loss is :class:`robustlab.common.losses.WeightedCrossEntropy` with scikit-learn's
  balanced weights of the labelled traces (earthquakes outnumber explosions about 5.6 to 1);
- **the authors' practice** (sandialabs' shadow-ssml, "Practical Recommendations"): a 50/50 labelled/unlabelled
  mix per batch (``unlabeled_batch_size = batch_size``); the longer of the two sets sets the epoch and the other
  cycles, so at small label budgets the labelled traces are oversampled, as the docs advise; consistency weight 3
  (2-4x the class loss); EMA decay 0.999, Gaussian noise 0.1, VAT/EAAT ``xi = 1``, ``eps = 1`` (shadow-ssml's
  defaults; the inputs are z-scored traces of 2,000 samples, L2 norm about 45, so ``eps = 1`` is a 2 % change).
  The weights of the last epoch are kept (no validation-based selection, never on a test fold);
- **equal steps**: with ``match_steps`` (default) the supervised run and the labelled-only variants see as many
  batches per epoch as the semi-supervised run on the same pool would (the labelled traces cycled), so regimes are
  compared at equal optimizer steps.

Departures from shadow-ssml (see :mod:`robustlab.common.regimes`): the core's EAAT adds no Gaussian noise to the
student's input (shadow-ssml: ``student_noise=0.1`` besides the adversarial perturbation) and computes the
perturbation once per step; its mean teacher uses one student pass for both terms.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.common.config import bounded, check_values
from robustlab.common.errors import ConfigError, DataError

__all__ = ["REGIMES", "SeismicTrainConfig", "fit_classifier", "labelled_events", "predict_proba", "train_classifier"]

REGIMES = ("supervised", "mean_teacher", "vat", "eaat")
"""The training regimes: supervised (cross entropy on the labelled traces), and the core's MeanTeacher, VAT and
EAAT (each also as its labelled-only variant, ``regularizer_only``)."""


@dataclass(frozen=True)
class SeismicTrainConfig:
    """Hyperparameters of a seismic training run (every field declares its range).

    Attributes:
        model: ``"spec"`` (2D CNN on log-mel spectrograms, the default) or ``"cnn"`` (ConvNetQuake on waveforms).
        regime: ``"supervised"``, ``"mean_teacher"``, ``"vat"`` or ``"eaat"``.
        regularizer_only: the regime's consistency on the labelled traces only (``use_unlabeled=False``):
            separates the regularizer's gain from the unlabelled data's.
        epochs: training epochs (the last one's weights are kept).
        batch_size: labelled traces per batch (and as many unlabelled ones: 50/50).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        consistency_weight: weight of the consistency term (shadow-ssml's advice: 2-4x the class loss).
        alpha: EMA decay of the mean teacher's and EAAT's teacher.
        noise: std of the Gaussian input noise of the mean teacher (student and teacher) and of EAAT's teacher.
        xi: VAT/EAAT power-iteration step (shadow-ssml's default 1.0).
        eps: VAT/EAAT L2 norm of the adversarial perturbation per trace (shadow-ssml's default 1.0).
        max_unlabelled: most unlabelled traces used per run (a seeded draw; None: all).
        match_steps: supervised and labelled-only runs take as many steps per epoch as the semi-supervised run on
            the same unlabelled pool (the labelled traces cycled).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
    """

    model: str = bounded("spec", choices=("cnn", "spec"))
    regime: str = bounded("supervised", choices=REGIMES)
    regularizer_only: bool = False
    epochs: int = bounded(10, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    consistency_weight: float = bounded(3.0, ge=0)
    alpha: float = bounded(0.999, ge=0, le=1)
    noise: float = bounded(0.1, ge=0)
    xi: float = bounded(1.0, gt=0)
    eps: float = bounded(1.0, ge=0)
    max_unlabelled: int | None = bounded(None, ge=1)
    match_steps: bool = True
    device: str = bounded("cpu", device=True)

    def __post_init__(self) -> None:
        check_values(self)
        if self.regularizer_only and self.regime == "supervised":
            raise ConfigError("regularizer_only needs a consistency regime (mean_teacher, vat or eaat), got "
                              "regime 'supervised'")

    @property
    def uses_unlabelled(self) -> bool:
        """Whether the run trains on unlabelled traces."""
        return self.regime != "supervised" and not self.regularizer_only

    def regime_params(self) -> dict[str, Any]:
        """The core regime's name and options (without the loss) for
        :func:`robustlab.common.training.build_regime`."""
        use = not self.regularizer_only
        if self.regime == "mean_teacher":
            return {"name": "mean_teacher", "alpha": self.alpha, "noise": self.noise, "consistency": "mse",
                    "weight": self.consistency_weight, "use_unlabeled": use}
        if self.regime == "vat":
            return {"name": "vat", "xi": self.xi, "eps": self.eps, "weight": self.consistency_weight,
                    "use_unlabeled": use}
        if self.regime == "eaat":
            return {"name": "eaat", "alpha": self.alpha, "teacher_noise": self.noise, "xi": self.xi, "eps": self.eps,
                    "weight": self.consistency_weight, "use_unlabeled": use}
        return {"name": "erm"}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def labelled_events(event_ids: Any, event_labels: Any, fraction: float, seed: int) -> np.ndarray:
    """The events whose labels a run may use: ``fraction`` of the events of each class, seeded.

    Per class, ``max(1, round(fraction * n_class))`` events are drawn without replacement (at least one event of
    every class present), so the labelled set keeps the class proportions of the events.

    Args:
        event_ids: event ids, one per event or one per trace (repeated ids are one event).
        event_labels: the class of each entry of ``event_ids`` (an event must have one class).
        fraction: in ``(0, 1]``; 1 keeps every event.
        seed: seeds the draw.

    Returns:
        The drawn event ids, sorted.

    Raises:
        ConfigError: ``fraction`` outside ``(0, 1]``.
        DataError: an event with two classes, or arrays of different lengths.

    Examples::

        >>> ids = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        >>> labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
        >>> labelled_events(ids, labels, 0.25, seed=0).tolist()  # 2 of 8 earthquakes, 1 of 2 explosions
        ['f', 'h', 'i']
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError(f"labelled fraction must be in (0, 1], got {fraction!r}")
    ids, labels = np.asarray(event_ids).astype(str), np.asarray(event_labels)
    if len(ids) != len(labels):
        raise DataError(f"labelled_events: {len(ids)} event ids but {len(labels)} labels")
    first: dict[str, Any] = {}
    for e, c in zip(ids.tolist(), labels.tolist()):
        if first.setdefault(e, c) != c:
            raise DataError(f"event {e!r} has traces of two classes ({first[e]!r} and {c!r})")
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for c in sorted(set(first.values()), key=str):
        members = np.array(sorted(e for e, k in first.items() if k == c))
        n = len(members) if fraction >= 1 else max(1, int(round(fraction * len(members))))
        chosen += rng.choice(members, size=n, replace=False).tolist()
    return np.array(sorted(chosen))


def _signals(x: Any, what: str) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise DataError(f"{what} must have shape (N, C, L) or (N, L), got {x.shape}")
    if x.size and not np.isfinite(x).all():
        raise DataError(f"{what}: {int((~np.isfinite(x)).sum())} samples are NaN or infinite")
    return x


def fit_classifier(
    x_l: Any,
    y_l: Any,
    x_u: Any = None,
    *,
    config: SeismicTrainConfig = SeismicTrainConfig(),
    seed: int = 0,
    n_classes: int = 2,
    model_kwargs: dict[str, Any] | None = None,
    val: tuple[Any, Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
):
    """Train a classifier on labelled traces (and unlabelled ones for a semi-supervised regime).

    Args:
        x_l, y_l: labelled inputs ``(N, C, L)`` (z-scored waveforms) and class indices ``(N,)``.
        x_u: unlabelled inputs ``(M, C, L)`` (the unlabelled pool), or None; the supervised regime and the
            labelled-only variants do not train on them (with ``match_steps`` their number sets the epoch length).
        config: see :class:`SeismicTrainConfig`.
        seed: seeds the initialization, the shuffling, the draw of ``max_unlabelled`` and the regime's noise.
        n_classes: classes of the output (2 for earthquake/explosion).
        model_kwargs: further arguments of :func:`robustlab.seismic.models.build_model` (e.g. ``rate`` of the
            spectrogram model).
        val: optional ``(x, y)`` validation traces: logged per epoch (``val_*`` in the metric logs), never used to
            choose the weights.
        out_dir, resume, progress: see :func:`robustlab.common.engine.fit` (checkpoints, resume, progress).

    Returns:
        ``(model, result)``: the network to predict with (the EMA teacher of the mean teacher and EAAT), in eval
        mode, and the engine's :class:`~robustlab.common.engine.FitResult`.
    """
    import torch

    from robustlab.common.data import ArrayDataset, CycledDataset
    from robustlab.common.losses import WeightedCrossEntropy, class_weights
    from robustlab.common.recipes.base import seed_everything
    from robustlab.common.training import TrainConfig, build_regime, train
    from robustlab.seismic.models import build_model

    x_l = _signals(x_l, "labelled traces")
    y_l = np.asarray(y_l, dtype=np.int64)
    if len(y_l) != len(x_l):
        raise DataError(f"{len(x_l)} labelled traces but {len(y_l)} labels")
    if len(x_l) == 0:
        raise DataError("no labelled traces to train on")
    if y_l.min() < 0 or y_l.max() >= n_classes:
        raise DataError(f"labels must lie in 0..{n_classes - 1}, got {y_l.min()}..{y_l.max()}")
    pool = None
    if x_u is not None and len(x_u):
        pool = _signals(x_u, "unlabelled traces")
        if pool.shape[1:] != x_l.shape[1:]:
            raise DataError(f"unlabelled traces have shape {pool.shape[1:]}, labelled ones {x_l.shape[1:]}")
        if config.max_unlabelled is not None and len(pool) > config.max_unlabelled:
            keep = np.sort(np.random.default_rng(seed).choice(len(pool), config.max_unlabelled, replace=False))
            pool = pool[keep]
    seed_everything(seed)
    kwargs: dict[str, Any] = {"in_channels": x_l.shape[1], "n_classes": n_classes}
    if config.model == "cnn":
        kwargs["n_samples"] = x_l.shape[2]
    kwargs.update(model_kwargs or {})
    model = build_model(config.model, **kwargs)
    params = config.regime_params()
    name = params.pop("name")
    loss = WeightedCrossEntropy(class_weights(y_l, n_classes, how="balanced"))
    regime = build_regime(name, model, task="multiclass", loss=loss, **params)
    labelled = ArrayDataset(torch.from_numpy(x_l), torch.from_numpy(y_l))
    b = config.batch_size
    unlabeled = None
    epoch_length = "labeled"
    longer = pool is not None and len(pool) > len(x_l)
    if pool is not None and config.uses_unlabelled:
        unlabeled = torch.from_numpy(pool)
        epoch_length = "unlabeled" if longer else "labeled"
    if longer and (config.uses_unlabelled or config.match_steps):
        # the labelled traces cycled in whole batches (the core's CycledDataset): as many as the pool's, so every
        # batch is 50/50
        labelled = CycledDataset(labelled, math.ceil(len(pool) / b) * b)
    tc = TrainConfig(epochs=config.epochs, batch_size=b, lr=config.lr, weight_decay=config.weight_decay,
                     restore="last", unlabeled_batch_size=b, epoch_length=epoch_length, device=config.device)
    val_data = None
    if val is not None:
        val_data = (torch.from_numpy(_signals(val[0], "validation traces")),
                    torch.from_numpy(np.asarray(val[1], dtype=np.int64)))
    result = train(model, regime, labelled, val_data, config=tc, unlabeled_data=unlabeled, seed=seed,
                   out_dir=out_dir, resume=resume, progress=progress)
    net = result.eval_model if result.eval_model is not None else model
    net.eval()
    return net, result


def train_classifier(x_l: Any, y_l: Any, x_u: Any = None, *, config: SeismicTrainConfig = SeismicTrainConfig(),
                     seed: int = 0, out_dir: str | Path | None = None, val: tuple[Any, Any] | None = None,
                     progress: bool = False, **kwargs: Any):
    """The trained network of :func:`fit_classifier` (eval mode; the EMA teacher for the mean teacher and EAAT).

    Examples::

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x, y = rng.normal(size=(16, 1, 2000)).astype("float32"), np.array([0, 1] * 8)
        >>> cfg = SeismicTrainConfig(regime="eaat", epochs=1, batch_size=8)
        >>> model = train_classifier(x, y, rng.normal(size=(24, 1, 2000)), config=cfg)
        >>> predict_proba(model, x[:3]).shape
        (3, 2)
    """
    return fit_classifier(x_l, y_l, x_u, config=config, seed=seed, out_dir=out_dir, val=val, progress=progress,
                          **kwargs)[0]


def predict_proba(model: Any, x: Any, batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, K)`` of inputs ``(N, C, L)`` (or ``(N, L)``; NaN or infinite samples refused):
    :func:`robustlab.common.training.predict_proba` (softmax, no gradients, eval mode restored, on the model's
    device)."""
    from robustlab.common.training import predict_proba as _predict_proba

    return _predict_proba(model, _signals(x, "inputs"), batch_size=batch_size)
