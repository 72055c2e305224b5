"""The multi-resolution representation (MRR) of Wang et al. (2020) and the classifier over it.

Four channel models (:mod:`robustlab.ecg.models.channels`), each trained alone, give one embedding each at its own
time resolution; together with hand-crafted ECG features (RR intervals, QRS morphology, wavelet coefficients,
higher-order statistics: :func:`robustlab.ecg.features.handcrafted_features`) they form the MRR of a beat, which a
downstream classifier maps to the class:

- :func:`channel_embeddings`: the embeddings ``Z`` (N, sum D) of trained channel models (eval mode, no gradient).
- :class:`MRRClassifier`: the classifier over ``[Z, F]`` (or ``Z`` alone, ``use_features=False``), features
  standardised with the training set's mean and standard deviation; ``head="gbdt"`` (scikit-learn's
  histogram gradient boosting, balanced class weights) or ``head="mlp"`` (a small MLP trained through
  :func:`robustlab.common.training.train` with a class-balanced cross entropy).
- :class:`MRRNet`: the MRR end to end as one differentiable module (the channel models, the standardisation and
  the MLP head), for attacks, attributions and model files: :meth:`MRRClassifier.to_module` builds it.

Import cost: torch and NumPy; scikit-learn is imported when a ``"gbdt"`` head is fitted.

Reference:
    Wang, D., Meng, Q., Chen, D., Zhang, H., Xu, L. "Automatic detection of arrhythmia based on multi-resolution
    representation of ECG signal", Sensors 20(6):1579, 2020.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError, DataError
from robustlab.common.modelfile import RecordsArgs
from robustlab.common.models import MLP
from robustlab.ecg.models.channels import CHANNEL_MODELS, ChannelModel

__all__ = ["MRRClassifier", "MRRNet", "channel_embeddings",
           "channel_name"]

CITATION = (
    "Wang, D., Meng, Q., Chen, D., Zhang, H., Xu, L. Automatic detection of arrhythmia based on multi-resolution "
    "representation of ECG signal. Sensors 20(6):1579, 2020. doi:10.3390/s20061579"
)


def channel_name(model: nn.Module) -> str:
    """The key of :data:`~robustlab.ecg.models.channels.CHANNEL_MODELS` of a channel model's class."""
    for name, cls in CHANNEL_MODELS.items():
        if type(model) is cls:
            return name
    raise ConfigError(f"{type(model).__name__} is not a channel model; expected one of "
                      f"{', '.join(c.__name__ for c in CHANNEL_MODELS.values())}")


def channel_embeddings(models: Sequence[nn.Module], x: np.ndarray | Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """The embeddings of windows ``x`` by each model, side by side: ``(N, sum of embedding_dim)`` float32.

    The models run in eval mode without gradients (each model's mode is restored afterwards), in batches of
    ``batch_size``, on the device of their parameters.

    Args:
        models: channel models (each with ``embed(x) -> (N, D)``), in the order their columns take.
        x: windows ``(N, C, L)`` in mV.
        batch_size: windows per forward pass.

    Returns:
        ``Z`` of shape ``(N, sum D)``, the columns of ``models[0]`` first.
    """
    if not models:
        raise ConfigError("channel_embeddings needs at least one model")
    if batch_size < 1:
        raise ConfigError(f"channel_embeddings: batch_size must be >= 1, got {batch_size}")
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, Tensor) else x).float()
    if xt.ndim != 3:
        raise DataError(f"channel_embeddings takes windows of shape (N, C, L), got {tuple(xt.shape)}")
    from robustlab.common.modes import model_mode

    out = []
    for model in models:
        device = next(model.parameters()).device
        with model_mode(model, "eval"), torch.no_grad():
            parts = [model.embed(xt[i:i + batch_size].to(device)).cpu() for i in range(0, len(xt), batch_size)]
        dim = getattr(model, "embedding_dim", None)
        out.append(torch.cat(parts) if parts else torch.zeros(0, dim or 0))
    return torch.cat(out, dim=1).numpy().astype(np.float32, copy=False)


def _matrix(a: Any, what: str, n: int | None = None) -> np.ndarray:
    m = np.asarray(a, dtype=np.float32)
    if m.ndim != 2:
        raise DataError(f"MRRClassifier: {what} must be a matrix (N, columns), got shape {m.shape}")
    if n is not None and len(m) != n:
        raise DataError(f"MRRClassifier: {what} has {len(m)} rows, expected {n} (one per sample)")
    bad = ~np.isfinite(m)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(f"MRRClassifier: {what} holds {int(bad.sum())} non-finite values (first at row {row}, "
                        f"column {col}: {m[row, col]}); expected finite numbers")
    return m


