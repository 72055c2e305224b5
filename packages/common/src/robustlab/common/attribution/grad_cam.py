"""Class activation maps from gradients: Grad-CAM, Grad-CAM++ and Smooth Grad-CAM++.

The three methods weight the feature maps ``A_k`` of one layer (by default the model's last ``Conv1d`` or
``Conv2d``) by coefficients computed from the gradient of the target output with respect to those maps, sum them
over the channels ``k``, apply a ReLU (``relu=True``), upsample the map (linear, bilinear or trilinear,
``align_corners=False``) to the input's spatial size and repeat it over the input's channels, so that the result
has the shape of ``x`` like every other attribution method. ``upsample=False`` returns the raw map
``(N, 1, *layer_spatial)`` instead.

The layer's output is read with a forward hook that hands the rest of the network a copy of a detached leaf
tensor: gradients are taken with ``torch.autograd.grad`` with respect to that leaf only, nothing is recorded
below the layer, in-place operations after the layer cannot alter the stored activations, and the parameters'
``.grad`` are never touched. The hook is removed before the call returns.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from robustlab.common.attribution.base import Attribution, Target, _check_positive_int, _select
from robustlab.common.errors import ConfigError

__all__ = ["GradCAM", "GradCAMPlusPlus", "SmoothGradCAMPlusPlus"]

_CONV = (nn.Conv1d, nn.Conv2d)
_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class _LayerMap(Attribution):
    """Shared machinery: the layer, its activations and gradients, and the map's ReLU and upsampling."""

    def __init__(
        self,
        model: nn.Module,
        *,
        layer: nn.Module | str | None = None,
        relu: bool = True,
        upsample: bool = True,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, model_mode=model_mode)
        if not isinstance(model, nn.Module):
            raise ConfigError(f"{type(self).__name__} needs an nn.Module (it hooks one of its layers), got "
                              f"{type(model).__name__}")
        for name, value in (("relu", relu), ("upsample", upsample)):
            if not isinstance(value, bool):
                raise ConfigError(f"{name} must be True or False, got {value!r}")
        self.layer = _layer_name(model, layer)
        self.relu = relu
        self.upsample = upsample
        self._layer = model.get_submodule(self.layer) if self.layer else model

    # -- one forward pass with the hook ----------------------------------------------------------------------
    def _activations_and_gradients(self, x: Tensor, target: int | Tensor | None) -> tuple[Tensor, Tensor]:
        """The layer's output ``A`` for ``x`` and the gradient of the selected outputs (summed) w.r.t. ``A``."""
        seen: list[Tensor] = []

        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
            if not isinstance(output, Tensor) or output.ndim < 3:
                got = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
                raise ValueError(
                    f"layer {self.layer or '<model>'!r} must output a tensor (N, K, *spatial) with 1 to 3 "
                    f"spatial dims, got {got}"
                )
            if seen:
                raise ValueError(
                    f"layer {self.layer or '<model>'!r} ran more than once in one forward pass; pick a layer "
                    f"that runs once"
                )
            leaf = output.detach().requires_grad_(True)
            seen.append(leaf)
            return leaf.clone()  # the rest of the network works on a copy: in-place ops leave `leaf` alone

        handle = self._layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                out = self.model(x)
                if not seen:
                    raise ValueError(f"layer {self.layer or '<model>'!r} did not run in the model's forward pass")
                selected = _select(out, target, x.shape[0])
                (grad,) = torch.autograd.grad(selected.sum(), seen[0], allow_unused=True)
        finally:
            handle.remove()
        act = seen[0].detach()
        return act, torch.zeros_like(act) if grad is None else grad

    def _finish(self, cam: Tensor, x: Tensor) -> Tensor:
        """``cam`` ``(N, *spatial)`` -> ReLU'd, upsampled to ``x`` and repeated over its channels (or raw)."""
        if self.relu:
            cam = cam.clamp_min(0)
        cam = cam.unsqueeze(1)
        if not self.upsample:
            return cam.to(x.dtype)
        spatial = cam.ndim - 2
        if x.ndim != cam.ndim or spatial not in _MODES:
            raise ValueError(
                f"upsample=True needs x of shape (N, C, *spatial) with the layer's {spatial} spatial dim(s), got "
                f"x of shape {tuple(x.shape)} and a layer map of shape {tuple(cam.shape)}; pass upsample=False "
                f"for the raw map"
            )
        cam = F.interpolate(cam, size=tuple(x.shape[2:]), mode=_MODES[spatial], align_corners=False)
        return cam.expand(-1, x.shape[1], *x.shape[2:]).to(x.dtype).contiguous()


