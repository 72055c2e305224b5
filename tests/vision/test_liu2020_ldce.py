"""The liu2020_ldce recipe: registration, profiles and grid, and its smoke profile on the real Fashion-MNIST."""

from __future__ import annotations

import json

import pytest

from robustlab.common.errors import ConfigError
from robustlab.common.recipes import get_recipe
from robustlab.common.recipes.noisy_labels import METHODS
from robustlab.vision.recipes.liu2020_ldce import PROFILES, RECIPE, LDCEProfile, grid


def test_registered_with_three_profiles():
    assert get_recipe("liu2020_ldce") is RECIPE
    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert "10.24963/ijcai.2020/356" in RECIPE.paper.url
    assert "palm-ml/PDLE" in RECIPE.description and "e325db61244bb2efd8d3d6341c5265f511d182b0" in RECIPE.description


def test_grids_of_the_profiles():
    quick = grid(PROFILES["quick"])
    # the least quick grid (Fashion-MNIST symmetric 40/60 % and pair flip 40 %, 10 % trusted, >= 3 seeds),
    # with 5 seeds everywhere: the fewest for a verdict
    by = {}
    for s in quick:
        by.setdefault((s["dataset"], s["noise"], s["trusted"]), []).append(s["seed"])
    assert by == {("fashion_mnist", "symmetric:0.4", 0.1): [0, 1, 2, 3, 4],
                  ("fashion_mnist", "symmetric:0.6", 0.1): [0, 1, 2, 3, 4],
                  ("fashion_mnist", "random_pair:0.4", 0.1): [0, 1, 2, 3, 4]}
    assert PROFILES["quick"].methods == METHODS
    assert grid(LDCEProfile(seeds=2, claim_seeds=4))[-1]["seed"] == 1  # claim_seeds only for the claimed cells
    assert len(grid(LDCEProfile(seeds=2, claim_seeds=4))) == 4 + 4 + 2
    paper = grid(PROFILES["paper"])
    # both data sets, symmetric 20-80 %, random and next-class pair 20/40 %, trusted 10/5/1 %, 5 seeds, every method
    assert len(paper) == 2 * 8 * 3 * 5 and set(PROFILES["paper"].methods) == set(METHODS)
    assert PROFILES["paper"].epochs == 100 and PROFILES["paper"].device == "auto"
    assert (PROFILES["paper"].encoder, PROFILES["paper"].model) == ("resnet32", "wrn40_2")  # the authors' networks


@pytest.mark.parametrize("field, value, match", [
    ("noises", ("uniform:0.4",), "noises"), ("noises", ("symmetric:1.0",), "noises"), ("noises", ("pair",), "kind:rate"),
    ("trusted", (0.0,), "trusted"), ("methods", ("mixup",), "methods"), ("model", "vgg", "model"),
    ("cv_folds", 1, "cv_folds"), ("beta", 1.5, "beta")])
def test_bad_profile_values_are_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        LDCEProfile(**{field: value})


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_reproduce_writes_the_table(tmp_path, monkeypatch, fashion_mnist_root, one_thread):
    from robustlab.common.recipes import run_recipe

    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST", str(fashion_mnist_root))
    out = tmp_path / "out"
    report = run_recipe(RECIPE, profile="smoke", out_dir=out, progress=False)
    assert report.complete
    md = (out / "results.md").read_text()
    for label in ("cross-entropy", "forward correction", "GLC", "Co-teaching", "cleanlab filter + retrain",
                  "LDCE (hard)", "LDCE (soft)", "fashion_mnist symmetric 40%, 10% trusted"):
        assert label in md, label
    assert "undecided at this power" in md  # one seed: never a verdict
    run = json.loads(next((out / "runs").glob("*.json")).read_text())
    m, extras = run["metrics"], run["extras"]
    assert m["noise_rate"] == pytest.approx(0.4, abs=0.1)
    for method in METHODS:
        assert 0.0 <= m[f"{method}/final"] <= 1.0
        assert len(extras[f"{method}/items_final"]) == PROFILES["smoke"].n_test
    for method in ("ldce", "cleanlab"):
        assert 0.0 <= m[f"{method}/precision"] <= 1.0 and 0.0 <= m[f"{method}/recall"] <= 1.0
    assert (out / "results.png").stat().st_size > 1000