class MRRClassifier:
    """The downstream classifier of the MRR: ``[Z, F]`` (embeddings and hand-crafted features) to the class.

    Columns are standardised with the mean and standard deviation of the training set (a constant column gets a
    scale of 1). Heads:

    - ``"gbdt"``: :class:`sklearn.ensemble.HistGradientBoostingClassifier` with ``class_weight`` and
      ``random_state=seed``; early stopping on the validation data given to :meth:`fit`, else scikit-learn's own
      (a 10% split, on from 10,000 samples).
    - ``"mlp"``: :class:`robustlab.common.models.MLP` (``hidden``, ``dropout``) trained through
      :func:`robustlab.common.training.train` (ERM, Adam) with a cross entropy weighted by ``class_weight``; with
      validation data the epoch of best ``val_macro_f1`` is kept (early stopping after ``patience`` epochs).
      Initialisation and shuffling are seeded by ``seed`` (the global torch random state is left untouched).
    - ``"logreg"``: :class:`sklearn.linear_model.LogisticRegression` (multinomial, L2 of strength ``1 / C``) with
      ``class_weight``: the linear baseline of the inter-patient literature (de Chazal et al. 2004 used linear
      discriminants), which does not fit the training patients' morphology as closely as boosting can.

    Args:
        head: ``"gbdt"``, ``"mlp"`` or ``"logreg"``.
        use_features: whether ``F`` joins the embeddings (False: ``F`` is ignored and may be None).
        seed: the random seed.
        class_weight: ``"balanced"`` or None (every sample counts the same).
        num_classes: classes ``K``; default ``max(y) + 1`` over the training and validation labels.
        hidden, dropout, epochs, batch_size, lr, weight_decay, patience: the MLP and its training.
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization: the boosting (defaults
            chosen against over-fitting the training patients: shallow trees of at least 100 beats per leaf).
        C: the inverse L2 strength of ``"logreg"``.
        n_threads: OpenMP threads of the boosting (``threadpoolctl``); None: scikit-learn's default (all cores).
            On a small or shared machine one thread is often faster.

    Attributes (after :meth:`fit`):
        num_classes_, n_embedding_, n_features_: ``K``, the columns of ``Z`` and of ``F``.
        mean_, scale_: the standardisation (float32, over the columns used).
        model_: the fitted scikit-learn estimator or MLP; history_: the MLP's per-epoch metrics.

    Examples::

        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 2, 200)
        >>> Z, F = rng.normal(size=(200, 4)) + y[:, None], rng.normal(size=(200, 2))
        >>> clf = MRRClassifier(head="gbdt", max_iter=20, n_threads=1).fit(Z, F, y)
        >>> clf.predict_proba(Z, F).shape
        (200, 2)
    """

    citation = CITATION

    def __init__(self, head: str = "gbdt", *, use_features: bool = True, seed: int = 0,
                 class_weight: str | None = "balanced", num_classes: int | None = None,
                 hidden: Sequence[int] = (64,), dropout: float = 0.1, epochs: int = 30, batch_size: int = 256,
                 lr: float = 1e-3, weight_decay: float = 1e-4, patience: int | None = 8,
                 max_iter: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 8,
                 min_samples_leaf: int = 100, l2_regularization: float = 0.0, C: float = 0.1,
                 n_threads: int | None = None) -> None:
        if head not in ("gbdt", "mlp", "logreg"):
            raise ConfigError(f"MRRClassifier: head must be 'gbdt', 'mlp' or 'logreg', got {head!r}")
        if class_weight not in ("balanced", None):
            raise ConfigError(f"MRRClassifier: class_weight must be 'balanced' or None, got {class_weight!r}")
        self.head, self.use_features, self.seed, self.class_weight = head, bool(use_features), int(seed), class_weight
        self.num_classes = num_classes
        self.hidden, self.dropout = tuple(int(h) for h in hidden), float(dropout)
        self.epochs, self.batch_size, self.lr, self.weight_decay, self.patience = epochs, batch_size, lr, \
            weight_decay, patience
        self.max_iter, self.learning_rate, self.max_leaf_nodes = max_iter, learning_rate, max_leaf_nodes
        self.min_samples_leaf, self.C = min_samples_leaf, C
        self.l2_regularization, self.n_threads = l2_regularization, n_threads

    # -- inputs ---------------------------------------------------------------------------------------------------
    def _columns(self, Z: Any, Fe: Any, *, fitted: bool) -> np.ndarray:
        z = _matrix(Z, "Z (the embeddings)")
        if fitted and z.shape[1] != self.n_embedding_:
            raise DataError(f"MRRClassifier: Z has {z.shape[1]} columns, the classifier was fitted on "
                            f"{self.n_embedding_}")
        if not self.use_features:
            return z
        if Fe is None:
            raise DataError("MRRClassifier: use_features=True needs the hand-crafted features F (or "
                            "use_features=False)")
        f = _matrix(Fe, "F (the hand-crafted features)", len(z))
        if fitted and f.shape[1] != self.n_features_:
            raise DataError(f"MRRClassifier: F has {f.shape[1]} columns, the classifier was fitted on "
                            f"{self.n_features_}")
        return np.concatenate([z, f], axis=1)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((torch.from_numpy(X) - torch.from_numpy(self.mean_)) / torch.from_numpy(self.scale_)).numpy()

    @staticmethod
    def _labels(y: Any, n: int, what: str) -> np.ndarray:
        labels = np.asarray(y)
        if labels.shape != (n,):
            raise DataError(f"MRRClassifier: {what} must have shape ({n},) (one label per row), got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or (n and labels.min() < 0):
            raise DataError(f"MRRClassifier: {what} must be class indices 0..K-1, got dtype {labels.dtype}"
                            + (f", minimum {labels.min()}" if n else ""))
        return labels.astype(np.int64)

    # -- fitting --------------------------------------------------------------------------------------------------
    def fit(self, Z: Any, F: Any, y: Any, Z_val: Any = None, F_val: Any = None, y_val: Any = None) -> MRRClassifier:
        """Fit the standardisation (on this training set only) and the head.

        Args:
            Z: embeddings ``(N, sum D)`` (:func:`channel_embeddings`).
            F: hand-crafted features ``(N, F)``; ignored (may be None) with ``use_features=False``.
            y: class indices ``(N,)``.
            Z_val, F_val, y_val: validation data for early stopping (all or none).

        Returns:
            self.

        Raises:
            DataError: shapes that disagree, non-finite values (the message names the row and column), labels
                that are not class indices, or features missing with ``use_features=True``.
        """
        Z = _matrix(Z, "Z (the embeddings)")
        self.n_embedding_ = Z.shape[1]
        X = self._columns(Z, F, fitted=False)
        self.n_features_ = X.shape[1] - self.n_embedding_
        y = self._labels(y, len(X), "y")
        has_val = y_val is not None
        if has_val != (Z_val is not None):
            raise ConfigError("MRRClassifier.fit: give Z_val, F_val and y_val together, or none of them")
        if has_val:
            X_val = self._columns(Z_val, F_val, fitted=True)
            y_val = self._labels(y_val, len(X_val), "y_val")
        k = self.num_classes or int(max(y.max(initial=0), y_val.max(initial=0) if has_val else 0)) + 1
        if y.max(initial=0) >= k or (has_val and y_val.max(initial=0) >= k):
            raise DataError(f"MRRClassifier: labels must be below num_classes={k}")
        self.num_classes_ = k
        mean = X.astype(np.float64).mean(axis=0)
        std = X.astype(np.float64).std(axis=0)
        self.mean_ = mean.astype(np.float32)
        self.scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        Xs = self._standardise(X)
        Xs_val = self._standardise(X_val) if has_val else None
        if self.head == "gbdt":
            self._fit_gbdt(Xs, y, Xs_val, y_val)
        elif self.head == "logreg":
            from sklearn.linear_model import LogisticRegression

            with self._threads():
                self.model_ = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=3000,
                                                 random_state=self.seed).fit(Xs, y)
            self.history_ = None
        else:
            self._fit_mlp(Xs, y, Xs_val, y_val)
        return self

    def _fit_gbdt(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate, max_iter=self.max_iter, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf, l2_regularization=self.l2_regularization, class_weight=self.class_weight, random_state=self.seed,
            early_stopping=True if X_val is not None else "auto")
        with self._threads():
            if X_val is not None:
                model.fit(X, y, X_val=X_val, y_val=y_val)
            else:
                model.fit(X, y)
        self.model_, self.history_ = model, None

    def _threads(self):
        from contextlib import nullcontext

        if self.n_threads is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=self.n_threads, user_api="openmp")

    def _fit_mlp(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None, y_val: np.ndarray | None) -> None:
        from robustlab.common.training import TrainConfig, build_regime, train

        k = self.num_classes_
        from robustlab.common.losses import WeightedCrossEntropy, class_weights

        weight = class_weights(y, k, how="balanced" if self.class_weight == "balanced" else "none")
        config = TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, patience=self.patience,
                             monitor="val_macro_f1" if X_val is not None else None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = MLP(X.shape[1], k, hidden=self.hidden, dropout=self.dropout)
            regime = build_regime("erm", model, loss=WeightedCrossEntropy(weight))
            val = (torch.from_numpy(X_val), torch.from_numpy(y_val)) if X_val is not None else None
            result = train(model, regime, (torch.from_numpy(X), torch.from_numpy(y)), val, config=config,
                           seed=self.seed)
        self.model_ = (result.eval_model or model).eval()
        self.history_ = result.history

    # -- prediction -----------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise ConfigError("MRRClassifier is not fitted; call fit first")

    def predict_proba(self, Z: Any, F: Any = None) -> np.ndarray:
        """Class probabilities ``(N, num_classes_)`` (a class the boosting never saw in training gets 0)."""
        self._check_fitted()
        Xs = self._standardise(self._columns(Z, F, fitted=True))
        if self.head in ("gbdt", "logreg"):
            with self._threads():
                p = self.model_.predict_proba(Xs)
            out = np.zeros((len(Xs), self.num_classes_), dtype=np.float64)
            out[:, self.model_.classes_.astype(np.int64)] = p
            return out
        with torch.no_grad():
            return torch.softmax(self.model_(torch.from_numpy(Xs)), dim=1).double().numpy()

    def predict(self, Z: Any, F: Any = None) -> np.ndarray:
        """The most probable class ``(N,)`` int64."""
        return self.predict_proba(Z, F).argmax(axis=1).astype(np.int64)

    def to_module(self, models: Sequence[ChannelModel]) -> MRRNet:
        """The fitted MRR as one :class:`MRRNet` (``head="mlp"`` only): the channel models that gave ``Z`` (in
        the same order; copied), the standardisation and the MLP. Its softmax equals :meth:`predict_proba`.

        Raises:
            ConfigError: a ``"gbdt"`` head (not differentiable), an unfitted classifier, or models whose
                embeddings do not add up to the columns of ``Z``.
        """
        self._check_fitted()
        if self.head != "mlp":
            raise ConfigError(f"MRRClassifier.to_module needs head='mlp': a {self.head} head is not a torch module "
                              "(gradient boosting is not differentiable)")
        names = [channel_name(m) for m in models]
        dims = sum(int(m.embedding_dim) for m in models)
        if dims != self.n_embedding_:
            raise ConfigError(f"MRRClassifier.to_module: the models' embeddings have {dims} columns, the classifier "
                              f"was fitted on {self.n_embedding_}")
        net = MRRNet(channels=[{"name": n, "args": dict(m.model_args)} for n, m in zip(names, models)],
                     num_features=self.n_features_ if self.use_features else 0, num_classes=self.num_classes_,
                     use_features=self.use_features, hidden=self.hidden, dropout=self.dropout)
        for target, source in zip(net.channels, models):
            target.load_state_dict({k: v for k, v in source.state_dict().items() if not k.startswith("head.")})
        net.mean.copy_(torch.from_numpy(self.mean_))
        net.scale.copy_(torch.from_numpy(self.scale_))
        net.head.load_state_dict(self.model_.state_dict())
        return net.eval()


