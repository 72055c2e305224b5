"""ActivationPatternRecorder: entropy and similarities against hand computations (scipy), what is and is not
recorded (training passes only, not attacks or eval), hooks removed, functional-ReLU networks, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from robustlab.common.analysis.activation_patterns import (
    STATISTICS,
    ActivationPatternRecorder,
    pattern_statistics,
    plot_pattern_history,
    relu_layers,
)
from robustlab.common.attacks import PGD
from robustlab.common.data import ArrayDataset
from robustlab.common.engine import fit
from robustlab.common.errors import ConfigError
from robustlab.common.models import SmallCNN
from robustlab.common.regimes import ERM


def _hand_counts(sign_rows: np.ndarray) -> dict[tuple, int]:
    """Counts of distinct rows (patterns) of a 0/1 matrix."""
    out: dict[tuple, int] = {}
    for r in sign_rows:
        out[tuple(r.tolist())] = out.get(tuple(r.tolist()), 0) + 1
    return out


def _hand_jaccard(a: dict, b: dict) -> tuple[float, float]:
    keys = set(a) | set(b)
    ji = len(set(a) & set(b)) / len(keys)
    wji = sum(min(a.get(k, 0), b.get(k, 0)) for k in keys) / sum(max(a.get(k, 0), b.get(k, 0)) for k in keys)
    return ji, wji


class Identity(nn.Module):
    def forward(self, x):
        return x


def _fed(outputs, *, pattern="channels", dense_bits=20):
    """A recorder on an identity layer fed the given tensors (one epoch per list)."""
    model = nn.Sequential(Identity())
    rec = ActivationPatternRecorder(model, ["0"], pattern=pattern, dense_bits=dense_bits, every=1)
    with rec:
        for epoch in outputs:
            for t in epoch:
                model(t)
            rec.end_epoch()
    return rec


@pytest.mark.parametrize("width, dense_bits", [(5, 20), (5, 0), (16, 20), (23, 20), (24, 20), (25, 20), (32, 20),
                                               (33, 20), (48, 20), (49, 20), (56, 20), (64, 20), (70, 20), (130, 20)])
def test_entropy_and_similarity_match_a_hand_computation(width, dense_bits):
    g = torch.Generator().manual_seed(width)
    # few patterns repeated (so that the counts differ), signs from a small pool of rows
    pool = torch.randn(12, width, generator=g)
    e1 = [pool[torch.randint(0, 12, (40,), generator=g)] for _ in range(3)]
    e2 = [pool[torch.randint(3, 12, (50,), generator=g)] + 0.0 for _ in range(2)]
    rec = _fed([e1, e2], dense_bits=dense_bits)
    hand = [_hand_counts((torch.cat(e) > 0).int().numpy()) for e in (e1, e2)]
    for row, counts in zip(rec.history, hand):
        s = row["layers"]["0"]
        c = np.array(list(counts.values()))
        assert s["patterns"] == len(counts) and s["points"] == c.sum()
        assert s["entropy"] == pytest.approx(scipy_entropy(c, base=2), rel=1e-12)
        assert s["relative_entropy"] == pytest.approx(scipy_entropy(c, base=2) / min(width, math.log2(c.sum())))
        assert s["most_frequent"] == pytest.approx(c.max() / c.sum())
    assert rec.history[0]["layers"]["0"]["jaccard"] is None
    ji, wji = _hand_jaccard(hand[1], hand[0])
    assert rec.history[1]["layers"]["0"]["jaccard"] == pytest.approx(ji)
    assert rec.history[1]["layers"]["0"]["weighted_jaccard"] == pytest.approx(wji)


def test_convolutional_patterns_are_per_position_or_per_sample():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 4, 5, generator=g)
    per_position = (x > 0).permute(0, 2, 3, 1).reshape(-1, 3).int().numpy()
    per_sample = (x > 0).reshape(6, -1).int().numpy()
    for pattern, rows in (("channels", per_position), ("sample", per_sample)):
        s = _fed([[x]], pattern=pattern).history[0]["layers"]["0"]
        c = np.array(list(_hand_counts(rows).values()))
        assert s["points"] == len(rows) and s["patterns"] == len(c)
        assert s["entropy"] == pytest.approx(scipy_entropy(c, base=2))


@pytest.mark.parametrize("width", [16, 24, 25, 32, 47, 48, 49, 100, 1000])
@pytest.mark.parametrize("pattern", ["channels", "sample"])
@pytest.mark.parametrize("autocast", [False, True])
def test_patterns_one_unit_apart_are_told_apart(width, pattern, autocast):
    """No unit is lost in packing, at or across the 24-bit word and 48-bit key boundaries, also under autocast
    (bfloat16 products would round 24-bit words): all-off, all-on and every pattern with one unit on or off are
    2 * width + 2 distinct patterns (1000 bits: more than 32 words, the wide path)."""
    eye = torch.eye(width)
    rows = torch.cat([eye, 1 - eye, torch.zeros(1, width), torch.ones(1, width)]) * 2 - 1  # signs of z
    x = rows if pattern == "channels" else rows.view(len(rows), 1, width)  # "sample" of (N, 1, width): same bits
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        s = _fed([[x]], pattern=pattern).history[0]["layers"]["0"]
    assert s["points"] == 2 * width + 2 and s["patterns"] == 2 * width + 2
    assert s["entropy"] == pytest.approx(math.log2(2 * width + 2))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int64])
def test_other_dtypes_give_the_float32_patterns(dtype):
    g = torch.Generator().manual_seed(2)
    pool = torch.randn(9, 40, generator=g) * 3
    batch = pool[torch.randint(0, 9, (60,), generator=g)]
    want = _fed([[batch.to(dtype).float()]]).history[0]["layers"]["0"]  # the same values in float32
    assert _fed([[batch.to(dtype)]]).history[0]["layers"]["0"] == want


def test_nan_and_tiny_values_count_by_z_above_zero():
    """A NaN unit is off (NaN > 0 is False), the smallest positive float is on, -0.0 is off."""
    x = torch.tensor([[float("nan"), 1.0], [0.0, 1.0], [-0.0, 1.0], [1e-45, 1.0], [float("inf"), -1.0]])
    c = np.array(list(_hand_counts((x > 0).int().numpy()).values()))  # {01: 3, 11: 1, 10: 1}
    relu = nn.Sequential(nn.ReLU())  # an nn.ReLU's output relu(z) (NaN stays NaN): the other way to the bits
    with ActivationPatternRecorder(relu) as rec:
        relu(x)
        rec.end_epoch()
    for s in (_fed([[x]]).history[0]["layers"]["0"], rec.history[0]["layers"]["0"]):
        assert s["patterns"] == 3 and s["most_frequent"] == pytest.approx(3 / 5)
        assert s["entropy"] == pytest.approx(scipy_entropy(c, base=2))


def test_pattern_statistics_of_identical_and_disjoint_sets():
    k = torch.tensor([1, 2, 3])
    c = torch.tensor([2, 1, 1])
    same = pattern_statistics(k, c, bits=2, previous=(k, c))
    assert same["jaccard"] == 1.0 and same["weighted_jaccard"] == 1.0 and same["entropy"] == pytest.approx(1.5)
    apart = pattern_statistics(k, c, bits=2, previous=(torch.tensor([7]), torch.tensor([4])))
    assert apart["jaccard"] == 0.0 and apart["weighted_jaccard"] == 0.0


def _loader(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    return DataLoader(ArrayDataset(x, torch.randint(0, 10, (n,), generator=g)), batch_size=16)


def test_fit_callback_records_training_passes_only_and_removes_hooks():
    torch.manual_seed(0)
    model = SmallCNN(width=4, hidden=16)
    rec = ActivationPatternRecorder(model, every=1)
    assert rec.names == relu_layers(model) == ["1", "4", "8"]
    fit(model, ERM(), _loader(), val_loader=_loader(32), epochs=2, device="cpu", progress=False, callbacks=[rec])
    assert [r["epoch"] for r in rec.history] == [1, 2]
    # 64 training samples an epoch: the 32 validation samples (eval mode) are not counted
    assert rec.history[0]["layers"]["8"]["points"] == 64
    assert rec.history[0]["layers"]["1"]["points"] == 64 * 28 * 28
    assert rec.history[1]["layers"]["4"]["jaccard"] is not None
    assert not rec.active and all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert not rec._scratch and not rec._packers  # the per-pass buffers are let go with the hooks
    json.dumps(rec.history)  # plain numbers
    assert set(rec.history[1]["layers"]["1"]) == set(STATISTICS)


def test_a_recorder_entered_around_fit_keeps_its_hooks_until_its_block_ends():
    model = SmallCNN(width=4, hidden=16)
    with ActivationPatternRecorder(model) as rec:
        fit(model, ERM(), _loader(), epochs=1, device="cpu", progress=False, callbacks=[rec])
        assert rec.active and len(rec.history) == 1
    assert not rec.active and all(not m._forward_hooks for m in model.modules())


def test_attack_passes_are_not_recorded():
    torch.manual_seed(0)
    model = SmallCNN(width=4, hidden=16).train()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    # in train mode, as adversarial training may run it: the attack context alone keeps the recorder silent
    attack = PGD(model, eps=0.1, alpha=0.02, steps=3, bounds=(0.0, 1.0), model_mode="train")
    with ActivationPatternRecorder(model) as rec:
        attack(x, y)
        model(x)
        silent = rec.end_epoch()["layers"]["8"]["points"]
    with ActivationPatternRecorder(model, during_attacks=True, every=1) as rec:
        attack(x, y)
        loud = rec.end_epoch()["layers"]["8"]["points"]
    assert silent == 8 and loud >= 3 * 8
    with ActivationPatternRecorder(model) as rec:
        PGD(model, eps=0.1, alpha=0.02, steps=3, bounds=(0.0, 1.0))(x, y)  # eval mode: not a training pass
        model.eval()(x)
        model.train()
        assert rec.end_epoch()["layers"]["8"]["points"] == 0


def test_hooks_removed_after_an_error_in_fit():
    class Boom(ERM):
        def __call__(self, model, batch):
            model(batch["x"])
            raise RuntimeError("boom")

    model = SmallCNN(width=4, hidden=16)
    rec = ActivationPatternRecorder(model)
    with pytest.raises(RuntimeError, match="boom"):
        fit(model, Boom(), _loader(), epochs=1, device="cpu", progress=False, callbacks=[rec])
    assert not rec.active and all(not m._forward_hooks for m in model.modules())


class FunctionalNet(nn.Module):
    """ReLU as a function: no nn.ReLU module."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn = nn.Linear(4, 6), nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def test_functional_relu_networks_name_the_preactivation():
    model = FunctionalNet()
    with pytest.raises(ConfigError, match="no nn.ReLU module.*pre-activation"):
        ActivationPatternRecorder(model)
    seen = {}
    model.fc2.register_forward_hook(lambda m, i, o: seen.setdefault("relu", i[0].detach().clone()))
    x = torch.randn(32, 4)
    with ActivationPatternRecorder(model, ["bn"]) as rec:
        model(x)
        s = rec.end_epoch()["layers"]["bn"]
    c = np.array(list(_hand_counts((seen["relu"] > 0).int().numpy()).values()))  # the signs after F.relu
    assert s["patterns"] == len(c) and s["entropy"] == pytest.approx(scipy_entropy(c, base=2))


