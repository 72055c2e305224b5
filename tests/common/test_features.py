"""FeatureRecorder: the right tensors, names, hooks removed, silence during attacks and attributions, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.common.attacks import PGD
from robustlab.common.attribution import IntegratedGradients, Saliency
from robustlab.common.errors import ConfigError
from robustlab.common.features import FeatureRecorder, attack_pass, in_attack_pass
from robustlab.common.modes import input_gradient_context


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.ReLU(),
        nn.Sequential(nn.Linear(8, 6), nn.Tanh()),
        nn.Linear(6, 3),
    )


def _hooks(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def test_records_the_outputs_of_the_sub_network():
    model = _model().eval()
    x = torch.randn(5, 4)
    with FeatureRecorder(model, ["1", "2.0", model[2]]) as rec:
        logits = model(x)
    assert rec.names == ["1", "2.0", "2"]
    hidden = model[1](model[0](x))
    assert torch.equal(rec.outputs["1"], hidden)
    assert torch.equal(rec.outputs["2.0"], model[2][0](hidden))
    assert torch.equal(rec.outputs["2"], model[2](hidden))
    assert torch.equal(model[3](rec.outputs["2"]), logits)


def test_the_model_itself_and_keep_all():
    model = _model()
    x1, x2 = torch.randn(2, 4), torch.randn(3, 4)
    with FeatureRecorder(model, ["", "2.1"], keep="all", detach=True) as rec:
        model(x1)
        model(x2)
        assert [t.shape[0] for t in rec.outputs["2.1"]] == [2, 3]
        assert torch.equal(rec.outputs[""][1], model(x2).detach())
        rec.clear()
        assert rec.outputs == {"": [], "2.1": []}


def test_unknown_names_list_close_names():
    model = _model()
    with pytest.raises(ConfigError, match=r"no submodule '2\.O'; close names: .*2\.0"):
        FeatureRecorder(model, "2.O")
    with pytest.raises(ConfigError, match="not a submodule"):
        FeatureRecorder(model, nn.ReLU())
    with pytest.raises(ConfigError, match="keep"):
        FeatureRecorder(model, "1", keep="first")
    with pytest.raises(ConfigError, match="twice"):
        FeatureRecorder(model, ["1", model[1]])
    with pytest.raises(ConfigError, match="name or an nn.Module"):
        FeatureRecorder(model, [3])


def test_hooks_are_removed_after_the_block_and_after_an_error():
    model = _model()
    rec = FeatureRecorder(model, ["0", "2.1"])
    assert _hooks(model) == 0
    with rec:
        assert _hooks(model) == 2 and rec.active
        model(torch.randn(2, 4))
    assert _hooks(model) == 0 and not rec.active
    kept = rec.outputs["0"]
    model(torch.randn(7, 4))
    assert rec.outputs["0"] is kept, "nothing is recorded after the block"
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureRecorder(model, ["0", "2.1"]):
            model(torch.randn(2, 4))
            raise RuntimeError("boom")
    assert _hooks(model) == 0
    with rec:
        with pytest.raises(RuntimeError, match="already recording"):
            rec.__enter__()
    assert _hooks(model) == 0


def test_silent_during_attacks_and_attributions():
    model = _model()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    with FeatureRecorder(model, "1", keep="all") as rec:
        PGD(model, eps=0.1, steps=5)(x, y)
        Saliency(model)(x, 0)
        IntegratedGradients(model, steps=4)(x, 0)
        assert rec.outputs["1"] == []
        model(x)
        assert len(rec.outputs["1"]) == 1
    assert not in_attack_pass()


def test_records_during_attacks_when_asked():
    model = _model()
    x, y = torch.randn(6, 4), torch.randint(0, 3, (6,))
    with FeatureRecorder(model, "1", keep="all", during_attacks=True, detach=True) as rec:
        PGD(model, eps=0.1, steps=5)(x, y)
    assert len(rec.outputs["1"]) == 5, "one forward pass per PGD step"


def test_attack_pass_context_nests_and_resets():
    assert not in_attack_pass()
    with attack_pass():
        assert in_attack_pass()
        with attack_pass():
            assert in_attack_pass()
        assert in_attack_pass()
    assert not in_attack_pass()
    with pytest.raises(ValueError):
        with input_gradient_context(_model(), "eval"):
            assert in_attack_pass()
            raise ValueError
    assert not in_attack_pass()


def test_gradients_flow_through_recorded_features():
    model = _model()
    x = torch.randn(16, 4)
    with FeatureRecorder(model, "2", detach=True) as rec:
        model(x)
    assert rec.outputs["2"].grad_fn is None and not rec.outputs["2"].requires_grad
    # a latent-geometry loss: pull the features of two halves of the batch apart, through the recorder only
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def separation():
        f = rec.outputs["2"]
        return -(f[:8].mean(0) - f[8:].mean(0)).pow(2).sum()

    losses = []
    with FeatureRecorder(model, "2") as rec:
        for _ in range(20):
            optimizer.zero_grad()
            model(x)
            loss = separation()
            loss.backward()
            losses.append(loss.item())
            optimizer.step()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
    assert model[3].weight.grad is None or model[3].weight.grad.abs().sum() == 0, "layers after it get no gradient"
    assert losses[-1] < 2 * losses[0] < 0, "the features moved apart"


def test_tuple_outputs_are_detached_element_wise():
    lstm = nn.LSTM(4, 5, batch_first=True)
    model = nn.Sequential(lstm)
    with FeatureRecorder(model, "0", detach=True) as rec:
        model(torch.randn(2, 3, 4))
    out, (h, c) = rec.outputs["0"]
    assert out.shape == (2, 3, 5) and not out.requires_grad and not h.requires_grad and not c.requires_grad


def test_docstring_examples_run():
    import doctest

    import robustlab.common.features as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
