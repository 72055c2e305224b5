"""Tests of robustlab.common.attribution: the contract every method keeps, agreement with Captum, behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from robustlab.common import attribution
from robustlab.common.attribution import (
    ExpectedGradients,
    GradientTimesInput,
    IntegratedGradients,
    Saliency,
    SmoothGrad,
)
from robustlab.common.testing import require_peer

# Captum warns that it sets requires_grad on the inputs; that is its business, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients:UserWarning")

N_CLASSES = 3


# -- tiny seeded models and inputs ----------------------------------------------------------------------------
def cnn1d(*, regularized: bool = False, seed: int = 0) -> nn.Module:
    """A 1D CNN on one-hot DNA-like (N, 4, 50) input; ``regularized`` adds batch norm and dropout."""
    torch.manual_seed(seed)
    extra = [nn.BatchNorm1d(8), nn.Dropout(0.5)] if regularized else []
    model = nn.Sequential(
        nn.Conv1d(4, 8, 5, padding=2), *extra, nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, N_CLASSES),
    )  # fmt: skip
    if regularized:  # non-trivial running statistics, so that train and eval mode give different outputs
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def cnn2d(*, regularized: bool = False, seed: int = 0) -> nn.Module:
    """A small 2D CNN on (N, 3, 12, 12) images."""
    torch.manual_seed(seed)
    extra = [nn.BatchNorm2d(6), nn.Dropout(0.5)] if regularized else []
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), *extra, nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, N_CLASSES),
    )  # fmt: skip
    if regularized:
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def smooth1d(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A smooth (Softplus/Tanh) 1D CNN, for which the path integral is well approximated by a quadrature."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv1d(4, 8, 5, padding=2), nn.Softplus(), nn.Conv1d(8, 8, 3), nn.Tanh(),
        nn.Flatten(), nn.Linear(8 * 48, N_CLASSES),
    )  # fmt: skip
    return model.to(dtype).eval()


def one_hot(n: int = 6, length: int = 50, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(4, (n, length), generator=g), 4).permute(0, 2, 1).float()


def images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


MODELS = {"cnn1d": (cnn1d, one_hot), "cnn2d": (cnn2d, images)}

# Small options per method so that the contract tests stay fast; a method missing here runs with its defaults.
# The CAM methods run with relu=False: a ReLU'd Grad-CAM map is legitimately all zero for some (model, class,
# sample) (2 or 3 of the 6 per class for cnn2d), and the contract needs a nonzero map in every row; the ReLU itself is
# tested in test_grad_cam.py.
OPTIONS = {
    "IntegratedGradients": {"steps": 8},
    "SmoothGrad": {"n_samples": 4, "std": 0.2},
    "ExpectedGradients": {"n_samples": 4},
    "GradCAM": {"relu": False},
    "GradCAMPlusPlus": {"relu": False},
    "SmoothGradCAMPlusPlus": {"n_samples": 4, "std": 0.2, "relu": False},
}


def build(name: str, model: nn.Module, **kwargs) -> attribution.base.Attribution:
    return getattr(attribution, name)(model, **{**OPTIONS.get(name, {}), **kwargs})


def run(method, x: torch.Tensor, target) -> torch.Tensor:
    if isinstance(method, ExpectedGradients):
        return method(x, target, torch.rand((5, *x.shape[1:]), generator=torch.Generator().manual_seed(7)))
    return method(x, target)


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b||_2 / ||b||_2."""
    return ((a - b).norm() / b.norm()).item()


