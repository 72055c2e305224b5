"""The hartmann2021_patterns recipe: registration, profiles and grid, the ResNet's ReLU sites, and its smoke
profile on the real MNIST (table, plot, per-epoch history)."""

from __future__ import annotations

import json

import pytest
import torch

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.vision.recipes.hartmann2021_patterns import (
    PROFILES,
    RECIPE,
    PatternsProfile,
    grid,
    resnet_relu_layers,
)


def test_registered_with_three_profiles_and_the_authors_code():
    assert get_recipe("hartmann2021_patterns") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "10.3389/frai.2021.642374" in RECIPE.paper.url
    assert "JGU-VC/activation-pattern-analysis" in RECIPE.description
    assert "14da42ad541ee4faf35d360a6e871fd44decd33d" in RECIPE.description


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    assert {(s["dataset"], s["model"]) for s in quick} == {
        (d, m) for d in ("mnist", "fashion_mnist") for m in ("small_cnn", "resnet8")}
    assert len(quick) == 4 * PROFILES["quick"].seeds
    paper = PROFILES["paper"]
    assert (paper.epochs, paper.lr, paper.batch_size, paper.device) == (200, 0.1, 128, "auto")  # the authors'
    assert "resnet20" in paper.models


@pytest.mark.parametrize("field, value, match", [
    ("models", ("vgg",), "models"), ("datasets", ("cifar10",), "datasets"), ("epochs", 1, "epochs"),
    ("pattern", "pixels", "pattern"), ("momentum", 1.0, "momentum")])
def test_bad_profile_values_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        PatternsProfile(**{field: value})


def test_resnet_relu_sites_carry_the_relu_signs():
    """Each named module's output has the signs of a ReLU of the network: checked against F.relu's outputs."""
    from torch.nn import functional as F

    from robustlab.vision.models import ResNet

    model = ResNet(depth=8).train()
    names = resnet_relu_layers(model)
    assert names == ["bn1", "layer1.0.bn1", "layer1.0", "layer2.0.bn1", "layer2.0", "layer3.0.bn1", "layer3.0"]
    outputs, relus = {}, []
    modules = dict(model.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.setdefault(n, o.detach()))
             for n in names]
    real_relu = F.relu

    def spy(x, *a, **k):
        out = real_relu(x, *a, **k)
        relus.append(out.detach())
        return out

    F.relu = spy
    try:
        model(torch.rand(2, 1, 28, 28))
    finally:
        F.relu = real_relu
        for h in hooks:
            h.remove()
    assert len(relus) == len(names)  # every ReLU of the network has its site
    # execution order: stem, then per block its inner ReLU and its output ReLU
    for name, relu_out in zip(names, relus):
        assert torch.equal(outputs[name] > 0, relu_out > 0), name


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_table_plot_and_history(tmp_path, monkeypatch, mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_MNIST", str(mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    assert "small_cnn mnist" in md and "resnet8 mnist" in md and "no table of numbers" in md
    assert (out / "results.png").stat().st_size > 5000
    p = PROFILES["smoke"]
    runs = {json.loads(f.read_text())["spec"]["model"]: json.loads(f.read_text()) for f in (out / "runs").glob("*.json")}
    assert set(runs) == {"small_cnn", "resnet8"}
    for model, n_layers in (("small_cnn", 3), ("resnet8", 7)):
        extras, m = runs[model]["extras"], runs[model]["metrics"]
        hist = extras["history"]
        assert [row["epoch"] for row in hist] == list(range(1, p.epochs + 1))
        assert len(extras["layers"]) == n_layers and all(set(row["layers"]) == set(extras["layers"]) for row in hist)
        assert len(extras["accuracy_per_epoch"]) == p.epochs
        first = hist[0]["layers"][extras["layers"][-1]]
        assert first["jaccard"] is None and first["points"] == p.n_train * (1 if model == "small_cnn" else 49)
        for row in hist[1:]:
            for stats in row["layers"].values():
                assert 0.0 <= stats["jaccard"] <= 1.0 and 0.0 <= stats["relative_entropy"] <= 1.0
        assert 0.0 <= m["accuracy"] <= 1.0 and m["jaccard/mean"] == pytest.approx(
            sum(s["jaccard"] for s in hist[-1]["layers"].values()) / n_layers)
