"""Co-teaching: two networks teach each other with the samples of small loss, for training on noisy labels."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.regimes.base import FitState, Regime, StepContext, labeled_part

__all__ = ["CoTeaching"]


class CoTeaching(Regime):
    """Each network keeps the samples of small loss of the batch, and the other network learns from them.

    Per batch, the model ``f`` and the peer ``g`` (a second network of the same kind, initialized differently)
    compute the per-sample loss (:meth:`~robustlab.common.tasks.Task.per_sample_loss`) of every labelled
    sample; each selects the ``keep = N - round(forget_rate(t) * N)`` samples (at least one) with the smallest
    loss under it, and each network is updated on the samples the *other* one selected: ``f`` on the mean loss
    over ``g``'s selection, ``g`` on the mean loss over ``f``'s (Han et al., algorithm 1). Samples with noisy
    labels have large losses early in training, before a network memorizes them; exchanging the selections keeps
    one network's selection errors from feeding back into itself. The forget rate grows per epoch ``t`` (counted
    from 0): ``forget_rate(t) = forget_rate * min((t / num_gradual) ** exponent, 1)`` (Han et al., section 3:
    ``R(T) = 1 - min(T * tau / T_k, tau)``, linear with ``exponent=1``; the authors' code reaches the full rate
    one epoch earlier). ``forget_rate`` should be the noise rate, when known.

    The two losses are independent (no gradient flows through the selection), so one backward of their sum
    updates both networks as two separate updates would. Without an optimizer passed to ``fit``, one Adam
    covers both networks (the base class's default); an optimizer that covers the model only gets a second one
    for the peer, ``"peer"``, of the same class and hyperparameters (a ``fit`` scheduler follows ``"model"``
    only; pass one optimizer over both networks for one schedule).

    The epoch log has ``train_loss`` (the model's loss on the peer's selection), ``train_peer_loss``,
    ``forget_rate`` and, when batches carry ``meta["clean"]`` (1 for a sample whose label is right),
    ``train_label_precision``: the fraction of clean labels among the samples the model selected (Han et al.'s
    label precision). Validation reports the model's metrics and the peer's (``val_peer_loss``,
    ``val_peer_accuracy``); ``best.pt`` follows the model's.

    Args:
        peer: the second network (same inputs and outputs as the model; e.g. built by the same factory under
            another seed). Registered as the trainable network ``"peer"``.
        forget_rate: ``tau``, the fraction of each batch dropped at full rate, in ``[0, 1)``.
        num_gradual: ``T_k``, epochs over which the forget rate rises to ``forget_rate`` (10 in the paper; 0
            drops ``forget_rate`` from the first epoch).
        exponent: ``c``, the shape of the rise (1: linear).
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`);
            unlabelled samples take no part.

    Shape:
        batch ``x``: ``(N, *)``; both networks return ``(N, K)``; ``meta["clean"]``: ``(N,)``, optional.

    Reference:
        Han, B. et al. "Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy Labels",
        NeurIPS 2018.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> _ = torch.manual_seed(0)
        >>> model, peer = MLP(2, 3, hidden=(8,)), MLP(2, 3, hidden=(8,))
        >>> regime = CoTeaching(peer, forget_rate=0.25, num_gradual=0)
        >>> loss = regime(model, {"x": torch.randn(8, 2), "y": torch.randint(0, 3, (8,))})
        >>> loss.ndim, len(regime.selected[0]), len(regime.selected[1])  # 8 - round(0.25 * 8) = 6 kept
        (0, 6, 6)
    """

    citation = ("Han, B., Yao, Q., Yu, X., Niu, G., Xu, M., Hu, W., Tsang, I., Sugiyama, M. Co-teaching: Robust "
                "Training of Deep Neural Networks with Extremely Noisy Labels. NeurIPS 2018.")

    def __init__(self, peer: nn.Module, *, forget_rate: float = 0.2, num_gradual: int = 10, exponent: float = 1.0,
                 task="multiclass") -> None:
        super().__init__(task=task)
        if not 0.0 <= forget_rate < 1.0:
            raise ConfigError(f"forget_rate must be in [0, 1), got {forget_rate}")
        if num_gradual < 0:
            raise ConfigError(f"num_gradual must be >= 0, got {num_gradual}")
        if not exponent > 0:
            raise ConfigError(f"exponent must be > 0, got {exponent}")
        self.add_network("peer", peer, trainable=True)
        self.forget_rate = float(forget_rate)
        self.num_gradual = int(num_gradual)
        self.exponent = float(exponent)
        self._rate = self.rate_at(0)
        self._selected: tuple[Tensor, Tensor] | None = None
        self._model_loss: Tensor | None = None

    @property
    def selected(self) -> tuple[Tensor, Tensor] | None:
        """The indices (into the batch's labelled samples) that the model and the peer selected at the last call:
        the peer learns from the first, the model from the second."""
        return self._selected

    @property
    def peer(self) -> nn.Module:
        """The peer network (unwrapped)."""
        return self.networks["peer"]

    def rate_at(self, epoch: int) -> float:
        """``forget_rate * min((epoch / num_gradual) ** exponent, 1)``."""
        if self.num_gradual == 0:
            return self.forget_rate
        return self.forget_rate * min((epoch / self.num_gradual) ** self.exponent, 1.0)

    @staticmethod
    def select(losses: Tensor, forget_rate: float) -> Tensor:
        """The indices of the ``N - round(forget_rate * N)`` smallest of ``losses`` (at least one), smallest
        first (ties in index order)."""
        n = len(losses)
        keep = max(1, n - round(forget_rate * n))
        return torch.sort(losses.detach(), stable=True).indices[:keep]

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        """The model's loss on the peer's selection plus the peer's loss on the model's selection."""
        x, y = labeled_part(batch, self.task)
        if len(x) == 0:
            raise ConfigError("CoTeaching needs labelled samples in every batch")
        loss_model = self.task.per_sample_loss(model(x), y)
        loss_peer = self.task.per_sample_loss(self.network("peer")(x), y)
        by_model, by_peer = self.select(loss_model, self._rate), self.select(loss_peer, self._rate)
        self._selected = (by_model, by_peer)
        mine, theirs = loss_model[by_peer].mean(), loss_peer[by_model].mean()
        self.step_metrics = {"peer_loss": theirs.item()}
        clean = (batch.get("meta") or {}).get("clean")
        if clean is not None:
            known = self.task.labeled(batch["y"])
            clean = clean.reshape(-1)[known] if not bool(known.all()) else clean.reshape(-1)
            self.step_metrics["label_precision"] = clean[by_model].float().mean().item()
        self._model_loss = mine
        return mine + theirs

    def train_step(self, step: StepContext, model: nn.Module, batch: dict) -> float:
        with step.autocast():
            loss = self(model, batch)
        step.backward(loss)
        for name in step.optimizers:
            step.step(name)
        return self._model_loss.item()

    def on_epoch_start(self, model: nn.Module, state: FitState) -> None:
        self._rate = self.rate_at(state.epoch)

    def on_epoch_end(self, model: nn.Module, state: FitState) -> dict[str, float]:
        return {"forget_rate": self._rate}

    def validate(self, model: nn.Module, loader, *, metrics=None, device=None) -> dict[str, float]:
        """The model's validation metrics and the peer's, prefixed ``peer_``."""
        from robustlab.common.engine import evaluate

        out = super().validate(model, loader, metrics=metrics, device=device)
        peer = evaluate(self.peer, loader, loss=self.loss, metrics=metrics, device=device)
        return {**out, **{f"peer_{k}": v for k, v in peer.items()}}
