"""On-manifold adversarial examples and training: the latent perturbation stays within its budget, the decoded
examples raise the loss (and match a hand-written single step), the autoencoder stays frozen and untouched, the
model's mode and gradients are left as they were, state and checkpoints, pruning around the regime, the three
tasks, configuration errors."""

from __future__ import annotations

import io
import textwrap

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from robustlab.common.checkpoint import load_checkpoint
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.models import MLP, Autoencoder
from robustlab.common.regimes import ERM
from robustlab.common.regimes.on_manifold import OnManifoldAdversarialTraining, OnManifoldPGD
from robustlab.common.regimes.pruning import GradualPruning
from robustlab.common.tasks import TASKS
from robustlab.common.testing import kill_mid_run, random_targets, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=128, seed=0):
    """Points near a 2-D plane in 6 dimensions (a manifold an autoencoder with a 2-D code can learn), 3 classes."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, 2, generator=g)
    basis = torch.randn(2, 6, generator=g)
    x = t @ basis + 0.05 * torch.randn(n, 6, generator=g)
    y = (t[:, 0] > 0).long() + (t[:, 1] > 0.5).long()
    return x, y


@pytest.fixture(scope="module")
def trained():
    """An autoencoder and a classifier trained on :func:`_data` (a few seconds)."""
    torch.manual_seed(0)
    x, y = _data(256)
    ae = Autoencoder((6,), latent_dim=2, hidden=(16,), output="identity")
    fit(ae, ERM(loss=F.mse_loss, task="regression"), DataLoader(ArrayDataset(x, x), batch_size=32, shuffle=True),
        epochs=30, progress=False, device="cpu")
    model = MLP(6, 3, hidden=(32,))
    fit(model, ERM(), DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True), epochs=20, progress=False,
        device="cpu")
    return ae.eval(), model.eval(), x, y


@pytest.mark.parametrize("eps", [0.3, torch.tensor([0.1, 0.5])])
def test_latent_perturbation_stays_within_its_budget_and_decodes_in_bounds(trained, eps):
    ae, model, x, y = trained
    attack = OnManifoldPGD(model, ae, eps=eps, steps=5, random_start=True, bounds=(-1.0, 1.0))
    x_adv, z, delta = attack.perturb(x[:32], y[:32], return_latent=True)
    bound = torch.as_tensor(eps).expand_as(delta)
    assert (delta.abs() <= bound + 1e-6).all()
    assert (delta.abs() >= bound - 1e-6).any()  # signed steps reach the box's faces
    assert torch.allclose(z, ae.encode(x[:32]))
    with torch.no_grad():
        assert torch.allclose(x_adv, ae.decode(z + delta).clamp(-1.0, 1.0))
    assert x_adv.min() >= -1.0 and x_adv.max() <= 1.0 and x_adv.shape == x[:32].shape


def test_decoded_examples_raise_the_loss(trained):
    ae, model, x, y = trained
    with torch.no_grad():
        recon_loss = F.cross_entropy(model(ae(x)), y).item()
    losses = []
    for eps in (0.25, 1.0):
        x_adv = OnManifoldPGD(model, ae, eps=eps, steps=10)(x, y)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(x_adv), y).item())
    assert recon_loss < losses[0] < losses[1]  # ascent, and more with a larger budget
    with torch.no_grad():
        assert (model(x_adv).argmax(1) == y).float().mean() < (model(ae(x)).argmax(1) == y).float().mean()


def test_one_step_matches_a_hand_written_latent_fgsm(trained):
    ae, model, x, y = trained
    x_adv = OnManifoldPGD(model, ae, eps=0.2, alpha=0.2, steps=1)(x[:16], y[:16])
    z = ae.encode(x[:16]).detach()
    delta = torch.zeros_like(z, requires_grad=True)
    F.cross_entropy(model(ae.decode(z + delta)), y[:16], reduction="sum").backward()
    with torch.no_grad():
        expected = ae.decode(z + 0.2 * delta.grad.sign())
    assert torch.allclose(x_adv, expected, atol=1e-6)


def test_the_regime_attacks_the_module_inside_a_ddp_wrapper():
    class Wrapper(nn.Module):  # what DistributedDataParallel looks like to a regime: the model under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x)

    torch.manual_seed(0)
    model, ae = MLP(4, 3, hidden=(8,)), Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity")
    regime = OnManifoldAdversarialTraining(ae, eps=0.5, steps=2, fraction=0.5)
    regime(Wrapper(model), {"x": torch.randn(8, 4), "y": torch.randint(0, 3, (8,))}).backward()
    assert regime._attack.model is model


def test_latent_pgd_with_random_start_matches_a_hand_written_loop():
    torch.manual_seed(0)
    model, ae = MLP(4, 3, hidden=(8,)), Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity")
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    torch.manual_seed(1)
    x_adv, z, delta = OnManifoldPGD(model, ae, eps=0.3, steps=4, random_start=True, bounds=(-1.0, 1.0)).perturb(
        x, y, return_latent=True)
    torch.manual_seed(1)
    with torch.no_grad():
        z0 = ae.encode(x)
    d = (torch.rand_like(z0) * 2 - 1) * 0.3
    for _ in range(4):
        d.requires_grad_(True)
        F.cross_entropy(model(ae.decode(z0 + d).clamp(-1, 1)), y, reduction="sum").backward()
        d = (d.detach() + 2.5 * 0.3 / 4 * d.grad.sign()).clamp(-0.3, 0.3)
    assert torch.allclose(delta, d, atol=1e-6) and torch.allclose(z, z0)
    with torch.no_grad():
        assert torch.allclose(x_adv, ae.decode(z0 + d).clamp(-1, 1), atol=1e-6)


def test_attack_leaves_modes_flags_and_gradients_as_they_were():
    torch.manual_seed(0)
    model, ae = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 3)), Autoencoder((6,), 2, hidden=(8,))
    model.train()
    ae.train()
    ae.decoder[0].eval()  # a submodule deliberately in eval mode keeps it
    x, y = _data(8)
    OnManifoldPGD(model, ae, eps=0.5, steps=2)(x, y)
    assert model.training and model[1].training and ae.training and not ae.decoder[0].training
    assert all(p.requires_grad and p.grad is None for p in [*model.parameters(), *ae.parameters()])


def test_training_keeps_the_autoencoder_frozen_and_untouched(tmp_path):
    torch.manual_seed(0)
    x, y = _data(96)
    ae = Autoencoder((6,), latent_dim=2, hidden=(8,), output="identity")
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    model = MLP(6, 3, hidden=(16,))
    regime = OnManifoldAdversarialTraining(ae, eps=0.5, steps=3, fraction=0.5)
    assert not any(p.requires_grad for p in ae.parameters())
    res = fit(model, regime, DataLoader(ArrayDataset(x, y), batch_size=32), epochs=2, out_dir=tmp_path,
              progress=False, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in ae.state_dict().items())
    assert all(p.grad is None for p in ae.parameters())
    assert res.history[-1]["train_adv_fraction"] == pytest.approx(0.5)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved["networks"]["autoencoder"].keys() == before.keys()  # checkpointed with the run
    assert all(torch.equal(saved["networks"]["autoencoder"][k], v) for k, v in before.items())


@pytest.mark.parametrize("mode, size", [("replace", 8), ("append", 12)])
def test_batch_construction(mode, size):
    torch.manual_seed(0)
    x, y = _data(8)
    seen = []
    model = MLP(6, 3, hidden=(8,))
    model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]) if torch.is_grad_enabled() else None)
    ae = Autoencoder((6,), 2, hidden=(8,), output="identity")
    regime = OnManifoldAdversarialTraining(ae, eps=0.5, steps=1, fraction=0.5, mode=mode)
    regime(model, {"x": x, "y": y})
    assert seen[-1] == size and regime.step_metrics["adv_fraction"] == pytest.approx(4 / size)
    assert OnManifoldAdversarialTraining(ae, eps=0.5, fraction=0.0)(model, {"x": x, "y": y}).item() == \
        pytest.approx(F.cross_entropy(model(x), y).item())  # no on-manifold sample: the clean loss


def test_pruning_around_the_regime_reaches_the_rate_and_saves_nested_state(tmp_path):
    torch.manual_seed(0)
    x, y = _data(96)
    ae = Autoencoder((6,), latent_dim=2, hidden=(8,), output="identity")
    inner = OnManifoldAdversarialTraining(ae, eps=0.5, steps=2)
    regime = GradualPruning(0.8, begin=0.0, end=0.5, frequency=1, inner=inner)
    assert regime.networks == {"autoencoder": ae} and not regime.trainable_networks
    model = MLP(6, 3, hidden=(16, 16))
    res = fit(model, regime, DataLoader(ArrayDataset(x, y), batch_size=32), epochs=2, out_dir=tmp_path,
              progress=False, device="cpu")
    assert res.history[-1]["sparsity"] == pytest.approx(0.8, abs=0.01) and "train_adv_fraction" in res.history[-1]
    assert regime.layer_sparsity(model) == pytest.approx({"1": 0.8, "3": 0.8, "5": 0.8}, abs=0.01)
    buf = io.BytesIO()
    torch.save(regime.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert "inner" in state and state["sparsity"] == 0.8
    regime.load_state_dict(state)
    assert "autoencoder" in load_checkpoint(tmp_path / "last.pt")["networks"]


@pytest.mark.parametrize("task", TASKS)
def test_every_task(task):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 4, generator=g), random_targets(task, 16, outputs=3, generator=g)
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    ae = Autoencoder((4,), latent_dim=2, hidden=(8,), output="identity")
    regime = OnManifoldAdversarialTraining(ae, eps=0.5, steps=2, fraction=0.5, task=task)
    loss = regime(model, {"x": x, "y": y})
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert "OnManifoldAdversarialTraining" in repr(regime)


class _NoDecoder(nn.Module):
    def encode(self, x):
        return x


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps=-0.1), "eps"), (dict(eps="big"), "eps"), (dict(eps=torch.tensor([0.1, -0.1])), "eps"),
    (dict(eps=0.1, steps=0), "steps"), (dict(eps=0.1, alpha=0.0), "alpha"), (dict(eps=0.1, bounds=(1.0, 0.0)), "bounds"),
    (dict(eps=0.1, fraction=1.5), "fraction"), (dict(eps=0.1, mode="mix"), "mode")])
def test_config_errors(kwargs, match):
    ae = Autoencoder((4,), 2, hidden=(8,))
    with pytest.raises(ConfigError, match=match):
        OnManifoldAdversarialTraining(ae, **kwargs)


def test_an_autoencoder_without_decode_is_refused():
    with pytest.raises(ConfigError, match="encode\\(\\) and decode\\(\\)"):
        OnManifoldPGD(MLP(4, 2), _NoDecoder(), eps=0.1)



# -- resume after a real SIGKILL: pruning around on-manifold AT (random starts: the random state is restored) --
_RESUME_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.models import MLP, Autoencoder
    from robustlab.common.regimes.on_manifold import OnManifoldAdversarialTraining
    from robustlab.common.regimes.pruning import GradualPruning

    class Slow(OnManifoldAdversarialTraining):
        def __call__(self, model, batch):
            time.sleep(float(sys.argv[2]))
            return super().__call__(model, batch)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (160,), generator=g)
    x = torch.randn(160, 6, generator=g) + y[:, None]
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)   # 10 steps an epoch, 50 in all
    model, ae = MLP(6, 3, hidden=(16, 16)), Autoencoder((6,), latent_dim=2, hidden=(8,), output="identity")
    inner = Slow(ae, eps=0.5, steps=2, random_start=True)
    regime = GradualPruning(0.8, begin=0.1, end=0.7, frequency=2, inner=inner)
    fit(model, regime, loader, epochs=5, out_dir=sys.argv[1], resume=True, progress=False, device="cpu")
    torch.save({**model.state_dict(), **{"ae." + k: v for k, v in ae.state_dict().items()}}, sys.argv[1] + "/final.pt")
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_RESUME_SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_script(script, full, "0")
    kill_mid_run(script, killed, "0.03", epochs=5)
    done = load_checkpoint(killed / "last.pt")
    assert 0.0 < done["regime"]["sparsity"] < 0.8 and "inner" in done["regime"]
    assert "autoencoder" in done["networks"]
    run_script(script, killed, "0")
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