# -- the contract, over every name in attribution.__all__ ---------------------------------------------------
def test_all_lists_the_eight_methods():
    assert sorted(attribution.__all__) == sorted(
        ["Saliency", "GradientTimesInput", "IntegratedGradients", "SmoothGrad", "ExpectedGradients", "GradCAM",
         "GradCAMPlusPlus", "SmoothGradCAMPlusPlus"]
    )


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("name", attribution.__all__)
def test_contract(name, kind, mode):
    make_model, make_x = MODELS[kind]
    model = make_model(regularized=True)
    model.train(mode == "train")
    model[-1].train(mode != "train")  # a submodule in the other mode: each module's own flag must come back
    flags = [m.training for m in model.modules()]
    params = list(model.parameters())
    sentinel = torch.full_like(params[0], 7.0)
    params[0].grad = sentinel  # the other parameters keep .grad None
    x = make_x()
    x_before = x.clone()
    method = build(name, model)

    torch.manual_seed(0)
    out = run(method, x, 1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all()
    assert out.abs().sum() > 0
    assert [m.training for m in model.modules()] == flags
    assert params[0].grad is sentinel and torch.equal(sentinel, torch.full_like(params[0], 7.0))
    assert all(p.grad is None for p in params[1:])
    assert torch.equal(x, x_before) and x.grad is None

    # Deterministic under a seed.
    torch.manual_seed(0)
    assert torch.equal(run(method, x, 1), out)

    # Runs in eval mode by default: the same attributions as for the model put in eval mode.
    model.eval()
    torch.manual_seed(0)
    assert max_rel(run(method, x, 1), out) < 1e-6  # max|a-b| / max|b| < 1e-6
    model.train(mode == "train")

    # A tensor target with one class per sample: row i is the attribution for class target[i]. The random
    # draws do not depend on the target, so this holds for the sampling methods too under the same seed.
    target = torch.arange(x.shape[0]) % N_CLASSES
    torch.manual_seed(0)
    per_sample = run(method, x, target)
    assert per_sample.shape == x.shape
    for c in range(N_CLASSES):
        torch.manual_seed(0)
        by_int = run(method, x, c)
        rows = target == c
        assert max_rel(per_sample[rows], by_int[rows]) < 1e-5  # max|a-b| / max|b| < 1e-5


@pytest.mark.parametrize("squeeze", [True, False])
@pytest.mark.parametrize("name", attribution.__all__)
def test_target_none_for_one_output_per_sample(name, squeeze):
    torch.manual_seed(0)
    head = nn.Sequential(nn.Conv1d(4, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 48, 1))
    model = nn.Sequential(head, nn.Flatten(0)) if squeeze else head  # (N,) or (N, 1) outputs
    x = one_hot()
    torch.manual_seed(0)
    out = run(build(name, model), x, None)
    torch.manual_seed(0)
    assert out.shape == x.shape and torch.equal(out, run(build(name, model), x, 0))


# -- agreement with Captum ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def captum_attr():
    """captum.attr: only the agreement tests need it (skipped without it outside CI, failed under CI)."""
    return require_peer("captum.attr", what="the reference implementation the attributions are checked against")


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_matches_captum(captum_attr, kind, abs_):
    make_model, make_x = MODELS[kind]
    model, x, t = make_model(), make_x(), torch.tensor([0, 1, 2, 2, 1, 0])
    ours = Saliency(model, abs=abs_)(x, t)
    theirs = captum_attr.Saliency(model).attribute(x, target=t, abs=abs_)
    assert max_rel(ours, theirs) < 1e-6  # max|a-b| / max|b| < 1e-6


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_gradient_times_input_matches_captum(captum_attr, kind):
    make_model, make_x = MODELS[kind]
    model, x = make_model(), make_x()
    ours = GradientTimesInput(model)(x, 2)
    theirs = captum_attr.InputXGradient(model).attribute(x, target=2)
    assert max_rel(ours, theirs) < 1e-6  # max|a-b| / max|b| < 1e-6


@pytest.mark.parametrize("internal_batch_size", [None, 4, 13, 60])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_integrated_gradients_matches_captum(captum_attr, kind, method, internal_batch_size):
    make_model, make_x = MODELS[kind]
    model, x = make_model(), make_x()
    t = torch.tensor([0, 1, 2, 2, 1, 0])
    baselines = 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    ours = IntegratedGradients(model, steps=50, method=method, internal_batch_size=internal_batch_size)(
        x, t, baselines
    )
    # Captum's own batching takes whole steps for all samples (at least N points per pass).
    captum_batch = None if internal_batch_size is None else max(internal_batch_size, x.shape[0])
    theirs = captum_attr.IntegratedGradients(model).attribute(
        x, baselines, target=t, n_steps=50, method=method, internal_batch_size=captum_batch
    )
    assert max_rel(ours, theirs) < 1e-5  # max|a-b| / max|b| < 1e-5 (float32, summation order differs)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_other_riemann_rules_match_captum(captum_attr, method):
    model, x = cnn1d(), one_hot()
    ours = IntegratedGradients(model, steps=20, method=method, multiply_by_inputs=False)(x, 1)
    theirs = captum_attr.IntegratedGradients(model, multiply_by_inputs=False).attribute(
        x, target=1, n_steps=20, method=method
    )
    assert max_rel(ours, theirs) < 1e-5  # max|a-b| / max|b| < 1e-5


@pytest.mark.parametrize(("internal_batch_size", "nt_batch"), [(None, None), (18, 3), (2, 1)])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_smooth_grad_matches_captum_noise_tunnel(captum_attr, kind, internal_batch_size, nt_batch):
    # Same noise draws as NoiseTunnel under the same seed: the results agree to float rounding (in practice
    # bit for bit). With internal_batch_size, NoiseTunnel draws in blocks of internal_batch_size // N samples.
    make_model, make_x = MODELS[kind]
    model, x, t = make_model(), make_x(), torch.tensor([0, 1, 2, 2, 1, 0])
    torch.manual_seed(11)
    ours = SmoothGrad(model, n_samples=20, std=0.3, internal_batch_size=internal_batch_size)(x, t)
    torch.manual_seed(11)
    theirs = captum_attr.NoiseTunnel(captum_attr.Saliency(model)).attribute(
        x, nt_type="smoothgrad", nt_samples=20, stdevs=0.3, target=t, nt_samples_batch_size=nt_batch
    )
    assert max_rel(ours, theirs) < 1e-6  # max|a-b| / max|b| < 1e-6


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_expected_gradients_matches_gradient_shap_on_the_same_draws(captum_attr, kind):
    # GradientShap draws with numpy's global generator: baseline indices (np.random.choice(M, N * n)) and then
    # alphas (np.random.uniform(0, 1, N * n)), both sample-major. We replay those draws through our estimator.
    make_model, make_x = MODELS[kind]
    model, x, t = make_model(), make_x(), torch.tensor([0, 1, 2, 2, 1, 0])
    refs = torch.rand((10, *x.shape[1:]), generator=torch.Generator().manual_seed(5))
    n, s = x.shape[0], 30
    np.random.seed(3)
    index = torch.as_tensor(np.random.choice(10, n * s)).view(n, s)
    alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, n * s), dtype=x.dtype).view(n, s)
    np.random.seed(3)
    theirs = captum_attr.GradientShap(model).attribute(x, refs, target=t, n_samples=s, stdevs=0.0)
    for internal_batch_size in (None, 4, 50):
        ours = ExpectedGradients(model, n_samples=s, internal_batch_size=internal_batch_size)._estimate(
            x, t, refs, index, alpha
        )
        assert max_rel(ours, theirs) < 1e-5  # max|a-b| / max|b| < 1e-5


