"""Tests of the Grad-CAM family (robustlab.common.attribution.grad_cam): agreement with Captum's LayerGradCam and
torchcam, the map's shape, ReLU and upsampling, and clear errors. The shared attribution contract runs over these
methods in test_attribution.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from robustlab.common.attribution import GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus
from robustlab.common.errors import ConfigError
from robustlab.common.testing import require_peer

# Captum warns that it sets requires_grad on the inputs; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning")

N_CLASSES = 3


# -- tiny seeded models and inputs (those of test_attribution.py, without batch norm and dropout) ---------------
def cnn1d(seed: int = 0) -> nn.Module:
    """A 1D CNN on one-hot DNA-like (N, 4, 50) input; its last conv layer is index 3."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(4, 8, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, N_CLASSES),
    ).eval()  # fmt: skip


def cnn2d(seed: int = 0) -> nn.Module:
    """A small 2D CNN on (N, 3, 12, 12) images; its last conv layer is index 3."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, N_CLASSES),
    ).eval()  # fmt: skip


def one_hot(n: int = 6, length: int = 50, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, length), generator=g), 4).permute(0, 2, 1).float()


def images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


MODELS = {"cnn1d": (cnn1d, one_hot, "linear"), "cnn2d": (cnn2d, images, "bilinear")}
TARGET = torch.tensor([0, 1, 2, 2, 1, 0])
CAMS = [GradCAM, GradCAMPlusPlus, SmoothGradCAMPlusPlus]


@pytest.fixture(scope="module")
def captum_attr():
    return require_peer("captum.attr", what="the reference implementation Grad-CAM is checked against")


@pytest.fixture(scope="module")
def torchcam():
    return require_peer("torchcam.methods", what="the reference Grad-CAM++ / Smooth Grad-CAM++ implementation")


def torchcam_map(extractor, model, x, target, **kwargs):
    """torchcam's unnormalized layer map ``(N, *layer_spatial)`` (hooks removed afterwards)."""
    try:
        scores = model(x)
        return extractor(class_idx=target.tolist(), scores=scores, normalized=False, **kwargs)[0]
    finally:
        extractor.remove_hooks()


# -- agreement with Captum ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_grad_cam_matches_captum_layer_grad_cam(captum_attr, kind, relu):
    make_model, make_x, mode = MODELS[kind]
    model, x = make_model(), make_x()
    layer = model[3]  # the last conv layer, the default
    raw = captum_attr.LayerGradCam(model, layer).attribute(x, target=TARGET, relu_attributions=relu)
    theirs = captum_attr.LayerAttribution.interpolate(raw, tuple(x.shape[2:]), interpolate_mode=mode)
    for spec in (None, layer, "3"):  # default, module, dotted name
        ours = GradCAM(model, layer=spec, relu=relu)(x, TARGET)
        assert ours.shape == x.shape
        assert max_rel(ours, theirs.expand_as(x)) < 1e-6  # max|a-b| / max|b| < 1e-6 (measured: 0, bit for bit)
    assert max_rel(GradCAM(model, relu=relu, upsample=False)(x, TARGET), raw) < 1e-6
    if relu:
        assert (raw == 0).any() and (raw > 0).any()  # the ReLU is exercised


def test_grad_cam_matches_captum_on_an_earlier_layer(captum_attr):
    model, x = cnn2d(), images()
    raw = captum_attr.LayerGradCam(model, model[0]).attribute(x, target=1)
    theirs = captum_attr.LayerAttribution.interpolate(raw, (12, 12), interpolate_mode="bilinear")
    assert max_rel(GradCAM(model, layer=model[0], relu=False)(x, 1), theirs.expand_as(x)) < 1e-6


