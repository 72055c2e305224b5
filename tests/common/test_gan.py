"""GAN: mode coverage on a ring of Gaussians, conditioning, the two networks' steps and optimizers, checkpoints,
validation without labels, resume after SIGKILL, DDP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
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
from robustlab.common.regimes.gan import GAN
from robustlab.common.testing import kill_mid_run, run_script

MODES, RADIUS, STD = 8, 2.0, 0.1


# one thread: the same figures on any machine, and no stall when other processes share the CPU
pytestmark = pytest.mark.usefixtures("one_thread")


def _centers() -> torch.Tensor:
    angle = 2 * math.pi * torch.arange(MODES) / MODES
    return RADIUS * torch.stack([angle.cos(), angle.sin()], 1)


def _ring(per_mode=256, seed=0) -> ArrayDataset:
    """Eight Gaussians of std 0.1 on a circle of radius 2; the label is the mode."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(MODES).repeat(per_mode)
    return ArrayDataset(_centers()[y] + STD * torch.randn(len(y), 2, generator=g), y)


def _mlp(i, o, hidden=128, act=nn.ReLU):
    return nn.Sequential(nn.Linear(i, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, o))


class _Conditional(nn.Module):
    """An MLP of ``(v, y)``: the one-hot label is concatenated to the input."""

    def __init__(self, i, o, act=nn.ReLU):
        super().__init__()
        self.net = _mlp(i + MODES, o, act=act)

    def forward(self, v, y):
        return self.net(torch.cat([v, F.one_hot(y, MODES).to(v.dtype)], 1))


def _leaky():
    return nn.LeakyReLU(0.2)


@pytest.mark.slow
def test_covers_every_mode_of_a_ring_of_gaussians():
    torch.manual_seed(0)
    generator, discriminator = _mlp(8, 2), _mlp(2, 1, act=_leaky)
    regime = GAN(discriminator, latent_dim=8, lr=2e-3, d_lr=2e-3, label_smoothing=0.1)
    loader = DataLoader(_ring(), batch_size=128, shuffle=True)
    fit(generator, regime, loader, epochs=150, progress=False, device="cpu")
    samples = regime.sample(4000, rng=torch.Generator().manual_seed(1))
    dist, nearest = torch.cdist(samples, _centers()).min(1)
    good = dist < 3 * STD  # within 3 std of a mode: a high-quality sample
    share = torch.bincount(nearest[good], minlength=MODES).float() / len(samples)
    print(f"high quality {good.float().mean():.3f}, share per mode {[round(s, 3) for s in share.tolist()]}")
    assert good.float().mean() > 0.8
    assert share.min() > 0.05, f"a mode is missed (ideal share 0.125): {share.tolist()}"


def test_conditional_samples_land_on_their_class():
    torch.manual_seed(0)
    generator, discriminator = _Conditional(8, 2), _Conditional(2, 1, act=_leaky)
    regime = GAN(discriminator, latent_dim=8, lr=2e-3, d_lr=2e-3, label_smoothing=0.1, conditional=True)
    fit(generator, regime, DataLoader(_ring(), batch_size=128, shuffle=True), epochs=25, progress=False,
        device="cpu")
    y = torch.arange(MODES).repeat(250)
    samples = regime.sample(len(y), y, rng=torch.Generator().manual_seed(1))
    on_own = (samples - _centers()[y]).norm(dim=1) < 3 * STD
    per_class = [on_own[y == k].float().mean().item() for k in range(MODES)]
    print(f"on their own mode: {on_own.float().mean():.3f}, per class {[round(p, 3) for p in per_class]}")
    assert min(per_class) > 0.8
    assert regime.sample(3, 5).shape == (3, 2)  # one class for all


