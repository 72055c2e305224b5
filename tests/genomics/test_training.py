"""robustlab.genomics.training: the six training variants of Koo et al. (2019) over the core engine."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from robustlab.common.regimes import ERM, AdversarialTraining, GaussianNoise
from robustlab.genomics.data.simulate import simulate_koo2019
from robustlab.genomics.training import VARIANTS, TrainConfig, build_model, build_regime, train

TINY = TrainConfig(epochs=1, batch_size=32, adv_steps=2, adv_warmup_epochs=0)


@pytest.fixture(scope="module")
def splits():
    return simulate_koo2019(160, seed=1, length=200).split((0.7, 0.1, 0.2), seed=7)


@pytest.fixture(scope="module")
def planted(planted_motif):
    return [SimpleNamespace(x=x, y=y[:, None]) for x, y in (planted_motif(2000, 0), planted_motif(200, 1))]


@pytest.mark.usefixtures("one_thread")  # tiny networks run fastest on one thread
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_learns_a_planted_motif(planted, variant):
    # A separable task: val AUROC above 0.85 after 4 epochs for every variant (chance 0.5).
    train_ds, valid_ds = planted
    config = TrainConfig(epochs=4, batch_size=32, lr=3e-3, adv_steps=2, adv_warmup_epochs=0, keep="last")
    model, result = train("localnet", variant, train_ds, valid_ds, config, seed=0)
    assert len(result.history) == 4
    assert all(math.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[-1]["val_auroc"] > 0.85
    with torch.no_grad():
        assert model.eval()(torch.as_tensor(valid_ds.x)).shape == (len(valid_ds.x), 1)


def test_distnet_multilabel_and_checkpoints(tmp_path):
    from robustlab.genomics.data.simulate import simulate_koo_eddy2019

    tr, va, _ = simulate_koo_eddy2019(60, seed=2, length=200).split((0.7, 0.1, 0.2), seed=7)
    model, result = train("distnet", "noise", tr, va, TINY, out_dir=tmp_path, seed=0)
    with torch.no_grad():
        assert model.eval()(torch.as_tensor(va.x)).shape == (len(va), 12)
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()
    assert math.isfinite(result.history[0]["train_loss"])


def test_regimes_are_the_core_ones_with_bce():
    model = build_model("localnet", "standard", num_tasks=1, length=200)
    assert isinstance(build_regime("standard", model, TINY), ERM)
    assert isinstance(build_regime("regularized", model, TINY), ERM)
    noise = build_regime("noise", model, TrainConfig(noise_std=0.1))
    assert isinstance(noise, GaussianNoise)
    logits, y = torch.zeros(4, 1), torch.ones(4, 1)
    assert noise.loss(logits, y).item() == pytest.approx(math.log(2))


def test_regularized_has_dropout_batch_norm_and_weight_decay(splits):
    from robustlab.genomics.models import LocalNet

    reg = build_model("localnet", "regularized", num_tasks=1, length=200)
    std = build_model("localnet", "standard", num_tasks=1, length=200)
    kinds = lambda m: {type(x) for x in m.modules()}  # noqa: E731
    assert nn.Dropout in kinds(reg) and nn.BatchNorm1d in kinds(reg)
    assert nn.BatchNorm1d not in kinds(std) and not any(
        isinstance(x, nn.Dropout) and x.p > 0 for x in std.modules())
    assert sorted({x.p for x in reg.modules() if isinstance(x, nn.Dropout)}) == sorted(set(LocalNet.paper_dropout))

    seen = []
    original = torch.optim.Adam.__init__

    def spy(self, params, **kw):
        seen.append([(len(g["params"]), g["weight_decay"]) for g in params])
        original(self, params, **kw)

    train_ds, valid_ds, _ = splits
    torch.optim.Adam.__init__ = spy
    try:
        train("localnet", "regularized", train_ds, None, TINY)
        train("localnet", "standard", train_ds, None, TINY)
    finally:
        torch.optim.Adam.__init__ = original
    # regularized: conv1, conv2 (no biases: batch norm) and the output layer's weight and bias carry 2 * 1e-6
    # (the gradient of 1e-6 * sum(w ** 2)); the batch-norm scales and shifts none
    assert seen[0] == [(4, 2e-6), (4, 0.0)]
    assert seen[1] == [(6, 0.0)]


def test_l2_groups_give_the_gradient_of_the_penalty_in_the_loss():
    from robustlab.common.training import l2_param_groups

    torch.manual_seed(0)
    model = build_model("distnet", "regularized", num_tasks=1, length=200)
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (16, 200)), 4).permute(0, 2, 1).float()
    y = torch.randint(0, 2, (16, 1)).float()
    twin = build_model("distnet", "regularized", num_tasks=1, length=200)
    twin.load_state_dict(model.state_dict())
    # one Adam step with the groups (the same dropout masks in both passes) ...
    opt = torch.optim.Adam(l2_param_groups(model, 1e-3), lr=1e-2)
    torch.manual_seed(1)
    nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    opt.step()
    # ... equals one step on loss + 1e-3 * sum(w ** 2) over convolution and dense weights and biases
    penalized = [p for m in twin.modules() if isinstance(m, (nn.Conv1d, nn.Linear)) for p in m.parameters()]
    opt2 = torch.optim.Adam(twin.parameters(), lr=1e-2)
    torch.manual_seed(1)
    loss = nn.functional.binary_cross_entropy_with_logits(twin(x), y) + 1e-3 * sum((p ** 2).sum() for p in penalized)
    loss.backward()
    opt2.step()
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)


def test_glorot_init_and_bias_005():
    torch.manual_seed(0)
    model = build_model("localnet", "standard", init="glorot")
    conv = model.conv1
    fan_in, fan_out = conv.in_channels * conv.kernel_size[0], conv.out_channels * conv.kernel_size[0]
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.all(conv.bias == 0.05) and torch.all(model.output.bias == 0.05)
    assert not torch.all(build_model("localnet", "standard").conv1.bias == 0.05)  # torch's default otherwise


def test_adversarial_attack_stays_within_eps_and_has_warmup():
    from robustlab.common.regimes.base import FitState

    torch.manual_seed(0)
    model = build_model("localnet", "adversarial", num_tasks=1, length=200)
    config = TrainConfig(adv_eps=0.2, adv_steps=3, adv_warmup_epochs=2)
    regime = build_regime("adversarial", model, config)
    assert isinstance(regime, AdversarialTraining) and regime.fraction == 1.0 and regime.mode == "append"
    assert regime.attack.bounds == (0.0, 1.0) and regime.attack.random_start is False
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (8, 200)), 4).permute(0, 2, 1).float()
    y = torch.ones(8, 1)
    x_adv = regime.attack(x, y)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and (x_adv - x).abs().max() > 0
    # clipped to [0, 1] as in the authors' code: observed bases only go down, the others only up
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv[x == 1] <= 1).all() and (x_adv[x == 0] >= 0).all() and (x_adv[x == 1] < 1).any()
    unbounded = build_regime("adversarial", model, TrainConfig(adv_bounds=None, adv_steps=3))
    assert unbounded.attack.bounds is None and (unbounded.attack(x, y) > 1).any()
    assert regime.schedule.factor(0, 0, 10, 10) == 0.0 and regime.schedule.factor(1, 9, 10, 10) == 0.0
    assert regime.schedule.factor(2, 0, 10, 10) == 1.0
    regime.on_epoch_start(model, FitState(epoch=0, epochs=10, steps_per_epoch=10))
    regime(model, {"x": x, "y": y})
    assert regime.step_metrics["adv_fraction"] == 0.0  # clean warm-up
    regime.on_epoch_start(model, FitState(epoch=2, epochs=10, steps_per_epoch=10))
    regime(model, {"x": x, "y": y})
    assert regime.step_metrics["adv_fraction"] == 0.5 and regime.step_metrics["eps"] == pytest.approx(0.2)


def test_the_authors_attack_schedule_adds_up_to_0113():
    from robustlab.genomics.training import KOO2019_STEP_SIZES, adv_step_sizes

    assert adv_step_sizes(20) == KOO2019_STEP_SIZES and KOO2019_STEP_SIZES[0] == 0.01
    for steps in (1, 3, 4, 5, 20):
        assert sum(adv_step_sizes(steps)) == pytest.approx(0.1133, abs=1e-4)
    assert adv_step_sizes(4)[0] == pytest.approx(sum(KOO2019_STEP_SIZES[:5]))
    assert adv_step_sizes(3, "madry", 0.2) == pytest.approx((0.5 / 3,) * 3)
    # On a test input, a model whose gradient sign never changes moves each base that [0, 1] lets move by the
    # full schedule, 0.1133, short of the 0.2 budget (a base pushed past 0 or 1 stays put).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 200, 1))
    for steps in (20, 4):
        regime = build_regime("adversarial", model, TrainConfig(adv_steps=steps, adv_warmup_epochs=0))
        x = torch.nn.functional.one_hot(torch.randint(0, 4, (4, 200)), 4).permute(0, 2, 1).float()
        delta = (regime.attack(x, torch.ones(4, 1)) - x).abs()
        moved = delta[delta > 0]
        assert moved.numel() > delta.numel() // 4
        assert moved.min().item() == pytest.approx(0.113, abs=0.001)
        assert moved.max().item() == pytest.approx(0.113, abs=0.001)


def test_appended_adversarial_batch_doubles_and_keeps_the_clean_half():
    from robustlab.common.regimes.base import FitState

    torch.manual_seed(0)
    model = build_model("localnet", "adversarial", num_tasks=1, length=200)
    regime = build_regime("adversarial", model, TrainConfig(adv_steps=2, adv_warmup_epochs=0))
    regime.on_epoch_start(model, FitState(epoch=0, epochs=1, steps_per_epoch=1))
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (6, 200)), 4).permute(0, 2, 1).float()
    y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0], [0.0]])
    seen = []
    handle = model.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()) if m.training
                                         else None)
    model.train()
    regime(model, {"x": x, "y": y})
    handle.remove()
    assert len(seen) == 1 and seen[0].shape == (12, 4, 200)  # the training forward pass: batch size doubles
    torch.testing.assert_close(seen[0][:6], x)  # the clean half unchanged
    assert (seen[0][6:] - x).abs().max() > 0 and regime.step_metrics["adv_fraction"] == 0.5


@pytest.mark.usefixtures("one_thread")
def test_adversarial_variants_keep_their_final_weights_the_others_the_lowest_validation_loss(planted, tmp_path):
    from robustlab.common.checkpoint import load_checkpoint

    train_ds, valid_ds = planted
    # Validation labels flipped: as the model learns, its validation loss rises, so the lowest-validation-loss
    # epoch comes before the last and the two rules keep different weights.
    flipped = SimpleNamespace(x=valid_ds.x, y=1 - valid_ds.y)
    config = TrainConfig(epochs=4, batch_size=64, lr=3e-3, adv_steps=2, adv_warmup_epochs=1)
    assert config.keep_for("adversarial") == config.keep_for("regularized+adversarial") == "last"
    assert config.keep_for("noise") == config.keep_for("standard") == "best"
    for variant in ("standard", "adversarial"):
        model, result = train("localnet", variant, train_ds, flipped, config, out_dir=tmp_path / variant, seed=0)
        losses = [h["val_loss"] for h in result.history]
        assert result.best_epoch == 1 + losses.index(min(losses)) and result.best_epoch < len(losses) == 4
        last = load_checkpoint(tmp_path / variant / "last.pt")["model"]
        best = load_checkpoint(tmp_path / variant / "best.pt")["model"]
        kept, other = (best, last) if variant == "standard" else (last, best)
        for name, value in model.state_dict().items():
            torch.testing.assert_close(value.cpu(), kept[name], msg=name)
        assert any(not torch.equal(model.state_dict()[k].cpu(), other[k]) for k in kept)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: build_model("resnet", "standard"), "unknown arch"),
    (lambda: build_model("localnet", "mixup"), "unknown variant"),
    (lambda: TrainConfig(epochs=0), "epochs"),
    (lambda: TrainConfig(adv_fraction=2.0), "adv_fraction"),
    (lambda: TrainConfig(keep="first"), "keep"),
    (lambda: TrainConfig(adv_mode="mix"), "adv_mode"),
    (lambda: TrainConfig(init="he"), "init"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