# -- agreement with torchcam -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_grad_cam_matches_torchcam_normalized_and_not(torchcam, kind):
    make_model, make_x, _ = MODELS[kind]
    model, x = make_model(), make_x()
    ours = GradCAM(model, upsample=False)(x, TARGET)[:, 0]
    theirs = torchcam_map(torchcam.GradCAM(model, target_layer=model[3]), model, x, TARGET)
    assert max_rel(ours, theirs) < 1e-6  # max|a-b| / max|b| < 1e-6
    # torchcam's default normalized=True is a per-sample min-max scaling (eps 1e-8 in the denominator)
    normalized = torchcam.GradCAM(model, target_layer=model[3])
    try:
        theirs_n = normalized(class_idx=TARGET.tolist(), scores=model(x))[0]
    finally:
        normalized.remove_hooks()
    flat = ours.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    ours_n = ((flat - lo) / (hi - lo + 1e-8)).view_as(ours)
    assert (theirs_n - ours_n).abs().max() < 1e-5  # maps in [0, 1]: absolute difference < 1e-5


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_grad_cam_plus_plus_matches_torchcam_smooth_grad_cam_pp_without_noise(torchcam, kind):
    # torchcam's SmoothGradCAMpp with noise of std 1e-20 (below float32 resolution of the inputs) is Grad-CAM++
    # with eps = 1e-8 added to alpha's denominator; its denominators are ~1e-4 to 1e-3 on these models, so the
    # eps moves the maps by ~1e-4 relative (measured: 1.6e-4 on cnn1d, 1.9e-4 on cnn2d): tolerance 1e-3.
    make_model, make_x, _ = MODELS[kind]
    model, x = make_model(), make_x()
    ours = GradCAMPlusPlus(model, upsample=False)(x, TARGET)[:, 0]
    extractor = torchcam.SmoothGradCAMpp(model, target_layer=model[3], num_samples=2, std=1e-20)
    theirs = torchcam_map(extractor, model, x, TARGET)
    assert (theirs > 0).any()
    assert max_rel(ours, theirs) < 1e-3  # max|a-b| / max|b| < 1e-3


def test_torchcam_grad_cam_pp_drops_alpha_s_denominator(torchcam):
    # Pins what the GradCAMPlusPlus docstring says of torchcam 0.5.0's GradCAMpp: its in-place division of a
    # boolean-indexed copy is lost, so its weights are sum_ij g^2 ReLU(g), ~1e3 times ours here.
    model, x = cnn2d(), images()
    theirs = torchcam_map(torchcam.GradCAMpp(model, target_layer=model[3]), model, x, TARGET)
    act, grad = GradCAM(model)._activations_and_gradients(x, TARGET)
    undivided = F.relu(((grad.pow(2) * grad.clamp_min(0)).flatten(2).sum(-1)[..., None, None] * act).sum(1))
    assert max_rel(undivided, theirs) < 1e-5
    ours = GradCAMPlusPlus(model, upsample=False)(x, TARGET)[:, 0]
    assert max_rel(ours, theirs) > 10


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_smooth_grad_cam_pp_on_torchcam_s_noisy_gradients(torchcam, kind):
    # Same seed, same noise: we record torchcam's gradient at each noisy copy and rebuild both variants from them.
    # (1) Omeiza et al.'s as we implement it (mean of g, g^2, g^3 over copies; the clean input's maps) must equal
    # our SmoothGradCAMPlusPlus: this checks that our copies and gradients are torchcam's (max_rel < 1e-5).
    # (2) torchcam's own variant (ReLU of the last copy's gradient, the last copy's maps, eps 1e-8) must equal
    # torchcam's output: this checks that the difference stated in our docstring is the only one.
    make_model, make_x, _ = MODELS[kind]
    model, x, n = make_model(), make_x(), 8
    extractor = torchcam.SmoothGradCAMpp(model, target_layer=model[3], num_samples=n, std=0.2)
    grads = []
    backprop = extractor._backprop

    def spy(*args, **kwargs):
        backprop(*args, **kwargs)
        grads.append(extractor.hook_g[0].clone())

    extractor._backprop = spy
    with torch.no_grad():
        clean = GradCAM(model)._activations_and_gradients(x, TARGET)[0]
    torch.manual_seed(3)
    try:
        model(x)
        theirs = extractor(class_idx=TARGET.tolist(), normalized=False)[0]
        last_act = extractor.hook_a[0].clone()
    finally:
        extractor.remove_hooks()
    torch.manual_seed(3)
    ours = SmoothGradCAMPlusPlus(model, n_samples=n, std=0.2, upsample=False)(x, TARGET)[:, 0]
    assert len(grads) == n

    g = torch.stack(grads)
    d1, d2, d3 = g.mean(0), g.pow(2).mean(0), g.pow(3).mean(0)
    dims = tuple(range(2, clean.ndim))
    denom = 2 * d2 + (clean * d3).sum(dims, keepdim=True)
    weights = torch.where(denom != 0, d2 / denom, 0.0)
    omeiza = F.relu(combine((weights * d1.clamp_min(0)).flatten(2).sum(-1), clean))
    assert max_rel(ours, omeiza) < 1e-5  # max|a-b| / max|b| < 1e-5

    alpha = d2 / (denom + 1e-8)
    theirs_rebuilt = F.relu(combine((alpha * g[-1].clamp_min(0)).flatten(2).sum(-1), last_act))
    assert max_rel(theirs_rebuilt, theirs) < 1e-5
    assert max_rel(ours, theirs) > 0.05  # the two variants really differ at std = 0.2 (measured: 0.3 to 0.9)


