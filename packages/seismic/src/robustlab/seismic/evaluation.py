"""Evaluation of seismic event classifiers: trace and event figures, and an out-of-distribution score.

- Events are the unit the literature scores (several stations record one event): :func:`event_probabilities`
  averages the trace probabilities of each event;
- :func:`binary_metrics`: balanced accuracy, F1 of the explosion class (index 1, the positive class) and ROC AUC
  (scikit-learn); :func:`multiclass_report`: macro-F1 over the classes present in the truth and per-class recall
  (the IPOC source regions);
- :class:`OODScore`: how unlike the training data an input is, as the squared Mahalanobis distance of the model's
  penultimate features (:func:`penultimate_features`) from a Gaussian fitted to the training traces' features
  (probabilistic PCA, 32 directions) and of simple waveform statistics, with a threshold at the 95th percentile of held-out in-distribution traces
  (Lee et al. 2018 use class-conditional Gaussians; one class-agnostic Gaussian serves here because the unlabelled
  traces, which carry no class, fit it too). The max-softmax confidence was not chosen: a classifier is often
  confident on inputs unlike any it saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlab.common.errors import ConfigError, DataError
from robustlab.seismic.data.pnw import CLASSES  # index 1 (explosion): the positive class of F1 and AUC

__all__ = ["CLASSES", "OODScore", "binary_metrics", "event_labels", "event_probabilities", "multiclass_report",
           "penultimate_features", "waveform_statistics"]


def event_probabilities(p_trace: Any, event_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """The probability of each event: the mean of its traces' probabilities.

    Args:
        p_trace: ``(N,)`` probabilities of the positive class (or ``(N, K)`` class probabilities).
        event_ids: ``(N,)`` the event of each trace.

    Returns:
        ``(events, p_event)``: the sorted unique event ids and their mean probabilities (``(E,)`` or ``(E, K)``).

    Examples::

        >>> ev, p = event_probabilities([0.2, 0.4, 0.9], ["b", "b", "a"])
        >>> ev.tolist(), p.round(2).tolist()
        (['a', 'b'], [0.9, 0.3])
    """
    p = np.asarray(p_trace, dtype=np.float64)
    ids = np.asarray(event_ids)
    if len(p) != len(ids):
        raise DataError(f"event_probabilities: {len(p)} probabilities but {len(ids)} event ids")
    events, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(events)).astype(np.float64)
    if p.ndim == 1:
        return events, np.bincount(inverse, weights=p, minlength=len(events)) / counts
    sums = np.zeros((len(events), p.shape[1]))
    np.add.at(sums, inverse, p)
    return events, sums / counts[:, None]


def event_labels(y: Any, event_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """The class of each event (sorted unique ids, as :func:`event_probabilities`); an event whose traces disagree
    raises :class:`DataError`."""
    y, ids = np.asarray(y), np.asarray(event_ids)
    events, inverse = np.unique(ids, return_inverse=True)
    out = np.full(len(events), -1, dtype=np.int64)
    for k, label in zip(inverse, y):
        if out[k] not in (-1, label):
            raise DataError(f"event {events[k]!r} has traces of two classes ({out[k]} and {label})")
        out[k] = label
    return events, out


def binary_metrics(y: Any, p: Any, threshold: float = 0.5) -> dict[str, float]:
    """Balanced accuracy, explosion F1 and ROC AUC of positive-class probabilities.

    Args:
        y: true classes ``(N,)`` (1 = explosion).
        p: probabilities of class 1 ``(N,)``.
        threshold: ``p >= threshold`` predicts class 1.

    Returns:
        ``{"balanced_accuracy", "explosion_f1", "auc", "n"}``; AUC is NaN when ``y`` holds one class only.

    Examples::

        >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
        >>> round(m["balanced_accuracy"], 2), round(m["explosion_f1"], 2), m["auc"]
        (0.75, 0.8, 1.0)
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    y, p = np.asarray(y, dtype=np.int64), np.asarray(p, dtype=np.float64)
    if len(y) != len(p):
        raise DataError(f"binary_metrics: {len(y)} labels but {len(p)} probabilities")
    if len(y) == 0:
        return {"balanced_accuracy": float("nan"), "explosion_f1": float("nan"), "auc": float("nan"), "n": 0}
    pred = (p >= threshold).astype(np.int64)
    both = len(np.unique(y)) == 2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = float(balanced_accuracy_score(y, pred))
    return {"balanced_accuracy": bacc,
            "explosion_f1": float(f1_score(y, pred, pos_label=1, zero_division=0.0)),
            "auc": float(roc_auc_score(y, p)) if both else float("nan"), "n": int(len(y))}