def test_vision_resnet_layers_by_name():
    from robustlab.vision.models import ResNet

    model = ResNet(depth=8)
    names = ["bn1", "layer1.0.bn1", "layer1.0", "layer3.0"]
    with ActivationPatternRecorder(model, names) as rec:
        model.train()(torch.rand(4, 1, 28, 28))
        row = rec.end_epoch()
    assert row["layers"]["layer3.0"]["points"] == 4 * 7 * 7 and rec.bits["layer3.0"] == 64


@pytest.mark.parametrize("kwargs, match", [
    ({"layers": ["0", "nope"]}, "no submodule 'nope'"),
    ({"pattern": "pixels"}, "pattern must be one of"),
    ({"dense_bits": 40}, "dense_bits"), ({"every": 0}, "every")])
def test_bad_arguments_name_what_is_wrong(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ActivationPatternRecorder(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), **kwargs)


def test_a_layer_with_a_non_tensor_or_flat_output_is_named():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    model = nn.Sequential(Pair())
    with ActivationPatternRecorder(model, ["0"]):
        with pytest.raises(ConfigError, match="layer '0'.*tuple"):
            model(torch.randn(3, 2))
    flat = nn.Sequential(Identity())
    with ActivationPatternRecorder(flat, ["0"]):
        with pytest.raises(ConfigError, match=r"layer '0'.*\(3,\)"):
            flat(torch.randn(3))