def test_discriminator_trains_and_both_optimizers_are_checkpointed(tmp_path):
    torch.manual_seed(0)
    generator, discriminator = _mlp(4, 2, 16), _mlp(2, 1, 16)
    d_before = {k: v.clone() for k, v in discriminator.state_dict().items()}
    regime = GAN(discriminator, latent_dim=4, d_lr=1e-3, d_betas=(0.0, 0.9))
    data = DataLoader(_ring(16), batch_size=32, shuffle=True)
    # 20 epochs of 4 steps: enough for the discriminator to tell the ring from the generator's early samples
    res = fit(generator, regime, data, val_loader=data, epochs=20, out_dir=tmp_path, progress=False)
    assert any(not torch.equal(d_before[k], v) for k, v in discriminator.state_dict().items())
    last = load_checkpoint(tmp_path / "last.pt")
    for k, v in discriminator.state_dict().items():
        assert torch.equal(last["networks"]["discriminator"][k], v)
    for k, v in generator.state_dict().items():
        assert torch.equal(last["model"][k], v)
    opts = last["optimizers"]
    assert set(opts) == {"model", "discriminator"}
    g_group = opts["model"]["param_groups"][0]
    assert g_group["lr"] == 2e-4 and g_group["betas"] == (0.5, 0.999)
    assert opts["discriminator"]["param_groups"][0]["lr"] == 1e-3
    assert opts["discriminator"]["param_groups"][0]["betas"] == (0.0, 0.9)
    assert len(opts["model"]["state"]) == len(list(generator.parameters()))  # both have taken steps
    assert len(opts["discriminator"]["state"]) == len(list(discriminator.parameters()))
    row = res.last
    assert {"train_d_loss", "train_g_loss", "train_d_real", "train_d_fake", "val_d_accuracy", "val_d_real",
            "val_d_fake", "val_d_loss", "val_g_loss"} <= set(row)
    assert row["train_loss"] == row["train_g_loss"]
    assert 0 <= row["train_d_real"] <= 1 and 0 <= row["train_d_fake"] <= 1  # probabilities
    # The discriminator learns: early in training it separates real from fake (chance: accuracy 0.5, no gap).
    # Measured at epoch 20: val_d_accuracy 0.996, train_d_real - train_d_fake 0.19 (seeds 0-4: >= 0.996, >= 0.12).
    assert row["val_d_accuracy"] > 0.9
    assert row["train_d_real"] - row["train_d_fake"] > 0.05
    assert "val_loss" not in row and not (tmp_path / "best.pt").exists(), "a GAN has no validation loss"
    # resume loads the discriminator too
    fresh = _mlp(2, 1, 16)
    fit(_mlp(4, 2, 16), GAN(fresh, latent_dim=4), data, epochs=20, out_dir=tmp_path, resume=True, progress=False)
    for k, v in discriminator.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


