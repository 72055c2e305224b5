"""Latent geometry graphs (LGG): similarity graphs of a batch's intermediate representations, and three regimes.

Lassance, Gripon & Ortega (Algorithms 2021) represent the geometry of a latent space by a graph over the samples
of a batch: each sample's representation at a layer is flattened, the edge weight of two samples is the cosine
similarity of their representations, a k-nearest-neighbour mask may sparsify the graph, and the adjacency may be
normalized. Three losses constrain these graphs:

- :class:`GraphDistillation`: the student's graphs at some layers match a frozen teacher's at paired layers
  (graph knowledge distillation, Lassance et al. 2020, the authors' code ``cadurosar/graph_kd``);
- :class:`GraphClassification`: edges between samples of different classes are penalized at some layers
  (the label signal's smoothness on the graph, Bontonou et al. 2019);
- :class:`GraphSmoothness`: the smoothness of the label signal on each layer's graph,
  ``sigma_l = trace(Y^T L_l^m Y)``, should vary little from one layer to the next: the mean of
  ``|sigma_l - sigma_(l-1)|`` is penalized (Laplacian networks, the authors' code ``cadurosar/laplacian_networks``).

Every regime reads its layers by name through :class:`robustlab.common.features.FeatureRecorder`, so any
domain's model works; the graph construction is the public function :func:`latent_graph`, the label signal's
smoothness :func:`label_smoothness`.

Following the authors' code (``cadurosar/graph_kd`` at commit a8cfe5ec832996b58343041f6dbd3d0d1c16b042,
``utils.representations_to_adj`` and ``utils.do_gkd``; ``cadurosar/laplacian_networks`` at commit
27f6f2d7145426b38f578e9c1beecae3e7392f1b, ``cifar_10/gsp.py``):

- similarity: cosine of the flattened representations (``F.normalize`` then ``X X^T``); the authors take ReLU
  outputs, where the cosine is never negative. Here negative similarities (of layers before a ReLU) are clipped
  to 0 so that the weights stay those of a graph; on ReLU outputs this changes nothing;
- distillation: the diagonal is zeroed, the adjacency normalized ``D^-1/2 W D^-1/2``, the student's graph masked
  with the teacher's k-NN mask, and the loss is the summed squared difference of the two adjacency matrices
  (``F.mse_loss(..., reduction="none").sum()``), averaged over the paired layers (their ``loss_gkd / 3``), added
  to the cross entropy with weight ``lambda_gkd`` (25 in their checkpoints' names, k = the batch size: no
  sparsification, power 1);
- robustness: the combinatorial Laplacian ``L = D - W`` of the full cosine graph (no k-NN, no normalization),
  ``sigma = trace(Y^T L^m Y)`` with one-hot ``Y``, ``m = 2``, the mean over consecutive layers of
  ``|sigma_l - sigma_(l-1)|``, weight ``gamma^m = 0.01^2`` (``train_scripts/R.sh``), on every ReLU output.

Departures: the k-NN mask is computed from the (clipped) cosine similarities and applied before the degree
normalization (the graph_kd code takes the k largest entries of the already normalized adjacency and masks it
afterwards; both coincide without sparsification, the authors' setting); a node without any edge keeps a zero row
after normalization instead of the division by zero of the authors' code. The classification loss is the mean of
``W_ij`` times half the squared label distance over the ``N * N`` pairs (``sigma / N^2``), so that its weight does
not depend on the batch size; the paper's text could not be read here for its exact scaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder
from robustlab.common.modes import model_mode
from robustlab.common.regimes.base import FitState, Regime, all_inputs, labeled_part, unwrap

__all__ = ["GraphClassification", "GraphDistillation", "GraphSmoothness", "NORMALIZATIONS", "knn_mask",
           "label_signal", "label_smoothness", "latent_graph"]

NORMALIZATIONS = ("none", "symmetric")
"""How :func:`latent_graph` normalizes the adjacency: not at all, or ``D^-1/2 W D^-1/2``."""

_LGG_CITATION = ("Lassance, C., Gripon, V., Ortega, A. Representing Deep Neural Networks Latent Space Geometries "
                 "with Graphs. Algorithms 14(2), 39, 2021. doi:10.3390/a14020039")


def knn_mask(similarity: Tensor, k: int) -> Tensor:
    """The symmetric k-nearest-neighbour mask of a similarity matrix (self excluded).

    Row ``i`` marks the ``k`` largest off-diagonal entries of row ``i``; the mask is the union of that
    relation and its transpose (an edge kept by either end), as the authors' ``min(1, A + A^T)``.

    Args:
        similarity: ``(N, N)`` similarities.
        k: neighbours per sample, ``1 <= k``; ``k >= N - 1`` keeps every off-diagonal pair.

    Returns:
        A float ``(N, N)`` tensor of 0/1 with a zero diagonal.
    """
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ConfigError(f"knn_mask needs a square (N, N) similarity matrix, got shape {tuple(similarity.shape)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be an integer >= 1 (neighbours per sample), got {k!r}")
    n = similarity.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=similarity.device)
    if k >= n - 1:
        return (~eye).to(similarity.dtype)
    scores = similarity.detach().masked_fill(eye, float("-inf"))
    idx = scores.topk(k, dim=1).indices
    a = torch.zeros_like(scores).scatter_(1, idx, 1.0)
    return torch.maximum(a, a.T)


def latent_graph(
    features: Tensor,
    *,
    k: int | None = None,
    normalization: str = "none",
    mask: Tensor | None = None,
) -> Tensor:
    """The latent geometry graph of a batch: cosine similarities of the flattened representations.

    Steps: flatten each sample to a vector, ``W_ij = max(0, cos(f_i, f_j))`` for ``i != j`` and ``W_ii = 0``;
    then keep the edges of ``mask`` (given) or of the k-NN mask (:func:`knn_mask`, with ``k``); then normalize.
    Gradients flow to ``features``.

    Args:
        features: a layer's output for a batch, ``(N, *)``.
        k: neighbours per sample for a k-NN graph; None keeps the complete graph.
        normalization: ``"none"`` or ``"symmetric"`` (``D^-1/2 W D^-1/2``, ``D`` the degrees; a node without
            edges keeps a zero row).
        mask: an ``(N, N)`` 0/1 mask to apply instead of computing one from ``k`` (a teacher's, so that a student's
            graph keeps the same edges).

    Returns:
        The ``(N, N)`` symmetric adjacency matrix.

    Raises:
        ConfigError: fewer than two samples, an unknown normalization, a bad ``k``, or a mask of another shape.

    Shape:
        features ``(N, *)`` -> ``(N, N)``.

    Reference:
        Lassance, Gripon & Ortega, Algorithms 2021 (section 3); the authors' ``representations_to_adj``
        (``cadurosar/graph_kd``).

    Examples::

        >>> import torch
        >>> w = latent_graph(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))
        >>> [round(v, 4) for v in w[1].tolist()]
        [0.7071, 0.0, 0.7071]
    """
    if not isinstance(features, Tensor) or features.ndim < 1:
        raise ConfigError(f"features must be a tensor (N, *), got {type(features).__name__}")
    n = features.shape[0]
    if n < 2:
        raise ConfigError(f"a latent graph needs at least 2 samples in the batch, got {n}")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    flat = F.normalize(features.reshape(n, -1).float(), p=2, dim=1)
    w = (flat @ flat.T).clamp(min=0.0)
    w = w * (1.0 - torch.eye(n, dtype=w.dtype, device=w.device))
    if mask is not None:
        if tuple(mask.shape) != (n, n):
            raise ConfigError(f"mask must have shape ({n}, {n}) for a batch of {n}, got {tuple(mask.shape)}")
        w = w * mask.to(w)
    elif k is not None:
        w = w * knn_mask(w, k)
    if normalization == "symmetric":
        deg = w.sum(dim=1)
        inv = torch.where(deg > 0, deg.clamp(min=torch.finfo(w.dtype).tiny).rsqrt(), torch.zeros_like(deg))
        w = inv[:, None] * w * inv[None, :]
    return w


def label_signal(y: Tensor, num_outputs: int, task_name: str) -> Tensor:
    """The label signal ``Y`` (``(N, D)`` float) of a batch's targets: one-hot class indices for a multi-class
    task (class probabilities as given), the 0/1 labels of a multi-label task, the targets of a regression."""
    if task_name == "multiclass" and not y.is_floating_point():
        if y.ndim != 1:
            raise ConfigError(f"multi-class targets must be class indices (N,), got shape {tuple(y.shape)}")
        return F.one_hot(y.long(), num_outputs).float()
    y = y.float()
    return y.unsqueeze(1) if y.ndim == 1 else y.reshape(y.shape[0], -1)


def label_smoothness(graph: Tensor, signal: Tensor, *, power: int = 1) -> Tensor:
    """``trace(Y^T L^m Y)``: the smoothness of the label signal ``Y`` on the graph, ``L = D - W``.

    With ``m = 1`` it is ``1/2 sum_ij W_ij ||y_i - y_j||^2``: for one-hot labels the summed weight of the edges
    (``i, j`` ordered) between samples of different classes.

    Args:
        graph: ``(N, N)`` symmetric adjacency ``W`` (:func:`latent_graph`).
        signal: ``(N, D)`` label signal (:func:`label_signal`).
        power: ``m >= 1``, the Laplacian's power (2 in the authors' robustness runs).

    Reference:
        Lassance, Gripon & Ortega, "Laplacian networks: bounding indicator function smoothness for neural
        networks robustness", APSIPA Trans. Signal Inf. Process. 10, e2, 2021 (their ``gsp.laplacian``).
    """
    if isinstance(power, bool) or not isinstance(power, int) or power < 1:
        raise ConfigError(f"power must be an integer >= 1, got {power!r}")
    if signal.shape[0] != graph.shape[0]:
        raise ConfigError(f"the label signal has {signal.shape[0]} rows for a graph of {graph.shape[0]} nodes")
    lap = torch.diag(graph.sum(dim=1)) - graph
    out = signal.to(graph)
    for _ in range(power):
        out = lap @ out
    return (signal.to(graph) * out).sum()


def _check_layers(layers: str | Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(layers, str):
        layers = (layers,)
    if not isinstance(layers, Sequence) or not layers or not all(isinstance(n, str) for n in layers):
        raise ConfigError(f"{what} must be a layer name or a non-empty sequence of names (from "
                          f"model.named_modules()), got {layers!r}")
    return tuple(layers)


def _check_weight(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_k(k: int | None) -> int | None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ConfigError(f"k must be None (complete graph) or an integer >= 1, got {k!r}")
    return k


def _recorded(rec: FeatureRecorder, model: nn.Module) -> list[Tensor]:
    out = []
    for name in rec.names:
        value = rec.outputs.get(name)
        if value is None:
            raise ConfigError(f"layer {name!r} of {type(model).__name__} did not run in the forward pass; give a "
                              "layer the model calls")
        if not isinstance(value, Tensor):
            raise ConfigError(f"layer {name!r} of {type(model).__name__} returns a {type(value).__name__}, not a "
                              "tensor; give a layer whose output is one tensor")
        out.append(value)
    return out


def _forward_recording(model: nn.Module, layers: tuple[str, ...], x: Tensor) -> tuple[Tensor, list[Tensor]]:
    """``model(x)`` with the outputs of ``layers`` (named in the unwrapped model: DDP's ``module.`` prefix is not
    part of the names)."""
    with FeatureRecorder(unwrap(model), list(layers)) as rec:
        logits = model(x)
    return logits, _recorded(rec, unwrap(model))


def _without_graph(regime: Regime, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The task loss alone, for a batch too small for a graph (fewer than two samples); ``graph_skipped`` is 1 in
    ``step_metrics`` and ``graph_loss`` 0 (the same keys every step, as the engine sums them across processes). A
    batch without any labelled sample gives a zero loss that still reaches every parameter."""
    logits = model(x)
    hard = regime.loss(logits, y) if len(x) else logits.sum() * 0.0
    regime.step_metrics = {"graph_loss": 0.0, "task_loss": hard.item(), "graph_skipped": 1.0}
    return hard