def combine(weights, act):
    return (weights[(...,) + (None,) * (act.ndim - 2)] * act).sum(1)


# -- behaviour -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CAMS)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_upsample_and_relu(cls, kind):
    make_model, make_x, mode = MODELS[kind]
    model, x = make_model(), make_x()
    opts = {"n_samples": 3, "std": 0.1} if cls is SmoothGradCAMPlusPlus else {}

    def cam(**kw):
        torch.manual_seed(0)
        return cls(model, **opts, **kw)(x, TARGET)

    raw, raw_signed = cam(upsample=False), cam(upsample=False, relu=False)
    layer_spatial = model[:4](x).shape[2:]
    assert raw.shape == (x.shape[0], 1, *layer_spatial)
    assert torch.equal(raw, raw_signed.clamp_min(0))
    if kind == "cnn2d" or cls is GradCAM:  # the ReLU is exercised (cnn1d's Grad-CAM++ maps are all positive)
        assert (raw_signed < 0).any()
    up = cam()
    expected = F.interpolate(raw, size=tuple(x.shape[2:]), mode=mode, align_corners=False)
    assert torch.equal(up, expected.expand_as(x)) and (up >= 0).all()
    assert torch.equal(up[:, 0], up[:, -1])  # the same map on every input channel


@pytest.mark.parametrize("n_samples", [1, 3])
def test_smooth_grad_cam_pp_without_noise_is_grad_cam_pp(n_samples):
    model, x = cnn2d(), images()
    smooth = SmoothGradCAMPlusPlus(model, n_samples=n_samples, std=0.0)(x, TARGET)
    assert max_rel(smooth, GradCAMPlusPlus(model)(x, TARGET)) < 1e-6  # max|a-b| / max|b| < 1e-6


def test_smooth_grad_cam_pp_generator_reproducible():
    model, x = cnn1d(), one_hot()

    def run(seed):
        return SmoothGradCAMPlusPlus(model, n_samples=4, generator=torch.Generator().manual_seed(seed))(x, 1)

    a = run(1)
    assert torch.equal(a, run(1)) and not torch.equal(a, run(2))


