"""DeepFool (L2): step to the nearest linearized decision boundary until the prediction changes."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.common.attacks._minimal import MinimalNormAttack
from robustlab.common.attacks.base import LossFn

__all__ = ["DeepFool"]


class DeepFool(MinimalNormAttack):
    """The minimal L2 perturbation that crosses the nearest decision boundary, by repeated linearization.

    At every step, for each point still classified as its label ``y`` (points already misclassified stop, as in
    torchattacks), the logits ``f`` and their input gradients ``w`` are taken for every class; the candidate
    classes are all ``k != y`` and the step goes to the nearest linearized boundary,
    ``r = |f_l - f_y| / ||w_l - w_y||^2 * (w_l - w_y)`` with ``l = argmin_k |f_k - f_y| / ||w_k - w_y||``,
    lengthened by ``1 + overshoot``. Two ways to apply it (``accumulate``):

    - ``False`` (default): ``x <- clip(x + (1 + overshoot) * r)`` every step, as ``torchattacks.DeepFool`` (steps
      50, overshoot 0.02), computed here for the whole batch at once. Clipping each step to the bounds shortens
      steps that push pixels past them, so many points converge onto the boundary without crossing it (on a
      trained MNIST CNN about 40 % of the points stay unflipped after 50 steps);
    - ``True``: the steps add up in ``r_tot`` and the point is ``clip(x + (1 + overshoot) * r_tot)``, as in the
      paper's Algorithm 2 (the overshoot on the total perturbation) and cleverhans' ``deepfool``: the total keeps
      growing where the clip bites, and the points cross.

    Then the L2 cap and the bounds. A zero gradient difference is floored at ``1e-12`` instead of giving NaN.

    Args:
        model: the classifier to attack; returns logits ``(N, K)``.
        eps: a cap on the L2 norm of the perturbation, ``float("inf")`` (default) for none: a capped point that
            has not flipped stops at the cap.
        steps: the most linearization steps (50, as torchattacks and the paper's code).
        overshoot: the step's lengthening (0.02).
        accumulate: apply the overshoot to the accumulated perturbation (Algorithm 2, cleverhans) rather than to
            each clipped step (torchattacks, the default).
        bounds: the valid input range (``(0.0, 1.0)`` for images, as torchattacks), clipped after every step.
        loss: not used (DeepFool works on the logits); accepted for the common call shape.
        targeted: must be False: DeepFool is untargeted.
        model_mode: see :class:`~robustlab.common.attacks.Attack`.

    Shape:
        x: ``(N, *)``; y: ``(N,)`` class indices; returns ``(N, *)`` like ``x``.

    Reference:
        Moosavi-Dezfooli, S.-M., Fawzi, A., Frossard, P. "DeepFool: a simple and accurate method to fool deep
        neural networks", CVPR 2016 (arXiv:1511.04599).

    Examples::

        >>> import torch
        >>> from robustlab.common.models import MLP
        >>> model = MLP(4, 3)
        >>> x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
        >>> x_adv, flipped = DeepFool(model, bounds=(0.0, 1.0)).perturb_and_report(x, y)
        >>> x_adv.shape, flipped.dtype
        (torch.Size([8, 4]), torch.bool)
    """

    citation = ("Moosavi-Dezfooli, S.-M., Fawzi, A., Frossard, P. DeepFool: a simple and accurate method to fool deep "
                "neural networks. CVPR 2016.")

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = float("inf"),
        steps: int = 50,
        overshoot: float = 0.02,
        accumulate: bool = False,
        bounds=None,
        loss: LossFn | None = None,
        targeted: bool = False,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, eps=eps, bounds=bounds, loss=loss, targeted=targeted, model_mode=model_mode)
        self._check_eps()
        if targeted:
            raise ValueError("DeepFool is untargeted: targeted must be False")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not overshoot >= 0:
            raise ValueError(f"overshoot must be >= 0, got {overshoot}")
        self.steps = int(steps)
        self.overshoot = float(overshoot)
        self.accumulate = bool(accumulate)

    def perturb(self, x: Tensor, y: Tensor, *, loss: LossFn | None = None, x_init: Tensor | None = None) -> Tensor:
        if x_init is not None:
            raise ValueError("DeepFool starts from x; x_init is not supported")
        x = x.detach()
        b_lo, b_hi = self._bounds_like(x)
        x_adv = x.clone()
        r_tot = torch.zeros_like(x)
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        with self._attack_mode():
            for _ in range(self.steps):
                idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                xi = x_adv[idx].clone().requires_grad_(True)
                yi = y[idx]
                logits = self.model(xi)
                flipped = logits.argmax(1) != yi
                k = logits.shape[1]
                grads = torch.stack([torch.autograd.grad(logits[:, j].sum(), xi, retain_graph=j + 1 < k)[0]
                                     for j in range(k)], 1)  # (n, K, *)
                logits = logits.detach()
                rows = torch.arange(len(idx), device=x.device)
                f_diff = logits - logits[rows, yi].unsqueeze(1)  # (n, K)
                w_diff = grads - grads[rows, yi].unsqueeze(1)  # (n, K, *)
                w_norm = w_diff.flatten(2).norm(dim=2).clamp_min(1e-12)
                dist = f_diff.abs() / w_norm
                dist[rows, yi] = float("inf")  # every class but the label is a candidate
                near = dist.argmin(1)
                scale = (f_diff[rows, near].abs() / w_norm[rows, near] ** 2).view((-1,) + (1,) * (x.ndim - 1))
                r = scale * w_diff[rows, near]
                if self.accumulate:
                    r_tot[idx] += r
                    moved = self._cap(x[idx], x[idx] + (1 + self.overshoot) * r_tot[idx], b_lo, b_hi)
                else:
                    moved = self._cap(x[idx], xi.detach() + (1 + self.overshoot) * r, b_lo, b_hi)
                keep = flipped.view((-1,) + (1,) * (x.ndim - 1))
                x_adv[idx] = torch.where(keep, xi.detach(), moved)
                active[idx[flipped]] = False
        return x_adv.detach()