def multiclass_report(y: Any, p: Any, classes: Sequence[str]) -> dict[str, Any]:
    """Macro-F1 over the classes present in ``y`` and the recall of each class.

    Args:
        y: true class indices ``(N,)``.
        p: class probabilities ``(N, K)`` or predicted indices ``(N,)``.
        classes: the ``K`` class names.

    Returns:
        ``{"macro_f1", "accuracy", "recall": {name: recall or NaN when absent from y}, "support": {name: n},
        "present": [names in y]}``.
    """
    from sklearn.metrics import f1_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p)
    pred = p.argmax(1) if p.ndim == 2 else p.astype(np.int64)
    if len(pred) != len(y):
        raise DataError(f"multiclass_report: {len(y)} labels but {len(pred)} predictions")
    present = sorted(set(y.tolist()))
    recall, support = {}, {}
    for k, name in enumerate(classes):
        m = y == k
        support[name] = int(m.sum())
        recall[name] = float((pred[m] == k).mean()) if m.any() else float("nan")
    macro = float(f1_score(y, pred, labels=present, average="macro", zero_division=0.0)) if len(y) else float("nan")
    return {"macro_f1": macro, "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
            "recall": recall, "support": support, "present": [classes[k] for k in present]}


def penultimate_features(model: Any, x: Any, *, batch_size: int = 256) -> np.ndarray:
    """The model's penultimate features for inputs ``(N, C, L)``: its ``embed(x)`` when it has one (the seismic
    models do: the values the final linear layer reads), else the input of its last ``nn.Linear`` layer, recorded
    with a forward pre-hook (the core's :class:`~robustlab.common.features.FeatureRecorder` records outputs, and the
    layer before the classifier differs between architectures); eval mode, no gradients.

    Returns:
        ``(N, D)`` float64.

    Raises:
        ConfigError: the model has no ``nn.Linear`` layer.
    """
    import torch
    from torch import nn

    from robustlab.common.engine import model_device
    from robustlab.common.modes import model_mode

    x = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    device = model_device(model)
    if callable(getattr(model, "embed", None)):
        with torch.no_grad(), model_mode(model, "eval"):
            parts = [model.embed(c.to(device)).flatten(1).double().cpu() for c in x.split(batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, 0))
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear layer whose input could serve as features")
    seen: list[torch.Tensor] = []
    handle = linears[-1].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().flatten(1)))
    try:
        with torch.no_grad(), model_mode(model, "eval"):
            for chunk in x.split(batch_size):
                model(chunk.to(device))
    finally:
        handle.remove()
    if not seen:
        return np.zeros((0, 0))
    return torch.cat([s.double().cpu() for s in seen]).numpy()