class MRRNet(RecordsArgs, nn.Module):
    """The multi-resolution representation end to end: channel models, standardisation, MLP head.

    Attacks and the training engine pass one tensor, so the input packs the window and the hand-crafted features
    of each sample along the last axis: ``x = MRRNet.pack(windows, features)`` of shape ``(N, C, L + F)`` holds
    the window in ``x[..., :L]`` and the features in ``x[:, 0, L:]`` (the other leads' feature positions are
    zeros and unused). The forward pass unpacks, embeds the window with each channel model, joins the features
    (``use_features``), standardises with the training statistics (buffers ``mean``, ``scale``) and returns the
    MLP's logits. The features are computed from the clean signal outside the network, so an attack must not move
    them: attack with the per-position budget :meth:`eps_mask` (``eps`` on the window, 0 on the features).

    Each channel model's own classification layer (``head``) is dropped: only its ``embed`` is used. Build it with
    :meth:`MRRClassifier.to_module`; the constructor arguments (each channel model's name and
    recorded arguments) let :func:`robustlab.common.modelfile.save_model` / ``load_model`` rebuild it.

    Args:
        channels: one ``{"name": <key of CHANNEL_MODELS>, "args": <its constructor arguments>}`` per channel
            model, in the order of the embedding columns.
        num_features: ``F``, the packed feature positions.
        num_classes: ``K``.
        use_features: whether the features join the embeddings (else they are ignored).
        hidden, dropout: the MLP head (:class:`robustlab.common.models.MLP`).

    Shape:
        input ``(N, C, L + F)`` packed; output ``(N, K)`` logits.

    Reference:
        Wang, D., Meng, Q., Chen, D., Zhang, H., Xu, L. "Automatic detection of arrhythmia based on
        multi-resolution representation of ECG signal", Sensors 20(6):1579, 2020.
    """

    citation = CITATION

    def __init__(self, channels: Sequence[Mapping[str, Any]], num_features: int, num_classes: int, *,
                 use_features: bool = True, hidden: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        if not channels:
            raise ConfigError("MRRNet needs at least one channel model")
        built = []
        for spec in channels:
            name = spec.get("name")
            if name not in CHANNEL_MODELS:
                raise ConfigError(f"MRRNet: unknown channel model {name!r}; choose from {', '.join(CHANNEL_MODELS)}")
            model = CHANNEL_MODELS[name](**dict(spec.get("args", {})))
            model.head = nn.Identity()  # only the embedding is used: no unused weights in the module or its file
            built.append(model)
        shapes = {(m.in_channels, m.window) for m in built}
        if len(shapes) != 1:
            raise ConfigError(f"MRRNet: the channel models expect different windows (leads, samples): {sorted(shapes)}")
        if num_features < 0:
            raise ConfigError(f"MRRNet: num_features must be >= 0, got {num_features}")
        self.channels = nn.ModuleList(built)
        (self.in_channels, self.window), = shapes
        self.num_features, self.num_classes, self.use_features = int(num_features), int(num_classes), use_features
        width = sum(m.embedding_dim for m in built) + (self.num_features if use_features else 0)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.head = MLP(width, num_classes, hidden=tuple(hidden), dropout=dropout)

    @staticmethod
    def pack(windows: Tensor | np.ndarray, features: Tensor | np.ndarray | None) -> Tensor:
        """Windows ``(N, C, L)`` and features ``(N, F)`` as one float32 tensor ``(N, C, L + F)`` (features on lead 0,
        zeros on the others); ``features=None`` gives the windows alone."""
        w = torch.as_tensor(windows, dtype=torch.float32)
        if w.ndim != 3:
            raise DataError(f"MRRNet.pack: windows must have shape (N, C, L), got {tuple(w.shape)}")
        if features is None:
            return w
        f = torch.as_tensor(features, dtype=torch.float32, device=w.device)
        if f.ndim != 2 or len(f) != len(w):
            raise DataError(f"MRRNet.pack: features must have shape ({len(w)}, F), got {tuple(f.shape)}")
        tail = torch.zeros(w.shape[0], w.shape[1], f.shape[1], dtype=w.dtype, device=w.device)
        tail[:, 0] = f
        return torch.cat([w, tail], dim=2)

    def unpack(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The windows ``(N, C, L)`` and features ``(N, F)`` of a packed input."""
        expected = (self.in_channels, self.window + self.num_features)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"MRRNet takes packed inputs of shape (N, {expected[0]}, {expected[1]}) = window of "
                             f"{self.window} samples + {self.num_features} features (MRRNet.pack), got "
                             f"{tuple(x.shape)}")
        return x[..., :self.window], x[:, 0, self.window:]

    def eps_mask(self, eps: float) -> Tensor:
        """A per-position L-inf budget ``(C, L + F)`` for :class:`~robustlab.common.attacks.PGD`: ``eps`` (mV) on
        the window, 0 on the features."""
        if not eps >= 0:
            raise ConfigError(f"MRRNet.eps_mask: eps must be >= 0 (mV), got {eps!r}")
        mask = torch.zeros(self.in_channels, self.window + self.num_features)
        mask[:, :self.window] = float(eps)
        return mask

    def representation(self, x: Tensor) -> Tensor:
        """The standardised MRR ``(N, width)`` of a packed input: embeddings, then features (``use_features``)."""
        windows, features = self.unpack(x)
        parts = [m.embed(windows) for m in self.channels]
        if self.use_features:
            parts.append(features)
        return (torch.cat(parts, dim=1) - self.mean) / self.scale

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.representation(x))