class GradCAM(_LayerMap):
    """Grad-CAM: the layer's maps weighted by their spatially averaged gradients.

    ``L = ReLU(sum_k w_k A_k)`` with ``w_k = mean_ij dS/dA_k(i, j)`` (``S`` the target output, e.g. a logit),
    then upsampled to the input. This is Captum's ``LayerGradCam`` (``relu_attributions=relu``) followed by
    ``LayerAttribution.interpolate(..., interpolate_mode="bilinear")`` (``"linear"`` for 1D), and torchcam's
    ``GradCAM`` without its per-sample min-max normalisation.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        layer: the layer whose output ``(N, K, *spatial)`` is explained: an ``nn.Module`` inside ``model`` or its
            dotted name (``"features.3"``); None takes the last ``nn.Conv1d`` / ``nn.Conv2d`` in
            ``model.modules()`` order (its output before any activation that follows it). It must run once per
            forward pass.
        relu: keep only the positive part of the map (as the paper); False keeps its sign.
        upsample: upsample the map to ``x``'s spatial size and repeat it over ``x``'s channels, so that the
            result has the shape of ``x``; False returns the raw layer map ``(N, 1, *layer_spatial)``.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, C, *spatial)`` with 1 to 3 spatial dims; target: an int, a LongTensor ``(N,)`` or None; returns
        ``(N, C, *spatial)`` like ``x`` (``upsample=False``: ``(N, 1, *layer_spatial)``).

    Reference:
        Selvaraju, R. R., Cogswell, M., Das, A., Vedantam, R., Parikh, D., Batra, D. "Grad-CAM: Visual
        Explanations from Deep Networks via Gradient-based Localization", ICCV 2017.
    """

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        with self._model_mode():
            act, grad = self._activations_and_gradients(x, target)
        weights = grad.flatten(2).mean(-1)
        return self._finish(_combine(weights, act), x)


class GradCAMPlusPlus(_LayerMap):
    """Grad-CAM++: the layer's maps weighted by pixel-wise weighted positive gradients.

    With ``g = dS/dA_k(i, j)`` and the exponential of the score as in the paper (so that the second and third
    derivatives are ``g^2`` and ``g^3`` up to the common factor ``exp(S)``, which is dropped)::

        alpha_k(i, j) = g^2 / (2 g^2 + sum_ab A_k(a, b) g^3),   w_k = sum_ij alpha_k(i, j) ReLU(g),
        L = ReLU(sum_k w_k A_k)

    ``alpha`` is 0 where its denominator is 0 (the paper's code; torchcam adds ``eps = 1e-8`` instead).

    Where torchcam 0.5.0 differs: its ``GradCAMpp`` divides a boolean-indexed copy of ``g^2`` in place, so the
    division is lost and its weights are ``sum_ij g^2 ReLU(g)``; its ``SmoothGradCAMpp`` with negligible noise
    computes the formula above (to its ``eps``), and the tests check against that.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        layer: the layer to explain, as :class:`GradCAM` (None: the last ``Conv1d`` / ``Conv2d``).
        relu: keep only the positive part of the map.
        upsample: upsample to ``x``'s shape (True) or return the raw ``(N, 1, *layer_spatial)`` map.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, C, *spatial)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, C, *spatial)`` like
        ``x`` (``upsample=False``: ``(N, 1, *layer_spatial)``).

    Reference:
        Chattopadhay, A., Sarkar, A., Howlader, P., Balasubramanian, V. N. "Grad-CAM++: Generalized
        Gradient-Based Visual Explanations for Deep Convolutional Networks", WACV 2018.
    """

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        with self._model_mode():
            act, grad = self._activations_and_gradients(x, target)
        g2 = grad.pow(2)
        weights = _plus_plus_weights(act, grad, g2, g2 * grad)
        return self._finish(_combine(weights, act), x)