class _Recorder(nn.Module):
    """Records the batch size and the grad mode of every call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x):
        self.calls.append((len(x), torch.is_grad_enabled(), any(p.requires_grad for p in self.parameters())))
        return self.net(x)


def test_alternating_steps_with_one_discriminator_forward_per_step():
    torch.manual_seed(0)
    generator, discriminator = _Recorder(_mlp(4, 2, 8)), _Recorder(_mlp(2, 1, 8))
    g_before = [p.clone() for p in generator.parameters()]
    data = DataLoader(_ring(4), batch_size=16)  # 32 samples: 2 batches of 16
    fit(generator, GAN(discriminator, latent_dim=4, d_steps=3), data, epochs=1, progress=False)
    # per batch: 3 discriminator steps on [real, fake] (32), then the generator step on 16 fakes, D frozen
    assert discriminator.calls == [(32, True, True)] * 3 + [(16, True, False)] + [(32, True, True)] * 3 + [
        (16, True, False)]
    # the generator: 3 fakes without gradients, then one pass with them
    assert generator.calls == ([(16, False, True)] * 3 + [(16, True, True)]) * 2
    assert any(not torch.equal(a, b) for a, b in zip(g_before, generator.parameters()))


def test_discriminator_loss_with_one_sided_label_smoothing():
    class Constant(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = nn.Parameter(torch.tensor(c))

        def forward(self, x):
            return self.c.expand(len(x), 1)

    c = 0.7
    for smoothing in (0.0, 0.1):
        regime = GAN(Constant(c), latent_dim=2, label_smoothing=smoothing)
        real, fake = torch.randn(5, 2), torch.randn(5, 2)
        loss, on_real, on_fake = regime.discriminator_loss(regime.discriminator, real, fake)
        # BCE(c, t) = softplus(c) - t c: the real target is 1 - smoothing, the fake target stays 0
        expected = (F.softplus(torch.tensor(c)) - (1 - smoothing) * c) + F.softplus(torch.tensor(c))
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        assert on_real.shape == on_fake.shape == (5, 1)


def test_generator_loss_is_non_saturating_and_leaves_the_discriminator_alone():
    torch.manual_seed(0)
    generator, discriminator = _mlp(3, 2, 8), _mlp(2, 1, 8)
    regime = GAN(discriminator, latent_dim=3)
    batch = {"x": torch.randn(6, 2)}
    torch.manual_seed(1)
    loss = regime(generator, batch)
    loss.backward()
    torch.manual_seed(1)
    logits = discriminator(generator(torch.randn(6, 3)))
    assert loss.item() == pytest.approx(-F.logsigmoid(logits).mean().item(), rel=1e-6)  # -log D(G(z))
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in generator.parameters())
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters()), "the discriminator is unfrozen afterwards"


def test_validation_is_deterministic_and_leaves_the_random_stream_alone():
    torch.manual_seed(0)
    generator, discriminator = _mlp(4, 2, 8).train(), _mlp(2, 1, 8).train()
    regime = GAN(discriminator, latent_dim=4)
    data = DataLoader(_ring(8), batch_size=20)
    state = torch.get_rng_state()
    a = regime.validate(generator, data)
    after = torch.get_rng_state()
    torch.set_rng_state(state)
    for _ in data:  # a DataLoader draws its base seed from the global stream; validation itself draws nothing
        pass
    assert torch.equal(after, torch.get_rng_state())
    b = regime.validate(generator, data)
    assert a == b and set(a) == {"d_accuracy", "d_real", "d_fake", "d_loss", "g_loss"}
    assert 0.0 <= a["d_accuracy"] <= 1.0
    assert generator.training and discriminator.training


def test_sample_in_eval_mode_and_config_errors():
    generator = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5)).train()
    regime = GAN(_mlp(2, 1, 8), latent_dim=4)
    with pytest.raises(ConfigError, match="generator"):
        regime.sample(3)
    out = regime.sample(3, model=generator, rng=torch.Generator().manual_seed(0))
    again = regime.sample(3, model=generator, rng=torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and not out.requires_grad and generator.training
    conv = GAN(_mlp(2, 1, 8), latent_dim=(4, 1, 1))
    assert conv.noise(5).shape == (5, 4, 1, 1)
    conditional = GAN(_Conditional(2, 1), latent_dim=8, conditional=True)
    with pytest.raises(ConfigError, match="labels"):
        conditional.sample(2, model=_Conditional(8, 2))
    with pytest.raises(ConfigError, match="labels"):
        conditional(_Conditional(8, 2), {"x": torch.randn(2, 2)})
    for bad in (dict(latent_dim=0), dict(latent_dim=2, d_steps=0), dict(latent_dim=2, label_smoothing=1.0)):
        with pytest.raises(ConfigError):
            GAN(_mlp(2, 1, 8), **bad)
    assert "GAN" in repr(regime) and isinstance(GAN.citation, str)


# -- resume after a real SIGKILL ------------------------------------------------------------------------------
_RESUME_SCRIPT = textwrap.dedent(
    """
    import math, sys, time, torch
    from torch import nn
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.regimes.gan import GAN

    class Slow(GAN):
        def train_step(self, step, model, batch):
            time.sleep(float(sys.argv[2]))
            return super().train_step(step, model, batch)

    def mlp(i, o):
        return nn.Sequential(nn.Linear(i, 32), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(32, o))

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(8).repeat(30)
    angle = 2 * math.pi * y / 8
    x = 2 * torch.stack([angle.cos(), angle.sin()], 1) + 0.1 * torch.randn(len(y), 2, generator=g)
    loader = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True)
    val = DataLoader(ArrayDataset(x[:64], y[:64]), batch_size=32)
    generator, discriminator = mlp(4, 2), mlp(2, 1)
    regime = Slow(discriminator, latent_dim=4, d_steps=2, label_smoothing=0.1, lr=1e-3, d_lr=1e-3)
    fit(generator, regime, loader, val_loader=val, epochs=6, out_dir=sys.argv[1], resume=True, progress=False)
    torch.save({"generator": generator.state_dict(), "discriminator": discriminator.state_dict()},
               sys.argv[1] + "/final.pt")
    """
)


@pytest.mark.slow
def test_resume_after_sigkill_is_bit_identical(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(_RESUME_SCRIPT)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_script(script, full, "0")
    kill_mid_run(script, killed, "0.02", epochs=6)
    run_script(script, killed, "0")
    a = torch.load(full / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        assert a[net].keys() == b[net].keys()
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net} {k} differs after resume"
    rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (full, killed)]
    keys = ("train_loss", "train_d_loss", "train_d_real", "train_d_fake", "val_d_accuracy", "val_g_loss")
    assert [[r[k] for k in keys] for r in rows[0]] == [[r[k] for k in keys] for r in rows[1]]


# -- distributed data parallel --------------------------------------------------------------------------------
_DDP_SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from torch import nn
    from torch.utils.data import DataLoader
    from robustlab.common.data import ArrayDataset
    from robustlab.common.engine import fit
    from robustlab.common.regimes.gan import GAN

    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(128, 2, generator=g) + 2
    loader = DataLoader(ArrayDataset(x, torch.zeros(128)), batch_size=32)   # the global batch
    generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
    fit(generator, GAN(discriminator, latent_dim=4, d_steps=2), loader, epochs=2, out_dir=sys.argv[1],
        progress=False, device="cpu")
    torch.save({"generator": generator.state_dict(), "discriminator": discriminator.state_dict()},
               f"{sys.argv[1]}/rank{os.environ.get('RANK', '0')}.pt")
    """
)