class _RecordsLayers(Regime):
    """A regime that records ``self.layers`` of the model: the names are checked before training."""

    layers: tuple[str, ...] = ()

    def setup(self, model: nn.Module, state: FitState) -> None:
        FeatureRecorder(unwrap(model), list(self.layers))  # a wrong layer name fails before training


class GraphDistillation(_RecordsLayers):
    """``loss(student(x), y) + weight * mean_l sum_ij (A^T_l - A^S_l)_ij^2``: the student's latent graphs match a
    frozen teacher's.

    ``A^T_l`` and ``A^S_l`` are the normalized latent graphs (:func:`latent_graph`, ``normalization``) of the
    teacher's layer ``teacher_layers[l]`` and the student's layer ``layers[l]`` for the same batch; the student's
    graph keeps the edges of the teacher's k-NN mask. The graphs compare samples with samples, so the two layers
    may have any widths. The graph term covers every input of the batch (those of an unlabelled loader too); the
    task loss the labelled samples. The teacher runs in eval mode without gradients.

    Args:
        teacher: the trained network (frozen by the regime: ``add_network(..., trainable=False)``).
        layers: the student's layers (names from ``student.named_modules()``).
        teacher_layers: the teacher's layers paired with ``layers``; default the same names.
        weight: ``lambda``, the weight of the graph term (25 in the authors' runs, with the summed squared
            difference and batches of 128).
        k: neighbours per sample of the teacher's k-NN mask; None (the authors' setting) keeps every edge.
        normalization: ``"symmetric"`` (the authors') or ``"none"``.
        power: compare ``A^p`` instead of ``A`` (the authors' ``--p``, 1 by default).
        loss: the task loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Raises:
        ConfigError: a teacher layer that is not a submodule (at construction), a student layer that is not one
            (at the first call), different numbers of paired layers, a negative weight, a bad ``k`` or ``power``.

    Shape:
        batch ``x``: ``(N, *)`` with ``N >= 2``; the recorded layers return ``(N, *)`` tensors.

    Reference:
        Lassance, C., Gripon, V., Ortega, A. "Representing Deep Neural Networks Latent Space Geometries with
        Graphs", Algorithms 14(2), 39, 2021 (section 4); Lassance et al., "Deep geometric knowledge distillation
        with graphs", ICASSP 2020 (arXiv:1911.03080). Code: https://github.com/cadurosar/graph_kd.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> teacher = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 3))
        >>> student = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> regime = GraphDistillation(teacher, layers="1", weight=25.0)
        >>> regime(student, {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}).ndim
        0
        >>> any(p.requires_grad for p in teacher.parameters())
        False
    """

    citation = _LGG_CITATION

    def __init__(self, teacher: nn.Module, *, layers: str | Sequence[str],
                 teacher_layers: str | Sequence[str] | None = None, weight: float = 25.0, k: int | None = None,
                 normalization: str = "symmetric", power: int = 1, loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        self.layers = _check_layers(layers, "layers")
        self.teacher_layers = self.layers if teacher_layers is None else _check_layers(teacher_layers,
                                                                                       "teacher_layers")
        if len(self.teacher_layers) != len(self.layers):
            raise ConfigError(f"teacher_layers ({len(self.teacher_layers)}: {list(self.teacher_layers)}) must pair "
                              f"one to one with layers ({len(self.layers)}: {list(self.layers)})")
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if isinstance(power, bool) or not isinstance(power, int) or power < 1:
            raise ConfigError(f"power must be an integer >= 1, got {power!r}")
        FeatureRecorder(teacher, list(self.teacher_layers))  # the teacher's names are checked now
        self.add_network("teacher", teacher, trainable=False)
        self.weight = _check_weight(weight, "weight")
        self.k = _check_k(k)
        self.normalization = normalization
        self.power = power

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher."""
        return self.networks["teacher"]

    def teacher_graphs(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """``(graph, k-NN mask)`` of each teacher layer for ``x``: eval mode, no gradients."""
        teacher = self.teacher
        with torch.no_grad(), model_mode(teacher, "eval"):
            _, feats = _forward_recording(teacher, self.teacher_layers, x)
            out = []
            for f in feats:
                n = f.shape[0]
                if self.k is None:
                    mask = 1.0 - torch.eye(n, device=f.device)
                else:
                    mask = knn_mask(latent_graph(f), self.k)
                out.append((latent_graph(f, mask=mask, normalization=self.normalization), mask))
            return out

    def graph_loss(self, teacher: list[tuple[Tensor, Tensor]], student_features: list[Tensor]) -> Tensor:
        """The mean over paired layers of the summed squared difference of the (powered) adjacency matrices."""
        total = student_features[0].new_zeros((), dtype=torch.float32)
        for (a_t, mask), f in zip(teacher, student_features):
            a_s = latent_graph(f, mask=mask, normalization=self.normalization)
            p_t, p_s = a_t, a_s
            for _ in range(self.power - 1):
                p_t, p_s = p_t @ a_t, p_s @ a_s
            total = total + (p_s - p_t.detach()).pow(2).sum()
        return total / len(student_features)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x_all = all_inputs(batch)
        if len(x_all) < 2:  # no graph on one sample (a last batch of N % batch_size == 1)
            return _without_graph(self, model, batch["x"], batch["y"])
        logits, feats = _forward_recording(model, self.layers, x_all)
        graph = self.graph_loss(self.teacher_graphs(x_all), feats)
        hard = self.loss(logits[: len(batch["x"])], batch["y"])
        self.step_metrics = {"graph_loss": graph.item(), "task_loss": hard.item(), "graph_skipped": 0.0}
        return hard + self.weight * graph


class GraphClassification(_RecordsLayers):
    """``loss(model(x), y) + weight * mean_l mean_ij W^l_ij ||y_i - y_j||^2 / 2``: edges between samples of
    different classes are penalized.

    ``W^l`` is the latent graph (:func:`latent_graph`) of layer ``layers[l]`` over the labelled samples of the
    batch; for one-hot labels ``||y_i - y_j||^2 / 2`` is 1 between different classes and 0 within a class, so the
    term is the share of the ``N * N`` pairs' weight that links classes, ``trace(Y^T L Y) / N^2``
    (:func:`label_smoothness`). Multi-label targets weigh a pair by half its Hamming distance, regression targets
    by half their squared difference (extensions; the paper is multi-class).

    Args:
        layers: the layers whose graphs are constrained (the penultimate, embedding layer in the paper).
        weight: the weight of the graph term.
        k: neighbours per sample of a k-NN graph; None keeps every edge.
        normalization: ``"none"`` (default) or ``"symmetric"``.
        loss: the task loss; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Shape:
        batch ``x``: ``(N, *)``; one with fewer than two labelled samples gets the task loss only (the graph term
        is skipped: ``graph_skipped`` is 1 in ``step_metrics``).

    Reference:
        Lassance, Gripon & Ortega, Algorithms 2021 (section 5); Bontonou, M., Lassance, C., Hacene, G. B.,
        Gripon, V., Tang, J., Ortega, A. "Introducing Graph Smoothness Loss for Training Deep Learning
        Architectures", IEEE Data Science Workshop 2019 (arXiv:1905.00301).

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> regime = GraphClassification(layers="1", weight=1.0)
        >>> regime(model, {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}).ndim
        0
    """

    citation = _LGG_CITATION

    def __init__(self, *, layers: str | Sequence[str], weight: float = 1.0, k: int | None = None,
                 normalization: str = "none", loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        self.layers = _check_layers(layers, "layers")
        self.weight = _check_weight(weight, "weight")
        self.k = _check_k(k)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization

    def graph_loss(self, features: list[Tensor], signal: Tensor) -> Tensor:
        """The mean over layers of ``trace(Y^T L Y) / N^2``."""
        n = signal.shape[0]
        terms = [label_smoothness(latent_graph(f, k=self.k, normalization=self.normalization), signal) / (n * n)
                 for f in features]
        return torch.stack(terms).mean()

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = labeled_part(batch, self.task)
        if len(x) < 2:  # no graph on fewer than two labelled samples (a last batch of N % batch_size == 1)
            return _without_graph(self, model, x, y)
        logits, feats = _forward_recording(model, self.layers, x)
        graph = self.graph_loss(feats, label_signal(y, logits.shape[-1], self.task.name))
        hard = self.loss(logits, y)
        self.step_metrics = {"graph_loss": graph.item(), "task_loss": hard.item(), "graph_skipped": 0.0}
        return hard + self.weight * graph


class GraphSmoothness(_RecordsLayers):
    """``loss(model(x), y) + weight * mean_l |sigma_l - sigma_(l-1)|``, ``sigma_l = trace(Y^T L_l^m Y)``: the
    label signal's smoothness varies smoothly from layer to layer (robustness to deviations of the inputs).

    ``L_l = D - W_l`` is the Laplacian of the latent graph (:func:`latent_graph`) of layer ``layers[l]`` over the
    labelled samples of the batch, ``Y`` their one-hot labels (:func:`label_signal`), ``m = power``. The layers
    are taken in the order given, which should be their order in the network (the authors use every ReLU output).

    Args:
        layers: at least two layers, in the network's order.
        weight: the weight of the term (the authors' ``gamma^m``: ``0.01^2 = 1e-4`` with ``m = 2``).
        power: ``m``, the Laplacian's power (2 in the authors' runs).
        k: neighbours per sample of a k-NN graph; None (the authors' setting) keeps every edge.
        normalization: ``"none"`` (the authors') or ``"symmetric"``.
        loss: the task loss; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (the last two use the targets as the
            signal: an extension).

    Shape:
        batch ``x``: ``(N, *)``; one with fewer than two labelled samples gets the task loss only (the graph term
        is skipped: ``graph_skipped`` is 1 in ``step_metrics``).

    Reference:
        Lassance, Gripon & Ortega, Algorithms 2021 (section 6); Lassance, C., Gripon, V., Ortega, A. "Laplacian
        networks: bounding indicator function smoothness for neural networks robustness", APSIPA Trans. Signal
        Inf. Process. 10, e2, 2021. Code: https://github.com/cadurosar/laplacian_networks.

    Examples::

        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> regime = GraphSmoothness(layers=("1", "3"))
        >>> regime(model, {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}).ndim
        0
    """

    citation = _LGG_CITATION

    def __init__(self, *, layers: Sequence[str], weight: float = 1e-4, power: int = 2, k: int | None = None,
                 normalization: str = "none", loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        self.layers = _check_layers(layers, "layers")
        if len(self.layers) < 2:
            raise ConfigError(f"GraphSmoothness compares consecutive layers: give at least two, got "
                              f"{list(self.layers)}")
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"a layer is given twice: {list(self.layers)}")
        self.weight = _check_weight(weight, "weight")
        if isinstance(power, bool) or not isinstance(power, int) or power < 1:
            raise ConfigError(f"power must be an integer >= 1, got {power!r}")
        self.power = power
        self.k = _check_k(k)
        if normalization not in NORMALIZATIONS:
            raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        self.normalization = normalization

    def smoothness(self, features: list[Tensor], signal: Tensor) -> Tensor:
        """``sigma_l`` of each layer, ``(L,)``."""
        return torch.stack([label_smoothness(latent_graph(f, k=self.k, normalization=self.normalization), signal,
                                             power=self.power) for f in features])

    def graph_loss(self, features: list[Tensor], signal: Tensor) -> Tensor:
        """``mean_l |sigma_l - sigma_(l-1)|``."""
        sigma = self.smoothness(features, signal)
        return (sigma[1:] - sigma[:-1]).abs().mean()

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = labeled_part(batch, self.task)
        if len(x) < 2:  # no graph on fewer than two labelled samples (a last batch of N % batch_size == 1)
            return _without_graph(self, model, x, y)
        logits, feats = _forward_recording(model, self.layers, x)
        graph = self.graph_loss(feats, label_signal(y, logits.shape[-1], self.task.name))
        hard = self.loss(logits, y)
        self.step_metrics = {"graph_loss": graph.item(), "task_loss": hard.item(), "graph_skipped": 0.0}
        return hard + self.weight * graph
