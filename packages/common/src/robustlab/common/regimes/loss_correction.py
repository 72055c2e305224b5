"""Loss correction with a corruption matrix: forward correction / GLC, and LDCE's hard and soft variants."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.common.errors import CheckpointError, ConfigError, DataError
from robustlab.common.label_noise import check_transition_matrix, forward_loss
from robustlab.common.regimes._per_sample import batch_index, check_range
from robustlab.common.regimes.base import Regime

__all__ = ["LossCorrection"]

MODES = ("forward", "hard", "soft")
"""How :class:`LossCorrection` treats the untrusted samples."""


class LossCorrection(Regime):
    """Cross entropy on trusted labels, the forward-corrected loss (or a mix with cross entropy) on the others.

    The corrected loss of a sample with observed label ``y`` is ``-log((softmax(logits) @ C)[y])``
    (:func:`~robustlab.common.label_noise.forward_loss`): the model predicts the true class and ``C`` (rows =
    true class, columns = observed label) maps that prediction to the label distribution the noise produces.
    Per sample, by ``mode``:

    - ``"forward"``: trusted: CE; the others: corrected loss. With ``C`` from
      :func:`~robustlab.common.label_noise.estimate_corruption` (a model trained on the noisy labels, evaluated
      on the trusted set) this is GLC (Hendrycks et al.); with ``C`` from
      :func:`~robustlab.common.label_noise.anchor_transition_matrix` and no trusted flag, Patrini et al.'s
      forward correction.
    - ``"hard"`` (LDCE's CDD_hard): trusted: CE; detected as clean (``confidences[index] >= threshold``):
      ``beta * corrected + (1 - beta) * CE``; the rest: corrected loss.
    - ``"soft"`` (LDCE's CDD_soft): trusted: CE; the others: ``c * CE + (1 - c) * corrected`` with
      ``c = confidences[index]``.

    The batch loss is the sum over the batch divided by the batch size (as the authors). ``step_metrics`` has
    ``"detected"`` in the hard and soft modes: the fraction of the batch's untrusted samples detected as clean
    (0 when it has none).

    Args:
        C: the ``(K, K)`` corruption matrix, ``C[i, j] = P(observed = j | true = i)``, rows summing to 1
            (checked by :func:`~robustlab.common.label_noise.check_transition_matrix`).
        confidences: ``(num_train,)`` confidence of every training sample's label, in ``[0, 1]``, indexed by the
            batch's ``index`` (the rows of trusted samples are not used), e.g. :attr:`LDCE.confidences
            <robustlab.common.regimes.ldce.LDCE.confidences>` laid out in the training set's order. Required by
            ``"hard"`` and ``"soft"``; ``"forward"`` takes none.
        mode: ``"forward"``, ``"hard"`` or ``"soft"``.
        beta: weight of the corrected loss for detected samples (``"hard"``), in ``[0, 1]``.
        threshold: confidence from which an untrusted sample counts as detected clean, in ``[0, 1]``.
        task: ``"multiclass"`` only.

    Raises:
        ConfigError: an unknown mode, ``beta`` or ``threshold`` out of range, confidences missing (hard, soft)
            or given (forward), another task.
        DataError: a ``C`` that is not a transition matrix, confidences not 1-D or outside ``[0, 1]``; during
            training a model output that is not ``(N, K)``, a label or ``index`` out of range, a batch without
            ``index`` (hard, soft).

    Shape:
        batch ``x``: ``(N, *)``; ``y``, ``index``, ``meta["trusted"]`` (1 for a trusted sample, optional):
        ``(N,)``; model output ``(N, K)``.

    Reference:
        Patrini, G. et al. "Making Deep Neural Networks Robust to Label Noise: a Loss Correction Approach",
        CVPR 2017. Hendrycks, D. et al. "Using Trusted Data to Train Deep Networks on Labels Corrupted by Severe
        Noise", NeurIPS 2018. Liu, Y. et al. "Label Distribution for Learning with Noisy Labels", IJCAI 2020
        (code: palm-ml/PDLE, ``main.py``).

    Examples::

        >>> import torch
        >>> import torch.nn.functional as F
        >>> from robustlab.common.models import MLP
        >>> _ = torch.manual_seed(0)
        >>> model = MLP(2, 3, hidden=(8,))
        >>> batch = {"x": torch.randn(6, 2), "y": torch.tensor([0, 1, 2, 0, 1, 2]), "index": torch.arange(6)}
        >>> ce = F.cross_entropy(model(batch["x"]), batch["y"])
        >>> torch.allclose(LossCorrection(torch.eye(3))(model, batch), ce)  # C = I: plain cross entropy
        True
        >>> C = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
        >>> hard = LossCorrection(C, confidences=torch.tensor([0.9, 0.2, 0.7, 0.1, 0.6, 0.3]), mode="hard")
        >>> loss = hard(model, batch)
        >>> hard.step_metrics
        {'detected': 0.5}
    """

    citation = ("Patrini, G., Rozza, A., Menon, A. K., Nock, R., Qu, L. Making Deep Neural Networks Robust to Label "
                "Noise: a Loss Correction Approach. CVPR 2017. Hendrycks, D., Mazeika, M., Wilson, D., Gimpel, K. "
                "Using Trusted Data to Train Deep Networks on Labels Corrupted by Severe Noise. NeurIPS 2018. Liu, "
                "Y., Xu, N., Zhang, Y., Geng, X. Label Distribution for Learning with Noisy Labels. IJCAI 2020.")

    def __init__(self, C, *, confidences=None, mode: str = "forward", beta: float = 0.6, threshold: float = 0.5,
                 task="multiclass") -> None:
        super().__init__(task=task)
        if self.task.name != "multiclass":
            raise ConfigError(f"LossCorrection corrects class labels: task must be 'multiclass', got "
                              f"{self.task.name!r}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if not 0.0 <= beta <= 1.0:
            raise ConfigError(f"beta must be in [0, 1], got {beta}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1], got {threshold}")
        if mode == "forward" and confidences is not None:
            raise ConfigError("mode='forward' uses no confidences; pass them with mode='hard' or 'soft'")
        if mode != "forward" and confidences is None:
            raise ConfigError(f"mode={mode!r} needs confidences: one per training sample, indexed by the batch's "
                              "'index' (e.g. LDCE.confidences)")
        self.mode = mode
        self.beta = float(beta)
        self.threshold = float(threshold)
        self._C = _as_matrix(C)
        self._confidences = None if confidences is None else _as_confidences(confidences)

    @property
    def C(self) -> Tensor:
        """A copy of the corruption matrix, ``(K, K)`` float32."""
        return self._C.clone()

    @property
    def confidences(self) -> Tensor | None:
        """A copy of the confidences, ``(num_train,)`` float32, or None (``"forward"``)."""
        return None if self._confidences is None else self._confidences.clone()

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        """The mean over the batch of each sample's loss (see the class docstring)."""
        x, y = batch["x"], batch["y"].reshape(-1).long()
        logits = model(x)
        k = self._C.shape[0]
        if logits.ndim != 2 or logits.shape[1] != k:
            raise DataError(f"the model outputs {tuple(logits.shape)} but C is ({k}, {k}): outputs must be (N, {k})")
        check_range(y, k, "y")
        trusted = (batch.get("meta") or {}).get("trusted")
        trusted = (torch.zeros(len(y), dtype=torch.bool, device=y.device) if trusted is None
                   else trusted.reshape(-1).to(y.device).bool())
        ce = F.cross_entropy(logits, y, reduction="none")
        with torch.autocast(logits.device.type, enabled=False):  # softmax @ C in float32 under mixed precision
            corrected = forward_loss(logits.float(), y, self._C, reduction="none")
        if self.mode == "forward":
            per_sample = torch.where(trusted, ce, corrected)
        else:
            index = batch_index(batch, f"LossCorrection(mode={self.mode!r})")
            check_range(index, len(self._confidences), "index")
            c = self._confidences[index.cpu()].to(device=logits.device, dtype=ce.dtype)
            detected = c >= self.threshold
            if self.mode == "hard":
                untrusted = torch.where(detected, self.beta * corrected + (1 - self.beta) * ce, corrected)
            else:
                untrusted = c * ce + (1 - c) * corrected
            per_sample = torch.where(trusted, ce, untrusted)
            n_untrusted = int((~trusted).sum())
            self.step_metrics = {"detected": int((detected & ~trusted).sum()) / n_untrusted if n_untrusted else 0.0}
        return per_sample.sum() / len(y)

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        state = {"C": self._C.clone()}
        if self._confidences is not None:
            state["confidences"] = self._confidences.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        C = state.get("C")
        if not isinstance(C, Tensor) or C.shape != self._C.shape:
            shape = tuple(C.shape) if isinstance(C, Tensor) else type(C).__name__
            raise CheckpointError(f"LossCorrection state 'C' must be a tensor of shape {tuple(self._C.shape)}, got "
                                  f"{shape}")
        self._C = C.detach().to(device="cpu", dtype=torch.float32).clone()
        conf = state.get("confidences")
        if (conf is None) != (self._confidences is None) or (
                conf is not None and conf.shape != self._confidences.shape):
            want = "none" if self._confidences is None else f"shape {tuple(self._confidences.shape)}"
            got = "none" if conf is None else f"shape {tuple(conf.shape)}"
            raise CheckpointError(f"LossCorrection state 'confidences': this regime (mode={self.mode!r}) takes "
                                  f"{want}, the checkpoint holds {got}")
        if conf is not None:
            self._confidences = conf.detach().to(device="cpu", dtype=torch.float32).clone()


def _as_matrix(C) -> Tensor:
    if isinstance(C, Tensor):
        C = C.detach().cpu().double().numpy()
    return torch.as_tensor(check_transition_matrix(C), dtype=torch.float32)


def _as_confidences(confidences) -> Tensor:
    c = torch.as_tensor(confidences.detach().cpu() if isinstance(confidences, Tensor) else confidences)
    if c.ndim != 1 or not (c.is_floating_point() or c.dtype in (torch.int64, torch.int32)) or len(c) == 0:
        raise DataError(f"confidences must be a non-empty 1-D array of numbers (one per training sample), got "
                        f"dtype {c.dtype} and shape {tuple(c.shape)}")
    c = c.to(torch.float32)
    bad = ~torch.isfinite(c) | (c < 0) | (c > 1)
    if bool(bad.any()):
        pos = int(bad.nonzero()[0])
        raise DataError(f"confidences must lie in [0, 1]; position {pos} holds {float(c[pos])}")
    return c