def waveform_statistics(x: Any) -> np.ndarray:
    """Scale-free statistics of waveforms ``(N, C, L)`` that separate transient event records from stationary
    signals: log kurtosis, log crest factor (peak over median absolute value) and the log of the log ratio of the
    strongest to the weakest tenth's power (twice logged: the ratio spans orders of magnitude on real records).
    ``(N, 3)`` float64.

    Examples::

        >>> import numpy as np
        >>> t = np.arange(2000) / 20.0
        >>> burst = np.where(t < 10, np.sin(2 * np.pi * 3 * t), 0.01 * np.sin(2 * np.pi * 3 * t))
        >>> bool(waveform_statistics(burst[None, None])[0, 2] > waveform_statistics(np.sin(t)[None, None])[0, 2])
        True
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-12)
    a = np.abs(x)
    tenths = (x[:, : x.shape[1] // 10 * 10].reshape(len(x), 10, -1) ** 2).mean(2)
    return np.c_[np.log((x ** 4).mean(1) + 1e-12), np.log(a.max(1) / (np.median(a, 1) + 1e-12) + 1e-12),
                 np.log(np.log(tenths.max(1) / (tenths.min(1) + 1e-12)) + 1e-3)]


class OODScore:
    """How unlike the training data an input is: the squared Mahalanobis distance of its penultimate features under
    a probabilistic-PCA Gaussian of the training features.

    :meth:`fit_reference` fits the Gaussian to the training traces' features ``(N, D)``: the mean, the top ``k``
    principal directions with their variances, and one variance ``s2`` for the ``D - k`` others (Tipping & Bishop's
    PPCA; ``k = 32``). A PPCA covariance keeps the model file small (``(k + 1) D`` numbers instead of ``D^2``) and
    regularizes directions seen too little. :meth:`score` is ``sum_k (u_k . d)^2 / l_k + |d - U U^T d|^2 / s2``,
    ``d`` the feature minus the mean; :meth:`fit` sets the threshold at the ``quantile`` of held-out
    in-distribution (validation) scores, so about ``1 - quantile`` of such inputs are flagged; :meth:`flag` marks
    scores above it. :meth:`to_dict`/:meth:`from_dict` carry it in a model file (JSON).

    The penultimate features alone miss stationary inputs: z-scored white noise or a sine lands near the middle of
    a ConvNetQuake's feature cloud (measured: 0-5 % of them flagged). :meth:`calibrate` therefore also fits a
    Gaussian (full covariance) to :func:`waveform_statistics` of the inputs; each distance is divided by its median
    over the validation traces and the score is the larger of the two (measured on PNW: about 95 % of white noise,
    band-limited noise and sines flagged, 5 % of held-out traces).

    Args:
        quantile: the share of validation inputs below the threshold (0.95).
        components: ``k``, the principal directions kept.

    Reference:
        Lee, K., Lee, K., Lee, H., Shin, J. "A Simple Unified Framework for Detecting Out-of-Distribution Samples
        and Adversarial Attacks", NeurIPS 2018 (Mahalanobis distance of a network's features). Tipping, M. E.,
        Bishop, C. M. "Probabilistic Principal Component Analysis", J. R. Stat. Soc. B 61(3):611-622, 1999.

    Examples::

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> ood = OODScore(components=2).fit_reference(rng.normal(size=(500, 4)))
        >>> ood = ood.fit(ood.score(rng.normal(size=(200, 4))))
        >>> float(ood.flag(ood.score(rng.normal(size=(1000, 4)))).mean()) < 0.1
        True
        >>> bool(ood.flag(ood.score(np.full((1, 4), 10.0)))[0])
        True
    """

    def __init__(self, quantile: float = 0.95, components: int = 32) -> None:
        if not 0 < quantile < 1:
            raise ConfigError(f"OODScore quantile must be in (0, 1), got {quantile!r}")
        if int(components) != components or components < 1:
            raise ConfigError(f"OODScore components must be an int >= 1, got {components!r}")
        self.quantile, self.components = float(quantile), int(components)
        self.mean: np.ndarray | None = None
        self.basis: np.ndarray | None = None  # (k, D) principal directions
        self.variances: np.ndarray | None = None  # (k,)
        self.residual: float | None = None  # s2
        self.threshold: float | None = None
        self.stat_mean: np.ndarray | None = None  # the Gaussian of waveform_statistics (None: not used)
        self.stat_precision: np.ndarray | None = None
        self.scales: tuple[float, float] | None = None  # validation medians of the two distances

    def fit_reference(self, features: Any) -> OODScore:
        """Fit the Gaussian of in-distribution features ``(N, D)``; returns self."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or len(f) < 2 or not np.isfinite(f).all():
            raise DataError(f"OODScore needs at least 2 finite reference feature rows (N, D), got shape {f.shape}")
        self.mean = f.mean(0)
        cov = np.cov(f - self.mean, rowvar=False).reshape(f.shape[1], f.shape[1])
        values, vectors = np.linalg.eigh(cov)
        values, vectors = values[::-1].clip(min=0), vectors[:, ::-1]
        floor = max(float(values[0]), 1e-12) * 1e-6
        k = min(self.components, f.shape[1], len(f) - 1)
        self.basis, self.variances = vectors[:, :k].T.copy(), np.maximum(values[:k], floor)
        rest = values[k:]
        self.residual = max(float(rest.mean()) if len(rest) else floor, floor)
        return self

    def fit_statistics(self, stats: Any) -> OODScore:
        """Fit the Gaussian of in-distribution :func:`waveform_statistics` ``(N, S)``; returns self."""
        st = np.asarray(stats, dtype=np.float64)
        if st.ndim != 2 or len(st) <= st.shape[1] or not np.isfinite(st).all():
            raise DataError(f"OODScore needs more finite statistic rows than columns, got shape {st.shape}")
        self.stat_mean = st.mean(0)
        cov = np.cov(st - self.stat_mean, rowvar=False).reshape(st.shape[1], st.shape[1])
        self.stat_precision = np.linalg.pinv(cov + 1e-9 * np.eye(len(cov)))
        return self

    def distances(self, features: Any, stats: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The feature distance and (with ``stats`` and a fitted statistics Gaussian) the statistics distance."""
        if self.mean is None:
            raise ConfigError("OODScore.score needs fit_reference first")
        d = np.asarray(features, dtype=np.float64).reshape(-1, len(self.mean)) - self.mean
        proj = d @ self.basis.T
        rest = np.maximum((d * d).sum(1) - (proj * proj).sum(1), 0.0)
        feat = (proj * proj / self.variances).sum(1) + rest / self.residual
        if stats is None or self.stat_mean is None:
            return feat, None
        e = np.asarray(stats, dtype=np.float64).reshape(-1, len(self.stat_mean)) - self.stat_mean
        return feat, np.einsum("nd,de,ne->n", e, self.stat_precision, e)

    def score(self, features: Any, stats: Any = None) -> np.ndarray:
        """Scores ``(N,)``: the squared Mahalanobis distance of features ``(N, D)``; with ``stats`` (and
        :meth:`calibrate`'s scales) the larger of the two distances, each over its validation median."""
        feat, st = self.distances(features, stats)
        if st is None:
            return feat
        a, b = self.scales or (1.0, 1.0)
        return np.maximum(feat / a, st / b)

    def fit(self, val_scores: Any) -> OODScore:
        """Set the threshold at the ``quantile`` of validation scores; returns self."""
        s = np.asarray(val_scores, dtype=np.float64)
        s = s[np.isfinite(s)]
        if len(s) == 0:
            raise DataError("OODScore.fit needs at least one finite validation score")
        self.threshold = float(np.quantile(s, self.quantile))
        return self

    def flag(self, scores: Any) -> np.ndarray:
        """True where a score lies above the threshold (NaN scores are flagged)."""
        if self.threshold is None:
            raise ConfigError("OODScore.flag needs fit first")
        s = np.asarray(scores, dtype=np.float64)
        return ~(s <= self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for a model file's preprocessing)."""
        def listed(a):
            return None if a is None else np.asarray(a, dtype=np.float32).tolist()

        return {"kind": "ppca_mahalanobis_penultimate", "quantile": self.quantile, "components": self.components,
                "threshold": self.threshold, "mean": listed(self.mean), "basis": listed(self.basis),
                "variances": listed(self.variances), "residual": self.residual,
                "stat_mean": None if self.stat_mean is None else self.stat_mean.tolist(),
                "stat_precision": None if self.stat_precision is None else self.stat_precision.tolist(),
                "scales": None if self.scales is None else list(self.scales)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OODScore:
        """The score :meth:`to_dict` described."""
        try:
            out = cls(d["quantile"], d["components"])
            out.threshold = None if d["threshold"] is None else float(d["threshold"])
            if d["mean"] is not None:
                out.mean = np.asarray(d["mean"], dtype=np.float64)
                out.basis = np.asarray(d["basis"], dtype=np.float64).reshape(-1, len(out.mean))
                out.variances = np.asarray(d["variances"], dtype=np.float64)
                out.residual = float(d["residual"])
            if d.get("stat_mean") is not None:
                out.stat_mean = np.asarray(d["stat_mean"], dtype=np.float64)
                out.stat_precision = np.asarray(d["stat_precision"], dtype=np.float64)
            out.scales = None if d.get("scales") is None else (float(d["scales"][0]), float(d["scales"][1]))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"an OOD calibration record is damaged ({e!r}); expected the fields of "
                            "OODScore.to_dict") from None
        return out

    @classmethod
    def calibrate(cls, model: Any, x_reference: Any, x_validation: Any, *, quantile: float = 0.95,
                  components: int = 32) -> OODScore:
        """Fit the reference on ``x_reference`` (the training traces: their penultimate features and
        :func:`waveform_statistics`) and the scales and threshold on ``x_validation`` (held-out in-distribution
        traces)."""
        out = cls(quantile, components).fit_reference(penultimate_features(model, x_reference))
        out.fit_statistics(waveform_statistics(x_reference))
        feat, st = out.distances(penultimate_features(model, x_validation), waveform_statistics(x_validation))
        out.scales = (max(float(np.median(feat)), 1e-12), max(float(np.median(st)), 1e-12))
        return out.fit(np.maximum(feat / out.scales[0], st / out.scales[1]))

    def __call__(self, model: Any, x: Any) -> np.ndarray:
        """Scores of inputs ``(N, C, L)`` through ``model``'s penultimate features (and the inputs' statistics
        when fitted)."""
        stats = waveform_statistics(x) if self.stat_mean is not None else None
        return self.score(penultimate_features(model, x), stats)