def test_plot_writes_a_png(tmp_path):
    rec = _fed([[torch.randn(20, 3)], [torch.randn(20, 3)]])
    path = tmp_path / "p.png"
    plot_pattern_history({"net": json.loads(json.dumps(rec.history))}, path, extra={"net": {"acc": [0.5, 0.6]}})
    assert path.stat().st_size > 1000
    with pytest.raises(ConfigError, match="statistics"):
        plot_pattern_history({"net": rec.history}, path, statistics=("nope",))


def test_counts_merged_during_the_epoch_equal_one_count(monkeypatch):
    """Wide patterns are counted in stages once their keys pile up: the result is the same."""
    import robustlab.common.analysis.activation_patterns as ap

    g = torch.Generator().manual_seed(3)
    pool = torch.randn(30, 40, generator=g)
    batches = [pool[torch.randint(0, 30, (25,), generator=g)] for _ in range(9)]
    whole = _fed([batches]).history[0]["layers"]["0"]
    monkeypatch.setattr(ap, "_MERGE_AT", 30)  # a count after every second batch
    staged = _fed([batches]).history[0]["layers"]["0"]
    assert staged == whole
    c = np.array(list(_hand_counts((torch.cat(batches) > 0).int().numpy()).values()))
    assert whole["entropy"] == pytest.approx(scipy_entropy(c, base=2)) and whole["patterns"] == len(c)


