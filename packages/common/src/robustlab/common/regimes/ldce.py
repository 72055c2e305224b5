"""LDCE: label-distribution confidence estimation, the phase that scores each noisy label against trusted data."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.common.errors import CheckpointError, ConfigError, DataError
from robustlab.common.features import FeatureRecorder
from robustlab.common.label_noise import confidence, find_noisy, inverse_distances, label_distribution
from robustlab.common.regimes._per_sample import batch_index, check_range
from robustlab.common.regimes.base import FitState, Regime, StepContext, unwrap

__all__ = ["LDCE"]


class LDCE(Regime):
    """Train an encoder on trusted and noisy data while estimating a confidence for every noisy label.

    The training loader yields the noisy (untrusted) set; the regime holds the small trusted set. At every step
    it draws ``query_batch_size`` trusted samples without replacement (the query) and ``n_shot`` trusted samples
    of every class (the support; with replacement for a class that has fewer), both with the global torch random
    generator (which the engine checkpoints), and runs one forward pass of ``cat(support, query, noisy)``,
    recording the embedding that the layer named ``features`` outputs (flattened to ``(N, D)``). Then:

    - the prototype loss ``loss_sim``: cross entropy of the query samples over the classes, with logits ``1/d_j``,
      ``d_j`` the mean over class ``j``'s support samples of the mean squared difference of the embeddings;
    - the confidence of each noisy label, from the detached embeddings: its share in the label distribution
      (:func:`~robustlab.common.label_noise.label_distribution`, the softmax of the same ``1/d_j`` against the
      support), smoothed across epochs with the sample's stored value (:func:`~robustlab.common.label_noise.
      confidence`: ``alpha * previous + (1 - alpha) * share``; stored values start at 0, as in the authors' code)
      and stored back by the batch's ``index``;
    - the attention of a noisy sample: its new confidence where that exceeds ``threshold``, else 0;
    - ``loss = [sum CE(support and query) + sum attention * CE(noisy)] / (n_attended + n_support + n_query)
      + loss_sim``.

    After training, :attr:`confidences`, :meth:`find_noisy` and :meth:`detected_clean` give the result; the
    final classifier (:class:`~robustlab.common.regimes.loss_correction.LossCorrection`, ``mode="hard"`` or
    ``"soft"``) takes the confidences. Under ``torchrun`` the indices and confidences of every process's share
    of the batch are gathered before they are stored, so every process keeps the same table.

    The epoch log has ``train_attended`` (fraction of noisy samples attended) and, when batches carry
    ``meta["clean"]`` (1 where the observed label is right; for monitoring only), ``train_label_precision``
    (clean labels among the attended samples) and ``train_label_recall`` (attended samples among the clean
    ones), as the authors print them: ratios of the epoch's counts (``step_metrics`` holds the batch's ratios;
    a batch with nothing attended has precision 0).

    Args:
        trusted_x: the trusted inputs, ``(M, *)`` (tensor or array); kept on the CPU, slices move to the device.
        trusted_y: their true labels, ``(M,)`` integers in ``[0, num_classes)``.
        num_samples: size of the noisy training set: batch ``index`` values lie in ``[0, num_samples)``.
        features: name of the model's submodule whose output is the embedding (``model.named_modules()``).
        num_classes: ``K``; default ``max(trusted_y) + 1``. Every class needs a trusted sample.
        n_shot: support samples per class per step.
        query_batch_size: trusted samples per step for the prototype loss, at most ``M``.
        alpha: weight of the stored confidence in the running average, in ``[0, 1]``.
        threshold: a noisy sample is attended while its confidence exceeds this, and flagged as noisy
            (:meth:`find_noisy`) while below it, in ``[0, 1]``.
        task: ``"multiclass"`` only.

    Raises:
        ConfigError: a parameter out of range, a class without trusted samples (named), another task.
        DataError: trusted arrays of different lengths or labels out of range; during training a batch without
            ``index``, an ``index`` or label out of range, or a model whose output is not ``(N, K)``.

    Shape:
        batch ``x``: ``(N, *)`` like ``trusted_x[0]``; ``y``, ``index``, ``meta["clean"]``: ``(N,)``; model output
        ``(N, K)``; the recorded embedding ``(N, *)``, flattened to ``(N, D)``.

    Reference:
        Liu, Y., Xu, N., Zhang, Y., Geng, X. "Label Distribution for Learning with Noisy Labels", IJCAI 2020
        (code: palm-ml/PDLE, ``detect.py``).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> _ = torch.manual_seed(0)
        >>> model = MLP(2, 3, hidden=(8,))  # layers: 0 Flatten, 1 Linear, 2 ReLU, 3 Linear
        >>> trusted_x, trusted_y = torch.randn(12, 2), torch.arange(12) % 3
        >>> regime = LDCE(trusted_x, trusted_y, num_samples=100, features="2", n_shot=2, query_batch_size=6)
        >>> batch = {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,)), "index": torch.arange(8)}
        >>> loss = regime(model, batch)
        >>> loss.ndim, regime.confidences.shape, int((regime.confidences[:8] > 0).sum())
        (0, torch.Size([100]), 8)
        >>> bool(regime.find_noisy()[:8].all())  # first visit: 0.4 * share < 0.5, all still flagged
        True
    """

    citation = ("Liu, Y., Xu, N., Zhang, Y., Geng, X. Label Distribution for Learning with Noisy Labels. "
                "IJCAI 2020, pp. 2568-2574.")

    def __init__(self, trusted_x, trusted_y, num_samples: int, *, features: str, num_classes: int | None = None,
                 n_shot: int = 5, query_batch_size: int = 64, alpha: float = 0.6, threshold: float = 0.5,
                 task="multiclass") -> None:
        super().__init__(task=task)
        if self.task.name != "multiclass":
            raise ConfigError(f"LDCE estimates the confidence of class labels: task must be 'multiclass', got "
                              f"{self.task.name!r}")
        x = torch.as_tensor(trusted_x)
        y = torch.as_tensor(trusted_y)
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise DataError(f"trusted_y must be a 1-D array of integer labels, got dtype {y.dtype} and shape "
                            f"{tuple(y.shape)}")
        if len(x) != len(y):
            raise DataError(f"trusted_x has {len(x)} samples but trusted_y has {len(y)}")
        if len(y) == 0:
            raise DataError("trusted_x and trusted_y are empty: LDCE needs trusted samples")
        y = y.long()
        if int(y.min()) < 0:
            raise DataError(f"trusted_y holds the negative label {int(y.min())} at position "
                            f"{int((y < 0).nonzero()[0])}; labels are class indices >= 0")
        if num_classes is None:
            num_classes = int(y.max()) + 1
        if int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2, got {num_classes}")
        num_classes = int(num_classes)
        if int(y.max()) >= num_classes:
            raise DataError(f"trusted_y holds the label {int(y.max())} at position "
                            f"{int((y >= num_classes).nonzero()[0])}, outside [0, {num_classes})")
        counts = torch.bincount(y, minlength=num_classes)
        missing = (counts == 0).nonzero().flatten().tolist()
        if missing:
            raise ConfigError(f"class {missing[0]} has no trusted sample (classes without any: {missing}); the "
                              "support set needs at least one trusted sample of every class")
        if not isinstance(features, str) or not features:
            raise ConfigError(f"features must be the name of the embedding layer (a key of "
                              f"model.named_modules()), got {features!r}")
        if int(num_samples) < 1:
            raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
        if int(n_shot) < 1:
            raise ConfigError(f"n_shot must be >= 1, got {n_shot}")
        if not 1 <= int(query_batch_size) <= len(y):
            raise ConfigError(f"query_batch_size must be in [1, {len(y)}] (the number of trusted samples), got "
                              f"{query_batch_size}")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
        self.features = features
        self.num_classes = num_classes
        self.num_samples = int(num_samples)
        self.n_shot = int(n_shot)
        self.query_batch_size = int(query_batch_size)
        self.alpha = float(alpha)
        self.threshold = float(threshold)
        self._x, self._y = x, y
        self._rows = [(y == k).nonzero().flatten() for k in range(num_classes)]
        self._confidences = torch.zeros(self.num_samples)
        self._visits = torch.zeros(self.num_samples, dtype=torch.int64)
        # this epoch's attended clean, attended and clean samples, and batches with meta["clean"]
        self._counts = torch.zeros(4, dtype=torch.float64)
        self._collectives: StepContext | None = None

    # -- results --------------------------------------------------------------------------------------------------
    @property
    def confidences(self) -> Tensor:
        """A copy of the stored confidence of every noisy sample, ``(num_samples,)`` float32 (0: not seen yet)."""
        return self._confidences.clone()

    @property
    def visits(self) -> Tensor:
        """How many times each noisy sample's confidence was updated, ``(num_samples,)`` int64."""
        return self._visits.clone()

    def find_noisy(self) -> np.ndarray:
        """Boolean mask of the noisy samples flagged as mislabelled: confidence below ``threshold``
        (:func:`robustlab.common.label_noise.find_noisy`)."""
        return find_noisy(self._confidences, self.threshold)

    def detected_clean(self) -> np.ndarray:
        """Boolean mask of the noisy samples detected as clean: confidence at least ``threshold``."""
        return ~self.find_noisy()

    # -- one step -------------------------------------------------------------------------------------------------
    def _draw(self) -> tuple[Tensor, Tensor]:
        """Rows of the query and of the support (``n_shot`` per class, class by class), from the global RNG."""
        query = torch.randperm(len(self._y))[: self.query_batch_size]
        support = []
        for rows in self._rows:
            if len(rows) >= self.n_shot:
                support.append(rows[torch.randperm(len(rows))[: self.n_shot]])
            else:
                support.append(rows[torch.randint(len(rows), (self.n_shot,))])
        return query, torch.cat(support)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        """The classification loss of the trusted and attended samples plus the prototype loss; updates the
        stored confidences of the batch's samples."""
        x, y, index = batch["x"], batch["y"].reshape(-1).long(), batch_index(batch, "LDCE")
        if len(index) != len(x) or len(y) != len(x):
            raise DataError(f"the batch has {len(x)} inputs, {len(y)} labels and {len(index)} indices")
        check_range(index, self.num_samples, "index")
        check_range(y, self.num_classes, "y")
        device = x.device
        query, support = self._draw()
        rows = torch.cat([support, query])
        trusted = self._x[rows]
        if trusted.dtype != x.dtype:
            if not (trusted.is_floating_point() and x.is_floating_point()):
                raise DataError(f"the batch inputs are {x.dtype} but trusted_x is {trusted.dtype}: give both in "
                                "the same units (e.g. both normalised float tensors)")
            trusted = trusted.to(x.dtype)
        inputs = torch.cat([trusted.to(device), x])
        known = self._y[rows].to(device)
        n_s, n_q = len(support), len(query)

        with FeatureRecorder(unwrap(model), self.features) as rec:
            logits = model(inputs)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise DataError(f"LDCE needs model outputs of shape (N, {self.num_classes}), got "
                            f"{tuple(logits.shape)}")
        emb = rec.outputs.get(self.features)
        if not isinstance(emb, Tensor):
            raise ConfigError(f"the layer {self.features!r} did not output a tensor during the forward pass "
                              f"(got {type(emb).__name__}); name the layer whose output is the embedding")
        emb = emb.reshape(len(inputs), -1).float()
        emb_s, emb_q, emb_n = emb[:n_s], emb[n_s:n_s + n_q], emb[n_s + n_q:]

        with torch.autocast(device.type, enabled=False):  # distances in float32, also under mixed precision
            loss_sim = F.cross_entropy(inverse_distances(emb_q, emb_s, known[:n_s], self.num_classes), known[n_s:])
            with torch.no_grad():
                dist = label_distribution(emb_n.detach(), emb_s.detach(), known[:n_s], self.num_classes)
                previous = self._confidences[index.cpu()].to(device)
                conf = confidence(dist, y, previous=previous, alpha=self.alpha).float()
        with torch.no_grad():
            self._store(index, conf)
            attended = conf > self.threshold
            attention = torch.where(attended, conf, torch.zeros_like(conf))
        n_att = int(attended.sum())
        loss_c = F.cross_entropy(logits[: n_s + n_q], known, reduction="sum")
        loss_n = (F.cross_entropy(logits[n_s + n_q:], y, reduction="none") * attention.to(logits.dtype)).sum()
        loss = (loss_c + loss_n) / (n_att + n_s + n_q) + loss_sim

        self.step_metrics = {"attended": n_att / len(x)}
        clean = (batch.get("meta") or {}).get("clean")
        if clean is not None:
            clean = clean.reshape(-1).to(device).bool()
            counts = torch.tensor([float((clean & attended).sum()), float(n_att), float(clean.sum()), 1.0],
                                  dtype=torch.float64)
            self._counts += counts
            self.step_metrics["label_precision"] = _ratio(counts[0], counts[1])
            self.step_metrics["label_recall"] = _ratio(counts[0], counts[2])
        return loss

    def _store(self, index: Tensor, conf: Tensor) -> None:
        if self._collectives is not None:  # every process's share of the batch
            index, conf = self._collectives.all_gather(index), self._collectives.all_gather(conf)
        index = index.cpu()
        self._confidences[index] = conf.detach().float().cpu()
        self._visits.index_add_(0, index, torch.ones_like(index))

    def train_step(self, step: StepContext, model: nn.Module, batch: dict) -> float:
        self._collectives = step
        try:
            return super().train_step(step, model, batch)
        finally:
            self._collectives = None

    # -- hooks ----------------------------------------------------------------------------------------------------
    def setup(self, model: nn.Module, state: FitState) -> None:
        FeatureRecorder(unwrap(model), self.features)  # a wrong layer name fails before training

    def on_epoch_start(self, model: nn.Module, state: FitState) -> None:
        self._counts.zero_()

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        """The epoch's label precision and recall from its counts (summed over the processes), when batches
        carried ``meta["clean"]``."""
        counts = state.all_reduce(self._counts)
        if not bool(counts[3] > 0):
            return {}
        return {"train_label_precision": _ratio(counts[0], counts[1]),
                "train_label_recall": _ratio(counts[0], counts[2])}

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        return {"confidences": self._confidences.clone(), "visits": self._visits.clone()}

    def load_state_dict(self, state: dict) -> None:
        for key, dtype in (("confidences", torch.float32), ("visits", torch.int64)):
            value = state.get(key)
            if not isinstance(value, Tensor) or value.shape != (self.num_samples,):
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise CheckpointError(f"LDCE state {key!r} must be a tensor of shape ({self.num_samples},) (one "
                                      f"value per noisy sample), got {shape}")
            setattr(self, f"_{key}", value.detach().to(device="cpu", dtype=dtype).clone())


def _ratio(num: Tensor, den: Tensor) -> float:
    return float(num / den) if float(den) > 0 else 0.0