@pytest.mark.parametrize("cls", CAMS)
def test_the_map_points_at_what_drives_the_score(cls):
    # Score = sum of a 2x2-average-pooled single-channel image: every layer gradient is 1, so each CAM is the
    # pooled image itself (up to a positive factor) and must peak on the bright square (rows 4-7, cols 8-11).
    model = nn.Sequential(nn.Conv2d(1, 1, 2, stride=2, bias=False), nn.Flatten(), nn.Linear(64, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(0.25)
        model[2].weight.fill_(1.0)
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 4:8, 8:12] = 1.0
    opts = {"n_samples": 2, "std": 0.05, "generator": torch.Generator().manual_seed(0)}
    out = cls(model, **(opts if cls is SmoothGradCAMPlusPlus else {}))(x, None)[0, 0]
    assert out.shape == (16, 16)
    r, c = divmod(int(out.argmax()), 16)
    assert 4 <= r < 8 and 8 <= c < 12
    assert out[4:8, 8:12].sum() > 0.7 * out.sum()  # the square is 6% of the image (measured: 77% of the map)


def test_in_place_activation_after_the_layer_changes_nothing():
    model, x = cnn2d(), images()
    inplace = cnn2d()
    inplace[4] = nn.ReLU(inplace=True)  # right after the explained conv layer (index 3)
    for cls in (GradCAM, GradCAMPlusPlus):
        assert torch.equal(cls(inplace)(x, TARGET), cls(model)(x, TARGET))


def test_repr_names_the_layer_and_options():
    text = repr(SmoothGradCAMPlusPlus(cnn2d(), n_samples=3))
    assert text.startswith("SmoothGradCAMPlusPlus(") and "layer='3'" in text and "n_samples=3" in text


# -- clear errors --------------------------------------------------------------------------------------------------
def test_bad_layers_are_clear_config_errors():
    model = cnn2d()
    with pytest.raises(ConfigError, match="layer 'features.3' is not a submodule of the model"):
        GradCAM(model, layer="features.3")
    with pytest.raises(ConfigError, match="layer Conv2d is not a submodule"):
        GradCAM(model, layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ConfigError, match="has none; pass layer="):
        GradCAM(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    with pytest.raises(ConfigError, match="layer must be an nn.Module inside the model"):
        GradCAM(model, layer=3)
    with pytest.raises(ConfigError, match="relu must be True or False"):
        GradCAMPlusPlus(model, relu=1)
    with pytest.raises(ConfigError, match="std must be a float >= 0"):
        SmoothGradCAMPlusPlus(model, std=-1.0)
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        SmoothGradCAMPlusPlus(model, n_samples=0)


def test_bad_layer_use_is_a_clear_value_error():
    conv = nn.Conv1d(4, 4, 3, padding=1)
    twice = nn.Sequential(conv, nn.ReLU(), conv, nn.Flatten(), nn.Linear(200, 3))
    with pytest.raises(ValueError, match="ran more than once in one forward pass"):
        GradCAM(twice)(one_hot(), 0)
    model = cnn1d()
    with pytest.raises(ValueError, match=r"must output a tensor \(N, K, \*spatial\)"):
        GradCAM(model, layer="7")(one_hot(), 0)  # the Linear head: (N, 3)
    with pytest.raises(ValueError, match="pass upsample=False for the raw map"):
        GradCAM(nn.Sequential(nn.Unflatten(1, (4, 50)), model))(one_hot().flatten(1), 0)
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.spare = cnn1d(), nn.Conv1d(4, 4, 3)

        def forward(self, z):
            return self.body(z)

    with pytest.raises(ValueError, match="did not run in the model's forward pass"):
        GradCAM(WithSpare(), layer="spare")(one_hot(), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_smooth_grad_cam_pp_with_a_cpu_generator_on_cuda_input_equals_the_cpu_map():
    model, x = cnn2d(), images()
    cpu = SmoothGradCAMPlusPlus(model, n_samples=3, std=0.2, generator=torch.Generator().manual_seed(0))(x, 1)
    cuda = SmoothGradCAMPlusPlus(model.cuda(), n_samples=3, std=0.2,
                                 generator=torch.Generator().manual_seed(0))(x.cuda(), 1)
    assert max_rel(cuda.cpu(), cpu) < 1e-4  # the same noise, drawn on the CPU; float differences of the GPU