def test_by_default_every_second_training_pass_is_recorded():
    """The default (every=2) is the setting the benchmark keeps within 10 % of an epoch: 4 batches an epoch, the
    1st and 3rd recorded, in each epoch anew."""
    torch.manual_seed(0)
    model = SmallCNN(width=4, hidden=16)
    rec = ActivationPatternRecorder(model)
    assert rec.every == 2
    fit(model, ERM(), _loader(), epochs=2, device="cpu", progress=False, callbacks=[rec])
    assert [r["layers"]["8"]["points"] for r in rec.history] == [32, 32]


def test_every_counts_passes_of_the_model_so_a_reused_module_is_recorded_at_each_site():
    class Twice(nn.Module):  # one nn.ReLU at two places of a forward (as torchvision's BasicBlock)
        def __init__(self):
            super().__init__()
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(x), self.relu(-x)

    model = Twice()
    g = torch.Generator().manual_seed(4)
    batches = [torch.randn(16, 3, generator=g) for _ in range(4)]
    with ActivationPatternRecorder(model, every=2) as rec:
        for b in batches:
            model(b)
        s = rec.end_epoch()["layers"]["relu"]
    kept = torch.cat([torch.cat([b, -b]) for b in batches[0::2]])  # both sites of passes 1 and 3
    c = np.array(list(_hand_counts((kept > 0).int().numpy()).values()))
    assert s["points"] == 64 and s["patterns"] == len(c)
    assert s["entropy"] == pytest.approx(scipy_entropy(c, base=2))
    assert not model._forward_pre_hooks and not model.relu._forward_hooks


def test_a_first_pass_in_inference_mode_does_not_break_later_passes():
    model = nn.Sequential(Identity())
    x = torch.randn(8, 4)
    with ActivationPatternRecorder(model, ["0"], every=1) as rec:
        with torch.inference_mode():
            model(x)
        model(x)
        assert rec.end_epoch()["layers"]["0"]["points"] == 16


def test_every_records_a_sample_of_the_passes():
    g = torch.Generator().manual_seed(5)
    batches = [torch.randn(10, 6, generator=g) for _ in range(5)]
    model = nn.Sequential(Identity())
    with ActivationPatternRecorder(model, ["0"], every=2) as rec:
        for _epoch in range(2):
            for b in batches:
                model(b)
            rec.end_epoch()
    kept = torch.cat(batches[0::2])  # passes 1, 3, 5 of each epoch
    c = np.array(list(_hand_counts((kept > 0).int().numpy()).values()))
    for row in rec.history:
        assert row["layers"]["0"]["points"] == 30
        assert row["layers"]["0"]["entropy"] == pytest.approx(scipy_entropy(c, base=2))
    assert rec.history[1]["layers"]["0"]["jaccard"] == 1.0