@pytest.mark.slow
def test_ddp_two_processes_keep_both_networks_in_sync(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
         str(tmp_path / "two")], env=env, timeout=240, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "two" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for net in ("generator", "discriminator"):
        for k in r0[net]:
            assert torch.equal(r0[net][k], r1[net][k]), f"{net} {k} differs between the processes"
    rows = [json.loads(s) for s in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["train_d_loss"]) for r in rows)


def test_a_float16_gradient_scaler_with_several_discriminator_steps():
    from robustlab.common.regimes.base import FitState, StepContext

    torch.manual_seed(0)
    generator, discriminator = _mlp(4, 2, 8), _mlp(2, 1, 8)
    regime = GAN(discriminator, latent_dim=4, d_steps=3)
    regime.setup(generator, FitState())
    optimizers = regime.configure_optimizers(generator, None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)  # what fit uses for float16 AMP on a GPU
    step = StepContext(optimizers=optimizers, scaler=scaler, device=torch.device("cpu"), amp_dtype=torch.float16,
                       use_amp=False, grad_clip=1.0, state=FitState(), describe=lambda: "here")
    d_before = [p.detach().clone() for p in discriminator.parameters()]
    for _ in range(2):  # as the engine does: zero, step, update the scaler
        step.zero_grad()
        step.stepped.clear()
        regime.train_step(step, generator, {"x": torch.randn(8, 2)})
        scaler.update()
    assert step.stepped == {"model", "discriminator"}
    assert any(not torch.equal(a, b) for a, b in zip(d_before, discriminator.parameters()))


