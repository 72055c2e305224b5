"""Virtual adversarial training: the supervised loss plus the local distributional smoothness (LDS) of the model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.errors import ConfigError
from robustlab.common.modes import input_gradient_context
from robustlab.common.regimes._consistency import ConsistencyRegime, running_stats_kept
from robustlab.common.regimes.base import unwrap
from robustlab.common.tasks import Task, get_task

__all__ = ["VAT", "virtual_adversarial_perturbation"]


def _unit(r: Tensor) -> Tensor:
    """``r`` divided by its L2 norm over every dim but the first (zero rows stay zero)."""
    norm = r.reshape(len(r), -1).norm(dim=1).reshape(-1, *([1] * (r.ndim - 1)))
    return r / (norm + torch.finfo(r.dtype).tiny)


def _unit_or_keep(grad: Tensor, d: Tensor) -> Tensor:
    """The unit ``grad`` of each sample, or its previous direction ``d`` where the gradient is exactly zero."""
    flat = grad.reshape(len(grad), -1)
    zero = (flat.abs().amax(dim=1) == 0).reshape(-1, *([1] * (grad.ndim - 1)))
    return torch.where(zero, d, _unit(grad))


def virtual_adversarial_perturbation(model: nn.Module, x: Tensor, *, xi: float = 1e-6, eps: float = 1.0,
                                     power_iter: int = 1, task: str | Task = "multiclass", kind: str = "kl",
                                     flip_correction: bool = True, logits: Tensor | None = None) -> Tensor:
    """The virtual adversarial perturbation ``r_adv`` of ``x``: the direction in which the model's prediction
    changes most, estimated by power iteration, scaled to L2 norm ``eps`` per sample.

    From a random unit direction ``d``, each iteration sets ``d <- normalize(grad_d D(f(x), f(x + xi d)))``, ``D``
    the task's divergence (``kind``; KL for the paper) with ``f(x)`` held fixed; ``r_adv = eps * d``. For small
    ``xi`` this is the power method on the Hessian of ``D`` at ``r = 0`` (for a softmax classifier
    ``J^T (diag(p) - p p^T) J``, ``J`` the input Jacobian of the logits). With ``flip_correction`` (shadow-ssml's
    default) each sample keeps ``r_adv`` or ``-r_adv``, whichever moves its prediction more, since the power
    method fixes the direction only up to its sign. A sample whose gradient is exactly zero (a locally constant
    model, or a finite difference below the float resolution when ``xi`` is tiny) keeps its previous direction,
    so every row of ``r_adv`` has norm ``eps``; shadow-ssml and the authors' code return a zero row there.
    shadow-ssml differentiates and compares ``KL(f(x + r) || f(x))`` (its ``softmax_kl_loss(out, out_plus)``)
    rather than the LDS order used here: the directions agree to ``O(xi)``, but the flip correction can choose
    differently on samples where ``r`` and ``-r`` move the prediction almost equally.

    The model runs in its current mode (train mode during training: dropout acts as in the loss's passes), with
    its parameters frozen (the input gradient comes from ``torch.autograd.grad`` on ``d``; no parameter ``.grad``
    is touched) and without updating batch-norm running statistics. The random direction is drawn after the
    clean forward pass, as in shadow-ssml, so the same seed gives the same ``d``.

    Args:
        model: the network (a DDP wrapper is unwrapped: these passes need no gradient synchronization).
        x: the inputs.
        xi: the finite-difference step of the power iteration (Miyato et al.: 1e-6).
        eps: the L2 norm of the perturbation of each sample.
        power_iter: power iterations (1 suffices in the paper; 0 gives a random direction).
        task: the task whose divergence ``D`` is (``"multiclass"``, ``"multilabel"``, ``"regression"``).
        kind: ``"kl"`` or ``"mse"`` (see :meth:`~robustlab.common.tasks.Task.divergence`).
        flip_correction: keep ``r_adv`` or ``-r_adv`` per sample, whichever gives the larger divergence.
        logits: ``f(x)`` if already computed (detached here); default one forward pass without gradients.

    Returns:
        ``r_adv``, detached, of the shape of ``x``.

    Shape:
        x: ``(N, *)``; the model returns ``(N, K)``.

    Reference:
        Miyato, T., Maeda, S., Koyama, M., Ishii, S. "Virtual Adversarial Training: A Regularization Method for
        Supervised and Semi-Supervised Learning", IEEE TPAMI 41(8):1979-1993, 2018.
    """
    task = get_task(task)
    net = unwrap(model)
    x = x.detach()
    with input_gradient_context(net, "keep"), running_stats_kept(net):
        if logits is None:
            with torch.no_grad():
                logits = net(x)
        logits = logits.detach()
        d = _unit(torch.randn_like(x))
        for _ in range(power_iter):
            d.requires_grad_(True)
            dist = task.divergence(logits, net(x + xi * d), kind=kind)
            grad = torch.autograd.grad(dist, d, allow_unused=True)[0] if dist.requires_grad else None
            d = d.detach() if grad is None else _unit_or_keep(grad, d.detach())
        r = eps * d.detach()
        if flip_correction:
            with torch.no_grad():
                plus = task.divergence(logits, net(x + r), kind=kind, reduction="none")
                minus = task.divergence(logits, net(x - r), kind=kind, reduction="none")
            sign = torch.where(minus > plus, -1.0, 1.0).to(r.dtype)
            r = r * sign.reshape(-1, *([1] * (x.ndim - 1)))
    return r


class _VirtualAdversarial:
    """The options and the perturbation that :class:`VAT` and :class:`~robustlab.common.regimes.eaat.EAAT` share
    (mixed in before their regime base, whose ``task`` and ``consistency`` the perturbation uses)."""

    def _set_perturbation(self, xi: float, eps: float, power_iter: int, flip_correction: bool) -> None:
        if not xi > 0:
            raise ConfigError(f"xi must be > 0, got {xi}")
        if not eps >= 0:
            raise ConfigError(f"eps must be >= 0, got {eps}")
        if int(power_iter) != power_iter or power_iter < 0:
            raise ConfigError(f"power_iter must be an int >= 0, got {power_iter}")
        self.xi, self.eps, self.power_iter = float(xi), float(eps), int(power_iter)
        self.flip_correction = bool(flip_correction)

    def perturbation(self, model: nn.Module, x: Tensor, *, logits: Tensor | None = None) -> Tensor:
        """``r_adv`` of ``x`` with this regime's settings (see :func:`virtual_adversarial_perturbation`)."""
        return virtual_adversarial_perturbation(model, x, xi=self.xi, eps=self.eps, power_iter=self.power_iter,
                                                task=self.task, kind=self.consistency,
                                                flip_correction=self.flip_correction, logits=logits)


class VAT(_VirtualAdversarial, ConsistencyRegime):
    """``loss(f(x_l), y_l) + w * D(f(x), f(x + r_adv)) / N``, ``r_adv`` from
    :func:`virtual_adversarial_perturbation` and ``f(x)`` held fixed (the paper's LDS).

    One forward pass on the clean inputs (every input, or the labelled ones only with ``use_unlabeled=False``)
    gives both the supervised loss, on the labelled samples, and the fixed target ``f(x)``; a second on
    ``x + r_adv`` gives the consistency term, which covers the same inputs. The divergence comes from the task
    (:meth:`~robustlab.common.tasks.Task.divergence`): KL of the softmax for class tasks as in the paper, of each
    label's Bernoulli for multi-label tasks, the squared difference for regression. The passes on perturbed
    inputs leave batch-norm running statistics alone (``update_batch_stats=False`` in the authors' code).

    Args:
        xi: the power iteration's finite-difference step (the paper: 1e-6; shadow-ssml's default: 1.0).
        eps: the L2 norm of ``r_adv`` per sample (data-dependent; the paper: 2.0 on MNIST, 8.0 on CIFAR-10).
        power_iter: power iterations (the paper: 1).
        flip_correction: keep ``r_adv`` or ``-r_adv``, whichever changes the prediction more (shadow-ssml's
            default; not in the paper).
        consistency: the divergence, ``"kl"`` (the paper) or ``"mse"``.
        weight: weight ``w`` of the consistency term (the paper's alpha, 1).
        rampup_epochs: ramp ``w`` up over these epochs (0: constant).
        use_unlabeled: False regularizes the labelled samples only (the supervised variant of the paper) and
            ignores unlabelled inputs.
        loss: the supervised loss ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"`` (see :mod:`robustlab.common.tasks`).

    Shape:
        batch ``x``: ``(N, *)`` (and ``batch["unlabeled"]["x"]``: ``(M, *)``); the model returns ``(N, K)``.

    Reference:
        Miyato, T., Maeda, S., Koyama, M., Ishii, S. "Virtual Adversarial Training: A Regularization Method for
        Supervised and Semi-Supervised Learning", IEEE TPAMI 41(8):1979-1993, 2018.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(2, 3)
        >>> regime = VAT(xi=1e-6, eps=0.5)
        >>> batch = {"x": torch.randn(8, 2), "y": torch.tensor([0, 2, 1, -1, -1, 0, -1, 1]),
        ...          "unlabeled": {"x": torch.randn(8, 2)}}
        >>> regime(model, batch).ndim, sorted(regime.step_metrics)
        (0, ['class_loss', 'consistency'])
        >>> r = regime.perturbation(model, batch["x"])
        >>> torch.allclose(r.norm(dim=1), torch.full((8,), 0.5))
        True
    """

    citation = ("Miyato, T., Maeda, S., Koyama, M., Ishii, S. Virtual Adversarial Training: A Regularization "
                "Method for Supervised and Semi-Supervised Learning. IEEE Transactions on Pattern Analysis and "
                "Machine Intelligence 41(8):1979-1993, 2018.")

    def __init__(self, *, xi: float = 1e-6, eps: float = 1.0, power_iter: int = 1, flip_correction: bool = True,
                 consistency: str = "kl", weight: float = 1.0, rampup_epochs: float = 0.0,
                 use_unlabeled: bool = True, loss=None, task="multiclass") -> None:
        super().__init__(consistency=consistency, weight=weight, rampup_epochs=rampup_epochs,
                         use_unlabeled=use_unlabeled, loss=loss, task=task)
        self._set_perturbation(xi, eps, power_iter, flip_correction)

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = self._split(batch)
        if len(x) == 0:
            return self._empty(model)
        logits = model(x)
        r = self.perturbation(model, x, logits=logits)
        with running_stats_kept(unwrap(model)):
            perturbed = model(x + r)
        return self._combine(logits, y, self.task.divergence(logits.detach(), perturbed, kind=self.consistency))