def test_expected_gradients_agrees_with_gradient_shap_statistically(captum_attr):
    # Independent draws (ours from torch, Captum's from numpy) of the same estimator with n = 2000 samples: the
    # Monte-Carlo error of each is about 3.5% in relative L2 here (measured: 2.4% at n = 4000, 5% at n = 1000),
    # so we require ||a - b|| / ||b|| < 0.10, about three times the expected difference.
    model, x = cnn1d(), one_hot(n=4)
    refs = torch.rand((16, *x.shape[1:]), generator=torch.Generator().manual_seed(5))
    ours = ExpectedGradients(model, n_samples=2000, generator=torch.Generator().manual_seed(0))(x, 1, refs)
    np.random.seed(100)
    theirs = captum_attr.GradientShap(model).attribute(x, refs, target=1, n_samples=2000, stdevs=0.0)
    assert rel_l2(ours, theirs) < 0.10  # ||a-b||_2 / ||b||_2 < 0.10


# -- behaviour -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-4), (torch.float64, 1e-9)])
def test_integrated_gradients_completeness_gauss_legendre(dtype, tol):
    # Sum of attributions = f(x) - f(baseline) for the target logit; Gauss-Legendre at 256 steps is exact to
    # float precision on this smooth model: |sum - delta| / |delta| < 1e-4 (float32), < 1e-9 (float64).
    model = smooth1d(dtype=dtype)
    x = one_hot().to(dtype)
    baselines = 0.25 * torch.rand(x.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    attr = IntegratedGradients(model, steps=256)(x, 2, baselines)
    with torch.no_grad():
        delta = model(x)[:, 2] - model(baselines)[:, 2]
    assert (delta.abs() > 1e-3).all()  # the check is meaningful: no sample with a vanishing difference
    assert ((attr.flatten(1).sum(1) - delta).abs() / delta.abs()).max() < tol


def test_integrated_gradients_completeness_riemann_trapezoid_up_to_captums_scale():
    # Captum's trapezoid weights sum to (steps - 1) / steps; rescaled, the rule is the trapezoid rule, whose
    # error is O(1/steps^2): |sum * steps / (steps - 1) - delta| / |delta| < 1e-3 at 256 steps.
    model, x, steps = smooth1d(), one_hot(), 256
    attr = IntegratedGradients(model, steps=steps, method="riemann_trapezoid")(x, 0)
    with torch.no_grad():
        delta = model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]
    total = attr.flatten(1).sum(1) * steps / (steps - 1)
    assert ((total - delta).abs() / delta.abs()).max() < 1e-3