# -- sample grids during training -----------------------------------------------------------------------------
def test_sample_grids_use_fixed_noise_and_leave_training_alone(tmp_path):
    data = DataLoader(_ring(4), batch_size=16, shuffle=True)
    calls = []

    def record(samples, labels, epoch):  # reads `generator`, the network being trained below
        calls.append((epoch, samples, labels, {k: v.clone() for k, v in generator.state_dict().items()}))

    def run(on_samples, out_dir=None, epochs=5, resume=False):
        torch.manual_seed(0)
        g, d = _Conditional(8, 2), _Conditional(2, 1, act=_leaky)
        regime = GAN(d, latent_dim=8, conditional=True, seed=7, on_samples=on_samples, sample_every=2,
                     sample_labels=[0, 3, 3, 5])
        fit(g, regime, data, epochs=epochs, progress=False, out_dir=out_dir, resume=resume)
        return g, regime

    plain, _ = run(None)  # the same run without grids
    torch.manual_seed(0)
    generator, discriminator = _Conditional(8, 2), _Conditional(2, 1, act=_leaky)
    regime = GAN(discriminator, latent_dim=8, conditional=True, seed=7, on_samples=record, sample_every=2,
                 sample_labels=[0, 3, 3, 5])
    fit(generator, regime, data, epochs=5, progress=False)
    # every 2nd epoch and the last; the training's random stream is untouched (same weights as without grids)
    assert [c[0] for c in calls] == [2, 4, 5]
    for k, v in plain.state_dict().items():
        assert torch.equal(generator.state_dict()[k], v)
    for _, samples, labels, weights in calls:
        assert samples.shape == (4, 2) and samples.device.type == "cpu" and not samples.requires_grad
        assert labels.tolist() == [0, 3, 3, 5]
        # the same noise at every epoch: the samples are the generator of that epoch on seed 7's noise
        snapshot = _Conditional(8, 2)
        snapshot.load_state_dict(weights)
        z = torch.randn(4, 8, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            assert torch.allclose(samples, snapshot(z, labels), atol=1e-6)
    assert not torch.equal(calls[0][1], calls[-1][1]), "the generator trained between the grids"
    # a resumed run calls back for its new epochs only
    calls.clear()
    run(lambda s, y, e: calls.append((e, s, y, {})), out_dir=tmp_path, epochs=3)
    run(lambda s, y, e: calls.append((e, s, y, {})), out_dir=tmp_path, epochs=5, resume=True)
    assert [c[0] for c in calls] == [2, 3, 4, 5]


def test_fixed_samples_and_sample_grid_options():
    generator = nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.5)).train()
    regime = GAN(_mlp(2, 1, 8), latent_dim=4, seed=3, sample_count=6, on_samples=lambda *a: None)
    a, labels = regime.fixed_samples(generator)
    b, _ = regime.fixed_samples(generator)
    assert a.shape == (6, 2) and labels is None and torch.equal(a, b) and generator.training
    with pytest.raises(ConfigError, match="sample_labels"):
        GAN(_Conditional(2, 1), latent_dim=8, conditional=True, on_samples=lambda *a: None)
    for bad in (dict(sample_every=0), dict(sample_count=0), dict(on_samples="grid.png"),
                dict(sample_labels=[0.5]), dict(sample_labels=[-1]), dict(sample_labels=[])):
        with pytest.raises(ConfigError):
            GAN(_mlp(2, 1, 8), latent_dim=4, **bad)
    conditional = GAN(_Conditional(2, 1), latent_dim=8, conditional=True, sample_labels=(1, 2))
    assert conditional.sample_labels.tolist() == [1, 2]