class SmoothGradCAMPlusPlus(_LayerMap):
    """Smooth Grad-CAM++: Grad-CAM++ with each gradient term averaged over noisy copies of the input.

    Following Omeiza et al., the first-, second- and third-order terms ``D1 = g``, ``D2 = g^2``, ``D3 = g^3``
    (``g = dS/dA_k(i, j)`` at ``x + N(0, std^2)``, exponential score as in Grad-CAM++) are each averaged over the
    ``n_samples`` noisy copies, and the layer's maps ``A`` are those of the clean input ``x``::

        alpha = mean(D2) / (2 mean(D2) + sum_ab A(a, b) mean(D3)),   w_k = sum_ij alpha ReLU(mean(D1)),
        L = ReLU(sum_k w_k A_k)

    (``alpha`` is 0 where its denominator is 0.) The paper's formula shows ``mean(D1)`` as the numerator of
    ``alpha`` (as torchcam's documentation notes); we use ``mean(D2)``, Grad-CAM++'s numerator averaged like the
    other terms, as torchcam does. With ``std = 0`` this is :class:`GradCAMPlusPlus`. Where torchcam 0.5.0 differs:
    it weights ``alpha`` by ``ReLU`` of the *last* noisy copy's gradient instead of the mean gradient, and it
    combines the maps of the *last* noisy copy instead of the clean input's; with ``std -> 0`` the two agree.

    The noise is drawn as torchcam draws it: one ``randn`` of ``x``'s shape per copy (copy-major), times ``std``,
    so with ``generator=None`` and the same torch seed the copies are torchcam's.

    Args:
        model: the network to explain (see :class:`~robustlab.common.attribution.base.Attribution`).
        layer: the layer to explain, as :class:`GradCAM` (None: the last ``Conv1d`` / ``Conv2d``).
        n_samples: number of noisy copies per input.
        std: standard deviation of the Gaussian noise, absolute, in the units of the input.
        relu: keep only the positive part of the map.
        upsample: upsample to ``x``'s shape (True) or return the raw ``(N, 1, *layer_spatial)`` map.
        generator: a ``torch.Generator`` for the noise (on ``x``'s device); None uses torch's global generator.
        model_mode: ``"eval"`` (default), ``"train"`` or ``"keep"``.

    Shape:
        x: ``(N, C, *spatial)``; target: an int, a LongTensor ``(N,)`` or None; returns ``(N, C, *spatial)`` like
        ``x`` (``upsample=False``: ``(N, 1, *layer_spatial)``).

    Reference:
        Omeiza, D., Speakman, S., Cintas, C., Weldemariam, K. "Smooth Grad-CAM++: An Enhanced Inference Level
        Visualization Technique for Deep Convolutional Neural Network Models", arXiv:1908.01224, 2019.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layer: nn.Module | str | None = None,
        n_samples: int = 50,
        std: float = 0.15,
        relu: bool = True,
        upsample: bool = True,
        generator: torch.Generator | None = None,
        model_mode: str = "eval",
    ) -> None:
        super().__init__(model, layer=layer, relu=relu, upsample=upsample, model_mode=model_mode)
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not std >= 0:
            raise ConfigError(f"std must be a float >= 0 (in input units), got {std!r}")
        self.n_samples = _check_positive_int("n_samples", n_samples)
        self.std = float(std)
        self.generator = generator

    def __call__(self, x: Tensor, target: Target = None) -> Tensor:
        x = self._check_x(x)
        target = self._check_target(target, x)
        with self._model_mode():
            act, _ = self._activations_and_gradients(x, target)
            d1, d2, d3 = torch.zeros_like(act), torch.zeros_like(act), torch.zeros_like(act)
            for _ in range(self.n_samples):
                # drawn where the generator lives (a CPU generator with CUDA input), then moved to the input
                where = self.generator.device if self.generator is not None else x.device
                noise = torch.randn(x.shape, generator=self.generator, device=where, dtype=x.dtype).to(x.device)
                _, g = self._activations_and_gradients(x + noise.mul_(self.std), target)
                g2 = g.pow(2)
                d1 += g
                d2 += g2
                d3 += g2 * g
        d1, d2, d3 = d1 / self.n_samples, d2 / self.n_samples, d3 / self.n_samples
        return self._finish(_combine(_plus_plus_weights(act, d1, d2, d3), act), x)


# -- helpers ------------------------------------------------------------------------------------------------------
def _plus_plus_weights(act: Tensor, d1: Tensor, d2: Tensor, d3: Tensor) -> Tensor:
    """Grad-CAM++'s ``w_k = sum_ij alpha_k(i, j) ReLU(d1)`` with ``alpha = d2 / (2 d2 + sum_ab A d3)``."""
    spatial = tuple(range(2, act.ndim))
    denom = 2 * d2 + (act * d3).sum(dim=spatial, keepdim=True)
    alpha = torch.where(denom != 0, d2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
    return (alpha * d1.clamp_min(0)).flatten(2).sum(-1)


def _combine(weights: Tensor, act: Tensor) -> Tensor:
    """``sum_k w_k A_k``: ``(N, K)`` weights and ``(N, K, *spatial)`` maps -> ``(N, *spatial)``."""
    return (weights.reshape(*weights.shape, *([1] * (act.ndim - 2))) * act).sum(1)


def _layer_name(model: nn.Module, layer: nn.Module | str | None) -> str:
    """The dotted name of ``layer`` in ``model`` (``""`` for the model itself); clear errors otherwise."""
    if layer is None:
        convs = [name for name, m in model.named_modules() if isinstance(m, _CONV)]
        if not convs:
            raise ConfigError(
                f"layer=None takes the model's last Conv1d/Conv2d, but {type(model).__name__} has none; pass "
                f"layer= (a module inside the model or its dotted name)"
            )
        return convs[-1]
    if isinstance(layer, str):
        try:
            model.get_submodule(layer)
        except AttributeError:
            names = [name for name, _ in model.named_modules() if name][:12]
            raise ConfigError(f"layer {layer!r} is not a submodule of the model; some names: {names}") from None
        return layer
    if isinstance(layer, nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                return name
        raise ConfigError(f"layer {type(layer).__name__} is not a submodule of the model")
    raise ConfigError(f"layer must be an nn.Module inside the model, its dotted name or None, got "
                      f"{type(layer).__name__}")