@pytest.mark.parametrize("internal_batch_size", [1, 5, 6, 19, 300, 10_000])
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_internal_batch_size_does_not_change_the_result(method, internal_batch_size):
    model, x, t = cnn1d(), one_hot(), torch.tensor([0, 1, 2, 2, 1, 0])
    full = IntegratedGradients(model, steps=50, method=method)(x, t)
    chunked = IntegratedGradients(model, steps=50, method=method, internal_batch_size=internal_batch_size)(
        x, t
    )
    assert max_rel(chunked, full) < 1e-5  # max|a-b| / max|b| < 1e-5: only the summation order differs


def test_integrated_gradients_chunks_bound_the_points_per_pass():
    seen = []

    class Spy(nn.Module):
        def forward(self, z):
            seen.append(z.shape[0])
            return z

    model = nn.Sequential(Spy(), cnn1d())
    IntegratedGradients(model, steps=50, internal_batch_size=20)(one_hot(), 1)
    assert max(seen) <= 20 and sum(seen) == 6 * 50
    seen.clear()
    IntegratedGradients(model, steps=50, internal_batch_size=4)(one_hot(), 1)  # fewer points than samples
    assert max(seen) <= 4 and sum(seen) == 6 * 50
    seen.clear()
    IntegratedGradients(model, steps=50)(one_hot(), 1)
    assert seen == [6 * 50]  # one batched pass


def test_integrated_gradients_baselines_broadcast_and_multiply_by_inputs():
    model, x = cnn2d(), images()
    b = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    ig = IntegratedGradients(model, steps=16)
    full = ig(x, 1, b.expand_as(x).clone())
    assert max_rel(ig(x, 1, b), full) < 1e-6  # max|a-b| / max|b| < 1e-6
    assert max_rel(ig(x, 1, b[0]), full) < 1e-6
    assert max_rel(ig(x, 1, 0.5), ig(x, 1, torch.full_like(x, 0.5))) < 1e-6
    grads = IntegratedGradients(model, steps=16, multiply_by_inputs=False)(x, 1, b)
    assert max_rel(grads * (x - b), full) < 1e-6


@pytest.mark.parametrize(("base", "reference"), [("saliency", Saliency), ("gradient", None)])
def test_smooth_grad_without_noise_is_the_base_map(base, reference):
    model, x = cnn2d(), images()
    smooth = SmoothGrad(model, n_samples=3, std=0.0, base=base)(x, 1)
    plain = Saliency(model, abs=base == "saliency")(x, 1)
    assert max_rel(smooth, plain) < 1e-6  # max|a-b| / max|b| < 1e-6


