"""On-manifold adversarial examples (PGD on an autoencoder's latent code, decoded) and training on them.

The attack lives here rather than in :mod:`robustlab.common.attacks`: it needs an autoencoder besides the model,
so it does not fit the attacks' contract ``Attack(model, eps=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustlab.common.attacks.base import cross_entropy_sum
from robustlab.common.attacks.pgd import PGD
from robustlab.common.errors import ConfigError
from robustlab.common.modes import frozen_parameters, model_mode
from robustlab.common.regimes.base import Regime, unwrap

__all__ = ["OnManifoldPGD", "OnManifoldAdversarialTraining"]

_CITATION = ("Kwon, J., Lee, S. Improving the Robustness of Model Compression by On-Manifold Adversarial Training. "
             "Future Internet 13(12), 300, 2021. https://doi.org/10.3390/fi13120300")
_STUTZ = ("Stutz, D., Hein, M., Schiele, B. Disentangling Adversarial Robustness and Generalization. CVPR 2019.")


def _check_eps(eps, what: str) -> None:
    if isinstance(eps, Tensor):
        if not bool(torch.all(eps >= 0)):
            raise ConfigError(f"{what}: eps must be >= 0 in every latent dimension")
    elif not (isinstance(eps, (int, float)) and eps >= 0):
        raise ConfigError(f"{what}: eps must be a number >= 0 or a tensor of per-dimension budgets, got {eps!r}")


class OnManifoldPGD:
    """L-inf PGD on a latent perturbation ``delta`` of the code ``z = autoencoder.encode(x)``; the adversarial
    input is ``autoencoder.decode(z + delta)``, clamped to ``bounds``.

    ``delta`` starts at 0 (or uniformly in the box with ``random_start``), takes ``steps`` signed-gradient steps
    of size ``alpha`` ascending ``loss(model(decode(z + delta)), y)`` and is clipped to ``[-eps, eps]`` after each.
    The example is therefore on the decoder's image of the latent space: near the data manifold as the autoencoder
    approximates it, rather than an arbitrary pixel pattern. With ``delta = 0`` it is the reconstruction, not ``x``.
    The model and the autoencoder run in eval mode with their parameters frozen; every submodule's mode and
    ``requires_grad`` are restored afterwards and no parameter's ``.grad`` is touched.

    Args:
        model: the network attacked.
        autoencoder: a module with ``encode(x) -> z`` and ``decode(z) -> x`` (e.g.
            :class:`robustlab.common.models.Autoencoder`), trained beforehand.
        eps: the latent budget: a number, or a tensor broadcasting against one code ``(latent_dim,)`` (per-
            dimension budgets, e.g. a multiple of each dimension's standard deviation over the training codes).
        alpha: step size in latent units; default ``2.5 * eps / steps`` (Madry et al.).
        steps: gradient steps (Kwon & Lee use 7).
        random_start: start ``delta`` uniformly in the box.
        bounds: ``None`` or ``(low, high)`` the decoded input is clamped to (``(0, 1)`` for pixels).
        loss: ``loss(logits, y) -> Tensor`` summed over the batch; default summed cross entropy.

    Shape:
        x: ``(N, *)``; y: ``(N,)`` (or what ``loss`` takes); returns ``(N, *)`` like ``x``; with
        ``return_latent=True`` also ``z`` and ``delta``, ``(N, latent_dim)``.

    Reference:
        Stutz, Hein & Schiele, CVPR 2019 (on-manifold adversarial examples in a VAE-GAN's latent space); Kwon &
        Lee, Future Internet 2021 (the same with a VAE, for compressed models).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP, Autoencoder
        >>> model, ae = MLP(4, 3, hidden=(8,)), Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity")
        >>> attack = OnManifoldPGD(model, ae, eps=0.5, steps=3)
        >>> x_adv, z, delta = attack.perturb(torch.randn(5, 4), torch.randint(0, 3, (5,)), return_latent=True)
        >>> x_adv.shape, bool(delta.abs().max() <= 0.5)
        (torch.Size([5, 4]), True)
    """

    citation = _STUTZ

    def __init__(self, model: nn.Module, autoencoder: nn.Module, *, eps: float | Tensor, alpha: float | None = None,
                 steps: int = 7, random_start: bool = False, bounds: tuple[float, float] | None = None,
                 loss: Callable[[Tensor, Tensor], Tensor] | None = None) -> None:
        _check_eps(eps, "OnManifoldPGD")
        if not (hasattr(autoencoder, "encode") and hasattr(autoencoder, "decode")):
            raise ConfigError(f"OnManifoldPGD: the autoencoder needs encode() and decode() methods; "
                              f"{type(autoencoder).__name__} has not both")
        if not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"OnManifoldPGD: steps must be an int >= 1, got {steps!r}")
        if alpha is not None and not alpha > 0:
            raise ConfigError(f"OnManifoldPGD: alpha must be > 0, got {alpha!r}")
        if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
            raise ConfigError(f"OnManifoldPGD: bounds must be None or (low, high) with low < high, got {bounds!r}")
        self.model, self.autoencoder = model, autoencoder
        self.eps, self.alpha, self.steps = eps, alpha, steps
        self.random_start, self.bounds = random_start, bounds
        self.loss = loss or cross_entropy_sum

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return self.perturb(x, y)

    def __repr__(self) -> str:
        eps = "tensor" if isinstance(self.eps, Tensor) else self.eps
        return (f"OnManifoldPGD(eps={eps}, alpha={self.alpha}, steps={self.steps}, random_start={self.random_start}, "
                f"bounds={self.bounds})")

    def perturb(self, x: Tensor, y: Tensor, *, return_latent: bool = False):
        """The adversarial inputs (and, with ``return_latent``, the codes ``z`` and the perturbations ``delta``).

        L-inf :class:`~robustlab.common.attacks.PGD` on ``z`` against the model after the decoder (clamped to
        ``bounds``), with no bounds on ``z``: the same random start, signed steps and box as in the input space.
        """
        ae = self.autoencoder
        x = x.detach()
        with model_mode(ae, "eval"), frozen_parameters(ae):
            with torch.no_grad():
                z = ae.encode(x)
            eps = self.eps.to(device=z.device, dtype=z.dtype) if isinstance(self.eps, Tensor) else float(self.eps)
            pgd = PGD(_DecodeThen(self, self.model), eps=eps, alpha=self.alpha, steps=self.steps,
                      random_start=self.random_start, bounds=None, loss=self.loss, model_mode="eval")
            z_adv = pgd.perturb(z, y)
            with torch.no_grad():
                x_adv = self._decode(z_adv).detach().to(x.dtype)
        return (x_adv, z.detach(), (z_adv - z).detach()) if return_latent else x_adv

    def _decode(self, z: Tensor) -> Tensor:
        x = self.autoencoder.decode(z)
        return x if self.bounds is None else x.clamp(*self.bounds)


class _DecodeThen(nn.Module):
    """``model(decode(z))``, the inputs clamped to the attack's bounds: what PGD in the latent space attacks.

    The autoencoder and the model are its submodules (the same objects, not copies), so :class:`PGD`'s eval mode,
    frozen parameters and attack-pass context reach both, and each flag is restored afterwards.
    """

    def __init__(self, attack: OnManifoldPGD, model: nn.Module) -> None:
        super().__init__()
        self.parts = nn.ModuleList([attack.autoencoder, model])
        self._attack = attack

    def forward(self, z: Tensor) -> Tensor:
        return self.parts[1](self._attack._decode(z))


class OnManifoldAdversarialTraining(Regime):
    """Train on on-manifold adversarial examples (:class:`OnManifoldPGD` through a frozen autoencoder).

    For the first ``round(fraction * N)`` samples of each batch an on-manifold adversarial example is crafted
    against the model being trained; it replaces them (``mode="replace"``: ``fraction=0.5`` is half clean, half
    on-manifold, the batches of Stutz et al.'s on-manifold adversarial training) or is appended (``"append"``: the
    clean batch and its on-manifold copy). The loss is the task's loss over the whole batch in one forward pass.
    The autoencoder is registered as a frozen network (``trainable=False``: moved to the device and saved in every
    checkpoint, never in the optimizer, its ``requires_grad`` off). Works for any task and domain whose inputs the
    autoencoder reconstructs; the attack ascends the task's summed loss (:meth:`Task.attack_loss`).

    To compress while training on these examples, wrap the regime in
    :class:`~robustlab.common.regimes.pruning.GradualPruning` (``GradualPruning(0.9, inner=regime)``).

    Args:
        autoencoder: trained module with ``encode``/``decode`` (e.g. :class:`robustlab.common.models.Autoencoder`).
        eps: latent budget, a number or a per-dimension tensor (see :class:`OnManifoldPGD`).
        alpha: latent step size; default ``2.5 * eps / steps``.
        steps: PGD steps in the latent space.
        random_start: start each perturbation uniformly in the box.
        bounds: ``None`` or ``(low, high)`` the decoded inputs are clamped to.
        fraction: fraction of each batch made on-manifold adversarial, in ``[0, 1]``.
        mode: ``"replace"`` or ``"append"``.
        loss: ``loss(logits, y) -> scalar``; default the task's loss.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.

    Shape:
        batch ``x``: ``(N, *)``, what the autoencoder reconstructs and the model takes.

    Reference:
        Kwon, J., Lee, S. "Improving the Robustness of Model Compression by On-Manifold Adversarial Training",
        Future Internet 13(12), 300, 2021; Stutz, Hein & Schiele, CVPR 2019.

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP, Autoencoder
        >>> model, ae = MLP(4, 3, hidden=(8,)), Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity")
        >>> regime = OnManifoldAdversarialTraining(ae, eps=0.5, steps=2, fraction=0.5)
        >>> regime(model, {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}).ndim
        0
        >>> sorted(regime.networks), any(p.requires_grad for p in ae.parameters())
        (['autoencoder'], False)
    """

    citation = _CITATION

    def __init__(self, autoencoder: nn.Module, *, eps: float | Tensor, alpha: float | None = None, steps: int = 7,
                 random_start: bool = False, bounds: tuple[float, float] | None = None, fraction: float = 0.5,
                 mode: str = "replace", loss=None, task="multiclass") -> None:
        super().__init__(loss=loss, task=task)
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"OnManifoldAdversarialTraining: fraction must be in [0, 1], got {fraction}")
        if mode not in ("replace", "append"):
            raise ConfigError(f"OnManifoldAdversarialTraining: mode must be 'replace' or 'append', got {mode!r}")
        # the attack's checks (eps, steps, alpha, bounds, encode/decode), on a placeholder model
        self._attack = OnManifoldPGD(nn.Identity(), autoencoder, eps=eps, alpha=alpha, steps=steps,
                                     random_start=random_start, bounds=bounds, loss=self.task.attack_loss)
        self.add_network("autoencoder", autoencoder, trainable=False)
        self.eps, self.alpha, self.steps = eps, alpha, steps
        self.random_start, self.bounds = random_start, bounds
        self.fraction, self.mode = float(fraction), mode

    @property
    def autoencoder(self) -> nn.Module:
        """The frozen autoencoder."""
        return self.networks["autoencoder"]

    def attack(self, model: nn.Module) -> OnManifoldPGD:
        """The regime's attack on ``model`` (the autoencoder on the model's device after ``fit`` moved it)."""
        self._attack.model, self._attack.autoencoder = model, self.autoencoder
        return self._attack

    def __call__(self, model: nn.Module, batch: dict) -> Tensor:
        x, y = batch["x"], batch["y"]
        k = round(self.fraction * x.shape[0])
        if k:
            x_adv = self.attack(unwrap(model))(x[:k], y[:k])  # the module, not a DDP wrapper
            if self.mode == "append":
                x, y = torch.cat([x, x_adv]), torch.cat([y, y[:k]])
            else:
                x = torch.cat([x_adv, x[k:]]) if k < x.shape[0] else x_adv
        self.step_metrics = {"adv_fraction": k / x.shape[0]}
        return self.loss(model(x), y)