def test_smooth_grad_generator_reproducible():
    model, x = cnn1d(), one_hot()
    a = SmoothGrad(model, n_samples=5, generator=torch.Generator().manual_seed(1))(x, 1)
    b = SmoothGrad(model, n_samples=5, generator=torch.Generator().manual_seed(1))(x, 1)
    c = SmoothGrad(model, n_samples=5, generator=torch.Generator().manual_seed(2))(x, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_expected_gradients_generator_reproducible_and_chunks_do_not_matter():
    model, x = cnn1d(), one_hot()
    refs = torch.rand((8, *x.shape[1:]), generator=torch.Generator().manual_seed(5))

    def eg(seed, internal_batch_size=None):
        gen = torch.Generator().manual_seed(seed)
        return ExpectedGradients(model, n_samples=20, generator=gen, internal_batch_size=internal_batch_size)

    a = eg(1)(x, 1, refs)
    assert torch.equal(a, eg(1)(x, 1, refs))
    assert not torch.equal(a, eg(2)(x, 1, refs))
    for internal_batch_size in (1, 4, 13, 60):  # the draws are made up front, so chunking changes nothing
        assert max_rel(eg(1, internal_batch_size)(x, 1, refs), a) < 1e-5  # max|a-b| / max|b| < 1e-5


def test_expected_gradients_with_one_baseline_is_integrated_gradients():
    # With a single reference sample, EG is a Monte-Carlo estimate of IG from that baseline: at n = 2000 the
    # relative L2 error is about 1-2% here (measured), so we require ||eg - ig|| / ||ig|| < 0.05.
    model, x = cnn1d(), one_hot(n=4)
    ref = torch.rand((1, *x.shape[1:]), generator=torch.Generator().manual_seed(5))
    ig = IntegratedGradients(model, steps=256)(x, 1, ref)
    eg = ExpectedGradients(model, n_samples=2000, generator=torch.Generator().manual_seed(0))(x, 1, ref)
    assert rel_l2(eg, ig) < 0.05  # ||a-b||_2 / ||b||_2 < 0.05


# -- clear errors ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", attribution.__all__)
@pytest.mark.parametrize(
    ("target", "match"),
    [
        (3, "target=3 is out of range"),
        (torch.tensor([0, 1, 2, 3, 0, 0]), "target holds class 3"),
        (-1, "target must be >= 0"),
        (torch.tensor([0, 1]), r"target must have shape \(N,\)"),
        (torch.zeros(6), "target must hold integer class indices"),
        (None, "target is None but the model returns 3 outputs"),
    ],
)
def test_bad_target_is_a_clear_value_error(name, target, match):
    with pytest.raises(ValueError, match=match):
        run(build(name, cnn1d()), one_hot(), target)


def test_bad_baselines_are_a_clear_value_error():
    model, x = cnn1d(), one_hot()
    with pytest.raises(ValueError, match=r"baselines of shape \(6, 4, 49\) do not broadcast to x"):
        IntegratedGradients(model, steps=4)(x, 0, torch.zeros(6, 4, 49))
    with pytest.raises(ValueError, match=r"baselines must have shape \(M, \*\(4, 50\)\)"):
        ExpectedGradients(model, n_samples=2)(x, 0, torch.zeros(5, 4, 49))
    with pytest.raises(ValueError, match="baselines is required"):
        ExpectedGradients(model, n_samples=2)(x, 0)
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        Saliency(model)(x.long(), 0)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda m: IntegratedGradients(m, steps=0), "steps must be an int >= 1"),
        (lambda m: IntegratedGradients(m, steps=1, method="riemann_left"), "steps must be an int >= 2"),
        (lambda m: IntegratedGradients(m, method="simpson"), "method must be one of"),
        (lambda m: IntegratedGradients(m, internal_batch_size=0), "internal_batch_size must be an int >= 1"),
        (lambda m: SmoothGrad(m, std=-0.1), "std must be a float >= 0"),
        (lambda m: SmoothGrad(m, base="grad"), "base must be one of"),
        (lambda m: SmoothGrad(m, n_samples=0), "n_samples must be an int >= 1"),
        (lambda m: ExpectedGradients(m, n_samples=1.5), "n_samples must be an int >= 1"),
        (lambda m: Saliency(m, model_mode="test"), "model_mode must be one of"),
    ],
)
def test_bad_options_are_a_clear_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory(cnn1d())
